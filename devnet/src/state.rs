//! The ledger: live objects, every object version ever written, executed transactions and
//! checkpoints. Pure data plus the commit/seal operations; no I/O and no locking.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sui_sdk_types::{
    Address, BalanceChange, CheckpointContents, CheckpointSummary, CheckpointTransactionInfo,
    Digest, GasCostSummary, Object, ObjectOut, Owner, Transaction, TransactionEffects,
    TransactionEvents, UserSignature,
};

/// Fixed facts about the chain, set at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// Id of the natively modelled `k3s_daas` package.
    pub package: Address,
    /// The shared `Cluster` object.
    pub cluster: Address,
    /// `initial_shared_version` of the cluster (always 1: created at genesis).
    pub cluster_initial_shared_version: u64,
    /// The cluster's `AdminCap`.
    pub admin_cap: Address,
    /// The address that received the `AdminCap` (the "publisher").
    pub admin: Address,
    /// The address whose key `faucet` uses, if the genesis funded one.
    pub faucet: Option<Address>,
    /// Reference gas price (MIST per gas unit) of the only epoch, 0.
    pub reference_gas_price: u64,
}

/// One executed transaction with everything the RPC layer serves about it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TxRecord {
    pub(crate) transaction: Transaction,
    pub(crate) signatures: Vec<UserSignature>,
    pub(crate) effects: TransactionEffects,
    pub(crate) events: Option<TransactionEvents>,
    /// Input objects at the versions the transaction read them.
    pub(crate) input_objects: Vec<Object>,
    /// Objects written by the transaction (created, mutated, transferred).
    pub(crate) output_objects: Vec<Object>,
    pub(crate) balance_changes: Vec<BalanceChange>,
    /// Human-readable detail of a failed execution (`ExecutionError.description`).
    pub(crate) error_description: Option<String>,
    /// Set when sealed.
    pub(crate) checkpoint: u64,
    /// Set when sealed (the checkpoint's timestamp).
    pub(crate) timestamp_ms: u64,
}

impl TxRecord {
    pub(crate) fn digest(&self) -> Digest {
        self.transaction.digest()
    }
}

/// One sealed checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointRecord {
    pub(crate) summary: CheckpointSummary,
    pub(crate) contents: CheckpointContents,
}

/// The persisted form of a [`Ledger`] (see `store.rs`).
#[derive(Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) info: ChainInfo,
    pub(crate) live: Vec<Object>,
    pub(crate) transactions: Vec<TxRecord>,
    pub(crate) checkpoints: Vec<CheckpointRecord>,
}

/// A borrowed [`Snapshot`]: the same BCS bytes, without cloning the ledger.
#[derive(Serialize)]
pub(crate) struct SnapshotRef<'a> {
    info: &'a ChainInfo,
    live: Vec<&'a Object>,
    #[serde(serialize_with = "shared_seq")]
    transactions: &'a [Arc<TxRecord>],
    #[serde(serialize_with = "shared_seq")]
    checkpoints: &'a [Arc<CheckpointRecord>],
}

/// A [`Snapshot`] that shares the ledger's history (cheap to take under the lock, encoded
/// without it): the same BCS bytes.
#[derive(Serialize)]
pub(crate) struct SnapshotView {
    info: ChainInfo,
    #[serde(serialize_with = "shared_seq")]
    live: Vec<Arc<Object>>,
    #[serde(serialize_with = "shared_seq")]
    transactions: Vec<Arc<TxRecord>>,
    #[serde(serialize_with = "shared_seq")]
    checkpoints: Vec<Arc<CheckpointRecord>>,
}

impl SnapshotView {
    /// Sequence number of the latest checkpoint it holds.
    pub(crate) fn tip(&self) -> u64 {
        (self.checkpoints.len() as u64).saturating_sub(1)
    }
}

/// Serialises shared elements as the elements themselves.
fn shared_seq<S: serde::Serializer, T: Serialize>(
    items: &[Arc<T>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(items.iter().map(|item| &**item))
}

/// The chain state.
#[derive(Debug)]
pub(crate) struct Ledger {
    info: ChainInfo,
    chain_id: String,
    /// Shared with `versions` and with snapshot views.
    live: BTreeMap<Address, Arc<Object>>,
    versions: HashMap<(Address, u64), Object>,
    transactions: Vec<Arc<TxRecord>>,
    tx_index: HashMap<Digest, usize>,
    checkpoints: Vec<Arc<CheckpointRecord>>,
    checkpoint_index: HashMap<Digest, u64>,
}

impl Ledger {
    /// A ledger whose only content is the genesis transaction, sealed as checkpoint 0.
    pub(crate) fn from_genesis(info: ChainInfo, genesis: TxRecord, timestamp_ms: u64) -> Ledger {
        let mut ledger = Ledger {
            info,
            chain_id: String::new(),
            live: BTreeMap::new(),
            versions: HashMap::new(),
            transactions: Vec::new(),
            tx_index: HashMap::new(),
            checkpoints: Vec::new(),
            checkpoint_index: HashMap::new(),
        };
        ledger.commit(genesis, timestamp_ms);
        ledger.chain_id = ledger.checkpoints[0].summary.digest().to_base58();
        ledger
    }

    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Result<Ledger, String> {
        let Snapshot {
            info,
            live,
            transactions,
            checkpoints,
        } = snapshot;
        let genesis = checkpoints
            .first()
            .ok_or_else(|| "no genesis checkpoint".to_owned())?;
        let chain_id = genesis.summary.digest().to_base58();
        let mut versions = HashMap::new();
        let mut tx_index = HashMap::new();
        for (i, tx) in transactions.iter().enumerate() {
            tx_index.insert(tx.digest(), i);
            for o in &tx.output_objects {
                versions.insert((o.object_id(), o.version()), o.clone());
            }
        }
        let mut checkpoint_index = HashMap::new();
        for (i, c) in checkpoints.iter().enumerate() {
            if c.summary.sequence_number != i as u64 {
                return Err(format!(
                    "checkpoint #{i} has sequence number {}",
                    c.summary.sequence_number
                ));
            }
            checkpoint_index.insert(c.summary.digest(), i as u64);
        }
        let live = live
            .into_iter()
            .map(|o| (o.object_id(), Arc::new(o)))
            .collect::<BTreeMap<_, _>>();
        Ok(Ledger {
            info,
            chain_id,
            live,
            versions,
            transactions: transactions.into_iter().map(Arc::new).collect(),
            tx_index,
            checkpoints: checkpoints.into_iter().map(Arc::new).collect(),
            checkpoint_index,
        })
    }

    pub(crate) fn snapshot_ref(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            info: &self.info,
            live: self.live.values().map(|o| &**o).collect(),
            transactions: &self.transactions,
            checkpoints: &self.checkpoints,
        }
    }

    /// The whole ledger for a snapshot, sharing every object and record with the ledger (a
    /// pointer per live object, transaction and checkpoint is copied).
    pub(crate) fn snapshot_view(&self) -> SnapshotView {
        SnapshotView {
            info: self.info.clone(),
            live: self.live.values().cloned().collect(),
            transactions: self.transactions.clone(),
            checkpoints: self.checkpoints.clone(),
        }
    }

    /// Replays one logged checkpoint (and its transaction) on top of the tip. The checkpoint
    /// must be the next one and link to the tip; its transaction must be the one it lists.
    pub(crate) fn replay(
        &mut self,
        transaction: Option<TxRecord>,
        checkpoint: CheckpointRecord,
    ) -> Result<(), String> {
        let seq = self.checkpoints.len() as u64;
        let summary = &checkpoint.summary;
        if summary.sequence_number != seq {
            return Err(format!(
                "checkpoint {} where {seq} was expected",
                summary.sequence_number
            ));
        }
        let tip = self.latest_checkpoint().summary.digest();
        if summary.previous_digest != Some(tip) {
            return Err(format!(
                "checkpoint {seq} does not link to checkpoint {}",
                seq - 1
            ));
        }
        if summary.content_digest != checkpoint.contents.digest() {
            return Err(format!(
                "checkpoint {seq}: contents do not match the summary"
            ));
        }
        let listed: Vec<Digest> = checkpoint
            .contents
            .transactions()
            .iter()
            .map(|t| *t.transaction())
            .collect();
        let carried: Vec<Digest> = transaction.iter().map(TxRecord::digest).collect();
        if listed != carried {
            return Err(format!(
                "checkpoint {seq} lists other transactions than the record carries"
            ));
        }
        if let Some(record) = transaction {
            if record.checkpoint != seq {
                return Err(format!(
                    "transaction in checkpoint {seq} says checkpoint {}",
                    record.checkpoint
                ));
            }
            if self.tx_index.contains_key(&record.digest()) {
                return Err(format!(
                    "checkpoint {seq} repeats transaction {}",
                    record.digest()
                ));
            }
            self.apply_objects(&record);
            self.tx_index
                .insert(record.digest(), self.transactions.len());
            self.transactions.push(Arc::new(record));
        }
        if summary.network_total_transactions != self.transactions.len() as u64 {
            return Err(format!(
                "checkpoint {seq} counts {} transactions, the ledger {}",
                summary.network_total_transactions,
                self.transactions.len()
            ));
        }
        self.checkpoint_index.insert(summary.digest(), seq);
        self.checkpoints.push(Arc::new(checkpoint));
        Ok(())
    }

    pub(crate) fn info(&self) -> &ChainInfo {
        &self.info
    }

    /// Base58 digest of checkpoint 0, as Sui defines the chain identifier.
    pub(crate) fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The latest live version of `id`.
    pub(crate) fn object(&self, id: &Address) -> Option<&Object> {
        self.live.get(id).map(|o| &**o)
    }

    /// Any version of `id` that was ever written (historical versions are kept).
    pub(crate) fn object_at(&self, id: &Address, version: u64) -> Option<&Object> {
        self.versions.get(&(*id, version))
    }

    /// Live objects owned by `owner` (address-owned), in object-id order.
    pub(crate) fn owned_by<'a>(&'a self, owner: &'a Address) -> impl Iterator<Item = &'a Object> {
        self.live
            .values()
            .map(|o| &**o)
            .filter(move |o| matches!(o.owner(), Owner::Address(a) if a == owner))
    }

    /// Live objects owned by the object `parent` (dynamic fields), in object-id order.
    pub(crate) fn children_of<'a>(
        &'a self,
        parent: &'a Address,
    ) -> impl Iterator<Item = &'a Object> {
        self.live
            .values()
            .map(|o| &**o)
            .filter(move |o| matches!(o.owner(), Owner::Object(a) if a == parent))
    }

    pub(crate) fn transaction(&self, digest: &Digest) -> Option<&TxRecord> {
        self.tx_index.get(digest).map(|&i| &*self.transactions[i])
    }

    pub(crate) fn checkpoint(&self, seq: u64) -> Option<&CheckpointRecord> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.checkpoints.get(i))
            .map(|c| &**c)
    }

    pub(crate) fn checkpoint_by_digest(&self, digest: &Digest) -> Option<&CheckpointRecord> {
        self.checkpoint_index
            .get(digest)
            .and_then(|&s| self.checkpoint(s))
    }

    /// The transactions of a checkpoint, in order.
    pub(crate) fn checkpoint_transactions<'a>(
        &'a self,
        checkpoint: &'a CheckpointRecord,
    ) -> impl Iterator<Item = &'a TxRecord> {
        checkpoint
            .contents
            .transactions()
            .iter()
            .filter_map(|info| self.transaction(info.transaction()))
    }

    /// Sequence number of the latest checkpoint.
    pub(crate) fn tip(&self) -> u64 {
        (self.checkpoints.len() as u64).saturating_sub(1)
    }

    pub(crate) fn latest_checkpoint(&self) -> &CheckpointRecord {
        // There is always a genesis checkpoint.
        &self.checkpoints[self.checkpoints.len() - 1]
    }

    pub(crate) fn genesis_timestamp_ms(&self) -> u64 {
        self.checkpoints[0].summary.timestamp_ms
    }

    /// Applies an executed transaction to the live set and seals it into its own checkpoint.
    /// Returns the checkpoint sequence number.
    pub(crate) fn commit(&mut self, mut record: TxRecord, now_ms: u64) -> u64 {
        self.apply_objects(&record);
        let seq = self.checkpoints.len() as u64;
        let timestamp_ms = self.next_timestamp(now_ms);
        record.checkpoint = seq;
        record.timestamp_ms = timestamp_ms;
        let info = CheckpointTransactionInfo::new(
            record.digest(),
            record.effects.digest(),
            record.signatures.clone(),
        );
        let gas = record.effects.gas_summary().clone();
        self.tx_index
            .insert(record.digest(), self.transactions.len());
        self.transactions.push(Arc::new(record));
        self.seal(vec![info], &gas, timestamp_ms)
    }

    /// Applies a transaction's deletions and writes to the live set and the version history.
    fn apply_objects(&mut self, record: &TxRecord) {
        if let TransactionEffects::V2(effects) = &record.effects {
            for change in &effects.changed_objects {
                if matches!(change.output_state, ObjectOut::NotExist) {
                    self.live.remove(&change.object_id);
                }
            }
        }
        for object in &record.output_objects {
            self.live
                .insert(object.object_id(), Arc::new(object.clone()));
            self.versions
                .insert((object.object_id(), object.version()), object.clone());
        }
    }

    /// The latest transaction, if it was sealed in checkpoint `seq` (for the log record).
    pub(crate) fn transaction_in(&self, seq: u64) -> Option<&TxRecord> {
        self.transactions
            .last()
            .filter(|t| t.checkpoint == seq)
            .map(|t| &**t)
    }

    /// Seals a checkpoint without transactions (the idle heartbeat that keeps subscriptions live).
    pub(crate) fn seal_empty(&mut self, now_ms: u64) -> u64 {
        let timestamp_ms = self.next_timestamp(now_ms);
        self.seal(Vec::new(), &GasCostSummary::default(), timestamp_ms)
    }

    fn next_timestamp(&self, now_ms: u64) -> u64 {
        self.checkpoints
            .last()
            .map_or(now_ms, |c| c.summary.timestamp_ms.max(now_ms))
    }

    fn seal(
        &mut self,
        transactions: Vec<CheckpointTransactionInfo>,
        gas: &GasCostSummary,
        timestamp_ms: u64,
    ) -> u64 {
        let seq = self.checkpoints.len() as u64;
        let previous = self.checkpoints.last().map(|c| &c.summary);
        let mut rolling = previous
            .map(|p| p.epoch_rolling_gas_cost_summary.clone())
            .unwrap_or_default();
        rolling.computation_cost = rolling
            .computation_cost
            .saturating_add(gas.computation_cost);
        rolling.storage_cost = rolling.storage_cost.saturating_add(gas.storage_cost);
        rolling.storage_rebate = rolling.storage_rebate.saturating_add(gas.storage_rebate);
        rolling.non_refundable_storage_fee = rolling
            .non_refundable_storage_fee
            .saturating_add(gas.non_refundable_storage_fee);
        let contents = CheckpointContents::new_v1(transactions);
        let summary = CheckpointSummary {
            epoch: 0,
            sequence_number: seq,
            network_total_transactions: self.transactions.len() as u64,
            content_digest: contents.digest(),
            previous_digest: previous.map(CheckpointSummary::digest),
            epoch_rolling_gas_cost_summary: rolling,
            timestamp_ms,
            checkpoint_commitments: Vec::new(),
            end_of_epoch_data: None,
            version_specific_data: Vec::new(),
        };
        self.checkpoint_index.insert(summary.digest(), seq);
        self.checkpoints
            .push(Arc::new(CheckpointRecord { summary, contents }));
        seq
    }
}
