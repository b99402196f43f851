//! `nautilus-master dev`, the README's main command, as a process: it provisions, serves the
//! proxy/webhook/etcd shim/health listeners, answers kubectl, and stops every part on SIGTERM.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use daas_seal::Role;
use support::dev::{Dev, dev_command};
use support::{ApiServerOnShim, peer, run_ok};

/// The TCP ports `pid` listens on, from its socket descriptors and the kernel's socket tables.
fn listening_tcp_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// `dev` serves the decrypting etcd shim on a 0600 unix socket under its data dir, with
/// KeyAdmin on a socket of its own: no TCP port for either, so no other local user can reach
/// the cluster state. The socket works as an etcd endpoint (what k3s is handed).
#[test]
fn dev_opens_no_tcp_port_for_the_etcd_shim() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let dev = Dev::start(&data, &[]);
    let etcd = dev.url_of("etcd shim");
    let socket = std::path::absolute(data.join("etcd.sock")).unwrap();
    assert_eq!(etcd, format!("unix://{}", socket.display()));
    for name in ["etcd.sock", "etcd-admin.sock"] {
        let meta = std::fs::metadata(data.join(name)).unwrap();
        assert!(meta.file_type().is_socket(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let port = |url: &str| -> u16 {
        let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
        authority.rsplit(':').next().unwrap().parse().unwrap()
    };
    let expected = [
        dev.proxy,
        dev.admin,
        port(&dev.url_of("token webhook")),
        port(&dev.url_of("dev chain")),
    ];
    let listening = listening_tcp_ports(dev.child.id());
    assert!(!listening.is_empty(), "no TCP listeners found for dev");
    for p in &listening {
        assert!(
            expected.contains(p),
            "dev listens on TCP port {p}, which is none of {expected:?}: {:?}",
            dev.stdout
        );
    }

    // An etcd client reaches the shim through the socket.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let value = rt.block_on(async {
        use daas_etcd_proto::{PutRequest, RangeRequest, kv_client::KvClient};
        let channel = tonic::transport::Endpoint::from_static("http://etcd.invalid")
            .connect_with_connector(UnixConnector(socket.clone()))
            .await
            .unwrap();
        let mut kv = KvClient::new(channel);
        kv.put(PutRequest {
            key: "/dev-test/k".into(),
            value: "v".into(),
            ..PutRequest::default()
        })
        .await
        .unwrap();
        kv.range(RangeRequest {
            key: "/dev-test/k".into(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs[0]
            .value
            .clone()
    });
    assert_eq!(value.as_ref(), b"v");
    dev.stop();
}

/// A tonic connector that dials the unix socket at its path whatever URI it is given.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower_service::Service<tonic::transport::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::transport::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        })
    }
}

#[test]
fn dev_without_an_api_server_authenticates_and_says_how_to_add_one() {
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dev = Dev::start(&tmp.path().join("d"), &[]);
    let banner = dev.stdout.concat();
    assert!(banner.contains("No k3s binary was found"), "{banner}");
    assert!(banner.contains("--upstream URL"), "{banner}");

    let good = dev.kubeconfig(
        "admin",
        &dev.token("sui_config/sui.keystore", "dev-stake-id", Role::Admin),
    );
    let o = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&good)
        .args(["get", "--raw", "/api"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("--k3s-bin"), "503 carries the hint: {err}");

    let bad = dev.kubeconfig("bad", "k3sdaas.garbage.token");
    let o = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&bad)
        .args(["get", "--raw", "/api"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Unauthorized") || err.contains("logged in"),
        "{err}"
    );

    let ready = dev.admin_get("/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 503"),
        "no upstream means not ready: {ready}"
    );
    assert!(dev.admin_get("/healthz").starts_with("HTTP/1.1 200"));
    dev.stop();
}

#[test]
fn dev_in_front_of_a_real_kube_apiserver() {
    let Some(peer_dir) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The apiserver keeps its state in a shim of its own; dev serves its own shim too.
    let api = ApiServerOnShim::start(&peer_dir, tmp.path(), &[]);
    let policy = tmp.path().join("tenant-policy.json");
    std::fs::write(&policy, r#"{"quota": {"count/configmaps": 7}}"#).unwrap();
    let dev = Dev::start(
        &tmp.path().join("d"),
        &["--tenant-policy".into(), policy.display().to_string()]
            .into_iter()
            .chain(api.dev_upstream_args())
            .collect::<Vec<_>>(),
    );
    assert!(!dev.stdout.concat().contains("No k3s binary"));
    let admin = dev.kubeconfig(
        "admin",
        &dev.token("sui_config/sui.keystore", "dev-stake-id", Role::Admin),
    );
    let k = |kc: &Path| {
        let mut c = Command::new(&kubectl);
        c.arg("--kubeconfig").arg(kc).arg("--request-timeout=30s");
        c
    };
    assert!(
        run_ok(k(&admin).args(["get", "namespaces", "-o", "name"])).contains("namespace/default")
    );
    let user = dev.kubeconfig(
        "user",
        &dev.token("user/sui.keystore", "dev-user-stake-id", Role::User),
    );
    let banner = dev.stdout.concat();
    let ns = banner
        .split("your namespace: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned();
    run_ok(k(&user).args([
        "-n",
        &ns,
        "create",
        "configmap",
        "hello",
        "--from-literal=a=b",
    ]));
    // The user's namespace got the quota of --tenant-policy.
    let quota = run_ok(
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&api.admin_kubeconfig)
            .args(["-n", &ns, "get", "resourcequota", "k3s-daas-quota"])
            .args(["-o", "jsonpath={.spec.hard.count/configmaps}"]),
    );
    assert_eq!(quota, "7");
    let ready = dev.admin_get("/readyz");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    dev.stop();
}

/// A tenant policy file with a typo stops `dev` before it creates or opens anything.
#[test]
fn dev_refuses_a_bad_tenant_policy_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.json");
    std::fs::write(&policy, r#"{"quota": {"count/secret": 3}}"#).unwrap();
    let data = tmp.path().join("d");
    let out = dev_command(&data)
        .arg("--tenant-policy")
        .arg(&policy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("policy.json") && err.contains("unknown field `count/secret`"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "dev started before checking its configuration"
    );
}

/// A rate limit that is not `ROLE=RATE[:BURST]` is a usage error (exit 64) naming the value,
/// before anything is created.
#[test]
fn dev_refuses_a_bad_rate_limit_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    for (arg, says) in [
        ("root=5", "ROLE=RATE[:BURST]"),
        ("admin=-1", "rate -1"),
        ("user=10:0", "burst 0"),
        ("admin=fast", "not a rate"),
    ] {
        let out = dev_command(&data)
            .arg("--rate-limit")
            .arg(arg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{arg}: {err}");
        assert!(
            err.contains("--rate-limit") && err.contains(says),
            "{arg}: {err}"
        );
    }
    assert!(
        !data.exists(),
        "dev started before checking its configuration"
    );
}

/// SIGTERM while k3s is still starting stops dev and its k3s child promptly. The child is a
/// shell stand-in for `k3s server` that never becomes ready (no k3s binary is obtainable here).
#[test]
fn sigterm_during_k3s_start_stops_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("k3s.pid");
    let fake = tmp.path().join("k3s");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 300\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = dev_command(&tmp.path().join("d"))
        .arg("--k3s-bin")
        .arg(&fake)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !pid_file.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the k3s stand-in never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let k3s_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "dev ignored SIGTERM during start-up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "dev exited with {status}");
    // The stand-in got SIGTERM from the supervisor (kill(pid, 0) fails once it is gone; a
    // zombie left to an init that does not reap still counts as stopped here).
    let stat = std::fs::read_to_string(format!("/proc/{k3s_pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    assert!(
        matches!(state, None | Some("Z")),
        "k3s stand-in still running: {stat}"
    );
}

/// An API server that would take identity from a header the proxy does not strip
/// (`X-Forwarded-Groups`) must be refused at start, not served.
#[test]
fn dev_refuses_an_api_server_that_reads_identity_from_other_headers() {
    let Some(peer_dir) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let api = ApiServerOnShim::start(
        &peer_dir,
        tmp.path(),
        &[
            ("K8S_NO_CONTROLLERS", "1"),
            (
                "K8S_APISERVER_EXTRA_ARGS",
                "--requestheader-group-headers=X-Remote-Group,X-Forwarded-Groups",
            ),
        ],
    );
    let out = dev_command(&tmp.path().join("d"))
        .args(api.dev_upstream_args())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "dev must not serve: {err}");
    assert!(err.contains("X-Forwarded-Groups"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Running"));
}

/// With a real k3s binary (`K3S_BIN`): `dev` runs `k3s server` on its etcd shim and kubectl
/// works through the proxy with Seal tokens. No k3s binary can be installed on CI machines, so
/// this skips with a printed reason unless `K3S_BIN` is set (even under `DAAS_REQUIRE_PEERS`).
#[test]
fn dev_with_real_k3s() {
    let Some(k3s) = std::env::var_os("K3S_BIN") else {
        eprintln!("SKIP: K3S_BIN is not set (no k3s binary is obtainable from the registries)");
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let k3s = PathBuf::from(k3s);
    let dev = Dev::start(
        &tmp.path().join("d"),
        &["--k3s-bin".into(), k3s.display().to_string()],
    );
    let admin = dev.kubeconfig(
        "admin",
        &dev.token("sui_config/sui.keystore", "dev-stake-id", Role::Admin),
    );
    let out = run_ok(
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&admin)
            .args(["get", "namespaces", "-o", "name"]),
    );
    assert!(out.contains("namespace/kube-system"), "{out}");
    dev.stop();
}
