//! The on-chain economy end to end, against the development chain process through the real
//! client (`daas-chain` over Sui gRPC v2): fund → stake → mint → verify through the chain-backed
//! `StakeView` → revoke → unstake → withdraw → slash; the failure paths; and a new follower
//! streaming from the tip at once after a devnet restart, however far the chain moved.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daas_chain::follow::{FollowEvent, Follower, FollowerStatus};
use daas_chain::{Chain, ChainError, Executed, GrpcChain, tx};
use daas_chain_types::{AbortCode, PackageEvent, consts};
use daas_seal::Role;
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::auth::{AuthConfig, AuthError, StakeStatus, StakeView};
use nautilus_master::chain::follow::{ChainAuthenticator, following};
use sui_crypto::SuiSigner;
use sui_sdk_types::Address;
use support::devnet::{BUDGET, DevnetProcess, SUI, balance, fund, token};

struct Control {
    auth: Arc<ChainAuthenticator>,
    status: Arc<FollowerStatus>,
    task: tokio::task::JoinHandle<Result<(), ChainError>>,
}

/// The master's side: chain-backed view, authenticator, follower task.
async fn control(chain: &GrpcChain) -> Control {
    control_with(chain, daas_chain::follow::DEFAULT_STALE_AFTER).await
}

async fn control_with(chain: &GrpcChain, stale_after: Duration) -> Control {
    let (auth, status, follower) = following(
        chain.clone(),
        AuthConfig::new(chain.config().cluster),
        stale_after,
    )
    .await
    .unwrap();
    let task = tokio::spawn(follower);
    wait_for("the follower to stream", || status.is_streaming()).await;
    Control { auth, status, task }
}

impl Control {
    /// Waits until the follower has handled the checkpoint holding `executed`.
    async fn saw(&self, executed: &Executed) {
        let cp = executed.checkpoint.expect("executed in a checkpoint");
        wait_for("the follower to reach the checkpoint", || {
            self.status.cursor().is_some_and(|c| c >= cp)
        })
        .await;
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn staked_record(ex: &Executed) -> Address {
    ex.events
        .iter()
        .find_map(|e| match e {
            PackageEvent::Staked(s) => Some(s.record_id),
            _ => None,
        })
        .expect("Staked event")
}

/// The stake record `id` as it is on chain now (it must exist).
async fn record_of(chain: &GrpcChain, id: Address) -> daas_chain_types::StakeRecord {
    chain
        .stake_record(id)
        .await
        .unwrap()
        .value
        .expect("record exists")
        .record
}

async fn record_ref(chain: &GrpcChain, id: Address) -> daas_chain::ObjectRef {
    chain
        .stake_record(id)
        .await
        .unwrap()
        .value
        .expect("record exists")
        .object
}

/// Builds (gas covering no extra amount), signs with `key` and executes.
async fn send(
    chain: &GrpcChain,
    key: &WalletKey,
    build: impl FnOnce(
        &daas_chain::ChainConfig,
        &tx::Gas,
    ) -> Result<sui_sdk_types::Transaction, ChainError>,
) -> Result<Executed, ChainError> {
    let gas = chain.gas_for(key.address(), 0).await?;
    let t = build(chain.config(), &gas)?;
    chain.sign_and_execute(key.keypair(), t).await
}

async fn stake(
    chain: &GrpcChain,
    key: &WalletKey,
    amount: u64,
    role: u8,
    node: &str,
) -> Result<Executed, ChainError> {
    let gas = chain.gas_for(key.address(), amount).await?;
    let t = tx::stake(chain.config(), &gas, amount, role, node)?;
    chain.sign_and_execute(key.keypair(), t).await
}

fn aborted(r: Result<Executed, ChainError>, code: AbortCode) {
    match r {
        Err(ChainError::Aborted(a)) => assert_eq!(a.known, Some(code), "{a}"),
        other => panic!("expected abort {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_economy_through_the_chain_backed_view() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = DevnetProcess::start(&dir.path().join("chain"));
    let chain = devnet.chain();
    let cfg = chain.config().clone();
    let info = chain.check_chain().await.unwrap();
    assert_eq!(info.chain, "k3s-daas-devnet");
    let admin = devnet.admin_key();
    let alice = WalletKey::generate(Scheme::Ed25519);

    // fund, and the admin's consent to stake as a worker
    fund(&chain, &admin, alice.address(), 20 * SUI).await;
    assert_eq!(balance(&chain, alice.address()).await, 20 * SUI);
    devnet
        .grant(&chain, alice.address(), consts::ROLE_WORKER)
        .await;
    let ctl = control(&chain).await;
    assert!(
        ctl.auth.view().is_fresh(),
        "a streaming follower makes the view fresh"
    );

    // stake → mint → verify
    let ex = stake(&chain, &alice, 2 * SUI, consts::ROLE_WORKER, "node-a")
        .await
        .unwrap();
    let record = staked_record(&ex);
    let on_chain = record_of(&chain, record).await;
    assert_eq!(
        (on_chain.owner, on_chain.balance, on_chain.token_epoch),
        (alice.address(), 2 * SUI, 0)
    );
    // The stake's checkpoint evicts its record's verdicts when the follower handles it: wait
    // for that, or under load the eviction can land between the two lookups below.
    ctl.saw(&ex).await;
    let t0 = token(&alice, cfg.cluster, record, Role::Worker, Some("node-a"), 0);
    let id = ctl.auth.authenticate(&t0).await.unwrap();
    assert_eq!((id.address, id.role), (alice.address(), Role::Worker));
    let hits = ctl.auth.cache_stats().hits;
    ctl.auth.authenticate(&t0).await.unwrap();
    assert_eq!(
        ctl.auth.cache_stats().hits,
        hits + 1,
        "verdict cached while following"
    );

    // revoke-tokens: the cached old token is refused once the follower saw the checkpoint
    let r = record_ref(&chain, record).await;
    let ex = send(&chain, &alice, |c, g| tx::revoke_tokens(c, g, r))
        .await
        .unwrap();
    ctl.saw(&ex).await;
    assert_eq!(
        ctl.auth.authenticate(&t0).await.map(|_| ()),
        Err(AuthError::Revoked {
            token: 0,
            record: 1
        })
    );
    let t1 = token(&alice, cfg.cluster, record, Role::Worker, Some("node-a"), 1);
    ctl.auth.authenticate(&t1).await.unwrap();

    // request_unstake: refused at once
    let r = record_ref(&chain, record).await;
    let ex = send(&chain, &alice, |c, g| tx::request_unstake(c, g, r))
        .await
        .unwrap();
    ctl.saw(&ex).await;
    assert_eq!(
        ctl.auth.authenticate(&t1).await.map(|_| ()),
        Err(AuthError::StakeInactive(StakeStatus::Unbonding))
    );
    let t2 = token(&alice, cfg.cluster, record, Role::Worker, Some("node-a"), 2);
    assert_eq!(
        ctl.auth.authenticate(&t2).await.map(|_| ()),
        Err(AuthError::StakeInactive(StakeStatus::Unbonding))
    );

    // withdraw before the unbonding period: aborts, loses only gas
    let before = balance(&chain, alice.address()).await;
    let gas = chain.gas_for(alice.address(), 0).await.unwrap();
    let t = tx::withdraw(&cfg, &gas, record_ref(&chain, record).await).unwrap();
    aborted(
        chain.sign_and_execute(alice.keypair(), t).await,
        AbortCode::UnbondingNotElapsed,
    );
    let after_abort = balance(&chain, alice.address()).await;
    assert!(
        before - after_abort <= BUDGET,
        "an abort costs at most the gas budget"
    );
    assert_eq!(record_of(&chain, record).await.balance, 2 * SUI);

    // the admin shortens the unbonding period; withdraw now pays out the stake
    let gas = chain.gas_for(admin.address(), 0).await.unwrap();
    let cap = chain.object_ref(devnet.admin_cap()).await.unwrap();
    let t = tx::set_unbonding_period(&cfg, &gas, cap, 1).unwrap();
    chain.sign_and_execute(admin.keypair(), t).await.unwrap();
    let stale_record_ref = record_ref(&chain, record).await;
    let ex = send(&chain, &alice, |c, g| tx::withdraw(c, g, stale_record_ref))
        .await
        .unwrap();
    let withdrawn = ex
        .events
        .iter()
        .find_map(|e| match e {
            PackageEvent::Withdrawn(w) => Some(w.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((withdrawn.amount, withdrawn.slashed), (2 * SUI, false));
    let after_withdraw = balance(&chain, alice.address()).await;
    assert_eq!(
        i128::from(after_withdraw),
        i128::from(after_abort) + i128::from(2 * SUI) - ex.net_gas_mist
    );
    assert_eq!(
        chain.stake_record(record).await.unwrap().value,
        None,
        "record deleted"
    );
    ctl.saw(&ex).await;
    assert_eq!(
        ctl.auth.authenticate(&t2).await.map(|_| ()),
        Err(AuthError::UnknownStake)
    );

    // double withdraw (the deleted record's old reference): rejected, nothing moves
    let gas = chain.gas_for(alice.address(), 0).await.unwrap();
    let t = tx::withdraw(&cfg, &gas, stale_record_ref).unwrap();
    let err = chain
        .sign_and_execute(alice.keypair(), t)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    assert_eq!(balance(&chain, alice.address()).await, after_withdraw);

    // slash: token refused within a checkpoint, funds move to the treasury on withdraw
    let ex = stake(&chain, &alice, SUI, consts::ROLE_USER, "")
        .await
        .unwrap();
    let record2 = staked_record(&ex);
    let tu = token(&alice, cfg.cluster, record2, Role::User, None, 0);
    ctl.auth.authenticate(&tu).await.unwrap();
    let treasury_before = chain.cluster().await.unwrap().value.cluster.treasury;
    let gas = chain.gas_for(admin.address(), 0).await.unwrap();
    let cap = chain.object_ref(devnet.admin_cap()).await.unwrap();
    let ex = chain
        .sign_and_execute(
            admin.keypair(),
            tx::slash(&cfg, &gas, cap, record2).unwrap(),
        )
        .await
        .unwrap();
    ctl.saw(&ex).await;
    assert_eq!(
        ctl.auth.authenticate(&tu).await.map(|_| ()),
        Err(AuthError::StakeInactive(StakeStatus::Slashed))
    );
    let table = chain.cluster().await.unwrap().value.cluster.slashed.id;
    assert!(chain.is_slashed(table, record2).await.unwrap().value);
    let r = record_ref(&chain, record2).await;
    let ex = send(&chain, &alice, |c, g| tx::withdraw(c, g, r))
        .await
        .unwrap();
    assert!(
        ex.events
            .iter()
            .any(|e| matches!(e, PackageEvent::Withdrawn(w) if w.slashed && w.amount == 0))
    );
    assert!(
        ex.events
            .iter()
            .any(|e| matches!(e, PackageEvent::SlashSettled(s) if s.amount == SUI))
    );
    assert_eq!(
        chain.cluster().await.unwrap().value.cluster.treasury,
        treasury_before + SUI
    );
    assert!(
        !chain.is_slashed(table, record2).await.unwrap().value,
        "mark cleared with the record"
    );
    ctl.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = DevnetProcess::start(&dir.path().join("chain"));
    let chain = devnet.chain();
    let cfg = chain.config().clone();
    let admin = devnet.admin_key();
    let alice = WalletKey::generate(Scheme::Ed25519);
    let mallory = WalletKey::generate(Scheme::Ed25519);
    fund(&chain, &admin, alice.address(), 10 * SUI).await;
    fund(&chain, &admin, mallory.address(), 10 * SUI).await;

    // without the admin's grant, no worker (or admin) stake: C1
    aborted(
        stake(&chain, &mallory, SUI, consts::ROLE_WORKER, "node-m").await,
        AbortCode::NoGrant,
    );
    devnet
        .grant(&chain, alice.address(), consts::ROLE_WORKER)
        .await;

    // below the role minimum: aborts with the package's code; only gas is spent
    let before = balance(&chain, alice.address()).await;
    aborted(
        stake(&chain, &alice, SUI / 2, consts::ROLE_WORKER, "node-b").await,
        AbortCode::BelowMinimum,
    );
    let spent = before - balance(&chain, alice.address()).await;
    assert!(spent > 0 && spent <= BUDGET, "spent {spent}");
    assert!(
        chain
            .stake_records_of(alice.address())
            .await
            .unwrap()
            .is_empty()
    );
    // a worker without a node name and a user with one
    aborted(
        stake(&chain, &alice, SUI, consts::ROLE_WORKER, "").await,
        AbortCode::InvalidNodeName,
    );
    aborted(
        stake(&chain, &alice, SUI, consts::ROLE_USER, "x").await,
        AbortCode::InvalidNodeName,
    );

    let ex = stake(&chain, &alice, SUI, consts::ROLE_USER, "")
        .await
        .unwrap();
    let record = staked_record(&ex);

    // wrong owner: another key cannot use alice's record at all
    let gas = chain.gas_for(mallory.address(), 0).await.unwrap();
    let t = tx::revoke_tokens(&cfg, &gas, record_ref(&chain, record).await).unwrap();
    let err = chain
        .sign_and_execute(mallory.keypair(), t)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    assert_eq!(record_of(&chain, record).await.token_epoch, 0);

    // a signature by someone other than the sender
    let gas = chain.gas_for(alice.address(), 0).await.unwrap();
    let t = tx::revoke_tokens(&cfg, &gas, record_ref(&chain, record).await).unwrap();
    let forged = mallory.keypair().sign_transaction(&t).unwrap();
    let err = chain.execute(t, vec![forged]).await.unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");

    // replayed transaction: executes once
    let gas = chain.gas_for(alice.address(), 0).await.unwrap();
    let t = tx::revoke_tokens(&cfg, &gas, record_ref(&chain, record).await).unwrap();
    let sig = alice.keypair().sign_transaction(&t).unwrap();
    let first = chain
        .execute(t.clone(), vec![sig.clone()])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let after_first = balance(&chain, alice.address()).await;
    let again = chain.execute(t, vec![sig]).await.unwrap();
    assert_eq!(again.digest, first.digest);
    assert_eq!(
        balance(&chain, alice.address()).await,
        after_first,
        "no second charge"
    );
    assert_eq!(
        record_of(&chain, record).await.token_epoch,
        1,
        "no second bump"
    );

    // stale gas object: the reference from before the last transaction is refused
    let t = tx::revoke_tokens(&cfg, &gas, record_ref(&chain, record).await).unwrap();
    let err = chain
        .sign_and_execute(alice.keypair(), t)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    assert_eq!(balance(&chain, alice.address()).await, after_first);
    assert_eq!(record_of(&chain, record).await.token_epoch, 1);

    // insufficient balance is caught before anything is signed
    let err = chain
        .gas_for(alice.address(), 1_000 * SUI)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::InsufficientBalance { .. }),
        "{err}"
    );
}

/// Runs a bare follower that records every checkpoint it is handed.
type Collecting = (
    Arc<Mutex<Vec<u64>>>,
    Arc<FollowerStatus>,
    tokio::task::JoinHandle<Result<(), ChainError>>,
);

fn collecting(chain: &GrpcChain) -> Collecting {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let follower = Follower::new(chain.rpc_client(), *chain.package());
    let status = follower.status();
    let s = seen.clone();
    let task = tokio::spawn(follower.run(move |e| {
        if let FollowEvent::Checkpoint(c) = e {
            s.lock().unwrap().push(c.sequence);
        }
        Ok(())
    }));
    (seen, status, task)
}

/// M4: a follower never replays what happened while it was away (a restart drops every cache
/// anyway), so after any downtime it streams from the tip within moments, with no per-checkpoint
/// disk write and no dependence on the full node's retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_restart_keeps_state_and_a_new_follower_streams_from_the_tip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chain");
    let devnet = DevnetProcess::start(&data);
    let chain = devnet.chain();
    let admin = devnet.admin_key();
    let alice = WalletKey::generate(Scheme::Ed25519);

    let (seen, status, task) = collecting(&chain);
    wait_for("the follower to stream", || status.is_streaming()).await;
    fund(&chain, &admin, alice.address(), 5 * SUI).await;
    let ex = stake(&chain, &alice, SUI, consts::ROLE_USER, "")
        .await
        .unwrap();
    let record = staked_record(&ex);
    let last = ex.checkpoint.unwrap();
    wait_for("the stake checkpoint", || {
        status.cursor().is_some_and(|c| c >= last)
    })
    .await;
    task.abort();
    let _ = task.await;
    let first_run = seen.lock().unwrap().clone();
    assert!(
        first_run.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {first_run:?}"
    );

    // restart the chain: objects and history survive
    let balance_before = balance(&chain, alice.address()).await;
    devnet.stop();
    let devnet = DevnetProcess::start(&data);
    let chain = devnet.chain();
    assert_eq!(balance(&chain, alice.address()).await, balance_before);
    assert_eq!(record_of(&chain, record).await.balance, SUI);

    // Much activity while no follower runs: many checkpoints (one per transaction).
    let bob = WalletKey::generate(Scheme::Ed25519);
    for _ in 0..20 {
        fund(&chain, &admin, bob.address(), SUI / 10).await;
    }
    let tip = chain.info().await.unwrap().checkpoint_height;
    assert!(tip >= last + 20, "the chain moved on: {last} -> {tip}");

    let started = Instant::now();
    let (seen, status, task) = collecting(&chain);
    wait_for("the new follower to stream", || status.is_streaming()).await;
    let waited = started.elapsed();
    let r = record_ref(&chain, record).await;
    let ex = send(&chain, &alice, |c, g| tx::revoke_tokens(c, g, r))
        .await
        .unwrap();
    let target = ex.checkpoint.unwrap();
    wait_for("the revoke checkpoint", || {
        status.cursor().is_some_and(|c| c >= target)
    })
    .await;
    task.abort();
    let second_run = seen.lock().unwrap().clone();
    // The devnet's subscription starts at the checkpoint it last announced, which can trail
    // GetServiceInfo by one or two: what matters is that the downtime is not replayed.
    assert!(
        second_run.first().is_some_and(|&f| f > last + 10),
        "starts near the tip ({tip}), not after the old position ({last}): {second_run:?} (streaming after {waited:?})"
    );
    assert!(
        second_run.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {second_run:?}"
    );
    assert!(second_run.contains(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_not_fresh_and_the_follower_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = DevnetProcess::start(&dir.path().join("chain"));
    let chain = devnet.chain();
    let admin = devnet.admin_key();
    let ctl = control_with(&chain, Duration::from_secs(1)).await;
    assert!(ctl.auth.view().is_fresh());

    // A partition: the connection stays open, nothing answers. Silence is all the follower
    // sees (sui-rpc retries transport errors inside the stream).
    devnet.freeze(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let streaming = ctl.status.is_streaming();
    let fresh = ctl.auth.view().is_fresh();
    devnet.freeze(false);
    assert!(!streaming, "silent for longer than stale-after");
    assert!(!fresh, "readiness reports the view stale");

    // The chain answers again: the follower reconnects, catches up and is fresh again.
    let alice = WalletKey::generate(Scheme::Ed25519);
    fund(&chain, &admin, alice.address(), SUI).await;
    wait_for("the follower to stream again", || ctl.status.is_streaming()).await;
    assert!(!ctl.task.is_finished(), "a lost stream is not fatal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_and_enclave_registration() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = DevnetProcess::start(&dir.path().join("chain"));
    let chain = devnet.chain();
    let admin = devnet.admin_key();
    let cap = devnet.admin_cap();
    let alice = WalletKey::generate(Scheme::Ed25519);
    fund(&chain, &admin, alice.address(), 10 * SUI).await;

    // raise the user minimum: a stake that was enough is now refused
    let cap_ref = chain.object_ref(cap).await.unwrap();
    send(&chain, &admin, |c, g| {
        tx::set_role_minimum(c, g, cap_ref, consts::ROLE_USER, 2 * SUI)
    })
    .await
    .unwrap();
    aborted(
        stake(&chain, &alice, SUI, consts::ROLE_USER, "").await,
        AbortCode::BelowMinimum,
    );
    stake(&chain, &alice, 2 * SUI, consts::ROLE_USER, "")
        .await
        .unwrap();

    // only the cap holder administers: alice cannot even pass the admin's cap
    let cap_ref = chain.object_ref(cap).await.unwrap();
    let err = send(&chain, &alice, |c, g| tx::set_name(c, g, cap_ref, "mine"))
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");

    // cluster parameters, checked by the package's rules
    let cap_ref = chain.object_ref(cap).await.unwrap();
    send(&chain, &admin, |c, g| tx::set_name(c, g, cap_ref, "prod-1"))
        .await
        .unwrap();
    let cap_ref = chain.object_ref(cap).await.unwrap();
    aborted(
        send(&chain, &admin, |c, g| {
            tx::set_name(c, g, cap_ref, "Not A Label")
        })
        .await,
        AbortCode::InvalidName,
    );
    let (p0, p1, p2) = ([0xa0u8; 48], [0xa1u8; 48], [0xa2u8; 48]);
    let cap_ref = chain.object_ref(cap).await.unwrap();
    aborted(
        send(&chain, &admin, |c, g| {
            tx::set_expected_pcrs(c, g, cap_ref, [&p0[..47], &p1, &p2])
        })
        .await,
        AbortCode::InvalidPcrLength,
    );
    let cap_ref = chain.object_ref(cap).await.unwrap();
    send(&chain, &admin, |c, g| {
        tx::set_expected_pcrs(c, g, cap_ref, [&p0, &p1, &p2])
    })
    .await
    .unwrap();
    let cap_ref = chain.object_ref(cap).await.unwrap();
    send(&chain, &admin, |c, g| {
        tx::set_enclave_operator(c, g, cap_ref, alice.address())
    })
    .await
    .unwrap();
    let cap_ref = chain.object_ref(cap).await.unwrap();
    aborted(
        send(&chain, &admin, |c, g| {
            tx::withdraw_treasury(c, g, cap_ref, SUI)
        })
        .await,
        AbortCode::InsufficientTreasury,
    );
    let cap_ref = chain.object_ref(cap).await.unwrap();
    aborted(
        send(&chain, &admin, |c, g| tx::migrate(c, g, cap_ref)).await,
        AbortCode::NotUpgrade,
    );
    let cluster = chain.cluster().await.unwrap().value.cluster;
    assert_eq!(cluster.name, "prod-1");
    assert_eq!(cluster.min_stake_user, 2 * SUI);
    assert_eq!(
        (
            cluster.expected_pcr0,
            cluster.expected_pcr1,
            cluster.expected_pcr2
        ),
        (p0.to_vec(), p1.to_vec(), p2.to_vec())
    );
    assert_eq!(cluster.enclave_operator, alice.address());

    // enclave registration: the PTB is well-formed; the devnet's Nitro native parses the
    // document with Sui's rules and refuses bytes that are not one (code 1, EParseError)
    let err = send(&chain, &alice, |c, g| {
        tx::register_enclave(c, g, b"not a real document", "https://10.0.0.1:8080")
    })
    .await
    .unwrap_err();
    match err {
        ChainError::ExecutionFailed(msg) => assert!(
            msg.contains("nitro_attestation") && msg.contains("abort 1"),
            "{msg}"
        ),
        other => panic!("expected the nitro native's abort, got {other:?}"),
    }
    assert!(
        chain
            .cluster()
            .await
            .unwrap()
            .value
            .cluster
            .enclave
            .is_none()
    );
}

/// M1: the control plane pins its chain. A configuration naming another chain id is refused at
/// start, and so is every answer of an endpoint that reports another chain (or none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_trusts_only_its_pinned_chain() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = DevnetProcess::start(&dir.path().join("chain"));
    let good = devnet.chain();
    nautilus_master::chain::follow::trust(&good).await.unwrap();
    let cluster = good.config().cluster;
    assert!(good.cluster().await.unwrap().checkpoint.is_some());

    let mut config = good.config().clone();
    config.chain_id = Some("4btiuiMPvEENsttpZC7CZ53DruC3MAgfznDbASZ7DR6S".into());
    let wrong = GrpcChain::new(config.clone()).unwrap();
    let err = nautilus_master::chain::follow::trust(&wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::WrongChain { .. }), "{err}");
    // Each read is checked too, found or not found.
    let err = wrong.cluster().await.unwrap_err();
    assert!(matches!(err, ChainError::WrongChain { .. }), "{err}");
    let err = wrong
        .stake_record(Address::from_static("0x5eed"))
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::WrongChain { .. }), "{err}");

    config.chain_id = None;
    let err = nautilus_master::chain::follow::trust(&GrpcChain::new(config.clone()).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pins no chain_id"), "{err}");

    let mut remote = good.config().clone();
    remote.rpc = "http://10.0.0.1:9000".into();
    let err = nautilus_master::chain::follow::trust(&GrpcChain::new(remote).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing plain http://"), "{err}");
    assert_eq!(good.config().cluster, cluster);
}
