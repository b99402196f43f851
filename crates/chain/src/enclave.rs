//! The cluster's registered enclave (`Cluster.enclave`), read as a typed value.
//!
//! `enclave::register_enclave` stores it after checking the Nitro attestation on chain (see
//! `move-contracts/sources/enclave.move`): PCR0/1/2 equal the cluster's expected PCRs, the
//! document is fresh and not debug, and its user_data (layout v1) binds this cluster, the
//! endpoint and the SHA-256 of the enclave CA certificate. A client pins the CA whose DER hashes
//! to [`RegisteredEnclave::ca_sha256`] after checking a fresh attestation itself.

use daas_chain_types::{Cluster, Enclave};

use crate::{AtCheckpoint, Chain, ChainError};

/// `Cluster.enclave`, with its byte fields checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredEnclave {
    /// The attestation's `public_key` (the enclave CA's SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// Where the enclave serves (bound into the attestation).
    pub endpoint: String,
    /// SHA-256 of the DER of the enclave's CA certificate.
    pub ca_sha256: [u8; 32],
    /// PCR0, PCR1, PCR2 of the attested enclave (48 bytes each).
    pub pcrs: [Vec<u8>; 3],
    /// Timestamp of the attestation document (ms).
    pub attested_at_ms: u64,
    /// Chain clock time of the registration (ms).
    pub registered_at_ms: u64,
}

impl RegisteredEnclave {
    /// The registered enclave of `cluster`, if any. A stored value whose CA hash is not 32 bytes
    /// or whose PCRs are not 48 bytes is an error (the package never stores one).
    pub fn of(cluster: &Cluster) -> Result<Option<RegisteredEnclave>, ChainError> {
        cluster
            .enclave
            .as_ref()
            .map(|e| RegisteredEnclave::try_from(e.clone()))
            .transpose()
    }
}

impl TryFrom<Enclave> for RegisteredEnclave {
    type Error = ChainError;

    fn try_from(e: Enclave) -> Result<RegisteredEnclave, ChainError> {
        let what = || "the cluster's registered enclave".to_owned();
        let ca_sha256: [u8; 32] = e.ca_sha256.as_slice().try_into().map_err(|_| {
            ChainError::decode(
                what(),
                format!("ca_sha256 is {} bytes, not 32", e.ca_sha256.len()),
            )
        })?;
        for (i, pcr) in [&e.pcr0, &e.pcr1, &e.pcr2].into_iter().enumerate() {
            if pcr.len() != daas_chain_types::consts::PCR_LENGTH {
                return Err(ChainError::decode(
                    what(),
                    format!("PCR{i} is {} bytes, not 48", pcr.len()),
                ));
            }
        }
        Ok(RegisteredEnclave {
            public_key: e.public_key,
            endpoint: e.endpoint,
            ca_sha256,
            pcrs: [e.pcr0, e.pcr1, e.pcr2],
            attested_at_ms: e.attested_at_ms,
            registered_at_ms: e.registered_at_ms,
        })
    }
}

/// Reads the configured cluster and returns its registered enclave (`None`: no enclave is
/// registered, e.g. before the first registration or after the expected PCRs changed).
pub async fn registered_enclave<C: Chain>(
    chain: &C,
) -> Result<AtCheckpoint<Option<RegisteredEnclave>>, ChainError> {
    let cluster = chain.cluster().await?;
    let checkpoint = cluster.checkpoint;
    Ok(AtCheckpoint::new(
        RegisteredEnclave::of(&cluster.value.cluster)?,
        checkpoint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enclave(ca: usize, pcr: usize) -> Enclave {
        Enclave {
            public_key: vec![1, 2],
            endpoint: "https://e:6443".to_owned(),
            ca_sha256: vec![0xca; ca],
            pcr0: vec![1; pcr],
            pcr1: vec![2; pcr],
            pcr2: vec![3; pcr],
            attested_at_ms: 10,
            registered_at_ms: 11,
        }
    }

    #[test]
    fn a_stored_enclave_converts_with_its_ca_hash() {
        let e = RegisteredEnclave::try_from(enclave(32, 48)).expect("valid");
        assert_eq!(e.ca_sha256, [0xca; 32]);
        assert_eq!(e.pcrs[2], vec![3; 48]);
        assert_eq!((e.attested_at_ms, e.registered_at_ms), (10, 11));
    }

    #[test]
    fn malformed_stored_values_are_errors() {
        let err = RegisteredEnclave::try_from(enclave(31, 48)).expect_err("short hash");
        assert!(err.to_string().contains("ca_sha256 is 31 bytes"), "{err}");
        let err = RegisteredEnclave::try_from(enclave(32, 47)).expect_err("short PCR");
        assert!(err.to_string().contains("PCR0 is 47 bytes"), "{err}");
    }
}
