//! `ChainStakeView` against an in-memory stand-in for the chain (it stands in for a Sui node
//! reached through `daas_chain::GrpcChain`; the process-level tests use the devnet).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use daas_chain::effects::Executed;
use daas_chain::follow::FollowerStatus;
use daas_chain::{ChainInfo, ClusterObject, ObjectRef, RecordObject, SuiCoin};
use daas_chain_types::{Cluster, StakeRecord as MoveRecord, Table, consts};
use sui_sdk_types::{Digest, Transaction, UserSignature};

use super::*;

const CLUSTER: Address = Address::from_static("0xc1");
const TABLE: Address = Address::from_static("0x7ab1e");
const OWNER: Address = Address::from_static("0xa11ce");

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
}

impl StandIn {
    fn put(&self, id: Address, status: u8, epoch: u64) {
        self.records.lock().unwrap().insert(
            id,
            MoveRecord {
                id,
                cluster_id: CLUSTER,
                owner: OWNER,
                role: consts::ROLE_USER,
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

impl Chain for StandIn {
    async fn info(&self) -> Result<ChainInfo, ChainError> {
        unreachable!("not used by the view")
    }
    async fn reference_gas_price(&self) -> Result<u64, ChainError> {
        unreachable!("not used by the view")
    }
    async fn stake_record(&self, id: Address) -> Result<Option<RecordObject>, ChainError> {
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
        Ok(self.records.lock().unwrap().get(&id).map(|r| RecordObject {
            object: ObjectRef {
                id,
                version: (*self.version.lock().unwrap()).max(1),
                digest: Digest::ZERO,
            },
            record: r.clone(),
        }))
    }
    async fn cluster(&self) -> Result<ClusterObject, ChainError> {
        self.cluster_reads.fetch_add(1, Ordering::SeqCst);
        Ok(ClusterObject {
            version: 1,
            cluster: Cluster {
                id: CLUSTER,
                version: 1,
                name: "c".into(),
                min_stake_worker: 1,
                min_stake_user: *self.min_user.lock().unwrap(),
                min_stake_admin: 3,
                unbonding_period_ms: 0,
                expected_pcr0: vec![],
                expected_pcr1: vec![],
                expected_pcr2: vec![],
                enclave_operator: OWNER,
                enclave: None,
                treasury: 0,
                slashed: Table { id: TABLE, size: 0 },
            },
        })
    }
    async fn is_slashed(&self, table: Address, record: Address) -> Result<bool, ChainError> {
        assert_eq!(
            table, TABLE,
            "the view must read the cluster's slashed table"
        );
        Ok(self.slashed.lock().unwrap().contains(&record))
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
