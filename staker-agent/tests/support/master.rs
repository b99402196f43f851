//! A TLS stand-in for the master's `POST /join` (the real endpoint is the lead's, in
//! nautilus-master): checks the Bearer token as the master would (a fresh worker Seal token for
//! the expected stake and node, 5 minutes, never seen before) and answers as told.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use daas_join_api::{FORMAT_V1, JoinRequest, JoinResponse};
use daas_seal::{Address, Role, SealToken};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};

/// The bootstrap token's secret half and the node password the stand-in hands out: tests assert
/// they never reach stdout or stderr.
/// The cluster client CA the stand-in hands out (any PEM certificate does).
pub const CLIENT_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----\n";
pub const BOOTSTRAP_SECRET: &str = "0123456789abcdef";
pub const BOOTSTRAP_TOKEN: &str = "abcdef.0123456789abcdef";
pub const NODE_PASSWORD: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
/// The :6443 server the stand-in names.
pub const SERVER: &str = "https://127.0.0.1:6443";

/// How the stand-in answers a join whose token passed.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A valid JoinResponse, valid for 10 minutes.
    Join,
    /// A valid JoinResponse that has already expired.
    Expired,
    /// 409 with a Kubernetes Status carrying this message.
    Conflict(String),
    /// A JoinResponse whose `ca_hash` is not the CA's.
    WrongCaHash,
    /// A 200 body larger than `MAX_RESPONSE_LEN`.
    Oversized,
}

/// One join request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct SeenJoin {
    /// The Bearer token, as sent.
    pub token: String,
    pub agent: Option<daas_join_api::AgentKind>,
    /// Why the token was refused, if it was.
    pub refused: Option<String>,
}

struct Shared {
    answer: Answer,
    cluster: Address,
    stake: Address,
    signer: Address,
    node_name: String,
    ca_pem: String,
    nonces: HashSet<[u8; 16]>,
    seen: Vec<SeenJoin>,
}

/// The running stand-in (stops with its runtime on drop).
pub struct StandInMaster {
    runtime: tokio::runtime::Runtime,
    pub url: String,
    pub ca_pem: String,
    shared: Arc<Mutex<Shared>>,
}

impl StandInMaster {
    /// Serves on 127.0.0.1 (port 0) with a fresh CA; expects tokens for `stake` of `signer`
    /// in `cluster`, naming `node_name`.
    pub fn start(cluster: &str, signer: &str, stake: &str, node_name: &str) -> StandInMaster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stand-in cluster CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let ca_pem = ca.pem();
        let shared = Arc::new(Mutex::new(Shared {
            answer: Answer::Join,
            cluster: cluster.parse().unwrap(),
            stake: stake.parse().unwrap(),
            signer: signer.parse().unwrap(),
            node_name: node_name.to_owned(),
            ca_pem: ca_pem.clone(),
            nonces: HashSet::new(),
            seen: Vec::new(),
        }));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let serve_shared = shared.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let shared = serve_shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        StandInMaster {
            runtime,
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca_pem,
            shared,
        }
    }

    /// How later joins are answered.
    pub fn answer(&self, answer: Answer) {
        self.shared.lock().unwrap().answer = answer;
    }

    /// Every join request so far.
    pub fn seen(&self) -> Vec<SeenJoin> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Keeps the runtime alive as long as the stand-in (no other use).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    shared: &Mutex<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::POST || req.uri().path() != daas_join_api::PATH {
        return status(StatusCode::NOT_FOUND, "NotFound", "not found");
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let content_type_ok = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let body = Limited::new(req.into_body(), daas_join_api::MAX_REQUEST_LEN)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request: Option<JoinRequest> = serde_json::from_slice(&body).ok();
    let mut s = shared.lock().unwrap();
    let refused = check_token(&mut s, &token)
        .err()
        .or_else(|| (!content_type_ok).then(|| "not application/json".to_owned()))
        .or_else(|| request.is_none().then(|| "not a JoinRequest".to_owned()));
    s.seen.push(SeenJoin {
        token,
        agent: request.and_then(|r| r.agent),
        refused: refused.clone(),
    });
    if let Some(why) = refused {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", &why);
    }
    let now = daas_seal::unix_ms(std::time::SystemTime::now());
    let ca_hash = daas_verify_master::k3s_ca_hash(s.ca_pem.as_bytes());
    let mut response = JoinResponse {
        format: FORMAT_V1.into(),
        node_name: s.node_name.clone(),
        stake: s.stake.to_string(),
        server: SERVER.into(),
        ca_certificate: s.ca_pem.clone(),
        client_ca_certificate: CLIENT_CA.into(),
        token: format!("{ca_hash}::{BOOTSTRAP_TOKEN}"),
        ca_hash,
        bootstrap_token: BOOTSTRAP_TOKEN.into(),
        node_password: NODE_PASSWORD.into(),
        expires_at_ms: now + 10 * 60 * 1000,
    };
    let body = match &s.answer {
        Answer::Join => serde_json::to_vec(&response).unwrap(),
        Answer::Expired => {
            response.expires_at_ms = now - 1;
            serde_json::to_vec(&response).unwrap()
        }
        Answer::Conflict(message) => {
            return status(StatusCode::CONFLICT, "Conflict", message);
        }
        Answer::WrongCaHash => {
            response.ca_hash = format!("K10{}", "0".repeat(64));
            response.token = format!("{}::{BOOTSTRAP_TOKEN}", response.ca_hash);
            serde_json::to_vec(&response).unwrap()
        }
        Answer::Oversized => vec![b' '; daas_join_api::MAX_RESPONSE_LEN + 1],
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// What the master checks of a join token: signature, a worker token of the expected signer
/// for the expected stake, node and cluster, lifetime 5 minutes, unexpired, never seen.
fn check_token(s: &mut Shared, text: &str) -> Result<(), String> {
    let token = SealToken::parse(text).map_err(|e| format!("not a Seal token: {e}"))?;
    token
        .verify_signature()
        .map_err(|e| format!("bad signature: {e}"))?;
    let c = token.claims();
    let now = daas_seal::unix_ms(std::time::SystemTime::now());
    let lifetime = c.expires_at_ms.saturating_sub(c.issued_at_ms);
    let checks = [
        (c.role == Role::Worker, "not a worker token"),
        (c.cluster == s.cluster, "another cluster"),
        (c.stake == s.stake, "another stake"),
        (c.signer == s.signer, "another signer"),
        (
            c.node_name.as_ref().map(|n| n.as_str()) == Some(s.node_name.as_str()),
            "another node name",
        ),
        (lifetime == 5 * 60 * 1000, "lifetime is not 5 minutes"),
        (
            lifetime <= daas_join_api::MAX_JOIN_TOKEN_TTL_MS,
            "lifetime too long",
        ),
        (
            c.issued_at_ms <= now + 60_000 && now < c.expires_at_ms,
            "not current",
        ),
    ];
    if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return Err((*why).to_owned());
    }
    if !s.nonces.insert(c.nonce) {
        return Err("token already used".into());
    }
    Ok(())
}
