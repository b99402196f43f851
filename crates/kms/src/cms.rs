//! CMS (RFC 5652) EnvelopedData as KMS returns it in `CiphertextForRecipient`, and opening it.
//!
//! Accepted shape (BER, definite or indefinite lengths; anything else is refused):
//!
//! ```text
//! ContentInfo ::= SEQUENCE {
//!   contentType   OID envelopedData (1.2.840.113549.1.7.3),
//!   content       [0] EXPLICIT EnvelopedData }
//! EnvelopedData ::= SEQUENCE {
//!   version                INTEGER (0 | 2),
//!   originatorInfo         [0] IMPLICIT ... OPTIONAL,   -- skipped
//!   recipientInfos         SET SIZE (1) OF KeyTransRecipientInfo,
//!   encryptedContentInfo   EncryptedContentInfo,
//!   unprotectedAttrs       [1] IMPLICIT ... OPTIONAL }  -- skipped
//! KeyTransRecipientInfo ::= SEQUENCE {
//!   version                INTEGER (0 with issuerAndSerialNumber | 2 with [0] subjectKeyIdentifier),
//!   rid                    RecipientIdentifier,          -- not interpreted
//!   keyEncryptionAlgorithm SEQUENCE { OID rsaesOaep (1.2.840.113549.1.1.7), RSAES-OAEP-params },
//!   encryptedKey           OCTET STRING }
//! RSAES-OAEP-params ::= SEQUENCE {
//!   hashAlgorithm      [0] EXPLICIT SEQUENCE { OID sha256, NULL? },            -- required
//!   maskGenAlgorithm   [1] EXPLICIT SEQUENCE { OID mgf1, SEQUENCE { OID sha256, NULL? } },
//!   pSourceAlgorithm   [2] EXPLICIT SEQUENCE { OID pSpecified, OCTET STRING (empty) } OPTIONAL }
//! EncryptedContentInfo ::= SEQUENCE {
//!   contentType                OID data (1.2.840.113549.1.7.1),
//!   contentEncryptionAlgorithm SEQUENCE { OID aes256-CBC (2.16.840.1.101.3.4.1.42), OCTET STRING (16) },
//!   encryptedContent           [0] IMPLICIT OCTET STRING }    -- primitive or constructed
//! ```
//!
//! The OAEP defaults (SHA-1) are refused: the hash and the MGF1 hash must both be spelled out
//! as SHA-256. Opening unwraps the 32-byte content key with RSAES-OAEP-SHA256, decrypts
//! AES-256-CBC and removes PKCS#7 padding with a check that does not branch on the padding
//! bytes; every padding failure is the same error. Plaintext lives in [`Zeroizing`] buffers.

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;
use subtle::{ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

use crate::ber::{self, BerError, Node, Tag};

const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// AES block and IV length.
const BLOCK: usize = 16;
/// AES-256 key length.
const CONTENT_KEY_LEN: usize = 32;

/// Why a `CiphertextForRecipient` could not be parsed or opened. Never carries key or
/// plaintext bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// Not well-formed BER.
    #[error("CMS reply is not valid BER")]
    Ber(#[from] BerError),
    /// Well-formed BER, but not the structure above.
    #[error("CMS structure: {0}")]
    Structure(&'static str),
    /// A ContentInfo of another content type.
    #[error("CMS ContentInfo is not EnvelopedData")]
    NotEnvelopedData,
    /// A version this parser does not accept.
    #[error("CMS {what} version {version} is not supported")]
    Version {
        /// Which structure.
        what: &'static str,
        /// The version found (or -1 when it does not fit).
        version: i64,
    },
    /// Not exactly one recipient.
    #[error("CMS EnvelopedData has {0} recipients; exactly one is expected")]
    RecipientCount(usize),
    /// The recipient is not a KeyTransRecipientInfo.
    #[error("CMS recipient is not a KeyTransRecipientInfo (key transport)")]
    NotKeyTransport,
    /// The key encryption algorithm or its parameters are not RSAES-OAEP with SHA-256 and
    /// MGF1-SHA-256 (and an empty label).
    #[error("CMS key encryption is not RSAES-OAEP-SHA256/MGF1-SHA256: {0}")]
    KeyEncryption(&'static str),
    /// The content encryption is not AES-256-CBC with a 16-byte IV.
    #[error("CMS content encryption is not AES-256-CBC with a 16-byte IV: {0}")]
    ContentEncryption(&'static str),
    /// The encrypted content is missing, empty or not a whole number of blocks.
    #[error("CMS encrypted content of {len} bytes is not a non-empty multiple of 16")]
    ContentLength {
        /// Its length.
        len: usize,
    },
    /// RSA-OAEP unwrap failed: the reply was encrypted to another public key, or is corrupt.
    #[error(
        "the CMS content key cannot be unwrapped with this enclave's recipient key (encrypted to \
         another public key, or corrupted)"
    )]
    KeyUnwrap,
    /// The unwrapped content key is not 32 bytes.
    #[error("the CMS content key is {len} bytes; AES-256 needs 32")]
    ContentKeyLength {
        /// Its length.
        len: usize,
    },
    /// AES-256-CBC decryption produced invalid PKCS#7 padding (wrong key or corrupt content).
    #[error("CMS content decryption failed (bad padding)")]
    Padding,
}

/// The parts of an EnvelopedData needed to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enveloped {
    pub(crate) encrypted_key: Vec<u8>,
    pub(crate) iv: [u8; BLOCK],
    pub(crate) ciphertext: Vec<u8>,
}

/// Parses and opens a BER CMS EnvelopedData with `key`: the plaintext KMS released.
pub fn open_enveloped_data(
    ber: &[u8],
    key: &RsaPrivateKey,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let enveloped = parse(ber)?;
    let content_key = Zeroizing::new(
        key.decrypt(Oaep::new::<Sha256>(), &enveloped.encrypted_key)
            .map_err(|_| CmsError::KeyUnwrap)?,
    );
    if content_key.len() != CONTENT_KEY_LEN {
        return Err(CmsError::ContentKeyLength {
            len: content_key.len(),
        });
    }
    decrypt_cbc(&content_key, &enveloped.iv, &enveloped.ciphertext)
}

/// Parses the structure in the module docs.
pub(crate) fn parse(input: &[u8]) -> Result<Enveloped, CmsError> {
    let root = ber::parse(input)?;
    let content_info = seq(&root, Tag::SEQUENCE, "ContentInfo is not a SEQUENCE")?;
    let [content_type, content] = content_info else {
        return Err(CmsError::Structure(
            "ContentInfo does not have exactly two fields",
        ));
    };
    if oid(content_type, "ContentInfo contentType is not an OID")? != OID_ENVELOPED_DATA {
        return Err(CmsError::NotEnvelopedData);
    }
    let [enveloped] = seq(content, Tag::context(0), "ContentInfo content is not [0]")? else {
        return Err(CmsError::Structure(
            "ContentInfo [0] does not hold one element",
        ));
    };
    let fields = seq(enveloped, Tag::SEQUENCE, "EnvelopedData is not a SEQUENCE")?;
    let mut fields = fields.iter().peekable();

    let version = small_int(next(&mut fields, "EnvelopedData has no version")?)?;
    if version != 0 && version != 2 {
        return Err(CmsError::Version {
            what: "EnvelopedData",
            version,
        });
    }
    if fields.peek().is_some_and(|n| n.tag == Tag::context(0)) {
        fields.next(); // originatorInfo: nothing KMS sends, nothing we need.
    }
    let recipients = seq(
        next(&mut fields, "EnvelopedData has no recipientInfos")?,
        Tag::SET,
        "recipientInfos is not a SET",
    )?;
    let [recipient] = recipients else {
        return Err(CmsError::RecipientCount(recipients.len()));
    };
    let encrypted_key = key_trans_recipient(recipient)?;
    let (iv, ciphertext) = encrypted_content_info(next(
        &mut fields,
        "EnvelopedData has no encryptedContentInfo",
    )?)?;
    if fields.peek().is_some_and(|n| n.tag == Tag::context(1)) {
        fields.next(); // unprotectedAttrs: unauthenticated, ignored.
    }
    if fields.next().is_some() {
        return Err(CmsError::Structure(
            "EnvelopedData has unexpected trailing fields",
        ));
    }
    Ok(Enveloped {
        encrypted_key,
        iv,
        ciphertext,
    })
}

fn key_trans_recipient(node: &Node<'_>) -> Result<Vec<u8>, CmsError> {
    // KeyAgree [1], KEK [2], Password [3] and Other [4] recipients are tagged; KTRI is a SEQUENCE.
    if node.tag != Tag::SEQUENCE {
        return Err(CmsError::NotKeyTransport);
    }
    let fields = seq(
        node,
        Tag::SEQUENCE,
        "KeyTransRecipientInfo is not a SEQUENCE",
    )?;
    let [version, rid, algorithm, encrypted_key] = fields else {
        return Err(CmsError::Structure(
            "KeyTransRecipientInfo does not have exactly four fields",
        ));
    };
    let version = small_int(version)?;
    let rid_ok = match version {
        0 => rid.tag == Tag::SEQUENCE,
        2 => rid.tag == Tag::context(0),
        _ => {
            return Err(CmsError::Version {
                what: "KeyTransRecipientInfo",
                version,
            });
        }
    };
    if !rid_ok {
        return Err(CmsError::Structure(
            "KeyTransRecipientInfo rid does not match its version",
        ));
    }
    check_oaep(algorithm)?;
    if encrypted_key.tag != Tag::OCTET_STRING {
        return Err(CmsError::Structure("encryptedKey is not an OCTET STRING"));
    }
    let bytes = encrypted_key.octet_string().ok_or(CmsError::Structure(
        "encryptedKey has a segment that is not an OCTET STRING",
    ))?;
    Ok(bytes.into_owned())
}

/// RSAES-OAEP with SHA-256, MGF1-SHA-256 and (if given) an empty pSpecified label.
fn check_oaep(node: &Node<'_>) -> Result<(), CmsError> {
    let bad = CmsError::KeyEncryption;
    let fields = seq(
        node,
        Tag::SEQUENCE,
        "keyEncryptionAlgorithm is not a SEQUENCE",
    )?;
    let [algorithm, params] = fields else {
        return Err(bad(
            "RSAES-OAEP parameters are missing (the default is SHA-1)",
        ));
    };
    if oid(algorithm, "keyEncryptionAlgorithm algorithm is not an OID")? != OID_RSAES_OAEP {
        return Err(bad("the algorithm is not RSAES-OAEP"));
    }
    let params = params
        .children()
        .filter(|_| params.tag == Tag::SEQUENCE)
        .ok_or(bad("RSAES-OAEP-params is not a SEQUENCE"))?;
    let mut params = params.iter().peekable();

    let hash = params
        .next_if(|n| n.tag == Tag::context(0))
        .ok_or(bad("hashAlgorithm is absent (the default is SHA-1)"))?;
    let [hash] = explicit(hash).ok_or(bad("hashAlgorithm is not [0] EXPLICIT"))? else {
        return Err(bad("hashAlgorithm is not [0] EXPLICIT"));
    };
    if !is_sha256(hash) {
        return Err(bad("hashAlgorithm is not SHA-256"));
    }

    let mgf = params.next_if(|n| n.tag == Tag::context(1)).ok_or(bad(
        "maskGenAlgorithm is absent (the default is MGF1 with SHA-1)",
    ))?;
    let [mgf] = explicit(mgf).ok_or(bad("maskGenAlgorithm is not [1] EXPLICIT"))? else {
        return Err(bad("maskGenAlgorithm is not [1] EXPLICIT"));
    };
    let mgf = mgf
        .children()
        .filter(|_| mgf.tag == Tag::SEQUENCE)
        .ok_or(bad("maskGenAlgorithm is not a SEQUENCE"))?;
    let [mgf_oid, mgf_hash] = mgf else {
        return Err(bad("maskGenAlgorithm does not name MGF1 and its hash"));
    };
    if mgf_oid.tag != Tag::OID || mgf_oid.primitive() != Some(OID_MGF1) {
        return Err(bad("maskGenAlgorithm is not MGF1"));
    }
    if !is_sha256(mgf_hash) {
        return Err(bad("the MGF1 hash is not SHA-256"));
    }

    if let Some(source) = params.next_if(|n| n.tag == Tag::context(2)) {
        let [source] = explicit(source).ok_or(bad("pSourceAlgorithm is not [2] EXPLICIT"))? else {
            return Err(bad("pSourceAlgorithm is not [2] EXPLICIT"));
        };
        let fields = source
            .children()
            .filter(|_| source.tag == Tag::SEQUENCE)
            .ok_or(bad("pSourceAlgorithm is not a SEQUENCE"))?;
        let [p_oid, label] = fields else {
            return Err(bad(
                "pSourceAlgorithm does not name pSpecified and its label",
            ));
        };
        if p_oid.tag != Tag::OID || p_oid.primitive() != Some(OID_P_SPECIFIED) {
            return Err(bad("pSourceAlgorithm is not pSpecified"));
        }
        if label.tag != Tag::OCTET_STRING || label.octet_string().is_none_or(|l| !l.is_empty()) {
            return Err(bad("the OAEP label is not empty"));
        }
    }
    if params.next().is_some() {
        return Err(bad("RSAES-OAEP-params has unexpected fields"));
    }
    Ok(())
}

/// `SEQUENCE { OID sha256 }` or `SEQUENCE { OID sha256, NULL }`.
fn is_sha256(node: &Node<'_>) -> bool {
    if node.tag != Tag::SEQUENCE {
        return false;
    }
    match node.children() {
        Some([o]) => o.tag == Tag::OID && o.primitive() == Some(OID_SHA256),
        Some([o, null]) => {
            o.tag == Tag::OID
                && o.primitive() == Some(OID_SHA256)
                && null.tag == Tag::NULL
                && null.primitive() == Some(&[])
        }
        _ => false,
    }
}

fn encrypted_content_info(node: &Node<'_>) -> Result<([u8; BLOCK], Vec<u8>), CmsError> {
    let fields = seq(
        node,
        Tag::SEQUENCE,
        "encryptedContentInfo is not a SEQUENCE",
    )?;
    let [content_type, algorithm, rest @ ..] = fields else {
        return Err(CmsError::Structure(
            "encryptedContentInfo lacks contentType or contentEncryptionAlgorithm",
        ));
    };
    if oid(
        content_type,
        "encryptedContentInfo contentType is not an OID",
    )? != OID_DATA
    {
        return Err(CmsError::Structure("encrypted content type is not id-data"));
    }
    let bad = CmsError::ContentEncryption;
    let alg = seq(
        algorithm,
        Tag::SEQUENCE,
        "contentEncryptionAlgorithm is not a SEQUENCE",
    )?;
    let [alg_oid, iv] = alg else {
        return Err(bad("the algorithm has no IV parameter"));
    };
    if oid(
        alg_oid,
        "contentEncryptionAlgorithm algorithm is not an OID",
    )? != OID_AES256_CBC
    {
        return Err(bad("the algorithm is not AES-256-CBC"));
    }
    if iv.tag != Tag::OCTET_STRING {
        return Err(bad("the IV is not an OCTET STRING"));
    }
    let iv = iv
        .octet_string()
        .ok_or(bad("the IV is not an OCTET STRING"))?;
    let iv: [u8; BLOCK] = iv
        .as_ref()
        .try_into()
        .map_err(|_| bad("the IV is not 16 bytes"))?;
    let [content] = rest else {
        return Err(if rest.is_empty() {
            CmsError::ContentLength { len: 0 }
        } else {
            CmsError::Structure("encryptedContentInfo has unexpected trailing fields")
        });
    };
    if content.tag != Tag::context(0) {
        return Err(CmsError::Structure("encryptedContent is not [0]"));
    }
    let ciphertext = content.octet_string().ok_or(CmsError::Structure(
        "encryptedContent has a segment that is not an OCTET STRING",
    ))?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(CmsError::ContentLength {
            len: ciphertext.len(),
        });
    }
    Ok((iv, ciphertext.into_owned()))
}

/// AES-256-CBC decryption and PKCS#7 unpadding.
fn decrypt_cbc(
    key: &[u8],
    iv: &[u8; BLOCK],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
        .map_err(|_| CmsError::ContentKeyLength { len: key.len() })?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    decryptor
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CmsError::ContentLength {
            len: ciphertext.len(),
        })?;
    let len = unpad(&buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// The unpadded length of a PKCS#7-padded buffer whose length is a non-zero multiple of 16.
/// Looks at all of the last block's bytes whatever the padding byte says, and fails with one
/// error for every kind of bad padding.
pub(crate) fn unpad(buf: &[u8]) -> Result<usize, CmsError> {
    if buf.is_empty() || !buf.len().is_multiple_of(BLOCK) {
        return Err(CmsError::Padding);
    }
    let last = &buf[buf.len() - BLOCK..];
    let n = last[BLOCK - 1];
    // 1 <= n <= 16
    let mut good = !n.ct_eq(&0) & n.ct_lt(&(BLOCK as u8 + 1));
    for (i, byte) in last.iter().enumerate() {
        // Byte i of the last block is padding when i >= 16 - n.
        let distance = (BLOCK - i) as u8; // 16..=1
        let in_pad = !n.ct_lt(&distance);
        good &= !in_pad | byte.ct_eq(&n);
    }
    if bool::from(good) {
        Ok(buf.len() - usize::from(n))
    } else {
        Err(CmsError::Padding)
    }
}

fn seq<'n, 'a>(
    node: &'n Node<'a>,
    tag: Tag,
    what: &'static str,
) -> Result<&'n [Node<'a>], CmsError> {
    if node.tag != tag {
        return Err(CmsError::Structure(what));
    }
    node.children().ok_or(CmsError::Structure(what))
}

/// The one child of an EXPLICIT tag.
fn explicit<'n, 'a>(node: &'n Node<'a>) -> Option<&'n [Node<'a>]> {
    node.children().filter(|c| c.len() == 1)
}

fn oid<'a>(node: &Node<'a>, what: &'static str) -> Result<&'a [u8], CmsError> {
    if node.tag != Tag::OID {
        return Err(CmsError::Structure(what));
    }
    node.primitive().ok_or(CmsError::Structure(what))
}

fn next<'n, 'a>(
    fields: &mut impl Iterator<Item = &'n Node<'a>>,
    what: &'static str,
) -> Result<&'n Node<'a>, CmsError>
where
    'a: 'n,
{
    fields.next().ok_or(CmsError::Structure(what))
}

/// A non-negative INTEGER below 2^15 (versions).
fn small_int(node: &Node<'_>) -> Result<i64, CmsError> {
    let what = "version is not a small INTEGER";
    if node.tag != Tag::INTEGER {
        return Err(CmsError::Structure(what));
    }
    match node.primitive() {
        Some([b]) if *b < 0x80 => Ok(i64::from(*b)),
        Some([0, b]) if *b >= 0x80 => Ok(i64::from(*b)),
        Some(_) => Ok(-1),
        None => Err(CmsError::Structure(what)),
    }
}

#[cfg(test)]
mod tests;
