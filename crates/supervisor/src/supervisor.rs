//! Runs one child: readiness, restarts with backoff, graceful stop, state.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::error::error_chain;
use crate::output::forward_output;
use crate::restart::Restarts;
use crate::{ReadinessProbe, RestartPolicy, SupervisorError};

/// What the supervisor is doing, published on a `watch` channel (see
/// [`Supervisor::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorState {
    /// The child is being started or has not passed its readiness probe yet.
    Starting,
    /// The child passed its readiness probe and is running.
    Ready,
    /// The child exited unexpectedly; restart number `attempt` follows after `delay`.
    Restarting {
        /// Restarts since the child last stayed up for [`RestartPolicy::reset_after`].
        attempt: u32,
        /// The backoff delay before the restart.
        delay: Duration,
    },
    /// Shutdown was requested; the child got SIGTERM and is being waited for.
    Stopping,
    /// Supervision ended on request (or a [`Supervisor::before_restart`] hook said stop); no
    /// child is running.
    Stopped,
    /// Supervision ended with an error; no child is running.
    Failed {
        /// The error, with its causes.
        reason: String,
    },
}

impl SupervisorState {
    /// Whether the child is up and serving (what the master's `/readyz` reports for k3s).
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// How the child is run. [`SupervisorConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct SupervisorConfig {
    /// What the child is called in logs and errors (default `k3s`).
    pub name: String,
    /// The binary (see [`resolve_k3s_binary`](crate::resolve_k3s_binary)).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables set for the child. The child inherits the supervisor's
    /// environment except every `K3S_*` variable (K3s reads those as flags: a stray `K3S_URL`
    /// or `K3S_TOKEN` would change what the server or agent does); variables listed here are
    /// set after that, so `K3S_*` ones listed here do reach it.
    pub env: Vec<(OsString, OsString)>,
    /// Restarts after unexpected exits.
    pub restart: RestartPolicy,
    /// Pause between readiness probes (default 500 ms).
    pub probe_interval: Duration,
    /// How long the child may take to exit after SIGTERM before it gets SIGKILL (default 30 s).
    pub stop_grace: Duration,
}

impl SupervisorConfig {
    /// `program` with `args`, named `k3s`, no extra environment, the default
    /// [`RestartPolicy`], probes every 500 ms and a 30 s stop grace period.
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>) -> Self {
        Self {
            name: "k3s".to_owned(),
            program: program.into(),
            args,
            env: Vec::new(),
            restart: RestartPolicy::default(),
            probe_interval: Duration::from_millis(500),
            stop_grace: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for SupervisorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Environment values may be secrets: names only.
        let env: Vec<&OsString> = self.env.iter().map(|(k, _)| k).collect();
        f.debug_struct("SupervisorConfig")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .field("restart", &self.restart)
            .field("probe_interval", &self.probe_interval)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

/// What a [`Supervisor::before_restart`] hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start the child again.
    Restart,
    /// Start nothing: supervision ends as if shutdown had been requested
    /// ([`SupervisorState::Stopped`], `Ok`).
    Stop,
}

/// The boxed future a restart hook returns.
type HookFuture = Pin<Box<dyn Future<Output = RestartDecision> + Send>>;
/// A restart hook: called with the restart attempt number.
type Hook = Box<dyn FnMut(u32) -> HookFuture + Send + Sync>;

/// Runs a child and keeps it running until shutdown.
///
/// ```no_run
/// # async fn example() -> Result<(), daas_supervisor::SupervisorError> {
/// use daas_supervisor::{Spawned, Supervisor, SupervisorConfig, resolve_k3s_binary};
/// let program = resolve_k3s_binary(None)?;
/// let supervisor = Supervisor::new(
///     SupervisorConfig::new(program, vec!["agent".into()]),
///     Spawned,
/// );
/// let _state = supervisor.subscribe(); // for readiness reports
/// let (_stop, stopped) = tokio::sync::oneshot::channel::<()>(); // send (or drop) to stop
/// supervisor.run(async { let _ = stopped.await; }).await
/// # }
/// ```
pub struct Supervisor<P> {
    config: SupervisorConfig,
    probe: P,
    state: watch::Sender<SupervisorState>,
    before_restart: Option<Hook>,
}

/// How one child's life ended.
enum Exit {
    /// Shutdown was requested and the child has been stopped.
    Shutdown,
    /// It exited (or could not be started) without being asked to.
    Unexpected,
}

impl<P: ReadinessProbe> Supervisor<P> {
    /// A supervisor that has not started anything yet (state [`SupervisorState::Starting`]).
    pub fn new(config: SupervisorConfig, probe: P) -> Self {
        let (state, _) = watch::channel(SupervisorState::Starting);
        Self {
            config,
            probe,
            state,
            before_restart: None,
        }
    }

    /// Asks `hook` before every restart (after the backoff delay, not before the first start)
    /// whether to start the child again: the place to re-check whether the child may still
    /// run, or to renew what it needs. Shutdown interrupts a running hook.
    pub fn before_restart<F, Fut>(mut self, mut hook: F) -> Self
    where
        F: FnMut(u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RestartDecision> + Send + 'static,
    {
        self.before_restart = Some(Box::new(move |attempt| Box::pin(hook(attempt))));
        self
    }

    /// A receiver of the state, current value included.
    pub fn subscribe(&self) -> watch::Receiver<SupervisorState> {
        self.state.subscribe()
    }

    /// Starts the child and supervises it until `shutdown` completes, then stops it (SIGTERM to
    /// its process group, up to [`SupervisorConfig::stop_grace`], then SIGKILL) and returns
    /// `Ok`.
    ///
    /// Returns an error, with state [`SupervisorState::Failed`], when the very first start
    /// fails (a missing or non-executable binary: [`SupervisorError::Spawn`]), when the restart
    /// policy gives up, or when the child cannot be waited for. Later start failures are
    /// retried like crashes. Every child is waited for before this returns; if this future is
    /// dropped instead, the running child gets SIGKILL and tokio reaps it.
    pub async fn run<S>(mut self, shutdown: S) -> Result<(), SupervisorError>
    where
        S: Future<Output = ()> + Send,
    {
        let result = self.supervise(pin!(shutdown)).await;
        let name = &self.config.name;
        match &result {
            Ok(()) => {
                tracing::info!("{name} supervision stopped");
                self.set(SupervisorState::Stopped);
            }
            Err(e) => {
                let reason = error_chain(e);
                tracing::error!(%reason, "{name} supervision failed");
                self.set(SupervisorState::Failed { reason });
            }
        }
        result
    }

    fn set(&self, state: SupervisorState) {
        self.state.send_replace(state);
    }

    async fn supervise<S: Future<Output = ()>>(
        &mut self,
        mut shutdown: Pin<&mut S>,
    ) -> Result<(), SupervisorError> {
        let mut restarts = Restarts::new(self.config.restart.clone());
        let mut first = true;
        loop {
            self.set(SupervisorState::Starting);
            let started = Instant::now();
            let exit = match self.spawn() {
                Ok((child, pid)) => {
                    first = false;
                    self.watch_child(child, pid, shutdown.as_mut()).await?
                }
                Err(e) if first => return Err(e),
                Err(e) => {
                    tracing::error!(reason = %error_chain(&e), "cannot restart {}", self.config.name);
                    Exit::Unexpected
                }
            };
            if let Exit::Shutdown = exit {
                return Ok(());
            }
            let (attempt, delay) = restarts.after_exit(&self.config.name, started.elapsed())?;
            tracing::warn!(
                attempt,
                delay = %humantime::format_duration(delay),
                "restarting {} after backoff",
                self.config.name
            );
            self.set(SupervisorState::Restarting { attempt, delay });
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                () = sleep(delay) => {}
            }
            if let Some(hook) = self.before_restart.as_mut() {
                let decision = tokio::select! {
                    biased;
                    () = shutdown.as_mut() => return Ok(()),
                    decision = hook(attempt) => decision,
                };
                if decision == RestartDecision::Stop {
                    tracing::info!(
                        attempt,
                        "not restarting {}: the restart hook said stop",
                        self.config.name
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Starts the child in a new process group with its output forwarded to `tracing`.
    fn spawn(&self) -> Result<(Child, u32), SupervisorError> {
        let name = &self.config.name;
        let program = &self.config.program;
        let spawn_err = |source| SupervisorError::Spawn {
            program: program.clone(),
            source,
        };
        // Readers first: if a thread cannot be started, nothing has been spawned yet, and a
        // child whose output nobody reads would block (or die of SIGPIPE) on its next log line.
        let (stdout_r, stdout_w) = io::pipe().map_err(spawn_err)?;
        let (stderr_r, stderr_w) = io::pipe().map_err(spawn_err)?;
        forward_output(stdout_r, format!("{name}-stdout"), "stdout").map_err(spawn_err)?;
        forward_output(stderr_r, format!("{name}-stderr"), "stderr").map_err(spawn_err)?;

        let mut cmd = Command::new(program);
        cmd.args(&self.config.args)
            .stdin(Stdio::null())
            .stdout(stdout_w)
            .stderr(stderr_w)
            // Its own group, so SIGTERM/SIGKILL reach everything the child starts, and a ^C
            // meant for the supervisor's terminal does not bypass the graceful stop.
            .process_group(0)
            // Only matters if `run` is dropped mid-flight: tokio then kills and reaps the child.
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"K3S_") {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)));
        tracing::debug!(program = %program.display(), args = ?self.config.args, "starting {name}");
        let child = cmd.spawn().map_err(spawn_err)?;
        // `cmd` holds the pipes' write ends: drop it so the readers see EOF when the child exits.
        drop(cmd);
        let pid = child
            .id()
            .expect("a child that has not been waited for has a pid");
        tracing::info!(pid, program = %program.display(), "started {name}");
        Ok((child, pid))
    }

    /// Probes the child until ready and waits for it to exit or for shutdown.
    async fn watch_child<S: Future<Output = ()>>(
        &self,
        mut child: Child,
        pid: u32,
        mut shutdown: Pin<&mut S>,
    ) -> Result<Exit, SupervisorError> {
        let name = &self.config.name;
        let probe = &self.probe;
        let interval = self.config.probe_interval;
        let mut until_ready = pin!(async move {
            while !probe.ready().await {
                sleep(interval).await;
            }
        });
        let mut ready = false;
        loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => {
                    self.stop(&mut child, pid).await?;
                    return Ok(Exit::Shutdown);
                }
                status = child.wait() => {
                    let status = status.map_err(|source| self.wait_failed(pid, source))?;
                    tracing::warn!(pid, %status, "{name} exited unexpectedly");
                    // Whatever it started dies with it, so the restart finds its ports free.
                    signal_group(pid, Signal::SIGKILL);
                    return Ok(Exit::Unexpected);
                }
                () = &mut until_ready, if !ready => {
                    ready = true;
                    tracing::info!(pid, "{name} is ready");
                    self.set(SupervisorState::Ready);
                }
            }
        }
    }

    /// SIGTERM to the group, up to `stop_grace` for the child to exit, then SIGKILL; always
    /// reaps the child.
    async fn stop(&self, child: &mut Child, pid: u32) -> Result<(), SupervisorError> {
        let name = &self.config.name;
        let grace = self.config.stop_grace;
        self.set(SupervisorState::Stopping);
        tracing::info!(
            pid,
            grace = %humantime::format_duration(grace),
            "stopping {name} (SIGTERM to its process group)"
        );
        signal_group(pid, Signal::SIGTERM);
        let status = match timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    pid,
                    "{name} did not exit within the grace period; sending SIGKILL"
                );
                signal_group(pid, Signal::SIGKILL);
                child.wait().await
            }
        }
        .map_err(|source| self.wait_failed(pid, source))?;
        // Group members that outlived the leader do not get another grace period.
        signal_group(pid, Signal::SIGKILL);
        tracing::info!(pid, %status, "{name} stopped");
        Ok(())
    }

    /// `wait` failed (another reaper took the child?): kill the group so nothing is left
    /// behind.
    fn wait_failed(&self, pid: u32, source: io::Error) -> SupervisorError {
        signal_group(pid, Signal::SIGKILL);
        SupervisorError::Wait {
            name: self.config.name.clone(),
            pid,
            source,
        }
    }
}

/// Sends `signal` to the process group led by `pid`. A group that no longer exists is fine.
///
/// Used after the leader has been reaped too: Linux does not reuse a pid while a process group
/// with that id still has members, so the signal reaches the leftovers of the child's group or
/// no one (the window in which an unrelated process could get the pid and make itself a group
/// leader is the few instructions between `wait` and this call).
fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(errno) => {
            tracing::warn!(pid, %signal, %errno, "cannot signal the child's process group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_env_values() {
        let mut config = SupervisorConfig::new("/bin/k3s", vec!["server".into()]);
        config
            .env
            .push(("K3S_DATASTORE_KEYFILE_PASS".into(), "hunter2".into()));
        let shown = format!("{config:?}");
        assert!(shown.contains("K3S_DATASTORE_KEYFILE_PASS"));
        assert!(!shown.contains("hunter2"));
    }
}
