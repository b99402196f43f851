//! The development chain (`k3s-daas-devnet`) as a child process, for tests that need a chain.
//!
//! The binary is built by `cargo test --workspace` (it is a workspace member); set
//! `DAAS_DEVNET_BIN` to use another build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use daas_chain::tx::{self, DEFAULT_GAS_BUDGET};
use daas_chain::{ChainConfig, GrpcChain};
use daas_wallet::{Keystore, WalletKey};
use sui_sdk_types::Address;

pub const SUI: u64 = 1_000_000_000;

/// A running devnet process and its deployment file.
pub struct DevnetProcess {
    process: Option<daas_devnet::process::DevnetProcess>,
    pub dir: PathBuf,
    pub config: ChainConfig,
}

impl DevnetProcess {
    /// Starts (initialising on first start) a devnet on `dir`, on a free loopback port, with an
    /// idle checkpoint every 500 ms.
    pub fn start(dir: &Path) -> DevnetProcess {
        Self::start_with_heartbeat(dir, 500)
    }

    /// As [`DevnetProcess::start`]; `heartbeat_ms` 0 seals checkpoints only for transactions.
    pub fn start_with_heartbeat(dir: &Path, heartbeat_ms: u64) -> DevnetProcess {
        let bin = daas_devnet::process::binary().unwrap();
        let process = daas_devnet::process::DevnetProcess::start(&bin, dir, heartbeat_ms).unwrap();
        let config = ChainConfig::load(&process.client_config_path()).unwrap();
        DevnetProcess {
            process: Some(process),
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

    /// Freezes (`true`, SIGSTOP) or thaws (SIGCONT) the process: to its clients, a frozen
    /// devnet looks like a network partition (connections stay open, nothing answers).
    pub fn freeze(&self, frozen: bool) {
        use nix::sys::signal::Signal;
        let signal = if frozen {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        self.process.as_ref().unwrap().signal(signal).unwrap();
    }

    /// The admin grants `account` the privileged `role` (worker or admin), which staking for
    /// that role needs (`cluster::grant_role`).
    pub async fn grant(&self, chain: &GrpcChain, account: Address, role: u8) {
        let admin = self.admin_key();
        let cap = chain.object_ref(self.admin_cap()).await.unwrap();
        let gas = chain.gas_for(admin.address(), 0).await.unwrap();
        let t = tx::grant_role(chain.config(), &gas, cap, account, role).unwrap();
        chain.sign_and_execute(admin.keypair(), t).await.unwrap();
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        let status = self.process.take().unwrap().stop().unwrap();
        assert!(status.success(), "devnet exited with {status}");
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

/// A Seal token of `key` for `stake` in `cluster`, valid for ten minutes from now.
pub fn token(
    key: &WalletKey,
    cluster: Address,
    stake: Address,
    role: daas_seal::Role,
    node: Option<&str>,
    epoch: u64,
) -> String {
    let mut b = daas_seal::Claims::builder(cluster, key.address(), stake, role)
        .lifetime(nautilus_master::auth::unix_ms_now(), 600_000)
        .token_epoch(epoch)
        .random_nonce();
    if let Some(n) = node {
        b = b.node_name(daas_seal::NodeName::new(n).unwrap());
    }
    daas_seal::mint(key.keypair(), b.build().unwrap())
        .unwrap()
        .into_string()
}
