//! Subcommands that are thin shells over library crates.

pub(crate) mod attestation;
pub(crate) mod bridge;
pub(crate) mod etcd_shim;
pub(crate) mod keys;
