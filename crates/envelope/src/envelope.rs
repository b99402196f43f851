//! The envelope construction (v3 written, v2 and v1 still read) and the key ring that applies it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use crate::dek::{self, DEK_ID_LEN, DekCache, Lookup, NONCE_LEN, OpenDek, WRAPPED_LEN, WriteDek};
use crate::error::{DecryptError, KeyRingError};
use crate::key::{DataKey, KeyId};

/// First three bytes of every envelope.
pub const MAGIC: [u8; 3] = *b"k3e";
/// The envelope version this crate writes.
pub const VERSION: u8 = 3;
/// Envelope v2 (per-value derived key), still read.
pub const VERSION_2: u8 = 2;
/// The first envelope version, still read (its values carry no write sequence number).
pub const VERSION_1: u8 = 1;
/// Bytes an envelope v3 adds to the plaintext: 16 header + 16 DEK id + 48 wrapped DEK
/// + 12 nonce + 16 tag.
pub const OVERHEAD: usize = V3_PREFIX_LEN + TAG_LEN;
/// Bytes an envelope v2 added to the plaintext: 16 header + 24 salt + 16 tag.
pub const OVERHEAD_V2: usize = HEADER_LEN_V2 + SALT_LEN + TAG_LEN;
/// Bytes an envelope v1 added to the plaintext: 8 header + 24 salt + 16 tag.
pub const OVERHEAD_V1: usize = HEADER_LEN_V1 + SALT_LEN + TAG_LEN;
/// Length of the header v2 and v3 share (magic, version, key id, write sequence number): all
/// a reader needs to classify a stored value without decrypting it.
pub const HEADER_LEN: usize = HEADER_LEN_V2;

const HEADER_LEN_V1: usize = 8;
const HEADER_LEN_V2: usize = 16;
/// Envelope v3 bytes before the ciphertext: header, DEK id, wrapped DEK, nonce.
const V3_PREFIX_LEN: usize = HEADER_LEN_V2 + DEK_ID_LEN + WRAPPED_LEN + NONCE_LEN;
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
    /// 1, 2 or 3.
    pub version: u8,
    /// The key that encrypted the value.
    pub key_id: KeyId,
    /// The write sequence number (v2, v3), `None` for v1.
    pub sequence: Option<u64>,
}

/// One active key that encrypts every new value, and older keys that still decrypt.
///
/// Each ring also holds the data encryption key (DEK) it writes envelope v3 under: random,
/// generated when the ring is built (so every process start and every new ring has its own),
/// wrapped under the active key, replaced by a fresh one after 2^32 values; and a bounded cache
/// of the DEKs it has unwrapped for reading (see the crate documentation).
///
/// `Debug` prints key ids only.
pub struct KeyRing {
    active: KeyId,
    keys: BTreeMap<KeyId, DataKey>,
    writer: RwLock<Arc<WriteDek>>,
    cache: DekCache,
}

impl KeyRing {
    /// A ring that encrypts under `active` and also decrypts under `previous`, with a fresh
    /// random DEK wrapped under `active`.
    ///
    /// Fails if two keys share an id.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn new(
        active: DataKey,
        previous: impl IntoIterator<Item = DataKey>,
    ) -> Result<Self, KeyRingError> {
        Self::build(active, previous, WriteDek::generate)
    }

    /// Test hook: a ring whose DEK and DEK id are given (golden vectors, substitution tests).
    ///
    /// Never outside tests: two rings built with the same DEK repeat nonces.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn with_dek(
        active: DataKey,
        previous: impl IntoIterator<Item = DataKey>,
        dek: [u8; 32],
        dek_id: [u8; DEK_ID_LEN],
    ) -> Result<Self, KeyRingError> {
        Self::build(active, previous, |key| {
            WriteDek::from_parts(key, Zeroizing::new(dek), dek_id)
        })
    }

    fn build(
        active: DataKey,
        previous: impl IntoIterator<Item = DataKey>,
        make_dek: impl FnOnce(&DataKey) -> WriteDek,
    ) -> Result<Self, KeyRingError> {
        let active_id = active.id();
        let mut keys = BTreeMap::new();
        for key in previous {
            let id = key.id();
            if id == active_id || keys.insert(id, key).is_some() {
                return Err(KeyRingError::DuplicateKey(id));
            }
        }
        let writer = Arc::new(make_dek(&active));
        keys.insert(active_id, active);
        let cache = DekCache::default();
        cache.insert(writer.key_id, writer.dek_id, Arc::clone(&writer.open));
        Ok(KeyRing {
            active: active_id,
            keys,
            writer: RwLock::new(writer),
            cache,
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

    /// Whether `other` holds exactly the same keys with the same one active (key bytes compared
    /// in constant time; the DEKs do not matter). A caller that reloads a ring periodically
    /// keeps its current ring when this holds, so that its DEK and DEK cache live on: every
    /// new ring writes under a new DEK, and a reader caches at most 1024 of them.
    pub fn same_keys(&self, other: &KeyRing) -> bool {
        self.active == other.active
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|((a_id, a), (b_id, b))| a_id == b_id && a.same_bytes(b))
    }

    /// Encrypts `plaintext` for storage under `etcd_key` as an envelope v3 carrying
    /// `sequence`, with the ring's DEK and its next counter nonce. The result is [`OVERHEAD`]
    /// bytes longer than `plaintext`.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails (only when a DEK runs out of
    /// nonces and is replaced), if `etcd_key` is 4 GiB or longer, or if `plaintext` exceeds
    /// AES-GCM's limit of 2^36 − 32 bytes (etcd caps requests at a few MiB).
    pub fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8], sequence: u64) -> Vec<u8> {
        let (dek, nonce) = self.claim_nonce();
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&dek.key_id.0.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&dek.dek_id);
        out.extend_from_slice(&dek.open.wrapped);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(V3_PREFIX_LEN);
        let tag = dek.open.seal(nonce, &aad(head, etcd_key), body);
        out.extend_from_slice(&tag);
        out
    }

    /// The write DEK and a nonce no other encryption under it gets; replaces the DEK when it
    /// has run out of nonces.
    fn claim_nonce(&self) -> (Arc<WriteDek>, [u8; NONCE_LEN]) {
        loop {
            let dek = Arc::clone(&self.writer.read().unwrap_or_else(PoisonError::into_inner));
            if let Some(nonce) = dek.next_nonce() {
                return (dek, nonce);
            }
            let mut writer = self.writer.write().unwrap_or_else(PoisonError::into_inner);
            // Another thread may have replaced it already.
            if Arc::ptr_eq(&writer, &dek) {
                let fresh = Arc::new(WriteDek::generate(self.active_key()));
                self.cache
                    .insert(fresh.key_id, fresh.dek_id, Arc::clone(&fresh.open));
                *writer = fresh;
            }
        }
    }

    /// Test hook: moves the write DEK's nonce counter forward to `next` (never back), to
    /// reach the 2^32 limit in a test.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn advance_nonce_counter(&self, next: u64) {
        self.writer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .advance_counter(next);
    }

    /// Test hook: how many unwrapped DEKs the ring caches.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn dek_cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Test hook: an envelope v2 (the previous format, no longer written) with a caller-chosen
    /// salt, for golden vectors and benchmarks against v3.
    ///
    /// Never outside tests: a repeated salt repeats the AES key and nonce.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn encrypt_v2_with_salt(
        &self,
        etcd_key: &[u8],
        plaintext: &[u8],
        sequence: u64,
        salt: [u8; SALT_LEN],
    ) -> Vec<u8> {
        let key = self.active_key();
        let mut out = Vec::with_capacity(OVERHEAD_V2 + plaintext.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION_2);
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

    /// Test hook: an envelope v2 with a random salt (see
    /// [`encrypt_v2_with_salt`](Self::encrypt_v2_with_salt)).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn encrypt_v2(&self, etcd_key: &[u8], plaintext: &[u8], sequence: u64) -> Vec<u8> {
        let mut salt = [0u8; SALT_LEN];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        self.encrypt_v2_with_salt(etcd_key, plaintext, sequence, salt)
    }

    /// Decrypts `envelope` (v3, or v2/v1 written by earlier releases), read from `etcd_key`.
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
        let mut plaintext = parsed.ciphertext.to_vec();
        let aad = aad(parsed.aad_prefix, etcd_key);
        let tag = Tag::from(*parsed.tag);
        match parsed.body {
            Body::Salted { salt } => {
                let (cipher, nonce) = value_cipher(key, salt);
                cipher
                    .decrypt_in_place_detached(&nonce, &aad, &mut plaintext, &tag)
                    .map_err(|_| DecryptError::Authentication { key_id })?;
            }
            Body::Dek {
                dek_id,
                wrapped,
                nonce,
            } => {
                let (open, cache) = self.open_dek(key, dek_id, wrapped)?;
                if !open.open(*nonce, &aad, &mut plaintext, *parsed.tag) {
                    return Err(DecryptError::Authentication { key_id });
                }
                // Cached only once a value under it authenticated.
                if cache {
                    self.cache.insert(key_id, *dek_id, open);
                }
            }
        }
        Ok(Decrypted {
            plaintext,
            key_id,
            stale: key_id != self.active,
            sequence: parsed.header.sequence,
        })
    }

    /// The DEK of an envelope v3: from the cache when these exact wrapped bytes were unwrapped
    /// before, else unwrapped under `key`. The flag says whether the caller should cache it
    /// once the value authenticated: not when another DEK sits under the same id (which only a
    /// holder of the ring key could make); that one stays and this one is used once.
    fn open_dek(
        &self,
        key: &DataKey,
        dek_id: &[u8; DEK_ID_LEN],
        wrapped: &[u8; WRAPPED_LEN],
    ) -> Result<(Arc<OpenDek>, bool), DecryptError> {
        let key_id = key.id();
        match self.cache.lookup(key_id, dek_id, wrapped) {
            Lookup::Hit(open) => Ok((open, false)),
            lookup => {
                let open = dek::unwrap(key, dek_id, wrapped)
                    .ok_or(DecryptError::BadWrappedKey { key_id })?;
                Ok((Arc::new(open), matches!(lookup, Lookup::Miss)))
            }
        }
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
    /// Every byte before the ciphertext that the AAD covers: the header for v1/v2, the header,
    /// DEK id, wrapped DEK and nonce for v3.
    aad_prefix: &'a [u8],
    body: Body<'a>,
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

/// What sits between the header and the ciphertext.
enum Body<'a> {
    /// v1, v2: the salt the value key and nonce are derived from.
    Salted { salt: &'a [u8; SALT_LEN] },
    /// v3: the DEK (by id, wrapped) and the nonce.
    Dek {
        dek_id: &'a [u8; DEK_ID_LEN],
        wrapped: &'a [u8; WRAPPED_LEN],
        nonce: &'a [u8; NONCE_LEN],
    },
}

impl<'a> Parsed<'a> {
    fn parse(envelope: &'a [u8]) -> Result<Self, DecryptError> {
        let header = parse_header(envelope, envelope.len())?;
        let (aad_prefix, body, ciphertext_at) = match header.version {
            VERSION_1 | VERSION_2 => {
                let header_len = if header.version == VERSION_1 {
                    HEADER_LEN_V1
                } else {
                    HEADER_LEN_V2
                };
                let (salt, _) = split::<SALT_LEN>(&envelope[header_len..]);
                let body = Body::Salted { salt };
                (&envelope[..header_len], body, header_len + SALT_LEN)
            }
            _ => {
                let (dek_id, rest) = split::<DEK_ID_LEN>(&envelope[HEADER_LEN_V2..]);
                let (wrapped, rest) = split::<WRAPPED_LEN>(rest);
                let (nonce, _) = split::<NONCE_LEN>(rest);
                let body = Body::Dek {
                    dek_id,
                    wrapped,
                    nonce,
                };
                (&envelope[..V3_PREFIX_LEN], body, V3_PREFIX_LEN)
            }
        };
        let rest = &envelope[ciphertext_at..];
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        Ok(Parsed {
            header,
            aad_prefix,
            body,
            ciphertext,
            tag: tag
                .try_into()
                .expect("split at len - TAG_LEN yields TAG_LEN bytes"),
        })
    }
}

/// The first `N` bytes of `bytes` as an array, and the rest. The caller has checked the length
/// (`parse_header` enforces each version's minimum).
fn split<const N: usize>(bytes: &[u8]) -> (&[u8; N], &[u8]) {
    let (head, rest) = bytes.split_at(N);
    (head.try_into().expect("split_at(N) yields N bytes"), rest)
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
        Some(VERSION_2) => OVERHEAD_V2,
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
                .expect("v2 and v3 headers have 8 sequence bytes at offset 8"),
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
        assert_eq!(OVERHEAD, 108);
        assert_eq!(V3_PREFIX_LEN, 92);
        assert_eq!(OVERHEAD_V2, 56);
        assert_eq!(OVERHEAD_V1, 48);
        assert_eq!(HEADER_LEN, 16);
    }

    #[test]
    fn aad_layout() {
        let aad = aad(b"k3e\x02\0\0\0\x07\0\0\0\0\0\0\0\x09", b"/a");
        assert_eq!(aad, b"k3e\x02\0\0\0\x07\0\0\0\0\0\0\0\x09\0\0\0\x02/a");
    }
}
