//! A running devnet: the ledger behind a lock, serialised execution, persistence after every
//! checkpoint (`persist.rs`), the idle heartbeat, and checkpoint notifications for subscribers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sui_sdk_types::{Address, Digest, Object, Transaction, UserSignature};
use tokio::sync::{Mutex, watch};

use crate::client_config::ClientConfig;
use crate::error::DevnetError;
use crate::exec::{self, Rejection};
use crate::persist::{Persistence, Persister};
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
    /// Serialises execution, sealing and persistence (records are logged in order).
    exec: Mutex<Persister>,
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
        let mut persister = self.exec.lock().await;
        let seq = {
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
            seq
        };
        persister.after_checkpoint(&self.ledger, seq).await;
        self.tip.send_replace(seq);
        Ok(digest)
    }

    /// Seals an empty checkpoint if none was sealed for `idle` (always, for `None`). Returns
    /// its sequence number.
    async fn heartbeat(&self, idle: Option<Duration>) -> Option<u64> {
        let mut persister = self.exec.lock().await;
        let seq = {
            let mut ledger = self.write();
            let now = now_ms();
            let last = ledger.latest_checkpoint().summary.timestamp_ms;
            if let Some(idle) = idle {
                let idle = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
                if now.saturating_sub(last) < idle {
                    return None;
                }
            }
            ledger.seal_empty(now)
        };
        persister.after_checkpoint(&self.ledger, seq).await;
        self.tip.send_replace(seq);
        Some(seq)
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
        let recovered = store::recover(data_dir)?;
        let persister = Persister::open(data_dir, &recovered)?;
        let ledger = recovered.ledger;
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
                exec: Mutex::new(persister),
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

    /// Executes a signed transaction and seals it into its own checkpoint, persisted before
    /// this returns (the path `ExecuteTransaction` takes, without gRPC). A transaction that was
    /// already executed is not executed again. Failed execution is a success here (failed
    /// effects on the chain); a transaction that cannot execute at all is
    /// [`DevnetError::Rejected`].
    pub async fn execute(
        &self,
        transaction: Transaction,
        signatures: Vec<UserSignature>,
    ) -> Result<Digest, DevnetError> {
        self.node
            .execute(transaction, signatures)
            .await
            .map_err(|r| DevnetError::Rejected {
                code: r.code,
                message: r.message,
            })
    }

    /// Seals an empty checkpoint now (what the idle heartbeat does) and persists it; returns
    /// its sequence number.
    pub async fn seal_empty_checkpoint(&self) -> u64 {
        self.node
            .heartbeat(None)
            .await
            .expect("a heartbeat without an idle time always seals")
    }

    /// The live version of object `id`.
    pub fn object(&self, id: &Address) -> Option<Object> {
        self.node.read().object(id).cloned()
    }

    /// The live objects owned by the address `owner`, in object-id order.
    pub fn owned_objects(&self, owner: &Address) -> Vec<Object> {
        self.node.read().owned_by(owner).cloned().collect()
    }

    /// Switches how checkpoints are persisted from now on (the default is
    /// [`Persistence::Log`] with the default policy). Unless switching to
    /// [`Persistence::Off`], the whole chain is written as a snapshot first.
    pub async fn set_persistence(&self, mode: Persistence) -> Result<(), DevnetError> {
        let mut persister = self.node.exec.lock().await;
        persister.set_mode(&self.node.ledger, mode).await
    }

    /// Waits until a snapshot being written in the background is durable (before a process
    /// that reopens the data directory, e.g. a test, looks at it).
    pub async fn flush(&self) {
        self.node.exec.lock().await.flush().await;
    }

    /// Runs the idle heartbeat until the node stops.
    pub(crate) async fn run_heartbeat(self, idle: Duration) {
        let mut stopping = self.node.subscribe_stopping();
        let period = (idle / 4).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {
                    self.node.heartbeat(Some(idle)).await;
                }
                _ = stopping.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
