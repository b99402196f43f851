//! The decoded attestation document and [`parse`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{AttestationError, UnixMillis};

/// The decoded payload of an attestation document. Bytes serialise as lowercase hex in JSON;
/// `pcrs` as an object keyed by the decimal index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Document {
    /// `i-<instance>-enc<enclave>` on AWS; `dev-…` for dev documents.
    pub module_id: String,
    /// Always `"SHA384"`.
    pub digest: String,
    /// When the NSM produced the document, ms since the Unix epoch.
    pub timestamp_ms: UnixMillis,
    /// PCR index → value (32, 48 or 64 bytes; 48 on Nitro), as present in the document.
    #[serde(serialize_with = "hex_map")]
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The leaf certificate (DER).
    #[serde(serialize_with = "hex_bytes")]
    pub certificate: Vec<u8>,
    /// `[root, intermediates…]` (DER), root first.
    #[serde(serialize_with = "hex_list")]
    pub cabundle: Vec<Vec<u8>>,
    /// Optional `public_key` (any bytes, ≤ 1024).
    #[serde(serialize_with = "hex_opt")]
    pub public_key: Option<Vec<u8>>,
    /// Optional `user_data` (≤ 512).
    #[serde(serialize_with = "hex_opt")]
    pub user_data: Option<Vec<u8>>,
    /// Optional `nonce` (≤ 512).
    #[serde(serialize_with = "hex_opt")]
    pub nonce: Option<Vec<u8>>,
}

impl Document {
    /// The value of PCR `index`, if present.
    pub fn pcr(&self, index: u8) -> Option<&[u8]> {
        self.pcrs.get(&index).map(Vec::as_slice)
    }

    /// A debug-mode enclave: PCR0, PCR1 and PCR2 all zero (or absent). AWS zeroes the image
    /// PCRs of enclaves started with `--debug-mode` (PCR3/PCR4 stay populated).
    pub fn is_debug(&self) -> bool {
        (0..=2).all(|i| self.pcr(i).is_none_or(|v| v.iter().all(|&b| b == 0)))
    }
}

/// Structure and field rules only (no signature/chain): fastcrypto's parse rules.
///
/// Every failure here is one Sui reports as a parse error (abort 1), see
/// [`AttestationError::sui_abort_code`].
pub fn parse(bytes: &[u8]) -> Result<Document, AttestationError> {
    let _ = bytes;
    Err(AttestationError::Unimplemented("parse"))
}

fn hex_bytes<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

fn hex_opt<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&hex::encode(v)),
        None => s.serialize_none(),
    }
}

fn hex_list<S: serde::Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(hex::encode))
}

fn hex_map<S: serde::Serializer>(v: &BTreeMap<u8, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, v)| (k.to_string(), hex::encode(v))))
}
