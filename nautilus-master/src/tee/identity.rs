//! The enclave's TLS identity: a CA generated in enclave memory whose private key is never
//! written anywhere, and the :8080 serving certificate it issues.
//!
//! What leaves the enclave is public: the CA certificate (PEM, for pinning), its SHA-256 (in the
//! attestation's `user_data`) and its SubjectPublicKeyInfo (the attestation's `public_key`).
//! A restart makes a new CA, which must be attested and registered again; clients re-check
//! (`kubeconfig generate --attested`, `staker-agent verify-master`).

use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::proxy::tls::issue_ca_and_leaf;
use crate::proxy::{ServerCert, TlsError};

/// The in-memory CA and the proxy certificate it issued.
pub struct EnclaveIdentity {
    server: ServerCert,
    ca_der: Vec<u8>,
    ca_sha256: [u8; 32],
    ca_spki: Vec<u8>,
    /// Kept (in memory only) to issue further certificates, e.g. for the :6443 front.
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl std::fmt::Debug for EnclaveIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveIdentity")
            .field("ca_sha256", &hex::encode(self.ca_sha256))
            .finish_non_exhaustive()
    }
}

impl EnclaveIdentity {
    /// A fresh CA (P-256) and a serving certificate for `sans` (host names or IP addresses).
    pub fn generate(sans: &[String]) -> Result<Self, TlsError> {
        let issued = issue_ca_and_leaf("k3s-daas enclave CA", sans)?;
        let ca_spki = rcgen::PublicKeyData::subject_public_key_info(issued.issuer.key());
        let ca_der = issued.ca.der().to_vec();
        let chain = vec![issued.leaf.der().clone(), issued.ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.leaf_key.serialize_der()));
        Ok(EnclaveIdentity {
            server: ServerCert::in_memory(issued.ca.pem(), chain, key),
            ca_sha256: Sha256::digest(&ca_der).into(),
            ca_der,
            ca_spki,
            issuer: Arc::new(issued.issuer),
        })
    }

    /// The serving certificate (and the CA PEM clients pin).
    pub fn server_cert(&self) -> &ServerCert {
        &self.server
    }

    pub fn ca_pem(&self) -> &str {
        &self.server.ca_pem
    }

    pub fn ca_der(&self) -> CertificateDer<'_> {
        CertificateDer::from(self.ca_der.as_slice())
    }

    /// SHA-256 of the CA certificate's DER: what `user_data` (layout v1) binds.
    pub fn ca_sha256(&self) -> [u8; 32] {
        self.ca_sha256
    }

    /// The CA's SubjectPublicKeyInfo (DER): the attestation's `public_key`.
    pub fn ca_public_key(&self) -> &[u8] {
        &self.ca_spki
    }

    /// A serving certificate for another front door (the :6443 front) under the same CA: its
    /// clients pin the same attested CA.
    pub fn issue_server_cert(
        &self,
        common_name: &str,
        sans: &[String],
    ) -> Result<ServerCert, TlsError> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};
        let mut params = CertificateParams::new(sans.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, self.issuer.as_ref())?;
        let chain = vec![
            leaf.der().clone(),
            CertificateDer::from(self.ca_der.clone()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(ServerCert::in_memory(self.ca_pem().to_owned(), chain, key))
    }

    /// The in-memory issuer, for certificates of further front doors.
    pub fn issuer(&self) -> Arc<Issuer<'static, KeyPair>> {
        self.issuer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_is_new_and_its_hash_is_over_the_ca_der() {
        let a = EnclaveIdentity::generate(&["127.0.0.1".into()]).expect("identity");
        let b = EnclaveIdentity::generate(&["127.0.0.1".into()]).expect("identity");
        assert_ne!(a.ca_sha256(), b.ca_sha256(), "a restart makes a new CA");
        let der = CertificateDer::from_pem_slice(a.ca_pem().as_bytes()).expect("pem");
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&der)), a.ca_sha256());
        assert!(!a.ca_public_key().is_empty());
    }

    use rustls::pki_types::pem::PemObject;
}
