//! Attestation documents on demand: `GET /attestation?nonce=…` on :8080 (public data only, no
//! authentication) and the registration document.
//!
//! Every document binds the same things: `user_data` = layout v1 (cluster id, SHA-256 of the
//! enclave CA, public endpoint; see `daas_attestation::binding`), `public_key` = the CA's
//! SubjectPublicKeyInfo. Only the nonce differs.

use std::sync::Arc;

use base64ct::{Base64, Encoding};
use daas_attestation::binding::Binding;
use daas_attestation::{AttestationRequest, Attester, AttesterError, RootKind};
use daas_verify_master::wire::{AttestationResponse, FORMAT_V1};
use tokio::sync::Semaphore;

use super::identity::EnclaveIdentity;

/// Documents produced at once (each is an NSM ioctl or a P-384 signature); more wait.
const CONCURRENT_DOCUMENTS: usize = 4;

/// Produces the enclave's attestation documents.
pub struct AttestationService {
    attester: Arc<dyn Attester>,
    user_data: Vec<u8>,
    public_key: Vec<u8>,
    ca_pem: String,
    slots: Semaphore,
}

impl std::fmt::Debug for AttestationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationService")
            .field("attester", &self.attester.describe())
            .finish_non_exhaustive()
    }
}

impl AttestationService {
    /// Documents for `identity`, bound to cluster `cluster_id` served at `endpoint`.
    pub fn new(
        attester: Arc<dyn Attester>,
        identity: &EnclaveIdentity,
        cluster_id: [u8; 32],
        endpoint: &str,
    ) -> Self {
        let binding = Binding {
            cluster_id,
            ca_sha256: identity.ca_sha256(),
            endpoint: endpoint.to_owned(),
        };
        AttestationService {
            attester,
            user_data: binding.encode(),
            public_key: identity.ca_public_key().to_vec(),
            ca_pem: identity.ca_pem().to_owned(),
            slots: Semaphore::new(CONCURRENT_DOCUMENTS),
        }
    }

    /// What produces the documents (for logs).
    pub fn describe(&self) -> String {
        self.attester.describe()
    }

    pub fn root_kind(&self) -> RootKind {
        self.attester.root_kind()
    }

    /// A fresh document carrying `nonce` (none for the registration document).
    pub async fn document(&self, nonce: Option<Vec<u8>>) -> Result<Vec<u8>, AttesterError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| AttesterError::Device("attestation service closed".into()))?;
        let request = AttestationRequest {
            user_data: Some(self.user_data.clone()),
            nonce,
            public_key: Some(self.public_key.clone()),
        };
        let attester = self.attester.clone();
        tokio::task::spawn_blocking(move || attester.attest(&request))
            .await
            .map_err(|e| AttesterError::Device(format!("attester task: {e}")))?
    }

    /// The `GET /attestation` answer for `nonce`.
    pub async fn answer(&self, nonce: Vec<u8>) -> Result<AttestationResponse, AttesterError> {
        let document = self.document(Some(nonce)).await?;
        Ok(AttestationResponse {
            format: FORMAT_V1.to_owned(),
            document: Base64::encode_string(&document),
            ca_certificate: self.ca_pem.clone(),
        })
    }
}
