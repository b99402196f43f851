//! Shared by the tests: the development chain in its own process, a staker with a fresh
//! keystore, and (`master`) a TLS stand-in for the master's join endpoint.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses a part

pub mod master;

use std::path::Path;
use std::process::{Command, Output};

use daas_wallet::{Scheme, WalletKey, write_keystore};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_staker-agent");

/// The devnet binary, built by `cargo test --workspace`, in its own process.
pub struct Devnet {
    pub process: daas_devnet::process::DevnetProcess,
}

impl Devnet {
    pub fn start(dir: &Path) -> Devnet {
        Devnet::start_with(dir, None)
    }

    /// Started with `--trust-dev-attestation-root` when `dev_root` is given.
    pub fn start_with(dir: &Path, dev_root: Option<&Path>) -> Devnet {
        let bin = daas_devnet::process::binary().unwrap();
        Devnet {
            process: daas_devnet::process::DevnetProcess::start_with(&bin, dir, 0, dev_root)
                .unwrap(),
        }
    }

    pub fn config(&self) -> String {
        self.process.client_config_path().display().to_string()
    }

    pub fn faucet(&self, to: &str, sui: &str) {
        let out = Command::new(daas_devnet::process::binary().unwrap())
            .args(["faucet", "--to", to, "--amount", sui, "--data-dir"])
            .arg(&self.process.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub struct Agent {
    pub keystore: String,
    pub address: String,
    pub config: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// The devnet's generated admin key, which holds the cluster's AdminCap.
    pub fn admin(devnet: &Devnet) -> Agent {
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(devnet.config()).unwrap()).unwrap();
        Agent {
            keystore: config["admin_keystore"].as_str().unwrap().to_owned(),
            address: config["admin"].as_str().unwrap().to_owned(),
            config: devnet.config(),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `admin grant --account address --role role` with the devnet's admin key.
    pub fn granted(devnet: &Devnet, address: &str, role: &str) {
        Agent::admin(devnet).ok_json(&["admin", "grant", "--account", address, "--role", role]);
    }

    pub fn new(devnet: &Devnet) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let key = WalletKey::generate(Scheme::Ed25519);
        let path = dir.path().join("sui.keystore");
        write_keystore(&path, std::slice::from_ref(&key)).unwrap();
        Agent {
            keystore: path.display().to_string(),
            address: key.address().to_string(),
            config: devnet.config(),
            _dir: dir,
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--keystore")
            .arg(&self.keystore)
            .args(args)
            .arg("--chain-config")
            .arg(&self.config)
            .env_clear()
            .output()
            .unwrap()
    }

    pub fn ok_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Agent {
    /// The binary with this agent's keystore, `args`, then `--chain-config`; an empty
    /// environment (plus `PATH`, which the supervised children need).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--keystore")
            .arg(&self.keystore)
            .args(args)
            .arg("--chain-config")
            .arg(&self.config)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        cmd
    }

    /// Stakes as a worker for `node` (after the admin's grant); returns the record id.
    pub fn worker_stake(&self, devnet: &Devnet, node: &str) -> String {
        devnet.faucet(&self.address, "5");
        Agent::granted(devnet, &self.address, "worker");
        let v = self.ok_json(&[
            "stake",
            "--amount",
            "1",
            "--role",
            "worker",
            "--node-name",
            node,
        ]);
        v["record"].as_str().unwrap().to_owned()
    }

    /// The cluster id of the devnet's deployment.
    pub fn cluster(&self) -> String {
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.config).unwrap()).unwrap();
        config["cluster"].as_str().unwrap().to_owned()
    }
}
