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
