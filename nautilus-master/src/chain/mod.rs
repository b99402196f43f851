//! The chain-backed [`StakeView`]: stake records and role minimums read from Sui, cached while
//! a checkpoint follower keeps the cache honest.
//!
//! - A record is read with one `GetObject` (type, owner and layout checked by `daas-chain`),
//!   plus one read of the cluster's slashed-table entry for it; the cluster object (role
//!   minimums, slashed table id) is read once and re-read when it changes.
//! - Reads are cached only while the follower ([`follow`]) is streaming: every checkpoint evicts
//!   the records and tokens it touches (unstake, revoke, slash, withdraw, add-stake), a cluster
//!   change drops the cluster snapshot and every cached token, and a lost stream drops
//!   everything and turns caching off until the stream is back. Revocation is therefore
//!   visible within one checkpoint.
//! - When the follower is down the view still answers (straight from the chain) but reports
//!   itself not fresh, so readiness fails and the authenticator stops caching verdicts.

pub mod follow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use daas_chain::follow::FollowerStatus;
use daas_chain::{Chain, ChainError};
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
}

/// Stake records from the chain. See the module docs.
pub struct ChainStakeView<C> {
    chain: C,
    cluster: Address,
    records: Mutex<LruCache<Address, Option<StakeRecord>>>,
    snapshot: RwLock<Option<ClusterSnapshot>>,
    /// Bumped by every eviction: a read that started before one must not be cached.
    generation: AtomicU64,
    /// The newest version the follower has seen written for each evicted record: a read that
    /// returns an older version (a lagging RPC backend) is stale and refused.
    floors: Mutex<LruCache<Address, u64>>,
    follower: Option<Arc<FollowerStatus>>,
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

impl<C: Chain> ChainStakeView<C> {
    /// A view of `cluster`'s records. Without a follower status it never caches.
    pub fn new(chain: C, cluster: Address, follower: Option<Arc<FollowerStatus>>) -> Self {
        let capacity = std::num::NonZeroUsize::new(DEFAULT_RECORD_CACHE)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        ChainStakeView {
            chain,
            cluster,
            records: Mutex::new(LruCache::new(capacity)),
            snapshot: RwLock::new(None),
            generation: AtomicU64::new(0),
            floors: Mutex::new(LruCache::new(capacity)),
            follower,
        }
    }

    pub fn chain(&self) -> &C {
        &self.chain
    }

    fn caching(&self) -> bool {
        self.follower.as_ref().is_some_and(|f| f.is_streaming())
    }

    /// Forgets record `id` (the follower saw it change), and remembers that reads older than
    /// `version` (its version after the change, when known) are stale.
    pub fn evict_at(&self, id: &Address, version: Option<u64>) {
        if let Some(v) = version {
            let mut floors = self.floors.lock().unwrap_or_else(|p| p.into_inner());
            let floor = floors.get(id).copied().unwrap_or(0).max(v);
            floors.put(*id, floor);
        }
        self.evict(id);
    }

    /// Forgets record `id` (the follower saw it change).
    pub fn evict(&self, id: &Address) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(id);
    }

    /// Forgets the cluster snapshot (role minimums, slashed table).
    pub fn evict_cluster(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Forgets everything.
    pub fn evict_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn snapshot(&self) -> Result<ClusterSnapshot, StakeViewError> {
        if let Some(s) = *self.snapshot.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(s);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let c = self.chain.cluster().await.map_err(view_error)?.cluster;
        if c.id != self.cluster {
            return Err(StakeViewError(format!(
                "configured cluster {} but the chain client reads {}",
                self.cluster, c.id
            )));
        }
        let s = ClusterSnapshot {
            min_worker: c.min_stake_worker,
            min_user: c.min_stake_user,
            min_admin: c.min_stake_admin,
            slashed_table: c.slashed.id,
        };
        if self.caching() && self.generation.load(Ordering::Acquire) == generation {
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
        }
        Ok(s)
    }

    async fn read_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        let found = match self.chain.stake_record(id).await {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            // Not a stake record of this package (another type, or not address-owned): the
            // token names no stake — a credential failure, not an outage.
            Err(ChainError::WrongType { .. } | ChainError::NotAddressOwned { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(view_error(e)),
        };
        let floor = self
            .floors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek(&id)
            .copied();
        if floor.is_some_and(|f| found.object.version < f) {
            return Err(StakeViewError(format!(
                "the RPC endpoint returned stake record {id} at version {}, older than version {} the follower has seen (a lagging backend?)",
                found.object.version,
                floor.unwrap_or_default()
            )));
        }
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
        // Slashing marks the record in the cluster's table; the record itself changes only when
        // its owner settles. Records of other clusters are refused by the authenticator anyway.
        if status != StakeStatus::Slashed && r.cluster_id == self.cluster {
            let table = self.snapshot().await?.slashed_table;
            if self.chain.is_slashed(table, id).await.map_err(view_error)? {
                status = StakeStatus::Slashed;
            }
        }
        Ok(Some(StakeRecord {
            id,
            owner: r.owner,
            cluster: r.cluster_id,
            role,
            node_name: (!r.node_name.is_empty()).then_some(r.node_name),
            amount_mist: r.balance,
            status,
            token_epoch: r.token_epoch,
        }))
    }
}

fn view_error(e: ChainError) -> StakeViewError {
    StakeViewError(e.to_string())
}

impl<C: Chain> StakeView for ChainStakeView<C> {
    async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        if self.caching()
            && let Some(hit) = self
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
        {
            return Ok(hit.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let record = self.read_record(id).await?;
        if self.caching() && self.generation.load(Ordering::Acquire) == generation {
            self.records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(id, record.clone());
        }
        Ok(record)
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
}

#[cfg(test)]
mod tests;
