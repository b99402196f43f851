//! AWS Nitro Enclaves attestation documents for K3s-DaaS.
//!
//! What this crate does:
//! - [`parse`]: strict structure and field rules of a COSE_Sign1 attestation document, the same
//!   rules Sui's `0x2::nitro_attestation::load_nitro_attestation` applies (MystenLabs/fastcrypto:
//!   `fastcrypto/src/nitro_attestation.rs`), so a document accepted here is accepted on chain.
//! - [`verify`]: the full check at a caller-given time: parse, certificate chain to a *pinned*
//!   [`TrustAnchor`], validity of every certificate, KeyUsage/BasicConstraints, and the COSE
//!   ES384 signature.
//! - [`policy`]: the fail-closed application policy applied after `verify` (expected PCRs, debug
//!   mode, freshness, nonce, user_data [`binding`]).
//! - [`Attester`]: who produces documents; [`dev::DevAttester`] produces byte-compatible
//!   documents under a local [`dev::DevRoot`] for development.
//!
//! What it does not do: no I/O and no clock reads (time is always a parameter; the only
//! exception is the `Attester` impl of `DevAttester`, which stamps documents with the current
//! time), no talking to `/dev/nsm` (that is the enclave's `tee` module), no revocation (AWS
//! publishes no CRLs for Nitro).
//!
//! Where this crate is *stricter* than Sui (a document it accepts is always accepted by Sui, not
//! necessarily the reverse) is listed in `docs/tee.md`, "Verifying an attestation document".

mod anchor;
mod attester;
pub mod binding;
mod cbor;
mod chain;
mod cose;
pub mod dev;
mod document;
mod error;
pub mod policy;
mod time_fmt;
mod verify;

pub use anchor::{AWS_NITRO_ROOT_G1_SHA256, TrustAnchor};
pub use attester::{AttestationRequest, Attester, AttesterError};
pub use document::{Document, parse};
pub use error::{AttestationError, CertName};
pub use verify::{Verified, verify};

/// Time as Sui's Clock gives it: milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// Which kind of root a document chained to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// The AWS Nitro Enclaves Root-G1 (real hardware).
    Aws,
    /// A development root (no TEE behind it).
    Dev,
}

impl std::fmt::Display for RootKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RootKind::Aws => "aws",
            RootKind::Dev => "dev",
        })
    }
}

/// Limits shared by the parser and the attester (the tightest of AWS's and Sui's).
pub mod limits {
    /// `user_data` and `nonce`: at most 512 bytes (fastcrypto `MAX_USER_DATA_LENGTH`).
    pub const MAX_USER_DATA: usize = 512;
    /// `nonce`: at most 512 bytes (fastcrypto reuses `MAX_USER_DATA_LENGTH`).
    pub const MAX_NONCE: usize = 512;
    /// `public_key`: at most 1024 bytes (fastcrypto `MAX_PK_LENGTH`).
    pub const MAX_PUBLIC_KEY: usize = 1024;
    /// Each certificate: 1..=1024 bytes (fastcrypto `MAX_CERT_LENGTH`).
    pub const MAX_CERT: usize = 1024;
    /// `cabundle`: 1..=10 entries (fastcrypto `MAX_CERT_CHAIN_LENGTH`).
    pub const MAX_CABUNDLE: usize = 10;
    /// `pcrs`: at most 32 entries (fastcrypto `MAX_PCRS_LENGTH`).
    pub const MAX_PCRS: usize = 32;
    /// COSE payload: 1..=16383 bytes (fastcrypto `(1..16384).contains(len)`).
    pub const MAX_PAYLOAD: usize = 16383;
    /// COSE signature: exactly 96 bytes, r‖s of P-384.
    pub const SIGNATURE_LEN: usize = 96;
}
