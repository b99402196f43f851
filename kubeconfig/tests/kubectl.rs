//! Real kubectl against kubeconfigs from this crate: it runs our exec credential plugin and
//! sends the minted Seal token, uses a generated kubeconfig in token and exec mode, reads a
//! merged kubeconfig, and refuses a server whose certificate is not the pinned one.
//!
//! The upstream is an honest stand-in written here: a loopback HTTPS (rustls, throwaway rcgen
//! certificate pinned in the kubeconfig) HTTP/1.1 listener that records the `Authorization`
//! header of each request and answers `ok`. It stands in for the K3s-DaaS proxy. TLS matters:
//! kubectl only runs exec credential plugins for TLS servers. kubectl is found on PATH or
//! through `KUBECTL`; when missing the tests are skipped with a reason, unless
//! `DAAS_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use daas_seal::{Address, SealToken, TimeRules};
use daas_wallet::{Scheme, WalletKey, write_keystore};

mod support;
use support::output_with_stdin;

fn kubectl() -> Option<String> {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    if Command::new(&bin)
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(bin);
    }
    if std::env::var("DAAS_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("DAAS_REQUIRE_PEERS=1 but kubectl ({bin}) is not runnable");
    }
    eprintln!("SKIPPED kubectl test: kubectl ({bin}) not found (set KUBECTL)");
    None
}

/// Serves up to `n` TLS connections (some kubectl builds, such as gcloud's dispatcher, probe
/// `/version` before every command, `config view` included); sends each request's
/// Authorization header (or "") on the channel. Returns the URL and the CA certificate (PEM) to
/// pin.
fn recording_upstream(n: usize) -> (String, String, mpsc::Receiver<String>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let ca_pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("key der");
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(tcp) = stream else { continue };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut auth = String::new();
            {
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("authorization:") {
                        auth = line["authorization:".len()..].trim().to_owned();
                    }
                }
            }
            let _ = tx.send(auth);
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (url, ca_pem, rx)
}

#[test]
fn kubectl_sends_a_fresh_seal_token_from_the_plugin() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = WalletKey::generate(Scheme::Ed25519);
    let keystore = dir.path().join("sui.keystore");
    write_keystore(&keystore, std::slice::from_ref(&key)).expect("keystore");
    let cluster = Address::new([0xc1; 32]);
    let stake = Address::new([0x5e; 32]);
    let (url, ca_pem, rx) = recording_upstream(16);
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca_pem).expect("ca");

    // Test fixture only; real kubeconfigs are generated from kube's types (with a pinned CA).
    let kubeconfig = format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: daas
  cluster:
    server: {url}
    certificate-authority: {ca}
contexts:
- name: daas
  context: {{cluster: daas, user: me}}
current-context: daas
users:
- name: me
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {plugin}
      args: [credential, --keystore, {keystore}, --cluster, "{cluster}", --stake, "{stake}", --role, user, --epoch, "3", --ttl, 5m]
      interactiveMode: Never
"#,
        plugin = env!("CARGO_BIN_EXE_kubeconfig"),
        keystore = keystore.display(),
        ca = ca_file.display(),
    );
    let kc = dir.path().join("config");
    std::fs::write(&kc, kubeconfig).expect("kubeconfig");

    let out = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kc.display().to_string(),
            "get",
            "--raw",
            "/healthz",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    let seen: Vec<String> = rx.try_iter().collect();
    assert!(!seen.is_empty(), "upstream saw no request");
    assert!(
        seen.iter().all(|a| a.starts_with("Bearer k3sdaas.")),
        "every request carries a Seal token"
    );
    let token = seen[0].strip_prefix("Bearer ").expect("bearer token");
    let parsed = SealToken::parse(token).expect("kubectl sent a Seal token");
    parsed.verify_signature().expect("signed by the wallet");
    let c = parsed.claims();
    assert_eq!(c.signer, key.address());
    assert_eq!((c.cluster, c.stake, c.token_epoch), (cluster, stake, 3));
    assert_eq!(c.expires_at_ms - c.issued_at_ms, 300_000);
    parsed
        .check_claims(c.issued_at_ms, &cluster, &TimeRules::default())
        .expect("valid");
}

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubeconfig");

/// Runs `kubeconfig` with `args`, feeding `stdin`; fails the test unless it succeeds.
fn kubeconfig_cli(args: &[&str], stdin: &str) -> Output {
    let out = output_with_stdin(Command::new(PLUGIN).args(args), stdin);
    assert!(
        out.status.success(),
        "kubeconfig {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// kubectl with only `kubeconfig` as configuration and a throwaway HOME (cache).
fn run_kubectl(kubectl: &str, home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .output()
        .expect("run kubectl")
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn generated_token_kubeconfig_sends_the_token_over_the_pinned_tls() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, ca_pem, rx) = recording_upstream(32);
    let ca_file = dir.path().join("tls.crt");
    std::fs::write(&ca_file, ca_pem).expect("ca");
    let kc = dir.path().join("token.yaml");
    let token = "k3sdaas.static-token-for-the-test";
    kubeconfig_cli(
        &[
            "generate",
            "--server",
            &url,
            "--ca-file",
            &ca_file.display().to_string(),
            "--name",
            "daas-token",
            "--token-stdin",
            "-o",
            &kc.display().to_string(),
        ],
        &format!("{token}\n"),
    );
    assert_eq!(mode(&kc), 0o600);

    let out = run_kubectl(&kubectl, dir.path(), &kc, &["get", "--raw", "/healthz"]);
    assert_eq!(ok_stdout(&out), "ok");
    let seen: Vec<String> = rx.try_iter().collect();
    assert!(!seen.is_empty(), "upstream saw no request");
    assert!(
        seen.iter().all(|a| *a == format!("Bearer {token}")),
        "every request carries the static token: {seen:?}"
    );
}

#[test]
fn generated_exec_kubeconfig_mints_seal_tokens() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = WalletKey::generate(Scheme::Ed25519);
    let keystore = dir.path().join("sui.keystore");
    write_keystore(&keystore, std::slice::from_ref(&key)).expect("keystore");
    let cluster = Address::new([0xc2; 32]);
    let stake = Address::new([0x5f; 32]);
    let (url, ca_pem, rx) = recording_upstream(32);
    let ca_file = dir.path().join("tls.crt");
    std::fs::write(&ca_file, ca_pem).expect("ca");
    let kc = dir.path().join("exec.yaml");
    kubeconfig_cli(
        &[
            "generate",
            "--server",
            &url,
            "--ca-file",
            &ca_file.display().to_string(),
            "--exec",
            "--cluster",
            &cluster.to_string(),
            "--stake",
            &stake.to_string(),
            "--role",
            "admin",
            "--keystore",
            &keystore.display().to_string(),
            "--epoch",
            "7",
            "--ttl",
            "2m",
            "-o",
            &kc.display().to_string(),
        ],
        "",
    );
    assert_eq!(mode(&kc), 0o600);

    let out = run_kubectl(&kubectl, dir.path(), &kc, &["get", "--raw", "/healthz"]);
    assert_eq!(ok_stdout(&out), "ok");
    let seen: Vec<String> = rx.try_iter().collect();
    let token = seen
        .first()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token");
    let parsed = SealToken::parse(token).expect("kubectl sent a Seal token");
    parsed.verify_signature().expect("signed by the wallet");
    let c = parsed.claims();
    assert_eq!(c.signer, key.address());
    assert_eq!((c.cluster, c.stake, c.token_epoch), (cluster, stake, 7));
    assert_eq!(c.role, daas_seal::Role::Admin);
    assert_eq!(c.expires_at_ms - c.issued_at_ms, 120_000);
}

#[test]
fn kubectl_reads_the_merged_kubeconfig() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, ca_pem, rx) = recording_upstream(64);
    let ca_file = dir.path().join("tls.crt");
    std::fs::write(&ca_file, ca_pem).expect("ca");
    let key = WalletKey::generate(Scheme::Ed25519);
    let keystore = dir.path().join("sui.keystore");
    write_keystore(&keystore, std::slice::from_ref(&key)).expect("keystore");

    // The user's kubeconfig, written by kubectl itself.
    let main = dir.path().join("kube/config");
    std::fs::create_dir(dir.path().join("kube")).expect("dir");
    for args in [
        &[
            "config",
            "set-cluster",
            "other",
            "--server=https://other.example:6443",
        ][..],
        &["config", "set-credentials", "other", "--token=other-token"],
        &[
            "config",
            "set-context",
            "other",
            "--cluster=other",
            "--user=other",
        ],
        &["config", "use-context", "other"],
    ] {
        ok_stdout(&run_kubectl(&kubectl, dir.path(), &main, args));
    }

    let token_kc = dir.path().join("token.yaml");
    let exec_kc = dir.path().join("exec.yaml");
    let ca = ca_file.display().to_string();
    kubeconfig_cli(
        &[
            "generate",
            "--server",
            &url,
            "--ca-file",
            &ca,
            "--name",
            "daas-token",
            "--namespace",
            "team-a",
            "--token-stdin",
            "-o",
            &token_kc.display().to_string(),
        ],
        "k3sdaas.merged-static-token",
    );
    kubeconfig_cli(
        &[
            "generate",
            "--server",
            &url,
            "--ca-file",
            &ca,
            "--name",
            "daas-exec",
            "--exec",
            "--cluster",
            &Address::new([0xc3; 32]).to_string(),
            "--stake",
            &Address::new([0x60; 32]).to_string(),
            "--keystore",
            &keystore.display().to_string(),
            "-o",
            &exec_kc.display().to_string(),
        ],
        "",
    );
    let into = main.display().to_string();
    kubeconfig_cli(
        &[
            "merge",
            "--from",
            &token_kc.display().to_string(),
            "--into",
            &into,
        ],
        "",
    );
    // From stdin, selected as the current context.
    let exec_yaml = std::fs::read_to_string(&exec_kc).expect("exec kubeconfig");
    kubeconfig_cli(
        &["merge", "--from", "-", "--into", &into, "--set-current"],
        &exec_yaml,
    );
    assert_eq!(mode(&main), 0o600);
    assert!(dir.path().join("kube/config.bak").exists());

    let view = |jsonpath: &str| {
        ok_stdout(&run_kubectl(
            &kubectl,
            dir.path(),
            &main,
            &["config", "view", "-o", &format!("jsonpath={jsonpath}")],
        ))
    };
    // kubectl lists entries sorted by name.
    for list in ["contexts", "clusters", "users"] {
        assert_eq!(
            view(&format!("{{.{list}[*].name}}")),
            "daas-exec daas-token other",
            "{list}"
        );
    }
    assert_eq!(view("{.current-context}"), "daas-exec");
    assert_eq!(
        view("{.contexts[?(@.name==\"daas-token\")].context.namespace}"),
        "team-a"
    );
    assert_eq!(
        view("{.clusters[?(@.name==\"other\")].cluster.server}"),
        "https://other.example:6443"
    );
    // kubectl's own redaction applies to what we wrote.
    let plain = ok_stdout(&run_kubectl(
        &kubectl,
        dir.path(),
        &main,
        &["config", "view"],
    ));
    assert!(!plain.contains("merged-static-token") && !plain.contains("other-token"));
    assert!(plain.contains("DATA+OMITTED"), "{plain}");

    // Both DaaS contexts reach the stand-in through the merged file.
    for context in ["daas-token", "daas-exec"] {
        let out = run_kubectl(
            &kubectl,
            dir.path(),
            &main,
            &["--context", context, "get", "--raw", "/healthz"],
        );
        assert_eq!(ok_stdout(&out), "ok", "{context}");
    }
    let seen: Vec<String> = rx.try_iter().collect();
    assert!(seen.contains(&"Bearer k3sdaas.merged-static-token".to_owned()));
    assert!(
        seen.iter()
            .any(|a| a.starts_with("Bearer k3sdaas.") && a.len() > 100)
    );
}

#[test]
fn kubectl_refuses_a_server_outside_the_pin() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, _served_ca, rx) = recording_upstream(32);
    // A different certificate for the same address: what an impostor would present.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let ca_file = dir.path().join("other.crt");
    std::fs::write(&ca_file, other.cert.pem()).expect("ca");
    let kc = dir.path().join("pinned.yaml");
    kubeconfig_cli(
        &[
            "generate",
            "--server",
            &url,
            "--ca-file",
            &ca_file.display().to_string(),
            "--token-stdin",
            "-o",
            &kc.display().to_string(),
        ],
        "k3sdaas.must-not-leak",
    );
    let out = run_kubectl(&kubectl, dir.path(), &kc, &["get", "--raw", "/healthz"]);
    assert!(
        !out.status.success(),
        "kubectl trusted an unpinned certificate"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate signed by unknown authority")
            || stderr.contains("failed to verify certificate"),
        "not a certificate error: {stderr}"
    );
    // The stand-in saw the connection, but no request and so no token.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("kubectl connected");
    assert_eq!(first, "", "no Authorization header reached the impostor");
    assert!(rx.try_iter().all(|a| a.is_empty()));
}
