//! An etcd v3 server for kube-apiserver and K3s that seals every value with AES-256-GCM
//! (see `daas-envelope`) before it reaches a datastore outside the enclave.
//!
//! ```text
//! kube-apiserver ──etcd v3 gRPC──▶ EtcdShim ──(ciphertext)──▶ Backend
//!                                  │ limits, seal/open          ├─ EtcdBackend: a real etcd
//!                                  │ KeyAdmin, health           └─ EmbeddedBackend: MVCC + redb
//! ```
//!
//! - [`server`]: the etcd services; encrypts `Put` values (also inside `Txn`) with the write's
//!   sequence number, decrypts every value returned (`Range`, `prev_kv`, watch events) and
//!   checks it is not older than the shim's own writes; keys, revisions, leases and errors
//!   pass through untouched.
//! - [`freshness`]: write sequence numbers and the records that catch replayed, resurrected
//!   and rolled-back values; [`anchor`]: their watermark, kept outside the datastore.
//! - [`backend`]: the [`Backend`](backend::Backend) trait and its two implementations.
//! - [`admin`]: key ring status, reload and re-encryption of old values (own listener).
//! - [`listen`]: TCP/unix listeners, TLS/mTLS, the serve loop.
//!
//! It does not protect against deletions by whoever holds the datastore, nor against the
//! datastore and the anchor being rolled back together; `docs/etcd-shim.md` has the table of
//! what is and is not detected.
//!
//! `docs/etcd-shim.md` lists the supported API subset and the design.

pub mod admin;
pub mod anchor;
pub mod backend;
pub mod errors;
pub mod freshness;
pub mod keys;
pub mod listen;
mod scan;
pub mod server;
pub mod validate;

pub use anchor::{Anchor, AnchorError, Baseline};
pub use backend::embedded::{DEFAULT_DISK_CACHE, EmbeddedBackend, EmbeddedConfig};
pub use backend::etcd::{EtcdBackend, EtcdConfig};
pub use freshness::{Freshness, Watermark};
pub use keys::Keys;
pub use listen::{Listen, Listener, ServeError, ServeOptions, ServerTls, serve};
pub use server::{EtcdShim, ShimOptions};
