//! Revocation on chain ends what a credential opened, against a real cluster: the development
//! chain (process), the chain-backed authenticator with its checkpoint follower, the proxy, a
//! real kube-apiserver v1.36 on the etcd shim, and a real kubelet with containerd running the
//! pod that `kubectl exec` reaches.
//!
//! - A user's `kubectl exec -i` session and `kubectl get -w` watch end when the user unstakes.
//! - An admin's watch ends when the cluster admin withdraws the admin grant on chain, and the
//!   admin's token is refused from then on (C1: privileged roles are granted, not bought).
//! - Another user's watch stays open through both.
//!
//! Needs the peers `../shared/peers/k8s` (`DAAS_K8S_PEER_DIR`) and `../shared/peers/node`
//! (`DAAS_NODE_PEER_DIR`, root), and kubectl; skipped with a printed reason otherwise,
//! required with `DAAS_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_chain::{Executed, GrpcChain, tx};
use daas_chain_types::{PackageEvent, consts};
use daas_seal::{Address, Role};
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::auth::AuthConfig;
use nautilus_master::chain::follow::{ChainAuthenticator, following};
use nautilus_master::proxy::rbac::user_namespace;
use nautilus_master::proxy::{Proxy, ProxyConfig, ServeLimits, ServerCert, serve_proxy};
use support::devnet::{DevnetProcess, SUI, fund, token};
use support::node::{Node, Streaming};
use support::proxy::{peer_upstream, write_kubeconfig};
use support::{ApiServerOnShim, peer, run_ok};

/// The proxy in front of `upstream`, authenticating against the chain through a follower.
struct ChainProxy {
    /// Runs the proxy, the follower and the sessions' re-checks; dropped last.
    _runtime: tokio::runtime::Runtime,
    auth: Arc<ChainAuthenticator>,
    url: String,
    ca_pem: String,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

impl ChainProxy {
    fn start(chain: GrpcChain, api: &ApiServerOnShim, tls_dir: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = chain.config().cluster;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let cert = ServerCert::load_or_generate(tls_dir, &["127.0.0.1".to_owned()]).unwrap();
        let server_tls = cert.server_config().unwrap();
        let (auth, addr) = runtime.block_on(async {
            let (auth, status, follower) =
                following(chain, AuthConfig::new(cluster), Duration::from_secs(5))
                    .await
                    .unwrap();
            tokio::spawn(follower);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !status.is_streaming() {
                assert!(Instant::now() < deadline, "the follower never streamed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let config = ProxyConfig {
                upstream: Some(peer_upstream(&api.url(), &api.pki())),
                ..ProxyConfig::default()
            };
            let proxy = Proxy::new(config, auth.clone()).unwrap();
            proxy.bootstrap().await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(proxy.clone().maintain(wait(stopped.clone())));
            tokio::spawn(serve_proxy(
                proxy,
                listener,
                Some(server_tls),
                ServeLimits::default(),
                wait(stopped),
            ));
            (auth, addr)
        });
        ChainProxy {
            _runtime: runtime,
            auth,
            url: format!("https://{addr}"),
            ca_pem: cert.ca_pem.clone(),
            stop: Some(stop),
        }
    }
}

impl Drop for ChainProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

fn staked(ex: &Executed) -> Address {
    ex.events
        .iter()
        .find_map(|e| match e {
            PackageEvent::Staked(s) => Some(s.record_id),
            _ => None,
        })
        .expect("Staked event")
}

async fn stake(chain: &GrpcChain, key: &WalletKey, amount: u64, role: u8) -> Address {
    let gas = chain.gas_for(key.address(), amount).await.unwrap();
    let t = tx::stake(chain.config(), &gas, amount, role, "").unwrap();
    staked(&chain.sign_and_execute(key.keypair(), t).await.unwrap())
}

#[test]
fn revocations_on_chain_end_live_sessions_against_a_real_cluster() {
    let Some(k8s) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(node_dir) = peer("DAAS_NODE_PEER_DIR", "kubelet-node-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // The chain: a user (alice), a second user (carol) and a granted admin (bob).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter(); // the gRPC client needs a runtime's timer
    let devnet = DevnetProcess::start(&tmp.path().join("chain"));
    let chain = devnet.chain();
    let cluster = chain.config().cluster;
    let (alice, bob, carol) = (
        WalletKey::generate(Scheme::Ed25519),
        WalletKey::generate(Scheme::Ed25519),
        WalletKey::generate(Scheme::Ed25519),
    );
    let (alice_stake, bob_stake, carol_stake) = rt.block_on(async {
        let admin = devnet.admin_key();
        for k in [&alice, &bob, &carol] {
            fund(&chain, &admin, k.address(), 20 * SUI).await;
        }
        devnet
            .grant(&chain, bob.address(), consts::ROLE_ADMIN)
            .await;
        (
            stake(&chain, &alice, SUI, consts::ROLE_USER).await,
            stake(&chain, &bob, 10 * SUI, consts::ROLE_ADMIN).await,
            stake(&chain, &carol, SUI, consts::ROLE_USER).await,
        )
    });

    // The cluster: apiserver on the shim, one real node, the proxy in front.
    let api = ApiServerOnShim::start(
        &k8s,
        &tmp.path().join("api"),
        &[(
            "K8S_APISERVER_EXTRA_ARGS",
            "--enable-bootstrap-token-auth --kubelet-preferred-address-types=InternalIP",
        )],
    );
    let _node = Node::start_with_token(&node_dir, &api, "daas-rev", 180);
    let proxy = ChainProxy::start(chain.clone(), &api, &tmp.path().join("tls"));
    let kc = |name: &str, key: &WalletKey, stake: Address, role: Role, ns: Option<&str>| {
        write_kubeconfig(
            tmp.path(),
            name,
            &proxy.url,
            &proxy.ca_pem,
            &token(key, cluster, stake, role, None, 0),
            ns,
        )
    };
    let alice_ns = user_namespace(&alice.address());
    let carol_ns = user_namespace(&carol.address());
    let alice_kc = kc("alice", &alice, alice_stake, Role::User, Some(&alice_ns));
    let carol_kc = kc("carol", &carol, carol_stake, Role::User, Some(&carol_ns));
    let bob_kc = kc("bob", &bob, bob_stake, Role::Admin, None);
    let k = |kubeconfig: &Path| {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig").arg(kubeconfig);
        c
    };

    // Alice runs a pod on the real node and opens an exec session and a watch; bob and carol
    // open watches.
    run_ok(k(&alice_kc).args([
        "run",
        "bb",
        "--image=localhost/k3s-daas/busybox:peer",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]));
    run_ok(k(&alice_kc).args(["wait", "--for=condition=Ready", "pod/bb", "--timeout=120s"]));
    let mut exec = Streaming::spawn(k(&alice_kc).args(["exec", "-i", "bb", "--", "cat"]));
    let stdin = exec.stdin.as_mut().unwrap();
    writeln!(stdin, "hello through the proxy").unwrap();
    stdin.flush().unwrap();
    assert_eq!(exec.line("kubectl exec"), "hello through the proxy");
    // Each watch lists a ConfigMap of its own first: the first line shows it is established.
    for kubeconfig in [&alice_kc, &carol_kc] {
        run_ok(k(kubeconfig).args(["create", "configmap", "mine", "--from-literal=a=b"]));
    }
    let watch = |kubeconfig: &Path, who: &str| {
        let w = Streaming::spawn(k(kubeconfig).args(["get", "configmaps", "-w", "-o", "name"]));
        let first = w.line(who);
        assert!(first.starts_with("configmap/"), "{who}: {first}");
        w
    };
    let mut alice_watch = watch(&alice_kc, "alice's watch");
    let mut carol_watch = watch(&carol_kc, "carol's watch");
    let mut bob_watch =
        Streaming::spawn(k(&bob_kc).args(["get", "namespaces", "-w", "-o", "name"]));
    assert!(bob_watch.line("bob's watch").starts_with("namespace/"));
    // `get -w` lists first, then opens its watch: wait for the four sessions.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.auth.sessions().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} sessions",
            proxy.auth.sessions().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Alice unstakes: her exec session and her watch end, carol's and bob's do not.
    let unstaked = rt.block_on(async {
        let r = chain.object_ref(alice_stake).await.unwrap();
        let gas = chain.gas_for(alice.address(), 0).await.unwrap();
        let t = tx::request_unstake(chain.config(), &gas, r).unwrap();
        chain.sign_and_execute(alice.keypair(), t).await.unwrap()
    });
    let limit = Duration::from_secs(30);
    let exec_took = exec.ended_within(limit);
    let watch_took = alice_watch.ended_within(limit);
    assert!(
        exec_took.is_some(),
        "alice's exec session outlived her unstake"
    );
    assert!(watch_took.is_some(), "alice's watch outlived her unstake");
    assert!(carol_watch.running() && bob_watch.running());
    println!(
        "unstake in checkpoint {:?}: exec ended after {exec_took:?}, watch after {watch_took:?}",
        unstaked.checkpoint
    );
    let refused = k(&alice_kc).args(["get", "pods"]).output().unwrap();
    assert!(!refused.status.success());

    // The cluster admin withdraws bob's admin grant: his watch ends, his token is refused.
    rt.block_on(async {
        let admin = devnet.admin_key();
        let cap = chain.object_ref(devnet.admin_cap()).await.unwrap();
        let gas = chain.gas_for(admin.address(), 0).await.unwrap();
        let t =
            tx::revoke_role(chain.config(), &gas, cap, bob.address(), consts::ROLE_ADMIN).unwrap();
        chain.sign_and_execute(admin.keypair(), t).await.unwrap();
    });
    let bob_took = bob_watch.ended_within(limit);
    assert!(bob_took.is_some(), "bob's admin watch outlived the grant");
    println!("grant withdrawn: bob's watch ended after {bob_took:?}");
    let refused = k(&bob_kc)
        .args(["auth", "can-i", "*", "*", "--all-namespaces"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "bob is still cluster-admin: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        carol_watch.running(),
        "carol's watch was cut by others' revocations"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.auth.sessions().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "{} sessions left",
            proxy.auth.sessions().len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
