//! The k3s supervisor against a stand-in child process.
//!
//! No k3s binary is obtainable on this machine (see `k3s_server.rs`), so a `#!/bin/sh` script
//! written by each test stands in for `k3s server`: it records every start and its argv, writes
//! a line to stdout and stderr, and then runs until SIGTERM, crashes, or ignores SIGTERM, as
//! `FAKE_K3S_MODE` says. Readiness is a test probe that looks for the `ready` file the script
//! creates. The real binary is exercised in `k3s_server.rs` when `K3S_BIN` is set.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nautilus_master::k3s::{
    ClusterToken, Datastore, K3sError, K3sServerConfig, ReadinessProbe, RestartPolicy, Supervisor,
    SupervisorConfig, SupervisorState, resolve_k3s_binary, server_args,
};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const FAKE_K3S: &str = r#"#!/bin/sh
# Stands in for `k3s server` in tests: no k3s binary is obtainable here.
dir="$FAKE_K3S_DIR"
echo $$ >> "$dir/starts"
: > "$dir/argv"
for arg in "$@"; do printf '%s\n' "$arg" >> "$dir/argv"; done
env | grep '^K3S_' > "$dir/k3s-env"
echo "fake k3s up"
echo 'time="2025-01-01T00:00:00Z" level=warning msg="fake k3s on stderr"' >&2
case "$FAKE_K3S_MODE" in
crash)
    exit 3 ;;
ignore-term)
    # Ignored signals stay ignored across exec: `sleep` ignores SIGTERM too.
    trap '' TERM
    touch "$dir/ready"
    while :; do sleep 1; done ;;
*)
    trap 'touch "$dir/got-term"; exit 0' TERM
    touch "$dir/ready"
    while :; do sleep 1; done ;;
esac
"#;

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(30);

/// Everything logged in this test binary (a global subscriber: the supervisor forwards the
/// child's output on threads of its own).
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buf = LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Capture(sink.clone()))
            .init();
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Ready once `path` exists.
struct FileProbe(PathBuf);

impl ReadinessProbe for FileProbe {
    async fn ready(&self) -> bool {
        self.0.exists()
    }
}

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fake-k3s.sh"), FAKE_K3S).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the script through `/bin/sh` instead of executing it: executing a file this process
    /// has just written can fail with ETXTBSY while another test thread forks.
    fn config(&self, mode: &str, args: Vec<OsString>) -> SupervisorConfig {
        let mut argv = vec![self.path("fake-k3s.sh").into_os_string()];
        argv.extend(args);
        let mut config = SupervisorConfig::new("/bin/sh", argv);
        config.env = vec![
            ("FAKE_K3S_DIR".into(), self.dir.path().into()),
            ("FAKE_K3S_MODE".into(), mode.into()),
            ("K3S_FROM_CONFIG".into(), "1".into()),
        ];
        config.probe_interval = Duration::from_millis(20);
        config.stop_grace = Duration::from_secs(10);
        config.restart = RestartPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            reset_after: Duration::from_secs(60),
            max_rapid_failures: None,
        };
        config
    }

    fn probe(&self) -> FileProbe {
        FileProbe(self.path("ready"))
    }

    /// Pids of every start so far.
    fn starts(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path("starts"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

type Running = (
    oneshot::Sender<()>,
    watch::Receiver<SupervisorState>,
    JoinHandle<Result<(), K3sError>>,
);

/// Runs the supervisor on a task; sending on (or dropping) the sender shuts it down.
fn start<P: ReadinessProbe + 'static>(supervisor: Supervisor<P>) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let state = supervisor.subscribe();
    let task = tokio::spawn(supervisor.run(async move {
        let _ = rx.await;
    }));
    (tx, state, task)
}

async fn wait_for(
    state: &mut watch::Receiver<SupervisorState>,
    what: &str,
    pred: impl FnMut(&SupervisorState) -> bool,
) -> SupervisorState {
    let result = tokio::time::timeout(PATIENCE, state.wait_for(pred))
        .await
        .map(|r| r.map(|s| s.clone()));
    match result {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("supervisor gone while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}; state {:?}", *state.borrow()),
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live (non-zombie) processes in process group `pgid`, from /proc.
fn live_group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

/// The child was reaped (no zombie: `kill(pid, 0)` finds nothing) and its group is gone.
async fn assert_gone(pid: i32) {
    assert_eq!(
        kill(Pid::from_raw(pid), None),
        Err(Errno::ESRCH),
        "pid {pid}"
    );
    eventually("the process group to die", || {
        live_group_members(pid).is_empty()
    })
    .await;
}

#[tokio::test]
async fn stops_gracefully_on_sigterm() {
    logs(); // install the capturing subscriber
    let fake = Fake::new();
    let token = ClusterToken::load_or_create(&fake.path("secret/token")).unwrap();
    let server = K3sServerConfig::new(
        fake.path("k3s"),
        Datastore::plain("http://127.0.0.1:2379"),
        fake.path("secret/token"),
        fake.path("k3s/admin.kubeconfig"),
    );
    let args = server_args(&server);
    let supervisor = Supervisor::new(fake.config("run", args.clone()), fake.probe());
    let (stop, mut state, task) = start(supervisor);

    wait_for(&mut state, "Ready", SupervisorState::is_ready).await;
    let starts = fake.starts();
    assert_eq!(starts.len(), 1);

    // The child got exactly server_args, and the token is not among them.
    let argv = std::fs::read_to_string(fake.path("argv")).unwrap();
    let expected: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(argv.lines().collect::<Vec<_>>(), expected);
    assert!(!argv.contains(token.expose_secret()));
    // K3S_* variables reach the child only through the config.
    assert_eq!(
        std::fs::read_to_string(fake.path("k3s-env")).unwrap(),
        "K3S_FROM_CONFIG=1\n"
    );

    let t0 = Instant::now();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}: the child should exit on SIGTERM, well within the grace period",
        t0.elapsed()
    );
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
    assert!(fake.path("got-term").exists(), "the child saw SIGTERM");
    assert_gone(starts[0]).await;

    // Both output streams reach `tracing` under target `k3s`, at the level the line states.
    eventually("the child's output in the log", || {
        let logs = logs();
        logs.lines().any(|l| l.contains(" INFO k3s: fake k3s up"))
            && logs
                .lines()
                .any(|l| l.contains(" WARN k3s: ") && l.contains("fake k3s on stderr"))
    })
    .await;
    assert!(!logs().contains(token.expose_secret()));
}

#[tokio::test]
async fn restarts_a_crashing_child_with_backoff() {
    let fake = Fake::new();
    let supervisor = Supervisor::new(fake.config("crash", vec![]), fake.probe());
    let (stop, mut state, task) = start(supervisor);

    // Every restart announced carries the doubling, capped delay (a busy machine may make this
    // receiver miss some of them, so no exact sequence).
    let expected_delay = |attempt: u32| Duration::from_millis((50 << (attempt - 1)).min(200));
    let mut seen = Vec::new();
    loop {
        let s = wait_for(&mut state, "a new Restarting", |s| {
            matches!(s, SupervisorState::Restarting { .. }) && !seen.contains(s)
        })
        .await;
        let SupervisorState::Restarting { attempt, delay } = s else {
            unreachable!()
        };
        assert_eq!(delay, expected_delay(attempt), "{s:?}");
        seen.push(s);
        if attempt >= 4 {
            break;
        }
    }
    assert!(fake.starts().len() >= 4);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
    for pid in fake.starts() {
        assert_gone(pid).await;
    }
}

#[tokio::test]
async fn gives_up_after_rapid_failures() {
    let fake = Fake::new();
    let mut config = fake.config("crash", vec![]);
    config.restart.max_rapid_failures = Some(3);
    let (_stop, state, task) = start(Supervisor::new(config, fake.probe()));

    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, K3sError::GaveUp { failures: 3, .. }), "{err}");
    assert_eq!(fake.starts().len(), 3);
    match &*state.borrow() {
        SupervisorState::Failed { reason } => assert!(reason.contains("giving up"), "{reason}"),
        other => panic!("state {other:?}"),
    }
}

#[tokio::test]
async fn kills_a_child_that_ignores_sigterm() {
    let fake = Fake::new();
    let mut config = fake.config("ignore-term", vec![]);
    config.stop_grace = Duration::from_millis(300);
    let (stop, mut state, task) = start(Supervisor::new(config, fake.probe()));

    wait_for(&mut state, "Ready", SupervisorState::is_ready).await;
    let pid = fake.starts()[0];
    let t0 = Instant::now();
    stop.send(()).unwrap();
    wait_for(&mut state, "Stopping", |s| *s == SupervisorState::Stopping).await;
    task.await.unwrap().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "SIGKILL before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
    assert!(!fake.path("got-term").exists());
    // Including the `sleep` that ignored SIGTERM as well.
    assert_gone(pid).await;
}

#[tokio::test]
async fn shutdown_during_backoff_is_prompt() {
    let fake = Fake::new();
    let mut config = fake.config("crash", vec![]);
    config.restart.initial_backoff = Duration::from_secs(600);
    config.restart.max_backoff = Duration::from_secs(600);
    let (stop, mut state, task) = start(Supervisor::new(config, fake.probe()));

    wait_for(&mut state, "Restarting", |s| {
        matches!(s, SupervisorState::Restarting { .. })
    })
    .await;
    let t0 = Instant::now();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
    assert_eq!(fake.starts().len(), 1);
}

#[tokio::test]
async fn shutdown_before_ready() {
    let fake = Fake::new();
    let never = FileProbe(fake.path("never"));
    let (stop, state, task) = start(Supervisor::new(fake.config("run", vec![]), never));

    eventually("the child to start", || fake.path("ready").exists()).await;
    assert_eq!(*state.borrow(), SupervisorState::Starting);
    drop(stop); // dropping the sender is a shutdown too
    task.await.unwrap().unwrap();
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
    assert!(fake.path("got-term").exists());
    assert_gone(fake.starts()[0]).await;
}

#[tokio::test]
async fn missing_binary_is_a_clear_error() {
    let fake = Fake::new();
    let missing = fake.path("no-such-k3s");

    let err = resolve_k3s_binary(Some(&missing)).unwrap_err();
    assert!(matches!(err, K3sError::BinaryNotFound { .. }));
    assert!(err.to_string().contains("no-such-k3s"), "{err}");

    let config = SupervisorConfig::new(&missing, vec!["server".into()]);
    let (_stop, state, task) = start(Supervisor::new(config, fake.probe()));
    let err = task.await.unwrap().unwrap_err();
    match &err {
        K3sError::Spawn { program, source } => {
            assert_eq!(program, &missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        err.to_string(),
        format!("cannot start {}", missing.display())
    );
    match &*state.borrow() {
        SupervisorState::Failed { reason } => {
            assert!(reason.contains("no-such-k3s"), "{reason}");
        }
        other => panic!("state {other:?}"),
    }
}

#[test]
fn probe_file_helper_sanity() {
    // The stand-in script must be valid shell (a syntax error would look like "crash" mode).
    let fake = Fake::new();
    let status = std::process::Command::new("/bin/sh")
        .arg("-n")
        .arg(fake.path("fake-k3s.sh"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(Path::new("/bin/sh").exists());
}
