//! Verification throughput: a real document, a dev document, and a bare P-384 ECDSA verify
//! measured in the same run (a full `verify` does six: the COSE signature and five
//! certificate signatures). Plain std timing; `--quick` for CI smoke runs.
//!
//!   cargo bench -p daas-attestation --bench verify [-- --quick]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};
use daas_attestation::{AttestationRequest, TrustAnchor, verify};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey};

const REAL: &str = "evervault-prod-2022-10-13.cose";
const REAL_AT: u64 = 1_665_651_482_136;
const DEV_AT: u64 = 1_796_083_200_000;

fn vectors_dir() -> PathBuf {
    std::env::var_os("DAAS_VECTORS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/nitro"),
        PathBuf::from,
    )
}

/// Runs `f` repeatedly for about `budget`; returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };

    let real = std::fs::read(vectors_dir().join(REAL)).expect("read the public vector");
    let aws = [TrustAnchor::aws_nitro_root_g1()];
    verify(&real, &aws, REAL_AT).expect("real vector verifies");

    let root = DevRoot::generate().expect("dev root");
    let attester = DevAttester::new(root, dev_pcrs(b"bench image")).expect("dev attester");
    let dev_anchor = [attester.trust_anchor()];
    let dev = attester
        .attest_at(&AttestationRequest::default(), DEV_AT)
        .expect("dev document");
    verify(&dev, &dev_anchor, DEV_AT).expect("dev document verifies");

    let key = SigningKey::from_slice(&[0x42; 48]).expect("scalar in range");
    let message = vec![0x5a; real.len()];
    let signature: Signature = key.sign(&message);
    let verifying = *key.verifying_key();

    let bare = rate(budget, || {
        black_box(verifying.verify(black_box(&message), black_box(&signature))).expect("bare");
    });
    let real_rate = rate(budget, || {
        black_box(verify(black_box(&real), &aws, REAL_AT)).expect("real");
    });
    let dev_rate = rate(budget, || {
        black_box(verify(black_box(&dev), &dev_anchor, DEV_AT)).expect("dev");
    });

    println!(
        "bare P-384 ECDSA verify ({} B message): {bare:>9.1}/s",
        message.len()
    );
    for (name, r) in [
        ("real document (4 CA certs)", real_rate),
        ("dev document (4 CA certs)", dev_rate),
    ] {
        println!(
            "verify {name}: {r:>9.1}/s  = {:.2} bare verifies each (6 signatures checked)",
            bare / r
        );
    }
}
