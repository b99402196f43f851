//! Attested TLS end to end on the development chain: the master's dev enclave registers through
//! the real PTB (`load_nitro_attestation` → `register_enclave`, verified by the devnet under the
//! dev root it was told to trust), and a client checks everything before pinning the CA. Then
//! each attack the check exists for: an impostor image (other PCRs), a master whose CA is not
//! the registered one, a stale document, a replayed answer, and a relay that serves the genuine
//! answer behind its own TLS certificate. Each is refused with a message naming the check.
//!
//! The "enclave" is the dev attester (`--tee dev`): the same document format and the same
//! verification path as the NSM's documents, under a dev root only these tests trust.

use std::sync::Arc;

use daas_attestation::{AttestationRequest, Attester, AttesterError, RootKind, TrustAnchor};
use daas_chain::Chain;
use daas_verify_master::{MasterCheck, VerifyMasterError, verify_master};
use nautilus_master::auth::{AuthConfig, InMemoryStakeView, SealAuthenticator};
use nautilus_master::dev_chain::DevChain;
use nautilus_master::proxy::{Proxy, ProxyConfig, ServeLimits, serve_proxy};
use nautilus_master::tee::{AttestationService, DevTee, EnclaveIdentity};

fn now_ms() -> u64 {
    daas_seal::unix_ms(std::time::SystemTime::now())
}

/// A master's front door with only the attestation endpoint (no API server behind it).
struct Master {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(
    identity: &EnclaveIdentity,
    service: Arc<AttestationService>,
    listener: tokio::net::TcpListener,
) -> Master {
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let cluster = daas_seal::Address::ZERO;
    let auth = Arc::new(SealAuthenticator::new(
        AuthConfig::new(cluster),
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
    Master { url, _stop: stop }
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// An attester that stamps its documents `age_ms` in the past (a stale document).
struct Aged {
    dev: Arc<daas_attestation::dev::DevAttester>,
    age_ms: u64,
}

impl Attester for Aged {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        self.dev.attest_at(request, now_ms() - self.age_ms)
    }
    fn describe(&self) -> String {
        "test: dev attester with an old clock".into()
    }
    fn root_kind(&self) -> RootKind {
        RootKind::Dev
    }
}

/// An attester that ignores the caller's nonce and returns one recorded document (a replay).
struct Replay(Vec<u8>);

impl Attester for Replay {
    fn attest(&self, _: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        Ok(self.0.clone())
    }
    fn describe(&self) -> String {
        "test: replays a recorded document".into()
    }
    fn root_kind(&self) -> RootKind {
        RootKind::Dev
    }
}

fn check(anchors: Vec<TrustAnchor>, url: &str) -> MasterCheck {
    MasterCheck {
        endpoint: Some(url.to_owned()),
        anchors,
        ..MasterCheck::new(now_ms())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pins_the_ca_only_after_every_check_and_refuses_each_attack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tee = DevTee::new(b"test enclave image").expect("dev tee");
    let chain = DevChain::start(
        &dir.path().join("chain"),
        "127.0.0.1:0".parse().expect("addr"),
        Some(tee.trust_anchor()),
    )
    .await
    .expect("dev chain");
    let cluster = chain.config.cluster.into_inner();
    let sans = ["127.0.0.1".to_owned()];

    // The genuine master, registered on chain.
    let identity = EnclaveIdentity::generate(&sans).expect("identity");
    let listener = bind().await;
    let endpoint = format!("https://{}", listener.local_addr().expect("addr"));
    let service = Arc::new(AttestationService::new(
        tee.attester.clone(),
        &identity,
        cluster,
        &endpoint,
    ));
    let pcrs = tee.pcrs();
    chain
        .register_enclave(&service, [&pcrs[0], &pcrs[1], &pcrs[2]], &endpoint)
        .await
        .expect("the dev enclave registers through the real PTB");
    let registered = chain.chain.cluster().await.expect("read").value.cluster;
    let enclave = registered.enclave.clone().expect("registered");
    assert_eq!(enclave.ca_sha256, identity.ca_sha256().to_vec());
    assert_eq!(enclave.endpoint, endpoint);
    let genuine = serve(&identity, service.clone(), listener).await;
    let dev_anchors = vec![TrustAnchor::aws_nitro_root_g1(), tee.trust_anchor()];

    // 1. Every check passes: the CA to pin is the registered one, the K3s hash is over its PEM.
    let verified = verify_master(&chain.chain, &check(dev_anchors.clone(), &genuine.url))
        .await
        .expect("the genuine master passes");
    assert_eq!(verified.ca_pem, identity.ca_pem());
    assert_eq!(verified.root, RootKind::Dev);
    assert_eq!(
        verified.k3s_ca_hash,
        daas_verify_master::k3s_ca_hash(identity.ca_pem().as_bytes())
    );
    // The endpoint defaults to the one registered on chain.
    let mut from_chain = check(dev_anchors.clone(), &genuine.url);
    from_chain.endpoint = None;
    verify_master(&chain.chain, &from_chain)
        .await
        .expect("reached through the registered endpoint");

    // 2. Without the dev root configured, a dev document proves nothing.
    let err = verify_master(
        &chain.chain,
        &check(vec![TrustAnchor::aws_nitro_root_g1()], &genuine.url),
    )
    .await
    .expect_err("AWS root only");
    assert!(matches!(err, VerifyMasterError::Document(_)), "{err}");

    // 3. An impostor image (other PCRs) under a trusted root.
    let impostor_tee = DevTee::new(b"another image").expect("dev tee");
    let impostor_id = EnclaveIdentity::generate(&sans).expect("identity");
    let l = bind().await;
    let impostor = serve(
        &impostor_id,
        Arc::new(AttestationService::new(
            impostor_tee.attester.clone(),
            &impostor_id,
            cluster,
            &endpoint,
        )),
        l,
    )
    .await;
    let mut anchors = dev_anchors.clone();
    anchors.push(impostor_tee.trust_anchor());
    let err = verify_master(&chain.chain, &check(anchors, &impostor.url))
        .await
        .expect_err("impostor image");
    assert!(
        matches!(err, VerifyMasterError::Policy(_)) && err.to_string().contains("PCR"),
        "{err}"
    );

    // 4. The right image, but a CA that is not the registered one (a restarted or second
    //    enclave that did not register).
    let other_id = EnclaveIdentity::generate(&sans).expect("identity");
    let other = serve(
        &other_id,
        Arc::new(AttestationService::new(
            tee.attester.clone(),
            &other_id,
            cluster,
            &endpoint,
        )),
        bind().await,
    )
    .await;
    let err = verify_master(&chain.chain, &check(dev_anchors.clone(), &other.url))
        .await
        .expect_err("unregistered CA");
    assert!(
        matches!(err, VerifyMasterError::CaNotRegistered { .. }),
        "{err}"
    );

    // 5. A stale document (10 minutes old; the client accepts 5).
    let stale = serve(
        &identity,
        Arc::new(AttestationService::new(
            Arc::new(Aged {
                dev: tee.attester.clone(),
                age_ms: 600_000,
            }),
            &identity,
            cluster,
            &endpoint,
        )),
        bind().await,
    )
    .await;
    let err = verify_master(&chain.chain, &check(dev_anchors.clone(), &stale.url))
        .await
        .expect_err("stale");
    assert!(
        matches!(err, VerifyMasterError::Policy(_)) && err.to_string().contains("old"),
        "{err}"
    );

    // 6. A replayed answer: a genuine document for someone else's nonce.
    let recorded = service
        .document(Some(vec![9; 32]))
        .await
        .expect("a genuine document");
    let replay = serve(
        &identity,
        Arc::new(AttestationService::new(
            Arc::new(Replay(recorded)),
            &identity,
            cluster,
            &endpoint,
        )),
        bind().await,
    )
    .await;
    let err = verify_master(&chain.chain, &check(dev_anchors.clone(), &replay.url))
        .await
        .expect_err("replayed");
    assert!(
        matches!(err, VerifyMasterError::Policy(_)) && err.to_string().contains("nonce"),
        "{err}"
    );

    // 7. A relay: the genuine, fresh answer for our nonce, behind the relay's own certificate.
    let relay_tls = EnclaveIdentity::generate(&sans).expect("identity");
    let relay = serve(&relay_tls, service.clone(), bind().await).await;
    let err = verify_master(&chain.chain, &check(dev_anchors.clone(), &relay.url))
        .await
        .expect_err("relay");
    assert!(
        matches!(err, VerifyMasterError::ServedCertificate { .. }),
        "{err}"
    );

    // 8. A malformed request gets a clear error from the endpoint (here: a short nonce).
    let endpoint_of = daas_verify_master::Endpoint::parse(&genuine.url).expect("endpoint");
    let err = daas_verify_master::fetch_attestation(&endpoint_of, &[0; 4])
        .await
        .expect_err("short nonce");
    assert!(
        err.to_string().contains("400") && err.to_string().contains("shorter"),
        "{err}"
    );
    chain.shutdown().await.expect("shutdown");
}
