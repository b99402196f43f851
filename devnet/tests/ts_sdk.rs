//! Independent cross-check of the development chain and of our Rust transaction bytes with the
//! official Sui TypeScript SDK (`@mysten/sui`, pinned in `tests/ts-sdk/package.json`).
//!
//! The test starts the `k3s-daas-devnet` binary on port 0, funds a fresh key from the genesis
//! faucet and stakes 0.5 SUI as a user with our Rust client (`daas-chain`), then signs a second
//! transaction it does not execute. `tests/ts-sdk/devnet-check.mjs` reads the same chain through
//! the SDK's gRPC-Web client (`SuiGrpcClient`) and compares what it sees with what Rust saw:
//! chain id, reference gas price, the stake record (metadata and BCS fields, through
//! `GetObject`, `BatchGetObjects` and `ListOwnedObjects`), the executed transaction (digest,
//! status, checkpoint, bytes, signature, created record, effects BCS decoded with the SDK's
//! schema, `Staked` event) and, for both Rust transactions, the SDK's digest of our bytes and its
//! verification of our signatures (tampered bytes must fail). Every check prints one line; the
//! test requires the exact list of checks, all passing.
//!
//! Needs `node` and `npm ci --prefix tests/ts-sdk`. Without them the test is skipped with a
//! printed reason, unless `DAAS_REQUIRE_PEERS=1` (set by `.ci/run`), which turns that into a
//! failure.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use daas_chain::{Chain, ChainConfig, GrpcChain, tx};
use daas_chain_types::PackageEvent;
use daas_chain_types::consts::{ROLE_USER, STATUS_ACTIVE};
use daas_devnet::process::DevnetProcess;
use daas_wallet::{Keystore, Scheme, WalletKey};
use serde_json::{Value, json};
use sui_crypto::SuiSigner;

const STAKE_MIST: u64 = 500_000_000;
const FUNDING_MIST: u64 = 2_000_000_000;

/// Every check `devnet-check.mjs` must report, all passing.
const CHECKS: &[&str] = &[
    "service-info.chain-id",
    "reference-gas-price",
    "stake-record.get-object",
    "stake-record.core-get-object",
    "stake-record.owned-objects",
    "stake-tx.get-transaction",
    "stake-tx.effects-bcs",
    "stake-tx.staked-event",
    "stake-tx.rust-bytes",
    "unexecuted-tx.digest",
    "unexecuted-tx.signature",
    "unexecuted-tx.tampered",
    "unexecuted-tx.unknown-to-chain",
];

fn peer_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/ts-sdk");
    let have_sdk = dir.join("node_modules/@mysten/sui/package.json").is_file();
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_sdk && have_node {
        return Some(dir);
    }
    let reason = if have_node {
        "tests/ts-sdk/node_modules is missing (run `npm ci --prefix tests/ts-sdk`)"
    } else {
        "`node` is not on PATH"
    };
    if std::env::var("DAAS_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("DAAS_REQUIRE_PEERS=1 but the TypeScript SDK peer is unavailable: {reason}");
    }
    eprintln!("SKIPPED devnet ts_sdk cross-check: {reason}");
    None
}

/// A devnet process on a fresh data directory; killed when dropped.
struct Devnet {
    process: DevnetProcess,
    data_dir: tempfile::TempDir,
    rpc: String,
}

impl Devnet {
    fn start() -> Devnet {
        let data_dir = tempfile::tempdir().unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_k3s-daas-devnet"));
        let process = DevnetProcess::start(bin, data_dir.path(), 10_000).expect("start the devnet");
        let mut devnet = Devnet {
            rpc: process.url(),
            process,
            data_dir,
        };
        // client.json (with the bound address) is written before the address is announced.
        let path = devnet.client_json();
        assert!(path.is_file(), "{} missing after start", path.display());
        if let Some(status) = devnet.process.try_wait().unwrap() {
            panic!("devnet exited right after start: {status}");
        }
        devnet
    }

    fn client_json(&self) -> PathBuf {
        self.process.client_config_path()
    }
}

/// The faucet key the devnet generated at genesis (`faucet_keystore` in `client.json`).
fn faucet_key(client: &Value, data_dir: &Path) -> WalletKey {
    let path = PathBuf::from(
        client["faucet_keystore"]
            .as_str()
            .expect("client.json names a faucet_keystore"),
    );
    let path = if path.is_absolute() {
        path
    } else {
        data_dir.join(path)
    };
    let keystore = Keystore::load(&path).unwrap();
    let key = keystore.select(None).unwrap().clone();
    assert_eq!(
        client["faucet"].as_str(),
        Some(key.address().to_string().as_str()),
        "client.json faucet address is not the keystore's key"
    );
    key
}

/// The `ChainConfig` part of `client.json` (which also names the admin and faucet keys).
fn chain_config(client: &Value) -> ChainConfig {
    let mut fields = serde_json::Map::new();
    for key in [
        "rpc",
        "chain_id",
        "package",
        "cluster",
        "cluster_initial_shared_version",
        "admin_cap",
    ] {
        fields.insert(key.into(), client[key].clone());
    }
    serde_json::from_value(Value::Object(fields)).expect("client.json has the ChainConfig fields")
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk_reads_the_devnet_as_rust_does() {
    let Some(peer) = peer_dir() else { return };
    let devnet = Devnet::start();
    let client: Value =
        serde_json::from_str(&std::fs::read_to_string(devnet.client_json()).unwrap()).unwrap();
    let config = chain_config(&client);
    assert_eq!(
        config.rpc.trim_end_matches('/'),
        devnet.rpc,
        "client.json rpc"
    );
    let chain = GrpcChain::new(config.clone()).unwrap();
    let info = chain.check_chain().await.unwrap();
    let gas_price = chain.reference_gas_price().await.unwrap();

    // Fund a fresh key from the faucet.
    let faucet = faucet_key(&client, devnet.data_dir.path());
    let user = WalletKey::generate(Scheme::Ed25519);
    let gas = chain.gas_for(faucet.address(), FUNDING_MIST).await.unwrap();
    let funding = tx::transfer_sui(&config, &gas, user.address(), FUNDING_MIST).unwrap();
    chain
        .sign_and_execute(faucet.keypair(), funding)
        .await
        .unwrap();

    // Stake 0.5 SUI as a user, keeping the signed bytes.
    let gas = chain.gas_for(user.address(), STAKE_MIST).await.unwrap();
    assert_eq!(gas.price, gas_price);
    let stake = tx::stake(&config, &gas, STAKE_MIST, ROLE_USER, "").unwrap();
    let stake_sig = user.keypair().sign_transaction(&stake).unwrap();
    let stake_bcs = bcs::to_bytes(&stake).unwrap();
    let executed = chain
        .execute(stake.clone(), vec![stake_sig.clone()])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(executed.digest, stake.digest());
    let checkpoint = executed.checkpoint.expect("executed in a checkpoint");
    let staked = match executed.events.as_slice() {
        [PackageEvent::Staked(e)] => e.clone(),
        other => panic!("expected one Staked event, got {other:?}"),
    };
    let record_type = chain.package().stake_record_type();
    let created: Vec<_> = executed.created_of_type(&record_type).collect();
    assert_eq!(created.len(), 1, "one StakeRecord created: {created:?}");
    assert_eq!(created[0].id, staked.record_id);
    let record = chain
        .stake_record(staked.record_id)
        .await
        .unwrap()
        .value
        .expect("stake record exists");
    let r = &record.record;
    assert_eq!(Some(record.object), created[0].output);
    assert_eq!(
        (r.owner, r.role, r.node_name.as_str(), r.balance, r.status),
        (user.address(), ROLE_USER, "", STAKE_MIST, STATUS_ACTIVE)
    );
    assert_eq!(r.cluster_id, config.cluster);

    // A second transaction, signed but never executed.
    let gas = chain.gas_for(user.address(), 100_000_000).await.unwrap();
    let unexecuted = tx::transfer_sui(&config, &gas, faucet.address(), 100_000_000).unwrap();
    let unexecuted_sig = user.keypair().sign_transaction(&unexecuted).unwrap();

    let b64 = |bytes: &[u8]| {
        use base64ct::Encoding;
        base64ct::Base64::encode_string(bytes)
    };
    let input = json!({
        "rpc": devnet.rpc,
        "chain_id": client["chain_id"],
        "package": config.package.to_string(),
        "reference_gas_price": gas_price.to_string(),
        "stake": {
            "tx_digest": executed.digest.to_string(),
            "checkpoint": checkpoint.to_string(),
            "sender": user.address().to_string(),
            "tx_bcs_b64": b64(&stake_bcs),
            "signature_b64": stake_sig.to_base64(),
            "record": {
                "id": record.object.id.to_string(),
                "version": record.object.version.to_string(),
                "digest": record.object.digest.to_string(),
                "owner": user.address().to_string(),
                "type": record_type.to_string(),
                "fields": {
                    "id": r.id.to_string(),
                    "cluster_id": r.cluster_id.to_string(),
                    "owner": r.owner.to_string(),
                    "role": r.role,
                    "node_name": r.node_name,
                    "balance": r.balance.to_string(),
                    "status": r.status,
                    "token_epoch": r.token_epoch.to_string(),
                    "staked_at_ms": r.staked_at_ms.to_string(),
                    "unbond_requested_at_ms": r.unbond_requested_at_ms.to_string(),
                },
            },
            "event": {
                "cluster_id": staked.cluster_id.to_string(),
                "record_id": staked.record_id.to_string(),
                "owner": staked.owner.to_string(),
                "role": staked.role,
                "node_name": staked.node_name,
                "amount": staked.amount.to_string(),
                "staked_at_ms": staked.staked_at_ms.to_string(),
            },
        },
        "unexecuted": {
            "digest": unexecuted.digest().to_string(),
            "sender": user.address().to_string(),
            "tx_bcs_b64": b64(&bcs::to_bytes(&unexecuted).unwrap()),
            "signature_b64": unexecuted_sig.to_base64(),
        },
    });
    assert_eq!(
        Some(info.chain_id.as_str()),
        client["chain_id"].as_str(),
        "Rust GetServiceInfo chain id vs client.json"
    );

    let work = tempfile::tempdir().unwrap();
    let input_path = work.path().join("input.json");
    let output_path = work.path().join("output.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let status = tokio::task::spawn_blocking({
        let (script, i, o) = (
            peer.join("devnet-check.mjs"),
            input_path,
            output_path.clone(),
        );
        move || Command::new("node").arg(script).arg(i).arg(o).status()
    })
    .await
    .unwrap()
    .expect("run node");
    let output = std::fs::read_to_string(&output_path)
        .unwrap_or_else(|e| panic!("devnet-check.mjs wrote no output ({e}); exit {status}"));
    let output: Value = serde_json::from_str(&output).unwrap();
    eprintln!("TypeScript SDK @mysten/sui {}", output["sdk_version"]);
    let checks = output["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, CHECKS, "the script ran another set of checks");
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{}: {}", c["name"], c["detail"]))
        .collect();
    assert!(
        failed.is_empty(),
        "the TypeScript SDK disagrees with the devnet or our bytes:\n{}",
        failed.join("\n")
    );
    assert!(status.success(), "devnet-check.mjs exited with {status}");
}
