//! Envelopes: encryption of etcd values inside the enclave, before they leave it.
//!
//! The encrypting etcd v3 shim calls [`ValueCipher::encrypt`] for every value it writes and
//! [`ValueCipher::decrypt`] for every value it reads, so no storage backend ever sees plaintext.
//! This crate defines the envelope bytes, the AES-256-GCM construction, the [`KeyRing`] (one
//! active key for writing, older keys for reading) and the [`KeyProvider`]s that load a ring.
//!
//! It does **no I/O** except in the key providers ([`KeyRingDir`], [`KeyFile`], [`EnvKey`]). It
//! does not encrypt etcd *keys* (they stay visible to the backend so range reads keep working),
//! does not re-encrypt stale values (the shim does that, guided by [`Decrypted::stale`]), does
//! not decide whether a value is fresh (the shim compares [`Decrypted::sequence`] with what it
//! knows about its own writes) and does not talk to a KMS (a KMS-backed provider implements
//! [`KeyProvider`] elsewhere).
//!
//! # Envelope format v3 (written)
//!
//! ```text
//! offset  length  field
//!      0       3  magic        b"k3e" (0x6b 0x33 0x65)
//!      3       1  version      0x03
//!      4       4  key_id       u32, big-endian: the ring key that wrapped the DEK
//!      8       8  sequence     u64, big-endian: the shim's write sequence number
//!     16      16  dek_id       random id of the data encryption key (DEK)
//!     32      48  wrapped_dek  AES-256-GCM(wrap key, DEK): 32 bytes ciphertext + 16 tag
//!     80      12  nonce        4 zero bytes || u64 big-endian counter (< 2^32)
//!     92       n  ciphertext   AES-256-GCM ciphertext under the DEK, n = plaintext length
//!   92+n      16  tag          GCM authentication tag
//! ```
//!
//! The first 16 bytes ([`HEADER_LEN`]) are laid out as in v2, so [`KeyRing::header_of`] and
//! [`KeyRing::header_of_prefix`] classify both alike. The overhead is [`OVERHEAD`] = 108 bytes
//! (16 header, 16 DEK id, 48 wrapped DEK, 12 nonce, 16 tag): 52 more than v2, which is what
//! carrying the wrapped DEK in every value costs (about 5 % of a 1 KiB value) so that each value
//! stays readable on its own, by any process holding the ring key.
//!
//! ## The DEK (v3)
//!
//! Each [`KeyRing`] (the shim builds one at start and whenever a reload finds other keys; see
//! [`KeyRing::same_keys`]) draws a random 32-byte DEK and a random 128-bit DEK id from the OS
//! RNG and wraps the DEK under the ring's active key:
//!
//! ```text
//! okm        = HKDF-Expand(prk of the active key, info = "k3s-daas/dek-wrap/v3" || dek_id, L = 44)
//! wrap_key   = okm[0..32]; wrap_nonce = okm[32..44]
//! wrapped    = AES-256-GCM-Encrypt(wrap_key, wrap_nonce,
//!                                  aad = magic || 0x03 || key_id || dek_id, DEK)
//! ```
//!
//! (`prk` is the per-key HKDF state below; the 36-byte info cannot equal a v1/v2 24-byte salt,
//! so wrapping keys and value keys never coincide.) Each value is then
//!
//! ```text
//! aad = bytes 0..92 (header, dek_id, wrapped_dek, nonce) || u32 BE etcd key length || etcd key
//! ciphertext || tag = AES-256-GCM-Encrypt(DEK, nonce, aad, plaintext)
//! ```
//!
//! so the value is bound to its etcd key, sequence number, version, key id, DEK and nonce. The
//! AES key schedule of the DEK is computed once per ring, not per value, and the per-value
//! AES-256-GCM is `ring`'s (about 0.35 µs per KiB here against 1.1 µs for RustCrypto's
//! `aes-gcm`, which still wraps DEKs and reads v1/v2: the same AEAD, the same bytes). A reader
//! unwraps a value's DEK under the ring key its header names and keeps it in a bounded cache
//! keyed by (key id, DEK id) (1024 entries, oldest evicted); a cache hit also compares the wrapped
//! bytes, so a substituted wrapped DEK is unwrapped and verified again, never taken from the
//! cache. A DEK enters the cache only after a value under it authenticated, so forged envelopes
//! cannot fill or evict it.
//!
//! ## Why a counter nonce is safe (v3)
//!
//! A GCM nonce must never repeat under one key. The nonce is a per-DEK counter (an atomic
//! fetch-and-add, so concurrent writers never share one), and the DEK is fresh random per ring
//! instance, lives only in this process's memory (it is stored only wrapped), and is never
//! shared with another process or written back to be resumed: no other writer can ever use it,
//! and a restart or a new ring starts from a new DEK. The one way to replay a counter is to run the
//! same memory image twice — a VM snapshot restored twice would encrypt different values under
//! the same (DEK, nonce). The shim runs in an AWS Nitro Enclave, which cannot be snapshotted or
//! cloned; on any other host that can snapshot a running VM, that risk is the operator's (v2
//! did not have it). After 2^32 values (the NIST SP 800-38D invocation limit for one GCM key)
//! the ring draws a fresh DEK and its counter starts again at 0; earlier values stay readable
//! through their own wrapped DEK. The DEK bytes are held in [`zeroize::Zeroizing`] while
//! wrapping and unwrapping; the key schedule `ring` builds from them is not wiped on drop (see
//! Memory hygiene).
//!
//! # Envelope format v2 (read only)
//!
//! ```text
//! offset  length  field
//!      0       3  magic        b"k3e"
//!      3       1  version      0x02
//!      4       4  key_id       u32, big-endian: the id of the data key that encrypted the value
//!      8       8  sequence     u64, big-endian: the shim's write sequence number
//!     16      24  salt         random per encryption (OS RNG)
//!     40       n  ciphertext   AES-256-GCM ciphertext, n = plaintext length
//!   40+n      16  tag          GCM authentication tag
//! ```
//!
//! The header is bytes `0..16`. The overhead is [`OVERHEAD_V2`] = 56 bytes (16 header, 24 salt,
//! 16 tag). The sequence number is chosen by the caller and only carried and authenticated
//! here: the etcd shim uses it to detect a stored value being replaced by an older one
//! (`docs/etcd-shim.md`). The version byte selects the layout that follows.
//!
//! # Envelope format v1 (read only)
//!
//! ```text
//!      0       3  magic        b"k3e"
//!      3       1  version      0x01
//!      4       4  key_id       u32, big-endian
//!      8      24  salt
//!     32       n  ciphertext
//!   32+n      16  tag
//! ```
//!
//! Header `0..8`, overhead [`OVERHEAD_V1`] = 48 bytes, no sequence number
//! ([`Decrypted::sequence`] is `None`).
//!
//! ## Key ids and the per-key HKDF state (all versions)
//!
//! Each ring key ("data key" in v1/v2 terms) is 32 random bytes. When a key is loaded:
//!
//! ```text
//! key_id = big-endian u32 of SHA-256("k3s-daas/key-id/v1" || key)[0..4]
//! prk    = HKDF-Extract(salt = "k3s-daas/etcd-value/v1", ikm = key)          ; HKDF-SHA256
//! ```
//!
//! ## Per-value key derivation (v1, v2)
//!
//! For every v1/v2 decryption:
//!
//! ```text
//! okm    = HKDF-Expand(prk, info = salt (the 24 envelope bytes after the header), L = 44)
//! aes_key = okm[0..32]      ; AES-256 key
//! nonce   = okm[32..44]     ; 96-bit GCM nonce
//! aad     = header (16 bytes for v2, 8 for v1) || u32 big-endian length of the etcd key
//!           || etcd key bytes
//! ciphertext || tag = AES-256-GCM-Encrypt(aes_key, nonce, aad, plaintext)
//! ```
//!
//! The salt is bound implicitly: changing it changes the derived key and nonce. Key ids are
//! displayed as 8 lowercase hex digits ([`KeyId`]). v2 derived a fresh AES key and nonce from a
//! 192-bit random salt for every write: no counter, safe across snapshots, but two HMAC-SHA256
//! and an AES key schedule per value on top of AES-GCM (≈ 1.8 µs per 1 KiB decryption against
//! ≈ 0.9 µs for AES-GCM alone, `docs/performance.md`). v3 pays that once per ring instance.
//!
//! # Staleness
//!
//! [`Decrypted::stale`] is true when the value's key id is not the active key, whatever the
//! version. The etcd shim's `rewrap` also rewrites values of an older envelope version under
//! the active key (it reads the version from [`KeyRing::header_of`]).
//!
//! ## Decryption errors
//!
//! Checks run in this order, so the error names the first thing wrong ([`DecryptError`]):
//! the magic (compared over as many bytes as are present) → the version byte (1, 2 or 3) → the
//! minimum length of that version (48, 56 or 108) → the key id must be in the ring → (v3) the
//! wrapped DEK must authenticate under that key ([`DecryptError::BadWrappedKey`]) → the GCM tag.
//!
//! # Memory hygiene
//!
//! Raw key bytes live in [`zeroize::Zeroizing`] and are wiped on drop, as is each per-value
//! `okm` (v1/v2) and the raw bytes of each DEK; RustCrypto AES key schedules (wrapping keys,
//! v1/v2 value keys) are wiped on drop (the `aes` crate's `zeroize` feature). Not wiped: the
//! HKDF/HMAC state kept per ring key, the GHASH key inside an `aes-gcm` instance, and the DEK's
//! key schedule inside `ring`'s `LessSafeKey`, which lives as long as its ring or cache entry.
//! An attacker who can read freed enclave memory is outside this crate's threat model.

mod dek;
mod envelope;
mod error;
mod key;
mod provider;

#[cfg(feature = "null-cipher")]
pub use envelope::NullCipher;
pub use envelope::{
    Decrypted, HEADER_LEN, Header, KeyRing, MAGIC, OVERHEAD, OVERHEAD_V1, OVERHEAD_V2, VERSION,
    VERSION_1, VERSION_2, ValueCipher,
};
pub use error::{DecryptError, KeyRingError, ParseKeyIdError, ProviderError};
pub use key::{DataKey, KeyId};
pub use provider::{EnvKey, KeyFile, KeyProvider, KeyRingDir, parse_key_text};
