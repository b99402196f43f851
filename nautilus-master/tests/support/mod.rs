//! Shared helpers for the process-level tests: the `nautilus-master` binary, free ports,
//! and the real peers (etcdctl, kube-apiserver) that are skipped — or, with
//! `DAAS_REQUIRE_PEERS=1` (CI), required.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test-only helpers: a failed setup step should panic

pub mod dev;
pub mod devnet;
pub mod node;
pub mod procs;
pub mod proxy;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nautilus-master")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns the program path, or `None` after printing why the test is skipped.
/// Panics instead when `DAAS_REQUIRE_PEERS=1`.
pub fn peer(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| which(default));
    match path {
        Some(p) if p.exists() => Some(p),
        _ => {
            let reason = format!("{default} not found (set {env})");
            if std::env::var("DAAS_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("required peer missing: {reason}");
            }
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A `nautilus-master etcd-shim` child process; killed (SIGKILL) on drop.
pub struct ShimProcess {
    pub child: Child,
    pub port: u16,
    pub url: String,
    /// Its KeyAdmin endpoint (`unix://<keyring>.admin.sock`).
    pub admin_url: String,
}

impl ShimProcess {
    /// Starts the shim on the embedded backend in `data`, with the key ring `keyring`.
    pub fn start(data: &Path, keyring: &Path) -> Self {
        Self::start_on(free_port(), data, keyring)
    }

    pub fn start_on(port: u16, data: &Path, keyring: &Path) -> Self {
        Self::start_with(port, data, keyring, &[])
    }

    /// The same with extra flags (`--accept-rolled-back-datastore`, `--with-archived-keys`).
    pub fn start_with(port: u16, data: &Path, keyring: &Path, extra: &[&str]) -> Self {
        match Self::try_start(port, data, keyring, extra) {
            Ok(shim) => shim,
            Err(stderr) => panic!("etcd-shim did not start: {stderr}"),
        }
    }

    /// Starts it on 127.0.0.1:`port`, or returns its stderr if it exits instead of serving.
    pub fn try_start(
        port: u16,
        data: &Path,
        keyring: &Path,
        extra: &[&str],
    ) -> Result<Self, String> {
        Self::try_listen(&format!("127.0.0.1:{port}"), data, keyring, extra)
    }

    /// Starts it on `listen` (`127.0.0.1:PORT` or `unix:///path`), or returns its stderr if
    /// it exits instead of serving. `port` is 0 for a unix socket.
    pub fn try_listen(
        listen: &str,
        data: &Path,
        keyring: &Path,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut child = Command::new(bin())
            .args(["etcd-shim", "--listen", listen])
            .arg("--backend")
            .arg(format!("embedded:{}", data.display()))
            .arg("--keyring")
            .arg(keyring)
            .args([
                "--key-reload-interval",
                "1s",
                "--progress-notify-interval",
                "5s",
            ])
            .args(extra)
            .env("DAAS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nautilus-master etcd-shim");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Pass stderr through (for the test log), keeping a copy in case it does not start.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = tx.send(line);
            }
        });
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line).expect("read shim stdout");
        if line.is_empty() {
            let _ = child.wait();
            // Every line, not those the reader thread happened to pass on so far: the
            // channel closes when the thread reaches the end of stderr (under load it lags
            // behind the exit, and `try_iter` then saw an empty stderr).
            return Err(rx.iter().collect::<Vec<_>>().join("\n"));
        }
        let url = line
            .trim()
            .strip_prefix("etcd-shim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the shim: {line:?}"))
            .to_owned();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .map_or(0, |p| p.parse().unwrap());
        let mut admin = String::new();
        out.read_line(&mut admin).expect("read shim stdout");
        let admin_url = admin
            .trim()
            .strip_prefix("etcd-shim KeyAdmin on ")
            .unwrap_or_else(|| panic!("unexpected second line from the shim: {admin:?}"))
            .to_owned();
        Ok(Self {
            child,
            port,
            url,
            admin_url,
        })
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit (the freshness anchor is written at shutdown).
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "etcd-shim exited with {status} on SIGTERM"
        );
    }
}

impl Drop for ShimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn init_keyring(dir: &Path) {
    let out = Command::new(bin())
        .args(["keys", "init", "--keyring"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "keys init: {out:?}");
}

/// Runs a command, returning stdout; panics with everything on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Every byte string `needle` found in any file under `dir`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// The real kube-apiserver peer (`../shared/peers/k8s`), stopped on drop.
pub struct ControlPlane {
    peer_dir: PathBuf,
    run_dir: PathBuf,
}

impl ControlPlane {
    /// Starts kube-apiserver, controller-manager and scheduler on `etcd_url`; returns the
    /// admin kubeconfig path. PKI (cluster CA, front-proxy client cert) is in `run_dir/pki`.
    pub fn start(peer_dir: &Path, run_dir: &Path, etcd_url: &str, port: u16) -> (Self, PathBuf) {
        Self::start_with(peer_dir, run_dir, etcd_url, port, &[])
    }

    /// Like [`Self::start`], with extra environment for `start-control-plane.sh` (e.g.
    /// `K8S_APISERVER_EXTRA_ARGS`, `K8S_NO_CONTROLLERS`).
    pub fn start_with(
        peer_dir: &Path,
        run_dir: &Path,
        etcd_url: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> (Self, PathBuf) {
        let kcm = free_port();
        let sched = free_port();
        let out = Command::new(peer_dir.join("start-control-plane.sh"))
            .arg(etcd_url)
            .env("K8S_RUN_DIR", run_dir)
            .env("K8S_PORT", port.to_string())
            .env("K8S_KCM_PORT", kcm.to_string())
            .env("K8S_SCHEDULER_PORT", sched.to_string())
            .envs(env.iter().copied())
            .stderr(Stdio::inherit())
            .output()
            .expect("start-control-plane.sh");
        assert!(
            out.status.success(),
            "control plane failed to start: {out:?}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("kubeconfig path on the last line")
                .trim(),
        );
        (
            Self {
                peer_dir: peer_dir.to_path_buf(),
                run_dir: run_dir.to_path_buf(),
            },
            kubeconfig,
        )
    }

    pub fn stop(&self) {
        let _ = Command::new(self.peer_dir.join("stop-control-plane.sh"))
            .env("K8S_RUN_DIR", &self.run_dir)
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real kube-apiserver (the peer) on an etcd shim of its own, under `dir`; both stopped on
/// drop, the control plane first.
pub struct ApiServerOnShim {
    pub plane: ControlPlane,
    pub shim: ShimProcess,
    pub port: u16,
    pub run_dir: PathBuf,
    pub admin_kubeconfig: PathBuf,
}

impl ApiServerOnShim {
    /// `env` goes to `start-control-plane.sh` (see [`ControlPlane::start_with`]).
    pub fn start(peer_dir: &Path, dir: &Path, env: &[(&str, &str)]) -> Self {
        let keyring = dir.join("keys");
        init_keyring(&keyring);
        let shim = ShimProcess::start_on(free_port(), &dir.join("etcd"), &keyring);
        let port = free_port();
        let run_dir = dir.join("k8s");
        let (plane, admin_kubeconfig) =
            ControlPlane::start_with(peer_dir, &run_dir, &shim.url, port, env);
        ApiServerOnShim {
            plane,
            shim,
            port,
            run_dir,
            admin_kubeconfig,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The peer's PKI: cluster CA `ca.crt`, `front-proxy-client.crt`/`.key`.
    pub fn pki(&self) -> PathBuf {
        self.run_dir.join("pki")
    }

    /// `dev`'s flags for serving in front of this API server: its URL, its CA and the
    /// front-proxy client certificate the proxy forwards identities with.
    pub fn dev_upstream_args(&self) -> Vec<String> {
        let pki = self.pki();
        let file = |name: &str| pki.join(name).display().to_string();
        vec![
            "--upstream".into(),
            self.url(),
            "--upstream-ca".into(),
            file("ca.crt"),
            "--upstream-client-cert".into(),
            file("front-proxy-client.crt"),
            "--upstream-client-key".into(),
            file("front-proxy-client.key"),
        ]
    }
}

/// A plain HTTP/1.1 GET of `path` from `host:port` (loopback admin listeners); the whole
/// response, status line included.
pub fn http_get(host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
