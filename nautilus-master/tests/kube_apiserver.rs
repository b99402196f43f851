//! A real kube-apiserver v1.36 (with controller-manager and scheduler) on the etcd shim.
//!
//! Needs the test peer from `../shared/peers/k8s` (`DAAS_K8S_PEER_DIR` = the directory that
//! `peers/k8s/install` prints, holding the binaries and start scripts) and `kubectl`.
//! Skipped with a printed reason when they are absent, required with `DAAS_REQUIRE_PEERS=1`.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    ControlPlane, ShimProcess, files_containing, free_port, init_keyring, peer, run_ok, wait_until,
};

#[test]
fn kube_apiserver_runs_on_the_shim_and_survives_restarts() {
    let Some(peer_dir) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let data = tmp.path().join("etcd");
    let shim_port = free_port();
    let api_port = free_port();
    let run_dir = tmp.path().join("k8s");

    let mut shim = ShimProcess::start_on(shim_port, &data, &keyring);
    let (plane, kubeconfig) = ControlPlane::start(&peer_dir, &run_dir, &shim.url, api_port);
    let k = || {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=20s");
        c
    };

    // A watch that must see the objects created after it starts.
    let mut watch = k()
        .args([
            "get",
            "configmaps",
            "-n",
            "daas-test",
            "--watch",
            "-o",
            "name",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    run_ok(k().args(["create", "namespace", "daas-test"]));
    run_ok(k().args([
        "create",
        "configmap",
        "marker",
        "-n",
        "daas-test",
        "--from-literal=secret=PLAINTEXT-MARKER-7f3a91",
    ]));
    run_ok(k().args([
        "create",
        "configmap",
        "second",
        "-n",
        "daas-test",
        "--from-literal=a=b",
    ]));
    run_ok(k().args([
        "create",
        "deployment",
        "web",
        "-n",
        "daas-test",
        "--image=registry.invalid/web:1",
        "--replicas=2",
    ]));
    // The controller manager (watching through the apiserver's cache) creates the ReplicaSet.
    wait_until(
        "deployment controller creates a ReplicaSet",
        Duration::from_secs(60),
        || {
            let out = k()
                .args(["get", "replicasets", "-n", "daas-test", "-o", "name"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("replicaset.apps/web-")
        },
    );
    // Update through the optimistic-concurrency path (GuaranteedUpdate = CAS Txn).
    run_ok(k().args(["label", "configmap", "marker", "-n", "daas-test", "round=1"]));
    std::thread::sleep(Duration::from_secs(1));
    watch.kill().unwrap();
    let watched = watch.wait_with_output().unwrap();
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.contains("configmap/marker") && watched.contains("configmap/second"),
        "watch missed events: {watched}"
    );

    // The value never reached the store in plaintext.
    assert!(files_containing(&data, b"PLAINTEXT-MARKER-7f3a91").is_empty());
    assert!(
        files_containing(&data, b"daas-test").len() == 1,
        "keys stay plaintext in the store"
    );

    // Restart everything: apiserver and shim (the shim with kill -9).
    plane.stop();
    shim.kill();
    let _shim = ShimProcess::start_on(shim_port, &data, &keyring);
    let (_plane, kubeconfig2) = ControlPlane::start(&peer_dir, &run_dir, &_shim.url, api_port);
    assert_eq!(kubeconfig, kubeconfig2);

    let value = run_ok(k().args([
        "get",
        "configmap",
        "marker",
        "-n",
        "daas-test",
        "-o",
        "jsonpath={.data.secret}/{.metadata.labels.round}",
    ]));
    assert_eq!(value, "PLAINTEXT-MARKER-7f3a91/1");
    let deploy = run_ok(k().args([
        "get",
        "deployment",
        "web",
        "-n",
        "daas-test",
        "-o",
        "jsonpath={.spec.replicas}",
    ]));
    assert_eq!(deploy, "2");
    let rs = run_ok(k().args(["get", "replicasets", "-n", "daas-test", "-o", "name"]));
    assert!(rs.contains("replicaset.apps/web-"), "{rs}");
    // And it keeps working after the restart.
    run_ok(k().args(["create", "configmap", "after-restart", "-n", "daas-test"]));
    run_ok(k().args(["delete", "configmap", "second", "-n", "daas-test"]));
    let names = run_ok(k().args(["get", "configmaps", "-n", "daas-test", "-o", "name"]));
    assert!(
        names.contains("after-restart") && !names.contains("configmap/second"),
        "{names}"
    );
}

/// K3s hands `--datastore-endpoint` to kube-apiserver as `--etcd-servers`, and `dev` serves the
/// shim on a unix socket: the real apiserver's etcd client must reach it as
/// `unix:///absolute/path`.
#[test]
fn kube_apiserver_reaches_the_shim_on_a_unix_socket() {
    let Some(peer_dir) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let data = tmp.path().join("etcd");
    let socket = tmp.path().join("etcd.sock");
    let shim = ShimProcess::try_listen(
        &format!("unix://{}", socket.display()),
        &data,
        &keyring,
        &[],
    )
    .unwrap();
    assert_eq!(shim.url, format!("unix://{}", socket.display()));
    let (_plane, kubeconfig) = ControlPlane::start_with(
        &peer_dir,
        &tmp.path().join("k8s"),
        &shim.url,
        free_port(),
        &[("K8S_NO_CONTROLLERS", "1")],
    );
    let k = || {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=20s");
        c
    };
    run_ok(k().args([
        "create",
        "configmap",
        "over-a-socket",
        "--from-literal=k=UNIX-SOCKET-MARKER",
    ]));
    let got = run_ok(k().args([
        "get",
        "configmap",
        "over-a-socket",
        "-o",
        "jsonpath={.data.k}",
    ]));
    assert_eq!(got, "UNIX-SOCKET-MARKER");
    assert!(files_containing(&data, b"UNIX-SOCKET-MARKER").is_empty());
}
