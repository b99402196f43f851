//! `kubeconfig generate --attested` as a user runs it: against a master whose dev enclave is
//! registered on the development chain, it pins exactly the attested CA; against an impostor
//! image it writes nothing and says which check failed.

use std::process::Command;
use std::sync::Arc;

use nautilus_master::auth::{AuthConfig, InMemoryStakeView, SealAuthenticator};
use nautilus_master::dev_chain::DevChain;
use nautilus_master::proxy::{Proxy, ProxyConfig, ServeLimits, serve_proxy};
use nautilus_master::tee::{AttestationService, DevTee, EnclaveIdentity};

const BIN: &str = env!("CARGO_BIN_EXE_kubeconfig");

/// Serves only `GET /attestation` for `service`, with `identity`'s certificate.
async fn serve(
    identity: &EnclaveIdentity,
    service: Arc<AttestationService>,
    listener: tokio::net::TcpListener,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let auth = Arc::new(SealAuthenticator::new(
        AuthConfig::new(daas_seal::Address::ZERO),
        Arc::new(InMemoryStakeView::default()),
    ));
    let proxy = Proxy::new(
        ProxyConfig {
            attestation: Some(service),
            bootstrap_rbac: false,
            ..ProxyConfig::default()
        },
        auth,
    )
    .expect("proxy");
    let tls = identity.server_cert().server_config().expect("tls");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_proxy(
        proxy,
        listener,
        Some(tls),
        ServeLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_attested_pins_the_registered_ca_and_refuses_an_impostor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tee = DevTee::new(b"kubeconfig test image").expect("dev tee");
    let chain = DevChain::start(
        &dir.path().join("chain"),
        "127.0.0.1:0".parse().expect("addr"),
        Some(tee.trust_anchor()),
    )
    .await
    .expect("dev chain");
    let cluster = chain.config.cluster;
    let identity = EnclaveIdentity::generate(&["127.0.0.1".to_owned()]).expect("identity");
    // Register with the endpoint the master will serve on.
    let listener = bind().await;
    let endpoint = format!("https://{}", listener.local_addr().expect("addr"));
    let service = Arc::new(AttestationService::new(
        tee.attester.clone(),
        &identity,
        cluster.into_inner(),
        &endpoint,
    ));
    let pcrs = tee.pcrs();
    chain
        .register_enclave(&service, [&pcrs[0], &pcrs[1], &pcrs[2]], &endpoint)
        .await
        .expect("register");
    let (url, _stop) = serve(&identity, service, listener).await;
    let dev_root = dir.path().join("dev-root.pem");
    std::fs::write(&dev_root, &tee.root_pem).expect("write");

    let generate = |server: &str, out: &std::path::Path| {
        let mut c = Command::new(BIN);
        c.args([
            "generate",
            "--attested",
            "--token-stdin",
            "--server",
            server,
        ])
        .arg("--chain-config")
        .arg(chain.client_config_path())
        .arg("--cluster")
        .arg(cluster.to_string())
        .arg("--dev-root")
        .arg(&dev_root)
        .arg("-o")
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("run kubeconfig");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"a-token")
            .expect("token");
        child.wait_with_output().expect("output")
    };

    // The genuine master: the CA in the written kubeconfig is the attested one.
    let out = dir.path().join("ok.kubeconfig");
    let result = tokio::task::block_in_place(|| generate(&url, &out));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("DEV"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&out).expect("kubeconfig");
    let ca_b64 = base64_std(identity.ca_pem().as_bytes());
    assert!(written.contains(&ca_b64), "the attested CA is pinned");
    assert!(written.contains(&endpoint));

    // An impostor image (other PCRs) at another address: refused, nothing written.
    let impostor_tee = DevTee::new(b"impostor").expect("dev tee");
    let impostor_id = EnclaveIdentity::generate(&["127.0.0.1".to_owned()]).expect("identity");
    let (impostor_url, _stop2) = serve(
        &impostor_id,
        Arc::new(AttestationService::new(
            impostor_tee.attester.clone(),
            &impostor_id,
            cluster.into_inner(),
            &endpoint,
        )),
        bind().await,
    )
    .await;
    let out = dir.path().join("refused.kubeconfig");
    let result = tokio::task::block_in_place(|| generate(&impostor_url, &out));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was pinned"), "{stderr}");
    assert!(!out.exists(), "no kubeconfig written for a refused master");
    chain.shutdown().await.expect("shutdown");
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

fn base64_std(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}
