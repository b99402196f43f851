//! `staker-agent run` with a stand-in `k3s` (or kubelet) script, a TLS stand-in master and the
//! development chain: the child's argv and environment, systemd readiness, restarts with
//! backoff, a clean stop on SIGTERM, revocation when the stake is unstaked (exit 3, secrets
//! removed), re-joining when the join material expired before the node registered, and a
//! missing k3s binary.
//!
//! The script records each start (pid, argv, `K3S_*` environment, cwd) in `$FAKE_DIR`, then
//! runs until SIGTERM, crashes, or ignores SIGTERM, as `$FAKE_MODE` says.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::master::{Answer, BOOTSTRAP_TOKEN, NODE_PASSWORD, SERVER, StandInMaster};
use support::{Agent, Devnet};

const FAKE_AGENT: &str = r#"#!/bin/sh
# Stands in for `k3s` (and for a kubelet) in tests.
dir="$FAKE_DIR"
echo $$ >> "$dir/starts"
: > "$dir/argv.tmp"
for arg in "$@"; do printf '%s\n' "$arg" >> "$dir/argv.tmp"; done
mv "$dir/argv.tmp" "$dir/argv"
env | grep '^K3S' | sort > "$dir/env"
pwd > "$dir/cwd"
case "$FAKE_MODE" in
crash)
    exit 3 ;;
ignore-term)
    trap '' TERM
    touch "$dir/running"
    while :; do sleep 1; done ;;
*)
    trap 'touch "$dir/got-term"; exit 0' TERM
    touch "$dir/running"
    while :; do sleep 1; done ;;
esac
"#;

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(60);

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    _devnet: Devnet,
    agent: Agent,
    stake: String,
    master: StandInMaster,
    ca_file: String,
    fake: PathBuf,
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
        let fake = root.join("fake");
        std::fs::create_dir(&fake).unwrap();
        let script = fake.join("k3s");
        std::fs::write(&script, FAKE_AGENT).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Setup {
            _dir: dir,
            root,
            _devnet: devnet,
            agent,
            stake,
            master,
            ca_file: ca_file.display().to_string(),
            fake,
        }
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn node_password_file(&self) -> PathBuf {
        self.root.join("etc/rancher/node/password")
    }

    fn fake(&self, name: &str) -> PathBuf {
        self.fake.join(name)
    }

    /// `staker-agent run` with the stand-ins; `extra` flags after the common ones.
    fn command(&self, mode: &str, extra: &[&str]) -> Command {
        let state = self.state().display().to_string();
        let password = self.node_password_file().display().to_string();
        let mut args = vec![
            "run",
            "--stake",
            &self.stake,
            "--master",
            &self.master.url,
            "--ca-file",
            &self.ca_file,
            "--state-dir",
            &state,
            "--node-password-file",
            &password,
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.agent.command(&args);
        cmd.env("FAKE_DIR", &self.fake)
            .env("FAKE_MODE", mode)
            .env("K3S_TOKEN", "must-not-reach-the-child")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn k3s_bin(&self) -> String {
        self.fake("k3s").display().to_string()
    }

    fn starts(&self) -> usize {
        std::fs::read_to_string(self.fake("starts"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn read(&self, path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}

fn sigterm(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

/// Waits (bounded) for the process to exit; its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "staker-agent run did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn runs_k3s_agent_until_sigterm_and_notifies_systemd() {
    let s = Setup::new();
    let socket_path = s.root.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();

    let child = s
        .command("run", &["--k3s-bin", &s.k3s_bin()])
        .env("NOTIFY_SOCKET", &socket_path)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        "READY=1\nSTATUS=k3s-agent running"
    );
    eventually("the agent to run", || s.fake("running").exists());

    // argv: the config file, whose token file holds the K10 token; no K3S_* from outside.
    let state = s.state();
    let config = state.join("k3s-agent.yaml");
    assert_eq!(
        s.read(&s.fake("argv")),
        format!("agent\n--config\n{}\n", config.display())
    );
    assert!(s.read(&config).contains(&format!(
        "token-file: \"{}\"",
        state.join("token").display()
    )));
    assert!(
        s.read(&state.join("token"))
            .ends_with(&format!("::{BOOTSTRAP_TOKEN}\n"))
    );
    assert_eq!(s.read(&s.fake("env")), "");
    // The node password was installed for k3s, 0600.
    let password = s.node_password_file();
    assert_eq!(s.read(&password), format!("{NODE_PASSWORD}\n"));
    assert_eq!(
        std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&password).unwrap()) & 0o777,
        0o600
    );

    sigterm(&child);
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(s.fake("got-term").exists(), "the agent saw SIGTERM");
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(s.starts(), 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Joined as node w1"));
    assert!(!stderr.contains(NODE_PASSWORD) && !stderr.contains("0123456789abcdef"));

    // A second run: the same node password already there is fine; a different one is refused.
    std::fs::write(&password, "someone-elses-password\n").unwrap();
    let out = s
        .command("run", &["--k3s-bin", &s.k3s_bin()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already holds a different node password"),
        "{stderr}"
    );
    assert_eq!(s.starts(), 1, "nothing was started");
}

#[test]
fn restarts_with_backoff_and_kills_a_child_that_ignores_sigterm() {
    let s = Setup::new();
    let child = s
        .command(
            "crash",
            &[
                "--k3s-bin",
                &s.k3s_bin(),
                "--restart-backoff",
                "50ms",
                "--restart-backoff-max",
                "200ms",
            ],
        )
        .env("DAAS_LOG", "info")
        .spawn()
        .unwrap();
    eventually("four starts", || s.starts() >= 4);
    sigterm(&child);
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Each restart is announced with its doubling, capped delay.
    for (attempt, delay) in [(1, "50ms"), (2, "100ms"), (3, "200ms")] {
        assert!(
            stderr.contains(&format!(
                "restarting k3s-agent after backoff attempt={attempt} delay={delay}"
            )),
            "{stderr}"
        );
    }

    // SIGKILL after --stop-grace for a child that ignores SIGTERM.
    std::fs::remove_file(s.fake("running")).ok();
    let child = s
        .command(
            "ignore-term",
            &["--k3s-bin", &s.k3s_bin(), "--stop-grace", "300ms"],
        )
        .spawn()
        .unwrap();
    eventually("the agent to run", || s.fake("running").exists());
    let pid: i32 = s
        .read(&s.fake("starts"))
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    sigterm(&child);
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!s.fake("got-term").exists());
    assert_eq!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH),
        "the child is gone"
    );
}

#[test]
fn runs_a_kubelet_with_the_bootstrap_kubeconfig() {
    let s = Setup::new();
    let kubelet = s.k3s_bin();
    let child = s
        .command(
            "run",
            &[
                "--kubelet",
                &kubelet,
                "--kubelet-arg",
                "--fail-swap-on=false",
                "--kubelet-arg=--v=2",
            ],
        )
        .spawn()
        .unwrap();
    eventually("the kubelet to run", || s.fake("running").exists());
    let state = s.state();
    let p = |name: &str| state.join(name).display().to_string();
    assert_eq!(
        s.read(&s.fake("argv")),
        format!(
            "--bootstrap-kubeconfig={}\n--kubeconfig={}\n--cert-dir={}\n--client-ca-file={}\n--hostname-override=w1\n--fail-swap-on=false\n--v=2\n",
            p("bootstrap.kubeconfig"),
            p("kubelet.kubeconfig"),
            p("pki"),
            p("client-ca.crt")
        )
    );
    assert_eq!(
        s.read(&s.fake("env")),
        format!(
            "K3S_DAAS_BOOTSTRAP_KUBECONFIG={}\nK3S_DAAS_CA_FILE={}\nK3S_DAAS_CLIENT_CA_FILE={}\nK3S_DAAS_KUBECONFIG={}\nK3S_DAAS_NODE_NAME=w1\nK3S_DAAS_SERVER={SERVER}\nK3S_DAAS_STATE_DIR={}\n",
            p("bootstrap.kubeconfig"),
            p("ca.crt"),
            p("client-ca.crt"),
            p("kubelet.kubeconfig"),
            state.display()
        )
    );
    assert_eq!(
        s.master.seen()[0].agent,
        Some(daas_join_api::AgentKind::Kubelet)
    );
    assert!(!s.node_password_file().exists(), "only k3s needs it");
    sigterm(&child);
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unstaking_stops_the_agent_and_removes_the_secrets() {
    let s = Setup::new();
    let child = s
        .command(
            "run",
            &["--k3s-bin", &s.k3s_bin(), "--stake-check-interval", "200ms"],
        )
        .spawn()
        .unwrap();
    eventually("the agent to run", || s.fake("running").exists());
    assert!(s.node_password_file().exists());

    s.agent.ok_json(&["unstake", "--stake", &s.stake]);
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "stake {} is unbonding: the master has revoked this node",
            s.stake
        )),
        "{stderr}"
    );
    assert!(s.fake("got-term").exists(), "the agent was stopped");
    let state = s.state();
    for gone in ["token", "node-password", "bootstrap.kubeconfig"] {
        assert!(!state.join(gone).exists(), "{gone} was left");
    }
    assert!(!s.node_password_file().exists());
    assert!(state.join("join.json").exists() && state.join("ca.crt").exists());
}

#[test]
fn rejoins_when_the_material_expired_before_the_node_registered() {
    let s = Setup::new();
    s.master.answer(Answer::Expired);
    let child = s
        .command(
            "crash",
            &[
                "--k3s-bin",
                &s.k3s_bin(),
                "--k3s-data-dir",
                &s.root.join("k3s-data").display().to_string(),
            ],
        )
        .spawn()
        .unwrap();
    // Every restart joins again (the answer is always expired and no certificate appears).
    eventually("a re-join", || s.master.seen().len() >= 2);
    sigterm(&child);
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = s.master.seen();
    assert!(seen.iter().all(|j| j.refused.is_none()), "{seen:?}");
    assert_ne!(seen[0].token, seen[1].token, "a fresh Seal token");
    assert!(s.read(&s.fake("argv")).ends_with(&format!(
        "--data-dir\n{}\n",
        s.root.join("k3s-data").display()
    )));

    // Once the node holds its client certificate, an expired join is not renewed.
    let agent_dir = s.root.join("k3s-data/agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::write(agent_dir.join("client-kubelet.crt"), "cert").unwrap();
    let before = s.master.seen().len();
    let starts = s.starts();
    let child = s
        .command(
            "crash",
            &[
                "--k3s-bin",
                &s.k3s_bin(),
                "--k3s-data-dir",
                &s.root.join("k3s-data").display().to_string(),
                "--restart-backoff",
                "50ms",
            ],
        )
        .spawn()
        .unwrap();
    eventually("three restarts", || s.starts() >= starts + 3);
    sigterm(&child);
    finish(child);
    assert_eq!(s.master.seen().len(), before + 1, "only the initial join");
}

#[test]
fn a_missing_k3s_binary_is_named_after_the_join() {
    let s = Setup::new();
    let out = s.command("run", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Joined as node w1"),
        "the join happened and was printed"
    );
    assert!(
        stderr.contains("the join succeeded")
            && stderr.contains("k3s binary not found")
            && stderr.contains("no executable `k3s` on PATH"),
        "{stderr}"
    );
    assert!(s.state().join("token").exists());
    assert_eq!(s.starts(), 0);
}
