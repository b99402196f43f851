//! Workers join and leave with their stake, against real parts: `nautilus-master dev` (its dev
//! chain, the :8080 proxy with `POST /join`, the :6443 front, the CSR approver and the node
//! lifecycle) in front of a real kube-apiserver, kube-controller-manager and scheduler v1.36,
//! and real kubelets with containerd (the node peer) that `staker-agent run --kubelet` starts
//! and supervises.
//!
//! - A worker stakes, `staker-agent run` joins (attested master, fresh worker token) and its
//!   kubelet registers under the stake's node name through the :6443 front; the CSR is
//!   approved by the master's approver; the bootstrap token is deleted once the Node exists
//!   and is refused at :6443 afterwards.
//! - A user's pod runs on that node; `kubectl logs -f`, `exec` and `port-forward` work through
//!   the :8080 proxy.
//! - Refused joins, each without side effects: a user token, a token living longer than 10
//!   minutes, an expired token, a token naming another node, a replayed token, a second
//!   worker's record claiming a bound name, and (after the unstake) a revoked stake.
//! - Unstake: within a checkpoint the node's requests are refused at :6443 and `run` stops
//!   with exit code 3; a PodDisruptionBudget holds the eviction, across a master restart,
//!   until it is deleted; then the pod is gone, the Node deleted and the node's Secrets
//!   removed.
//! - Slashing: a second worker's node is drained at once, its PodDisruptionBudget ignored.
//!
//! Prints the timings docs/performance.md records. Needs the peers `../shared/peers/k8s`
//! (`DAAS_K8S_PEER_DIR`), `../shared/peers/node` (`DAAS_NODE_PEER_DIR`, root) and kubectl;
//! skipped with a printed reason otherwise, required with `DAAS_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use daas_chain::{ChainConfig, GrpcChain, tx};
use daas_chain_types::{PackageEvent, consts};
use daas_seal::{Address, Claims, NodeName, Role, mint};
use daas_wallet::{Keystore, Scheme, WalletKey, write_keystore};
use nautilus_master::auth::unix_ms_now;
use support::dev::Dev;
use support::devnet::{SUI, fund};
use support::node::{Node, Streaming};
use support::{ApiServerOnShim, free_port, peer, run_ok};

const NODE_A: &str = "wk-a";
const NODE_B: &str = "wk-b";
/// Node peer indexes (network 10.200.<i>.0/24): apart from the other tests' (180, 201–203).
const INDEX_A: u8 = 171;
const INDEX_B: u8 = 172;

/// Evictions the lifecycle saw refused because of a PodDisruptionBudget (resets with the master).
const EVICTIONS_BLOCKED_BY_PDB: &str =
    "daas_workers_lifecycle_steps_total{step=\"evict\",result=\"blocked_by_pdb\"}";
fn staker_agent() -> PathBuf {
    if let Some(p) = std::env::var_os("DAAS_STAKER_AGENT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("staker-agent"))
        .find(|p| p.is_file())
        .expect("staker-agent is not built next to this test: `cargo build -p staker-agent` (cargo test --workspace builds it) or set DAAS_STAKER_AGENT_BIN")
}

/// What a test needs to act as stakers, users and the cluster admin.
struct World {
    dev: Dev,
    api: ApiServerOnShim,
    kubectl: PathBuf,
    node_peer: PathBuf,
    chain_config: PathBuf,
    dev_root: PathBuf,
    tmp: PathBuf,
}

impl World {
    fn chain(&self) -> GrpcChain {
        GrpcChain::new(ChainConfig::load(&self.chain_config).unwrap())
            .unwrap()
            .with_checkpoint_timeout(Duration::from_secs(20))
    }

    /// kubectl as the API server's own admin (not through the proxy): what the test observes.
    fn admin(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig")
            .arg(&self.api.admin_kubeconfig)
            .arg("--request-timeout=30s");
        c
    }

    fn admin_out(&self, args: &[&str]) -> String {
        run_ok(self.admin().args(args))
    }

    fn staker(&self, keystore: &Path) -> Command {
        let mut c = Command::new(staker_agent());
        c.arg("--keystore")
            .arg(keystore)
            .env("DAAS_CHAIN_CONFIG", &self.chain_config)
            .env("DAAS_LOG", "warn");
        c
    }

    /// `POST /join` with `token`, as curl sends it: (HTTP status, body).
    fn post_join(&self, token: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.dev.data.join("proxy/ca.crt"))
            .args(["-X", "POST", "-H", "Content-Type: application/json"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--data", r#"{"agent":"kubelet"}"#])
            .arg(format!("https://127.0.0.1:{}/join", self.dev.proxy))
            .output()
            .unwrap();
        parse_curl(&out)
    }

    /// A GET at the :6443 front with `Authorization: Bearer <token>`: (HTTP status, body).
    fn front_get(&self, path: &str, token: &str) -> (u16, String) {
        self.front_get_with(path, token, &[])
    }

    /// The same with extra request headers.
    fn front_get_with(&self, path: &str, token: &str, headers: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        for h in headers {
            cmd.args(["-H", h]);
        }
        if !token.is_empty() {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.dev.data.join("proxy/ca.crt"))
            .arg(format!("{}{path}", self.node_url()))
            .output()
            .unwrap();
        parse_curl(&out)
    }

    /// A GET at the :6443 front with the client certificate (and key) in `pem`.
    fn front_get_as(&self, path: &str, pem: &Path) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.dev.data.join("proxy/ca.crt"))
            .arg("--cert")
            .arg(pem)
            .arg("--key")
            .arg(pem)
            .arg(format!("{}{path}", self.node_url()))
            .output()
            .unwrap();
        parse_curl(&out)
    }

    fn node_url(&self) -> String {
        self.dev.url_of("node front")
    }

    fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self.dev.admin_get("/metrics");
        text.lines()
            .find(|l| l.starts_with(name_and_labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Secrets the master made for `node` (bootstrap tokens, node password): their names.
    fn node_secrets(&self, node: &str) -> Vec<String> {
        self.admin_out(&[
            "-n",
            "kube-system",
            "get",
            "secrets",
            "-l",
            &format!("k3s-daas.io/node={node}"),
            "-o",
            "name",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    fn node_ready(&self, node: &str) -> bool {
        self.admin()
            .args(["get", "node", node, "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#)
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout) == "True")
    }

    fn node_exists(&self, node: &str) -> bool {
        self.admin()
            .args(["get", "node", node, "-o", "name"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The kubelet wrapper `staker-agent run --kubelet` starts: the node peer's scripts, fed
    /// with the join material from the agent's `K3S_DAAS_*` variables.
    fn kubelet_wrapper(&self, index: u8) -> PathBuf {
        let path = self.tmp.join(format!("kubelet-{index}.sh"));
        let peer = self.node_peer.display();
        let run_dir = Node::run_dir(index);
        std::fs::write(
            &path,
            format!(
                r#"#!/bin/sh
# Stands in for a kubelet binary: starts the node peer (kubelet + containerd in namespaces of
# their own) with the join material staker-agent hands over, and stops it on SIGTERM.
export K8S_NODE_NAME="$K3S_DAAS_NODE_NAME" K8S_NODE_INDEX={index} K8S_NODE_RUN_DIR={run_dir}
export K8S_NODE_BOOTSTRAP_KUBECONFIG="$K3S_DAAS_BOOTSTRAP_KUBECONFIG" K8S_NODE_CA_FILE="$K3S_DAAS_CA_FILE"
export K8S_NODE_APISERVER="$K3S_DAAS_SERVER" K8S_NODE_WAIT=healthy
# The kubelet checks the API server's calls (logs, exec) against the cluster's client CA.
export K8S_NODE_KUBELET_CONFIG_EXTRA="authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $K3S_DAAS_CLIENT_CA_FILE"
stop() {{ "{peer}/stop-node.sh" --clean >&2; exit 0; }}
trap stop TERM INT
"{peer}/start-node.sh" >&2 || exit 1
while :; do sleep 1 & wait $!; done
"#,
                run_dir = run_dir.display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }

    /// `staker-agent run --kubelet` for `keystore`'s record `stake`, as a child.
    fn run_worker(&self, keystore: &Path, stake: Address, index: u8) -> Worker {
        let state = self.tmp.join(format!("worker-{index}"));
        let run = Streaming::spawn(
            self.staker(keystore)
                .arg("run")
                .arg("--stake")
                .arg(stake.to_string())
                .arg("--dev-root")
                .arg(&self.dev_root)
                .arg("--state-dir")
                .arg(&state)
                .arg("--kubelet")
                .arg(self.kubelet_wrapper(index))
                .args(["--stake-check-interval", "3s", "--stop-grace", "20s"]),
        );
        Worker {
            run,
            run_dir: Node::run_dir(index),
            peer: self.node_peer.clone(),
        }
    }

    fn wait(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
        start.elapsed()
    }
}

/// A running `staker-agent run`. Dropped while it runs (a failed test), it is stopped as systemd
/// would stop it (SIGTERM, which stops its kubelet), and the node peer is cleaned up whatever
/// happened.
struct Worker {
    run: Streaming,
    run_dir: PathBuf,
    peer: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.run.running() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.run.child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.run.ended_within(Duration::from_secs(30));
        }
        let _ = Command::new(self.peer.join("stop-node.sh"))
            .arg("--clean")
            .env("K8S_NODE_RUN_DIR", &self.run_dir)
            .stdout(std::process::Stdio::null())
            .status();
    }
}

fn parse_curl(out: &Output) -> (u16, String) {
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// A worker Seal token: `node` as its node name, issued `age` ago, living `ttl`.
fn worker_token(
    key: &WalletKey,
    cluster: Address,
    stake: Address,
    node: &str,
    epoch: u64,
    age: Duration,
    ttl: Duration,
) -> String {
    let now = unix_ms_now();
    let issued = now - u64::try_from(age.as_millis()).unwrap();
    let claims = Claims::builder(cluster, key.address(), stake, Role::Worker)
        .node_name(NodeName::new(node).unwrap())
        .lifetime(issued, u64::try_from(ttl.as_millis()).unwrap())
        .token_epoch(epoch)
        .random_nonce()
        .build()
        .unwrap();
    mint(key.keypair(), claims).unwrap().into_string()
}

fn stake_json(out: &str) -> Address {
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    v["record"].as_str().unwrap().parse().unwrap()
}

fn staked(ex: &daas_chain::Executed) -> Address {
    ex.events
        .iter()
        .find_map(|e| match e {
            PackageEvent::Staked(s) => Some(s.record_id),
            _ => None,
        })
        .expect("Staked event")
}

#[test]
fn workers_join_run_and_leave_with_their_stake() {
    let Some(k8s) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(node_peer) = peer("DAAS_NODE_PEER_DIR", "node-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let api = ApiServerOnShim::start(
        &k8s,
        &tmp.path().join("api"),
        &[(
            "K8S_APISERVER_EXTRA_ARGS",
            "--enable-admission-plugins=NodeRestriction --kubelet-preferred-address-types=InternalIP",
        )],
    );
    let data = tmp.path().join("d");
    let mut dev_args = api.dev_upstream_args();
    dev_args.extend([
        "--unbonding-grace".into(),
        "2m".into(),
        // A fixed chain port: the stakers' chain config stays valid across the master restart.
        "--chain-listen".into(),
        format!("127.0.0.1:{}", free_port()),
    ]);
    let dev = Dev::start(&data, &dev_args);
    let mut w = World {
        chain_config: data.join("chain/client.json"),
        dev_root: data.join("tee/dev-root.pem"),
        tmp: tmp.path().to_owned(),
        dev,
        api,
        kubectl,
        node_peer,
    };
    let cluster = w.dev.id("cluster-id");
    let worker_ks = data.join("worker/sui.keystore");
    let worker = Keystore::load(&worker_ks)
        .unwrap()
        .select(None)
        .unwrap()
        .clone();

    // The staker stakes for a node name, as the banner says.
    let out = run_ok(w.staker(&worker_ks).args([
        "--json",
        "stake",
        "--role",
        "worker",
        "--node-name",
        NODE_A,
        "--amount",
        "1",
    ]));
    let stake_a = stake_json(&out);

    // Refused joins change nothing: no Secret, no binding.
    let fresh = Duration::ZERO;
    let five = Duration::from_secs(300);
    let user = w
        .dev
        .token("user/sui.keystore", "dev-user-stake-id", Role::User);
    let refusals = [
        ("a user token", user, 403, "worker token"),
        (
            "a token living an hour",
            worker_token(
                &worker,
                cluster,
                stake_a,
                NODE_A,
                0,
                fresh,
                Duration::from_secs(3600),
            ),
            401,
            "at most 10 minutes",
        ),
        (
            "an expired token",
            worker_token(
                &worker,
                cluster,
                stake_a,
                NODE_A,
                0,
                Duration::from_secs(1200),
                five,
            ),
            401,
            "expired",
        ),
        (
            "a token naming another node",
            worker_token(&worker, cluster, stake_a, "wk-other", 0, fresh, five),
            401,
            "does not authorize",
        ),
    ];
    for (what, token, code, says) in refusals {
        let (got, body) = w.post_join(&token);
        assert_eq!(got, code, "{what}: {body}");
        assert!(body.contains(says), "{what}: {body}");
    }
    assert!(w.node_secrets(NODE_A).is_empty());
    assert!(w.node_secrets("wk-other").is_empty());
    let bindings = w.admin_out(&["-n", "k3s-daas-system", "get", "configmaps", "-o", "name"]);
    assert!(!bindings.contains("node-"), "{bindings}");

    // A join, then the same token again: replayed, refused, nothing new issued.
    let token = worker_token(&worker, cluster, stake_a, NODE_A, 0, fresh, five);
    let (code, body) = w.post_join(&token);
    assert_eq!(code, 200, "{body}");
    let answer: daas_join_api::JoinResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.node_name, NODE_A);
    assert_eq!(answer.server, w.node_url());
    assert!(answer.token.starts_with(&format!("{}::", answer.ca_hash)));
    let (code, body) = w.post_join(&token);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("replayed"), "{body}");
    // The bootstrap token names its node on K3s's kubelet-certificate endpoints, and only its own.
    let cert_path = "/v1-k3s/client-kubelet.crt";
    let (code, body) = w.front_get(cert_path, &answer.bootstrap_token);
    assert_eq!(code, 400, "no node name: {body}");
    let (code, body) =
        w.front_get_with(cert_path, &answer.bootstrap_token, &["k3s-Node-Name: wk-b"]);
    assert_eq!(code, 403, "another node's name: {body}");
    assert!(body.contains("issued for node wk-a"), "{body}");
    let (code, body) = w.front_get("/v1-k3s/server-ca.crt", &answer.bootstrap_token);
    assert_eq!((code, body.as_str()), (200, answer.ca_certificate.as_str()));
    let (code, body) = w.front_get_with("/cacerts", "", &[]);
    assert_eq!(
        (code, body.as_str()),
        (200, answer.ca_certificate.as_str()),
        "anonymous /cacerts"
    );
    assert_eq!(
        w.node_secrets(NODE_A).len(),
        2,
        "one token, one node password"
    );

    // `staker-agent run`: joins again (its own fresh token; the earlier bootstrap token is
    // replaced) and starts the kubelet, which registers through the :6443 front.
    let started = Instant::now();
    let mut run_a = w.run_worker(&worker_ks, stake_a, INDEX_A);
    w.wait("node wk-a Ready", Duration::from_secs(180), || {
        w.node_ready(NODE_A)
    });
    println!(
        "timing: staker-agent run (join + kubelet start) to Node Ready: {:.2}s",
        started.elapsed().as_secs_f64()
    );
    // The kubelet's client certificate (kept: the node peer's run dir goes with the node).
    let kubelet_cert = w.tmp.join("kubelet-a.pem");
    std::fs::copy(
        Node::run_dir(INDEX_A).join("pki/kubelet-client-current.pem"),
        &kubelet_cert,
    )
    .unwrap();
    let (code, body) = w.front_get_as("/api/v1/nodes/wk-a", &kubelet_cert);
    assert_eq!(
        code, 200,
        "the node's own certificate works at :6443: {body}"
    );
    let (code, body) = w.front_get_as("/api/v1/secrets", &kubelet_cert);
    assert_eq!(code, 403, "the Node authorizer still limits it: {body}");
    let csrs = w.admin_out(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[*]}{.spec.username} {.status.conditions[0].reason}{\"\\n\"}{end}",
    ]);
    assert!(
        csrs.lines()
            .any(|l| l.starts_with("system:bootstrap:") && l.ends_with("K3sDaasNodeBound")),
        "the master's approver approved the kubelet's CSR: {csrs}"
    );
    assert!(
        !answer.bootstrap_token.is_empty()
            && w.front_get("/api/v1/nodes/wk-a", &answer.bootstrap_token).0 == 401,
        "the bootstrap token replaced by run's join is refused"
    );
    // The node registered: its bootstrap token is deleted (the lifecycle's pass) and refused.
    let state = w.tmp.join(format!("worker-{INDEX_A}"));
    let kubeconfig = std::fs::read_to_string(state.join("bootstrap.kubeconfig")).unwrap();
    let used: serde_json::Value = serde_json::from_str(&kubeconfig).unwrap();
    let used = used["users"][0]["user"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    w.wait(
        "the used bootstrap token deleted",
        Duration::from_secs(40),
        || {
            w.node_secrets(NODE_A)
                .iter()
                .all(|s| !s.contains("bootstrap-token-"))
        },
    );
    let (code, body) = w.front_get("/api/v1/nodes/wk-a", &used);
    assert_eq!(code, 401, "a used bootstrap token: {body}");
    assert!(body.contains("already used"), "{body}");
    let (code, body) = w.front_get("/api/v1/nodes", "k3sdaas1.not-a-node-credential");
    assert_eq!(code, 401, "{body}");
    let (code, _) = w.front_get("/v1-k3s/server-bootstrap", &used);
    assert_eq!(code, 403, "server-only K3s paths are blocked");
    // Pods' service-account tokens pass through to the API server, which judges them.
    let sa = w.admin_out(&[
        "-n",
        "default",
        "create",
        "token",
        "default",
        "--duration=10m",
    ]);
    let (code, body) = w.front_get("/api", sa.trim());
    assert_eq!(code, 200, "a service-account token at :6443: {body}");
    let (code, body) = w.front_get("/api/v1/namespaces/kube-system/secrets", sa.trim());
    assert_eq!(code, 403, "its RBAC still applies: {body}");
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJl";
    let (code, body) = w.front_get("/api", forged);
    assert_eq!(
        code, 401,
        "a forged token is the API server's to refuse: {body}"
    );

    // A user's pod on the node, reached through the :8080 proxy.
    let user_kc = w.dev.kubeconfig(
        "user",
        &w.dev
            .token("user/sui.keystore", "dev-user-stake-id", Role::User),
    );
    let banner = w.dev.stdout.concat();
    let ns = banner
        .split("your namespace: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned();
    let user = |args: &[&str]| {
        let mut c = Command::new(&w.kubectl);
        c.arg("--kubeconfig")
            .arg(&user_kc)
            .args(["--request-timeout=60s", "-n", &ns])
            .args(args);
        c
    };
    run_ok(&mut user(&[
        "run",
        "bb",
        "--image=localhost/k3s-daas/busybox:peer",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--labels=app=bb",
        "--overrides={\"spec\":{\"terminationGracePeriodSeconds\":1}}",
        "--",
        "sh",
        "-c",
        "httpd -p 8080 -h /var/www; i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done",
    ]));
    run_ok(&mut user(&[
        "wait",
        "--for=condition=Ready",
        "pod/bb",
        "--timeout=120s",
    ]));
    let logs = Streaming::spawn(&mut user(&["logs", "-f", "bb"]));
    let first = logs.line_where("logs -f", Duration::from_secs(30), |l| {
        l.starts_with("tick")
    });
    let later = logs.line_where("logs -f", Duration::from_secs(30), |l| {
        l.starts_with("tick") && l != first
    });
    assert_ne!(first, later);
    drop(logs);
    let page = run_ok(&mut user(&[
        "exec",
        "bb",
        "--",
        "cat",
        "/var/www/index.html",
    ]));
    assert!(page.contains("hello from the k3s-daas node peer"), "{page}");
    let local = free_port();
    let forward = Streaming::spawn(&mut user(&[
        "port-forward",
        "pod/bb",
        &format!("{local}:8080"),
    ]));
    forward.line_where("port-forward", Duration::from_secs(30), |l| {
        l.contains("Forwarding from")
    });
    let got = support::http_get(&format!("127.0.0.1:{local}"), "/");
    assert!(got.contains("hello from the k3s-daas node peer"), "{got}");
    drop(forward);
    // A token bound to that pod names its node: it works while the node stands.
    let pod_token = w.admin_out(&[
        "-n",
        &ns,
        "create",
        "token",
        "default",
        "--duration=10m",
        "--bound-object-kind=Pod",
        "--bound-object-name=bb",
    ]);
    let pod_token = pod_token.trim().to_owned();
    let (code, body) = w.front_get("/api", &pod_token);
    assert_eq!(code, 200, "a pod-bound token of a standing node: {body}");

    // A second worker's record with the same node name cannot claim it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let chain = w.chain();
    let config = ChainConfig::load(&w.chain_config).unwrap();
    let admin = Keystore::load(config.admin_keystore.as_ref().unwrap())
        .unwrap()
        .keys()[0]
        .clone();
    let bob = WalletKey::generate(Scheme::Ed25519);
    let bob_ks = w.tmp.join("bob/sui.keystore");
    std::fs::create_dir_all(bob_ks.parent().unwrap()).unwrap();
    write_keystore(&bob_ks, std::slice::from_ref(&bob)).unwrap();
    let (bob_a, bob_b) = rt.block_on(async {
        fund(&chain, &admin, bob.address(), 5 * SUI).await;
        let cap = chain.object_ref(config.admin_cap.unwrap()).await.unwrap();
        let gas = chain.gas_for(admin.address(), 0).await.unwrap();
        let t = tx::grant_role(&config, &gas, cap, bob.address(), consts::ROLE_WORKER).unwrap();
        chain.sign_and_execute(admin.keypair(), t).await.unwrap();
        let mut records = Vec::new();
        for name in [NODE_A, NODE_B] {
            let gas = chain.gas_for(bob.address(), SUI).await.unwrap();
            let t = tx::stake(&config, &gas, SUI, consts::ROLE_WORKER, name).unwrap();
            records.push(staked(
                &chain.sign_and_execute(bob.keypair(), t).await.unwrap(),
            ));
        }
        (records[0], records[1])
    });
    let (code, body) = w.post_join(&worker_token(&bob, cluster, bob_a, NODE_A, 0, fresh, five));
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&stake_a.to_string()),
        "names the record holding it: {body}"
    );

    // Bob's second record runs a node of its own, with a pod behind a PodDisruptionBudget.
    let mut run_b = w.run_worker(&bob_ks, bob_b, INDEX_B);
    w.wait("node wk-b Ready", Duration::from_secs(180), || {
        w.node_ready(NODE_B)
    });
    let pod_on = |name: &str, node: &str| {
        w.admin_out(&["-n", "default", "run", name, "--image=localhost/k3s-daas/busybox:peer", "--image-pull-policy=Never", "--restart=Never", &format!("--labels=app={name}"), &format!("--overrides={{\"spec\":{{\"nodeName\":\"{node}\",\"terminationGracePeriodSeconds\":30}}}}"), "--", "sleep", "3600"]);
        w.admin_out(&[
            "-n",
            "default",
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=120s",
        ]);
        w.admin_out(&[
            "-n",
            "default",
            "create",
            "pdb",
            name,
            &format!("--selector=app={name}"),
            "--min-available=1",
        ]);
    };
    pod_on("held", NODE_B);
    w.admin_out(&[
        "-n",
        &ns,
        "create",
        "pdb",
        "bb",
        "--selector=app=bb",
        "--min-available=1",
    ]);

    // Unstake: the node is refused at :6443 within a checkpoint, `run` stops with 3, the PDB
    // holds the eviction.
    let unstaked_at = Instant::now();
    run_ok(
        w.staker(&worker_ks)
            .args(["unstake", "--stake", &stake_a.to_string()]),
    );
    w.wait(
        "the kubelet's certificate refused at :6443",
        Duration::from_secs(30),
        || w.front_get_as("/api/v1/nodes/wk-a", &kubelet_cert).0 == 403,
    );
    println!(
        "timing: unstake submitted to the kubelet certificate's first refusal at :6443: {:.2}s",
        unstaked_at.elapsed().as_secs_f64()
    );
    let (_, body) = w.front_get_as("/api/v1/nodes/wk-a", &kubelet_cert);
    assert!(
        body.contains("revoked") || body.contains("unbonding"),
        "{body}"
    );
    let (code, body) = w.front_get("/api", &pod_token);
    assert_eq!(code, 403, "the revoked node's pods are refused too: {body}");
    run_a
        .run
        .ended_within(Duration::from_secs(60))
        .expect("run stops after the unstake");
    println!(
        "timing: unstake submitted to `staker-agent run` exiting: {:.2}s",
        unstaked_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        run_a.run.child.wait().unwrap().code(),
        Some(3),
        "exit code 3: stake no longer active"
    );
    assert!(
        !state.join("token").exists() && !state.join("bootstrap.kubeconfig").exists(),
        "run removed the join secrets"
    );
    let taints = w.admin_out(&[
        "get",
        "node",
        NODE_A,
        "-o",
        "jsonpath={.spec.taints[*].key} {.spec.unschedulable}",
    ]);
    assert!(
        taints.contains("k3s-daas.io/revoked") && taints.ends_with("true"),
        "{taints}"
    );
    w.wait(
        "the PDB refused an eviction",
        Duration::from_secs(30),
        || w.metric(EVICTIONS_BLOCKED_BY_PDB) >= 2.0,
    );
    assert!(
        w.node_exists(NODE_A),
        "the Node stays while its pod is held by the PDB"
    );
    let held = w.admin_out(&[
        "-n",
        &ns,
        "get",
        "pod",
        "bb",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(held.is_empty(), "the PDB held the pod: {held}");
    // A join for the unstaked record is refused.
    let (code, body) = w.post_join(&worker_token(
        &worker, cluster, stake_a, NODE_A, 1, fresh, five,
    ));
    assert!(code == 401 || code == 403, "{code} {body}");
    // A master restart in the middle of the drain: the new master reads the binding
    // (revoking) back from the cluster and carries on where the old one stopped.
    w.dev.restart(&dev_args);
    w.wait(
        "the restarted master refused an eviction",
        Duration::from_secs(60),
        || w.metric(EVICTIONS_BLOCKED_BY_PDB) >= 1.0,
    );
    assert!(
        w.node_exists(NODE_A),
        "still held by the PDB after the restart"
    );
    w.admin_out(&["-n", &ns, "delete", "pdb", "bb"]);
    w.wait("node wk-a deleted", Duration::from_secs(90), || {
        !w.node_exists(NODE_A)
    });
    println!(
        "timing: unstake submitted to the Node's deletion: {:.2}s (PDB held it until deleted)",
        unstaked_at.elapsed().as_secs_f64()
    );
    assert!(
        w.node_secrets(NODE_A).is_empty(),
        "token and node password gone"
    );
    let pods = w.admin_out(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=wk-a",
        "-o",
        "name",
    ]);
    assert!(pods.is_empty(), "{pods}");
    let binding = w.admin_out(&[
        "-n",
        "k3s-daas-system",
        "get",
        "configmap",
        "node-wk-a",
        "-o",
        "jsonpath={.data.state} {.data.reason}",
    ]);
    assert_eq!(binding, "retired unbonding");

    // Slashing drains at once: bob's PDB is not honoured. (A new client: the old one's
    // connection went with the restarted master's chain.)
    let chain = w.chain();
    let slashed_at = Instant::now();
    rt.block_on(async {
        let cap = chain.object_ref(config.admin_cap.unwrap()).await.unwrap();
        let gas = chain.gas_for(admin.address(), 0).await.unwrap();
        let t = tx::slash(&config, &gas, cap, bob_b).unwrap();
        chain.sign_and_execute(admin.keypair(), t).await.unwrap();
    });
    w.wait(
        "node wk-b deleted after the slash",
        Duration::from_secs(60),
        || !w.node_exists(NODE_B),
    );
    println!(
        "timing: slash submitted to the Node's deletion: {:.2}s",
        slashed_at.elapsed().as_secs_f64()
    );
    let pods = w.admin_out(&["-n", "default", "get", "pods", "-o", "name"]);
    assert!(!pods.contains("pod/held"), "{pods}");
    assert!(
        run_b.run.ended_within(Duration::from_secs(60)).is_some(),
        "bob's run stops after the slash"
    );
    assert_eq!(run_b.run.child.wait().unwrap().code(), Some(3));
    assert!(
        w.metric("daas_workers_lifecycle_steps_total{step=\"delete_pod\",result=\"slashed\"}")
            >= 1.0
    );
}

/// A real `k3s agent` joins through the :6443 front and leaves with its stake: `dev` runs the
/// real `k3s server` behind the front, `staker-agent run` runs the real `k3s agent` with the
/// join material (K10 token, node password). Needs `K3S_BIN` (no k3s binary is obtainable on
/// the machine that runs CI) and root; skipped with the reason otherwise.
#[test]
fn a_real_k3s_agent_joins_and_leaves_when_k3s_bin_is_set() {
    let Some(k3s) = std::env::var_os("K3S_BIN").map(PathBuf::from) else {
        eprintln!("SKIP: K3S_BIN is not set (no k3s binary is obtainable from the registries)");
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let dev = Dev::start(&data, &["--k3s-bin".into(), k3s.display().to_string()]);
    let admin = dev.kubeconfig(
        "admin",
        &dev.token("sui_config/sui.keystore", "dev-stake-id", Role::Admin),
    );
    let k = |args: &[&str]| {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig").arg(&admin).args(args);
        c
    };
    let worker_ks = data.join("worker/sui.keystore");
    let staker = |args: &[&str]| {
        let mut c = Command::new(staker_agent());
        c.arg("--keystore")
            .arg(&worker_ks)
            .env("DAAS_CHAIN_CONFIG", data.join("chain/client.json"))
            .args(args);
        c
    };
    let stake = stake_json(&run_ok(&mut staker(&[
        "--json",
        "stake",
        "--role",
        "worker",
        "--node-name",
        NODE_A,
        "--amount",
        "1",
    ])));
    let state = tmp.path().join("state");
    let mut run = Streaming::spawn(
        staker(&[
            "run",
            "--stake",
            &stake.to_string(),
            "--stake-check-interval",
            "3s",
        ])
        .arg("--dev-root")
        .arg(data.join("tee/dev-root.pem"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--k3s-bin")
        .arg(&k3s)
        .arg("--k3s-data-dir")
        .arg(tmp.path().join("agent"))
        .arg("--node-password-file")
        .arg(tmp.path().join("node-password")),
    );
    let ready = || {
        k(&["get", "node", NODE_A, "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "True")
    };
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the k3s agent's node never got Ready"
        );
        assert!(run.running(), "staker-agent run stopped");
        std::thread::sleep(Duration::from_secs(1));
    }
    run_ok(&mut staker(&["unstake", "--stake", &stake.to_string()]));
    assert!(run.ended_within(Duration::from_secs(60)).is_some());
    let start = Instant::now();
    while k(&["get", "node", NODE_A])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the Node was not deleted"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    dev.stop();
}
