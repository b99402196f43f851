//! kubectl → the Seal proxy → a real kube-apiserver v1.36 (on the etcd shim), with tokens of
//! every role: RBAC is enforced per Seal identity, client impersonation is stripped, revoked
//! and expired tokens get 401, watches stream.
//!
//! Needs the peer from `../shared/peers/k8s` (`DAAS_K8S_PEER_DIR`) and `kubectl`; skipped with
//! a printed reason otherwise, required with `DAAS_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use daas_seal::Role;
use nautilus_master::auth::unix_ms_now;
use nautilus_master::proxy::ProxyConfig;
use nautilus_master::proxy::rbac::user_namespace;
use support::proxy::{RunningProxy, peer_upstream};
use support::{ApiServerOnShim, http_get, peer, run_ok};

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn kubectl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn kubectl_through_the_proxy_enforces_rbac_per_seal_identity() {
    let Some(peer_dir) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let api = ApiServerOnShim::start(&peer_dir, tmp.path(), &[]);

    let config = ProxyConfig {
        upstream: Some(peer_upstream(&api.url(), &api.pki())),
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start(&tmp.path().join("tls"), config);
    let admin = proxy.staker(Role::Admin);
    let user = proxy.staker(Role::User);
    let worker = proxy.staker(Role::Worker);
    let user_ns = user_namespace(&user.address());

    let kc = |name: &str, token: &str| proxy.kubeconfig(tmp.path(), name, token, None);
    let admin_kc = kc("admin", &admin.token(proxy.cluster, 0));
    let user_kc = kc("user", &user.token(proxy.cluster, 0));
    let worker_kc = kc("worker", &worker.token(proxy.cluster, 0));
    let k = |kubeconfig: &std::path::Path| {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=30s");
        c
    };

    // Admin: cluster-admin through the k3s-daas:admin group binding.
    let whoami = run_ok(k(&admin_kc).args(["auth", "whoami", "-o", "json"]));
    let who: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        format!("sui:{}", admin.address())
    );
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("k3s-daas:admin"), "{groups}");
    assert!(
        who["status"]["userInfo"]["extra"]["k3s-daas.io/stake-id"]
            .to_string()
            .contains(&admin.stake.to_string()),
        "stake id travels as an extra: {who}"
    );
    run_ok(k(&admin_kc).args(["create", "namespace", "team-a"]));
    run_ok(k(&admin_kc).args([
        "-n",
        "team-a",
        "create",
        "configmap",
        "c1",
        "--from-literal=a=b",
    ]));
    assert!(
        run_ok(k(&admin_kc).args(["get", "namespaces", "-o", "name"])).contains("namespace/team-a")
    );

    // A watch through the proxy sees an object created after it started.
    let mut watch = k(&admin_kc)
        .args(["-n", "team-a", "get", "configmaps", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    run_ok(k(&admin_kc).args([
        "-n",
        "team-a",
        "create",
        "configmap",
        "c2",
        "--from-literal=a=b",
    ]));
    let seen: Vec<String> = (0..4)
        .map_while(|_| rx.recv_timeout(Duration::from_secs(20)).ok())
        .take_while(|l| l != "configmap/c2")
        .collect();
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.len() < 4,
        "the watch never delivered configmap/c2 (saw {seen:?})"
    );

    // User: their own namespace (created on first use) as namespace owner, nothing elsewhere.
    // The very first request of this user creates the namespace and must already succeed.
    run_ok(k(&user_kc).args([
        "-n",
        &user_ns,
        "create",
        "configmap",
        "mine",
        "--from-literal=x=y",
    ]));
    let o = output(k(&user_kc).args(["get", "namespaces"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Forbidden") || stderr(&o).contains("forbidden"),
        "{}",
        stderr(&o)
    );
    assert!(
        run_ok(k(&user_kc).args(["-n", &user_ns, "get", "configmaps", "-o", "name"]))
            .contains("configmap/mine")
    );
    let o = output(k(&user_kc).args(["-n", "team-a", "get", "configmaps"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("sui:{}", user.address())),
        "{}",
        stderr(&o)
    );
    let o = output(k(&user_kc).args([
        "-n",
        &user_ns,
        "create",
        "rolebinding",
        "x",
        "--clusterrole=admin",
        "--user=sui:0x1",
    ]));
    assert!(!o.status.success(), "edit cannot grant RBAC");

    // Client-supplied impersonation is stripped: the request stays the user's own.
    let o = output(k(&user_kc).args([
        "--as=system:admin",
        "--as-group=system:masters",
        "get",
        "namespaces",
    ]));
    assert!(
        !o.status.success(),
        "impersonation headers must not reach the API server"
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("sui:{}", user.address())), "{err}");
    assert!(!err.contains("system:admin\" cannot"), "{err}");

    // Worker: nothing through the proxy.
    let o = output(k(&worker_kc).args(["-n", "default", "get", "pods"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("forbidden"),
        "{}",
        stderr(&o)
    );

    // Revoked (epoch bump) → 401; a token at the new epoch works again.
    proxy.revoke(&user);
    let o = output(k(&user_kc).args(["-n", &user_ns, "get", "configmaps"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("You must be logged in") || err.contains("Unauthorized"),
        "{err}"
    );
    let fresh_kc = kc("user-epoch1", &user.token(proxy.cluster, 1));
    run_ok(k(&fresh_kc).args(["-n", &user_ns, "get", "configmaps"]));

    // Expired → 401.
    let expired = user.token_at(proxy.cluster, 1, unix_ms_now() - 3_600_000, 60_000);
    let expired_kc = kc("expired", &expired);
    let o = output(k(&expired_kc).args(["-n", &user_ns, "get", "configmaps"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Unauthorized") || stderr(&o).contains("logged in"),
        "{}",
        stderr(&o)
    );

    // No credential at all → 401 (not anonymous access).
    let anon_kc = kc("anon", "");
    let o = output(k(&anon_kc).args(["get", "--raw", "/api"]));
    assert!(!o.status.success());

    // Metrics saw it all; the token never appears there.
    let admin = proxy.admin_url.trim_start_matches("http://");
    let metrics = http_get(admin, "/metrics");
    assert!(metrics.contains("daas_proxy_requests_total"), "{metrics}");
    assert!(metrics.contains("reason=\"revoked\""), "{metrics}");
    let ready = http_get(admin, "/readyz");
    assert!(ready.contains("[+] upstream"), "{ready}");
    drop(api);
}
