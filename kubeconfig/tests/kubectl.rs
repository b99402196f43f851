//! Real kubectl runs our exec credential plugin and sends the minted Seal token.
//!
//! The upstream is an honest stand-in written here: a loopback HTTPS (rustls, throwaway rcgen
//! certificate pinned in the kubeconfig) HTTP/1.1 listener that records the `Authorization`
//! header of each request and answers `ok`. It stands in for the K3s-DaaS proxy, which lands
//! later. TLS matters: kubectl only runs exec credential plugins for TLS servers. kubectl is found on PATH or through `KUBECTL`; when missing the
//! test is skipped with a reason, unless `DAAS_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::thread;

use daas_seal::{Address, SealToken, TimeRules};
use daas_wallet::{Scheme, WalletKey, write_keystore};

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
    eprintln!("SKIPPED kubectl exec-plugin test: kubectl not found (set KUBECTL)");
    None
}

/// Serves up to `n` TLS connections; sends each request's Authorization header (or "") on the
/// channel. Returns the URL and the CA certificate (PEM) to pin.
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
