//! The envelope construction (v2 written, v1 still read) and the key ring that applies it.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::error::{DecryptError, KeyRingError};
use crate::key::{DataKey, KeyId};

/// First three bytes of every envelope.
pub const MAGIC: [u8; 3] = *b"k3e";
/// The envelope version this crate writes.
pub const VERSION: u8 = 2;
/// The first envelope version, still read (its values carry no write sequence number).
pub const VERSION_1: u8 = 1;
/// Bytes an envelope v2 adds to the plaintext: 16 header + 24 salt + 16 tag.
pub const OVERHEAD: usize = HEADER_LEN_V2 + SALT_LEN + TAG_LEN;
/// Bytes an envelope v1 added to the plaintext: 8 header + 24 salt + 16 tag.
pub const OVERHEAD_V1: usize = HEADER_LEN_V1 + SALT_LEN + TAG_LEN;
/// Length of the v2 header (magic, version, key id, write sequence number): all a reader
/// needs to classify a stored value without decrypting it.
pub const HEADER_LEN: usize = HEADER_LEN_V2;

const HEADER_LEN_V1: usize = 8;
const HEADER_LEN_V2: usize = 16;
const SALT_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// HKDF-Expand output: 32-byte AES key followed by a 12-byte nonce.
const OKM_LEN: usize = 32 + 12;

/// Encrypts and decrypts etcd values. The seam between the etcd shim and the crypto.
pub trait ValueCipher: Send + Sync {
    /// Encrypts `plaintext`, the value stored under `etcd_key` by the write whose sequence
    /// number is `sequence` (authenticated, readable without the key: see [`Header`]).
    fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8], sequence: u64) -> Vec<u8>;

    /// Decrypts `stored`, the value read from `etcd_key`.
    fn decrypt(&self, etcd_key: &[u8], stored: &[u8]) -> Result<Decrypted, DecryptError>;
}

/// A decrypted value. `Debug` prints the length of the plaintext, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The value as the client wrote it.
    pub plaintext: Vec<u8>,
    /// The key that had encrypted it.
    pub key_id: KeyId,
    /// Encrypted under a key that is no longer active: re-encrypt it (write it back) before the
    /// old key is retired.
    pub stale: bool,
    /// The write sequence number the value was sealed with (authenticated). `None` for an
    /// envelope v1, which has none; callers that order writes treat that as 0.
    pub sequence: Option<u64>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("key_id", &self.key_id)
            .field("stale", &self.stale)
            .field("sequence", &self.sequence)
            .finish()
    }
}

/// The cleartext header of an envelope: format-checked, **not authenticated** until the
/// envelope is decrypted. Good for counting values per key or version; never for a decision
/// that matters for security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// The key that encrypted the value.
    pub key_id: KeyId,
    /// The write sequence number (v2), `None` for v1.
    pub sequence: Option<u64>,
}

/// One active key that encrypts every new value, and older keys that still decrypt.
///
/// `Debug` prints key ids only.
pub struct KeyRing {
    active: KeyId,
    keys: BTreeMap<KeyId, DataKey>,
}

impl KeyRing {
    /// A ring that encrypts under `active` and also decrypts under `previous`.
    ///
    /// Fails if two keys share an id.
    pub fn new(
        active: DataKey,
        previous: impl IntoIterator<Item = DataKey>,
    ) -> Result<Self, KeyRingError> {
        let active_id = active.id();
        let mut keys = BTreeMap::from([(active_id, active)]);
        for key in previous {
            let id = key.id();
            if keys.insert(id, key).is_some() {
                return Err(KeyRingError::DuplicateKey(id));
            }
        }
        Ok(KeyRing {
            active: active_id,
            keys,
        })
    }

    /// The id of the key that encrypts new values.
    pub fn active_id(&self) -> KeyId {
        self.active
    }

    /// Ids of all keys in the ring, the active one included, in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.keys().copied()
    }

    /// Whether the ring holds the key `id`.
    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.contains_key(&id)
    }

    /// Encrypts `plaintext` for storage under `etcd_key` as an envelope v2 carrying
    /// `sequence`, with the active key and a fresh random salt. The result is [`OVERHEAD`]
    /// bytes longer than `plaintext`.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, if `etcd_key` is 4 GiB or
    /// longer, or if `plaintext` exceeds AES-GCM's limit of 2^36 − 32 bytes (etcd caps requests
    /// at a few MiB).
    pub fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8], sequence: u64) -> Vec<u8> {
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        self.encrypt_with_salt(etcd_key, plaintext, sequence, salt)
    }

    /// Test hook: [`encrypt`](Self::encrypt) with a caller-chosen salt, for golden vectors.
    ///
    /// Never use it outside tests: a repeated salt repeats the AES key and nonce.
    #[doc(hidden)]
    pub fn encrypt_with_salt(
        &self,
        etcd_key: &[u8],
        plaintext: &[u8],
        sequence: u64,
        salt: [u8; SALT_LEN],
    ) -> Vec<u8> {
        let key = self.active_key();
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&key.id().0.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(HEADER_LEN_V2 + SALT_LEN);
        let (cipher, nonce) = value_cipher(key, &salt);
        let tag = cipher
            .encrypt_in_place_detached(&nonce, &aad(&head[..HEADER_LEN_V2], etcd_key), body)
            .expect("plaintext within AES-GCM's 2^36-byte limit (etcd values are a few MiB)");
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts `envelope` (v2, or v1 written by earlier releases), read from `etcd_key`.
    ///
    /// # Panics
    ///
    /// If `etcd_key` is 4 GiB or longer.
    pub fn decrypt(&self, etcd_key: &[u8], envelope: &[u8]) -> Result<Decrypted, DecryptError> {
        let parsed = Parsed::parse(envelope)?;
        let key_id = parsed.header.key_id;
        let key = self
            .keys
            .get(&key_id)
            .ok_or(DecryptError::UnknownKey(key_id))?;
        let (cipher, nonce) = value_cipher(key, parsed.salt);
        let mut plaintext = parsed.ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(
                &nonce,
                &aad(parsed.header_bytes, etcd_key),
                &mut plaintext,
                &Tag::from(*parsed.tag),
            )
            .map_err(|_| DecryptError::Authentication { key_id })?;
        Ok(Decrypted {
            plaintext,
            key_id,
            stale: key_id != self.active,
            sequence: parsed.header.sequence,
        })
    }

    /// The key id in an envelope's header, without decrypting. Applies the same format checks
    /// as [`decrypt`](Self::decrypt) up to the key lookup.
    pub fn key_id_of(envelope: &[u8]) -> Result<KeyId, DecryptError> {
        Self::header_of(envelope).map(|h| h.key_id)
    }

    /// The cleartext header of an envelope, without decrypting (not authenticated). Applies
    /// the same format checks as [`decrypt`](Self::decrypt) up to the key lookup. Only the
    /// first [`HEADER_LEN`] bytes and the length matter, so a caller may pass a value cut
    /// after its header together with the full length via [`header_of_prefix`](Self::header_of_prefix).
    pub fn header_of(envelope: &[u8]) -> Result<Header, DecryptError> {
        Parsed::parse(envelope).map(|p| p.header)
    }

    /// Like [`header_of`](Self::header_of) for a value of which only the first bytes are at
    /// hand (`prefix`, at least [`HEADER_LEN`] bytes when the value is that long) and whose
    /// full length is `len`.
    pub fn header_of_prefix(prefix: &[u8], len: usize) -> Result<Header, DecryptError> {
        parse_header(prefix, len)
    }

    fn active_key(&self) -> &DataKey {
        self.keys
            .get(&self.active)
            .expect("the active key is inserted by KeyRing::new and never removed")
    }
}

impl ValueCipher for KeyRing {
    fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8], sequence: u64) -> Vec<u8> {
        KeyRing::encrypt(self, etcd_key, plaintext, sequence)
    }

    fn decrypt(&self, etcd_key: &[u8], stored: &[u8]) -> Result<Decrypted, DecryptError> {
        KeyRing::decrypt(self, etcd_key, stored)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Stores values as they are. **Never for production**: it exists only so benchmarks can
/// measure what encryption costs, against the same code path without it. Compiled only with
/// the `null-cipher` feature, which no binary enables.
///
/// `decrypt` accepts any bytes and reports `key_id` `00000000`, `stale == false` and no
/// sequence number.
#[cfg(feature = "null-cipher")]
#[derive(Debug, Clone, Copy, Default)]
pub struct NullCipher;

#[cfg(feature = "null-cipher")]
impl ValueCipher for NullCipher {
    fn encrypt(&self, _etcd_key: &[u8], plaintext: &[u8], _sequence: u64) -> Vec<u8> {
        plaintext.to_vec()
    }

    fn decrypt(&self, _etcd_key: &[u8], stored: &[u8]) -> Result<Decrypted, DecryptError> {
        Ok(Decrypted {
            plaintext: stored.to_vec(),
            key_id: KeyId(0),
            stale: false,
            sequence: None,
        })
    }
}

/// An envelope split into its fields, format-checked but not authenticated.
struct Parsed<'a> {
    header: Header,
    header_bytes: &'a [u8],
    salt: &'a [u8; SALT_LEN],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

impl<'a> Parsed<'a> {
    fn parse(envelope: &'a [u8]) -> Result<Self, DecryptError> {
        let header = parse_header(envelope, envelope.len())?;
        let header_len = if header.version == VERSION_1 {
            HEADER_LEN_V1
        } else {
            HEADER_LEN_V2
        };
        let (header_bytes, rest) = envelope.split_at(header_len);
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        Ok(Parsed {
            header,
            header_bytes,
            salt: salt
                .try_into()
                .expect("split_at(SALT_LEN) yields SALT_LEN bytes"),
            ciphertext,
            tag: tag
                .try_into()
                .expect("split at len - TAG_LEN yields TAG_LEN bytes"),
        })
    }
}

/// Checks, in order: the magic (over as many bytes as are present), the version byte, the
/// minimum length of that version; then reads the header fields from `bytes` (the value or its
/// first bytes) for a value of `len` bytes.
fn parse_header(bytes: &[u8], len: usize) -> Result<Header, DecryptError> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(DecryptError::BadMagic);
    }
    let version = bytes.get(3).copied();
    let min = match version {
        Some(VERSION_1) => OVERHEAD_V1,
        Some(VERSION) => OVERHEAD,
        Some(other) => return Err(DecryptError::UnsupportedVersion(other)),
        // Too short to say which version: measure against the smallest envelope.
        None => OVERHEAD_V1,
    };
    if len < min {
        return Err(DecryptError::Truncated { len, min });
    }
    let header_len = if version == Some(VERSION_1) {
        HEADER_LEN_V1
    } else {
        HEADER_LEN_V2
    };
    let Some(header) = bytes.get(..header_len) else {
        return Err(DecryptError::Truncated {
            len: bytes.len(),
            min,
        });
    };
    let key_id = KeyId(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let sequence = (header_len == HEADER_LEN_V2).then(|| {
        u64::from_be_bytes(
            header[8..16]
                .try_into()
                .expect("a v2 header has 8 sequence bytes at offset 8"),
        )
    });
    Ok(Header {
        version: header[3],
        key_id,
        sequence,
    })
}

/// AES-256-GCM instance and nonce for one value: HKDF-Expand(prk, info = salt, L = 44).
fn value_cipher(
    key: &DataKey,
    salt: &[u8; SALT_LEN],
) -> (Aes256Gcm, Nonce<aes_gcm::aead::consts::U12>) {
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    key.prk()
        .expand(salt, okm.as_mut())
        .expect("44 bytes is within HKDF-SHA256's 8160-byte output limit");
    let cipher = Aes256Gcm::new_from_slice(&okm[..32]).expect("okm[..32] is a 32-byte key");
    let nonce: [u8; 12] = okm[32..].try_into().expect("okm[32..] is a 12-byte nonce");
    (cipher, Nonce::from(nonce))
}

/// AAD = header || u32 BE length of the etcd key || etcd key.
fn aad(header: &[u8], etcd_key: &[u8]) -> Vec<u8> {
    let len = u32::try_from(etcd_key.len()).expect("etcd keys are far shorter than 4 GiB");
    let mut aad = Vec::with_capacity(header.len() + 4 + etcd_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(etcd_key);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overheads() {
        assert_eq!(OVERHEAD, 56);
        assert_eq!(OVERHEAD_V1, 48);
        assert_eq!(HEADER_LEN, 16);
    }

    #[test]
    fn aad_layout() {
        let aad = aad(b"k3e\x02\0\0\0\x07\0\0\0\0\0\0\0\x09", b"/a");
        assert_eq!(aad, b"k3e\x02\0\0\0\x07\0\0\0\0\0\0\0\x09\0\0\0\x02/a");
    }
}
