//! Envelope v3 data encryption keys (DEKs): wrapping a DEK under a ring key, the write DEK with
//! its nonce counter, and the bounded cache of unwrapped DEKs that decryption uses.
//!
//! Wrapping uses RustCrypto's `aes-gcm` (once per DEK); the per-value AES-256-GCM under a DEK
//! uses `ring`'s, about three times faster per KiB on x86-64 (`docs/performance.md`). Both are
//! the same AEAD, so the bytes do not depend on the choice (the golden vectors check it).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::consts::U12;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand_core::{OsRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use crate::key::{DataKey, KEY_LEN, KeyId};

/// Length of a DEK id (random, 128 bits).
pub(crate) const DEK_ID_LEN: usize = 16;
/// Length of a wrapped DEK: 32 bytes of ciphertext and a 16-byte GCM tag.
pub(crate) const WRAPPED_LEN: usize = KEY_LEN + 16;
/// Length of a GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of a GCM tag.
const TAG_LEN: usize = 16;
/// Values one DEK encrypts before the ring switches to a fresh one: 2^32, the invocation limit
/// NIST SP 800-38D sets for a key used with 96-bit nonces (here far more conservative than
/// needed for a counter, which cannot collide, but it also bounds the data under one key).
pub(crate) const NONCE_LIMIT: u64 = 1 << 32;
/// Unwrapped DEKs kept for decryption. Every ring instance (process start, ring reload, DEK
/// rollover) writes under its own DEK, so stored values carry as many DEKs as there were
/// writers since they were last rewritten; beyond this many the oldest entry is evicted and
/// later reads of its values unwrap it again.
pub(crate) const CACHE_CAP: usize = 1024;

/// HKDF-Expand info prefix of the wrapping key and nonce (followed by the DEK id).
const WRAP_INFO: &[u8] = b"k3s-daas/dek-wrap/v3";
/// The envelope version whose DEKs this module wraps (bound into the wrapping AAD).
const VERSION_3: u8 = 3;

/// An unwrapped DEK ready to use: its AES-256-GCM key (key schedule computed once) and the
/// wrapped bytes it came from, which a cache hit must match.
pub(crate) struct OpenDek {
    pub(crate) wrapped: [u8; WRAPPED_LEN],
    cipher: LessSafeKey,
}

impl OpenDek {
    fn new(wrapped: [u8; WRAPPED_LEN], dek: &Zeroizing<[u8; KEY_LEN]>) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, dek.as_ref()).expect("a DEK is 32 bytes");
        OpenDek {
            wrapped,
            cipher: LessSafeKey::new(key),
        }
    }

    /// Encrypts `in_out` in place; returns the tag.
    ///
    /// # Panics
    ///
    /// If `in_out` exceeds AES-GCM's limit of 2^36 − 32 bytes.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                in_out,
            )
            .expect("plaintext within AES-GCM's 2^36-byte limit (etcd values are a few MiB)");
        tag.as_ref()
            .try_into()
            .expect("an AES-256-GCM tag is 16 bytes")
    }

    /// Decrypts `in_out` in place; `false` if the tag does not verify.
    pub(crate) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: [u8; TAG_LEN],
    ) -> bool {
        self.cipher
            .open_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ring::aead::Tag::from(tag),
                in_out,
                0..,
            )
            .is_ok()
    }
}

/// The DEK a ring encrypts under, with its nonce counter.
pub(crate) struct WriteDek {
    pub(crate) key_id: KeyId,
    pub(crate) dek_id: [u8; DEK_ID_LEN],
    pub(crate) open: Arc<OpenDek>,
    /// The next nonce counter value. Only ever increases.
    counter: AtomicU64,
}

impl WriteDek {
    /// A fresh random DEK and DEK id, wrapped under `key`.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub(crate) fn generate(key: &DataKey) -> Self {
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(dek.as_mut());
        let mut dek_id = [0u8; DEK_ID_LEN];
        OsRng.fill_bytes(&mut dek_id);
        Self::from_parts(key, dek, dek_id)
    }

    /// A DEK from given bytes (tests and golden vectors only; see `KeyRing::with_dek`).
    pub(crate) fn from_parts(
        key: &DataKey,
        dek: Zeroizing<[u8; KEY_LEN]>,
        dek_id: [u8; DEK_ID_LEN],
    ) -> Self {
        let wrapped = wrap(key, &dek_id, &dek);
        WriteDek {
            key_id: key.id(),
            dek_id,
            open: Arc::new(OpenDek::new(wrapped, &dek)),
            counter: AtomicU64::new(0),
        }
    }

    /// Claims the next nonce, or `None` once this DEK has used [`NONCE_LIMIT`] of them.
    pub(crate) fn next_nonce(&self) -> Option<[u8; NONCE_LEN]> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (n < NONCE_LIMIT).then(|| nonce_of(n))
    }

    /// Moves the counter forward to `next` (never back, so no nonce can repeat).
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn advance_counter(&self, next: u64) {
        self.counter.fetch_max(next, Ordering::Relaxed);
    }
}

/// Nonce `n` of a DEK: 4 zero bytes, then `n` as a big-endian u64 (`n` < 2^32).
fn nonce_of(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

/// The AES-256-GCM key and nonce that wrap the DEK `dek_id` under `key`:
/// HKDF-Expand(prk, info = "k3s-daas/dek-wrap/v3" || dek_id, L = 44).
fn wrapping(key: &DataKey, dek_id: &[u8; DEK_ID_LEN]) -> (Aes256Gcm, Nonce<U12>) {
    let mut info = [0u8; WRAP_INFO.len() + DEK_ID_LEN];
    info[..WRAP_INFO.len()].copy_from_slice(WRAP_INFO);
    info[WRAP_INFO.len()..].copy_from_slice(dek_id);
    let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
    key.prk()
        .expand(&info, okm.as_mut())
        .expect("44 bytes is within HKDF-SHA256's 8160-byte output limit");
    let cipher = Aes256Gcm::new_from_slice(&okm[..KEY_LEN]).expect("okm[..32] is a 32-byte key");
    let nonce: [u8; NONCE_LEN] = okm[KEY_LEN..]
        .try_into()
        .expect("okm[32..] is a 12-byte nonce");
    (cipher, Nonce::from(nonce))
}

/// AAD of the wrapping: magic || version 3 || key id || DEK id.
fn wrap_aad(key_id: KeyId, dek_id: &[u8; DEK_ID_LEN]) -> [u8; 8 + DEK_ID_LEN] {
    let mut aad = [0u8; 8 + DEK_ID_LEN];
    aad[..3].copy_from_slice(&crate::envelope::MAGIC);
    aad[3] = VERSION_3;
    aad[4..8].copy_from_slice(&key_id.0.to_be_bytes());
    aad[8..].copy_from_slice(dek_id);
    aad
}

fn wrap(
    key: &DataKey,
    dek_id: &[u8; DEK_ID_LEN],
    dek: &Zeroizing<[u8; KEY_LEN]>,
) -> [u8; WRAPPED_LEN] {
    let (cipher, nonce) = wrapping(key, dek_id);
    let mut wrapped = [0u8; WRAPPED_LEN];
    let (body, tag_out) = wrapped.split_at_mut(KEY_LEN);
    body.copy_from_slice(dek.as_ref());
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &wrap_aad(key.id(), dek_id), body)
        .expect("32 bytes are within AES-GCM's limit");
    tag_out.copy_from_slice(&tag);
    wrapped
}

/// Unwraps a DEK found in an envelope; `None` if it does not authenticate under `key` for
/// `dek_id` (forged, corrupted, or wrapped under another key).
pub(crate) fn unwrap(
    key: &DataKey,
    dek_id: &[u8; DEK_ID_LEN],
    wrapped: &[u8; WRAPPED_LEN],
) -> Option<OpenDek> {
    let (cipher, nonce) = wrapping(key, dek_id);
    let mut dek = Zeroizing::new([0u8; KEY_LEN]);
    dek.copy_from_slice(&wrapped[..KEY_LEN]);
    cipher
        .decrypt_in_place_detached(
            &nonce,
            &wrap_aad(key.id(), dek_id),
            dek.as_mut(),
            &Tag::from(
                <[u8; 16]>::try_from(&wrapped[KEY_LEN..])
                    .expect("a wrapped DEK ends in a 16-byte tag"),
            ),
        )
        .ok()?;
    Some(OpenDek::new(*wrapped, &dek))
}

type CacheKey = (KeyId, [u8; DEK_ID_LEN]);

/// What the cache holds for a (key id, DEK id).
pub(crate) enum Lookup {
    /// The DEK, unwrapped from exactly these wrapped bytes.
    Hit(Arc<OpenDek>),
    /// An entry exists but was unwrapped from other bytes: unwrap these anew, do not cache.
    Conflict,
    /// Nothing cached.
    Miss,
}

/// Unwrapped DEKs by (key id, DEK id), at most [`CACHE_CAP`], oldest evicted first. Only DEKs
/// that authenticated are inserted, so forged envelopes cannot evict anything.
#[derive(Default)]
pub(crate) struct DekCache {
    inner: RwLock<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<CacheKey, Arc<OpenDek>>,
    order: VecDeque<CacheKey>,
}

impl DekCache {
    pub(crate) fn lookup(
        &self,
        key_id: KeyId,
        dek_id: &[u8; DEK_ID_LEN],
        wrapped: &[u8; WRAPPED_LEN],
    ) -> Lookup {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        match inner.map.get(&(key_id, *dek_id)) {
            // The wrapped bytes are ciphertext, not secret: a plain comparison is fine.
            Some(open) if open.wrapped == *wrapped => Lookup::Hit(Arc::clone(open)),
            Some(_) => Lookup::Conflict,
            None => Lookup::Miss,
        }
    }

    /// Inserts `open` unless the entry exists; evicts the oldest entry when full.
    pub(crate) fn insert(&self, key_id: KeyId, dek_id: [u8; DEK_ID_LEN], open: Arc<OpenDek>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let k = (key_id, dek_id);
        if inner.map.contains_key(&k) {
            return;
        }
        while inner.map.len() >= CACHE_CAP {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&oldest);
        }
        inner.map.insert(k, open);
        inner.order.push_back(k);
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_the_counter_after_four_zero_bytes() {
        assert_eq!(nonce_of(0), [0; 12]);
        assert_eq!(nonce_of(0x0102_0304), [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_counter_stops_at_the_limit_and_never_moves_back() {
        let dek = WriteDek::generate(&DataKey::from_bytes([3; 32]));
        assert_eq!(dek.next_nonce(), Some(nonce_of(0)));
        dek.advance_counter(NONCE_LIMIT - 1);
        dek.advance_counter(5);
        assert_eq!(dek.next_nonce(), Some(nonce_of(NONCE_LIMIT - 1)));
        assert_eq!(dek.next_nonce(), None);
        assert_eq!(dek.next_nonce(), None);
    }

    #[test]
    fn a_wrapped_dek_unwraps_only_under_its_key_and_id() {
        let key = DataKey::from_bytes([1; 32]);
        let dek = WriteDek::generate(&key);
        let wrapped = dek.open.wrapped;
        assert!(unwrap(&key, &dek.dek_id, &wrapped).is_some());
        assert!(unwrap(&DataKey::from_bytes([2; 32]), &dek.dek_id, &wrapped).is_none());
        let mut other_id = dek.dek_id;
        other_id[0] ^= 1;
        assert!(unwrap(&key, &other_id, &wrapped).is_none());
        for i in 0..WRAPPED_LEN {
            let mut bad = wrapped;
            bad[i] ^= 0x80;
            assert!(unwrap(&key, &dek.dek_id, &bad).is_none(), "byte {i}");
        }
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_newest() {
        let key = DataKey::from_bytes([1; 32]);
        let cache = DekCache::default();
        let mut ids = Vec::new();
        for _ in 0..CACHE_CAP + 10 {
            let dek = WriteDek::generate(&key);
            ids.push((dek.dek_id, dek.open.wrapped));
            cache.insert(key.id(), dek.dek_id, Arc::clone(&dek.open));
            assert!(cache.len() <= CACHE_CAP);
        }
        assert_eq!(cache.len(), CACHE_CAP);
        let (first_id, first_wrapped) = ids[0];
        assert!(matches!(
            cache.lookup(key.id(), &first_id, &first_wrapped),
            Lookup::Miss
        ));
        let (last_id, last_wrapped) = ids[ids.len() - 1];
        assert!(matches!(
            cache.lookup(key.id(), &last_id, &last_wrapped),
            Lookup::Hit(_)
        ));
        let mut other = last_wrapped;
        other[0] ^= 1;
        assert!(matches!(
            cache.lookup(key.id(), &last_id, &other),
            Lookup::Conflict
        ));
    }
}
