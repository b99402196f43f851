//! One error enum per stage, each variant naming the failure. No variant carries token bytes,
//! key material or signatures: these errors end up in logs and audit records.

use thiserror::Error;

/// Why [`crate::SealToken::parse`] refused a string. Nothing here has been checked
/// cryptographically yet.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    #[error("token is {len} bytes; the maximum is {max}")]
    TooLong { len: usize, max: usize },
    #[error("token does not start with the `k3sdaas.` prefix")]
    WrongPrefix,
    #[error("token must have exactly three `.`-separated segments")]
    WrongSegmentCount,
    #[error("token {segment} segment is not canonical unpadded base64url")]
    BadBase64 { segment: &'static str },
    #[error("token payload does not start with the k3sdaas magic bytes")]
    BadMagic,
    #[error("unsupported token payload version {0}")]
    UnsupportedVersion(u8),
    #[error("token payload is not valid BCS for version 1")]
    MalformedPayload,
    #[error("token names unknown role code {0}")]
    UnknownRole(u8),
    #[error("token node name is not a DNS label")]
    InvalidNodeName,
    #[error("token signature is not a Sui signature encoding")]
    MalformedSignature,
    #[error("token signature scheme {0} is not supported (ed25519, secp256k1, secp256r1 only)")]
    UnsupportedScheme(&'static str),
}

/// Why a well-formed token's signature was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("token signature does not verify over the payload")]
    BadSignature,
    #[error("token was signed by a key whose address is not the payload's signer")]
    SignerMismatch,
    #[error("token signature is not in canonical low-s form")]
    NonCanonical,
}

/// Why the claims of a token were refused, or could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsError {
    #[error("token is for another cluster")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (issued in the future)")]
    NotYetValid,
    #[error("token lifetime {lifetime_ms} ms exceeds the maximum {max_ms} ms")]
    LifetimeTooLong { lifetime_ms: u64, max_ms: u64 },
    #[error("token expires before or when it is issued")]
    EmptyLifetime,
    #[error("worker tokens must carry a node name")]
    MissingNodeName,
    #[error("only worker tokens carry a node name")]
    UnexpectedNodeName,
    #[error("node name must be a DNS label: 1-63 of [a-z0-9-], alphanumeric at both ends")]
    InvalidNodeName,
    #[error("claims need a nonce")]
    MissingNonce,
    #[error("unknown role {0:?} (expected worker, user or admin)")]
    UnknownRoleName(String),
}

/// Why [`crate::mint`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MintError {
    #[error("the signing key's address is not the claims' signer")]
    SignerMismatch,
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    #[error("signing failed")]
    Sign(#[source] sui_crypto::SignatureError),
    #[error("token payload could not be encoded")]
    Encode(#[source] bcs::Error),
}
