//! Runs `k3s server` as a child: the generic supervision lives in `daas-supervisor` (shared
//! with `staker-agent run`); this module keeps the master's paths and its [`K3sError`].

use std::future::Future;
use std::path::{Path, PathBuf};

use daas_supervisor::SupervisorError;
pub use daas_supervisor::{K3S_BIN_ENV, RestartPolicy, SupervisorConfig, SupervisorState};
use tokio::sync::watch;

use super::{K3sError, ReadinessProbe};

/// Finds the k3s binary: `explicit` if given, else `$K3S_BIN`, else `k3s` on `PATH`. The result
/// is an executable regular file; otherwise the error says where it looked.
pub fn resolve_k3s_binary(explicit: Option<&Path>) -> Result<PathBuf, K3sError> {
    Ok(daas_supervisor::resolve_k3s_binary(explicit)?)
}

/// Runs k3s and keeps it running until shutdown ([`daas_supervisor::Supervisor`] with the
/// master's error type).
///
/// ```no_run
/// # async fn example(config: nautilus_master::k3s::K3sServerConfig) -> Result<(), nautilus_master::k3s::K3sError> {
/// use nautilus_master::k3s::{Supervisor, SupervisorConfig, TcpConnectProbe, resolve_k3s_binary, server_args};
/// let program = resolve_k3s_binary(None)?;
/// let supervisor = Supervisor::new(
///     SupervisorConfig::new(program, server_args(&config)),
///     TcpConnectProbe::for_server(&config),
/// );
/// let _state = supervisor.subscribe(); // for /readyz
/// supervisor.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Supervisor<P>(daas_supervisor::Supervisor<P>);

impl<P: ReadinessProbe> Supervisor<P> {
    /// A supervisor that has not started anything yet (state [`SupervisorState::Starting`]).
    pub fn new(config: SupervisorConfig, probe: P) -> Self {
        Self(daas_supervisor::Supervisor::new(config, probe))
    }

    /// A receiver of the state, current value included.
    pub fn subscribe(&self) -> watch::Receiver<SupervisorState> {
        self.0.subscribe()
    }

    /// Starts k3s and supervises it until `shutdown` completes, then stops it (SIGTERM to its
    /// process group, up to [`SupervisorConfig::stop_grace`], then SIGKILL) and returns `Ok`.
    ///
    /// Returns an error, with state [`SupervisorState::Failed`], when the very first start
    /// fails (a missing or non-executable binary: [`K3sError::Spawn`]), when the restart policy
    /// gives up, or when the child cannot be waited for. Later start failures are retried like
    /// crashes. Every child is waited for before this returns; if this future is dropped
    /// instead, the running child gets SIGKILL and tokio reaps it.
    pub async fn run<S>(self, shutdown: S) -> Result<(), K3sError>
    where
        S: Future<Output = ()> + Send,
    {
        Ok(self.0.run(shutdown).await?)
    }
}

impl From<SupervisorError> for K3sError {
    /// One variant for each: the same fields, the same messages.
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::BinaryNotFound { detail } => K3sError::BinaryNotFound { detail },
            SupervisorError::Spawn { program, source } => K3sError::Spawn { program, source },
            SupervisorError::Wait { pid, source, .. } => K3sError::Wait { pid, source },
            SupervisorError::GaveUp {
                failures, window, ..
            } => K3sError::GaveUp { failures, window },
            other => K3sError::Supervisor(other),
        }
    }
}
