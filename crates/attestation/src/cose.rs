//! The COSE_Sign1 envelope (RFC 9052 §4.2) as the NSM emits it, and its Sig_structure.
//!
//! Rules (fastcrypto `CoseSign1::parse_and_validate` / `validate_header`, tightened where
//! noted; see docs/tee.md):
//! - untagged or tag 18; any other tag is refused (fastcrypto: `invalid tag`);
//! - exactly four items `[protected, unprotected, payload, signature]`;
//! - `protected` is exactly the bytes `a1 01 38 22` (`{1: -35}`, ES384). fastcrypto decodes it
//!   and requires the single pair `1: -35`; we also require the minimal encoding and no
//!   trailing bytes, which is what every NSM sends;
//! - `unprotected` is an empty map (fastcrypto accepts any map without duplicate keys);
//! - `payload` is 1..=16383 bytes (fastcrypto `(1..16384).contains(len)`);
//! - `signature` is 96 bytes (fastcrypto `signature.len() == 96`);
//! - nothing follows the array (fastcrypto's `ciborium::from_reader` ignores trailing bytes).

use crate::AttestationError;
use crate::cbor::{Head, Items, Reader, Writer};
use crate::limits::{MAX_PAYLOAD, SIGNATURE_LEN};

/// The protected header every Nitro document carries: the map `{1: -35}` (alg ES384).
pub(crate) const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];
/// COSE tag for COSE_Sign1.
const TAG_COSE_SIGN1: u64 = 18;

/// The parts of a COSE_Sign1 that matter, borrowed from the input.
pub(crate) struct CoseSign1<'a> {
    /// The protected header bytes as received (they are signed as such).
    pub(crate) protected: &'a [u8],
    /// The payload (the attestation document map).
    pub(crate) payload: &'a [u8],
    /// r‖s.
    pub(crate) signature: &'a [u8],
}

/// Parse the envelope with the rules above.
pub(crate) fn parse(bytes: &[u8]) -> Result<CoseSign1<'_>, AttestationError> {
    let mut r = Reader::new(bytes, "document");
    let mut head = r.head()?;
    if let Head::Tag(tag) = head {
        if tag != TAG_COSE_SIGN1 {
            return Err(AttestationError::UnsupportedTag(tag));
        }
        head = r.head()?;
    }
    let len = match head {
        Head::Array(len) => len,
        Head::Tag(tag) => return Err(AttestationError::UnsupportedTag(tag)),
        _ => return Err(AttestationError::Envelope("not a CBOR array")),
    };
    if len.is_some_and(|n| n != 4) {
        return Err(AttestationError::Envelope("array does not have 4 items"));
    }
    let mut items = Items::new(len);
    let mut next = |r: &mut Reader<'_>| {
        if items.next(r) {
            Ok(())
        } else {
            Err(AttestationError::Envelope("array has fewer than 4 items"))
        }
    };

    next(&mut r)?;
    let protected = match r.head()? {
        Head::Bytes(n) => r.bytes_of(n)?,
        _ => {
            return Err(AttestationError::Envelope(
                "protected header is not a byte string",
            ));
        }
    };
    if protected != PROTECTED_ES384 {
        return Err(AttestationError::ProtectedHeader);
    }

    next(&mut r)?;
    match r.head()? {
        Head::Map(Some(0)) => {}
        Head::Map(None) if r.at_break() => {}
        _ => return Err(AttestationError::UnprotectedHeader),
    }

    next(&mut r)?;
    let payload = match r.head()? {
        Head::Bytes(n) => r.bytes_of(n)?,
        _ => return Err(AttestationError::Envelope("payload is not a byte string")),
    };
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return Err(AttestationError::PayloadSize(payload.len()));
    }

    next(&mut r)?;
    let signature = match r.head()? {
        Head::Bytes(n) => r.bytes_of(n)?,
        _ => return Err(AttestationError::Envelope("signature is not a byte string")),
    };
    if signature.len() != SIGNATURE_LEN {
        return Err(AttestationError::SignatureLength(signature.len()));
    }

    if len.is_none() && !r.at_break() {
        return Err(AttestationError::Envelope("array has more than 4 items"));
    }
    r.finish()?;
    Ok(CoseSign1 {
        protected,
        payload,
        signature,
    })
}

/// The bytes the signature covers: `["Signature1", protected, h'', payload]` (RFC 9052 §4.4),
/// encoded with minimal lengths as fastcrypto's `to_signed_message` (ciborium) does.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(protected.len() + payload.len() + 24);
    w.array(4);
    w.text("Signature1");
    w.bytes(protected);
    w.bytes(&[]);
    w.bytes(payload);
    w.into_vec()
}

/// An untagged COSE_Sign1 as the NSM emits it.
pub(crate) fn encode(payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(payload.len() + signature.len() + 16);
    w.array(4);
    w.bytes(&PROTECTED_ES384);
    w.map(0);
    w.bytes(payload);
    w.bytes(signature);
    w.into_vec()
}
