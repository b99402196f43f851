//! The etcd v3 gRPC API (servers and clients) generated at build time from etcd's own
//! `.proto` files (see `PROVENANCE.md`), and the shim's `daas.shim.v1.KeyAdmin` API.
//!
//! Every `bytes` field is a [`bytes::Bytes`], so a value can be shared between the store,
//! the watch log and responses without copying.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// `mvccpb`: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `authpb`: referenced by `etcdserverpb`; the shim does not serve the Auth API.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The shim's own administration API.
pub mod admin {
    tonic::include_proto!("daas.shim.v1");
}

pub use etcdserverpb::*;
