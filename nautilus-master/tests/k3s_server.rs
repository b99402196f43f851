//! Opt-in: a real `k3s server` on the etcd shim, when `K3S_BIN` names a k3s binary.
//!
//! The k3s binary is not in any package registry this project's machines reach, so this test
//! skips with a printed reason unless `K3S_BIN` is set (CI does not require it; the
//! kube-apiserver peer test covers the apiserver on the shim). K3s passes
//! `--datastore-endpoint` straight to kube-apiserver's `--etcd-servers`; on top of that this
//! checks K3s's own `/bootstrap` data and a restart.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nautilus_master::k3s::{
    CertKeyFiles, Datastore, K3sServerConfig, TokenWebhookArgs, server_args,
};
use support::{ShimProcess, files_containing, free_port, init_keyring, run_ok, wait_until};

struct K3s(Child);

impl Drop for K3s {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_k3s(bin: &str, data: &std::path::Path, shim_url: &str, port: u16) -> K3s {
    K3s(Command::new(bin)
        .arg("server")
        .arg(format!("--datastore-endpoint={shim_url}"))
        .arg("--disable-agent")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--https-listen-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!(
            "--write-kubeconfig={}/kubeconfig.yaml",
            data.display()
        ))
        .arg("--disable=traefik,servicelb,metrics-server,local-storage,coredns")
        .arg("--token=daas-test-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn k3s server"))
}

#[test]
fn k3s_server_runs_on_the_shim() {
    let Ok(k3s_bin) = std::env::var("K3S_BIN") else {
        eprintln!(
            "SKIP: K3S_BIN is not set (no k3s binary is obtainable here; see docs/etcd-shim.md)"
        );
        return;
    };
    let Some(kubectl) = support::peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let store = tmp.path().join("etcd");
    let k3s_data = tmp.path().join("k3s");
    let shim_port = free_port();
    let api_port = free_port();
    let mut shim = ShimProcess::start_on(shim_port, &store, &keyring);
    let kubeconfig = k3s_data.join("kubeconfig.yaml");
    let k = || {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=10s");
        c
    };
    let ready = || {
        kubeconfig.exists()
            && k()
                .args(["get", "namespace", "kube-system"])
                .output()
                .is_ok_and(|o| o.status.success())
    };
    {
        let _k3s = start_k3s(&k3s_bin, &k3s_data, &shim.url, api_port);
        wait_until("k3s API", Duration::from_secs(180), ready);
        run_ok(k().args(["create", "namespace", "daas-k3s"]));
        run_ok(k().args([
            "create",
            "configmap",
            "marker",
            "-n",
            "daas-k3s",
            "--from-literal=v=K3S-PLAINTEXT-MARKER-21c9",
        ]));
        // K3s stores its bootstrap data (token-encrypted CA material) through the shim too.
        assert!(files_containing(&store, b"/bootstrap/").len() == 1);
        assert!(files_containing(&store, b"K3S-PLAINTEXT-MARKER-21c9").is_empty());
    }
    shim.kill();
    let _shim = ShimProcess::start_on(shim_port, &store, &keyring);
    let _k3s = start_k3s(&k3s_bin, &k3s_data, &_shim.url, api_port);
    wait_until("k3s API after restart", Duration::from_secs(180), ready);
    let v = run_ok(k().args([
        "get",
        "configmap",
        "marker",
        "-n",
        "daas-k3s",
        "-o",
        "jsonpath={.data.v}",
    ]));
    assert_eq!(v, "K3S-PLAINTEXT-MARKER-21c9");
}

/// Opt-in: the real binary runs, and `k3s server` parses every flag [`server_args`] emits. Flags
/// are parsed in order before `--help` takes effect, so an unknown or malformed one fails here.
/// (Parse level only: a full start under the supervisor needs the shim and takes minutes.)
#[test]
fn k3s_accepts_server_args() {
    let Ok(k3s_bin) = std::env::var("K3S_BIN") else {
        eprintln!(
            "SKIP: K3S_BIN is not set (no k3s binary is obtainable here; see docs/etcd-shim.md)"
        );
        return;
    };
    let version = run_ok(Command::new(&k3s_bin).arg("--version"));
    assert!(version.contains("k3s"), "{version}");

    let tmp = tempfile::tempdir().unwrap();
    let mut config = K3sServerConfig::new(
        tmp.path().join("k3s"),
        Datastore {
            endpoint: "https://127.0.0.1:2379".into(),
            ca_file: Some(tmp.path().join("etcd-ca.pem")),
            client_cert: Some(CertKeyFiles {
                cert_file: tmp.path().join("etcd-client.pem"),
                key_file: tmp.path().join("etcd-client-key.pem"),
            }),
        },
        tmp.path().join("token"),
        tmp.path().join("admin.kubeconfig"),
    );
    config.tls_sans = vec!["k3s.daas.internal".into()];
    config.token_webhook = Some(TokenWebhookArgs::new(tmp.path().join("webhook.kubeconfig")));
    let mut args = server_args(&config);
    args.push("--help".into());
    run_ok(Command::new(&k3s_bin).args(&args));
}
