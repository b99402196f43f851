//! Runs `k3s server` as a child: readiness, restarts with backoff, graceful stop, state.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::{K3sError, ReadinessProbe};

/// The environment variable naming the k3s binary (see [`resolve_k3s_binary`]).
pub const K3S_BIN_ENV: &str = "K3S_BIN";

/// Finds the k3s binary: `explicit` if given, else `$K3S_BIN`, else `k3s` on `PATH`. The result
/// is an executable regular file; otherwise the error says where it looked.
pub fn resolve_k3s_binary(explicit: Option<&Path>) -> Result<PathBuf, K3sError> {
    resolve(
        explicit,
        std::env::var_os(K3S_BIN_ENV),
        std::env::var_os("PATH"),
    )
}

fn resolve(
    explicit: Option<&Path>,
    env_bin: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<PathBuf, K3sError> {
    let named = |path: PathBuf, how: &str| {
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(K3sError::BinaryNotFound {
                detail: format!("{} ({how}) is not an executable file", path.display()),
            })
        }
    };
    if let Some(path) = explicit {
        return named(path.to_path_buf(), "given explicitly");
    }
    if let Some(path) = env_bin.filter(|v| !v.is_empty()) {
        return named(PathBuf::from(path), "from $K3S_BIN");
    }
    path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("k3s"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| K3sError::BinaryNotFound {
            detail: "no executable `k3s` on PATH; set K3S_BIN or give its path".to_owned(),
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// When and how often a k3s that exits on its own is started again.
///
/// The delay starts at `initial_backoff` and doubles with every restart, up to `max_backoff`.
/// A child that stayed up for `reset_after` counts as healthy: the next delay is
/// `initial_backoff` again. Exits sooner than `reset_after` are rapid failures; with
/// `max_rapid_failures: Some(n)`, the n-th consecutive one ends supervision with
/// [`K3sError::GaveUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// First delay (default 1 s).
    pub initial_backoff: Duration,
    /// Longest delay (default 60 s).
    pub max_backoff: Duration,
    /// Uptime after which the backoff resets (default 2 min).
    pub reset_after: Duration,
    /// Give up after this many consecutive rapid failures (default: never).
    pub max_rapid_failures: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
            max_rapid_failures: None,
        }
    }
}

/// The backoff state between restarts.
#[derive(Debug)]
struct Restarts {
    policy: RestartPolicy,
    /// Exits since the child last stayed up for `reset_after` (the restart attempt number).
    streak: u32,
    /// Consecutive rapid exits.
    rapid: u32,
}

impl Restarts {
    fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            streak: 0,
            rapid: 0,
        }
    }

    /// After an exit of a child that ran for `uptime`: the restart attempt number and the delay
    /// before it, or the error that ends supervision.
    fn after_exit(&mut self, uptime: Duration) -> Result<(u32, Duration), K3sError> {
        if uptime >= self.policy.reset_after {
            self.streak = 0;
            self.rapid = 0;
        } else {
            self.rapid = self.rapid.saturating_add(1);
            if let Some(max) = self.policy.max_rapid_failures
                && self.rapid >= max
            {
                return Err(K3sError::GaveUp {
                    failures: self.rapid,
                    window: self.policy.reset_after,
                });
            }
        }
        self.streak = self.streak.saturating_add(1);
        let doublings = (self.streak - 1).min(31);
        let delay = self
            .policy
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.policy.max_backoff);
        Ok((self.streak, delay))
    }
}

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
    /// Supervision ended on request; no child is running.
    Stopped,
    /// Supervision ended with an error; no child is running.
    Failed {
        /// The error, with its causes.
        reason: String,
    },
}

impl SupervisorState {
    /// Whether k3s is up and serving (what `/readyz` reports).
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// How the child is run. [`SupervisorConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct SupervisorConfig {
    /// The k3s binary (see [`resolve_k3s_binary`]).
    pub program: PathBuf,
    /// Its arguments (see [`server_args`](super::server_args)).
    pub args: Vec<OsString>,
    /// Environment variables set for the child. The child inherits the supervisor's
    /// environment except every `K3S_*` variable (K3s reads those as flags: a stray `K3S_URL`
    /// or `K3S_TOKEN` would change what the server does); variables listed here are set after
    /// that, so `K3S_*` ones listed here do reach it.
    pub env: Vec<(OsString, OsString)>,
    /// Restarts after unexpected exits.
    pub restart: RestartPolicy,
    /// Pause between readiness probes (default 500 ms).
    pub probe_interval: Duration,
    /// How long the child may take to exit after SIGTERM before it gets SIGKILL (default 30 s).
    pub stop_grace: Duration,
}

impl SupervisorConfig {
    /// `program` with `args`, no extra environment, the default [`RestartPolicy`], probes
    /// every 500 ms and a 30 s stop grace period.
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>) -> Self {
        Self {
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
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .field("restart", &self.restart)
            .field("probe_interval", &self.probe_interval)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

/// Runs k3s and keeps it running until shutdown.
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
pub struct Supervisor<P> {
    config: SupervisorConfig,
    probe: P,
    state: watch::Sender<SupervisorState>,
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
        }
    }

    /// A receiver of the state, current value included.
    pub fn subscribe(&self) -> watch::Receiver<SupervisorState> {
        self.state.subscribe()
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
        let result = self.supervise(pin!(shutdown)).await;
        match &result {
            Ok(()) => {
                tracing::info!("k3s supervision stopped");
                self.set(SupervisorState::Stopped);
            }
            Err(e) => {
                let reason = error_chain(e);
                tracing::error!(%reason, "k3s supervision failed");
                self.set(SupervisorState::Failed { reason });
            }
        }
        result
    }

    fn set(&self, state: SupervisorState) {
        self.state.send_replace(state);
    }

    async fn supervise<S: Future<Output = ()>>(
        &self,
        mut shutdown: Pin<&mut S>,
    ) -> Result<(), K3sError> {
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
                    tracing::error!(reason = %error_chain(&e), "cannot restart k3s");
                    Exit::Unexpected
                }
            };
            if let Exit::Shutdown = exit {
                return Ok(());
            }
            let (attempt, delay) = restarts.after_exit(started.elapsed())?;
            tracing::warn!(
                attempt,
                delay = %humantime::format_duration(delay),
                "restarting k3s after backoff"
            );
            self.set(SupervisorState::Restarting { attempt, delay });
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                () = sleep(delay) => {}
            }
        }
    }

    /// Starts the child in a new process group with its output forwarded to `tracing`.
    fn spawn(&self) -> Result<(Child, u32), K3sError> {
        let program = &self.config.program;
        let spawn_err = |source| K3sError::Spawn {
            program: program.clone(),
            source,
        };
        // Readers first: if a thread cannot be started, nothing has been spawned yet, and a
        // k3s whose output nobody reads would block (or die of SIGPIPE) on its next log line.
        let (stdout_r, stdout_w) = io::pipe().map_err(spawn_err)?;
        let (stderr_r, stderr_w) = io::pipe().map_err(spawn_err)?;
        forward_output(stdout_r, "stdout").map_err(spawn_err)?;
        forward_output(stderr_r, "stderr").map_err(spawn_err)?;

        let mut cmd = Command::new(program);
        cmd.args(&self.config.args)
            .stdin(Stdio::null())
            .stdout(stdout_w)
            .stderr(stderr_w)
            // Its own group, so SIGTERM/SIGKILL reach everything k3s starts, and a ^C meant for
            // the supervisor's terminal does not bypass the graceful stop.
            .process_group(0)
            // Only matters if `run` is dropped mid-flight: tokio then kills and reaps the child.
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"K3S_") {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)));
        tracing::debug!(program = %program.display(), args = ?self.config.args, "starting k3s");
        let child = cmd.spawn().map_err(spawn_err)?;
        // `cmd` holds the pipes' write ends: drop it so the readers see EOF when k3s exits.
        drop(cmd);
        let pid = child
            .id()
            .expect("a child that has not been waited for has a pid");
        tracing::info!(pid, program = %program.display(), "started k3s");
        Ok((child, pid))
    }

    /// Probes the child until ready and waits for it to exit or for shutdown.
    async fn watch_child<S: Future<Output = ()>>(
        &self,
        mut child: Child,
        pid: u32,
        mut shutdown: Pin<&mut S>,
    ) -> Result<Exit, K3sError> {
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
                    let status = status.map_err(|source| wait_failed(pid, source))?;
                    tracing::warn!(pid, %status, "k3s exited unexpectedly");
                    // Whatever it started dies with it, so the restart finds its ports free.
                    signal_group(pid, Signal::SIGKILL);
                    return Ok(Exit::Unexpected);
                }
                () = &mut until_ready, if !ready => {
                    ready = true;
                    tracing::info!(pid, "k3s is ready");
                    self.set(SupervisorState::Ready);
                }
            }
        }
    }

    /// SIGTERM to the group, up to `stop_grace` for the child to exit, then SIGKILL; always
    /// reaps the child.
    async fn stop(&self, child: &mut Child, pid: u32) -> Result<(), K3sError> {
        let grace = self.config.stop_grace;
        self.set(SupervisorState::Stopping);
        tracing::info!(
            pid,
            grace = %humantime::format_duration(grace),
            "stopping k3s (SIGTERM to its process group)"
        );
        signal_group(pid, Signal::SIGTERM);
        let status = match timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    pid,
                    "k3s did not exit within the grace period; sending SIGKILL"
                );
                signal_group(pid, Signal::SIGKILL);
                child.wait().await
            }
        }
        .map_err(|source| wait_failed(pid, source))?;
        // Group members that outlived the leader do not get another grace period.
        signal_group(pid, Signal::SIGKILL);
        tracing::info!(pid, %status, "k3s stopped");
        Ok(())
    }
}

/// `wait` failed (another reaper took the child?): kill the group so nothing is left behind.
fn wait_failed(pid: u32, source: io::Error) -> K3sError {
    signal_group(pid, Signal::SIGKILL);
    K3sError::Wait { pid, source }
}

/// Sends `signal` to the process group led by `pid`. A group that no longer exists is fine.
///
/// Used after the leader has been reaped too: Linux does not reuse a pid while a process group
/// with that id still has members, so the signal reaches the leftovers of k3s's group or no
/// one (the window in which an unrelated process could get the pid and make itself a group
/// leader is the few instructions between `wait` and this call).
fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(errno) => {
            tracing::warn!(pid, %signal, %errno, "cannot signal the k3s process group");
        }
    }
}

/// Forwards each line from `reader` to `tracing` (target `k3s`) on a thread of its own; the
/// thread ends at EOF, when the child and everything it started have closed the pipe.
fn forward_output(reader: io::PipeReader, stream: &'static str) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("k3s-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        emit(stream, line.trim_end_matches(['\n', '\r']));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(target: "k3s", stream, error = %e, "cannot read k3s output");
                        break;
                    }
                }
            }
        })
        .map(drop)
}

fn emit(stream: &'static str, line: &str) {
    match line_level(line) {
        tracing::Level::ERROR => tracing::error!(target: "k3s", stream, "{line}"),
        tracing::Level::WARN => tracing::warn!(target: "k3s", stream, "{line}"),
        tracing::Level::DEBUG | tracing::Level::TRACE => {
            tracing::debug!(target: "k3s", stream, "{line}");
        }
        _ => tracing::info!(target: "k3s", stream, "{line}"),
    }
}

/// The level of a k3s log line: logrus text (`time="…" level=warning msg="…"`, K3s's own) or
/// klog (`W0102 15:04:05.000000 …`, the embedded Kubernetes components). Anything else: info.
fn line_level(line: &str) -> tracing::Level {
    use tracing::Level;
    if line.starts_with("time=")
        && let Some((_, rest)) = line.split_once(" level=")
    {
        let word = rest.split(' ').next().unwrap_or_default();
        return match word {
            "error" | "fatal" | "panic" => Level::ERROR,
            "warning" | "warn" => Level::WARN,
            "debug" | "trace" => Level::DEBUG,
            _ => Level::INFO,
        };
    }
    let bytes = line.as_bytes();
    if bytes.len() > 5 && bytes[1..5].iter().all(u8::is_ascii_digit) {
        return match bytes[0] {
            b'E' | b'F' => Level::ERROR,
            b'W' => Level::WARN,
            _ => Level::INFO,
        };
    }
    Level::INFO
}

/// `error: cause: cause`, for the state and the log.
fn error_chain(error: &K3sError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(max_rapid_failures: Option<u32>) -> RestartPolicy {
        RestartPolicy {
            initial_backoff: S,
            max_backoff: 60 * S,
            reset_after: 120 * S,
            max_rapid_failures,
        }
    }

    /// Feeds uptimes (seconds) to a fresh backoff; returns what each exit led to.
    fn check(max: Option<u32>, uptimes: &[u64], expected: &[Result<(u32, u64), u32>]) {
        let mut restarts = Restarts::new(policy(max));
        let got: Vec<Result<(u32, u64), u32>> = uptimes
            .iter()
            .map(|&up| match restarts.after_exit(Duration::from_secs(up)) {
                Ok((attempt, delay)) => Ok((attempt, delay.as_secs())),
                Err(K3sError::GaveUp { failures, .. }) => Err(failures),
                Err(e) => panic!("unexpected {e}"),
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        check(
            None,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((3, 4)),
                Ok((4, 8)),
                Ok((5, 16)),
                Ok((6, 32)),
                Ok((7, 60)),
                Ok((8, 60)),
                Ok((9, 60)),
            ],
        );
    }

    #[test]
    fn backoff_resets_after_a_long_run() {
        check(
            None,
            &[1, 1, 1, 120, 5, 500],
            &[
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((3, 4)),
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((1, 1)),
            ],
        );
    }

    #[test]
    fn gives_up_after_rapid_failures() {
        check(Some(3), &[0, 0, 0], &[Ok((1, 1)), Ok((2, 2)), Err(3)]);
        // A long run in between starts the count again.
        check(
            Some(2),
            &[0, 200, 0, 0],
            &[Ok((1, 1)), Ok((1, 1)), Ok((2, 2)), Err(2)],
        );
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut restarts = Restarts::new(policy(None));
        for _ in 0..100 {
            let (_, delay) = restarts.after_exit(Duration::ZERO).expect("never gives up");
            assert!(delay <= 60 * S);
        }
    }

    #[test]
    fn log_levels() {
        use tracing::Level;
        for (line, level) in [
            (
                r#"time="2025-01-02T03:04:05Z" level=info msg="Starting k3s""#,
                Level::INFO,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=warning msg="x""#,
                Level::WARN,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=error msg="x""#,
                Level::ERROR,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=fatal msg="x""#,
                Level::ERROR,
            ),
            (
                r#"time="2025-01-02T03:04:05Z" level=debug msg="x""#,
                Level::DEBUG,
            ),
            ("I0102 03:04:05.000000      42 server.go:1] hi", Level::INFO),
            ("W0102 03:04:05.000000      42 server.go:1] hm", Level::WARN),
            (
                "E0102 03:04:05.000000      42 server.go:1] no",
                Level::ERROR,
            ),
            ("Error: flag provided but not defined: -x", Level::INFO),
            ("level=error not logrus", Level::INFO),
            ("", Level::INFO),
        ] {
            assert_eq!(line_level(line), level, "{line}");
        }
    }

    #[test]
    fn binary_resolution() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin_dir = tmp.path().join("bin");
        std::fs::create_dir(&bin_dir).expect("mkdir");
        let k3s = bin_dir.join("k3s");
        std::fs::write(&k3s, "#!/bin/sh\n").expect("write");
        let other = tmp.path().join("other-k3s");
        std::fs::write(&other, "#!/bin/sh\n").expect("write");
        for p in [&k3s, &other] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let missing = tmp.path().join("missing");
        let path_var = Some(bin_dir.clone().into_os_string());

        // Explicit beats $K3S_BIN beats PATH.
        assert_eq!(
            resolve(Some(&other), Some(missing.clone().into()), path_var.clone())
                .expect("explicit"),
            other
        );
        assert_eq!(
            resolve(None, Some(other.clone().into()), path_var.clone()).expect("env"),
            other
        );
        assert_eq!(
            resolve(None, Some(OsString::new()), path_var.clone()).expect("empty env ignored"),
            k3s
        );
        assert_eq!(resolve(None, None, path_var.clone()).expect("PATH"), k3s);

        let err = resolve(Some(&missing), None, path_var.clone()).expect_err("missing");
        assert!(
            err.to_string().contains("missing (given explicitly)"),
            "{err}"
        );
        let err = resolve(None, Some(missing.clone().into()), path_var).expect_err("missing");
        assert!(err.to_string().contains("from $K3S_BIN"), "{err}");
        let err = resolve(None, None, Some(tmp.path().into())).expect_err("not on PATH");
        assert!(err.to_string().contains("K3S_BIN"), "{err}");

        // Not executable.
        std::fs::set_permissions(&k3s, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(resolve(None, None, Some(bin_dir.into_os_string())).is_err());
    }

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
