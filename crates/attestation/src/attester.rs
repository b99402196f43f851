//! Who produces attestation documents: the NSM inside an enclave, or a dev stand-in.

use crate::RootKind;
use crate::limits::{MAX_NONCE, MAX_PUBLIC_KEY, MAX_USER_DATA};

/// What to put into a document. Each field is limited as the NSM and Sui limit it:
/// `user_data` and `nonce` ≤ 512 bytes, `public_key` ≤ 1024 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    /// Application data (for K3s-DaaS: a [`crate::binding::Binding`]).
    pub user_data: Option<Vec<u8>>,
    /// A verifier's challenge.
    pub nonce: Option<Vec<u8>>,
    /// A key the enclave holds (identity key, or an RSA SPKI for KMS).
    pub public_key: Option<Vec<u8>>,
}

impl AttestationRequest {
    /// Refuse fields over their limits, before anything is sent to a device or signed.
    pub fn check_sizes(&self) -> Result<(), AttesterError> {
        for (field, value, max) in [
            ("user_data", &self.user_data, MAX_USER_DATA),
            ("nonce", &self.nonce, MAX_NONCE),
            ("public_key", &self.public_key, MAX_PUBLIC_KEY),
        ] {
            if let Some(v) = value
                && v.len() > max
            {
                return Err(AttesterError::TooLarge {
                    field,
                    len: v.len(),
                    max,
                });
            }
        }
        Ok(())
    }
}

/// Who produces attestation documents (the NSM in an enclave, or a dev stand-in).
pub trait Attester: Send + Sync {
    /// A fresh COSE_Sign1 attestation document carrying `request`'s fields.
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError>;
    /// For logs, e.g. `"nitro NSM (/dev/nsm)"` or `"DEV attester (not a TEE)"`.
    fn describe(&self) -> String;
    /// Which root the documents chain to.
    fn root_kind(&self) -> RootKind;
}

/// Why an attester could not produce a document.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum AttesterError {
    /// A request field exceeds its limit.
    #[error("{field} is {len} bytes; at most {max} allowed")]
    TooLarge {
        /// `user_data`, `nonce` or `public_key`.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The device (NSM) failed.
    #[error("attestation device: {0}")]
    Device(String),
    /// Key generation, certificate issuance or signing failed.
    #[error("signing: {0}")]
    Signing(String),
    /// The attester was configured with unusable values (PCR index or count).
    #[error("attester configuration: {0}")]
    Config(String),
}
