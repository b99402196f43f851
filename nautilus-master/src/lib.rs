//! The K3s-DaaS control plane ("nautilus master").
//!
//! Landed so far: [`auth`], the Seal-token authenticator every front door (the kubectl proxy, the
//! TokenReview webhook, the worker join API) will share. The etcd shim, the proxy, k3s
//! supervision, attestation and the chain follower are built in later steps; see
//! `ARCHITECTURE.md` for where each one goes.

pub mod auth;
pub mod dev;
pub mod k3s;
pub mod proxy;
