//! Tenants stay in their box, against a real kube-apiserver v1.36 behind the proxy:
//! - no Service `externalIPs` (CVE-2020-8554) for anyone but cluster admins, no LoadBalancer or
//!   NodePort Services for tenants: the master's ValidatingAdmissionPolicy on an API server
//!   without the `DenyServiceExternalIPs` plugin, and the plugin with the exact
//!   `enable-admission-plugins` value `k3s server` gets;
//! - each user namespace has a ResourceQuota (creates beyond it are refused by the API server),
//!   a LimitRange (pods that say nothing get limits) and the default NetworkPolicy;
//! - a namespace that names another owner is never adopted (403), a terminating one gets 503,
//!   and neither holds up another user's onboarding;
//! - operator edits to the cluster-wide and per-user objects survive a master restart.
//!
//! Needs the peer from `../shared/peers/k8s` (`DAAS_K8S_PEER_DIR`) and `kubectl`; skipped with
//! a printed reason otherwise, required with `DAAS_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use daas_seal::Role;
use nautilus_master::k3s::ADMISSION_PLUGINS;
use nautilus_master::proxy::rbac::{RbacError, RbacPolicy, TenantPolicy, user_namespace};
use nautilus_master::proxy::{Proxy, ProxyConfig};
use support::proxy::{RunningProxy, Staker, peer_upstream};
use support::upstream::{Conn, client_config};
use support::{ApiServerOnShim, peer, run_ok};

/// `cmd` with `input` on stdin; its output.
fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `cmd` with `input` on stdin, which must succeed; its stdout.
fn ok_with_stdin(cmd: &mut Command, input: &str) -> String {
    let o = with_stdin(cmd, input);
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One kube-apiserver (on its own etcd shim) and kubectl.
struct Cluster {
    kubectl: PathBuf,
    api: ApiServerOnShim,
    tmp: tempfile::TempDir,
}

impl Cluster {
    /// `None` (skipped) without the peer or kubectl.
    fn start(apiserver_args: &str) -> Option<Self> {
        let peer_dir = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset")?;
        let kubectl = peer("KUBECTL", "kubectl")?;
        let tmp = tempfile::tempdir().unwrap();
        let env: &[(&str, &str)] = if apiserver_args.is_empty() {
            &[]
        } else {
            &[("K8S_APISERVER_EXTRA_ARGS", apiserver_args)]
        };
        let api = ApiServerOnShim::start(&peer_dir, tmp.path(), env);
        Some(Cluster { kubectl, api, tmp })
    }

    /// A master (proxy) in front of the API server; `name` keeps its files apart.
    fn master(&self, name: &str, rbac: RbacPolicy) -> RunningProxy {
        let config = ProxyConfig {
            upstream: Some(peer_upstream(&self.api.url(), &self.api.pki())),
            rbac,
            ..ProxyConfig::default()
        };
        RunningProxy::start(&self.tmp.path().join(name), config)
    }

    /// kubectl with `kubeconfig`.
    fn kubectl(&self, kubeconfig: &Path) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=30s");
        c
    }

    /// kubectl as the API server's own admin (system:masters, not through the proxy).
    fn operator(&self) -> Command {
        self.kubectl(&self.api.admin_kubeconfig)
    }

    /// kubectl through `proxy` as `staker`, in namespace `ns`.
    fn through(&self, proxy: &RunningProxy, staker: &Staker, ns: &str) -> Command {
        let name = format!(
            "{}-{}",
            staker.role.as_str(),
            &staker.address().to_string()[2..10]
        );
        let kc = proxy.kubeconfig(
            self.tmp.path(),
            &name,
            &staker.token(proxy.cluster, 0),
            Some(ns),
        );
        self.kubectl(&kc)
    }

    /// `kubectl get -o json` as the operator.
    fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let out = run_ok(self.operator().args(["get", "-o", "json"]).args(args));
        serde_json::from_str(&out).unwrap()
    }
}

/// One raw GET through the proxy (kubectl would retry a 503 with `Retry-After` on its own):
/// status, `Retry-After`, and the `Status` message.
fn raw_get(proxy: &RunningProxy, staker: &Staker, path: &str) -> (u16, Option<String>, String) {
    let token = staker.token(proxy.cluster, 0);
    proxy.runtime.block_on(async {
        let conn = Conn::connect(proxy.addr, client_config(&proxy.ca_pem, None, &[]), false).await;
        let (status, headers, body) = conn.get(&proxy.url, path, Some(&token)).await;
        let retry = headers
            .get(http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let msg = v["message"].as_str().unwrap_or_default().to_owned();
        (status.as_u16(), retry, msg)
    })
}

fn service(name: &str, spec: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}"}},
            "spec":{{"ports":[{{"port":80}}]{spec}}}}}"#
    )
}

/// A `List` of `n` small Secrets `s0`…
fn secrets(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"s{i}"}},"stringData":{{"k":"v"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#,
        items.join(",")
    )
}

/// On an API server without the `DenyServiceExternalIPs` plugin (what `--upstream` may put
/// behind the proxy): the master's admission policy, the namespace quota, limits and network
/// policy.
#[test]
fn tenants_stay_in_their_box() {
    let Some(c) = Cluster::start("") else {
        return;
    };
    let tenant = TenantPolicy::from_json(r#"{"quota": {"count/secrets": 3}}"#).unwrap();
    let proxy = c.master(
        "master",
        RbacPolicy {
            tenant,
            ..RbacPolicy::default()
        },
    );
    let user = proxy.staker(Role::User);
    let admin = proxy.staker(Role::Admin);
    let ns = user_namespace(&user.address());
    let u = || c.through(&proxy, &user, &ns);

    // The first request sets the namespace up and already succeeds (quota counted, binding
    // effective).
    run_ok(u().args(["create", "configmap", "first", "--from-literal=a=b"]));

    // H5: no external IPs, LoadBalancer or NodePort for a tenant; ClusterIP is fine.
    let o = with_stdin(
        u().args(["create", "-f", "-"]),
        &service("hijack", r#","externalIPs":["192.0.2.10"]"#),
    );
    assert!(!o.status.success(), "externalIPs accepted: {}", text(&o));
    assert!(
        text(&o).contains("k3s-daas-service-exposure") && text(&o).contains("CVE-2020-8554"),
        "{}",
        text(&o)
    );
    for kind in ["LoadBalancer", "NodePort"] {
        let o = with_stdin(
            u().args(["create", "-f", "-"]),
            &service("exposed", &format!(r#","type":"{kind}""#)),
        );
        assert!(!o.status.success(), "{kind} accepted: {}", text(&o));
        assert!(text(&o).contains("not available in user"), "{}", text(&o));
    }
    ok_with_stdin(u().args(["create", "-f", "-"]), &service("web", ""));
    // On update, addresses a Service already has may stay (as with the plugin); new ones not.
    ok_with_stdin(
        c.operator().args(["-n", &ns, "create", "-f", "-"]),
        &service("legacy", r#","externalIPs":["192.0.2.20"]"#),
    );
    run_ok(u().args(["label", "service", "legacy", "touched=yes"]));
    let o = u()
        .args([
            "patch",
            "service",
            "legacy",
            "--type=merge",
            "-p",
            r#"{"spec":{"externalIPs":["192.0.2.20","192.0.2.21"]}}"#,
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "new external IP accepted: {}",
        text(&o)
    );
    assert!(text(&o).contains("CVE-2020-8554"), "{}", text(&o));
    // A cluster admin may still set external IPs (no plugin on this API server).
    let a = || c.through(&proxy, &admin, "default");
    ok_with_stdin(
        a().args(["create", "-f", "-"]),
        &service("by-admin", r#","externalIPs":["192.0.2.11"]"#),
    );

    // H6: the quota and limits exist and the owner may read them.
    let quota = c.get_json(&["-n", &ns, "resourcequota", "k3s-daas-quota"]);
    let hard = &quota["spec"]["hard"];
    assert_eq!(hard["count/secrets"], "3");
    assert_eq!(hard["services.nodeports"], "0");
    assert_eq!(hard["services.loadbalancers"], "0");
    assert_eq!(hard["limits.memory"], "16Gi");
    let limits = c.get_json(&["-n", &ns, "limitrange", "k3s-daas-limits"]);
    assert_eq!(limits["spec"]["limits"][0]["default"]["cpu"], "500m");
    assert_eq!(limits["spec"]["limits"][0]["max"]["memory"], "4Gi");
    run_ok(u().args(["get", "resourcequota,limitrange"]));
    // Beyond the quota the API server refuses: 3 of 5 Secrets are created.
    let o = with_stdin(u().args(["create", "-f", "-"]), &secrets(5));
    let out = text(&o);
    assert_eq!(out.matches("created").count(), 3, "{out}");
    assert_eq!(
        out.matches("exceeded quota: k3s-daas-quota").count(),
        2,
        "{out}"
    );
    // A pod that names no resources gets the LimitRange's, so the quota's compute limits can
    // be met (no node here: it stays Pending).
    run_ok(u().args([
        "run",
        "p",
        "--image=localhost/k3s-daas/busybox:peer",
        "--restart=Never",
    ]));
    let pod = c.get_json(&["-n", &ns, "pod", "p"]);
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m", "{resources}");
    assert_eq!(resources["requests"]["memory"], "128Mi", "{resources}");

    // The default NetworkPolicy: same-namespace ingress, no link-local egress; read-only for
    // the owner (network policies only ever add allowed traffic).
    let np = c.get_json(&["-n", &ns, "networkpolicy", "k3s-daas-default"]);
    let spec = &np["spec"];
    assert_eq!(spec["podSelector"], serde_json::json!({}));
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{"from": [{"podSelector": {}}]}])
    );
    let egress = spec["egress"].to_string();
    for cidr in ["169.254.0.0/16", "fd00:ec2::254/128", "fe80::/10"] {
        assert!(egress.contains(cidr), "{egress}");
    }
    run_ok(u().args(["get", "networkpolicy", "k3s-daas-default"]));
    let o = u()
        .args(["delete", "networkpolicy", "k3s-daas-default"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "owner deleted the default policy");
    assert!(text(&o).contains("forbidden"), "{}", text(&o));
}

/// On an API server with the admission plugins `k3s server` gets: the plugin refuses external
/// IPs even for admins. Namespaces that are not the user's, or are going away, are refused
/// without holding up anyone else; operator edits survive a master restart.
#[test]
fn namespace_setup_edge_cases() {
    let flag = format!("--enable-admission-plugins={ADMISSION_PLUGINS}");
    let Some(c) = Cluster::start(&flag) else {
        return;
    };
    let proxy = c.master("master", RbacPolicy::default());
    let admin = proxy.staker(Role::Admin);

    // DenyServiceExternalIPs (as K3s runs it) refuses even a cluster admin.
    let o = with_stdin(
        c.through(&proxy, &admin, "default")
            .args(["create", "-f", "-"]),
        &service("by-admin", r#","externalIPs":["192.0.2.10"]"#),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("externalIPs") && text(&o).contains("admission"),
        "{}",
        text(&o)
    );

    // A namespace of the user's name that names another owner is never adopted: 403 on every
    // request, nothing created in it.
    let squatted = proxy.staker(Role::User);
    let squatted_ns = user_namespace(&squatted.address());
    ok_with_stdin(
        c.operator().args(["create", "-f", "-"]),
        &format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{squatted_ns}",
                "annotations":{{"k3s-daas.io/owner":"0x{}"}}}}}}"#,
            "ab".repeat(32)
        ),
    );
    let path = format!("/api/v1/namespaces/{squatted_ns}/configmaps");
    for _ in 0..2 {
        let (code, retry, msg) = raw_get(&proxy, &squatted, &path);
        assert_eq!((code, retry), (403, None), "{msg}");
        assert!(msg.contains("not yours"), "{msg}");
    }
    let left = run_ok(c.operator().args([
        "-n",
        &squatted_ns,
        "get",
        "rolebindings,resourcequotas",
        "-o",
        "name",
    ]));
    assert!(left.trim().is_empty(), "adopted: {left}");

    // A namespace stuck in Terminating: 503 with Retry-After, remembered (backoff).
    let doomed = proxy.staker(Role::User);
    let doomed_ns = user_namespace(&doomed.address());
    ok_with_stdin(
        c.operator().args(["create", "-f", "-"]),
        &format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{doomed_ns}",
                "annotations":{{"k3s-daas.io/owner":"{}"}},
                "finalizers":["k3s-daas.test/hold"]}}}}"#,
            doomed.address()
        ),
    );
    run_ok(
        c.operator()
            .args(["delete", "namespace", &doomed_ns, "--wait=false"]),
    );
    let path = format!("/api/v1/namespaces/{doomed_ns}/configmaps");
    let (code, retry, msg) = raw_get(&proxy, &doomed, &path);
    assert_eq!(code, 503, "{msg}");
    assert!(retry.is_some() && msg.contains("being deleted"), "{msg}");

    // Meanwhile another user is onboarded as usual.
    let other = proxy.staker(Role::User);
    let other_ns = user_namespace(&other.address());
    run_ok(c.through(&proxy, &other, &other_ns).args([
        "create",
        "configmap",
        "x",
        "--from-literal=a=b",
    ]));
    let (code, _, msg) = raw_get(&proxy, &squatted, "/api");
    assert_eq!(code, 403, "still refused: {msg}");

    // An existing namespace that is the user's but lost its Pod Security label gets it back.
    let adoptee = proxy.staker(Role::User);
    let adoptee_ns = user_namespace(&adoptee.address());
    ok_with_stdin(
        c.operator().args(["create", "-f", "-"]),
        &format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{adoptee_ns}",
                "annotations":{{"k3s-daas.io/owner":"{}"}}}}}}"#,
            adoptee.address()
        ),
    );
    run_ok(
        c.through(&proxy, &adoptee, &adoptee_ns)
            .args(["get", "configmaps"]),
    );
    let ns = c.get_json(&["namespace", &adoptee_ns]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );

    // Operator edits: the admin binding's subjects removed, a service rule dropped from the
    // owner role, the policy binding switched to warnings, a user's quota raised.
    run_ok(c.operator().args([
        "patch",
        "clusterrolebinding",
        "k3s-daas:admin",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/subjects"}]"#,
    ]));
    run_ok(c.operator().args([
        "patch",
        "clusterrole",
        "k3s-daas:namespace-owner",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/rules/1"}]"#,
    ]));
    run_ok(c.operator().args([
        "patch",
        "validatingadmissionpolicybinding",
        "k3s-daas-service-exposure",
        "--type=merge",
        "-p",
        r#"{"spec":{"validationActions":["Warn"]}}"#,
    ]));
    run_ok(c.operator().args([
        "-n",
        &other_ns,
        "patch",
        "resourcequota",
        "k3s-daas-quota",
        "--type=merge",
        "-p",
        r#"{"spec":{"hard":{"count/secrets":"99"}}}"#,
    ]));
    let role_before = c.get_json(&["clusterrole", "k3s-daas:namespace-owner"])["rules"].clone();
    drop(proxy);

    // Restart: a new master process bootstraps again; the other user's first request there
    // sets up their namespace again.
    let proxy = c.master("restarted", RbacPolicy::default());
    proxy.enroll(&other);
    run_ok(
        c.through(&proxy, &other, &other_ns)
            .args(["get", "configmaps"]),
    );
    let binding = c.get_json(&["clusterrolebinding", "k3s-daas:admin"]);
    assert!(binding.get("subjects").is_none(), "reverted: {binding}");
    let role = c.get_json(&["clusterrole", "k3s-daas:namespace-owner"]);
    assert_eq!(role["rules"], role_before, "owner role reverted");
    let vapb = c.get_json(&[
        "validatingadmissionpolicybinding",
        "k3s-daas-service-exposure",
    ]);
    assert_eq!(
        vapb["spec"]["validationActions"],
        serde_json::json!(["Warn"])
    );
    let quota = c.get_json(&["-n", &other_ns, "resourcequota", "k3s-daas-quota"]);
    assert_eq!(
        quota["spec"]["hard"]["count/secrets"], "99",
        "quota reverted"
    );
    drop(proxy);

    // With the admin binding turned off, a deleted binding stays deleted.
    run_ok(
        c.operator()
            .args(["delete", "clusterrolebinding", "k3s-daas:admin"]),
    );
    let proxy = c.master(
        "no-admin-binding",
        RbacPolicy {
            admin_binding: false,
            ..RbacPolicy::default()
        },
    );
    let o = c
        .operator()
        .args(["get", "clusterrolebinding", "k3s-daas:admin"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "recreated: {}", text(&o));
    let admin = proxy.staker(Role::Admin);
    let o = c
        .through(&proxy, &admin, "default")
        .args(["get", "pods"])
        .output()
        .unwrap();
    assert!(text(&o).contains("forbidden"), "{}", text(&o));

    // A tenant policy the API server refuses (a default limit above the maximum) fails the
    // bootstrap, before anyone is served.
    let tenant =
        TenantPolicy::from_json(r#"{"limitRange": {"container.default.cpu": "3"}}"#).unwrap();
    let config = ProxyConfig {
        upstream: Some(peer_upstream(&c.api.url(), &c.api.pki())),
        rbac: RbacPolicy {
            tenant,
            ..RbacPolicy::default()
        },
        ..ProxyConfig::default()
    };
    let auth = proxy.proxy.authenticator().clone();
    let err = proxy.runtime.block_on(async {
        let bad = Proxy::new(config, auth).unwrap();
        bad.bootstrap().await.unwrap_err()
    });
    assert!(
        matches!(
            err,
            RbacError::TenantPolicyRejected {
                kind: "LimitRange",
                ..
            }
        ),
        "{err}"
    );
}
