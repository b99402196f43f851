//! The kubectl front door: a Seal-token-authenticating reverse proxy to the Kubernetes API.
//!
//! Every request must carry `Authorization: Bearer <seal token>`. The token is checked by the
//! shared [`SealAuthenticator`]; on success the request is forwarded to the API server with the
//! proxy's front-proxy client certificate and the caller's identity as request-header
//! authentication (`X-Remote-User`/`-Uid`/`-Group`/`-Extra-*`), after every client-supplied
//! credential and identity header was removed. Kubernetes RBAC then decides per Seal identity.
//! See `docs/proxy.md` for why request-header auth rather than impersonation.
//!
//! Modules: [`tls`] (serving cert, upstream TLS), `upstream` (pooled HTTPS clients),
//! `headers` (token in, identity out), `ratelimit`, `metrics`, `status` (Kubernetes `Status`
//! errors), [`rbac`] (role bindings and user namespaces), [`webhook`] (TokenReview), `admin`
//! (health and metrics), `server` (accept loops, limits, graceful shutdown).

mod admin;
mod headers;
mod metrics;
mod ratelimit;
pub mod rbac;
mod server;
mod status;
pub mod tls;
mod upstream;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::{info, warn};

use crate::auth::{Identity, SealAuthenticator, StakeView};

pub use admin::{ReadyCheck, serve_admin};
pub use metrics::Metrics;
pub use ratelimit::RateLimit;
pub use server::{ServeLimits, serve_proxy};
pub use tls::{ServerCert, TlsError, UpstreamTls};
pub use upstream::UpstreamConfig;

use headers::{bearer_token, is_upgrade, prepare_upstream, strip_hop_by_hop};
use metrics::{AuthnLabels, RequestLabels};
use upstream::{BoxError, Upstream};

/// Response body type of everything the proxy answers.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Front-door settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The API server; `None` answers 503 with `no_upstream_hint` after authentication.
    pub upstream: Option<UpstreamConfig>,
    /// What to tell callers when no upstream is configured.
    pub no_upstream_hint: String,
    pub rate_limit: RateLimit,
    /// Time allowed for the API server's response headers (bodies, e.g. watches, are not
    /// limited). Above kube-apiserver's own 60 s request timeout.
    pub response_header_timeout: Duration,
    /// Talk to the API server as the master: at start (request-header settings check, role
    /// bindings) and on each user's first request (their namespace). Off only in tests and
    /// benchmarks against stand-ins.
    pub bootstrap_rbac: bool,
    /// Concurrent long-running requests (watches, `logs -f`, exec/attach/port-forward) per
    /// identity; beyond it: 429. Each holds an upstream connection.
    pub max_streams_per_identity: usize,
    /// The same, across all identities.
    pub max_streams: usize,
    /// What the master creates for RBAC and tenants (with `bootstrap_rbac`).
    pub rbac: rbac::RbacPolicy,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            upstream: None,
            no_upstream_hint: "no Kubernetes API server is configured behind this proxy".into(),
            rate_limit: RateLimit::default(),
            response_header_timeout: Duration::from_secs(75),
            bootstrap_rbac: true,
            max_streams_per_identity: 250,
            max_streams: 10_000,
            rbac: rbac::RbacPolicy::default(),
        }
    }
}

/// The proxy: authenticator, upstream clients, limiter, metrics. Shared by all connections.
pub struct Proxy<V> {
    config: ProxyConfig,
    auth: Arc<SealAuthenticator<V>>,
    upstream: Option<Arc<Upstream<Incoming>>>,
    rbac: Option<rbac::Rbac>,
    limiter: ratelimit::RateLimiter,
    streams: StreamLimits,
    metrics: Arc<Metrics>,
}

impl<V: StakeView + 'static> Proxy<V> {
    pub fn new(
        config: ProxyConfig,
        auth: Arc<SealAuthenticator<V>>,
    ) -> Result<Arc<Self>, TlsError> {
        let upstream = config.upstream.as_ref().map(Upstream::new).transpose()?;
        let rbac = match &config.upstream {
            Some(up) => Some(rbac::Rbac::new(up, config.rbac.clone())?),
            None => None,
        };
        Ok(Arc::new(Proxy {
            limiter: ratelimit::RateLimiter::new(config.rate_limit),
            streams: StreamLimits::new(config.max_streams, config.max_streams_per_identity),
            metrics: Arc::new(Metrics::new()),
            config,
            auth,
            upstream,
            rbac,
        }))
    }

    pub fn authenticator(&self) -> &Arc<SealAuthenticator<V>> {
        &self.auth
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The API-access helper (role bindings, namespaces, readiness), if an upstream is set.
    pub fn rbac(&self) -> Option<&rbac::Rbac> {
        self.rbac.as_ref()
    }

    /// Checks the upstream's request-header settings (refusing an API server that reads
    /// identity from headers the proxy does not strip), then creates the cluster-wide role
    /// bindings (idempotent). No-op without an upstream or with `bootstrap_rbac` off.
    pub async fn bootstrap(&self) -> Result<(), rbac::RbacError> {
        match (&self.rbac, self.config.bootstrap_rbac) {
            (Some(rbac), true) => {
                rbac.check_request_headers().await?;
                rbac.bootstrap().await
            }
            _ => Ok(()),
        }
    }

    /// Answers one client request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let verb = verb_of(req.method(), req.uri().path(), req.uri().query());
        let resp = self
            .clone()
            .authenticate_and_forward(req, remote, verb)
            .await;
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                verb,
                code: resp.status().as_u16(),
            })
            .inc();
        resp
    }

    async fn authenticate_and_forward(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
        verb: &'static str,
    ) -> Response<ProxyBody> {
        // Audit records carry at most 256 bytes of path, whatever the client sent.
        let path = truncate(req.uri().path(), 256).to_owned();
        if !matches!(
            *req.method(),
            Method::GET
                | Method::HEAD
                | Method::POST
                | Method::PUT
                | Method::PATCH
                | Method::DELETE
                | Method::OPTIONS
        ) || !req.uri().path().starts_with('/')
        {
            return status::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the Kubernetes API takes GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS on /paths",
            );
        }
        let token = match bearer_token(req.headers()) {
            Ok(t) => t,
            Err(e) => {
                self.record_authn("denied", e.reason());
                audit(None, verb, &path, remote, "denied", e.reason());
                return status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("Unauthorized: {e}; send `Authorization: Bearer <seal token>`"),
                );
            }
        };
        let identity = match self.auth.authenticate(token).await {
            Ok(identity) => identity,
            Err(e) if e.is_unavailable() => {
                self.record_authn("error", e.reason());
                audit(None, verb, &path, remote, "error", e.reason());
                warn!(error = %e, "stake view unavailable");
                return status::response_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the stake view is unavailable; retry shortly",
                    Some(1),
                );
            }
            Err(e) => {
                self.record_authn("denied", e.reason());
                audit(None, verb, &path, remote, "denied", e.reason());
                return status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("Unauthorized: {e}"),
                );
            }
        };
        self.record_authn("allowed", "ok");

        if let Err(wait) = self.limiter.check(&identity.username, Instant::now()) {
            audit(Some(&identity), verb, &path, remote, "rate_limited", "rate");
            let secs = wait.as_secs().max(1);
            return status::response_with(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!(
                    "rate limit of {}/s for {} exceeded; retry in {secs}s",
                    self.config.rate_limit.per_second, identity.username
                ),
                Some(secs),
            );
        }
        audit(Some(&identity), verb, &path, remote, "allowed", "ok");

        let Some(upstream) = self.upstream.clone() else {
            return status::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &self.config.no_upstream_hint,
            );
        };
        if self.config.bootstrap_rbac
            && let Some(rbac) = &self.rbac
            && let Err(e) = rbac.ensure_user(&identity).await
        {
            return e.response();
        }
        self.forward(upstream, req, &identity, verb, remote).await
    }

    async fn forward(
        &self,
        upstream: Arc<Upstream<Incoming>>,
        mut req: Request<Incoming>,
        identity: &Identity,
        verb: &'static str,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let upgrade = req.version() == Version::HTTP_11 && is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        prepare_upstream(&mut parts.headers, identity, upgrade, remote.ip());
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match upstream.uri(pq) {
            Ok(u) => u,
            Err(_) => {
                return status::response(StatusCode::BAD_REQUEST, "BadRequest", "invalid path");
            }
        };
        // The upstream client picks HTTP/2 or HTTP/1.1 per connection (ALPN).
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);
        // Upgrades need HTTP/1.1. Long-running requests get a connection of their own too: the
        // pooled connection multiplexes everything over one HTTP/2 connection, hyper never opens
        // a second one, and kube-apiserver allows 100 streams per connection, so 100 open
        // watches would otherwise stall every other request.
        let long_running = upgrade || is_long_running(verb, out.uri().query());
        // Each long-running request holds an upstream connection (and descriptors) for as long
        // as it lasts: bounded per identity and in total.
        let permits = if long_running {
            match self.streams.acquire(&identity.username) {
                Some(p) => Some(p),
                None => {
                    return status::response_with(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        &format!(
                            "too many open watches, log streams and exec sessions for {} (limit {} each, {} in total)",
                            identity.username,
                            self.config.max_streams_per_identity,
                            self.config.max_streams
                        ),
                        Some(5),
                    );
                }
            }
        } else {
            None
        };
        let client = if long_running {
            &upstream.http1
        } else {
            &upstream.pooled
        };
        let started = Instant::now();
        let result =
            tokio::time::timeout(self.config.response_header_timeout, client.request(out)).await;
        self.metrics
            .upstream_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                warn!(error = %e, "upstream request failed");
                return status::response(
                    StatusCode::BAD_GATEWAY,
                    "ServiceUnavailable",
                    "the Kubernetes API server could not be reached",
                );
            }
            Err(_) => {
                return status::response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    "the Kubernetes API server did not answer in time",
                );
            }
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let gauge = self.metrics.open_upgrades.clone();
                tokio::spawn(async move {
                    let _permits = permits;
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((client, upstream)) => {
                            gauge.inc();
                            let mut client = TokioIo::new(client);
                            let mut upstream = TokioIo::new(upstream);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            gauge.dec();
                        }
                        Err(e) => warn!(error = %e, "upgrade failed"),
                    }
                });
                return resp.map(|_| empty());
            }
            return status::response(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                "the API server switched protocols without being asked to",
            );
        }

        strip_hop_by_hop(resp.headers_mut(), false);
        if long_running {
            let gauge = (verb == "watch").then(|| {
                let g = self.metrics.open_watches.clone();
                g.inc();
                g
            });
            let guard = StreamGuard {
                gauge,
                _permits: permits,
            };
            return resp.map(move |body| {
                body.map_frame(move |f| {
                    let _ = &guard;
                    f
                })
                .map_err(BoxError::from)
                .boxed_unsync()
            });
        }
        resp.map(|body| body.map_err(BoxError::from).boxed_unsync())
    }

    fn record_authn(&self, result: &'static str, reason: &'static str) {
        self.metrics
            .authn
            .get_or_create(&AuthnLabels { result, reason })
            .inc();
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Rides on a long-running response body: releases the stream permits and decrements the
/// watch gauge when the body is dropped (client gone or stream ended).
struct StreamGuard {
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    _permits: Option<StreamPermits>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// A global and a per-identity slot for one long-running request.
struct StreamPermits {
    _global: tokio::sync::OwnedSemaphorePermit,
    _identity: tokio::sync::OwnedSemaphorePermit,
}

/// Caps on concurrent long-running requests (watches, followed logs, upgrades).
struct StreamLimits {
    global: Arc<tokio::sync::Semaphore>,
    per_identity: std::sync::Mutex<lru::LruCache<String, Arc<tokio::sync::Semaphore>>>,
    max_per_identity: usize,
}

impl StreamLimits {
    fn new(max: usize, max_per_identity: usize) -> Self {
        StreamLimits {
            global: Arc::new(tokio::sync::Semaphore::new(max)),
            per_identity: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(65_536).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            max_per_identity,
        }
    }

    fn acquire(&self, identity: &str) -> Option<StreamPermits> {
        let mine = {
            let mut map = self
                .per_identity
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.get_or_insert(identity.to_owned(), || {
                Arc::new(tokio::sync::Semaphore::new(self.max_per_identity))
            })
            .clone()
        };
        let identity = mine.try_acquire_owned().ok()?;
        let global = self.global.clone().try_acquire_owned().ok()?;
        Some(StreamPermits {
            _global: global,
            _identity: identity,
        })
    }
}

pub(crate) fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One structured audit record per authentication decision. Never the token.
fn audit(
    identity: Option<&Identity>,
    verb: &str,
    path: &str,
    remote: SocketAddr,
    result: &str,
    reason: &str,
) {
    info!(
        target: "audit",
        user = identity.map_or("-", |i| i.username.as_str()),
        role = identity.map_or("-", |i| i.role.as_str()),
        verb,
        path,
        remote = %remote,
        result,
        reason,
        "authn"
    );
}

/// Whether a request may stay open indefinitely: watches and followed logs.
fn is_long_running(verb: &str, query: Option<&str>) -> bool {
    verb == "watch" || query_flag(query, "follow")
}

/// A boolean query parameter as the API server reads it: the first value of `name`
/// (percent-decoded), true unless it is `0` or `false` in any case. `?watch` alone is true.
pub(crate) fn query_flag(query: Option<&str>, name: &str) -> bool {
    let Some(query) = query else {
        return false;
    };
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The Kubernetes verb of a request, from its method and path (for metrics and audit).
pub(crate) fn verb_of(method: &Method, path: &str, query: Option<&str>) -> &'static str {
    let watch_param = query_flag(query, "watch");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let watch_path = segments.get(2) == Some(&"watch") || segments.get(3) == Some(&"watch");
    // Resource segments after /api/<v> or /apis/<g>/<v>, without namespaces/<ns>.
    let rest: &[&str] = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let collection = rest.len() == 1;
    match *method {
        Method::GET | Method::HEAD if watch_param || watch_path => "watch",
        Method::GET | Method::HEAD if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST if rest.len() > 2 => "connect",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_limits_per_identity_and_in_total() {
        let limits = StreamLimits::new(3, 2);
        let a1 = limits.acquire("a").expect("first");
        let _a2 = limits.acquire("a").expect("second");
        assert!(limits.acquire("a").is_none(), "per-identity cap");
        let _b1 = limits.acquire("b").expect("other identity");
        assert!(limits.acquire("c").is_none(), "global cap");
        drop(a1);
        assert!(limits.acquire("c").is_some(), "released on drop");
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn verbs() {
        let v = |m: Method, p: &str, q: Option<&str>| verb_of(&m, p, q);
        assert_eq!(v(Method::GET, "/api/v1/namespaces", None), "list");
        assert_eq!(v(Method::GET, "/api/v1/namespaces/default", None), "get");
        assert_eq!(
            v(Method::GET, "/api/v1/namespaces/default/pods", None),
            "list"
        );
        assert_eq!(
            v(
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=true&rv=1")
            ),
            "watch"
        );
        assert_eq!(v(Method::GET, "/api/v1/watch/pods", None), "watch");
        assert_eq!(
            v(
                Method::GET,
                "/apis/apps/v1/namespaces/x/deployments/d",
                None
            ),
            "get"
        );
        assert_eq!(
            v(Method::POST, "/api/v1/namespaces/x/pods/p/exec", None),
            "connect"
        );
        assert_eq!(
            v(Method::POST, "/api/v1/namespaces/x/configmaps", None),
            "create"
        );
        assert_eq!(
            v(Method::DELETE, "/api/v1/namespaces/x/configmaps", None),
            "deletecollection"
        );
        assert_eq!(
            v(Method::DELETE, "/api/v1/namespaces/x/configmaps/c", None),
            "delete"
        );
        assert_eq!(
            v(Method::PATCH, "/api/v1/namespaces/x/configmaps/c", None),
            "patch"
        );
        assert_eq!(v(Method::GET, "/version", None), "get");
        assert_eq!(v(Method::OPTIONS, "/", None), "other");
    }

    #[test]
    fn long_running_requests() {
        assert!(is_long_running("watch", None));
        assert!(is_long_running("get", Some("container=c&follow=true")));
        assert!(!is_long_running("get", Some("follow=false")));
        assert!(!is_long_running("list", Some("limit=500")));
        // The API server's reading: anything but 0/false (any case) is true, names decoded.
        for q in [
            "follow",
            "follow=",
            "follow=yes",
            "follow=TRUE",
            "foll%6Fw=t",
            "follow=1&follow=0",
        ] {
            assert!(is_long_running("get", Some(q)), "{q}");
        }
        for q in ["follow=0", "follow=FALSE", "follower=true", "x=follow"] {
            assert!(!is_long_running("get", Some(q)), "{q}");
        }
        let m = Method::GET;
        for q in [
            "watch",
            "watch=yes",
            "watch=TRUE",
            "wat%63h=t",
            "limit=1&watch=1",
        ] {
            assert_eq!(verb_of(&m, "/api/v1/pods", Some(q)), "watch", "{q}");
        }
        assert_eq!(verb_of(&m, "/api/v1/pods", Some("watch=false")), "list");
    }
}
