//! The K3s-DaaS control plane ("nautilus master").
//!
//! - [`auth`]: the Seal-token authenticator every front door shares.
//! - [`proxy`]: the kubectl front door on :8080, the TokenReview webhook, RBAC bootstrap.
//! - [`k3s`]: `k3s server` arguments, cluster token and supervision.
//! - [`chain`]: the chain-backed stake view and the checkpoint follower that keeps it current.
//! - [`dev`], [`dev_chain`], [`dev_serve`]: `nautilus-master dev`, everything on one machine
//!   (the development chain in process).
//!
//! The etcd shim lives in `daas-etcd-shim`, the chain client in `daas-chain`. Attestation and
//! the vsock bridge are built in later steps; see `ARCHITECTURE.md` for where each one goes.

pub mod auth;
pub mod chain;
pub mod control_plane;
#[cfg(feature = "dev")]
pub mod dev;
#[cfg(feature = "dev")]
pub mod dev_chain;
#[cfg(feature = "dev")]
pub mod dev_serve;
pub mod k3s;
mod private_fs;
pub mod proxy;
mod ratelimit;
pub mod serve;
pub mod tee;
pub mod workers;
pub mod wrapped_keys;

pub use ratelimit::{RateLimit, RateLimitError, RoleRateLimit, RoleRateLimits};
