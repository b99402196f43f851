//! The chain side, measured against the development chain served in this process:
//!
//! 1. transactions/s the devnet sustains for `staking::stake` (K wallets, each submitting and
//!    waiting for its checkpoint in turn), against plain SUI transfers as the baseline;
//! 2. Seal authentications/s on the cold path (every token new, so no verdict cache) with the
//!    chain-backed `StakeView`: every lookup a gRPC round trip (no follower), records cached by
//!    a streaming follower, and the in-memory view as the baseline; plus verdict-cache hits.
//!
//! Run: `cargo bench -p nautilus-master --bench chain` (`-- --quick` for a short run).
//! Results and how to read them: docs/performance.md.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_chain::{Chain, ChainConfig, GrpcChain, tx};
use daas_chain_types::{PackageEvent, consts};
use daas_devnet::LocalDevnet;
use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::{Keystore, Scheme, WalletKey};
use nautilus_master::auth::{
    AuthConfig, InMemoryStakeView, SealAuthenticator, StakeRecord, StakeStatus, StakeView,
};
use nautilus_master::chain::ChainStakeView;

const SUI: u64 = 1_000_000_000;

struct Plan {
    wallets: usize,
    per_wallet: usize,
    records: usize,
    tokens: usize,
}

async fn fund(chain: &GrpcChain, from: &WalletKey, to: Address, amount: u64) {
    let gas = chain.gas_for(from.address(), amount).await.unwrap();
    let t = tx::transfer_sui(chain.config(), &gas, to, amount).unwrap();
    chain.sign_and_execute(from.keypair(), t).await.unwrap();
}

/// Runs `per_wallet` transactions from each wallet concurrently; returns transactions/s.
async fn throughput(
    chain: &GrpcChain,
    wallets: &[WalletKey],
    per_wallet: usize,
    stake: bool,
) -> (f64, Vec<Address>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in wallets {
        let chain = chain.clone();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::new();
            for _ in 0..per_wallet {
                let gas = chain.gas_for(w.address(), SUI).await.unwrap();
                let t = if stake {
                    tx::stake(chain.config(), &gas, SUI, consts::ROLE_USER, "").unwrap()
                } else {
                    tx::transfer_sui(chain.config(), &gas, w.address(), SUI).unwrap()
                };
                let ex = chain.sign_and_execute(w.keypair(), t).await.unwrap();
                records.extend(ex.events.iter().filter_map(|e| match e {
                    PackageEvent::Staked(s) => Some(s.record_id),
                    _ => None,
                }));
            }
            records
        }));
    }
    let mut records = Vec::new();
    for t in tasks {
        records.extend(t.await.unwrap());
    }
    let n = wallets.len() * per_wallet;
    (n as f64 / start.elapsed().as_secs_f64(), records)
}

fn tokens(owner: &WalletKey, cluster: Address, records: &[Address], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let c = Claims::builder(
                cluster,
                owner.address(),
                records[i % records.len()],
                Role::User,
            )
            .lifetime(nautilus_master::auth::unix_ms_now(), 3_600_000)
            .random_nonce()
            .build()
            .unwrap();
            mint(owner.keypair(), c).unwrap().into_string()
        })
        .collect()
}

/// Authenticates every token once (all distinct: the verdict cache never hits); returns /s.
async fn cold<V: StakeView>(auth: &SealAuthenticator<V>, tokens: &[String]) -> f64 {
    let start = Instant::now();
    for t in tokens {
        auth.authenticate(t).await.unwrap();
    }
    tokens.len() as f64 / start.elapsed().as_secs_f64()
}

fn line(name: &str, per_s: f64, baseline: f64) {
    println!(
        "  {name:<46} {per_s:>10.0}/s  {:>9.1} µs/op  {:>6.3}× baseline",
        1e6 / per_s,
        per_s / baseline
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            wallets: 4,
            per_wallet: 8,
            records: 8,
            tokens: 200,
        }
    } else {
        Plan {
            wallets: 8,
            per_wallet: 40,
            records: 64,
            tokens: 2_000,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let devnet = LocalDevnet::start(dir.path(), None, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let mut config = ChainConfig::new(
        devnet.url(),
        devnet.config.package,
        devnet.config.cluster,
        devnet.config.cluster_initial_shared_version,
    );
    config.chain_id = Some(devnet.config.chain_id.clone());
    let chain = GrpcChain::new(config).unwrap();
    let admin = Keystore::load(devnet.config.admin_keystore.as_ref().unwrap())
        .unwrap()
        .keys()[0]
        .clone();
    let wallets: Vec<_> = (0..plan.wallets)
        .map(|_| WalletKey::generate(Scheme::Ed25519))
        .collect();
    for w in &wallets {
        fund(
            &chain,
            &admin,
            w.address(),
            (plan.per_wallet as u64 + 2) * 2 * SUI,
        )
        .await;
    }
    println!(
        "k3s-daas-devnet in process, {} wallets × {} transactions{}",
        plan.wallets,
        plan.per_wallet,
        if quick { " (--quick)" } else { "" }
    );

    println!(
        "devnet throughput (submit + wait for checkpoint, {} wallets in parallel):",
        plan.wallets
    );
    let (transfer, _) = throughput(&chain, &wallets, plan.per_wallet, false).await;
    line("SUI transfer (baseline)", transfer, transfer);
    let (stake, records) = throughput(&chain, &wallets, plan.per_wallet, true).await;
    line("staking::stake", stake, transfer);

    // One owner's records for the authentication runs.
    let owner = wallets[0].clone();
    let mine: Vec<Address> = chain
        .stake_records_of(owner.address())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.object.id)
        .take(plan.records)
        .collect();
    assert!(!mine.is_empty() && records.len() >= mine.len());
    let cluster = chain.config().cluster;

    println!(
        "Seal authentication, cold path ({} distinct tokens over {} records):",
        plan.tokens,
        mine.len()
    );
    // baseline: the same records in memory
    let memory = Arc::new(InMemoryStakeView::default());
    for r in chain.stake_records_of(owner.address()).await.unwrap() {
        memory.upsert(StakeRecord {
            id: r.object.id,
            owner: r.record.owner,
            cluster: r.record.cluster_id,
            role: Role::User,
            node_name: None,
            amount_mist: r.record.balance,
            status: StakeStatus::Active,
            token_epoch: r.record.token_epoch,
            granted: true,
        });
    }
    // One owner mints every token: measure verification, not the per-signer budget.
    let config = AuthConfig {
        cold_per_signer: nautilus_master::RateLimit::unlimited(),
        ..AuthConfig::new(cluster)
    };
    let auth = SealAuthenticator::new(config.clone(), memory);
    let base = cold(&auth, &tokens(&owner, cluster, &mine, plan.tokens)).await;
    line("in-memory view (baseline)", base, base);

    let direct = Arc::new(ChainStakeView::new(chain.clone(), cluster, None));
    let auth = SealAuthenticator::new(config.clone(), direct);
    let rpc = cold(&auth, &tokens(&owner, cluster, &mine, plan.tokens.min(500))).await;
    line("chain view, gRPC round trips (no follower)", rpc, base);

    let (auth, live, follower) = nautilus_master::chain::follow::following(
        chain.clone(),
        config,
        daas_chain::follow::DEFAULT_STALE_AFTER,
    )
    .await
    .unwrap();
    let task = tokio::spawn(follower);
    while !live.is_streaming() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cold(&auth, &tokens(&owner, cluster, &mine, mine.len())).await; // warm the record cache
    let cached = cold(&auth, &tokens(&owner, cluster, &mine, plan.tokens)).await;
    line(
        "chain view, records cached (follower streaming)",
        cached,
        base,
    );
    let hot = tokens(&owner, cluster, &mine, 1);
    auth.authenticate(&hot[0]).await.unwrap();
    let n = plan.tokens * 20;
    let start = Instant::now();
    for _ in 0..n {
        auth.authenticate(&hot[0]).await.unwrap();
    }
    let hit = n as f64 / start.elapsed().as_secs_f64();
    line("verdict cache hit", hit, base);
    println!("  cached records vs round trips: {:.1}×", cached / rpc);

    task.abort();
    devnet.shutdown().await.unwrap();
}
