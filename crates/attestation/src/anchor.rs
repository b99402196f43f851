//! Pinned roots of trust. The root shipped inside a document's `cabundle` is never trusted:
//! `cabundle[0]` must be issued by (and is usually identical to) a [`TrustAnchor`].

use p384::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{AttestationError, RootKind};

/// The AWS Nitro Enclaves Root-G1 certificate, as AWS publishes it in
/// `AWS_NitroEnclaves_Root-G1.zip` (`root.pem`) and Sui embeds it
/// (`crates/sui-types/src/nitro_root_certificate.pem`).
const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("aws_nitro_root_g1.pem");

/// SHA-256 of the DER of the AWS Nitro Enclaves Root-G1 certificate (its fingerprint):
/// `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// A pinned root certificate (never the one shipped inside `cabundle`).
///
/// Holds the DER, its SHA-256 fingerprint, the subject name (raw DER) and the P-384 key, all
/// checked when the anchor is built.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    der: Vec<u8>,
    kind: RootKind,
    fingerprint: [u8; 32],
    subject: Vec<u8>,
    key: VerifyingKey,
}

impl TrustAnchor {
    /// The AWS Nitro Enclaves Root-G1, embedded in this crate (fingerprint
    /// [`AWS_NITRO_ROOT_G1_SHA256`], checked by a test).
    pub fn aws_nitro_root_g1() -> TrustAnchor {
        // The embedded PEM is a compile-time constant checked by the `aws_root_fingerprint` test.
        #[allow(clippy::expect_used)]
        TrustAnchor::from_pem(AWS_NITRO_ROOT_G1_PEM, RootKind::Aws)
            .expect("the embedded AWS Nitro Root-G1 PEM is a valid P-384 certificate")
    }

    /// A root from a PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &str, kind: RootKind) -> Result<TrustAnchor, AttestationError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| AttestationError::Anchor(format!("not a PEM certificate: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(AttestationError::Anchor(format!(
                "PEM label is {:?}, expected CERTIFICATE",
                block.label
            )));
        }
        TrustAnchor::from_der(block.contents, kind)
    }

    /// A root from its DER encoding. It must be an X.509 certificate with a P-384 key and no
    /// trailing bytes.
    pub fn from_der(der: Vec<u8>, kind: RootKind) -> Result<TrustAnchor, AttestationError> {
        let (rest, cert) = X509Certificate::from_der(&der)
            .map_err(|e| AttestationError::Anchor(format!("not an X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(AttestationError::Anchor(format!(
                "{} trailing byte(s) after the certificate",
                rest.len()
            )));
        }
        let key = VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
            .map_err(|_| AttestationError::Anchor("key is not a P-384 public key".into()))?;
        let subject = cert.subject().as_raw().to_vec();
        let fingerprint: [u8; 32] = Sha256::digest(&der).into();
        Ok(TrustAnchor {
            der,
            kind,
            fingerprint,
            subject,
            key,
        })
    }

    /// AWS or dev.
    pub fn kind(&self) -> RootKind {
        self.kind
    }

    /// SHA-256 of the DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The raw DER of the subject name.
    pub(crate) fn subject(&self) -> &[u8] {
        &self.subject
    }

    /// The P-384 key certificates issued by this root must verify under.
    pub(crate) fn key(&self) -> &VerifyingKey {
        &self.key
    }
}
