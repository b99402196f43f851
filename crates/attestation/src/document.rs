//! The decoded attestation document and [`parse`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cbor::{Head, Items, Reader};
use crate::cose;
use crate::limits::{MAX_CABUNDLE, MAX_CERT, MAX_NONCE, MAX_PCRS, MAX_PUBLIC_KEY, MAX_USER_DATA};
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
    let cose = cose::parse(bytes)?;
    parse_payload(cose.payload)
}

/// The payload map. Rules, each from fastcrypto's `AttestationDocument::parse_payload` /
/// `validate_document_map` unless marked *stricter*:
/// - a map, definite or indefinite length, with text keys and no duplicate key
///   (`duplicate keys found in attestation document`); nothing after it (*stricter*: ciborium
///   ignores trailing bytes); no key outside the nine NSM keys (*stricter*: ignored by Sui);
/// - `module_id`: non-empty text; `digest`: the text `SHA384`; `timestamp`: unsigned integer;
/// - `certificate`: 1..=1024 bytes; `cabundle`: 1..=10 byte strings of 1..=1024 bytes;
/// - `pcrs`: a map of at most 32 entries, keys unsigned without duplicates, values of 32, 48
///   or 64 bytes; keys above 31 are refused (*stricter*: Sui drops them);
/// - `public_key` ≤ 1024 bytes, `user_data` ≤ 512, `nonce` ≤ 512, each optional: absent or
///   `null` is `None` (*stricter*: Sui also reads any non-bytes value as `None`).
pub(crate) fn parse_payload(payload: &[u8]) -> Result<Document, AttestationError> {
    let mut r = Reader::new(payload, "payload");
    let len = match r.head()? {
        Head::Map(len) => len,
        _ => return Err(invalid("payload", "not a CBOR map")),
    };
    let mut fields = Fields::default();
    let mut items = Items::new(len);
    while items.next(&mut r) {
        let key = match r.head()? {
            Head::Text(n) => r.text_of(n)?,
            _ => return Err(invalid("payload", "map key is not a text string")),
        };
        let Some(index) = KEYS.iter().position(|k| *k == key) else {
            return Err(AttestationError::UnknownKey(key.to_owned()));
        };
        if fields.seen[index] {
            return Err(AttestationError::DuplicateKey(key.to_owned()));
        }
        fields.seen[index] = true;
        match KEYS[index] {
            "module_id" => {
                let v = text(&mut r, "module_id")?;
                if v.is_empty() {
                    return Err(invalid("module_id", "empty"));
                }
                fields.module_id = Some(v.to_owned());
            }
            "digest" => {
                if text(&mut r, "digest")? != "SHA384" {
                    return Err(invalid("digest", "not \"SHA384\""));
                }
                fields.digest = Some("SHA384".to_owned());
            }
            "timestamp" => match r.head()? {
                Head::Uint(v) => fields.timestamp = Some(v),
                _ => return Err(invalid("timestamp", "not an unsigned integer")),
            },
            "pcrs" => fields.pcrs = Some(pcrs(&mut r)?),
            "certificate" => {
                let v = bytes(&mut r, "certificate")?;
                size("certificate", v.len(), 1, MAX_CERT)?;
                fields.certificate = Some(v.to_vec());
            }
            "cabundle" => fields.cabundle = Some(cabundle(&mut r)?),
            "public_key" => fields.public_key = optional(&mut r, "public_key", MAX_PUBLIC_KEY)?,
            "user_data" => fields.user_data = optional(&mut r, "user_data", MAX_USER_DATA)?,
            _ => fields.nonce = optional(&mut r, "nonce", MAX_NONCE)?,
        }
    }
    r.finish()?;
    Ok(Document {
        module_id: fields
            .module_id
            .ok_or(AttestationError::MissingField("module_id"))?,
        digest: fields
            .digest
            .ok_or(AttestationError::MissingField("digest"))?,
        timestamp_ms: fields
            .timestamp
            .ok_or(AttestationError::MissingField("timestamp"))?,
        pcrs: fields.pcrs.ok_or(AttestationError::MissingField("pcrs"))?,
        certificate: fields
            .certificate
            .ok_or(AttestationError::MissingField("certificate"))?,
        cabundle: fields
            .cabundle
            .ok_or(AttestationError::MissingField("cabundle"))?,
        public_key: fields.public_key,
        user_data: fields.user_data,
        nonce: fields.nonce,
    })
}

/// The nine payload keys, in the order the NSM writes them.
pub(crate) const KEYS: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

#[derive(Default)]
struct Fields {
    seen: [bool; 9],
    module_id: Option<String>,
    digest: Option<String>,
    timestamp: Option<u64>,
    pcrs: Option<BTreeMap<u8, Vec<u8>>>,
    certificate: Option<Vec<u8>>,
    cabundle: Option<Vec<Vec<u8>>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

fn invalid(field: &'static str, reason: &'static str) -> AttestationError {
    AttestationError::InvalidField { field, reason }
}

fn size(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), AttestationError> {
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(AttestationError::FieldSize {
            field,
            len,
            min,
            max,
        })
    }
}

fn text<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a str, AttestationError> {
    match r.head()? {
        Head::Text(n) => r.text_of(n),
        _ => Err(invalid(field, "not a text string")),
    }
}

fn bytes<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a [u8], AttestationError> {
    match r.head()? {
        Head::Bytes(n) => r.bytes_of(n),
        _ => Err(invalid(field, "not a byte string")),
    }
}

fn optional(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<Option<Vec<u8>>, AttestationError> {
    match r.head()? {
        Head::Null => Ok(None),
        Head::Bytes(n) => {
            let v = r.bytes_of(n)?;
            size(field, v.len(), 0, max)?;
            Ok(Some(v.to_vec()))
        }
        _ => Err(invalid(field, "neither a byte string nor null")),
    }
}

fn pcrs(r: &mut Reader<'_>) -> Result<BTreeMap<u8, Vec<u8>>, AttestationError> {
    let len = match r.head()? {
        Head::Map(len) => len,
        _ => return Err(invalid("pcrs", "not a map")),
    };
    if let Some(n) = len {
        size(
            "pcrs",
            usize::try_from(n).unwrap_or(usize::MAX),
            0,
            MAX_PCRS,
        )?;
    }
    let mut out = BTreeMap::new();
    let mut items = Items::new(len);
    while items.next(r) {
        size("pcrs", out.len() + 1, 0, MAX_PCRS)?;
        let index = match r.head()? {
            Head::Uint(i) if i <= 31 => i as u8,
            Head::Uint(_) => return Err(invalid("pcrs", "PCR index above 31")),
            _ => return Err(invalid("pcrs", "PCR index is not an unsigned integer")),
        };
        let value = bytes(r, "pcrs")?;
        if !matches!(value.len(), 32 | 48 | 64) {
            return Err(invalid("pcrs", "PCR value is not 32, 48 or 64 bytes"));
        }
        if out.insert(index, value.to_vec()).is_some() {
            return Err(AttestationError::DuplicateKey(format!("pcrs[{index}]")));
        }
    }
    Ok(out)
}

fn cabundle(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, AttestationError> {
    let len = match r.head()? {
        Head::Array(len) => len,
        _ => return Err(invalid("cabundle", "not an array")),
    };
    if let Some(n) = len {
        size(
            "cabundle",
            usize::try_from(n).unwrap_or(usize::MAX),
            1,
            MAX_CABUNDLE,
        )?;
    }
    let mut out = Vec::new();
    let mut items = Items::new(len);
    while items.next(r) {
        size("cabundle", out.len() + 1, 1, MAX_CABUNDLE)?;
        let cert = bytes(r, "cabundle")?;
        size("cabundle entry", cert.len(), 1, MAX_CERT)?;
        out.push(cert.to_vec());
    }
    size("cabundle", out.len(), 1, MAX_CABUNDLE)?;
    Ok(out)
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
