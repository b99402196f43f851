//! Brings up the loopback interface over rtnetlink, without `ip` and without `unsafe`.
//!
//! A Nitro Enclave boots with no network configured, not even loopback, and the enclave image
//! is a scratch root file system with no shell and no `ip`. nautilus-master needs loopback for
//! everything it serves inside (the proxy, the bridge's 127.0.0.x egress forwarders,
//! kube-apiserver, the etcd shim), so `serve` calls [`loopback_up`] first.
//!
//! What it does: 127.0.0.1/8 (scope host) on `lo`, `lo` up, checked afterwards. What it does
//! not do: IPv6 (`::1` appears by itself when `lo` comes up with IPv6 enabled), routes, other
//! interfaces, or network namespaces (it acts on the calling thread's).

mod error;
mod loopback;
mod rtnl;
mod wire;

pub use error::{NetupError, Step};
pub use loopback::{LoopbackState, loopback_up};
