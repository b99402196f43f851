//! An honest stand-in for the Kubernetes API server's secure port, as the proxy sees it, plus
//! the TLS/HTTP client helpers the proxy tests and the proxy bench share.
//!
//! What it stands in for: kube-apiserver behind request-header authentication. It serves TLS
//! with a certificate from its own cluster CA and *requires* a client certificate from a
//! separate front-proxy CA (`--requestheader-client-ca-file`); it offers ALPN `h2` and
//! `http/1.1` and advertises 100 concurrent HTTP/2 streams per connection, kube-apiserver's
//! default since the 2023 rapid-reset fix (`--http2-max-streams-per-connection=0`). It answers
//! the requests kubectl traffic is made of: discovery (`/api`, `/version`), a configmap list,
//! a watch, a create with a body, an exec upgrade, and health.
//!
//! Why it exists beside `tests/proxy_kube_apiserver.rs`: the real API server proves RBAC and
//! kubectl compatibility, but cannot show what the proxy sent. This one records every request
//! exactly as it arrived (method, path and query, HTTP version, every header), lets a test
//! push watch events one at a time (so a test can prove the proxy does not buffer), and
//! answers slowly on demand. It does not authenticate or authorize: like the real server, it
//! believes the `X-Remote-*` headers of any connection that presented a valid front-proxy
//! certificate. It stores nothing.
//!
//! Endpoints (any namespace):
//! - `GET /version`, `GET /api`, `GET /healthz|/livez|/readyz`;
//! - `GET /api/v1/namespaces/<ns>/configmaps?items=N` — a `ConfigMapList` of N items of about
//!   1 KiB each (default 3);
//! - the same with `watch=true` — streams, one per line, the events pushed with
//!   [`Upstream::push_event`], each written and flushed as its own chunk (HTTP/1.1) or DATA
//!   frame (HTTP/2);
//! - `POST /api/v1/namespaces/<ns>/configmaps` — 201 with `{"receivedBytes": n}`;
//! - `POST /api/v1/namespaces/<ns>/pods/<pod>/exec` with `Connection: Upgrade` — 101, then
//!   echoes every byte back;
//! - any GET with `delay_ms=N` sends its response headers only after N ms.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test support: setup failures panic

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use nautilus_master::proxy::{UpstreamConfig, UpstreamTls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// kube-apiserver's HTTP/2 `MAX_CONCURRENT_STREAMS` when the flag is left at 0.
pub const KUBE_APISERVER_MAX_STREAMS: u32 = 100;

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// One request exactly as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, as sent.
    pub path_and_query: String,
    pub version: Version,
    pub headers: HeaderMap,
}

impl Recorded {
    /// All values of header `name`, as strings.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The single value of header `name`, if present.
    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} appears {} times", all.len());
        all.into_iter().next()
    }
}

/// A certificate authority made with rcgen, able to issue leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A serving certificate for `sans`: (certificate PEM, key PEM).
    pub fn issue_server(&self, sans: &[&str]) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate with CN `common_name`: (certificate PEM, key PEM).
    pub fn issue_client(&self, common_name: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What the stand-in publishes in `kube-system/extension-apiserver-authentication`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestHeaderConfig {
    /// 503, as an API server that is still starting.
    Unavailable,
    /// `X-Remote-*` names only.
    Safe,
    /// Groups also read from `X-Forwarded-Groups`, which clients can send.
    Unsafe,
    /// No such ConfigMap (404).
    Missing,
}

struct State {
    request_headers: Mutex<RequestHeaderConfig>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    recording: AtomicBool,
    events: broadcast::Sender<Bytes>,
    open_watches: AtomicUsize,
    rejected_handshakes: AtomicUsize,
    lists: Mutex<HashMap<usize, Bytes>>,
}

/// The stand-in, running on a runtime of its own; stopped on drop.
pub struct Upstream {
    runtime: Option<tokio::runtime::Runtime>,
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The cluster CA: what the proxy must trust for the upstream.
    pub ca_pem: String,
    /// The CA the stand-in requires client certificates from.
    pub front_proxy_ca: Ca,
    /// The front-proxy client certificate (CN `front-proxy-client`) and key.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    state: Arc<State>,
}

impl Upstream {
    /// Starts on 127.0.0.1, port 0, on a 2-worker runtime.
    pub fn start() -> Self {
        Self::start_with_workers(2)
    }

    pub fn start_with_workers(workers: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("standin-apiserver")
            .enable_all()
            .build()
            .unwrap();
        let cluster_ca = Ca::new("standin cluster CA");
        let front_proxy_ca = Ca::new("standin front-proxy CA");
        let (server_cert, server_key) = cluster_ca.issue_server(&["127.0.0.1", "localhost"]);
        let (client_cert_pem, client_key_pem) = front_proxy_ca.issue_client("front-proxy-client");

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(front_proxy_ca.pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let chain = vec![
            CertificateDer::from_pem_slice(server_cert.as_bytes()).unwrap(),
            CertificateDer::from_pem_slice(cluster_ca.pem.as_bytes()).unwrap(),
        ];
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                chain,
                PrivateKeyDer::from_pem_slice(server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            request_headers: Mutex::new(RequestHeaderConfig::Safe),
            requests: requests.clone(),
            recording: AtomicBool::new(true),
            events: broadcast::channel(1024).0,
            open_watches: AtomicUsize::new(0),
            rejected_handshakes: AtomicUsize::new(0),
            lists: Mutex::new(HashMap::new()),
        });
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(serve(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            state.clone(),
        ));
        Upstream {
            runtime: Some(runtime),
            addr,
            url: format!("https://{addr}"),
            ca_pem: cluster_ca.pem,
            front_proxy_ca,
            client_cert_pem,
            client_key_pem,
            requests,
            state,
        }
    }

    /// The proxy's view of this upstream: our CA, the front-proxy client certificate.
    pub fn tls(&self) -> UpstreamTls {
        UpstreamTls {
            ca_pem: self.ca_pem.clone().into_bytes(),
            client_cert_pem: self.client_cert_pem.clone().into_bytes(),
            client_key_pem: self.client_key_pem.clone().into_bytes(),
        }
    }

    pub fn config(&self) -> UpstreamConfig {
        UpstreamConfig::new(&self.url, self.tls()).unwrap()
    }

    /// A snapshot of the requests received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }

    /// Turns the request log on (the default) or off (for load, where it would grow without
    /// bound).
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::SeqCst);
    }

    /// Sends one watch event (a JSON line) to every open watch; returns how many got it.
    pub fn push_event(&self, json: &str) -> usize {
        let mut line = json.trim_end().to_owned();
        line.push('\n');
        self.state.events.send(Bytes::from(line)).unwrap_or(0)
    }

    /// Sets what the request-header ConfigMap says from now on.
    pub fn set_request_headers(&self, config: RequestHeaderConfig) {
        *self.state.request_headers.lock().unwrap() = config;
    }

    /// Watch responses currently streaming.
    pub fn open_watches(&self) -> usize {
        self.state.open_watches.load(Ordering::SeqCst)
    }

    /// TLS handshakes the stand-in refused (bad or missing client certificate, or aborted).
    pub fn rejected_handshakes(&self) -> usize {
        self.state.rejected_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(KUBE_APISERVER_MAX_STREAMS);
    let builder = Arc::new(builder);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, builder, state) = (acceptor.clone(), builder.clone(), state.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(_) => {
                    state.rejected_handshakes.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_owned())
    })
}

async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    if state.recording.load(Ordering::SeqCst) {
        state.requests.lock().unwrap().push(Recorded {
            method: req.method().clone(),
            path_and_query: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned()),
            version: req.version(),
            headers: req.headers().clone(),
        });
    }
    if req.method() == Method::GET
        && let Some(ms) = query(&req, "delay_ms").and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let segments: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["version"]) => json(
            StatusCode::OK,
            r#"{"major":"1","minor":"36","gitVersion":"v1.36.0-standin","platform":"linux/amd64"}"#,
        ),
        (&Method::GET, ["api"]) => json(
            StatusCode::OK,
            r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}"#,
        ),
        (&Method::GET, ["healthz" | "livez" | "readyz"]) => text(StatusCode::OK, "ok"),
        (
            &Method::GET,
            [
                "api",
                "v1",
                "namespaces",
                "kube-system",
                "configmaps",
                "extension-apiserver-authentication",
            ],
        ) => {
            let groups = match *state.request_headers.lock().unwrap() {
                RequestHeaderConfig::Unavailable => {
                    return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
                }
                RequestHeaderConfig::Missing => return status(StatusCode::NOT_FOUND, "NotFound"),
                RequestHeaderConfig::Safe => r#"[\"X-Remote-Group\"]"#,
                RequestHeaderConfig::Unsafe => r#"[\"X-Remote-Group\",\"X-Forwarded-Groups\"]"#,
            };
            json(
                StatusCode::OK,
                &format!(
                    r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"extension-apiserver-authentication","namespace":"kube-system"}},"data":{{"requestheader-username-headers":"[\"X-Remote-User\"]","requestheader-group-headers":"{groups}","requestheader-extra-headers-prefix":"[\"X-Remote-Extra-\"]"}}}}"#
                ),
            )
        }
        (&Method::GET, ["api", "v1", "namespaces", _, "configmaps", "big"]) => {
            // `bytes=N` bytes of body, for flow-control tests.
            let n: usize = query(&req, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024);
            Response::new(full(vec![b'x'; n]))
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "configmaps"]) => {
            let watch = matches!(query(&req, "watch").as_deref(), Some("true" | "1"));
            if watch {
                watch_stream(&state)
            } else {
                let n = query(&req, "items")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3);
                let body = state
                    .lists
                    .lock()
                    .unwrap()
                    .entry(n)
                    .or_insert_with(|| configmap_list(ns, n))
                    .clone();
                let mut resp = Response::new(full(body));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            }
        }
        (&Method::POST, ["api", "v1", "namespaces", _, "configmaps"]) => {
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, Bytes::len),
                    Err(_) => return status(StatusCode::BAD_REQUEST, "BadRequest"),
                }
            }
            json(StatusCode::CREATED, &format!(r#"{{"receivedBytes":{n}}}"#))
        }
        (&Method::POST, ["api", "v1", "namespaces", _, "pods", _, "exec"]) => {
            let upgrade = req.headers().get(header::UPGRADE).cloned();
            let asks = req
                .headers()
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                });
            let Some(upgrade) = upgrade.filter(|_| asks) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest");
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                                let _ = io.flush().await;
                            }
                        }
                    }
                }
            });
            let mut resp = Response::new(empty());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            resp.headers_mut().insert(header::UPGRADE, upgrade);
            resp
        }
        _ => status(StatusCode::NOT_FOUND, "NotFound"),
    }
}

/// Decrements the open-watch count when the watch body is dropped.
struct WatchGuard(Arc<State>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

fn watch_stream(state: &Arc<State>) -> Response<Body> {
    let rx = state.events.subscribe();
    state.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = WatchGuard(state.clone());
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((Ok(Frame::data(line)), (rx, guard))),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `ConfigMapList` of `n` items of about 1 KiB each.
fn configmap_list(ns: &str, n: usize) -> Bytes {
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "metadata": {
                    "name": format!("cm-{i:05}"),
                    "namespace": ns,
                    "uid": format!("00000000-0000-4000-8000-{i:012}"),
                    "resourceVersion": (1000 + i).to_string(),
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"app": "bench", "index": i.to_string()},
                },
                "data": {"payload": "x".repeat(768)},
            })
        })
        .collect();
    let list = serde_json::json!({
        "kind": "ConfigMapList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": (1000 + n).to_string()},
        "items": items,
    });
    Bytes::from(serde_json::to_vec(&list).unwrap())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn json(code: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code;
    resp
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    json(
        code,
        &format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","reason":"{reason}","code":{}}}"#,
            code.as_u16()
        ),
    )
}

// ---- Clients -------------------------------------------------------------------------------

/// A rustls client configuration trusting `ca_pem`, offering `alpn`, optionally presenting
/// `client` (certificate PEM, key PEM).
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// TCP + TLS to `addr` (server name 127.0.0.1).
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(config).connect(name, tcp).await
}

/// One client connection, HTTP/1.1 (keep-alive, upgrades) or HTTP/2.
#[derive(Clone)]
pub enum Conn {
    H1(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// Connects with ALPN `h2` (`http2`) or `http/1.1` and checks the server agreed.
    pub async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>, http2: bool) -> Self {
        Self::try_connect(addr, config, http2)
            .await
            .expect("connect to the proxy")
    }

    /// [`Conn::connect`], `None` when the server closes the connection instead.
    pub async fn try_connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        http2: bool,
    ) -> Option<Self> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        Self::try_handshake(tcp, config, http2, None).await
    }

    /// TLS and HTTP over an already connected `tcp`.
    pub async fn handshake(tcp: TcpStream, config: Arc<rustls::ClientConfig>, http2: bool) -> Self {
        Self::try_handshake(tcp, config, http2, None)
            .await
            .expect("handshake with the proxy")
    }

    /// HTTP/2 with an initial stream window of `window` bytes: a client that reads nothing of
    /// a response body (window 0) leaves it all on the server's side.
    pub async fn connect_h2_window(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        window: u32,
    ) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::try_handshake(tcp, config, true, Some(window))
            .await
            .expect("connect to the proxy")
    }

    async fn try_handshake(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        http2: bool,
        window: Option<u32>,
    ) -> Option<Self> {
        tcp.set_nodelay(true).ok()?;
        let addr = tcp.peer_addr().ok()?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if http2 {
            assert_eq!(
                alpn.as_deref(),
                Some(&b"h2"[..]),
                "server did not agree to h2"
            );
            let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            if let Some(w) = window {
                builder.initial_stream_window_size(w);
            }
            let (send, conn) = builder.handshake(TokioIo::new(tls)).await.ok()?;
            tokio::spawn(conn);
            Some(Conn::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .ok()?;
            tokio::spawn(conn.with_upgrades());
            Some(Conn::H1(Arc::new(tokio::sync::Mutex::new(send))))
        }
    }

    pub fn version(&self) -> Version {
        match self {
            Conn::H1(_) => Version::HTTP_11,
            Conn::H2(_) => Version::HTTP_2,
        }
    }

    /// Sends `req` (absolute URI): origin-form plus `Host` over HTTP/1.1, as is over HTTP/2.
    /// HTTP/1.1 requests on one connection are serialised.
    pub async fn send(&self, mut req: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        match self {
            Conn::H1(send) => {
                if let Some(authority) = req.uri().authority().cloned() {
                    req.headers_mut()
                        .entry(header::HOST)
                        .or_insert(HeaderValue::from_str(authority.as_str()).unwrap());
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    *req.uri_mut() = pq.parse().unwrap();
                }
                let mut send = send.lock().await;
                send.ready().await?;
                send.send_request(req).await
            }
            Conn::H2(send) => {
                let mut send = send.clone();
                send.ready().await?;
                *req.version_mut() = Version::HTTP_2;
                send.send_request(req).await
            }
        }
    }

    /// `GET base+path` with optional bearer `token`; returns status, headers and the whole body.
    pub async fn get(
        &self,
        base: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut req = Request::get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = self
            .send(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }
}
