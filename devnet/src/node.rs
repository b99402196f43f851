//! A running devnet: the ledger behind a lock, serialised execution, persistence after every
//! checkpoint, the idle heartbeat, and checkpoint notifications for subscribers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sui_sdk_types::{Digest, Transaction, UserSignature};
use tokio::sync::{Mutex, watch};

use crate::client_config::ClientConfig;
use crate::error::DevnetError;
use crate::exec::{self, Rejection};
use crate::state::{ChainInfo, Ledger};
use crate::store;
use crate::trust::DevnetOptions;
use daas_attestation::TrustAnchor;

/// Wall-clock time in ms since the UNIX epoch (the devnet's clock).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Default idle heartbeat: a checkpoint without transactions after this long without one, so
/// that checkpoint subscriptions make progress well within a client's 30 s idle-body watchdog.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

pub(crate) struct Node {
    data_dir: PathBuf,
    /// The roots `load_nitro_attestation` trusts (see [`DevnetOptions`]).
    anchors: Vec<TrustAnchor>,
    ledger: RwLock<Ledger>,
    /// Serialises execution, sealing and persistence (snapshots are written in order).
    exec: Mutex<()>,
    /// Latest checkpoint sequence number.
    tip: watch::Sender<u64>,
    /// Set when the server stops, so open subscription streams end.
    stopping: watch::Sender<bool>,
}

impl Node {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscribe_tip(&self) -> watch::Receiver<u64> {
        self.tip.subscribe()
    }

    pub(crate) fn subscribe_stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Executes a signed transaction, seals it into a checkpoint and persists the chain. A
    /// transaction that was already executed is not executed again: its digest is returned.
    pub(crate) async fn execute(
        &self,
        tx: Transaction,
        signatures: Vec<UserSignature>,
    ) -> Result<Digest, Rejection> {
        let digest = tx.digest();
        let _serial = self.exec.lock().await;
        let (seq, bytes) = {
            let mut ledger = self.write();
            if ledger.transaction(&digest).is_some() {
                tracing::debug!(%digest, "transaction already executed");
                return Ok(digest);
            }
            let now = now_ms();
            let record = exec::execute(&ledger, tx, signatures, now, &self.anchors)?;
            let ok = matches!(
                record.effects.status(),
                sui_sdk_types::ExecutionStatus::Success
            );
            let seq = ledger.commit(record, now);
            tracing::info!(%digest, checkpoint = seq, success = ok, "transaction executed");
            (seq, store::encode(&ledger))
        };
        self.persist(bytes).await;
        self.tip.send_replace(seq);
        Ok(digest)
    }

    /// Seals an empty checkpoint if none was sealed for `idle`.
    async fn heartbeat(&self, idle: Duration) {
        let _serial = self.exec.lock().await;
        let (seq, bytes) = {
            let mut ledger = self.write();
            let now = now_ms();
            let last = ledger.latest_checkpoint().summary.timestamp_ms;
            if now.saturating_sub(last) < u64::try_from(idle.as_millis()).unwrap_or(u64::MAX) {
                return;
            }
            let seq = ledger.seal_empty(now);
            (seq, store::encode(&ledger))
        };
        self.persist(bytes).await;
        self.tip.send_replace(seq);
    }

    async fn persist(&self, bytes: Result<Vec<u8>, DevnetError>) {
        let dir = self.data_dir.clone();
        let result = match bytes {
            Ok(bytes) => tokio::task::spawn_blocking(move || store::save(&dir, &bytes))
                .await
                .unwrap_or_else(|e| Err(DevnetError::Task(format!("persist: {e}")))),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the chain snapshot; the chain goes on in memory");
        }
    }
}

/// A devnet chain opened from its data directory. Cheap to clone.
#[derive(Clone)]
pub struct Devnet {
    pub(crate) node: Arc<Node>,
}

impl Devnet {
    /// Opens the chain stored in `data_dir` (see [`crate::genesis::init`]), trusting only the
    /// AWS Nitro root for attestation documents.
    pub fn open(data_dir: &Path) -> Result<Devnet, DevnetError> {
        Devnet::open_with(data_dir, &DevnetOptions::default())
    }

    /// Opens the chain stored in `data_dir` with `options` (e.g. a trusted dev attestation
    /// root).
    pub fn open_with(data_dir: &Path, options: &DevnetOptions) -> Result<Devnet, DevnetError> {
        let anchors = options.anchors()?;
        if !store::exists(data_dir) {
            return Err(DevnetError::NotInitialised(data_dir.to_owned()));
        }
        let ledger = store::load(data_dir)?;
        let tip = ledger.tip();
        tracing::info!(
            chain_id = ledger.chain_id(),
            checkpoint = tip,
            "devnet chain loaded"
        );
        Ok(Devnet {
            node: Arc::new(Node {
                data_dir: data_dir.to_owned(),
                anchors,
                ledger: RwLock::new(ledger),
                exec: Mutex::new(()),
                tip: watch::Sender::new(tip),
                stopping: watch::Sender::new(false),
            }),
        })
    }

    /// Genesis facts (package, cluster, admin, …).
    pub fn info(&self) -> ChainInfo {
        self.node.read().info().clone()
    }

    /// Base58 digest of checkpoint 0.
    pub fn chain_id(&self) -> String {
        self.node.read().chain_id().to_owned()
    }

    /// Sequence number of the latest checkpoint.
    pub fn checkpoint_height(&self) -> u64 {
        self.node.read().tip()
    }

    /// Rewrites `client.json` in the data directory with `rpc` as the endpoint.
    pub fn write_client_config(&self, rpc: &str) -> Result<ClientConfig, DevnetError> {
        let path = ClientConfig::path(&self.node.data_dir);
        let mut config = match ClientConfig::load(&path) {
            Ok(c) => c,
            Err(_) => {
                let ledger = self.node.read();
                let info = ledger.info();
                ClientConfig {
                    rpc: String::new(),
                    chain_id: ledger.chain_id().to_owned(),
                    package: info.package,
                    cluster: info.cluster,
                    cluster_initial_shared_version: info.cluster_initial_shared_version,
                    admin_cap: info.admin_cap,
                    admin: Some(info.admin),
                    admin_keystore: None,
                    faucet: info.faucet,
                    faucet_keystore: None,
                }
            }
        };
        config.rpc = rpc.to_owned();
        config.save(&path)?;
        Ok(config)
    }

    /// Runs the idle heartbeat until the node stops.
    pub(crate) async fn run_heartbeat(self, idle: Duration) {
        let mut stopping = self.node.subscribe_stopping();
        let period = (idle / 4).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => self.node.heartbeat(idle).await,
                _ = stopping.changed() => return,
            }
        }
    }
}
