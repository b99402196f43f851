//! The staker-agent binary as users run it: exit codes, stdout/stderr split, no secrets printed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use daas_wallet::{Scheme, WalletKey, write_keystore};

const BIN: &str = env!("CARGO_BIN_EXE_staker-agent");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn staker-agent");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Wallet {
    _dir: tempfile::TempDir,
    path: String,
    keys: Vec<WalletKey>,
}

fn wallet() -> Wallet {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = vec![
        WalletKey::generate(Scheme::Ed25519),
        WalletKey::generate(Scheme::Secp256k1),
    ];
    let path = dir.path().join("sui.keystore");
    write_keystore(&path, &keys).expect("write");
    Wallet {
        path: path.display().to_string(),
        _dir: dir,
        keys,
    }
}

#[test]
fn wallet_list_and_show_print_no_secrets() {
    let w = wallet();
    let out = run(&["--keystore", &w.path, "wallet", "list"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for k in &w.keys {
        assert!(stdout.contains(&k.address().to_string()));
        let secret = k.to_suiprivkey().expect("bech32");
        assert!(!stdout.contains(&secret) && !text(&out.stderr).contains(&secret));
    }
    // two keys and no --key: a clear error, exit 1
    let out = run(&["--keystore", &w.path, "wallet", "show"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--key"), "{}", text(&out.stderr));
    let addr = w.keys[1].address().to_string();
    let out = run(
        &[
            "--keystore",
            &w.path,
            "--key",
            &addr,
            "--output",
            "json",
            "wallet",
            "show",
        ],
        None,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["scheme"], "secp256k1");
    assert_eq!(v["address"], addr);
}

#[test]
fn mint_then_inspect_round_trip() {
    let w = wallet();
    let addr = w.keys[0].address().to_string();
    let cluster = format!("0x{}", "c1".repeat(32));
    let stake = format!("0x{}", "5e".repeat(32));
    let out = run(
        &[
            "--keystore",
            &w.path,
            "--key",
            &addr,
            "token",
            "mint",
            "--cluster",
            &cluster,
            "--stake",
            &stake,
            "--role",
            "worker",
            "--node-name",
            "worker-1",
            "--ttl",
            "10m",
            "--epoch",
            "4",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(token.starts_with("k3sdaas."));
    assert!(
        !text(&out.stderr).contains(&token),
        "the token goes to stdout only"
    );

    let out = run(&["--output", "json", "token", "inspect"], Some(&token));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["signer"], addr);
    assert_eq!(v["cluster"], cluster);
    assert_eq!(v["role"], "worker");
    assert_eq!(v["node_name"], "worker-1");
    assert_eq!(v["token_epoch"], 4);
    assert_eq!(v["signature"], "valid");
    assert!(
        !text(&out.stdout).contains(&token),
        "inspect never echoes the token"
    );
}

#[test]
fn bad_input_and_usage_exit_codes() {
    let out = run(&["token", "inspect", "k3sdaas.bm90.YQ"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a valid Seal token"));
    // stdin is read only up to the token bound: a valid token with padding is refused as too long
    let w = wallet();
    let addr = w.keys[0].address().to_string();
    let minted = run(
        &[
            "--keystore",
            &w.path,
            "--key",
            &addr,
            "token",
            "mint",
            "--cluster",
            "0x1",
            "--stake",
            "0x2",
            "--role",
            "user",
        ],
        None,
    );
    let padded = format!("{}{}", text(&minted.stdout).trim(), "A".repeat(10_000));
    let out = run(&["token", "inspect"], Some(&padded));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("maximum is 4096"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &[
            "token",
            "mint",
            "--role",
            "root",
            "--cluster",
            "0x1",
            "--stake",
            "0x2",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    let out = run(
        &[
            "token",
            "mint",
            "--role",
            "user",
            "--cluster",
            "0x1",
            "--stake",
            "0x2",
            "--ttl",
            "2d",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    let out = run(&["no-such-command"], None);
    assert_eq!(out.status.code(), Some(64));
    let out = run(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = run(
        &["--keystore", "/nonexistent/sui.keystore", "wallet", "list"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/sui.keystore"));
}

#[test]
fn inspect_survives_extreme_timestamps() {
    // A correctly signed token whose times are at the end of u64: inspect must report, not panic.
    let key = WalletKey::generate(Scheme::Ed25519);
    let claims = daas_seal::Claims::builder(
        daas_seal::Address::new([1; 32]),
        key.address(),
        daas_seal::Address::new([2; 32]),
        daas_seal::Role::User,
    )
    .lifetime(u64::MAX - 10, 10)
    .random_nonce()
    .build()
    .expect("claims");
    let token = daas_seal::mint(key.keypair(), claims).expect("mint");
    let out = run(&["token", "inspect"], Some(token.as_str()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("beyond year 9999"), "{stdout}");
    assert!(stdout.contains("not valid yet"), "{stdout}");
}
