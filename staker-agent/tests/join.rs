//! `staker-agent join` against a TLS stand-in master (`--ca-file`) and the development chain:
//! the token it sends, the files it writes (modes, contents, no secret in join.json or on the
//! terminal), and the refusals that write nothing (a 409 Status, a foreign CA hash, an oversized
//! answer, a stake that is not a worker's or not active).

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::master::{
    Answer, BOOTSTRAP_SECRET, BOOTSTRAP_TOKEN, NODE_PASSWORD, SERVER, StandInMaster,
};
use support::{Agent, Devnet};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// Everything in `dir` (none if it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    _devnet: Devnet,
    agent: Agent,
    stake: String,
    master: StandInMaster,
    ca_file: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let devnet = Devnet::start(&root.join("chain"));
        let agent = Agent::new(&devnet);
        let stake = agent.worker_stake(&devnet, "w1");
        let master = StandInMaster::start(&agent.cluster(), &agent.address, &stake, "w1");
        let ca_file = root.join("pinned-ca.pem");
        std::fs::write(&ca_file, &master.ca_pem).unwrap();
        Setup {
            _dir: dir,
            root,
            _devnet: devnet,
            agent,
            stake,
            master,
            ca_file: ca_file.display().to_string(),
        }
    }

    fn state(&self, name: &str) -> std::path::PathBuf {
        self.root.join(name)
    }

    fn join(&self, state: &str, extra: &[&str]) -> Output {
        let state = self.state(state).display().to_string();
        let mut args = vec![
            "join",
            "--stake",
            &self.stake,
            "--master",
            &self.master.url,
            "--ca-file",
            &self.ca_file,
            "--state-dir",
            &state,
        ];
        args.extend_from_slice(extra);
        self.agent.command(&args).output().unwrap()
    }

    /// No secret on the terminal: not the Seal tokens sent, not the bootstrap secret, not the
    /// node password.
    fn assert_no_secret(&self, out: &Output) {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(BOOTSTRAP_SECRET), "{text}");
        assert!(!text.contains(NODE_PASSWORD), "{text}");
        for seen in self.master.seen() {
            assert!(!text.contains(&seen.token), "the Seal token was printed");
        }
    }
}

#[test]
fn join_writes_the_material_and_refusals_write_nothing() {
    let s = Setup::new();

    // --- A join, plain output.
    let out = s.join("state", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Joined as node w1") && stdout.contains(&s.stake),
        "{stdout}"
    );
    assert!(stdout.contains("no attestation check"), "{stdout}");
    assert!(
        stderr.contains("WARNING: pinning the CA") && stderr.contains("instead of checking"),
        "{stderr}"
    );
    s.assert_no_secret(&out);

    // The token: a fresh, verified worker token for this stake (the stand-in checks it all).
    let seen = s.master.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].refused, None, "{:?}", seen[0].refused);
    assert_eq!(seen[0].agent, Some(daas_join_api::AgentKind::K3sAgent));

    // The files and their modes.
    let state = s.state("state");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(
        listing(&state),
        [
            "bootstrap.kubeconfig",
            "ca.crt",
            "client-ca.crt",
            "join.json",
            "k3s-agent.yaml",
            "node-password",
            "token"
        ]
    );
    for (name, want) in [
        ("ca.crt", 0o644),
        ("client-ca.crt", 0o644),
        ("join.json", 0o644),
        ("token", 0o600),
        ("node-password", 0o600),
        ("bootstrap.kubeconfig", 0o600),
        ("k3s-agent.yaml", 0o600),
    ] {
        assert_eq!(mode(&state.join(name)), want, "{name}");
    }
    let read = |name: &str| std::fs::read_to_string(state.join(name)).unwrap();
    let ca_hash = daas_verify_master::k3s_ca_hash(s.master.ca_pem.as_bytes());
    assert_eq!(read("ca.crt"), s.master.ca_pem);
    assert_eq!(read("token"), format!("{ca_hash}::{BOOTSTRAP_TOKEN}\n"));
    assert_eq!(read("node-password"), format!("{NODE_PASSWORD}\n"));
    assert_eq!(
        read("k3s-agent.yaml"),
        format!(
            "server: \"{SERVER}\"\ntoken-file: \"{}\"\nnode-name: \"w1\"\n",
            state.join("token").display()
        )
    );
    let kubeconfig: Value = serde_json::from_str(&read("bootstrap.kubeconfig")).unwrap();
    assert_eq!(kubeconfig["clusters"][0]["cluster"]["server"], SERVER);
    let ca_data = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    let decoded = <base64ct::Base64 as base64ct::Encoding>::decode_vec(ca_data).unwrap();
    assert_eq!(decoded, s.master.ca_pem.as_bytes());
    assert_eq!(kubeconfig["users"][0]["user"]["token"], BOOTSTRAP_TOKEN);
    assert_eq!(kubeconfig["current-context"], "bootstrap");
    let record: Value = serde_json::from_str(&read("join.json")).unwrap();
    assert_eq!(record["node_name"], "w1");
    assert_eq!(record["stake"], s.stake.as_str());
    assert_eq!(record["server"], SERVER);
    assert_eq!(record["ca_hash"], ca_hash.as_str());
    assert!(record["expires_at_ms"].as_u64().unwrap() > 0);
    let record_text = read("join.json");
    assert!(!record_text.contains(BOOTSTRAP_SECRET) && !record_text.contains(NODE_PASSWORD));

    // --- A second join (JSON output, as a kubelet) sends a new token, never the same one.
    let out = s.join("state-kubelet", &["--agent", "kubelet", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["joined"].as_bool(), v["node_name"].as_str()),
        (Some(true), Some("w1"))
    );
    assert_eq!(v["trust"]["attested"], false);
    assert_eq!(v["files"].as_array().unwrap().len(), 7);
    s.assert_no_secret(&out);
    let seen = s.master.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].refused, None, "{:?}", seen[1].refused);
    assert_ne!(seen[0].token, seen[1].token);
    assert_eq!(seen[1].agent, Some(daas_join_api::AgentKind::Kubelet));

    // --- Refusals: shown with their reason, nothing written.
    let refused = |answer: Answer, expect: &str| {
        s.master.answer(answer);
        let out = s.join("refused", &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert!(
            listing(&s.state("refused")).is_empty(),
            "{:?}",
            listing(&s.state("refused"))
        );
        s.assert_no_secret(&out);
    };
    let message = format!("node name w1 is bound to stake record {}", s.stake);
    refused(
        Answer::Conflict(message.clone()),
        &format!("the master refused the join (HTTP 409 Conflict): {message}"),
    );
    refused(Answer::WrongCaHash, "is not the verified CA's");
    refused(Answer::Oversized, "larger than 65536 bytes");
}

#[test]
fn only_an_active_worker_stake_joins() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(&dir.path().join("chain"));
    let agent = Agent::new(&devnet);
    devnet.faucet(&agent.address, "5");
    let user = agent.ok_json(&["stake", "--amount", "1", "--role", "user"])["record"]
        .as_str()
        .unwrap()
        .to_owned();
    let master = StandInMaster::start(&agent.cluster(), &agent.address, &user, "w1");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &master.ca_pem).unwrap();
    let state = dir.path().join("state");
    let join = |stake: &str| {
        agent
            .command(&[
                "join",
                "--stake",
                stake,
                "--master",
                &master.url,
                "--ca-file",
                &ca_file.display().to_string(),
                "--state-dir",
                &state.display().to_string(),
            ])
            .output()
            .unwrap()
    };

    let out = join(&user);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("is a user stake: only a worker stake can join"),
        "{stderr}"
    );

    // Not active any more: refused before anything is sent.
    agent.ok_json(&["unstake", "--stake", &user]);
    let out = join(&user);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("is not active (unbonding)"), "{stderr}");

    // Not yours.
    let stranger = Agent::new(&devnet);
    let out = stranger
        .command(&[
            "join",
            "--stake",
            &user,
            "--master",
            &master.url,
            "--ca-file",
            &ca_file.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not by your key"), "{stderr}");

    assert!(master.seen().is_empty(), "nothing reached the master");
    assert!(!state.exists());
}
