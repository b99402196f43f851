//! Shared test helpers: the public Nitro vectors (read from /work/shared, never copied).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// A fixed "now" for tests (2026-12-01T00:00:00Z): every public chain has expired by then.
pub const NOW_2026_12_01_MS: u64 = 1_796_083_200_000;

/// One public attestation document and the facts its README states.
pub struct Vector {
    pub file: &'static str,
    pub timestamp_ms: u64,
    /// The span (Unix seconds, inclusive) in which every certificate of the chain is valid.
    pub valid_from: i64,
    pub valid_until: i64,
    pub debug: bool,
    pub pcr0: &'static str,
    pub pcr1: &'static str,
    pub pcr2: &'static str,
    pub pcr_count: usize,
}

pub const VECTORS: [Vector; 5] = [
    Vector {
        file: "sui-debug-2024-11-14.cose",
        timestamp_ms: 1_731_627_989_450,
        valid_from: 1_731_619_466,
        valid_until: 1_731_630_269,
        debug: true,
        pcr0: ZERO,
        pcr1: ZERO,
        pcr2: ZERO,
        pcr_count: 16,
    },
    Vector {
        file: "fastcrypto-pcr16-2025-11-10.cose",
        timestamp_ms: 1_762_795_210_812,
        valid_from: 1_762_795_207,
        valid_until: 1_762_806_010,
        debug: false,
        pcr0: "3aa0e6e6ed7d8301655fced7e6ddcc443a3e57bf62f070caa6becf337069e859c0f03d68136440ff1cab8adefd20634c",
        pcr1: "b0d319fa64f9c2c9d7e9187bc21001ddacfab4077e737957fa1b8b97cc993bed43a79019aebfd40ee5f6f213147909f8",
        pcr2: "fdb2295dc5d9b67a653ed5f3ead5fc8166ec3cae1de1c7c6f31c3b43b2eb26ab5d063f414f3d2b93163426805dfe057e",
        pcr_count: 17,
    },
    Vector {
        file: "evervault-debug-2022-10-12.cose",
        timestamp_ms: 1_665_582_606_081,
        valid_from: 1_665_582_591,
        valid_until: 1_665_593_394,
        debug: true,
        pcr0: ZERO,
        pcr1: ZERO,
        pcr2: ZERO,
        pcr_count: 16,
    },
    Vector {
        file: "evervault-prod-2022-10-13.cose",
        timestamp_ms: 1_665_651_482_136,
        valid_from: 1_665_651_479,
        valid_until: 1_665_662_282,
        debug: false,
        pcr0: "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b",
        pcr1: "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f",
        pcr2: "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a",
        pcr_count: 16,
    },
    Vector {
        file: "evervault-debug-2023-09-18.cose",
        timestamp_ms: 1_695_049_410_860,
        valid_from: 1_695_047_829,
        valid_until: 1_695_058_632,
        debug: true,
        pcr0: ZERO,
        pcr1: ZERO,
        pcr2: ZERO,
        pcr_count: 16,
    },
];

const ZERO: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// `DAAS_VECTORS_DIR`, else `<workspace root>/../shared/vectors/nitro`.
pub fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DAAS_VECTORS_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/nitro")
}

impl Vector {
    pub fn bytes(&self) -> Vec<u8> {
        let path = vectors_dir().join(self.file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read vector {}: {e}", path.display()))
    }

    pub fn expected_pcrs(&self) -> daas_attestation::policy::ExpectedPcrs {
        daas_attestation::policy::ExpectedPcrs {
            pcr0: hex::decode(self.pcr0).expect("hex"),
            pcr1: hex::decode(self.pcr1).expect("hex"),
            pcr2: hex::decode(self.pcr2).expect("hex"),
        }
    }
}

pub fn vector(file: &str) -> &'static Vector {
    VECTORS
        .iter()
        .find(|v| v.file == file)
        .expect("known vector")
}

pub fn aws() -> Vec<daas_attestation::TrustAnchor> {
    vec![daas_attestation::TrustAnchor::aws_nitro_root_g1()]
}
