//! An etcd v3 server for kube-apiserver and K3s that seals every value with AES-256-GCM
//! (see `daas-envelope`) before it reaches a datastore outside the enclave.
//!
//! ```text
//! kube-apiserver ──etcd v3 gRPC──▶ EtcdShim ──(ciphertext)──▶ Backend
//!                                  │ limits, seal/open          ├─ EtcdBackend: a real etcd
//!                                  │ KeyAdmin, health           └─ EmbeddedBackend: MVCC + redb
//! ```
//!
//! - [`server`]: the etcd services; encrypts `Put` values (also inside `Txn`), decrypts every
//!   value returned (`Range`, `prev_kv`, watch events); keys, revisions, leases and errors
//!   pass through untouched.
//! - [`backend`]: the [`Backend`](backend::Backend) trait and its two implementations.
//! - [`admin`]: key ring status, reload and re-encryption of old values.
//! - [`listen`]: TCP/unix listeners, TLS/mTLS, the serve loop.
//!
//! `docs/etcd-shim.md` lists the supported API subset and the design.

pub mod admin;
pub mod backend;
pub mod errors;
pub mod keys;
pub mod listen;
pub mod server;
pub mod validate;

pub use backend::embedded::{EmbeddedBackend, EmbeddedConfig};
pub use backend::etcd::{EtcdBackend, EtcdConfig};
pub use keys::Keys;
pub use listen::{Listen, Listener, ServeError, ServeOptions, ServerTls, serve};
pub use server::{EtcdShim, ShimOptions};
