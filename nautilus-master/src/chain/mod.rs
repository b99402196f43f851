//! The chain-backed [`StakeView`]: stake records and role minimums read from Sui, cached while
//! a checkpoint follower keeps the cache honest.
//!
//! - A record is read with one `GetObject` (type, owner and layout checked by `daas-chain`),
//!   plus one read of the cluster's slashed-table entry for it; the cluster object (role
//!   minimums, slashed table id) is read once and re-read when it changes.
//! - **Every answer must be as new as what the follower has handled.** Each read carries the
//!   checkpoint height the endpoint reported (`x-sui-checkpoint-height`); an answer below the
//!   follower's cursor may miss a change the follower already evicted for (a lagging replica
//!   behind a load balancer), so it is retried and, if still behind, refused as unavailable —
//!   never used, never cached. Object versions are checked against what the follower saw
//!   written, for records and the cluster alike.
//! - **Slashes are sticky.** A record named by a `Slashed` event is slashed for this view from
//!   then on, whatever any replica answers, until the record is withdrawn (deleted).
//! - Reads are cached only while the follower ([`follow`]) is streaming: every checkpoint evicts
//!   the records and tokens it touches (unstake, revoke, slash, withdraw, add-stake), a cluster
//!   write drops the cluster snapshot, and a lost stream drops everything and turns caching off
//!   until the stream is back. Revocation is therefore visible within one checkpoint.
//! - Records that do not exist are cached apart from the records that do, in a small cache of
//!   their own, so tokens naming random ids cannot push real records out.
//! - When the follower is down the view still answers (straight from the chain) but reports
//!   itself not fresh, so readiness fails and the authenticator stops caching verdicts.

pub mod follow;

use std::collections::HashSet;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use daas_chain::follow::FollowerStatus;
use daas_chain::{AtCheckpoint, Chain, ChainError};
use daas_chain_types::consts;
use daas_seal::{Address, Role};
use lru::LruCache;

use crate::auth::{StakeRecord, StakeStatus, StakeView, StakeViewError};

/// Cached cluster parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClusterSnapshot {
    min_worker: u64,
    min_user: u64,
    min_admin: u64,
    slashed_table: Address,
    grants_table: Address,
}

/// Stake records from the chain. See the module docs.
pub struct ChainStakeView<C> {
    chain: C,
    cluster: Address,
    records: Mutex<LruCache<Address, StakeRecord>>,
    /// Ids the chain says hold no record (kept apart, see the module docs).
    absent: Mutex<LruCache<Address, ()>>,
    snapshot: RwLock<Option<ClusterSnapshot>>,
    /// Bumped by every eviction: a read that started before one must not be cached.
    generation: AtomicU64,
    /// The newest version the follower has seen written for each changed object (records and
    /// the cluster): a read that returns an older version (a lagging RPC backend) is stale.
    floors: Mutex<LruCache<Address, u64>>,
    /// Records named by `Slashed` events: slashed whatever a replica says.
    slashed: Mutex<HashSet<Address>>,
    follower: Option<Arc<FollowerStatus>>,
    /// Bumped after each checkpoint the follower handled that wrote objects (see
    /// [`ChainStakeView::changes`]).
    changes: tokio::sync::watch::Sender<u64>,
}

impl<C> std::fmt::Debug for ChainStakeView<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStakeView")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// Cached records (hits avoid two object reads each).
pub const DEFAULT_RECORD_CACHE: usize = 16_384;
/// Cached "no such record" answers.
pub const DEFAULT_ABSENT_CACHE: usize = 4_096;
/// How often a read that came back older than the follower's cursor is tried again.
const STALE_RETRIES: u32 = 3;
/// Pause before the first retry of a stale read (doubled each time).
const STALE_BACKOFF: Duration = Duration::from_millis(20);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single cache operation: a panic cannot leave it half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lru<K: std::hash::Hash + Eq, V>(capacity: usize) -> Mutex<LruCache<K, V>> {
    Mutex::new(LruCache::new(
        NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
    ))
}

impl<C: Chain> ChainStakeView<C> {
    /// A view of `cluster`'s records. Without a follower status it never caches.
    pub fn new(chain: C, cluster: Address, follower: Option<Arc<FollowerStatus>>) -> Self {
        ChainStakeView {
            chain,
            cluster,
            records: lru(DEFAULT_RECORD_CACHE),
            absent: lru(DEFAULT_ABSENT_CACHE),
            snapshot: RwLock::new(None),
            generation: AtomicU64::new(0),
            floors: lru(DEFAULT_RECORD_CACHE),
            slashed: Mutex::new(HashSet::new()),
            follower,
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A receiver that sees a new value after each handled checkpoint that wrote objects
    /// (stake records, the cluster) and after each reconnection: the worker lifecycle wakes on
    /// it instead of polling.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn notify_changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn chain(&self) -> &C {
        &self.chain
    }

    fn caching(&self) -> bool {
        self.follower.as_ref().is_some_and(|f| f.is_streaming())
    }

    /// The checkpoint every answer must reflect: the follower's cursor.
    fn height_floor(&self) -> Option<u64> {
        self.follower.as_ref().and_then(|f| f.cursor())
    }

    /// Forgets record `id` (the follower saw it change), and remembers that reads older than
    /// `version` (its version after the change, when known) are stale.
    pub fn evict_at(&self, id: &Address, version: Option<u64>) {
        if let Some(v) = version {
            let mut floors = lock(&self.floors);
            let floor = floors.get(id).copied().unwrap_or(0).max(v);
            floors.put(*id, floor);
        }
        self.evict(id);
    }

    /// Forgets record `id` (the follower saw it change).
    pub fn evict(&self, id: &Address) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.records).pop(id);
        lock(&self.absent).pop(id);
    }

    /// Forgets the cluster snapshot (role minimums, slashed table).
    pub fn evict_cluster(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Forgets every cached record (present or absent), not the cluster snapshot.
    pub fn evict_records(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.records).clear();
        lock(&self.absent).clear();
    }

    /// Forgets everything cached (not the sticky slashes: they stay true).
    pub fn evict_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.records).clear();
        lock(&self.absent).clear();
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The follower saw `record` slashed: it is slashed for this view from now on.
    pub fn mark_slashed(&self, record: Address) {
        lock(&self.slashed).insert(record);
        self.evict(&record);
    }

    /// The follower saw `record` withdrawn (deleted): its sticky slash is no longer needed.
    pub fn forget_record(&self, record: &Address) {
        lock(&self.slashed).remove(record);
        self.evict(record);
    }

    /// Runs `read` until its answer reflects the follower's cursor (a few tries, for a load
    /// balancer that sent it to a lagging replica), else fails: an answer older than a change
    /// the follower already handled must not decide anything.
    async fn current<T, F, Fut>(&self, what: &str, read: F) -> Result<T, ReadError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<AtCheckpoint<T>, ChainError>>,
    {
        let mut backoff = STALE_BACKOFF;
        let mut attempt = 0;
        loop {
            let answer = read().await.map_err(ReadError::Chain)?;
            let Some(floor) = self.height_floor() else {
                return Ok(answer.value);
            };
            if answer.reflects(floor) {
                return Ok(answer.value);
            }
            attempt += 1;
            if attempt > STALE_RETRIES {
                return Err(ReadError::Stale(format!(
                    "the RPC endpoint answered for {what} at checkpoint {}, behind checkpoint {floor} the follower has handled (a lagging replica?)",
                    answer
                        .checkpoint
                        .map_or_else(|| "(none reported)".to_owned(), |c| c.to_string())
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// Refuses an object version older than the one the follower saw written.
    fn check_version(&self, id: &Address, version: u64, what: &str) -> Result<(), StakeViewError> {
        let floor = lock(&self.floors).peek(id).copied();
        match floor {
            Some(f) if version < f => Err(StakeViewError(format!(
                "the RPC endpoint returned {what} {id} at version {version}, older than version {f} the follower has seen (a lagging backend?)"
            ))),
            _ => Ok(()),
        }
    }

    async fn snapshot(&self) -> Result<ClusterSnapshot, StakeViewError> {
        if let Some(s) = *self.snapshot.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(s);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let c = self
            .current("the cluster", || self.chain.cluster())
            .await
            .map_err(StakeViewError::from)?;
        if c.cluster.id != self.cluster {
            return Err(StakeViewError(format!(
                "configured cluster {} but the chain client reads {}",
                self.cluster, c.cluster.id
            )));
        }
        self.check_version(&self.cluster, c.version, "cluster")?;
        let s = ClusterSnapshot {
            min_worker: c.cluster.min_stake_worker,
            min_user: c.cluster.min_stake_user,
            min_admin: c.cluster.min_stake_admin,
            slashed_table: c.cluster.slashed.id,
            grants_table: c.cluster.grants.id,
        };
        if self.caching() && self.generation.load(Ordering::Acquire) == generation {
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
        }
        Ok(s)
    }

    async fn read_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        let found = match self
            .current("a stake record", || self.chain.stake_record(id))
            .await
        {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            // Not a stake record of this package (another type, or not address-owned): the
            // token names no stake — a credential failure, not an outage.
            Err(ReadError::Chain(
                ChainError::WrongType { .. } | ChainError::NotAddressOwned { .. },
            )) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.check_version(&id, found.object.version, "stake record")?;
        let r = found.record;
        let role = Role::from_code(r.role).ok_or_else(|| {
            StakeViewError(format!("stake record {id} has unknown role {}", r.role))
        })?;
        let mut status = match r.status {
            consts::STATUS_ACTIVE => StakeStatus::Active,
            consts::STATUS_UNBONDING => StakeStatus::Unbonding,
            consts::STATUS_SLASHED => StakeStatus::Slashed,
            other => {
                return Err(StakeViewError(format!(
                    "stake record {id} has unknown status {other}"
                )));
            }
        };
        if lock(&self.slashed).contains(&id) {
            status = StakeStatus::Slashed;
        }
        // Slashing marks the record in the cluster's table; the record itself changes only when
        // its owner settles. Records of other clusters are refused by the authenticator anyway.
        if status != StakeStatus::Slashed && r.cluster_id == self.cluster {
            let table = self.snapshot().await?.slashed_table;
            if self
                .current("a slashed-table entry", || self.chain.is_slashed(table, id))
                .await
                .map_err(StakeViewError::from)?
            {
                status = StakeStatus::Slashed;
            }
        }
        // Workers and admins need the cluster's consent, which the admin can withdraw at any
        // time without touching the (owned) record.
        let granted = if !consts::role_requires_grant(r.role) {
            true
        } else if r.cluster_id == self.cluster {
            let table = self.snapshot().await?.grants_table;
            let mask = self
                .current("a role-grants entry", || {
                    self.chain.role_grants(table, r.owner)
                })
                .await
                .map_err(StakeViewError::from)?;
            consts::mask_grants(mask, r.role)
        } else {
            false
        };
        Ok(Some(StakeRecord {
            id,
            owner: r.owner,
            cluster: r.cluster_id,
            role,
            node_name: (!r.node_name.is_empty()).then_some(r.node_name),
            amount_mist: r.balance,
            status,
            token_epoch: r.token_epoch,
            granted,
        }))
    }
}

/// A read that failed, or came back older than the follower's cursor.
#[derive(Debug)]
enum ReadError {
    Chain(ChainError),
    Stale(String),
}

impl From<ReadError> for StakeViewError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Chain(e) => StakeViewError(e.to_string()),
            ReadError::Stale(why) => StakeViewError(why),
        }
    }
}

impl<C: Chain> StakeView for ChainStakeView<C> {
    async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        if self.caching() {
            if let Some(hit) = lock(&self.records).get(&id) {
                return Ok(Some(hit.clone()));
            }
            if lock(&self.absent).get(&id).is_some() {
                return Ok(None);
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let record = self.read_record(id).await?;
        if self.caching() && self.generation.load(Ordering::Acquire) == generation {
            match &record {
                Some(r) => {
                    lock(&self.records).put(id, r.clone());
                }
                None => {
                    lock(&self.absent).put(id, ());
                }
            }
        }
        Ok(record)
    }

    fn known_absent(&self, id: &Address) -> bool {
        self.caching() && lock(&self.absent).peek(id).is_some()
    }

    /// The cached record, while the follower streams (the cache is then exactly what
    /// `stake_record` answers without a read; the follower evicts a record when it changes).
    fn known_record(&self, id: &Address) -> Option<StakeRecord> {
        if self.caching() {
            lock(&self.records).peek(id).cloned()
        } else {
            None
        }
    }

    async fn minimum_stake(&self, role: Role) -> Result<u64, StakeViewError> {
        let s = self.snapshot().await?;
        Ok(match role {
            Role::Worker => s.min_worker,
            Role::User => s.min_user,
            Role::Admin => s.min_admin,
        })
    }

    fn is_fresh(&self) -> bool {
        self.caching()
    }

    fn undecodable_events(&self) -> Option<u64> {
        self.follower.as_ref().map(|f| f.undecodable_events())
    }
}

#[cfg(test)]
mod tests;
