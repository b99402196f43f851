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
//! # Envelope format v2 (written)
//!
//! ```text
//! offset  length  field
//!      0       3  magic        b"k3e" (0x6b 0x33 0x65)
//!      3       1  version      0x02
//!      4       4  key_id       u32, big-endian: the id of the data key that encrypted the value
//!      8       8  sequence     u64, big-endian: the shim's write sequence number
//!     16      24  salt         random per encryption (OS RNG)
//!     40       n  ciphertext   AES-256-GCM ciphertext, n = plaintext length
//!   40+n      16  tag          GCM authentication tag
//! ```
//!
//! The *header* is bytes `0..16` ([`HEADER_LEN`]). The overhead is [`OVERHEAD`] = 56 bytes
//! (16 header + 24 salt + 16 tag). The sequence number is chosen by the caller and only carried
//! and authenticated here: the etcd shim uses it to detect a stored value being replaced by an
//! older one (`docs/etcd-shim.md`). The version byte selects the layout that follows, so a later
//! version can add fields (for example a wrapped per-process data key) without touching v1/v2.
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
//! ## Key derivation (both versions)
//!
//! Each data key is 32 random bytes. When a key is loaded:
//!
//! ```text
//! key_id = big-endian u32 of SHA-256("k3s-daas/key-id/v1" || key)[0..4]
//! prk    = HKDF-Extract(salt = "k3s-daas/etcd-value/v1", ikm = key)          ; HKDF-SHA256
//! ```
//!
//! For every encryption and decryption:
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
//! The etcd key is bound through the AAD, so a value copied to another etcd key fails to
//! decrypt; so is the whole header, so neither the sequence number nor the version can be
//! changed. The salt is bound implicitly: changing it changes the derived key and nonce. Key ids
//! are displayed as 8 lowercase hex digits ([`KeyId`]).
//!
//! ## Why a derived key per value
//!
//! Every write uses a fresh AES key and nonce derived from a 192-bit random salt, so there is no
//! per-key AES-GCM usage limit to track (no nonce counter, no wear-out after 2^32 random
//! nonces), and nothing breaks across restarts or when a VM snapshot is restored and replays
//! its state. A (key, nonce) pair repeats only if two 192-bit salts collide under the same data
//! key: by the birthday bound that takes about 2^96 writes per data key.
//!
//! ## Decryption errors
//!
//! Checks run in this order, so the error names the first thing wrong ([`DecryptError`]):
//! the magic (compared over as many bytes as are present) → the version byte (1 or 2) → the
//! minimum length of that version (48 or 56) → the key id must be in the ring → the GCM tag.
//!
//! # Memory hygiene
//!
//! Raw key bytes live in [`zeroize::Zeroizing`] and are wiped on drop, as is each per-value
//! `okm`. The HKDF/HMAC state kept per key (derived from the key) and the per-value AES key
//! schedule come from RustCrypto types that do not wipe themselves on drop; an attacker who can
//! read freed enclave memory is outside this crate's threat model.

mod envelope;
mod error;
mod key;
mod provider;

#[cfg(feature = "null-cipher")]
pub use envelope::NullCipher;
pub use envelope::{
    Decrypted, HEADER_LEN, Header, KeyRing, MAGIC, OVERHEAD, OVERHEAD_V1, VERSION, VERSION_1,
    ValueCipher,
};
pub use error::{DecryptError, KeyRingError, ParseKeyIdError, ProviderError};
pub use key::{DataKey, KeyId};
pub use provider::{EnvKey, KeyFile, KeyProvider, KeyRingDir, parse_key_text};
