//! Processes laid out as on an EC2 host (tests/serve.rs, tests/serve_kms.rs): a real etcd, and
//! `nautilus-master` subcommands (`bridge`, `serve`) started until their ready line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{bin, free_port, wait_until, which};

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A single-member etcd on loopback (plain http) with its data in `dir`; its client port.
pub fn spawn_etcd(dir: &Path) -> (Proc, u16) {
    let bin = std::env::var_os("ETCD_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| which("etcd"))
        .expect("etcd: ETCD_BIN or on PATH");
    let (client, peer_port) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(name);
        }
    }
    let child = cmd
        .args(["--name", "t", "--log-level", "error"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcd");
    wait_until("etcd listening", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", client)).is_ok()
    });
    (Proc(child), client)
}

/// Starts `nautilus-master <args>` and waits for a stdout line starting with `ready`.
pub fn start_master(args: &[String], ready: &str) -> (Proc, Vec<String>) {
    let mut child = Command::new(bin())
        .args(args)
        .env("DAAS_LOG", "info,daas_devnet=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn nautilus-master");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("exited before {ready:?}; stdout: {seen:?}"))
            .expect("read");
        let done = line.starts_with(ready);
        seen.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), seen)
}
