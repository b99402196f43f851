//! `ChainStakeView` against an in-memory stand-in for the chain (it stands in for a Sui node
//! reached through `daas_chain::GrpcChain`; the process-level tests use the devnet).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use daas_chain::effects::Executed;
use daas_chain::follow::FollowerStatus;
use daas_chain::{AtCheckpoint, ChainInfo, ClusterObject, ObjectRef, RecordObject, SuiCoin};
use daas_chain_types::{Cluster, StakeRecord as MoveRecord, Table, consts};
use sui_sdk_types::{Digest, Transaction, UserSignature};

use super::*;

const CLUSTER: Address = Address::from_static("0xc1");
const TABLE: Address = Address::from_static("0x7ab1e");
const OWNER: Address = Address::from_static("0xa11ce");
const GRANTS: Address = Address::from_static("0x96a7");

#[derive(Default)]
struct StandIn {
    records: Mutex<HashMap<Address, MoveRecord>>,
    slashed: Mutex<HashSet<Address>>,
    min_user: Mutex<u64>,
    record_reads: AtomicUsize,
    cluster_reads: AtomicUsize,
    /// Runs inside the next record read (to race an eviction against it).
    during_read: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Version reported for records (a lagging backend reports an old one).
    version: Mutex<u64>,
    /// Answer record reads as "not a StakeRecord of this package".
    wrong_type: Mutex<bool>,
    /// Checkpoint height reported with every answer (the tip of the replica that answers).
    height: AtomicU64,
    /// A lagging replica answering slashed-table reads: its height and its slashed set.
    lagging_slashed: Mutex<Option<(u64, HashSet<Address>)>>,
    /// A lagging replica answering cluster reads: its height and its `min_stake_user`.
    lagging_cluster: Mutex<Option<(u64, u64)>>,
    /// Version reported for the cluster object.
    cluster_version: Mutex<u64>,
    /// Owner of records written by `put` (default `OWNER`).
    owner: Mutex<Option<Address>>,
    /// Role written by `put` (default user).
    role: Mutex<Option<u8>>,
    /// Grant masks by account (`Cluster.grants`).
    grants: Mutex<HashMap<Address, u8>>,
}

impl StandIn {
    fn put(&self, id: Address, status: u8, epoch: u64) {
        let owner = self.owner.lock().unwrap().unwrap_or(OWNER);
        let role = self.role.lock().unwrap().unwrap_or(consts::ROLE_USER);
        self.records.lock().unwrap().insert(
            id,
            MoveRecord {
                id,
                cluster_id: CLUSTER,
                owner,
                role,
                node_name: String::new(),
                balance: 600_000_000,
                status,
                token_epoch: epoch,
                staked_at_ms: 1,
                unbond_requested_at_ms: 0,
            },
        );
    }
}

impl StandIn {
    fn height(&self) -> u64 {
        self.height.load(Ordering::SeqCst)
    }
}

impl Chain for StandIn {
    async fn info(&self) -> Result<ChainInfo, ChainError> {
        unreachable!("not used by the view")
    }
    async fn reference_gas_price(&self) -> Result<u64, ChainError> {
        unreachable!("not used by the view")
    }
    async fn stake_record(
        &self,
        id: Address,
    ) -> Result<AtCheckpoint<Option<RecordObject>>, ChainError> {
        self.record_reads.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self.during_read.lock().unwrap().take() {
            f();
        }
        if *self.wrong_type.lock().unwrap() {
            return Err(ChainError::WrongType {
                id,
                expected: "StakeRecord".into(),
                actual: "0x2::coin::Coin<0x2::sui::SUI>".into(),
            });
        }
        let record = self.records.lock().unwrap().get(&id).map(|r| RecordObject {
            object: ObjectRef {
                id,
                version: (*self.version.lock().unwrap()).max(1),
                digest: Digest::ZERO,
            },
            record: r.clone(),
        });
        Ok(AtCheckpoint::new(record, Some(self.height())))
    }
    async fn cluster(&self) -> Result<AtCheckpoint<ClusterObject>, ChainError> {
        self.cluster_reads.fetch_add(1, Ordering::SeqCst);
        let (height, min_user) = self
            .lagging_cluster
            .lock()
            .unwrap()
            .unwrap_or((self.height(), *self.min_user.lock().unwrap()));
        let cluster = ClusterObject {
            version: (*self.cluster_version.lock().unwrap()).max(1),
            cluster: Cluster {
                id: CLUSTER,
                version: 1,
                name: "c".into(),
                min_stake_worker: 1,
                min_stake_user: min_user,
                min_stake_admin: 3,
                unbonding_period_ms: 0,
                expected_pcr0: vec![],
                expected_pcr1: vec![],
                expected_pcr2: vec![],
                enclave_operator: OWNER,
                enclave: None,
                treasury: 0,
                slashed: Table { id: TABLE, size: 0 },
                grants: Table {
                    id: GRANTS,
                    size: 0,
                },
            },
        };
        Ok(AtCheckpoint::new(cluster, Some(height)))
    }
    async fn is_slashed(
        &self,
        table: Address,
        record: Address,
    ) -> Result<AtCheckpoint<bool>, ChainError> {
        assert_eq!(
            table, TABLE,
            "the view must read the cluster's slashed table"
        );
        if let Some((height, slashed)) = &*self.lagging_slashed.lock().unwrap() {
            return Ok(AtCheckpoint::new(slashed.contains(&record), Some(*height)));
        }
        Ok(AtCheckpoint::new(
            self.slashed.lock().unwrap().contains(&record),
            Some(self.height()),
        ))
    }
    async fn role_grants(
        &self,
        table: Address,
        account: Address,
    ) -> Result<AtCheckpoint<u8>, ChainError> {
        assert_eq!(
            table, GRANTS,
            "the view must read the cluster's grants table"
        );
        let mask = self
            .grants
            .lock()
            .unwrap()
            .get(&account)
            .copied()
            .unwrap_or(0);
        Ok(AtCheckpoint::new(mask, Some(self.height())))
    }
    async fn sui_coins(&self, _: Address) -> Result<Vec<SuiCoin>, ChainError> {
        unreachable!("not used by the view")
    }
    async fn stake_records_of(&self, _: Address) -> Result<Vec<RecordObject>, ChainError> {
        unreachable!("not used by the view")
    }
    async fn execute(&self, _: Transaction, _: Vec<UserSignature>) -> Result<Executed, ChainError> {
        unreachable!("not used by the view")
    }
}

fn view(
    streaming: bool,
) -> (
    Arc<StandIn>,
    ChainStakeView<Arc<StandIn>>,
    Arc<FollowerStatus>,
) {
    let chain = Arc::new(StandIn::default());
    *chain.min_user.lock().unwrap() = 2;
    let status = Arc::new(FollowerStatus::default());
    status.set_streaming(streaming);
    let v = ChainStakeView::new(chain.clone(), CLUSTER, Some(status.clone()));
    (chain, v, status)
}

const R: Address = Address::from_static("0x1");

#[tokio::test]
async fn decodes_records_and_maps_status_and_slashing() {
    let (chain, v, _) = view(true);
    chain.put(R, consts::STATUS_ACTIVE, 4);
    let r = v.stake_record(R).await.unwrap().unwrap();
    assert_eq!((r.owner, r.cluster, r.role), (OWNER, CLUSTER, Role::User));
    assert_eq!(
        (r.status, r.token_epoch, r.amount_mist),
        (StakeStatus::Active, 4, 600_000_000)
    );
    assert_eq!(r.node_name, None);
    assert_eq!(v.minimum_stake(Role::User).await.unwrap(), 2);

    // Marked in the cluster's table but not yet settled: already slashed for the view.
    chain.slashed.lock().unwrap().insert(R);
    v.evict(&R);
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().status,
        StakeStatus::Slashed
    );
    chain.put(R, consts::STATUS_UNBONDING, 5);
    chain.slashed.lock().unwrap().clear();
    v.evict(&R);
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().status,
        StakeStatus::Unbonding
    );
    assert_eq!(
        v.stake_record(Address::from_static("0x2")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn refuses_records_it_cannot_interpret() {
    let (chain, v, _) = view(true);
    chain.put(R, 9, 0);
    let err = v.stake_record(R).await.unwrap_err();
    assert!(err.0.contains("unknown status 9"), "{err}");
    chain.put(R, consts::STATUS_ACTIVE, 0);
    chain.records.lock().unwrap().get_mut(&R).unwrap().role = 7;
    let err = v.stake_record(R).await.unwrap_err();
    assert!(err.0.contains("unknown role 7"), "{err}");
}

#[tokio::test]
async fn caches_only_while_the_follower_streams() {
    let (chain, v, status) = view(false);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    v.stake_record(R).await.unwrap();
    v.stake_record(R).await.unwrap();
    assert_eq!(
        chain.record_reads.load(Ordering::SeqCst),
        2,
        "no follower: every read goes to the chain"
    );
    assert!(!v.is_fresh());

    status.set_streaming(true);
    assert!(v.is_fresh());
    v.stake_record(R).await.unwrap();
    v.stake_record(R).await.unwrap();
    assert_eq!(
        chain.record_reads.load(Ordering::SeqCst),
        3,
        "streaming: second read is cached"
    );

    chain.put(R, consts::STATUS_ACTIVE, 1);
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().token_epoch,
        0,
        "cached until evicted"
    );
    v.evict(&R);
    assert_eq!(v.stake_record(R).await.unwrap().unwrap().token_epoch, 1);
}

#[tokio::test]
async fn an_eviction_during_a_read_keeps_that_read_out_of_the_cache() {
    let (chain, v, _) = view(true);
    let v = Arc::new(v);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    let v2 = v.clone();
    *chain.during_read.lock().unwrap() = Some(Box::new(move || v2.evict(&R)));
    v.stake_record(R).await.unwrap();
    v.stake_record(R).await.unwrap();
    assert_eq!(
        chain.record_reads.load(Ordering::SeqCst),
        2,
        "the raced read was not cached"
    );
}

#[tokio::test]
async fn cluster_changes_refresh_role_minimums() {
    let (chain, v, _) = view(true);
    assert_eq!(v.minimum_stake(Role::User).await.unwrap(), 2);
    *chain.min_user.lock().unwrap() = 50;
    assert_eq!(
        v.minimum_stake(Role::User).await.unwrap(),
        2,
        "snapshot cached"
    );
    v.evict_cluster();
    assert_eq!(v.minimum_stake(Role::User).await.unwrap(), 50);
    assert_eq!(chain.cluster_reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_object_that_is_not_a_stake_record_is_no_stake_not_an_outage() {
    let (chain, v, _) = view(true);
    *chain.wrong_type.lock().unwrap() = true;
    assert_eq!(v.stake_record(R).await.unwrap(), None);
}

#[tokio::test]
async fn a_read_older_than_the_followers_version_is_refused() {
    let (chain, v, _) = view(true);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    *chain.version.lock().unwrap() = 5;
    v.stake_record(R).await.unwrap();
    // The follower saw the record written at version 7; the endpoint still serves version 5.
    v.evict_at(&R, Some(7));
    let err = v.stake_record(R).await.unwrap_err();
    assert!(err.0.contains("older than version 7"), "{err}");
    *chain.version.lock().unwrap() = 7;
    assert!(v.stake_record(R).await.unwrap().is_some());
}

// ------------------------------------------------------------------------------------------------
// H1: answers older than what the follower has handled (lagging replicas behind a load balancer).

/// The follower handled checkpoint 10, which slashed R. A replica at checkpoint 9 still says R is
/// not slashed. Its answer must never become an Active verdict — neither for this request nor
/// cached for later ones.
#[tokio::test]
async fn a_lagging_replica_cannot_undo_a_slash_the_follower_saw() {
    use crate::auth::{AuthConfig, AuthError, SealAuthenticator};
    use daas_seal::{Claims, mint};
    use daas_wallet::{Scheme, WalletKey};

    let (chain, v, status) = view(true);
    let key = WalletKey::generate(Scheme::Ed25519);
    *chain.owner.lock().unwrap() = Some(key.address());
    chain.put(R, consts::STATUS_ACTIVE, 0);
    chain.height.store(10, Ordering::SeqCst);
    chain.slashed.lock().unwrap().insert(R);
    *chain.lagging_slashed.lock().unwrap() = Some((9, HashSet::new()));
    status.set_cursor(10);
    let auth = SealAuthenticator::new(AuthConfig::new(CLUSTER), Arc::new(v));
    let now = crate::auth::unix_ms_now();
    let claims = Claims::builder(CLUSTER, key.address(), R, Role::User)
        .lifetime(now, 600_000)
        .random_nonce()
        .build()
        .unwrap();
    let token = mint(key.keypair(), claims).unwrap().into_string();

    let err = auth.authenticate(&token).await.unwrap_err();
    assert!(
        err.is_unavailable(),
        "stale answer refused, not believed: {err}"
    );
    assert!(err.to_string().contains("unavailable"), "{err}");
    // The lag clears: the same token is now refused as slashed (no stale verdict was cached).
    *chain.lagging_slashed.lock().unwrap() = None;
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::StakeInactive(StakeStatus::Slashed)
    );
}

/// Once the follower has seen `Slashed{R}`, R is slashed for the view whatever replica answers,
/// even one at a height above the cursor that has not applied it (or has since rolled back).
#[tokio::test]
async fn a_slash_named_by_an_event_is_sticky_until_the_record_is_withdrawn() {
    let (chain, v, status) = view(true);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    chain.height.store(10, Ordering::SeqCst);
    status.set_cursor(10);
    v.mark_slashed(R);
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().status,
        StakeStatus::Slashed
    );
    v.evict_all();
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().status,
        StakeStatus::Slashed,
        "evict_all keeps sticky slashes"
    );
    v.forget_record(&R);
    assert_eq!(
        v.stake_record(R).await.unwrap().unwrap().status,
        StakeStatus::Active
    );
}

/// Role minimums were raised at checkpoint 10; a replica at checkpoint 9 (or one serving an older
/// version of the cluster object) must not hand out the old minimum.
#[tokio::test]
async fn a_stale_cluster_snapshot_is_refused_by_height_and_by_version() {
    let (chain, v, status) = view(true);
    chain.height.store(10, Ordering::SeqCst);
    *chain.min_user.lock().unwrap() = 50;
    *chain.lagging_cluster.lock().unwrap() = Some((9, 2));
    status.set_cursor(10);
    let err = v.minimum_stake(Role::User).await.unwrap_err();
    assert!(err.0.contains("behind checkpoint 10"), "{err}");
    *chain.lagging_cluster.lock().unwrap() = None;
    assert_eq!(v.minimum_stake(Role::User).await.unwrap(), 50);

    // By version: the follower saw the cluster written at version 7; an endpoint serves 5.
    *chain.cluster_version.lock().unwrap() = 5;
    v.evict_at(&CLUSTER, Some(7));
    v.evict_cluster();
    let err = v.minimum_stake(Role::User).await.unwrap_err();
    assert!(err.0.contains("older than version 7"), "{err}");
}

/// A record that does not exist yet on a lagging replica is not cached as absent.
#[tokio::test]
async fn absent_answers_below_the_cursor_are_not_believed() {
    let (chain, v, status) = view(true);
    chain.height.store(9, Ordering::SeqCst);
    status.set_cursor(10);
    assert!(v.stake_record(R).await.is_err());
    assert!(!v.known_absent(&R));
    chain.height.store(10, Ordering::SeqCst);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    assert!(v.stake_record(R).await.unwrap().is_some());
}

/// Ids that hold no record are cached apart: a flood of them does not push real records out,
/// and a known-absent id is answered without a read.
#[tokio::test]
async fn absent_ids_do_not_push_records_out() {
    let (chain, v, _) = view(true);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    v.stake_record(R).await.unwrap();
    for i in 0..(DEFAULT_RECORD_CACHE as u64 + 10) {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&i.to_be_bytes());
        b[31] = 0xee;
        assert_eq!(v.stake_record(Address::new(b)).await.unwrap(), None);
    }
    let reads = chain.record_reads.load(Ordering::SeqCst);
    v.stake_record(R).await.unwrap();
    assert_eq!(
        chain.record_reads.load(Ordering::SeqCst),
        reads,
        "R still cached"
    );
    let mut last = [0u8; 32];
    last[..8].copy_from_slice(&(DEFAULT_RECORD_CACHE as u64 + 9).to_be_bytes());
    last[31] = 0xee;
    assert!(v.known_absent(&Address::new(last)));
}

/// What the authenticator may check before a signature is exactly what `stake_record` would
/// answer without a read: the cached record while the follower streams, nothing otherwise, and
/// nothing once the follower evicted it.
#[tokio::test]
async fn known_records_are_the_cached_ones_of_a_streaming_view() {
    let (chain, v, status) = view(true);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    assert_eq!(v.known_record(&R), None, "not read yet");
    let record = v.stake_record(R).await.unwrap();
    assert_eq!(v.known_record(&R), record);
    assert!(record.is_some());
    let reads = chain.record_reads.load(Ordering::SeqCst);
    assert_eq!(v.known_record(&R), record);
    assert_eq!(
        chain.record_reads.load(Ordering::SeqCst),
        reads,
        "known_record never reads"
    );
    status.set_streaming(false);
    assert_eq!(
        v.known_record(&R),
        None,
        "a view that is not following knows nothing"
    );
    status.set_streaming(true);
    v.evict(&R);
    assert_eq!(v.known_record(&R), None, "evicted on change");
}

// ------------------------------------------------------------------------------------------------
// C1: privileged roles need the cluster's grant, read from the chain with each record.

/// An admin record counts only while its owner holds the admin grant: withdrawing the grant on
/// chain refuses the record's tokens at once (after the follower's eviction), and a user record
/// needs no grant.
#[tokio::test]
async fn privileged_records_need_the_owners_grant() {
    use crate::auth::{AuthConfig, AuthError, SealAuthenticator};
    use daas_seal::{Claims, mint};
    use daas_wallet::{Scheme, WalletKey};

    let (chain, v, _) = view(true);
    let key = WalletKey::generate(Scheme::Ed25519);
    *chain.owner.lock().unwrap() = Some(key.address());
    *chain.role.lock().unwrap() = Some(consts::ROLE_ADMIN);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    chain.records.lock().unwrap().get_mut(&R).unwrap().balance = 10;
    let v = Arc::new(v);
    let auth = SealAuthenticator::new(AuthConfig::new(CLUSTER), v.clone());
    let now = crate::auth::unix_ms_now();
    let token = |role| {
        let claims = Claims::builder(CLUSTER, key.address(), R, role)
            .lifetime(now, 600_000)
            .random_nonce()
            .build()
            .unwrap();
        mint(key.keypair(), claims).unwrap().into_string()
    };

    // Bought, not granted: refused.
    assert_eq!(
        auth.authenticate(&token(Role::Admin)).await.unwrap_err(),
        AuthError::NotGranted
    );
    // Granted the worker role only: still refused for admin.
    chain.grants.lock().unwrap().insert(key.address(), 0b001);
    v.evict_records();
    assert_eq!(
        auth.authenticate(&token(Role::Admin)).await.unwrap_err(),
        AuthError::NotGranted
    );
    chain.grants.lock().unwrap().insert(key.address(), 0b101);
    v.evict_records();
    assert!(auth.authenticate(&token(Role::Admin)).await.is_ok());
    // Withdrawn: what the follower does on RoleRevoked, then the next token is refused.
    chain.grants.lock().unwrap().remove(&key.address());
    v.evict_records();
    auth.evict_owner(&key.address());
    assert_eq!(
        auth.authenticate(&token(Role::Admin)).await.unwrap_err(),
        AuthError::NotGranted
    );
    // Users need no grant.
    *chain.role.lock().unwrap() = Some(consts::ROLE_USER);
    chain.put(R, consts::STATUS_ACTIVE, 0);
    v.evict_records();
    assert!(auth.authenticate(&token(Role::User)).await.is_ok());
}
