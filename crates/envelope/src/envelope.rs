//! The envelope v1 construction and the key ring that applies it.

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
/// The envelope version this crate writes (and the only one it reads).
pub const VERSION: u8 = 1;
/// Bytes an envelope adds to the plaintext: 8 header + 24 salt + 16 tag.
pub const OVERHEAD: usize = HEADER_LEN + SALT_LEN + TAG_LEN;

const HEADER_LEN: usize = 8;
const SALT_LEN: usize = 24;
const TAG_LEN: usize = 16;
const BODY_OFFSET: usize = HEADER_LEN + SALT_LEN;
/// HKDF-Expand output: 32-byte AES key followed by a 12-byte nonce.
const OKM_LEN: usize = 32 + 12;

/// Encrypts and decrypts etcd values. The seam between the etcd shim and the crypto.
pub trait ValueCipher: Send + Sync {
    /// Encrypts `plaintext`, the value stored under `etcd_key`.
    fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8]) -> Vec<u8>;

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
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("key_id", &self.key_id)
            .field("stale", &self.stale)
            .finish()
    }
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

    /// Encrypts `plaintext` for storage under `etcd_key`, with the active key and a fresh
    /// random salt. The result is [`OVERHEAD`] bytes longer than `plaintext`.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, if `etcd_key` is 4 GiB or
    /// longer, or if `plaintext` exceeds AES-GCM's limit of 2^36 − 32 bytes (etcd caps requests
    /// at a few MiB).
    pub fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        self.encrypt_with_salt(etcd_key, plaintext, salt)
    }

    /// Test hook: [`encrypt`](Self::encrypt) with a caller-chosen salt, for golden vectors.
    ///
    /// Never use it outside tests: a repeated salt repeats the AES key and nonce.
    #[doc(hidden)]
    pub fn encrypt_with_salt(
        &self,
        etcd_key: &[u8],
        plaintext: &[u8],
        salt: [u8; SALT_LEN],
    ) -> Vec<u8> {
        let key = self.active_key();
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&key.id().0.to_be_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(BODY_OFFSET);
        let (cipher, nonce) = value_cipher(key, &salt);
        let tag = cipher
            .encrypt_in_place_detached(&nonce, &aad(&head[..HEADER_LEN], etcd_key), body)
            .expect("plaintext within AES-GCM's 2^36-byte limit (etcd values are a few MiB)");
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts `envelope`, read from `etcd_key`.
    ///
    /// # Panics
    ///
    /// If `etcd_key` is 4 GiB or longer.
    pub fn decrypt(&self, etcd_key: &[u8], envelope: &[u8]) -> Result<Decrypted, DecryptError> {
        let parsed = Parsed::parse(envelope)?;
        let key = self
            .keys
            .get(&parsed.key_id)
            .ok_or(DecryptError::UnknownKey(parsed.key_id))?;
        let (cipher, nonce) = value_cipher(key, parsed.salt);
        let mut plaintext = parsed.ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(
                &nonce,
                &aad(parsed.header, etcd_key),
                &mut plaintext,
                &Tag::from(*parsed.tag),
            )
            .map_err(|_| DecryptError::Authentication {
                key_id: parsed.key_id,
            })?;
        Ok(Decrypted {
            plaintext,
            key_id: parsed.key_id,
            stale: parsed.key_id != self.active,
        })
    }

    /// The key id in an envelope's header, without decrypting. Applies the same format checks
    /// as [`decrypt`](Self::decrypt) up to the key lookup.
    pub fn key_id_of(envelope: &[u8]) -> Result<KeyId, DecryptError> {
        Parsed::parse(envelope).map(|p| p.key_id)
    }

    fn active_key(&self) -> &DataKey {
        self.keys
            .get(&self.active)
            .expect("the active key is inserted by KeyRing::new and never removed")
    }
}

impl ValueCipher for KeyRing {
    fn encrypt(&self, etcd_key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        KeyRing::encrypt(self, etcd_key, plaintext)
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
/// measure what encryption costs, against the same code path without it.
///
/// `decrypt` accepts any bytes and reports `key_id` `00000000` and `stale == false`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullCipher;

impl ValueCipher for NullCipher {
    fn encrypt(&self, _etcd_key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        plaintext.to_vec()
    }

    fn decrypt(&self, _etcd_key: &[u8], stored: &[u8]) -> Result<Decrypted, DecryptError> {
        Ok(Decrypted {
            plaintext: stored.to_vec(),
            key_id: KeyId(0),
            stale: false,
        })
    }
}

/// An envelope split into its fields, format-checked but not authenticated.
struct Parsed<'a> {
    header: &'a [u8],
    key_id: KeyId,
    salt: &'a [u8; SALT_LEN],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

impl<'a> Parsed<'a> {
    fn parse(envelope: &'a [u8]) -> Result<Self, DecryptError> {
        let magic_len = envelope.len().min(MAGIC.len());
        if envelope[..magic_len] != MAGIC[..magic_len] {
            return Err(DecryptError::BadMagic);
        }
        if let Some(&version) = envelope.get(3)
            && version != VERSION
        {
            return Err(DecryptError::UnsupportedVersion(version));
        }
        if envelope.len() < OVERHEAD {
            return Err(DecryptError::Truncated {
                len: envelope.len(),
            });
        }
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        Ok(Parsed {
            header,
            key_id: KeyId(u32::from_be_bytes([
                header[4], header[5], header[6], header[7],
            ])),
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
    fn overhead_is_48() {
        assert_eq!(OVERHEAD, 48);
        assert_eq!(BODY_OFFSET, 32);
    }

    #[test]
    fn aad_layout() {
        let aad = aad(b"k3e\x01\0\0\0\x07", b"/a");
        assert_eq!(aad, b"k3e\x01\0\0\0\x07\0\0\0\x02/a");
    }
}
