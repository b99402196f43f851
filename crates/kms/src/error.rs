//! The error of KMS requests and key release. No variant carries key material, plaintext,
//! credentials or signature inputs: errors reach logs.

use std::path::PathBuf;
use std::time::Duration;

use daas_envelope::{KeyId, KeyRingError};

use crate::cms::CmsError;
use crate::credentials::CredentialsError;
use crate::recipient::RecipientError;

/// Why a KMS request or a key release failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The endpoint URL is not `https://host[:port][/]`.
    #[error("KMS endpoint {url:?}: {reason}")]
    BadEndpoint {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A request this client will not send (checked before anything goes out).
    #[error("invalid KMS request: {0}")]
    BadRequest(&'static str),
    /// The CA bundle could not be read.
    #[error("cannot read the CA bundle {}", path.display())]
    CaBundle {
        /// The PEM file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle holds no usable certificate.
    #[error("the CA bundle {} holds no usable CA certificate", path.display())]
    NoCaCertificates {
        /// The PEM file.
        path: PathBuf,
    },
    /// TLS configuration failed.
    #[error("TLS configuration for KMS: {0}")]
    TlsConfig(#[source] rustls::Error),
    /// The TCP connection failed.
    #[error("cannot connect to KMS at {addr} (for {host})")]
    Connect {
        /// The address dialled (the bridge forwarder inside the enclave).
        addr: String,
        /// The TLS host name.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    #[error("TLS handshake with KMS host {host} failed")]
    Tls {
        /// The host name verified.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// HTTP framing or connection failure.
    #[error("HTTP exchange with KMS failed")]
    Http(#[source] hyper::Error),
    /// The request did not finish in time.
    #[error("KMS request timed out after {0:?}")]
    Timeout(Duration),
    /// The reply body is larger than accepted.
    #[error("KMS reply larger than {max} bytes")]
    ResponseTooLarge {
        /// The limit.
        max: usize,
    },
    /// KMS answered with an error (`__type`, `message`).
    #[error("{}", refused_text(error_type, message, *status))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `__type` without its namespace, e.g. `AccessDeniedException`.
        error_type: String,
        /// KMS's `message`, shortened.
        message: String,
    },
    /// A reply that is not what KMS sends.
    #[error("unexpected KMS reply (HTTP {status}): {reason}")]
    BadResponse {
        /// The HTTP status.
        status: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// A reply carrying `Plaintext` although a Recipient was sent: KMS never does that, so the
    /// peer is not KMS (or the request was altered). Refused.
    #[error(
        "KMS reply carries Plaintext although an attested Recipient was sent; real KMS never \
         does this: refusing it"
    )]
    PlaintextWithRecipient,
    /// The reply names another KMS key than the one asked for.
    #[error("KMS reply names key {actual:?}, but {expected:?} was asked for")]
    WrongKmsKey {
        /// The key id asked for.
        expected: String,
        /// The key id in the reply.
        actual: String,
    },
    /// The recipient could not be prepared.
    #[error(transparent)]
    Recipient(#[from] RecipientError),
    /// `CiphertextForRecipient` could not be parsed or opened.
    #[error("cannot open KMS's CiphertextForRecipient")]
    Cms(#[from] CmsError),
    /// No credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The wrapped-keys file could not be read.
    #[error("cannot read the wrapped data keys file {}", path.display())]
    KeysFileIo {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The wrapped-keys file could not be written.
    #[error("cannot {action} the wrapped data keys file {}", path.display())]
    KeysFileWrite {
        /// What was being done: `create a temporary file for`, `write`, `replace`, ...
        action: &'static str,
        /// The file (or its directory).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The wrapped-keys file exists and overwriting was not asked for.
    #[error(
        "the wrapped data keys file {} exists; refusing to overwrite it (its keys would be lost)",
        path.display()
    )]
    KeysFileExists {
        /// The file.
        path: PathBuf,
    },
    /// The wrapped-keys file is not valid.
    #[error("wrapped data keys file: {0}")]
    KeysFile(String),
    /// The client is configured for another region than the keys file names.
    #[error("the KMS client is for region {client}, the keys file names {file}")]
    RegionMismatch {
        /// The client's region.
        client: String,
        /// The file's region.
        file: String,
    },
    /// A released data key is not 32 bytes.
    #[error("KMS released {len} bytes for data key {id}; a data key is 32 bytes")]
    DataKeyLength {
        /// The id the file gives.
        id: KeyId,
        /// What was released.
        len: usize,
    },
    /// A data key generated by KMS is not 32 bytes.
    #[error("KMS generated a {len}-byte data key; a data key is 32 bytes")]
    GeneratedKeyLength {
        /// What was generated.
        len: usize,
    },
    /// A released data key's id is not the id the file gives.
    #[error("KMS released a key with id {actual} for entry {expected}: wrong ciphertext_blob")]
    KeyIdMismatch {
        /// The id the file gives.
        expected: KeyId,
        /// The released key's id.
        actual: KeyId,
    },
    /// The released keys cannot form a ring.
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
}

/// The text of a KMS error; the common refusals get an explanation.
fn refused_text(error_type: &str, message: &str, status: u16) -> String {
    let hint = match error_type {
        "AccessDeniedException" => Some(
            "KMS refused: the key policy does not allow this enclave's attestation (check PCR \
             conditions)",
        ),
        "InvalidCiphertextException" => {
            Some("KMS refused: the ciphertext blob was not made by this KMS key (or is corrupt)")
        }
        "IncorrectKeyException" => Some("KMS refused: the ciphertext was made under another key"),
        "NotFoundException" => Some("KMS refused: the KMS key does not exist in this region"),
        "DisabledException" | "KMSInvalidStateException" => {
            Some("KMS refused: the KMS key is disabled or pending deletion")
        }
        "UnrecognizedClientException" | "InvalidSignatureException" => {
            Some("KMS refused the request signature or credentials")
        }
        _ => None,
    };
    match hint {
        Some(hint) => format!("{hint} ({error_type}, HTTP {status}: {message})"),
        None => format!("KMS error {error_type} (HTTP {status}): {message}"),
    }
}
