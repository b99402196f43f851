//! The chain of `nautilus-master dev`: the development Sui chain (`k3s-daas-devnet`, not Sui)
//! served in this process, and the dev wallets funded, granted their role (worker and admin
//! stakes need the cluster admin's grant) and staked on it through the real client.
//!
//! The devnet keeps its state under `<data-dir>/chain` (restarts keep stakes), listens on
//! `--chain-listen` (default `127.0.0.1:9000`, the devnet's usual port, so
//! `staker-agent --rpc devnet` finds it) and writes `<data-dir>/chain/client.json` for
//! `staker-agent --chain-config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use daas_chain::{Chain, ChainConfig, GrpcChain, RecordObject, tx};
use daas_chain_types::Address;
use daas_chain_types::{PackageEvent, consts};
use daas_devnet::LocalDevnet;
use daas_seal::Role;
use daas_wallet::{Keystore, WalletKey};

/// Idle heartbeat: the devnet seals an empty checkpoint after this long, so a follower sees
/// progress (and a stalled stream is noticed) even when nobody transacts.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Silence after which the dev follower counts its stream as lost: three heartbeats.
pub const STALE_AFTER: Duration = Duration::from_secs(6);

/// The devnet running inside this process.
pub struct DevChain {
    pub url: String,
    pub data_dir: PathBuf,
    pub config: ChainConfig,
    pub chain: GrpcChain,
    devnet: LocalDevnet,
}

impl std::fmt::Debug for DevChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevChain")
            .field("url", &self.url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// How long stopping the dev chain waits for its clients' connections to close.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl DevChain {
    /// Opens (creating on first use) the devnet in `dir` and serves it on `listen`; its
    /// `load_nitro_attestation` trusts the AWS root and `dev_root` (the dev attester's root).
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        dev_root: Option<daas_attestation::TrustAnchor>,
    ) -> Result<DevChain> {
        let options = daas_devnet::DevnetOptions {
            trust_dev_attestation_root: dev_root,
        };
        let devnet = LocalDevnet::start_with(listen, dir, None, Some(HEARTBEAT), &options)
            .await
            .with_context(|| {
                format!("starting the dev chain on {listen} (is another devnet running? use --chain-listen)")
            })?;
        let url = devnet.url();
        let config = ChainConfig::load(&dir.join(daas_devnet::CLIENT_CONFIG_FILE))?;
        let chain = GrpcChain::new(config.clone())?;
        chain
            .check_chain()
            .await
            .context("the dev chain does not answer")?;
        Ok(DevChain {
            url,
            data_dir: dir.to_owned(),
            config,
            chain,
            devnet,
        })
    }

    /// Path of the deployment file for `staker-agent --chain-config`.
    pub fn client_config_path(&self) -> PathBuf {
        self.data_dir.join(daas_devnet::CLIENT_CONFIG_FILE)
    }

    /// The devnet's generated admin key, which holds the cluster's AdminCap.
    fn admin_key(&self) -> Result<WalletKey> {
        let path = self
            .devnet
            .config
            .admin_keystore
            .as_ref()
            .context("the dev chain has no admin key")?;
        Ok(Keystore::load(path)?.select(None)?.clone())
    }

    /// Makes sure `account` holds the cluster admin's grant for `role` when the role needs one
    /// (worker, admin): grants it with the devnet's admin key if absent, so restarts on the same
    /// chain grant nothing twice.
    async fn ensure_grant(&self, account: Address, role: Role) -> Result<()> {
        if !consts::role_requires_grant(role.code()) {
            return Ok(());
        }
        let cluster = self.chain.cluster().await?.value.cluster;
        let mask = self
            .chain
            .role_grants(cluster.grants.id, account)
            .await?
            .value;
        if consts::mask_grants(mask, role.code()) {
            return Ok(());
        }
        let admin = self.admin_key()?;
        let cap = self.chain.object_ref(self.devnet.config.admin_cap).await?;
        let gas = self.chain.gas_for(admin.address(), 0).await?;
        let t = tx::grant_role(&self.config, &gas, cap, account, role.code())?;
        self.chain
            .sign_and_execute(admin.keypair(), t)
            .await
            .with_context(|| format!("granting {account} the {role} role"))?;
        tracing::info!(%account, %role, "dev wallet granted its role on the dev chain");
        Ok(())
    }

    fn faucet_key(&self) -> Result<WalletKey> {
        let path = self
            .devnet
            .config
            .faucet_keystore
            .as_ref()
            .context("the dev chain has no faucet key")?;
        Ok(Keystore::load(path)?.select(None)?.clone())
    }

    /// Makes sure `account` may stake `amount` MIST for `role` itself: the grant when the role
    /// needs one, and funds (stake plus gas) from the faucet. For the dev worker wallet, whose
    /// stake the newcomer makes with `staker-agent stake`.
    pub async fn ensure_ready_to_stake(
        &self,
        account: Address,
        role: Role,
        amount: u64,
    ) -> Result<()> {
        self.ensure_grant(account, role).await?;
        self.ensure_funds(account, amount).await
    }

    async fn ensure_funds(&self, account: Address, amount: u64) -> Result<()> {
        let needed = amount + 4 * tx::DEFAULT_GAS_BUDGET;
        let have: u64 = self
            .chain
            .sui_coins(account)
            .await?
            .iter()
            .map(|c| c.balance)
            .sum();
        if have < needed {
            let mut client = self.chain.rpc_client();
            daas_devnet::faucet::fund(&mut client, &self.faucet_key()?, account, needed)
                .await
                .context("funding a dev wallet")?;
        }
        Ok(())
    }

    /// An active stake record of `role` owned by `key` in the cluster — the existing one, or a
    /// new one of `amount` MIST (funding `key` from the faucet first). A worker or admin `key` is
    /// granted the role first unless it holds the grant already.
    pub async fn ensure_stake(
        &self,
        key: &WalletKey,
        role: Role,
        amount: u64,
    ) -> Result<RecordObject> {
        // First, also for an existing record: the control plane refuses a worker or admin record
        // whose owner lacks the grant.
        self.ensure_grant(key.address(), role).await?;
        let cluster = self.config.cluster;
        let existing = self
            .chain
            .stake_records_of(key.address())
            .await?
            .into_iter()
            .find(|r| {
                r.record.cluster_id == cluster
                    && r.record.role == role.code()
                    && r.record.status == consts::STATUS_ACTIVE
            });
        if let Some(r) = existing {
            let table = self.chain.cluster().await?.value.cluster.slashed.id;
            if !self.chain.is_slashed(table, r.object.id).await?.value {
                return Ok(r);
            }
        }
        self.ensure_funds(key.address(), amount).await?;
        let gas = self.chain.gas_for(key.address(), amount).await?;
        let t = tx::stake(&self.config, &gas, amount, role.code(), "")?;
        let executed = self
            .chain
            .sign_and_execute(key.keypair(), t)
            .await
            .context("staking a dev wallet")?;
        let id = executed
            .events
            .iter()
            .find_map(|e| match e {
                PackageEvent::Staked(s) => Some(s.record_id),
                _ => None,
            })
            .context("the stake emitted no Staked event")?;
        self.chain
            .stake_record(id)
            .await?
            .value
            .context("the new stake record is not readable")
    }

    /// Registers the dev enclave on the dev chain, the way an operator registers a real one:
    /// the cluster's expected PCRs are set to the dev image's (with the admin key, only when they
    /// differ), then one PTB of `load_nitro_attestation` → `enclave::register_enclave`, signed by
    /// the cluster's enclave operator (the devnet's admin key), with a fresh document from
    /// `service`.
    pub async fn register_enclave(
        &self,
        service: &crate::tee::AttestationService,
        pcrs: [&[u8]; 3],
        endpoint: &str,
    ) -> Result<()> {
        let admin = self.admin_key()?;
        let cluster = self.chain.cluster().await?.value.cluster;
        if [
            cluster.expected_pcr0.as_slice(),
            cluster.expected_pcr1.as_slice(),
            cluster.expected_pcr2.as_slice(),
        ] != pcrs
        {
            let cap = self.chain.object_ref(self.devnet.config.admin_cap).await?;
            let gas = self.chain.gas_for(admin.address(), 0).await?;
            let t = tx::set_expected_pcrs(&self.config, &gas, cap, pcrs)?;
            self.chain
                .sign_and_execute(admin.keypair(), t)
                .await
                .context("setting the dev image's PCRs as the cluster's expected PCRs")?;
        }
        anyhow::ensure!(
            cluster.enclave_operator == admin.address(),
            "the dev cluster's enclave operator {} is not the dev chain's admin {}",
            cluster.enclave_operator,
            admin.address()
        );
        let document = service
            .document(None)
            .await
            .context("attesting the dev enclave")?;
        let gas = self.chain.gas_for(admin.address(), 0).await?;
        let t = tx::register_enclave(&self.config, &gas, &document, endpoint)?;
        self.chain
            .sign_and_execute(admin.keypair(), t)
            .await
            .context("registering the dev enclave on the dev chain")?;
        tracing::info!(%endpoint, "dev enclave registered on the dev chain");
        Ok(())
    }

    /// Stops serving and waits for the devnet to flush.
    /// Stops the dev chain's server, giving its clients (a worker's `staker-agent run` polls
    /// it) at most [`SHUTDOWN_GRACE`] to let go of their connections.
    pub async fn shutdown(self) -> Result<()> {
        match tokio::time::timeout(SHUTDOWN_GRACE, self.devnet.shutdown()).await {
            Ok(result) => result.context("stopping the dev chain"),
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "the dev chain's clients kept their connections open; stopping without them");
                Ok(())
            }
        }
    }
}
