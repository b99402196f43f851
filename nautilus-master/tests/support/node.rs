//! A real worker node from the node peer (`../shared/peers/node`: kubelet + containerd in
//! namespaces of their own), and a child process whose output lines a test reads as they come.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ApiServerOnShim, run_ok};

/// A real worker node (kubelet + containerd); stopped (and its run dir removed) on drop.
pub struct Node {
    pub peer_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl Node {
    /// Joins the API server directly with a bootstrap token made by the peer's script (its
    /// RBAC lets kube-controller-manager approve the CSR): the plain-Kubernetes way, without
    /// the master's worker path.
    pub fn start_with_token(peer_dir: &Path, api: &ApiServerOnShim, name: &str, index: u8) -> Self {
        let token = run_ok(
            Command::new(peer_dir.join("bootstrap-token.sh"))
                .arg("create")
                .env("KUBECONFIG", &api.admin_kubeconfig),
        );
        let token = token.lines().last().unwrap().trim().to_owned();
        let node = Node {
            peer_dir: peer_dir.to_owned(),
            run_dir: Self::run_dir(index),
        };
        let out = Command::new(peer_dir.join("start-node.sh"))
            .env("K8S_NODE_NAME", name)
            .env("K8S_NODE_INDEX", index.to_string())
            .env("K8S_NODE_RUN_DIR", &node.run_dir)
            .env("K8S_NODE_TOKEN", token)
            .env("K8S_NODE_APISERVER", api.url())
            .env("K8S_NODE_CA_FILE", api.pki().join("ca.crt"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "start-node.sh failed: {out:?}");
        node
    }

    /// A short run dir for node `index` (the node's relay socket path must stay under 100
    /// characters).
    pub fn run_dir(index: u8) -> PathBuf {
        PathBuf::from(format!("/tmp/daas-n{index}-{}", std::process::id()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new(self.peer_dir.join("stop-node.sh"))
            .arg("--clean")
            .env("K8S_NODE_RUN_DIR", &self.run_dir)
            .stdout(Stdio::null())
            .status();
    }
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
pub struct Streaming {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub stdin: Option<std::process::ChildStdin>,
}

impl Streaming {
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            stdin,
        }
    }

    pub fn line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no output from {what}: {e}"))
    }

    /// The first line within `limit` that `pred` accepts.
    pub fn line_where(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no matching output from {what}: {e}"),
            }
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits up to `limit` for the process to exit on its own; how long it took.
    pub fn ended_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.running() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
