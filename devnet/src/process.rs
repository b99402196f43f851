//! The `k3s-daas-devnet` binary as a child process, for tests and tools of other crates that
//! want the chain in a process of its own (the in-process alternative is [`crate::LocalDevnet`]).

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::CLIENT_CONFIG_FILE;

/// The binary: `$DAAS_DEVNET_BIN`, else `k3s-daas-devnet` in the cargo target directory of
/// the running executable (a test binary lives in `target/<profile>/deps/`, and
/// `cargo test --workspace` builds the devnet into `target/<profile>/`).
pub fn binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DAAS_DEVNET_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("k3s-daas-devnet"));
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "k3s-daas-devnet is not built next to this executable: run `cargo build -p k3s-daas-devnet` (cargo test --workspace builds it) or set DAAS_DEVNET_BIN",
    ))
}

/// A running `k3s-daas-devnet start`; killed on drop unless [`DevnetProcess::stop`]ped.
#[derive(Debug)]
pub struct DevnetProcess {
    child: Child,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `host:port` it listens on.
    pub addr: String,
}

impl DevnetProcess {
    /// Starts `bin` on `data_dir` (initialised on first start) on a free loopback port, with an
    /// idle checkpoint every `heartbeat_ms` (0: none), and waits until it listens.
    pub fn start(bin: &Path, data_dir: &Path, heartbeat_ms: u64) -> io::Result<DevnetProcess> {
        Self::start_with(bin, data_dir, heartbeat_ms, None)
    }

    /// As [`DevnetProcess::start`], also trusting the dev attestation root in the PEM file
    /// `dev_attestation_root` (`--trust-dev-attestation-root`) when given.
    pub fn start_with(
        bin: &Path,
        data_dir: &Path,
        heartbeat_ms: u64,
        dev_attestation_root: Option<&Path>,
    ) -> io::Result<DevnetProcess> {
        let mut command = Command::new(bin);
        command
            .args(["start", "--listen", "127.0.0.1:0", "--heartbeat-ms"])
            .arg(heartbeat_ms.to_string())
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(root) = dev_attestation_root {
            command.arg("--trust-dev-attestation-root").arg(root);
        }
        let mut child = command
            .env("DAAS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout pipe"))?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        // Keep draining stdout for the life of the process: a closed pipe would fail its writes.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the devnet did not start (first line {line:?})"
            )));
        };
        Ok(DevnetProcess {
            addr: addr.to_owned(),
            child,
            data_dir: data_dir.to_owned(),
        })
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `<data-dir>/client.json` (rewritten by `start` with the real address).
    pub fn client_config_path(&self) -> PathBuf {
        self.data_dir.join(CLIENT_CONFIG_FILE)
    }

    /// Sends `signal` to the process (tests pause it with SIGSTOP to look like a partition).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        kill(Pid::from_raw(pid), signal).map_err(io::Error::other)
    }

    /// The exit status if the process has already exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// SIGTERM, then waits up to 10 s for a clean exit (SIGKILL after that).
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(io::Error::other)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the devnet did not stop within 10 s of SIGTERM",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
