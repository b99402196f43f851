//! The on-chain view the authenticator needs, behind a seam.
//!
//! Production reads the chain ([`crate::chain::ChainStakeView`]);
//! [`InMemoryStakeView`] holds records in memory for tests and benchmarks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::RwLock;

use daas_seal::{Address, Role};
use thiserror::Error;

/// `StakeRecord.status` of the Move package (`k3s_daas::staking`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StakeStatus {
    Active,
    Unbonding,
    Slashed,
}

impl fmt::Display for StakeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StakeStatus::Active => "active",
            StakeStatus::Unbonding => "unbonding",
            StakeStatus::Slashed => "slashed",
        })
    }
}

/// What the authenticator needs to know about one stake record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakeRecord {
    pub id: Address,
    pub owner: Address,
    pub cluster: Address,
    pub role: Role,
    /// Workers only.
    pub node_name: Option<String>,
    pub amount_mist: u64,
    pub status: StakeStatus,
    pub token_epoch: u64,
    /// Whether the cluster consents on chain to the owner holding this role (`Cluster.grants`):
    /// always true for users; workers and admins need the cluster admin's grant.
    pub granted: bool,
}

/// The stake view could not answer (network, decoding). Distinct from "no such record".
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct StakeViewError(pub String);

/// "Give me the on-chain stake record for this id", plus the cluster's role minimums.
pub trait StakeView: Send + Sync {
    /// `Ok(None)` when no such record exists (or it was deleted by a withdrawal).
    fn stake_record(
        &self,
        id: Address,
    ) -> impl Future<Output = Result<Option<StakeRecord>, StakeViewError>> + Send;

    /// Minimum stake in MIST for `role` in this cluster.
    fn minimum_stake(&self, role: Role)
    -> impl Future<Output = Result<u64, StakeViewError>> + Send;

    /// Whether the view knows, without any I/O, that no record `id` exists (a cached negative
    /// answer of a fresh view). A token naming such an id is refused before its signature is
    /// checked.
    fn known_absent(&self, _id: &Address) -> bool {
        false
    }

    /// The record `id` as [`StakeView::stake_record`] would return it now, when the view holds
    /// it without any I/O (a fresh view's cache); `None` when it would have to ask. The
    /// authenticator refuses a token that cannot match it before checking its signature.
    fn known_record(&self, _id: &Address) -> Option<StakeRecord> {
        None
    }

    /// Events of the package the view's chain follower could not decode since start (`None`
    /// for a view without a follower).
    fn undecodable_events(&self) -> Option<u64> {
        None
    }

    /// Whether the view is current enough to authenticate (readiness). A view that follows a
    /// chain reports false when it has fallen behind; an authoritative local view is always
    /// fresh.
    fn is_fresh(&self) -> bool {
        true
    }
}

/// Records held in memory. For tests and benchmarks; not backed by any chain.
#[derive(Debug)]
pub struct InMemoryStakeView {
    records: RwLock<HashMap<Address, StakeRecord>>,
    minimums: RwLock<HashMap<Role, u64>>,
    lookups: std::sync::atomic::AtomicU64,
}

impl Default for InMemoryStakeView {
    /// Role minimums as the Move package's defaults: worker 1 SUI, user 0.5 SUI, admin 10 SUI.
    fn default() -> Self {
        InMemoryStakeView {
            records: RwLock::default(),
            minimums: RwLock::new(HashMap::from([
                (Role::Worker, 1_000_000_000),
                (Role::User, 500_000_000),
                (Role::Admin, 10_000_000_000),
            ])),
            lookups: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl InMemoryStakeView {
    /// Record lookups so far (what a chain-backed view would send to its endpoint).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn upsert(&self, record: StakeRecord) {
        self.records
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.id, record);
    }

    pub fn remove(&self, id: &Address) -> Option<StakeRecord> {
        self.records
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    pub fn set_minimum(&self, role: Role, mist: u64) {
        self.minimums
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(role, mist);
    }

    /// Applies `f` to a record (e.g. bump its token epoch). Returns false if absent.
    pub fn update(&self, id: &Address, f: impl FnOnce(&mut StakeRecord)) -> bool {
        match self
            .records
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            Some(r) => {
                f(r);
                true
            }
            None => false,
        }
    }
}

impl StakeView for InMemoryStakeView {
    async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self
            .records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned())
    }

    /// Authoritative: an id not held here does not exist.
    fn known_absent(&self, id: &Address) -> bool {
        !self
            .records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// Not counted in [`InMemoryStakeView::lookups`]: no chain-backed view would send it.
    fn known_record(&self, id: &Address) -> Option<StakeRecord> {
        self.records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    async fn minimum_stake(&self, role: Role) -> Result<u64, StakeViewError> {
        self.minimums
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&role)
            .copied()
            .ok_or_else(|| StakeViewError(format!("no minimum configured for role {role}")))
    }
}

impl<T: StakeView> StakeView for std::sync::Arc<T> {
    fn stake_record(
        &self,
        id: Address,
    ) -> impl Future<Output = Result<Option<StakeRecord>, StakeViewError>> + Send {
        (**self).stake_record(id)
    }

    fn minimum_stake(
        &self,
        role: Role,
    ) -> impl Future<Output = Result<u64, StakeViewError>> + Send {
        (**self).minimum_stake(role)
    }

    fn known_absent(&self, id: &Address) -> bool {
        (**self).known_absent(id)
    }

    fn known_record(&self, id: &Address) -> Option<StakeRecord> {
        (**self).known_record(id)
    }

    fn undecodable_events(&self) -> Option<u64> {
        (**self).undecodable_events()
    }

    fn is_fresh(&self) -> bool {
        (**self).is_fresh()
    }
}
