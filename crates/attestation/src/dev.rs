//! Development attestation: a local P-384 root, and documents byte-compatible with the NSM's.
//!
//! Dev documents go through exactly the same [`crate::verify`] as real ones; they verify only
//! when the dev root is configured as a [`TrustAnchor`] (kind [`RootKind::Dev`]), never under
//! the AWS root. Their `module_id` starts with `dev-`.

use std::collections::BTreeMap;

use crate::policy::ExpectedPcrs;
use crate::{AttestationRequest, Attester, AttesterError, RootKind, TrustAnchor, UnixMillis};

/// A local P-384 dev root CA (key in memory; the certificate can be exported as PEM/DER).
pub struct DevRoot {
    _private: (),
}

impl std::fmt::Debug for DevRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevRoot").finish_non_exhaustive()
    }
}

impl DevRoot {
    /// A fresh root (valid 2000-01-01 to 2099-12-31; no clock read).
    pub fn generate() -> Result<DevRoot, AttesterError> {
        Err(AttesterError::Signing("not implemented yet".into()))
    }

    /// The root certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &[]
    }

    /// The root certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        String::new()
    }

    /// The root as a trust anchor of kind [`RootKind::Dev`].
    pub fn trust_anchor(&self) -> TrustAnchor {
        TrustAnchor::aws_nitro_root_g1()
    }
}

/// Byte-compatible documents (untagged COSE_Sign1, same 9 keys in order, nulls, 16×48-byte
/// PCRs) signed with real ES384 by a 3-hour leaf under an intermediate chain from [`DevRoot`].
/// `module_id` starts with `"dev-"`.
pub struct DevAttester {
    _private: (),
}

impl std::fmt::Debug for DevAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAttester").finish_non_exhaustive()
    }
}

impl DevAttester {
    /// An attester under `root` reporting `pcrs` (indices 0..=31; PCR0..15 not given are zero).
    pub fn new(root: DevRoot, pcrs: BTreeMap<u8, [u8; 48]>) -> Result<DevAttester, AttesterError> {
        let _ = (root, pcrs);
        Err(AttesterError::Signing("not implemented yet".into()))
    }

    /// A document stamped `at` (its leaf is valid from `at − 3 s` to `at + 3 h`, like AWS's).
    pub fn attest_at(
        &self,
        request: &AttestationRequest,
        at: UnixMillis,
    ) -> Result<Vec<u8>, AttesterError> {
        let _ = (request, at);
        Err(AttesterError::Signing("not implemented yet".into()))
    }

    /// PCR0/1/2 this attester reports, as a policy expects them.
    pub fn pcrs(&self) -> ExpectedPcrs {
        ExpectedPcrs {
            pcr0: Vec::new(),
            pcr1: Vec::new(),
            pcr2: Vec::new(),
        }
    }

    /// The dev root's trust anchor.
    pub fn trust_anchor(&self) -> TrustAnchor {
        TrustAnchor::aws_nitro_root_g1()
    }
}

impl Attester for DevAttester {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        // The one clock read of this crate: the NSM stamps documents with its own time too.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| AttesterError::Signing("system clock before 1970".into()))?;
        let now = u64::try_from(now.as_millis())
            .map_err(|_| AttesterError::Signing("system clock out of range".into()))?;
        self.attest_at(request, now)
    }

    fn describe(&self) -> String {
        "DEV attester (not a TEE)".into()
    }

    fn root_kind(&self) -> RootKind {
        RootKind::Dev
    }
}

/// PCRs of a dev enclave image, by the Nitro extend rule
/// `extend(h) = SHA-384(48 zero bytes ‖ h)` (a fresh PCR extended once):
/// PCR0 = PCR1 = extend(SHA-384(image)) (a single-ramdisk image, as Nautilus-style builds give),
/// PCR2 = extend(SHA-384("")) (no second ramdisk). Other PCRs are absent (zero in documents).
pub fn dev_pcrs(image: &[u8]) -> BTreeMap<u8, [u8; 48]> {
    let _ = image;
    BTreeMap::new()
}
