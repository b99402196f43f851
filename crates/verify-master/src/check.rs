//! The whole check, in order: chain → expected PCRs and registered enclave → fresh document for
//! our nonce, signed under the pinned root → policy (PCRs, not debug, fresh, nonce, user_data
//! binding of cluster and CA) → the CA equals the registered one → the TLS certificate the
//! master served chains to that CA. Only then is the CA returned for pinning.

use base64ct::Encoding;
use daas_attestation::policy::{self, ExpectedBinding, ExpectedPcrs, Policy};
use daas_attestation::{RootKind, TrustAnchor, UnixMillis};
use daas_chain::Chain;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::VerifyMasterError;
use crate::fetch::{Endpoint, check_served_chain, fetch_attestation};

/// Default largest age of a fresh document (as `enclave.move` allows at registration).
pub const DEFAULT_MAX_AGE_MS: u64 = 300_000;
/// Largest amount a document's timestamp may be ahead of our clock.
pub const MAX_FUTURE_SKEW_MS: u64 = 60_000;

/// What to check a master against.
#[derive(Clone, Debug)]
pub struct MasterCheck {
    /// Where to reach the master; `None`: the endpoint registered on chain.
    pub endpoint: Option<String>,
    /// Roots a document may chain to: the AWS Nitro root, and a dev root only when the user
    /// configured one explicitly.
    pub anchors: Vec<TrustAnchor>,
    /// The current time (the caller reads the clock).
    pub now_ms: UnixMillis,
    /// Largest accepted age of the fresh document.
    pub max_age_ms: u64,
}

impl MasterCheck {
    /// AWS root only, endpoint from chain.
    pub fn new(now_ms: UnixMillis) -> Self {
        MasterCheck {
            endpoint: None,
            anchors: vec![TrustAnchor::aws_nitro_root_g1()],
            now_ms,
            max_age_ms: DEFAULT_MAX_AGE_MS,
        }
    }
}

/// A master that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedMaster {
    /// Where it was reached.
    pub endpoint: String,
    /// Its CA certificate (PEM, as served): pin this.
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    /// SHA-256 of the CA certificate's DER (what the document and the chain carry).
    pub ca_sha256: [u8; 32],
    /// The K3s secure-token CA hash, `K10` + hex SHA-256 of the CA PEM bytes as served (K3s
    /// hashes its `/cacerts` answer, the PEM as on disk, for a self-signed CA).
    pub k3s_ca_hash: String,
    pub module_id: String,
    pub attested_at_ms: UnixMillis,
    /// Which root the document chains to (`Dev` only when configured).
    pub root: RootKind,
    /// The PCR0/1/2 the document carries (equal to the cluster's expected values).
    pub pcrs: [Vec<u8>; 3],
}

/// Runs every check against the cluster configured in `chain`.
pub async fn verify_master<C: Chain>(
    chain: &C,
    check: &MasterCheck,
) -> Result<VerifiedMaster, VerifyMasterError> {
    let cluster = chain.cluster().await?.value.cluster;
    let cluster_name = cluster.id.to_string();
    let expected = ExpectedPcrs {
        pcr0: cluster.expected_pcr0.clone(),
        pcr1: cluster.expected_pcr1.clone(),
        pcr2: cluster.expected_pcr2.clone(),
    };
    if expected.pcr0.is_empty() || expected.pcr1.is_empty() || expected.pcr2.is_empty() {
        return Err(VerifyMasterError::PcrsNotConfigured {
            cluster: cluster_name,
        });
    }
    let registered = cluster
        .enclave
        .clone()
        .ok_or_else(|| VerifyMasterError::NotRegistered {
            cluster: cluster_name.clone(),
        })?;
    let endpoint = Endpoint::parse(check.endpoint.as_deref().unwrap_or(&registered.endpoint))?;

    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let (answer, served) = fetch_attestation(&endpoint, &nonce).await?;
    let document = base64ct::Base64::decode_vec(&answer.document)
        .map_err(|_| VerifyMasterError::Malformed("document is not base64".into()))?;
    let ca_der = CertificateDer::from_pem_slice(answer.ca_certificate.as_bytes())
        .map_err(|e| VerifyMasterError::Malformed(format!("ca_certificate: {e}")))?
        .to_vec();
    let ca_sha256: [u8; 32] = Sha256::digest(&ca_der).into();

    let verified = daas_attestation::verify(&document, &check.anchors, check.now_ms)?;
    let binding = policy::check(
        &verified,
        &Policy {
            expected_pcrs: expected,
            allow_debug: false,
            now: check.now_ms,
            max_age_ms: check.max_age_ms,
            max_future_skew_ms: MAX_FUTURE_SKEW_MS,
            nonce: Some(nonce.to_vec()),
            binding: Some(ExpectedBinding {
                cluster_id: cluster.id.into_inner(),
                ca_sha256: Some(ca_sha256),
            }),
        },
    )?;
    if let Some(binding) = &binding
        && binding.endpoint != registered.endpoint
    {
        return Err(VerifyMasterError::EndpointNotRegistered {
            attested: binding.endpoint.clone(),
            registered: registered.endpoint.clone(),
        });
    }
    if registered.ca_sha256.as_slice() != ca_sha256 {
        return Err(VerifyMasterError::CaNotRegistered {
            served: hex::encode(ca_sha256),
            registered: hex::encode(&registered.ca_sha256),
        });
    }
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_millis(check.now_ms));
    check_served_chain(&served, &ca_der, &endpoint, now)?;

    let doc = verified.document;
    let pcr = |i: u8| doc.pcr(i).map(<[u8]>::to_vec).unwrap_or_default();
    Ok(VerifiedMaster {
        endpoint: endpoint.to_string(),
        k3s_ca_hash: k3s_ca_hash(answer.ca_certificate.as_bytes()),
        ca_pem: answer.ca_certificate,
        ca_der,
        ca_sha256,
        module_id: doc.module_id.clone(),
        attested_at_ms: doc.timestamp_ms,
        root: verified.root,
        pcrs: [pcr(0), pcr(1), pcr(2)],
    })
}

/// K3s's CA hash of a PEM bundle as served: `K10` + lowercase hex SHA-256 of the bytes.
pub fn k3s_ca_hash(ca_pem: &[u8]) -> String {
    format!("K10{}", hex::encode(Sha256::digest(ca_pem)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_hash_is_over_the_pem_bytes() {
        let hash = k3s_ca_hash(b"abc");
        assert_eq!(
            hash,
            "K10ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
