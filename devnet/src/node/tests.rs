//! Persistence through the node: restarts recover the same chain from snapshot plus log, torn
//! tails are dropped, corruption and gaps are refused, snapshots bound the log.

use std::path::{Path, PathBuf};

use sui_crypto::SuiSigner;
use sui_sdk_types::{Address, Digest, Object};
use sui_transaction_builder::{ObjectInput, TransactionBuilder};

use daas_wallet::{Keystore, WalletKey};

use super::Devnet;
use crate::error::DevnetError;
use crate::journal::{self, LOG_MAGIC};
use crate::persist::{LogPolicy, Persistence};

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    key: WalletKey,
    coin: Address,
    to: Address,
}

/// A fresh chain (default genesis) and the admin's first coin as gas.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("chain");
    let client = crate::genesis::init(&data, None, "http://127.0.0.1:1").expect("init");
    let keystore =
        Keystore::load(client.admin_keystore.as_deref().expect("admin keystore")).expect("load");
    let key = keystore.keys()[0].clone();
    let devnet = Devnet::open(&data).expect("open");
    let coin = devnet
        .node
        .read()
        .owned_by(&key.address())
        .find(|o| crate::exec::validate::sui_coin_balance(o).is_some())
        .expect("a coin")
        .object_id();
    Fixture {
        _dir: dir,
        data,
        key,
        coin,
        to: Address::new([7; 32]),
    }
}

/// Transfers 1 MIST to `f.to`, paid from `f.coin`.
async fn transfer(devnet: &Devnet, f: &Fixture) -> Digest {
    let gas = devnet.object(&f.coin).expect("gas coin");
    let mut b = TransactionBuilder::new();
    let g = b.gas();
    let amount = b.pure(&1u64);
    let split = b.split_coins(g, vec![amount]);
    let to = b.pure(&f.to);
    b.transfer_objects(split, to);
    b.set_sender(f.key.address());
    b.set_gas_budget(50_000_000);
    b.set_gas_price(crate::REFERENCE_GAS_PRICE);
    b.add_gas_objects([ObjectInput::owned(
        gas.object_id(),
        gas.version(),
        gas.digest(),
    )]);
    let tx = b.try_build().expect("build");
    let sig = f.key.keypair().sign_transaction(&tx).expect("sign");
    devnet.execute(tx, vec![sig]).await.expect("executes")
}

/// What a restart must preserve.
#[derive(Debug, PartialEq)]
struct View {
    tip: u64,
    tip_digest: Digest,
    chain_id: String,
    coin: Option<Object>,
    received: Vec<Object>,
    transactions: Vec<Option<(u64, Digest)>>,
}

fn view(devnet: &Devnet, f: &Fixture, digests: &[Digest]) -> View {
    let ledger = devnet.node.read();
    View {
        tip: ledger.tip(),
        tip_digest: ledger.latest_checkpoint().summary.digest(),
        chain_id: ledger.chain_id().to_owned(),
        coin: ledger.object(&f.coin).cloned(),
        received: ledger.owned_by(&f.to).cloned().collect(),
        transactions: digests
            .iter()
            .map(|d| {
                ledger
                    .transaction(d)
                    .map(|t| (t.checkpoint, t.effects.digest()))
            })
            .collect(),
    }
}

fn logs(data: &Path) -> Vec<journal::Generation> {
    journal::generations(data).expect("generations")
}

/// Runs `n` transfers and a heartbeat after every third, in `mode`.
async fn grow(f: &Fixture, mode: Persistence, n: usize) -> (View, Vec<Digest>) {
    let devnet = Devnet::open(&f.data).expect("open");
    devnet.set_persistence(mode).await.expect("mode");
    let mut digests = Vec::new();
    for i in 0..n {
        digests.push(transfer(&devnet, f).await);
        if i % 3 == 2 {
            devnet.seal_empty_checkpoint().await;
        }
    }
    devnet.flush().await;
    (view(&devnet, f, &digests), digests)
}

fn policy(records: u64, bytes: u64) -> Persistence {
    Persistence::Log(LogPolicy {
        snapshot_records: records,
        snapshot_bytes: bytes,
    })
}

#[tokio::test]
async fn a_restart_recovers_the_same_chain_in_every_mode() {
    for (case, mode) in [
        ("log, no snapshot", Persistence::default()),
        ("log, snapshot every 4 records", policy(4, u64::MAX)),
        ("log, snapshot every 2 KiB", policy(u64::MAX, 2048)),
        ("full snapshot", Persistence::FullSnapshot),
    ] {
        let f = fixture();
        let (before, digests) = grow(&f, mode, 12).await;
        assert_eq!(before.tip, 16, "{case}");
        let reopened = Devnet::open(&f.data).expect(case);
        assert_eq!(view(&reopened, &f, &digests), before, "{case}");
        // And it goes on: one more transaction, one more restart.
        let digest = transfer(&reopened, &f).await;
        reopened.flush().await;
        let after = view(&reopened, &f, &[digest]);
        drop(reopened);
        assert_eq!(
            view(&Devnet::open(&f.data).expect(case), &f, &[digest]),
            after,
            "{case}"
        );
        if mode == Persistence::FullSnapshot {
            assert!(
                logs(&f.data).len() <= 1,
                "{case}: no log beyond the open one"
            );
        }
    }
}

#[tokio::test]
async fn an_old_data_dir_with_only_the_snapshot_opens() {
    let f = fixture();
    // `fixture` opened it once, which started generation 1; remove it: init writes only chain.bcs.
    for g in logs(&f.data) {
        std::fs::remove_file(&g.path).expect("remove");
    }
    let devnet = Devnet::open(&f.data).expect("open");
    assert_eq!(devnet.checkpoint_height(), 0);
    assert_eq!(logs(&f.data).len(), 1);
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_the_log_goes_on() {
    let f = fixture();
    let (before, digests) = grow(&f, Persistence::default(), 5).await;
    let newest = logs(&f.data).pop().expect("a log");
    let good = std::fs::metadata(&newest.path).expect("stat").len();
    // A crash in the middle of the next append: a header and part of a payload.
    let mut bytes = std::fs::read(&newest.path).expect("read");
    bytes.extend_from_slice(&500u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 40]);
    std::fs::write(&newest.path, &bytes).expect("write");

    let devnet = Devnet::open(&f.data).expect("open drops the torn tail");
    assert_eq!(view(&devnet, &f, &digests), before);
    assert_eq!(std::fs::metadata(&newest.path).expect("stat").len(), good);
    let digest = transfer(&devnet, &f).await;
    drop(devnet);
    let devnet = Devnet::open(&f.data).expect("reopen");
    assert_eq!(devnet.checkpoint_height(), before.tip + 1);
    assert!(devnet.node.read().transaction(&digest).is_some());
}

#[tokio::test]
async fn corruption_before_valid_records_is_refused_with_file_and_offset() {
    let f = fixture();
    grow(&f, Persistence::default(), 4).await;
    let newest = logs(&f.data).pop().expect("a log");
    let mut bytes = std::fs::read(&newest.path).expect("read");
    let scan = journal::scan(&newest.path, &bytes, true).expect("scan");
    let (offset, range) = scan.records[1].clone();
    bytes[range.start + 10] ^= 0x40;
    std::fs::write(&newest.path, &bytes).expect("write");
    match Devnet::open(&f.data) {
        Err(DevnetError::LogCorrupt {
            path, offset: at, ..
        }) => {
            assert_eq!(path, newest.path);
            assert_eq!(at, offset as u64);
        }
        other => panic!("expected LogCorrupt, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_missing_record_is_a_gap_not_a_shorter_chain() {
    let f = fixture();
    grow(&f, Persistence::default(), 4).await;
    let newest = logs(&f.data).pop().expect("a log");
    let bytes = std::fs::read(&newest.path).expect("read");
    let scan = journal::scan(&newest.path, &bytes, true).expect("scan");
    // Rewrite the log without its second record, every other record intact.
    let mut rebuilt = LOG_MAGIC.to_vec();
    for (i, (offset, range)) in scan.records.iter().enumerate() {
        if i != 1 {
            rebuilt.extend_from_slice(&bytes[*offset..range.end]);
        }
    }
    std::fs::write(&newest.path, &rebuilt).expect("write");
    match Devnet::open(&f.data) {
        Err(DevnetError::LogCorrupt { path, reason, .. }) => {
            assert_eq!(path, newest.path);
            assert!(reason.contains("was expected"), "{reason}");
        }
        other => panic!("expected LogCorrupt, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_crash_between_snapshot_and_log_removal_recovers_the_same_chain() {
    let f = fixture();
    let (_, mut digests) = grow(&f, Persistence::default(), 4).await;
    // Keep the log the snapshot is about to absorb, as a crash before its removal would.
    let old = logs(&f.data);
    let saved: Vec<(PathBuf, Vec<u8>)> = old
        .iter()
        .map(|g| (g.path.clone(), std::fs::read(&g.path).expect("read")))
        .collect();
    let devnet = Devnet::open(&f.data).expect("open");
    devnet
        .set_persistence(Persistence::default())
        .await
        .expect("snapshot");
    assert!(old.iter().all(|g| !g.path.exists()), "absorbed log removed");
    // Records after the snapshot go to a new generation.
    digests.push(transfer(&devnet, &f).await);
    devnet.seal_empty_checkpoint().await;
    let before = view(&devnet, &f, &digests);
    drop(devnet);
    for (path, bytes) in saved {
        std::fs::write(path, bytes).expect("restore");
    }
    assert_eq!(logs(&f.data).len(), 2);
    let devnet = Devnet::open(&f.data).expect("open skips what the snapshot covers");
    assert_eq!(view(&devnet, &f, &digests), before);
}

#[tokio::test]
async fn snapshots_bound_the_log_of_idle_heartbeats() {
    let f = fixture();
    let devnet = Devnet::open(&f.data).expect("open");
    devnet
        .set_persistence(policy(5, u64::MAX))
        .await
        .expect("mode");
    for _ in 0..40 {
        devnet.seal_empty_checkpoint().await;
        devnet.flush().await;
        let (records, _) = devnet.node.exec.lock().await.log_size();
        assert!(records < 5, "{records} records since the last snapshot");
        // The generation being written, plus at most the one the snapshot is absorbing.
        assert!(logs(&f.data).len() <= 2);
        let bytes: u64 = logs(&f.data)
            .iter()
            .map(|g| std::fs::metadata(&g.path).expect("stat").len())
            .sum();
        assert!(bytes < 8 * 1024, "{bytes} bytes of log");
    }
    let tip = devnet.checkpoint_height();
    assert_eq!(tip, 40);
    drop(devnet);
    assert_eq!(
        Devnet::open(&f.data).expect("open").checkpoint_height(),
        tip
    );
}

#[tokio::test]
async fn off_writes_nothing_until_switched_back() {
    let f = fixture();
    let devnet = Devnet::open(&f.data).expect("open");
    devnet.set_persistence(Persistence::Off).await.expect("off");
    let digest = transfer(&devnet, &f).await;
    assert_eq!(Devnet::open(&f.data).expect("open").checkpoint_height(), 0);
    devnet
        .set_persistence(Persistence::default())
        .await
        .expect("log");
    let reopened = Devnet::open(&f.data).expect("open");
    assert_eq!(reopened.checkpoint_height(), 1);
    assert!(reopened.node.read().transaction(&digest).is_some());
}

#[tokio::test]
async fn a_caller_that_stops_waiting_does_not_reorder_or_lose_records() {
    let f = fixture();
    let devnet = Devnet::open(&f.data).expect("open");
    // Give up on the first transfer as soon as it waits (for its append, in practice): it
    // is committed in memory, and its record must still land before the next one.
    let first = tokio::time::timeout(std::time::Duration::ZERO, transfer(&devnet, &f)).await;
    assert!(first.is_err(), "the zero timeout ends the wait");
    let second = transfer(&devnet, &f).await;
    devnet.seal_empty_checkpoint().await;
    devnet.flush().await;
    let before = view(&devnet, &f, &[second]);
    assert_eq!(before.tip, 3);
    drop(devnet);
    let reopened = Devnet::open(&f.data).expect("both records recovered, in order");
    assert_eq!(view(&reopened, &f, &[second]), before);
}
