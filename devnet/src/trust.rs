//! Node options that are not chain state: which attestation roots `load_nitro_attestation`
//! trusts. The AWS Nitro Enclaves root G1 always; a DEV root (from `daas_attestation::dev`) only
//! when one is configured, for development, with a loud warning.

use std::path::Path;

use daas_attestation::{RootKind, TrustAnchor};

use crate::error::DevnetError;

/// How a devnet node runs. The same data directory may be served with other options; a
/// registration accepted under a dev root stays on the chain after a restart without it.
#[derive(Clone, Debug, Default)]
pub struct DevnetOptions {
    /// A DEV attestation root (`RootKind::Dev`) that `load_nitro_attestation` trusts besides
    /// the AWS Nitro root G1 (`--trust-dev-attestation-root FILE`). Documents signed under it
    /// prove nothing about a TEE: development only.
    pub trust_dev_attestation_root: Option<TrustAnchor>,
}

impl DevnetOptions {
    /// Options trusting the dev root certificate in the PEM file `path`.
    pub fn with_dev_root_file(path: &Path) -> Result<DevnetOptions, DevnetError> {
        let pem = std::fs::read_to_string(path).map_err(|source| DevnetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let anchor =
            TrustAnchor::from_pem(&pem, RootKind::Dev).map_err(|source| DevnetError::DevRoot {
                path: path.to_owned(),
                source,
            })?;
        Ok(DevnetOptions {
            trust_dev_attestation_root: Some(anchor),
        })
    }

    /// The roots `load_nitro_attestation` trusts: the AWS root G1, then the dev root if any
    /// (logged as a warning naming its fingerprint).
    pub(crate) fn anchors(&self) -> Result<Vec<TrustAnchor>, DevnetError> {
        let mut anchors = vec![TrustAnchor::aws_nitro_root_g1()];
        if let Some(dev) = &self.trust_dev_attestation_root {
            if dev.kind() != RootKind::Dev {
                return Err(DevnetError::NotADevRoot(dev.kind()));
            }
            tracing::warn!(
                fingerprint = %hex(&dev.fingerprint()),
                "TRUSTING A DEV ATTESTATION ROOT: load_nitro_attestation accepts documents signed \
                 under this DEV root (not AWS), so an enclave registered on this devnet may be no \
                 TEE at all. Development only."
            );
            anchors.push(dev.clone());
        }
        Ok(anchors)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
