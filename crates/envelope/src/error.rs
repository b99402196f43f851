//! Errors. None of them ever carries key bytes, plaintext or ciphertext: errors reach logs.

use std::io;
use std::path::PathBuf;

use crate::key::KeyId;

/// Why a stored value could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than the minimum of its version (48 bytes for v1, 56 for v2, 108 for v3; 48 when too
    /// short to carry a version byte), but what is there looks like an envelope.
    #[error("envelope truncated: {len} bytes, this envelope version has at least {min}")]
    Truncated {
        /// Length of the input.
        len: usize,
        /// The minimum length for its version.
        min: usize,
    },
    /// The first bytes are not `k3e`.
    #[error("not a K3s-DaaS envelope (plaintext or foreign data?)")]
    BadMagic,
    /// An envelope version this build does not know.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// Encrypted under a key that is not in the ring (retired, or from another cluster).
    #[error("value was encrypted under key {0}, which is not in the key ring")]
    UnknownKey(KeyId),
    /// An envelope v3 whose wrapped data encryption key does not authenticate under the ring
    /// key its header names (corrupted, forged, or wrapped under another key with the same id).
    #[error("the wrapped data key of the value does not authenticate under key {key_id}")]
    BadWrappedKey {
        /// The key named by the header (present in the ring).
        key_id: KeyId,
    },
    /// The GCM tag did not verify.
    #[error(
        "value failed authentication under key {key_id}: wrong key, corrupted, or moved from \
         another etcd key"
    )]
    Authentication {
        /// The key named by the header (present in the ring).
        key_id: KeyId,
    },
}

/// A key ring could not be assembled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    /// Two keys with the same id (the same key given twice, or a 32-bit id collision).
    #[error("key {0} appears more than once in the key ring")]
    DuplicateKey(KeyId),
}

/// Text that is not a key id (8 hex digits).
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("a key id is exactly 8 hex digits")]
pub struct ParseKeyIdError;

/// A [`KeyProvider`](crate::KeyProvider) could not produce a key ring.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A file system operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was attempted ("read", "create", ...).
        op: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Group or others have some access to a key file or the key directory (like ssh, refuse).
    #[error(
        "permissions {mode:04o} for {} are too open: group and others must have no access \
         (chmod {want:o} it)",
        path.display()
    )]
    InsecureMode {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode to set: 600 for key files, 700 for the key directory.
        want: u32,
    },
    /// A path that should be a regular file is not one.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A path that should be a directory is not one.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A key file that does not hold exactly 32 bytes.
    #[error("{} holds {len} bytes; a key file holds exactly 32 raw bytes", path.display())]
    BadLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A `*.key` file whose name is not `<8 lowercase hex digits>.key`.
    #[error("{}: key files are named <key id as 8 lowercase hex digits>.key", path.display())]
    BadKeyFileName {
        /// The key file.
        path: PathBuf,
    },
    /// A key file whose name does not match the id of the key it holds.
    #[error("{} holds key {actual}, which does not match its file name", path.display())]
    IdMismatch {
        /// The key file.
        path: PathBuf,
        /// The id of the key it holds.
        actual: KeyId,
    },
    /// The key directory has no `active` file.
    #[error("{} is missing: not an initialised key directory", path.display())]
    NoActive {
        /// The expected `active` file.
        path: PathBuf,
    },
    /// The `active` file does not hold a key id.
    #[error("{} must hold the active key id as 8 lowercase hex digits", path.display())]
    BadActive {
        /// The `active` file.
        path: PathBuf,
    },
    /// The `active` file names a key that has no key file.
    #[error("active key {id} has no key file in {}", dir.display())]
    ActiveKeyMissing {
        /// The key directory.
        dir: PathBuf,
        /// The id in `active`.
        id: KeyId,
    },
    /// `init` on a directory that already holds a key ring.
    #[error("{} already holds a key ring", dir.display())]
    AlreadyInitialised {
        /// The key directory.
        dir: PathBuf,
    },
    /// `retire` of the key that encrypts new writes.
    #[error("key {0} is the active key; rotate to a new key before retiring it")]
    RetireActive(KeyId),
    /// `retire` of a key that has no key file.
    #[error("no key file {}", path.display())]
    NoSuchKey {
        /// The key file that does not exist.
        path: PathBuf,
    },
    /// The environment variable is not set.
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// Its name.
        var: String,
    },
    /// The environment variable does not hold a key.
    #[error(
        "environment variable {var} must hold a 32-byte key as 64 hex digits or standard base64"
    )]
    EnvInvalid {
        /// Its name.
        var: String,
    },
    /// The keys found cannot form a ring.
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
}
