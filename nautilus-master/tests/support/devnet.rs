//! The development chain (`k3s-daas-devnet`) as a child process, for tests that need a chain.
//!
//! The binary is built by `cargo test --workspace` (it is a workspace member); set
//! `DAAS_DEVNET_BIN` to use another build.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daas_chain::tx::{self, DEFAULT_GAS_BUDGET};
use daas_chain::{ChainConfig, GrpcChain};
use daas_wallet::{Keystore, WalletKey};
use sui_sdk_types::Address;

pub const SUI: u64 = 1_000_000_000;

pub fn devnet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DAAS_DEVNET_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/k3s-daas-devnet
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("k3s-daas-devnet");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p k3s-daas-devnet` (cargo test --workspace builds it) or set DAAS_DEVNET_BIN",
        bin.display()
    );
    bin
}

/// A running devnet; SIGKILLed on drop unless stopped.
pub struct DevnetProcess {
    child: Child,
    pub dir: PathBuf,
    pub config: ChainConfig,
}

impl DevnetProcess {
    /// Starts (initialising on first start) a devnet on `dir`, on a free loopback port.
    pub fn start(dir: &Path) -> DevnetProcess {
        let mut child = Command::new(devnet_bin())
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--heartbeat-ms",
                "500",
                "--data-dir",
            ])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("listening on "), "devnet said {first:?}");
        let config = ChainConfig::load(&dir.join("client.json")).unwrap();
        DevnetProcess {
            child,
            dir: dir.to_owned(),
            config,
        }
    }

    pub fn chain(&self) -> GrpcChain {
        GrpcChain::new(self.config.clone())
            .unwrap()
            .with_checkpoint_timeout(Duration::from_secs(20))
    }

    /// The genesis admin key (holds the AdminCap and funds).
    pub fn admin_key(&self) -> WalletKey {
        let path = self.config.admin_keystore.as_ref().unwrap();
        Keystore::load(path).unwrap().keys()[0].clone()
    }

    pub fn admin_cap(&self) -> Address {
        self.config.admin_cap.unwrap()
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "devnet exited with {status}");
    }
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `amount` MIST from `from` to `to`.
pub async fn fund(chain: &GrpcChain, from: &WalletKey, to: Address, amount: u64) {
    let gas = chain.gas_for(from.address(), amount).await.unwrap();
    let t = tx::transfer_sui(chain.config(), &gas, to, amount).unwrap();
    chain.sign_and_execute(from.keypair(), t).await.unwrap();
}

/// Total SUI `owner` holds in coins.
pub async fn balance(chain: &GrpcChain, owner: Address) -> u64 {
    use daas_chain::Chain;
    chain
        .sui_coins(owner)
        .await
        .unwrap()
        .iter()
        .map(|c| c.balance)
        .sum()
}

pub const BUDGET: u64 = DEFAULT_GAS_BUDGET;
