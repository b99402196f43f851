//! The :6443 front for K3s agents and kubelets.
//!
//! TLS is terminated here with a certificate from the enclave's attested CA (so the `K10…` hash
//! agents pin is the attested one), and client certificates are checked against the cluster's
//! client CA. Then each request is judged on its own:
//!
//! | credential | accepted while |
//! |---|---|
//! | none | only `GET /cacerts` and `GET /ping`, answered here |
//! | bootstrap token `<id>.<secret>` | outstanding, unexpired, `k3s-Node-Name` (required on the kubelet-certificate endpoints) is its node, record stands |
//! | client certificate `system:node:<n>` (O `system:nodes`) | `n` is bound and its record stands |
//! | a JWS-shaped bearer token (a pod's service-account token) | passed through: the API server judges it (no request-header identity is added) |
//! | anything else (Seal tokens, other certificates) | never: users go to :8080 |
//!
//! An accepted node credential's `GET /v1-k3s/server-ca.crt` is answered here with the CA the
//! front serves under (agents use it to reach the API through the front).
//! Server-only K3s endpoints, `/static/` and `CONNECT` are refused whoever asks. Accepted
//! requests go upstream with request-header identity (as on :8080), and long-running ones
//! (watches, the agent tunnel) are sessions that end when the record lapses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use rustls::pki_types::CertificateDer;
use tracing::info;

use super::tokens::BootstrapToken;
use super::{NodeRefusal, Workers};
use crate::auth::StakeView;
use crate::proxy::{ClientCert, Credential, Proxy, ProxyBody, status};

/// Paths of K3s's supervisor that only servers may use, and other paths never served here.
const BLOCKED_PREFIXES: &[&str] = &[
    "/v1-k3s/server-bootstrap",
    "/v1-k3s/token",
    "/v1-k3s/encrypt",
    "/v1-k3s/cert/",
    "/static/",
];
/// The header K3s agents send their node name in (cert requests).
const NODE_NAME_HEADER: &str = "k3s-node-name";
/// K3s endpoints that issue a node's own kubelet certificates: a bootstrap token must name its
/// node on them (K3s binds the name with the node password on exactly these).
const NODE_CERT_PATHS: &[&str] = &["/v1-k3s/serving-kubelet.crt", "/v1-k3s/client-kubelet.crt"];
/// K3s's server CA as agents fetch it: answered with the CA this front serves under (the
/// attested one), the CA the agent's kubeconfigs must trust to reach the API through here.
const SERVER_CA_PATH: &str = "/v1-k3s/server-ca.crt";
/// How often a refusal of the same node is written to the audit log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The front: the workers' judgement, then the proxy's forwarding.
pub struct NodeFront<V> {
    proxy: Arc<Proxy<V>>,
    workers: Arc<Workers<V>>,
    logged: Mutex<HashMap<String, Instant>>,
}

impl<V: StakeView + 'static> NodeFront<V> {
    pub fn new(proxy: Arc<Proxy<V>>, workers: Arc<Workers<V>>) -> Arc<Self> {
        Arc::new(NodeFront {
            proxy,
            workers,
            logged: Mutex::new(HashMap::new()),
        })
    }

    /// Answers one request at :6443.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let path = req.uri().path().to_owned();
        if req.method() == Method::CONNECT || BLOCKED_PREFIXES.iter().any(|p| path.starts_with(p)) {
            self.workers.metrics.front("refused", "blocked_path");
            return status::response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "this endpoint is not served at :6443",
            );
        }
        if req.method() == Method::GET && path == "/cacerts" {
            self.workers.metrics.front("allowed", "cacerts");
            return status::with_body(StatusCode::OK, self.workers.ca_pem.clone(), "text/plain");
        }
        if req.method() == Method::GET && path == "/ping" {
            return status::with_body(StatusCode::OK, "pong", "text/plain");
        }
        // Before the verdict: a re-check from here on may miss this request's session.
        let rechecks = self.proxy.session_changes();
        let judged = match (req.extensions().get::<ClientCert>(), bearer(&req)) {
            (Some(cert), _) => match node_of_certificate(&cert.0) {
                Ok(node) => (node.clone(), self.workers.node_identity(&node).await),
                Err(msg) => {
                    self.workers.metrics.front("refused", "not_a_node");
                    return status::response(StatusCode::FORBIDDEN, "Forbidden", &msg);
                }
            },
            (None, Some(token)) => match BootstrapToken::parse(token) {
                Some(token) => {
                    let claimed = req
                        .headers()
                        .get(NODE_NAME_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if claimed.is_none() && NODE_CERT_PATHS.contains(&path.as_str()) {
                        self.workers.metrics.front("refused", "no_node_name");
                        return status::response(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "kubelet certificates are issued for a named node: send k3s-Node-Name",
                        );
                    }
                    (
                        format!("bootstrap:{}", token.id()),
                        self.workers
                            .bootstrap_identity(&token, claimed.as_deref())
                            .await,
                    )
                }
                None if looks_like_jwt(token) => {
                    // A pod's service-account token (in-cluster clients reach the API through
                    // the `kubernetes` Service, which points here): the API server judges it.
                    // A token bound to a pod on a node names that node: it is judged like the
                    // node (a revoked node's pods are refused, and their streams end with it).
                    let bucket = passthrough_name(token);
                    let identity = match token_node(token) {
                        Some(node) => match self.workers.node_identity(&node).await {
                            Ok(node_identity) => Arc::new(crate::auth::Identity {
                                username: bucket,
                                ..(*node_identity).clone()
                            }),
                            Err(refusal) => {
                                return self.refuse(&format!("pods-of:{node}"), &refusal, remote);
                            }
                        },
                        None => unbound_passthrough(bucket),
                    };
                    self.workers.metrics.front("passed", "service_account");
                    return self
                        .proxy
                        .forward_as(req, identity, Credential::Passthrough, remote, rechecks)
                        .await;
                }
                None => {
                    self.workers
                        .metrics
                        .front("refused", "not_a_node_credential");
                    return status::response(
                        StatusCode::UNAUTHORIZED,
                        "Unauthorized",
                        ":6443 accepts node certificates, join bootstrap tokens and pods' service-account tokens; kubectl users connect to :8080",
                    );
                }
            },
            (None, None) => {
                self.workers.metrics.front("refused", "anonymous");
                return status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "a node certificate or a join bootstrap token is required",
                );
            }
        };
        let identity = match judged {
            (_, Ok(identity)) => identity,
            (who, Err(refusal)) => return self.refuse(&who, &refusal, remote),
        };
        self.workers.metrics.front("allowed", "ok");
        if req.method() == Method::GET && path == SERVER_CA_PATH {
            return status::with_body(StatusCode::OK, self.workers.ca_pem.clone(), "text/plain");
        }
        self.proxy
            .forward_as(req, identity, Credential::Identity, remote, rechecks)
            .await
    }

    fn refuse(&self, who: &str, refusal: &NodeRefusal, remote: SocketAddr) -> Response<ProxyBody> {
        self.workers.metrics.front("refused", refusal.reason());
        let now = Instant::now();
        let log = {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            if logged.len() > 10_000 {
                logged.retain(|_, at| now.duration_since(*at) < REFUSAL_LOG_EVERY);
            }
            match logged.get(who) {
                Some(at) if now.duration_since(*at) < REFUSAL_LOG_EVERY => false,
                _ => {
                    logged.insert(who.to_owned(), now);
                    true
                }
            }
        };
        if log {
            info!(target: "audit", front = ":6443", who, %remote, result = "refused", reason = refusal.reason(), "node credential refused: {refusal}");
        }
        let (code, reason) = match refusal {
            NodeRefusal::UnknownToken | NodeRefusal::Unbound(_) => {
                (StatusCode::UNAUTHORIZED, "Unauthorized")
            }
            NodeRefusal::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            _ => (StatusCode::FORBIDDEN, "Forbidden"),
        };
        status::response(code, reason, &refusal.to_string())
    }
}

/// Serves the front on `listener` (TLS `tls`, which asks for node client certificates) until
/// `shutdown`.
pub async fn serve_front<V: StakeView + 'static>(
    front: Arc<NodeFront<V>>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: crate::proxy::ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let handler: crate::proxy::server::Handler = Arc::new(move |req, remote| {
        let front = front.clone();
        Box::pin(front.handle(req, remote))
    });
    crate::proxy::server::serve(listener, Some(tls), limits, handler, None, shutdown).await;
}

/// A compact JWS (`<header>.<payload>.<signature>`, base64url, header starting `{"`): the
/// shape of Kubernetes service-account tokens. Seal tokens and bootstrap tokens are not.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && token.starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The stream limits' bucket of a passed-through token (one per token).
fn passthrough_name(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    format!("token-passthrough:{}", hex::encode(&digest[..8]))
}

/// The stand-in identity of a passed-through token bound to no node: it names only the stream
/// limits' bucket, carries no stake and adds no header upstream.
fn unbound_passthrough(bucket: String) -> Arc<crate::auth::Identity> {
    Arc::new(crate::auth::Identity {
        username: bucket,
        uid: String::new(),
        groups: Vec::new(),
        extra: std::collections::BTreeMap::new(),
        address: daas_seal::Address::ZERO,
        role: daas_seal::Role::User,
        stake: None,
    })
}

/// The node a pod-bound service-account token names (`kubernetes.io.node.name`, in tokens of
/// pods since Kubernetes 1.30), read without verifying the token: the API server verifies it,
/// and a token that lies about its node only subjects itself to that node's standing.
fn token_node(token: &str) -> Option<String> {
    use base64ct::Encoding;
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["kubernetes.io"]["node"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The node name of a kubelet client certificate: subject `CN=system:node:<name>` with
/// `O=system:nodes`. Anything else is refused with a message naming the subject.
pub fn node_of_certificate(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| "the client certificate does not parse".to_owned())?;
    let subject = parsed.subject();
    let cn: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let orgs: Vec<&str> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    match cn.as_slice() {
        [one] if orgs.contains(&"system:nodes") => one
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("client certificate {one} is not a node identity")),
        _ => Err(format!(
            "client certificate {subject} is not a node identity (CN=system:node:<name>, O=system:nodes)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cert(cn: &str, orgs: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn node_certificates_name_their_node() {
        assert_eq!(
            node_of_certificate(&cert("system:node:w-1", &["system:nodes"])).unwrap(),
            "w-1"
        );
        for (cn, orgs) in [
            ("system:node:w-1", &[][..]),
            ("system:node:w-1", &["system:masters"][..]),
            ("system:kube-proxy", &["system:nodes"][..]),
            ("system:node:", &["system:nodes"][..]),
            ("admin", &["system:masters", "system:nodes"][..]),
        ] {
            assert!(
                node_of_certificate(&cert(cn, orgs)).is_err(),
                "{cn} {orgs:?}"
            );
        }
        assert!(node_of_certificate(&CertificateDer::from(vec![1, 2, 3])).is_err());
    }

    #[test]
    fn only_jws_shaped_tokens_are_passed_through() {
        assert!(looks_like_jwt(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_"
        ));
        for not in [
            "abcdef.0123456789abcdef",
            "k3sdaas1.eyJ.sig",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
            "eyJhbGciOiJSUzI1NiJ9..sig",
            "eyJ.a.b.c",
            "eyJhbGci+.eyJ.sig",
        ] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }

    #[test]
    fn pod_bound_tokens_name_their_node() {
        use base64ct::Encoding;
        let jws = |claims: &str| {
            format!(
                "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
                base64ct::Base64UrlUnpadded::encode_string(claims.as_bytes())
            )
        };
        let bound = jws(
            r#"{"kubernetes.io":{"namespace":"n","node":{"name":"wk-a","uid":"u"},"pod":{"name":"p"}}}"#,
        );
        assert_eq!(token_node(&bound).as_deref(), Some("wk-a"));
        assert_eq!(
            token_node(&jws(r#"{"sub":"system:serviceaccount:n:d"}"#)),
            None
        );
        assert_eq!(
            token_node(&jws(r#"{"kubernetes.io":{"node":{"name":""}}}"#)),
            None
        );
        assert_eq!(token_node("eyJhbGciOiJSUzI1NiJ9.!!!.c2ln"), None);
        assert_ne!(passthrough_name(&bound), passthrough_name("other"));
    }

    #[test]
    fn server_only_paths_are_blocked() {
        for p in [
            "/v1-k3s/server-bootstrap",
            "/v1-k3s/token",
            "/v1-k3s/encrypt/status",
            "/v1-k3s/cert/cacerts",
            "/static/charts/x.tgz",
        ] {
            assert!(BLOCKED_PREFIXES.iter().any(|b| p.starts_with(b)), "{p}");
        }
        for p in [
            "/v1-k3s/serving-kubelet.crt",
            "/v1-k3s/client-kubelet.crt",
            "/v1-k3s/connect",
            "/v1-k3s/readyz",
            "/api/v1/nodes/w-1",
        ] {
            assert!(!BLOCKED_PREFIXES.iter().any(|b| p.starts_with(b)), "{p}");
        }
    }
}
