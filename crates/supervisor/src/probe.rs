//! When a freshly started child counts as ready.

use std::future::Future;

/// Tells the [`Supervisor`](crate::Supervisor) when a freshly started child serves.
///
/// Called repeatedly (every [`SupervisorConfig::probe_interval`](crate::SupervisorConfig)) until
/// it returns `true` once; a probe should bound its own time.
pub trait ReadinessProbe: Send + Sync {
    /// Whether the child is ready now.
    fn ready(&self) -> impl Future<Output = bool> + Send;
}

/// Ready as soon as the child has been started: for children whose readiness someone else
/// judges (a k3s agent or kubelet is judged by its Node's `Ready` condition on the master).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawned;

impl ReadinessProbe for Spawned {
    async fn ready(&self) -> bool {
        true
    }
}
