//! Supervision of one child process: the `k3s server` the master runs in the enclave, and the
//! `k3s agent` (or plain kubelet) `staker-agent run` runs on a worker.
//!
//! What it does:
//! - [`Supervisor`] runs the child in its own process group, forwards its output to `tracing`
//!   (target `k3s`), waits for a [`ReadinessProbe`], restarts it with exponential backoff
//!   ([`RestartPolicy`]) after an unexpected exit, asks an optional hook before each restart
//!   ([`Supervisor::before_restart`]), and stops it with SIGTERM to the group, a grace period,
//!   then SIGKILL. Its [`SupervisorState`] is published on a `tokio::sync::watch` channel.
//! - [`resolve_k3s_binary`] finds the k3s binary (explicit path, `$K3S_BIN`, `PATH`).
//!
//! What it does not do: build the child's arguments (the callers know k3s's flags), talk to
//! Kubernetes, or reap processes the child orphans.
//!
//! Architecture invariant: environment values given to the child are never logged (names only),
//! and no `K3S_*` variable of the supervisor's own environment reaches the child unless the
//! configuration sets it.

mod binary;
mod error;
mod output;
mod probe;
mod restart;
mod supervisor;

pub use binary::{K3S_BIN_ENV, resolve_k3s_binary};
pub use error::SupervisorError;
pub use probe::{ReadinessProbe, Spawned};
pub use restart::RestartPolicy;
pub use supervisor::{RestartDecision, Supervisor, SupervisorConfig, SupervisorState};
