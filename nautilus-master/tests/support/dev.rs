//! `nautilus-master dev` as a child process: started with every listener on a port of the
//! OS's choice, its banner read back for the bound addresses.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::Keystore;
use nautilus_master::auth::unix_ms_now;

use super::bin;

/// `nautilus-master dev` on `data` with every TCP listener on a loopback port of the OS's
/// choice (no port races between tests; the banner reports the bound addresses). The etcd shim
/// is on its default unix socket under `data`.
pub fn dev_command(data: &Path) -> Command {
    dev_command_with(data, &[])
}

/// The same, except for the listeners `extra` sets itself; then `extra`.
pub fn dev_command_with(data: &Path, extra: &[String]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["dev", "--data-dir"]).arg(data);
    // Never the network: these tests are about everything but the K3s download
    // (tests/k3s_download.rs).
    cmd.arg("--no-download");
    for flag in [
        "--listen",
        "--webhook-listen",
        "--admin-listen",
        "--chain-listen",
        "--node-listen",
    ] {
        if !extra.iter().any(|e| e == flag) {
            cmd.args([flag, "127.0.0.1:0"]);
        }
    }
    cmd.args(extra);
    cmd
}

pub struct Dev {
    pub child: Child,
    pub data: PathBuf,
    pub proxy: u16,
    pub admin: u16,
    pub stdout: Vec<String>,
}

impl Dev {
    /// Starts `dev` with every listener on port 0 (no races with other tests for ports) and
    /// reads the bound addresses back from its banner.
    pub fn start(data: &Path, extra: &[String]) -> Dev {
        let mut child = dev_command_with(data, extra)
            .env("K3S_BIN", "/nonexistent/k3s")
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The banner ends with the "Next" commands once everything listens.
        let mut lines = Vec::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            let done = line.starts_with("Staking on chain");
            lines.push(std::mem::take(&mut line));
            if done {
                break;
            }
        }
        // Whatever dev prints later (the workers section, logs on stdout) must not meet a
        // closed pipe: dev would die of EPIPE.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while out.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        assert!(
            lines.iter().any(|l| l.starts_with("Running")),
            "dev did not come up: {lines:?}"
        );
        let port_after = |label: &str| -> u16 {
            let line = lines
                .iter()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no {label} line in {lines:?}"));
            let url = line
                .split_whitespace()
                .nth(label.split(' ').count())
                .unwrap();
            let authority = url.split("://").nth(1).unwrap();
            let hostport = authority.split('/').next().unwrap();
            hostport.rsplit(':').next().unwrap().parse().unwrap()
        };
        let proxy = port_after("kubectl proxy");
        let admin = port_after("health/metrics");
        assert_ne!(proxy, 0);
        Dev {
            child,
            data: data.to_path_buf(),
            proxy,
            admin,
            stdout: lines,
        }
    }

    /// The URL the banner's "Running" section gives for `label` (`etcd shim`, `token
    /// webhook`, …): its last line with that label.
    pub fn url_of(&self, label: &str) -> String {
        let line = self
            .stdout
            .iter()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in {:?}", self.stdout));
        line.split_whitespace()
            .nth(label.split(' ').count())
            .unwrap()
            .to_owned()
    }

    pub fn id(&self, file: &str) -> Address {
        std::fs::read_to_string(self.data.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn token(&self, keystore: &str, stake_file: &str, role: Role) -> String {
        let ks = Keystore::load(&self.data.join(keystore)).unwrap();
        let key = ks.select(None).unwrap();
        let claims = Claims::builder(
            self.id("cluster-id"),
            key.address(),
            self.id(stake_file),
            role,
        )
        .lifetime(unix_ms_now(), 600_000)
        .random_nonce()
        .build()
        .unwrap();
        mint(key.keypair(), claims).unwrap().as_str().to_owned()
    }

    /// The CA to pin, as a user gets it: from `verify_master` against the dev chain, trusting
    /// the dev root `dev` wrote (the attestation, PCRs, nonce, registered CA and served
    /// certificate all checked). It must be the CA `dev` wrote to `proxy/ca.crt`.
    pub fn attested_ca(&self) -> Vec<u8> {
        let config = daas_chain::ChainConfig::load(&self.data.join("chain/client.json")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let verified = runtime.block_on(async {
            let chain = daas_chain::GrpcChain::new(config).unwrap();
            let check = daas_verify_master::MasterCheck {
                anchors: daas_verify_master::trust_anchors(Some(
                    &self.data.join("tee/dev-root.pem"),
                ))
                .unwrap(),
                ..daas_verify_master::MasterCheck::new(unix_ms_now())
            };
            daas_verify_master::verify_master(&chain, &check)
                .await
                .expect("the dev master passes the attestation check")
        });
        let written = std::fs::read(self.data.join("proxy/ca.crt")).unwrap();
        assert_eq!(
            verified.ca_pem.as_bytes(),
            written,
            "attested CA = proxy/ca.crt"
        );
        assert_eq!(
            verified.endpoint,
            format!("https://127.0.0.1:{}", self.proxy)
        );
        written
    }

    pub fn kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let ca = self.attested_ca();
        let path = self.data.join(format!("{name}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: d\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: d, user: u}}\ncurrent-context: c\n",
                self.proxy,
                super::proxy::base64_std(&ca)
            ),
        )
        .unwrap();
        path
    }

    pub fn admin_get(&self, path: &str) -> String {
        super::http_get(&format!("127.0.0.1:{}", self.admin), path)
    }

    /// SIGTERM, then the process must exit 0 promptly with every listener closed.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// Stops this `dev` (as [`Dev::stop`]) and starts a new one on the same data directory
    /// with `extra`: a master restart.
    pub fn restart(&mut self, extra: &[String]) {
        let start = std::time::Instant::now();
        self.terminate();
        eprintln!("dev stopped for the restart in {:?}", start.elapsed());
        let data = self.data.clone();
        *self = Dev::start(&data, extra);
    }

    fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "dev exited with {status}");
                break;
            }
            // Open requests get up to 30 s to finish (ServeLimits::drain_timeout).
            assert!(
                start.elapsed() < Duration::from_secs(45),
                "dev did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for port in [self.proxy, self.admin] {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "port {port} still open after stop"
            );
        }
    }
}

impl Drop for Dev {
    /// A test that failed before [`Dev::stop`] leaves no `dev` running behind it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
