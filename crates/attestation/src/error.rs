//! The one error type of `parse` and `verify`; each variant names the check that failed.

use crate::time_fmt::rfc3339;

/// A certificate's place in the document, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The leaf (`certificate` field).
    Leaf,
    /// `cabundle[i]` (0 is the bundled copy of the root).
    Bundle(usize),
}

impl std::fmt::Display for CertName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertName::Leaf => f.write_str("leaf certificate"),
            CertName::Bundle(i) => write!(f, "cabundle[{i}]"),
        }
    }
}

/// Why a document failed [`crate::parse`] or [`crate::verify`].
///
/// [`AttestationError::sui_abort_code`] gives the abort code Sui raises for the same document;
/// [`AttestationError::check`] a stable short name of the failed check (CLI output, tests).
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum AttestationError {
    /// Not well-formed CBOR, or a CBOR item of an unsupported kind where one was expected.
    #[error("malformed CBOR in {context} at byte {offset}: {reason}")]
    Cbor {
        /// Which structure was being read.
        context: &'static str,
        /// Byte offset inside that structure.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Bytes after the COSE array or after the payload map.
    #[error("{context}: {len} trailing byte(s) after the CBOR item")]
    TrailingBytes {
        /// `"document"` or `"payload"`.
        context: &'static str,
        /// How many bytes follow.
        len: usize,
    },
    /// A CBOR tag other than 18 (COSE_Sign1) on the envelope.
    #[error("COSE_Sign1 carries tag {0}; only untagged or tag 18 is accepted")]
    UnsupportedTag(u64),
    /// The envelope is not `[bstr, {}, bstr, bstr]`.
    #[error("COSE_Sign1 envelope: {0}")]
    Envelope(&'static str),
    /// The protected header is not the bstr of exactly `{1: -35}` (`a1 01 38 22`).
    #[error("protected header is not exactly {{1: -35}} (ES384)")]
    ProtectedHeader,
    /// The unprotected header is not an empty map.
    #[error("unprotected header is not an empty map")]
    UnprotectedHeader,
    /// Payload length outside 1..=16383.
    #[error("payload is {0} bytes; it must be 1..=16383")]
    PayloadSize(usize),
    /// Signature length other than 96.
    #[error("signature is {0} bytes; it must be 96 (P-384 r||s)")]
    SignatureLength(usize),
    /// A payload key appears twice.
    #[error("payload: duplicate key {0:?}")]
    DuplicateKey(String),
    /// A payload key that is not one of the nine NSM keys.
    #[error("payload: unknown key {0:?}")]
    UnknownKey(String),
    /// A required payload field is absent.
    #[error("payload: missing field {0}")]
    MissingField(&'static str),
    /// A payload field has the wrong type or value.
    #[error("payload: invalid {field}: {reason}")]
    InvalidField {
        /// The payload key (`pcrs`, `digest`, ...).
        field: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A payload field or collection exceeds its limit.
    #[error("payload: {field} has length {len}, allowed {min}..={max}")]
    FieldSize {
        /// The payload key.
        field: &'static str,
        /// Its length (bytes, or entries for collections).
        len: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The 96 signature bytes are not a valid P-384 (r, s) pair (zero or ≥ n).
    #[error("COSE signature is not a valid P-384 (r, s) pair")]
    SignatureEncoding,
    /// The leaf certificate's key is not a P-384 public key.
    #[error("leaf certificate key is not a P-384 public key")]
    LeafKey,
    /// The COSE ES384 signature does not verify with the leaf key.
    #[error("COSE ES384 signature does not verify with the leaf certificate's key")]
    BadSignature,
    /// A certificate does not parse as X.509 DER.
    #[error("{cert}: not a valid X.509 certificate: {reason}")]
    Certificate {
        /// Which certificate.
        cert: CertName,
        /// Parser message.
        reason: String,
    },
    /// A certificate is not signed with ecdsa-with-SHA384 (the only algorithm Nitro uses).
    #[error("{cert}: signature algorithm is not ecdsa-with-SHA384")]
    CertificateAlgorithm {
        /// Which certificate.
        cert: CertName,
    },
    /// KeyUsage missing or lacking the required bit.
    #[error("{cert}: key usage: {reason}")]
    KeyUsage {
        /// Which certificate.
        cert: CertName,
        /// What was wrong.
        reason: &'static str,
    },
    /// BasicConstraints missing, not critical, wrong CA flag, or pathLen exceeded.
    #[error("{cert}: basic constraints: {reason}")]
    BasicConstraints {
        /// Which certificate.
        cert: CertName,
        /// What was wrong.
        reason: &'static str,
    },
    /// `at` is before a certificate's notBefore.
    #[error("{cert} is not valid before {} (checked at {})", rfc3339(*.not_before), rfc3339(*.at))]
    NotYetValid {
        /// Which certificate.
        cert: CertName,
        /// notBefore, Unix seconds.
        not_before: i64,
        /// The verification time, Unix seconds.
        at: i64,
    },
    /// `at` is after a certificate's notAfter.
    #[error("{cert} expired at {} (checked at {})", rfc3339(*.not_after), rfc3339(*.at))]
    Expired {
        /// Which certificate.
        cert: CertName,
        /// notAfter, Unix seconds.
        not_after: i64,
        /// The verification time, Unix seconds.
        at: i64,
    },
    /// A certificate's issuer is not the subject of the next certificate up the chain.
    #[error("{cert}: issuer does not match the subject of {issuer}")]
    IssuerMismatch {
        /// Which certificate.
        cert: CertName,
        /// The certificate that should have issued it.
        issuer: CertName,
    },
    /// A certificate's signature does not verify with its issuer's key.
    #[error("{cert}: signature does not verify with the key of {issuer}")]
    CertificateSignature {
        /// Which certificate.
        cert: CertName,
        /// The certificate whose key was used.
        issuer: CertName,
    },
    /// `cabundle[0]` is not issued by any pinned trust anchor.
    #[error("cabundle[0] is not signed by any of the {anchors} pinned trust anchor(s)")]
    UntrustedRoot {
        /// How many anchors were tried.
        anchors: usize,
    },
    /// One of the PCRs Sui requires (0, 1, 2, 3, 4, 8) is absent.
    #[error("required PCR{0} is absent")]
    MissingPcr(u8),
    /// A trust anchor that cannot be used (not a P-384 X.509 certificate).
    #[error("trust anchor: {0}")]
    Anchor(String),
}

impl AttestationError {
    /// The abort code Sui's `0x2::nitro_attestation::load_nitro_attestation` raises for this
    /// failure: 1 parse, 2 verify (signature/chain/validity), 3 invalid PCRs.
    ///
    /// Sui parses (`parse_nitro_attestation`, abort 1) before it verifies
    /// (`verify_nitro_attestation`, abort 2); certificate DER is only decoded while verifying,
    /// so a malformed certificate is a 2, as here. Abort 3 is raised when the required PCRs
    /// (0, 1, 2, 3, 4, 8) cannot be returned. Failures this crate adds on top of Sui (trailing
    /// bytes, unknown keys, ...) map to the code of the stage they belong to.
    pub fn sui_abort_code(&self) -> u64 {
        use AttestationError::*;
        match self {
            Cbor { .. }
            | TrailingBytes { .. }
            | UnsupportedTag(_)
            | Envelope(_)
            | ProtectedHeader
            | UnprotectedHeader
            | PayloadSize(_)
            | SignatureLength(_)
            | DuplicateKey(_)
            | UnknownKey(_)
            | MissingField(_)
            | InvalidField { .. }
            | FieldSize { .. } => 1,
            SignatureEncoding
            | LeafKey
            | BadSignature
            | Certificate { .. }
            | CertificateAlgorithm { .. }
            | KeyUsage { .. }
            | BasicConstraints { .. }
            | NotYetValid { .. }
            | Expired { .. }
            | IssuerMismatch { .. }
            | CertificateSignature { .. }
            | UntrustedRoot { .. }
            | Anchor(_) => 2,
            MissingPcr(_) => 3,
        }
    }

    /// A stable short name of the failed check, e.g. `cose.signature` or `chain.expired`.
    pub fn check(&self) -> &'static str {
        use AttestationError::*;
        match self {
            Cbor { .. } => "cbor",
            TrailingBytes { .. } => "cbor.trailing_bytes",
            UnsupportedTag(_) => "cose.tag",
            Envelope(_) => "cose.envelope",
            ProtectedHeader => "cose.protected_header",
            UnprotectedHeader => "cose.unprotected_header",
            PayloadSize(_) => "cose.payload_size",
            SignatureLength(_) => "cose.signature_length",
            DuplicateKey(_) => "payload.duplicate_key",
            UnknownKey(_) => "payload.unknown_key",
            MissingField(_) => "payload.missing_field",
            InvalidField { .. } => "payload.invalid_field",
            FieldSize { .. } => "payload.field_size",
            SignatureEncoding => "cose.signature_encoding",
            LeafKey => "cose.leaf_key",
            BadSignature => "cose.signature",
            Certificate { .. } => "chain.certificate",
            CertificateAlgorithm { .. } => "chain.algorithm",
            KeyUsage { .. } => "chain.key_usage",
            BasicConstraints { .. } => "chain.basic_constraints",
            NotYetValid { .. } => "chain.not_yet_valid",
            Expired { .. } => "chain.expired",
            IssuerMismatch { .. } => "chain.issuer_mismatch",
            CertificateSignature { .. } => "chain.signature",
            UntrustedRoot { .. } => "chain.untrusted_root",
            MissingPcr(_) => "pcrs.required",
            Anchor(_) => "anchor",
        }
    }
}
