//! etcd's gRPC errors, byte for byte.
//!
//! The Go etcd client turns a gRPC status into a typed error by looking up the status
//! **message** (`rpctypes.Error`), and kube-apiserver compares those typed errors with `==`.
//! The code/message pairs below are therefore part of the protocol: they are copied from
//! `etcd-io/etcd: api/v3rpc/rpctypes/error.go` and checked against a real etcd by the
//! differential tests.

use tonic::{Code, Status};

/// A read or watch below the compaction revision.
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// A read above the current revision.
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

/// `ErrGRPCCompacted`.
pub fn compacted() -> Status {
    Status::new(Code::OutOfRange, COMPACTED)
}

/// `ErrGRPCFutureRev`.
pub fn future_rev() -> Status {
    Status::new(Code::OutOfRange, FUTURE_REV)
}

/// `ErrGRPCEmptyKey`.
pub fn empty_key() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: key is not provided")
}

/// `ErrGRPCKeyNotFound` (a put with `ignore_value`/`ignore_lease` on a missing key).
pub fn key_not_found() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: key not found")
}

/// `ErrGRPCValueProvided`.
pub fn value_provided() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: value is provided")
}

/// `ErrGRPCLeaseProvided`.
pub fn lease_provided() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: lease is provided")
}

/// `ErrGRPCTooManyOps`.
pub fn too_many_ops() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    )
}

/// `ErrGRPCDuplicateKey`.
pub fn duplicate_key() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    )
}

/// `ErrGRPCInvalidSortOption`.
pub fn invalid_sort_option() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: invalid sort option")
}

/// `ErrGRPCRequestTooLarge`.
pub fn request_too_large() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: request is too large")
}

/// `ErrGRPCLeaseNotFound`.
pub fn lease_not_found() -> Status {
    Status::new(Code::NotFound, "etcdserver: requested lease not found")
}

/// `ErrGRPCLeaseExist`.
pub fn lease_exists() -> Status {
    Status::new(Code::FailedPrecondition, "etcdserver: lease already exists")
}

/// `ErrGRPCLeaseTTLTooLarge`.
pub fn lease_ttl_too_large() -> Status {
    Status::new(Code::OutOfRange, "etcdserver: too large lease TTL")
}

/// The store is shutting down or its writer has stopped (`ErrGRPCStopped` in etcd).
pub fn stopped() -> Status {
    Status::new(Code::Unavailable, "etcdserver: server stopped")
}

/// A value in the store could not be decrypted: fail closed, name the key (keys are not secret).
pub fn undecryptable(key: &[u8], err: &dyn std::fmt::Display) -> Status {
    Status::new(
        Code::DataLoss,
        format!(
            "etcd-shim: value of key {:?} cannot be decrypted: {err}",
            String::from_utf8_lossy(key)
        ),
    )
}

/// `Compare` on `VALUE`: ciphertexts are randomised, so a backend cannot compare them.
pub fn value_compare_unsupported() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcd-shim: compares on VALUE are not supported (values are encrypted with random salts)",
    )
}

/// A value whose write sequence number is below what the shim knows about its own writes at
/// that revision: an older ciphertext put back (replay), a deleted key resurrected with its
/// last ciphertext, or a rolled-back datastore. Names the key and revision, never the value.
pub fn stale_value(key: &[u8], mod_revision: i64) -> Status {
    Status::new(
        Code::DataLoss,
        format!(
            "etcd-shim: value of key {:?} at revision {mod_revision} is older than the shim's \
             own writes at that revision: the datastore returned a replayed, resurrected or \
             rolled-back value",
            String::from_utf8_lossy(key)
        ),
    )
}

/// A stored value that is empty where the shim always stores an envelope (every value it
/// writes is at least 108 bytes). Only `keys_only`/`count_only` reads and the `kv` of a watch
/// DELETE event carry no value.
pub fn empty_value(key: &[u8], mod_revision: i64) -> Status {
    Status::new(
        Code::DataLoss,
        format!(
            "etcd-shim: value of key {:?} at revision {mod_revision} is empty: the shim never \
             stores an empty value (written around the shim?)",
            String::from_utf8_lossy(key)
        ),
    )
}

/// A watch DELETE event whose `kv` carries a value: not something etcd produces.
pub fn delete_event_with_value(key: &[u8], mod_revision: i64) -> Status {
    Status::new(
        Code::DataLoss,
        format!(
            "etcd-shim: DELETE event of key {:?} at revision {mod_revision} carries a value",
            String::from_utf8_lossy(key)
        ),
    )
}

/// The freshness anchor has not been written for so long that a restart could no longer tell
/// this process's values from replays: refuse writes until it is.
pub fn anchor_stale() -> Status {
    Status::new(
        Code::Unavailable,
        "etcd-shim: the freshness anchor could not be written for 2^32 writes; refusing writes \
         until it is (see the shim's log)",
    )
}

/// A client write to a key the shim reserves for itself.
pub fn reserved_key() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcd-shim: keys starting with \"\\u{0}k3s-daas/\" are reserved by the shim",
    )
}

/// A put with `ignore_value` inside a Txn: the backend would re-stamp the old envelope at a new
/// revision without a fresh sequence number.
pub fn ignore_value_in_txn() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcd-shim: a put with ignore_value is not supported inside a Txn (use a plain Put)",
    )
}
