//! Data keys and their ids.

use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::ParseKeyIdError;

/// Domain separator of the key id hash.
const KEY_ID_DOMAIN: &[u8] = b"k3s-daas/key-id/v1";
/// HKDF-Extract salt: binds derived keys to this use (etcd values, envelope v1).
const HKDF_SALT: &[u8] = b"k3s-daas/etcd-value/v1";

/// Length of a data key in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// The id of a [`DataKey`]: the first 4 bytes (big-endian) of
/// `SHA-256("k3s-daas/key-id/v1" || key)`.
///
/// Written into every envelope header so a reader picks the right key. Displayed and parsed as
/// 8 hex digits (`Display` writes lowercase; `FromStr` accepts either case).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl KeyId {
    fn of(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(key)
            .finalize();
        KeyId(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ParseKeyIdError;

    /// Parses exactly 8 hex digits (no sign, no `0x`, no whitespace).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseKeyIdError);
        }
        u32::from_str_radix(s, 16)
            .map(KeyId)
            .map_err(|_| ParseKeyIdError)
    }
}

/// A 32-byte data key, with its id and the HKDF state derived from it.
///
/// The key bytes are wiped on drop. `Debug` prints only the id. The bytes never leave the
/// crate except when [`KeyRingDir`](crate::KeyRingDir) writes a key file.
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
    prk: Hkdf<Sha256>,
}

impl DataKey {
    /// A fresh random key from the operating system's RNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_zeroizing(bytes)
    }

    /// A key from its 32 raw bytes. The caller should wipe its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self::from_zeroizing(Zeroizing::new(bytes))
    }

    pub(crate) fn from_zeroizing(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let id = KeyId::of(&bytes);
        let prk = Hkdf::<Sha256>::new(Some(HKDF_SALT), bytes.as_ref());
        DataKey { bytes, id, prk }
    }

    /// This key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// HKDF state after Extract, for the per-value Expand.
    pub(crate) fn prk(&self) -> &Hkdf<Sha256> {
        &self.prk
    }

    /// Whether both keys have the same bytes, compared in constant time.
    pub(crate) fn same_bytes(&self, other: &DataKey) -> bool {
        let diff = self
            .bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// The raw key bytes, only for writing key files.
    pub(crate) fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
