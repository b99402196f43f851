//! What persistence costs per checkpoint as the chain grows: SUI transfers per second through
//! the devnet's own execution path (`Devnet::execute`: signature checks, execution, sealing,
//! persistence before it returns) and the latency of an empty checkpoint (the idle heartbeat),
//! at two chain sizes, for:
//!
//! - the old strategy, the whole snapshot rewritten after every checkpoint (baseline);
//! - the checkpoint log with the default policy (a snapshot every 10,000 records or 64 MiB);
//! - the checkpoint log with a snapshot every 100 records, so that background snapshots of the
//!   whole chain run during the measurement;
//! - persistence off: the same path writing nothing, the ceiling the log is compared with.
//!
//! The chain is grown with persistence off (the same real, signed transfers, only not
//! written), then the data directory is brought up to date by a snapshot before each mode.
//! Each measurement runs a fixed number of operations or a time budget, whichever ends first.
//! Before each, an fsync probe (30 appends of 1.7 KB, each `fdatasync`ed, to a scratch file
//! beside the chain) prints the device's latency at that moment: on a shared machine it moves
//! between runs by an order of magnitude, and the log's rate follows it.
//!
//! Run: `cargo bench -p k3s-daas-devnet --bench persist` (chains of 1k and 100k transactions;
//! `-- --quick`: 1k and 10k, a few seconds). Results and method: docs/performance.md § Devnet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use daas_devnet::{Devnet, LogPolicy, Persistence, REFERENCE_GAS_PRICE};
use daas_wallet::{Keystore, WalletKey};
use sui_crypto::SuiSigner;
use sui_sdk_types::{Address, StructTag};
use sui_transaction_builder::{ObjectInput, TransactionBuilder};

struct Wallet {
    key: WalletKey,
    coin: Address,
    to: Address,
}

struct Plan {
    sizes: [usize; 2],
    transfers: usize,
    heartbeats: usize,
    budget: Duration,
}

/// Transfers 1 MIST from the admin's gas coin to a fixed address.
async fn transfer(devnet: &Devnet, w: &Wallet) {
    let gas = devnet.object(&w.coin).expect("gas coin");
    let mut b = TransactionBuilder::new();
    let g = b.gas();
    let amount = b.pure(&1u64);
    let split = b.split_coins(g, vec![amount]);
    let to = b.pure(&w.to);
    b.transfer_objects(split, to);
    b.set_sender(w.key.address());
    b.set_gas_budget(50_000_000);
    b.set_gas_price(REFERENCE_GAS_PRICE);
    b.add_gas_objects([ObjectInput::owned(
        gas.object_id(),
        gas.version(),
        gas.digest(),
    )]);
    let tx = b.try_build().expect("build");
    let sig = w.key.keypair().sign_transaction(&tx).expect("sign");
    devnet.execute(tx, vec![sig]).await.expect("executes");
}

struct Measured {
    tx_per_s: f64,
    transfers: usize,
    tx_max_us: f64,
    p50_us: f64,
    p99_us: f64,
    heartbeats: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn measure(devnet: &Devnet, w: &Wallet, plan: &Plan) -> Measured {
    let start = Instant::now();
    let mut tx_latencies = Vec::new();
    while tx_latencies.len() < plan.transfers
        && (tx_latencies.len() < 5 || start.elapsed() < plan.budget)
    {
        let t = Instant::now();
        transfer(devnet, w).await;
        tx_latencies.push(t.elapsed());
    }
    let transfers = tx_latencies.len();
    let tx_per_s = transfers as f64 / start.elapsed().as_secs_f64();
    // The slowest transfer: the one that started a snapshot pays the copy of the live set.
    let tx_max_us = tx_latencies
        .iter()
        .max()
        .map_or(0.0, |d| d.as_secs_f64() * 1e6);
    let start = Instant::now();
    let mut latencies = Vec::new();
    while latencies.len() < plan.heartbeats
        && (latencies.len() < 5 || start.elapsed() < plan.budget)
    {
        let t = Instant::now();
        devnet.seal_empty_checkpoint().await;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    Measured {
        tx_per_s,
        transfers,
        tx_max_us,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        heartbeats: latencies.len(),
    }
}

fn size_of(data: &Path) -> u64 {
    std::fs::metadata(data.join(daas_devnet::SNAPSHOT_FILE))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The device's floor at this moment: p50 of `n` appends of a transfer-sized record, each
/// followed by `fdatasync`, to a scratch file in `dir` (what one log record costs in I/O).
fn fsync_probe(dir: &Path, n: usize) -> f64 {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let record = [0x5a; 1700];
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            file.write_all(&record).expect("probe write");
            file.sync_data().expect("probe sync");
            t.elapsed()
        })
        .collect();
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort();
    percentile(&times, 0.5)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

async fn run(plan: Plan) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("chain");
    let client = daas_devnet::init(&data, None, "http://127.0.0.1:1").expect("init");
    let key = Keystore::load(client.admin_keystore.as_deref().expect("admin keystore"))
        .expect("keystore")
        .keys()[0]
        .clone();
    let devnet = Devnet::open(&data).expect("open");
    // The admin's first coin (the genesis gives it 10 coins of 1,000 SUI).
    let coin = devnet
        .owned_objects(&key.address())
        .iter()
        .find(|o| {
            o.as_struct()
                .is_some_and(|s| *s.object_type() == StructTag::gas_coin())
        })
        .expect("an admin coin")
        .object_id();
    let wallet = Wallet {
        key,
        coin,
        to: Address::new([7; 32]),
    };
    println!("load average at start: {}", load_average());

    let modes: [(&str, Persistence); 4] = [
        (
            "full snapshot per checkpoint (old)",
            Persistence::FullSnapshot,
        ),
        ("log, default policy", Persistence::default()),
        (
            "log, snapshot every 100 records",
            Persistence::Log(LogPolicy {
                snapshot_records: 100,
                snapshot_bytes: u64::MAX,
            }),
        ),
        ("off: nothing written (ceiling)", Persistence::Off),
    ];
    let mut executed = 0usize;
    let mut flat: Vec<f64> = Vec::new();
    for size in plan.sizes {
        devnet.set_persistence(Persistence::Off).await.expect("off");
        let grow = Instant::now();
        let target = size.saturating_sub(executed);
        for _ in 0..target {
            transfer(&devnet, &wallet).await;
        }
        executed += target;
        println!(
            "\nchain of {size} transfers (grown in memory by {target} in {:.1} s):",
            grow.elapsed().as_secs_f64()
        );
        let mut baseline: Option<Measured> = None;
        for (name, mode) in modes {
            let t = Instant::now();
            devnet.set_persistence(mode).await.expect("mode");
            let snapshot_ms = t.elapsed().as_secs_f64() * 1e3;
            let probe = fsync_probe(dir.path(), 30);
            let m = measure(&devnet, &wallet, &plan).await;
            devnet.flush().await;
            executed += m.transfers;
            let (tx_ratio, p50_ratio) = baseline.as_ref().map_or((1.0, 1.0), |b| {
                (m.tx_per_s / b.tx_per_s, b.p50_us / m.p50_us)
            });
            println!(
                "  {name:<36} {:>7.1} tx/s ({:>4} tx, max {:>8.0} µs) {tx_ratio:>8.2}×  heartbeat p50 {:>8.0} µs p99 {:>8.0} µs ({:>3}) {p50_ratio:>8.2}× faster  [fsync probe p50 {probe:.0} µs]",
                m.tx_per_s, m.transfers, m.tx_max_us, m.p50_us, m.p99_us, m.heartbeats
            );
            if mode == Persistence::default() {
                flat.push(m.tx_per_s);
            }
            if baseline.is_none() {
                println!(
                    "    (snapshot of the whole chain: {:.1} MB, written in {snapshot_ms:.0} ms)",
                    size_of(&data) as f64 / 1e6
                );
                baseline = Some(m);
            }
        }
    }
    if let [small, large] = flat[..] {
        println!(
            "\nlog, default policy: tx/s at {} ÷ at {} transfers = {:.2}",
            plan.sizes[1],
            plan.sizes[0],
            large / small
        );
    }
    println!("load average at end: {}", load_average());
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            sizes: [1_000, 10_000],
            transfers: 200,
            heartbeats: 100,
            budget: Duration::from_millis(250),
        }
    } else {
        Plan {
            sizes: [1_000, 100_000],
            transfers: 1_000,
            heartbeats: 300,
            budget: Duration::from_secs(8),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(plan));
}
