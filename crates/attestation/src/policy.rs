//! The fail-closed application policy applied after [`crate::verify`].
//!
//! Sui's native checks only the signature, the chain and certificate validity. Everything that
//! makes a document mean "our enclave, now, for this cluster" is here: expected PCR0/1/2, no
//! debug mode, freshness, the caller's nonce and the [`crate::binding`] in `user_data`.

use crate::binding::{Binding, BindingError};
use crate::{UnixMillis, Verified};

/// Length of a Nitro PCR (SHA-384).
pub const PCR_LEN: usize = 48;

/// Expected PCR0/1/2 (48 bytes each), e.g. read from the cluster on chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedPcrs {
    /// PCR0: the enclave image.
    #[serde(serialize_with = "hex")]
    pub pcr0: Vec<u8>,
    /// PCR1: kernel and bootstrap.
    #[serde(serialize_with = "hex")]
    pub pcr1: Vec<u8>,
    /// PCR2: the application.
    #[serde(serialize_with = "hex")]
    pub pcr2: Vec<u8>,
}

impl ExpectedPcrs {
    fn values(&self) -> [(u8, &[u8]); 3] {
        [(0, &self.pcr0), (1, &self.pcr1), (2, &self.pcr2)]
    }
}

/// Expected `user_data` binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedBinding {
    /// The cluster this enclave must serve.
    pub cluster_id: [u8; 32],
    /// If known, SHA-256 of the enclave CA certificate the client is about to pin.
    pub ca_sha256: Option<[u8; 32]>,
}

/// Fail-closed application policy applied after `verify`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Expected PCR0/1/2; all-zero or non-48-byte expected values are refused too.
    pub expected_pcrs: ExpectedPcrs,
    /// Accept debug-mode documents (PCR0/1/2 zero). `false` in production. When a debug
    /// document is accepted, its PCRs are not compared (they carry no measurement).
    pub allow_debug: bool,
    /// The caller's current time (or the Sui Clock value).
    pub now: UnixMillis,
    /// Oldest acceptable document, e.g. 300_000 as `enclave.move`.
    pub max_age_ms: u64,
    /// How far in the future a timestamp may be (clock skew), e.g. 60_000.
    pub max_future_skew_ms: u64,
    /// `Some`: the document must carry exactly this nonce.
    pub nonce: Option<Vec<u8>>,
    /// `Some`: `user_data` must be a v1 binding for this cluster (and CA).
    pub binding: Option<ExpectedBinding>,
}

/// Why a verified document is not acceptable.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy itself expects an all-zero (debug) PCR.
    #[error("expected PCR{index} is all zero (a debug measurement); refusing the policy")]
    ZeroExpectedPcr {
        /// Which PCR.
        index: u8,
    },
    /// The policy expects a PCR that is not 48 bytes.
    #[error("expected PCR{index} is {len} bytes, not 48")]
    ExpectedPcrLength {
        /// Which PCR.
        index: u8,
        /// Its length.
        len: usize,
    },
    /// A debug-mode document and `allow_debug` is false.
    #[error("document comes from a debug-mode enclave (PCR0/1/2 are zero)")]
    DebugDocument,
    /// PCR `index` differs from the expected value (or is absent).
    #[error("PCR{index} does not match the expected measurement")]
    PcrMismatch {
        /// Which PCR.
        index: u8,
    },
    /// Older than `max_age_ms`.
    #[error("document is {age_ms} ms old; at most {max_age_ms} ms allowed")]
    Stale {
        /// `now - timestamp`.
        age_ms: u64,
        /// The limit.
        max_age_ms: u64,
    },
    /// Timestamp further in the future than the allowed skew.
    #[error("document timestamp is {ahead_ms} ms in the future; at most {max_skew_ms} ms allowed")]
    FromFuture {
        /// `timestamp - now`.
        ahead_ms: u64,
        /// The limit.
        max_skew_ms: u64,
    },
    /// A nonce was required and the document has none.
    #[error("document carries no nonce; one was required")]
    MissingNonce,
    /// The document's nonce differs from the expected one.
    #[error("document nonce does not match the expected nonce")]
    NonceMismatch,
    /// A binding was required and `user_data` is absent.
    #[error("document carries no user_data binding")]
    BindingMissing,
    /// `user_data` is not a v1 binding.
    #[error("user_data is not a K3s-DaaS binding: {0}")]
    Binding(#[source] BindingError),
    /// The binding names another cluster or CA.
    #[error("binding {field} does not match")]
    BindingMismatch {
        /// `cluster_id` or `ca_sha256`.
        field: &'static str,
    },
}

impl PolicyError {
    /// A stable short name of the failed check, e.g. `policy.debug`.
    pub fn check(&self) -> &'static str {
        match self {
            PolicyError::ZeroExpectedPcr { .. } | PolicyError::ExpectedPcrLength { .. } => {
                "policy.expected_pcrs"
            }
            PolicyError::DebugDocument => "policy.debug",
            PolicyError::PcrMismatch { .. } => "policy.pcrs",
            PolicyError::Stale { .. } => "policy.stale",
            PolicyError::FromFuture { .. } => "policy.future",
            PolicyError::MissingNonce | PolicyError::NonceMismatch => "policy.nonce",
            PolicyError::BindingMissing
            | PolicyError::Binding(_)
            | PolicyError::BindingMismatch { .. } => "policy.binding",
        }
    }
}

/// Apply `policy` to a verified document. Returns the decoded binding when `policy.binding`
/// asked for one, `None` otherwise. Every check fails closed.
pub fn check(verified: &Verified, policy: &Policy) -> Result<Option<Binding>, PolicyError> {
    let doc = &verified.document;
    for (index, value) in policy.expected_pcrs.values() {
        if value.len() != PCR_LEN {
            return Err(PolicyError::ExpectedPcrLength {
                index,
                len: value.len(),
            });
        }
        if value.iter().all(|&b| b == 0) {
            return Err(PolicyError::ZeroExpectedPcr { index });
        }
    }
    if doc.is_debug() {
        if !policy.allow_debug {
            return Err(PolicyError::DebugDocument);
        }
    } else {
        for (index, value) in policy.expected_pcrs.values() {
            if doc.pcr(index) != Some(value) {
                return Err(PolicyError::PcrMismatch { index });
            }
        }
    }
    if doc.timestamp_ms > policy.now {
        let ahead_ms = doc.timestamp_ms - policy.now;
        if ahead_ms > policy.max_future_skew_ms {
            return Err(PolicyError::FromFuture {
                ahead_ms,
                max_skew_ms: policy.max_future_skew_ms,
            });
        }
    } else {
        let age_ms = policy.now - doc.timestamp_ms;
        if age_ms > policy.max_age_ms {
            return Err(PolicyError::Stale {
                age_ms,
                max_age_ms: policy.max_age_ms,
            });
        }
    }
    if let Some(expected) = &policy.nonce {
        let got = doc.nonce.as_deref().ok_or(PolicyError::MissingNonce)?;
        if !ct_eq(got, expected) {
            return Err(PolicyError::NonceMismatch);
        }
    }
    let Some(expected) = &policy.binding else {
        return Ok(None);
    };
    let user_data = doc
        .user_data
        .as_deref()
        .ok_or(PolicyError::BindingMissing)?;
    let binding = Binding::decode(user_data).map_err(PolicyError::Binding)?;
    if !ct_eq(&binding.cluster_id, &expected.cluster_id) {
        return Err(PolicyError::BindingMismatch {
            field: "cluster_id",
        });
    }
    if let Some(ca) = &expected.ca_sha256
        && !ct_eq(&binding.ca_sha256, ca)
    {
        return Err(PolicyError::BindingMismatch { field: "ca_sha256" });
    }
    Ok(Some(binding))
}

/// Equality whose time does not depend on where the inputs differ (lengths are public).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}
