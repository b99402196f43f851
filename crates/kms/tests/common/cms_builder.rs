//! Test-only BER/CMS encoder: builds EnvelopedData the way KMS does (indefinite lengths,
//! KeyTransRecipientInfo v2 with a subjectKeyIdentifier, RSAES-OAEP-SHA256, AES-256-CBC with
//! the IV in the parameters and the ciphertext in constructed OCTET STRING chunks), plus knobs
//! to produce each malformed variant the parser must refuse.
//!
//! Shared by several test binaries, each using a part of it.
#![allow(dead_code)]

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use rand_core::{OsRng, RngCore};
use rsa::{Oaep, RsaPublicKey};
use sha2::Sha256;

pub(crate) const OID_ENVELOPED_DATA: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
pub(crate) const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
pub(crate) const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
pub(crate) const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
pub(crate) const OID_P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
pub(crate) const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
pub(crate) const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
pub(crate) const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
pub(crate) const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];

/// A definite-length element (DER length encoding).
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len < 0x10000 {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    } else {
        out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed element with indefinite length.
pub(crate) fn indef(tag: u8, children: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for c in children {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// A constructed element, indefinite or definite.
pub(crate) fn cons(tag: u8, children: &[Vec<u8>], indefinite: bool) -> Vec<u8> {
    if indefinite {
        indef(tag, children)
    } else {
        tlv(tag, &children.concat())
    }
}

pub(crate) fn oid(bytes: &[u8]) -> Vec<u8> {
    tlv(0x06, bytes)
}

pub(crate) fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

pub(crate) fn alg(oid_bytes: &[u8], params: Option<Vec<u8>>) -> Vec<u8> {
    let mut children = vec![oid(oid_bytes)];
    children.extend(params);
    tlv(0x30, &children.concat())
}

/// RSAES-OAEP AlgorithmIdentifier variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Oaep256 {
    /// hash SHA-256 (NULL params), MGF1-SHA-256: what KMS-like producers send.
    Good,
    /// As Good, with parameters absent from the hash identifiers and an empty pSpecified.
    GoodNoNullWithLabel,
    /// No RSAES-OAEP-params at all (defaults to SHA-1).
    NoParams,
    /// hashAlgorithm SHA-1.
    Sha1Hash,
    /// MGF1 with SHA-1.
    Sha1Mgf,
    /// hashAlgorithm missing (default SHA-1).
    NoHash,
    /// A non-empty OAEP label.
    Label,
    /// PKCS#1 v1.5 rsaEncryption instead of OAEP.
    RsaV15,
}

pub(crate) fn oaep_alg(kind: Oaep256) -> Vec<u8> {
    let sha256 = alg(OID_SHA256, Some(null()));
    let hash = |a: Vec<u8>| tlv(0xa0, &a);
    let mgf = |h: Vec<u8>| tlv(0xa1, &alg(OID_MGF1, Some(h)));
    let p_source = |label: &[u8]| tlv(0xa2, &alg(OID_P_SPECIFIED, Some(tlv(0x04, label))));
    let params = |parts: Vec<Vec<u8>>| Some(tlv(0x30, &parts.concat()));
    match kind {
        Oaep256::Good => alg(
            OID_RSAES_OAEP,
            params(vec![hash(sha256.clone()), mgf(sha256)]),
        ),
        Oaep256::GoodNoNullWithLabel => alg(
            OID_RSAES_OAEP,
            params(vec![
                hash(alg(OID_SHA256, None)),
                mgf(alg(OID_SHA256, None)),
                p_source(b""),
            ]),
        ),
        Oaep256::NoParams => alg(OID_RSAES_OAEP, None),
        Oaep256::Sha1Hash => alg(
            OID_RSAES_OAEP,
            params(vec![hash(alg(OID_SHA1, Some(null()))), mgf(sha256)]),
        ),
        Oaep256::Sha1Mgf => alg(
            OID_RSAES_OAEP,
            params(vec![hash(sha256), mgf(alg(OID_SHA1, Some(null())))]),
        ),
        Oaep256::NoHash => alg(OID_RSAES_OAEP, params(vec![mgf(sha256)])),
        Oaep256::Label => alg(
            OID_RSAES_OAEP,
            params(vec![hash(sha256.clone()), mgf(sha256), p_source(b"x")]),
        ),
        Oaep256::RsaV15 => alg(OID_RSA_ENCRYPTION, Some(null())),
    }
}

/// How to build the envelope.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) indefinite: bool,
    pub(crate) content_type: &'static [u8],
    pub(crate) oaep: Oaep256,
    pub(crate) recipients: usize,
    pub(crate) content_alg: &'static [u8],
    pub(crate) iv_len: usize,
    pub(crate) content_key_len: usize,
    /// Ciphertext split into this many OCTET STRING chunks (0: primitive [0]).
    pub(crate) chunks: usize,
    /// Replace the PKCS#7 padding by this last byte (bad padding).
    pub(crate) bad_pad_byte: Option<u8>,
    /// Drop this many bytes from the end of the ciphertext (not a whole block).
    pub(crate) cut_ciphertext: usize,
    /// Leave the encryptedContent out.
    pub(crate) no_content: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            indefinite: true,
            content_type: OID_ENVELOPED_DATA,
            oaep: Oaep256::Good,
            recipients: 1,
            content_alg: OID_AES256_CBC,
            iv_len: 16,
            content_key_len: 32,
            chunks: 3,
            bad_pad_byte: None,
            cut_ciphertext: 0,
            no_content: false,
        }
    }
}

/// `plaintext` enveloped for `to` as described by `shape`.
pub(crate) fn envelop(plaintext: &[u8], to: &RsaPublicKey, shape: &Shape) -> Vec<u8> {
    let mut content_key = vec![0u8; shape.content_key_len];
    OsRng.fill_bytes(&mut content_key);
    let mut iv = vec![0u8; shape.iv_len];
    OsRng.fill_bytes(&mut iv);

    // PKCS#7 pad, then encrypt without padding so bad padding can be produced on purpose.
    let n = 16 - plaintext.len() % 16;
    let mut buf = plaintext.to_vec();
    buf.extend(std::iter::repeat_n(n as u8, n));
    if let Some(b) = shape.bad_pad_byte {
        let last = buf.len() - 1;
        buf[last] = b;
    }
    let mut aes_key = [0u8; 32];
    let k = content_key.len().min(32);
    aes_key[..k].copy_from_slice(&content_key[..k]);
    let mut aes_iv = [0u8; 16];
    let i = iv.len().min(16);
    aes_iv[..i].copy_from_slice(&iv[..i]);
    let len = buf.len();
    cbc::Encryptor::<Aes256>::new(&aes_key.into(), &aes_iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .expect("whole blocks");
    buf.truncate(buf.len() - shape.cut_ciphertext);

    let encrypted_key = to
        .encrypt(&mut OsRng, Oaep::new::<Sha256>(), &content_key)
        .expect("OAEP encrypt");
    let ktri = tlv(
        0x30,
        &[
            tlv(0x02, &[2]),
            tlv(0x80, &[0x11; 20]), // [0] IMPLICIT subjectKeyIdentifier
            oaep_alg(shape.oaep),
            tlv(0x04, &encrypted_key),
        ]
        .concat(),
    );
    let recipients = tlv(0x31, &vec![ktri; shape.recipients].concat());

    let content = if shape.chunks == 0 {
        tlv(0x80, &buf)
    } else {
        let size = buf.len().div_ceil(shape.chunks).max(1);
        let parts: Vec<Vec<u8>> = buf.chunks(size).map(|c| tlv(0x04, c)).collect();
        cons(0xa0, &parts, shape.indefinite)
    };
    let mut eci = vec![oid(OID_DATA), alg(shape.content_alg, Some(tlv(0x04, &iv)))];
    if !shape.no_content {
        eci.push(content);
    }
    let eci = cons(0x30, &eci, shape.indefinite);
    let enveloped = cons(0x30, &[tlv(0x02, &[2]), recipients, eci], shape.indefinite);
    cons(
        0x30,
        &[
            oid(shape.content_type),
            cons(0xa0, &[enveloped], shape.indefinite),
        ],
        shape.indefinite,
    )
}
