//! The chain commands as users run them, against the development chain process: stake,
//! status, revoke-tokens, unstake, withdraw, the admin's grant and revoke-grant, the enclave's
//! set-pcrs and register-enclave (devnet trusting a dev attestation root), and the errors a
//! staker meets (no grant, below minimum, insufficient balance, unbonding not finished, RPC
//! unreachable, wrong network).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

mod support;

use support::{Agent, BIN, Devnet};

#[test]
fn stake_revoke_unstake_withdraw_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(&dir.path().join("chain"));
    let agent = Agent::new(&devnet);
    devnet.faucet(&agent.address, "5");
    Agent::granted(&devnet, &agent.address, "worker");

    let out = agent.run(&[
        "stake",
        "--amount",
        "1.5",
        "--role",
        "worker",
        "--node-name",
        "node-1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("Staked 1.5 SUI as worker (node node-1)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("submitting transaction") && stderr.contains("in checkpoint"),
        "{stderr}"
    );

    let status = agent.ok_json(&["status"]);
    assert_eq!(status["address"], agent.address.as_str());
    let rec = &status["records"][0];
    assert_eq!(
        (rec["amount_mist"].as_u64(), rec["status"].as_str()),
        (Some(1_500_000_000), Some("active"))
    );
    assert_eq!(
        (rec["role"].as_str(), rec["node_name"].as_str()),
        (Some("worker"), Some("node-1"))
    );
    assert_eq!(rec["token_epoch"], 0);
    let record = rec["record"].as_str().unwrap().to_owned();

    let v = agent.ok_json(&["add-stake", "--amount", "500000000mist"]);
    assert_eq!(v["total_mist"], 2_000_000_000u64);
    let cluster = status["cluster"].as_str().unwrap().to_owned();
    let mint = |extra: &[&str]| {
        let mut args = vec!["token", "mint", "--stake", &record, "--cluster", &cluster];
        args.extend_from_slice(extra);
        agent.run(&args)
    };
    let claims_of = |out: &Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = Command::new(BIN)
            .args(["--json", "token", "inspect", &token])
            .env_clear()
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // role, node name and epoch come from the record
    let c = claims_of(&mint(&[]));
    assert_eq!(
        (
            c["role"].as_str(),
            c["node_name"].as_str(),
            c["token_epoch"].as_u64()
        ),
        (Some("worker"), Some("node-1"), Some(0))
    );

    let v = agent.ok_json(&["revoke-tokens", "--stake", &record]);
    assert_eq!(v["token_epoch"], 1);
    assert_eq!(
        claims_of(&mint(&[]))["token_epoch"],
        1,
        "minted at the new epoch"
    );
    let out = mint(&["--epoch", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the record's token epoch 1"));
    let out = mint(&["--role", "admin"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("disagrees with the record's role"));

    let before = agent.ok_json(&["status"])["balance_mist"].as_u64().unwrap();
    let err = agent.fails(&["withdraw"]);
    assert!(
        err.contains("still active") && err.contains("unstake"),
        "{err}"
    );
    let after = agent.ok_json(&["status"])["balance_mist"].as_u64().unwrap();
    assert_eq!(before, after, "refused before any gas was spent");

    let v = agent.ok_json(&["unstake"]);
    assert_eq!(v["token_epoch"], 2);
    let err = agent.fails(&["withdraw"]);
    assert!(
        err.contains("unbonding not finished") && err.contains("withdrawable in about"),
        "{err}"
    );
    let err = agent.fails(&["unstake"]);
    assert!(err.contains("unstake was already requested"), "{err}");
    let out = mint(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not active (unbonding)"));

    let status = agent.ok_json(&["status"]);
    let rec = &status["records"][0];
    assert_eq!(rec["status"], "unbonding");
    assert!(
        rec["unbonding_left_ms"].as_u64().unwrap() > 23 * 3_600_000,
        "{rec}"
    );

    let human = agent.run(&["status"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("unbonding (withdrawable in 23h")
            || text.contains("unbonding (withdrawable in 1day"),
        "{text}"
    );
}

#[test]
fn clear_errors_for_what_stakers_get_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(&dir.path().join("chain"));
    let agent = Agent::new(&devnet);

    let out = agent.run(&["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no stake records"));
    let err = agent.fails(&["stake", "--amount", "2", "--role", "user"]);
    assert!(err.contains("insufficient balance"), "{err}");
    devnet.faucet(&agent.address, "3");
    Agent::granted(&devnet, &agent.address, "worker");

    let err = agent.fails(&[
        "stake",
        "--amount",
        "0.1",
        "--role",
        "worker",
        "--node-name",
        "n1",
    ]);
    assert!(
        err.contains("below the cluster's minimum") && err.contains("at least 1 SUI"),
        "{err}"
    );
    let err = agent.fails(&["stake", "--amount", "1", "--role", "worker"]);
    assert!(err.contains("--node-name"), "{err}");
    let err = agent.fails(&[
        "stake",
        "--amount",
        "1",
        "--role",
        "user",
        "--node-name",
        "n1",
    ]);
    assert!(err.contains("workers only"), "{err}");
    let err = agent.fails(&["unstake"]);
    assert!(err.contains("no stake record"), "{err}");

    let err = agent.fails(&["status", "--rpc", "http://127.0.0.1:1"]);
    assert!(err.contains("cannot reach"), "{err}");

    // the config names another chain than the endpoint serves
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(devnet.config()).unwrap()).unwrap();
    cfg["chain_id"] = "4btiuiMPvEENsttpZC7CZ53DruC3MAgfznDbASZ7DR6S".into();
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, cfg.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["--keystore", &agent.keystore, "status", "--chain-config"])
        .arg(&wrong)
        .env_clear()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("wrong network"), "{err}");

    // a bad amount is a usage error (exit 64)
    let out = agent.run(&["stake", "--amount", "1.0000000001", "--role", "user"]);
    assert_eq!(out.status.code(), Some(64));
}

fn balance(agent: &Agent) -> u64 {
    agent.ok_json(&["status"])["balance_mist"].as_u64().unwrap()
}

#[test]
fn worker_and_admin_stakes_need_the_admins_grant() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(&dir.path().join("chain"));
    let agent = Agent::new(&devnet);
    let admin = Agent::admin(&devnet);
    devnet.faucet(&agent.address, "25");
    assert_eq!(agent.ok_json(&["status"])["grants"], serde_json::json!([]));

    // Without a grant: refused before anything is signed, saying what to run.
    let before = balance(&agent);
    let err = agent.fails(&["stake", "--amount", "10", "--role", "admin"]);
    assert!(
        err.contains(&format!(
            "{} holds no grant for the admin role",
            agent.address
        )) && err.contains(&format!(
            "staker-agent admin grant --account {} --role admin",
            agent.address
        )),
        "{err}"
    );
    let err = agent.fails(&[
        "stake",
        "--amount",
        "1",
        "--role",
        "worker",
        "--node-name",
        "node-1",
    ]);
    assert!(
        err.contains("no grant for the worker role")
            && err.contains("--role worker --chain-config"),
        "{err}"
    );
    assert_eq!(balance(&agent), before, "refused before any gas was spent");
    // A user stake needs no grant.
    agent.ok_json(&["stake", "--amount", "0.5", "--role", "user"]);

    // The AdminCap holder grants; only the cap holder can.
    let err = agent.fails(&[
        "admin",
        "grant",
        "--account",
        &agent.address,
        "--role",
        "admin",
    ]);
    assert!(
        err.contains("is owned by") && err.contains("not by your key"),
        "{err}"
    );
    let v = admin.ok_json(&[
        "admin",
        "grant",
        "--account",
        &agent.address,
        "--role",
        "admin",
    ]);
    assert_eq!(
        (
            v["account"].as_str(),
            v["role"].as_str(),
            v["change"].as_str()
        ),
        (Some(agent.address.as_str()), Some("admin"), Some("grant"))
    );
    assert_eq!(
        agent.ok_json(&["status"])["grants"],
        serde_json::json!(["admin"])
    );
    let err = admin.fails(&[
        "admin",
        "grant",
        "--account",
        &agent.address,
        "--role",
        "admin",
    ]);
    assert!(err.contains("already holds the admin grant"), "{err}");

    let v = agent.ok_json(&["stake", "--amount", "10", "--role", "admin"]);
    let admin_record = v["record"].as_str().unwrap().to_owned();
    // The admin grant does not cover the worker role.
    let err = agent.fails(&[
        "stake",
        "--amount",
        "1",
        "--role",
        "worker",
        "--node-name",
        "node-1",
    ]);
    assert!(err.contains("no grant for the worker role"), "{err}");

    // Revoking stops new stakes; the existing record stays and its owner can still leave.
    let human = admin.run(&[
        "admin",
        "revoke-grant",
        "--account",
        &agent.address,
        "--role",
        "admin",
    ]);
    assert!(
        human.status.success(),
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("existing admin records stay on chain"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    let status = agent.ok_json(&["status"]);
    assert_eq!(status["grants"], serde_json::json!([]));
    let record = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == admin_record.as_str())
        .unwrap()
        .clone();
    assert_eq!(record["status"], "active");
    let before = balance(&agent);
    let err = agent.fails(&["stake", "--amount", "10", "--role", "admin"]);
    assert!(err.contains("holds no grant for the admin role"), "{err}");
    assert_eq!(balance(&agent), before);
    let v = agent.ok_json(&["unstake", "--stake", &admin_record]);
    assert_eq!(v["token_epoch"], 1);
    let err = admin.fails(&[
        "admin",
        "revoke-grant",
        "--account",
        &agent.address,
        "--role",
        "admin",
    ]);
    assert!(err.contains("holds no admin grant"), "{err}");

    // Usage errors: the user role is never granted; no AdminCap id without the config's.
    let out = admin.run(&[
        "admin",
        "grant",
        "--account",
        &agent.address,
        "--role",
        "user",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("users need no grant"));
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(devnet.config()).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("admin_cap");
    let no_cap = dir.path().join("no-cap.json");
    std::fs::write(&no_cap, cfg.to_string()).unwrap();
    let out = Command::new(BIN)
        .args([
            "--keystore",
            &admin.keystore,
            "admin",
            "grant",
            "--role",
            "worker",
        ])
        .args(["--account", &agent.address, "--chain-config"])
        .arg(&no_cap)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no AdminCap id: pass --admin-cap"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `admin set-pcrs` and `admin register-enclave` against a devnet started with
/// `--trust-dev-attestation-root`, with a document from the dev attester; what the chain would
/// refuse is refused before any gas is spent.
#[test]
fn admin_sets_the_pcrs_and_registers_a_dev_enclave() {
    use daas_attestation::binding::Binding;
    use daas_attestation::dev::{DevAttester, DevRoot};
    use daas_attestation::{AttestationRequest, Attester};

    let dir = tempfile::tempdir().unwrap();
    let root = DevRoot::generate().unwrap();
    let root_pem = dir.path().join("dev-root.pem");
    std::fs::write(&root_pem, root.certificate_pem()).unwrap();
    let pcrs: std::collections::BTreeMap<u8, [u8; 48]> =
        [(0, [0x11; 48]), (1, [0x22; 48]), (2, [0x33; 48])].into();
    let attester = DevAttester::new(root, pcrs).unwrap();
    let devnet = Devnet::start_with(&dir.path().join("chain"), Some(&root_pem));
    let admin = Agent::admin(&devnet);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(devnet.config()).unwrap()).unwrap();
    let cluster: sui_sdk_types::Address = config["cluster"].as_str().unwrap().parse().unwrap();
    let endpoint = "https://enclave.example:6443";
    let ca = [0xca; 32];
    let document = dir.path().join("attestation.cose");
    let write_document = || {
        let binding = Binding {
            cluster_id: cluster.into_inner(),
            ca_sha256: ca,
            endpoint: endpoint.to_owned(),
        };
        let request = AttestationRequest {
            user_data: Some(binding.encode()),
            nonce: None,
            public_key: Some(vec![0x30, 0x59]),
        };
        std::fs::write(&document, attester.attest(&request).unwrap()).unwrap();
    };
    let doc = document.display().to_string();
    let before = balance(&admin);

    // Before any PCRs are set: refused, no gas.
    write_document();
    let err = admin.fails(&[
        "admin",
        "register-enclave",
        "--document",
        &doc,
        "--endpoint",
        endpoint,
    ]);
    assert!(err.contains("no expected PCRs yet"), "{err}");

    // All-zero (debug) PCRs: refused, no gas.
    let zero = dir.path().join("zero.json");
    let hex48 = |b: u8| hex::encode([b; 48]);
    std::fs::write(
        &zero,
        format!(
            r#"{{"PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
            hex48(0),
            hex48(0x22),
            hex48(0x33)
        ),
    )
    .unwrap();
    let err = admin.fails(&["admin", "set-pcrs", "--pcrs", &zero.display().to_string()]);
    assert!(err.contains("PCR0 is all zero"), "{err}");
    assert_eq!(balance(&admin), before, "nothing was spent");

    // nitro-cli's format.
    let measurements = dir.path().join("measurements.json");
    std::fs::write(
        &measurements,
        format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}}}"#,
            hex48(0x11),
            hex48(0x22),
            hex48(0x33)
        ),
    )
    .unwrap();
    let set = admin.ok_json(&[
        "admin",
        "set-pcrs",
        "--pcrs",
        &measurements.display().to_string(),
    ]);
    assert_eq!(set["pcr0"], hex48(0x11));
    assert_eq!(set["enclave_cleared"], false);
    // `status` reports them in the PCR file's shape (what `pcrs.sh --compare` reads).
    let status = admin.ok_json(&["status"]);
    assert_eq!(
        status["expected_pcrs"],
        serde_json::json!({"PCR0": hex48(0x11), "PCR1": hex48(0x22), "PCR2": hex48(0x33)})
    );
    assert_eq!(status["enclave_registered"], false);

    // Another endpoint than the document's: refused before gas.
    let spent = balance(&admin);
    let err = admin.fails(&[
        "admin",
        "register-enclave",
        "--document",
        &doc,
        "--endpoint",
        "https://elsewhere.example:6443",
    ]);
    assert!(err.contains("bound to endpoint"), "{err}");
    // Not the enclave operator: refused before gas.
    let stranger = Agent::new(&devnet);
    devnet.faucet(&stranger.address, "1");
    let err = stranger.fails(&[
        "admin",
        "register-enclave",
        "--document",
        &doc,
        "--endpoint",
        endpoint,
    ]);
    assert!(err.contains("only the cluster's enclave operator"), "{err}");
    assert_eq!(balance(&admin), spent);

    // The registration itself, through load_nitro_attestation on the devnet.
    write_document();
    let registered = admin.ok_json(&[
        "admin",
        "register-enclave",
        "--document",
        &doc,
        "--endpoint",
        endpoint,
    ]);
    assert_eq!(registered["endpoint"], endpoint);
    assert_eq!(registered["ca_sha256"], hex::encode(ca));
    assert_eq!(registered["cluster"], cluster.to_string());
    assert_eq!(admin.ok_json(&["status"])["enclave_registered"], true);

    // Replaying the same document is refused before gas (not newer than the registered one).
    let err = admin.fails(&[
        "admin",
        "register-enclave",
        "--document",
        &doc,
        "--endpoint",
        endpoint,
    ]);
    assert!(err.contains("not newer"), "{err}");

    // New PCRs clear the registration.
    let set = admin.ok_json(&[
        "admin",
        "set-pcrs",
        "--pcrs",
        &measurements.display().to_string(),
    ]);
    assert_eq!(set["enclave_cleared"], true);
}
