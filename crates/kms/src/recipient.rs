//! The KMS `Recipient`: an ephemeral RSA-2048 key and an attestation document carrying it.
//!
//! KMS encrypts what it releases to the `public_key` inside the attestation document, so only
//! the holder of the matching private key (this enclave, for this one request) can open the
//! reply. The key lives only in memory and is dropped (and wiped) after the reply is opened.

use base64ct::{Base64, Encoding};
use daas_attestation::{AttestationRequest, Attester, AttesterError};
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cms::{self, CmsError};

/// RSA modulus size KMS requires for a recipient key.
pub(crate) const RSA_BITS: usize = 2048;
/// Length of the DER SubjectPublicKeyInfo of an RSA-2048 key (exponent 65537).
pub const SPKI_LEN: usize = 294;
/// The only key encryption algorithm KMS accepts for a recipient.
pub const KEY_ENCRYPTION_ALGORITHM: &str = "RSAES_OAEP_SHA_256";

/// Why a recipient could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientError {
    /// RSA key generation failed.
    #[error("cannot generate the ephemeral RSA-2048 recipient key")]
    KeyGeneration(#[source] rsa::Error),
    /// The public key could not be encoded, or its encoding is not the 294-byte RSA-2048 SPKI.
    #[error("the recipient public key does not encode as a 294-byte RSA-2048 SubjectPublicKeyInfo")]
    Spki,
    /// The attester refused or failed.
    #[error("cannot obtain an attestation document for the KMS recipient key")]
    Attestation(#[source] AttesterError),
}

/// An ephemeral RSA-2048 key pair for one KMS request. `Debug` shows nothing secret; the
/// private key is wiped on drop (by `rsa`).
pub struct RecipientKey {
    key: RsaPrivateKey,
    spki: Vec<u8>,
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientKey").finish_non_exhaustive()
    }
}

impl RecipientKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Result<RecipientKey, RecipientError> {
        let key =
            RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(RecipientError::KeyGeneration)?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| RecipientError::Spki)?
            .into_vec();
        if spki.len() != SPKI_LEN {
            return Err(RecipientError::Spki);
        }
        Ok(RecipientKey { key, spki })
    }

    /// The public key as DER SubjectPublicKeyInfo (294 bytes): the document's `public_key`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// A `Recipient` for this key: a fresh attestation document from `attester` whose
    /// `public_key` is [`spki_der`](Self::spki_der) (no user data, no nonce).
    pub fn recipient(&self, attester: &dyn Attester) -> Result<Recipient, RecipientError> {
        let document = attester
            .attest(&AttestationRequest {
                user_data: None,
                nonce: None,
                public_key: Some(self.spki.clone()),
            })
            .map_err(RecipientError::Attestation)?;
        Ok(Recipient::from_document(document))
    }

    /// Opens a `CiphertextForRecipient` (BER CMS EnvelopedData) addressed to this key.
    pub fn open(&self, ciphertext_for_recipient: &[u8]) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        cms::open_enveloped_data(ciphertext_for_recipient, &self.key)
    }
}

/// The `Recipient` request parameter of KMS `Decrypt`:
/// `{"AttestationDocument": "<base64>", "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    document: Vec<u8>,
}

impl Recipient {
    /// A recipient naming an existing attestation document (whatever its `public_key`).
    pub fn from_document(document: Vec<u8>) -> Recipient {
        Recipient { document }
    }

    /// The attestation document.
    pub fn document(&self) -> &[u8] {
        &self.document
    }
}

impl Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "AttestationDocument")]
            attestation_document: String,
            #[serde(rename = "KeyEncryptionAlgorithm")]
            key_encryption_algorithm: &'a str,
        }
        Wire {
            attestation_document: Base64::encode_string(&self.document),
            key_encryption_algorithm: KEY_ENCRYPTION_ALGORITHM,
        }
        .serialize(serializer)
    }
}
