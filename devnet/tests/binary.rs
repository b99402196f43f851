//! The `k3s-daas-devnet` binary: start on port 0, faucet, SIGTERM, restart with state kept.

use std::path::Path;
use std::process::Command;
use sui_rpc::Client;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::Address;

use daas_devnet::ClientConfig;
use daas_devnet::process::DevnetProcess;

const BIN: &str = env!("CARGO_BIN_EXE_k3s-daas-devnet");

/// Starts the devnet on 127.0.0.1:0.
fn start(data_dir: &Path) -> DevnetProcess {
    DevnetProcess::start(Path::new(BIN), data_dir, 0).expect("start the devnet")
}

/// SIGTERM, then the exit status (must be success).
fn stop(devnet: DevnetProcess) {
    let status = devnet.stop().expect("stop");
    assert!(status.success(), "devnet exited with {status}");
}

async fn balance_and_height(addr: &str, owner: Address) -> (u64, u64, String) {
    let mut client = Client::new(format!("http://{addr}")).expect("client");
    let balance = client
        .state_client()
        .get_balance(proto::GetBalanceRequest::default().with_owner(owner.to_string()))
        .await
        .expect("GetBalance")
        .into_inner()
        .balance()
        .balance();
    let info = client
        .ledger_client()
        .get_service_info(proto::GetServiceInfoRequest::default())
        .await
        .expect("GetServiceInfo")
        .into_inner();
    (
        balance,
        info.checkpoint_height(),
        info.chain_id().to_owned(),
    )
}

#[test]
fn help_says_it_is_not_sui() {
    let out = Command::new(BIN).arg("--help").output().expect("--help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("NOT Sui"), "{text}");
    assert!(text.contains("does not run Move"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faucet_then_restart_keeps_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("devnet");
    let devnet = start(&data);
    let addr = devnet.addr.clone();
    let config = ClientConfig::load(&data.join("client.json")).expect("client.json");
    assert_eq!(config.rpc, format!("http://{addr}"));
    assert_eq!(config.cluster_initial_shared_version, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(
            mode(config.faucet_keystore.as_deref().expect("faucet keystore")),
            0o600
        );
        assert_eq!(
            mode(config.admin_keystore.as_deref().expect("admin keystore")),
            0o600
        );
    }

    let to = Address::from_static("0x4242");
    let out = Command::new(BIN)
        .args([
            "faucet",
            "--amount",
            "2.5",
            "--to",
            &to.to_string(),
            "--data-dir",
        ])
        .arg(&data)
        .env("DAAS_LOG", "warn")
        .output()
        .expect("faucet");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 2500000000 MIST"));
    let before = balance_and_height(&addr, to).await;
    assert_eq!(before.0, 2_500_000_000);
    assert_eq!(before.1, 1);
    assert_eq!(before.2, config.chain_id);
    stop(devnet);

    let devnet = start(&data);
    let addr2 = devnet.addr.clone();
    let after = balance_and_height(&addr2, to).await;
    assert_eq!(
        after, before,
        "balance, checkpoint height and chain id survive a restart"
    );
    let reloaded = ClientConfig::load(&data.join("client.json")).expect("client.json");
    assert_eq!(reloaded.rpc, format!("http://{addr2}"));
    assert_eq!(reloaded.package, config.package);
    stop(devnet);
}

/// `--trust-dev-attestation-root` with a file that is not a PEM certificate: the devnet does not
/// start, and says which flag and file are wrong.
#[test]
fn a_bad_dev_attestation_root_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("root.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let out = Command::new(BIN)
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("chain"))
        .arg("--trust-dev-attestation-root")
        .arg(&bad)
        .env("DAAS_LOG", "error")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trust-dev-attestation-root") && err.contains("root.pem"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "it never listened");
}
