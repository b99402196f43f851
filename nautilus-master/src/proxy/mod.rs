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
mod audit;
mod headers;
mod metrics;
pub mod rbac;
pub(crate) mod server;
pub(crate) mod status;
pub mod tls;
mod upstream;
pub mod webhook;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::{info, warn};

use crate::auth::{AuthError, Identity, Scope, SealAuthenticator, Session, StakeView};

pub use crate::ratelimit::{RateLimit, RateLimitError, RoleRateLimit, RoleRateLimits};
pub use admin::{ReadyCheck, serve_admin};
pub use metrics::Metrics;
pub use server::{ClientCert, ServeLimits, serve_proxy};
pub use tls::{ServerCert, TlsError, UpstreamTls};
pub use upstream::UpstreamConfig;

use headers::{bearer_token, is_upgrade, prepare_passthrough, prepare_upstream, strip_hop_by_hop};
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
    /// Requests per identity (after authentication), by the identity's role.
    pub rate_limits: RoleRateLimits,
    /// Cold authentications (a token not in the verdict cache: a signature check and perhaps a
    /// chain lookup) per client address, before any of that work is done. Cached tokens are not
    /// counted.
    pub pre_auth_per_ip: RateLimit,
    /// Cold authentications in progress at once, over all clients; beyond it: 503.
    pub max_cold_authentications: usize,
    /// Time allowed for the API server's response headers (bodies, e.g. watches, are not
    /// limited). Above kube-apiserver's own 60 s request timeout.
    pub response_header_timeout: Duration,
    /// Talk to the API server as the master: at start (request-header settings check, role
    /// bindings) and on each user's first request (their namespace). Off only in tests and
    /// benchmarks against stand-ins.
    pub bootstrap_rbac: bool,
    /// How often the API server's request-header settings are checked again (they are
    /// checked before the first request is forwarded and whenever a check failed).
    pub header_check_interval: Duration,
    /// Concurrent long-running requests (watches, `logs -f`, exec/attach/port-forward) per
    /// identity; beyond it: 429. Each holds an upstream connection.
    pub max_streams_per_identity: usize,
    /// The same, across all identities.
    pub max_streams: usize,
    /// Concurrent other requests per identity: more wait (up to `response_header_timeout`)
    /// for one to finish. Bounds what one identity can leave unread on a shared upstream
    /// connection (see `upstream_connections`).
    pub max_requests_per_identity: usize,
    /// Upstream HTTP/2 connections that requests other than long-running ones share, assigned
    /// by identity: a tenant that stalls its connection stalls only the tenants that share it.
    pub upstream_connections: usize,
    /// What the master creates for RBAC and tenants (with `bootstrap_rbac`).
    pub rbac: rbac::RbacPolicy,
    /// Serves `GET /attestation?nonce=…` (unauthenticated, public data, metered per client
    /// address like cold authentications); `None`: 404.
    pub attestation: Option<Arc<crate::tee::AttestationService>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            upstream: None,
            no_upstream_hint: "no Kubernetes API server is configured behind this proxy".into(),
            rate_limits: RoleRateLimits::default(),
            pre_auth_per_ip: RateLimit::new(20.0, 40.0),
            max_cold_authentications: 256,
            response_header_timeout: Duration::from_secs(75),
            bootstrap_rbac: true,
            header_check_interval: Duration::from_secs(30),
            max_streams_per_identity: 250,
            max_streams: 10_000,
            max_requests_per_identity: 16,
            upstream_connections: 4,
            rbac: rbac::RbacPolicy::default(),
            attestation: None,
        }
    }
}

/// How a forwarded request carries its identity upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// Request-header identity of the authenticated [`Identity`] (the client's own
    /// credential is removed).
    Identity,
    /// The client's own bearer token, for the API server to judge (service-account tokens of
    /// pods at the :6443 front); the [`Identity`] only names the stream limits' bucket.
    Passthrough,
}

/// What the last check of the API server's request-header settings found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum HeaderSafety {
    /// Not checked yet, or the last check could not complete: nothing is forwarded.
    Unknown = 0,
    Safe = 1,
    /// The API server reads identity from headers a client could send: nothing is forwarded.
    Unsafe = 2,
}

/// The proxy: authenticator, upstream clients, limiter, metrics. Shared by all connections.
pub struct Proxy<V> {
    config: ProxyConfig,
    auth: Arc<SealAuthenticator<V>>,
    upstream: Option<Arc<Upstream<Incoming>>>,
    rbac: Option<rbac::Rbac>,
    limiters: crate::ratelimit::RoleLimiters,
    pre_auth: crate::ratelimit::RateLimiter<IpAddr>,
    cold_slots: Arc<tokio::sync::Semaphore>,
    streams: StreamLimits,
    requests: PerIdentity,
    header_safety: AtomicU8,
    /// Whether the cluster-wide role bindings were applied.
    bootstrapped: AtomicBool,
    denials: audit::Sampler,
    metrics: Arc<Metrics>,
    /// The worker path (`POST /join`), once the control plane has set it up.
    workers: std::sync::OnceLock<Arc<crate::workers::Workers<V>>>,
}

impl<V: StakeView + 'static> Proxy<V> {
    pub fn new(
        config: ProxyConfig,
        auth: Arc<SealAuthenticator<V>>,
    ) -> Result<Arc<Self>, TlsError> {
        let upstream = config
            .upstream
            .as_ref()
            .map(|u| Upstream::new(u, config.upstream_connections))
            .transpose()?;
        let rbac = match &config.upstream {
            Some(up) => Some(rbac::Rbac::new(up, config.rbac.clone())?),
            None => None,
        };
        // Without the master's own API access there is nothing to check the settings with:
        // only tests and benchmarks against stand-ins run that way.
        let safety = if rbac.is_some() && config.bootstrap_rbac {
            HeaderSafety::Unknown
        } else {
            HeaderSafety::Safe
        };
        Ok(Arc::new(Proxy {
            limiters: crate::ratelimit::RoleLimiters::new(config.rate_limits),
            pre_auth: crate::ratelimit::RateLimiter::new(config.pre_auth_per_ip),
            cold_slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_cold_authentications.max(1),
            )),
            streams: StreamLimits::new(config.max_streams, config.max_streams_per_identity),
            requests: PerIdentity::new(config.max_requests_per_identity),
            header_safety: AtomicU8::new(safety as u8),
            bootstrapped: AtomicBool::new(false),
            denials: audit::Sampler::new(20),
            metrics: Arc::new(Metrics::new()),
            workers: std::sync::OnceLock::new(),
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

    /// Serves `POST /join` for `workers` from now on (set once; later calls are ignored).
    pub fn set_workers(&self, workers: Arc<crate::workers::Workers<V>>) {
        let _ = self.workers.set(workers);
    }

    /// The worker path, if set.
    pub fn workers(&self) -> Option<&Arc<crate::workers::Workers<V>>> {
        self.workers.get()
    }

    /// A counter that moves whenever live sessions are re-checked: read it before judging a
    /// request that may become a session, and pass it to [`Proxy::forward_as`].
    pub(crate) fn session_changes(&self) -> u64 {
        self.auth.sessions().changes()
    }

    /// Forwards `req` as `identity`, already authenticated by another front door (the :6443
    /// front). `rechecks` is [`Proxy::session_changes`] from before the verdict.
    pub(crate) async fn forward_as(
        &self,
        req: Request<Incoming>,
        identity: Arc<Identity>,
        credential: Credential,
        remote: SocketAddr,
        rechecks: u64,
    ) -> Response<ProxyBody> {
        let verb = verb_of(req.method(), req.uri().path(), req.uri().query());
        let Some(upstream) = self.upstream.clone() else {
            return status::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &self.config.no_upstream_hint,
            );
        };
        if let Some(refused) = self.header_gate() {
            return refused;
        }
        self.forward(upstream, req, identity, credential, verb, remote, rechecks)
            .await
    }

    /// `None` when the API server's request-header settings were verified; otherwise the
    /// answer that says why nothing is forwarded.
    fn header_gate(&self) -> Option<Response<ProxyBody>> {
        match self.header_safety() {
            HeaderSafety::Safe => None,
            HeaderSafety::Unknown => Some(status::response_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the API server's request-header settings have not been verified yet; retry shortly",
                Some(2),
            )),
            HeaderSafety::Unsafe => Some(status::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the API server behind this proxy reads identity from headers clients could set; the operator must fix its --requestheader-* settings",
            )),
        }
    }

    /// `POST /join`: a worker's Seal token, authenticated like any other, buys its node's join
    /// material (see [`crate::workers`]).
    async fn join(&self, req: Request<Incoming>, remote: SocketAddr) -> Response<ProxyBody> {
        let Some(workers) = self.workers.get().cloned() else {
            return status::response(
                StatusCode::NOT_FOUND,
                "NotFound",
                "this master does not accept workers (no :6443 front is configured)",
            );
        };
        if req.method() != Method::POST {
            return status::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "POST /join with a worker Seal token",
            );
        }
        let path = daas_join_api::PATH;
        // The (small, bounded) body first: a refusal sent while the client is still sending
        // makes HTTP/2 clients see a reset stream instead of the refusal.
        let (parts, body) = req.into_parts();
        let body = match tokio::time::timeout(
            self.config.response_header_timeout,
            http_body_util::Limited::new(body, daas_join_api::MAX_REQUEST_LEN).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return status::response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "the join request body is too large",
                );
            }
            Err(_) => {
                return status::response(
                    StatusCode::REQUEST_TIMEOUT,
                    "Timeout",
                    "the join request body did not arrive in time",
                );
            }
        };
        let token = match bearer_token(&parts.headers) {
            Ok(t) => t.to_owned(),
            Err(e) => {
                self.deny("create", path, remote, "denied", e.reason());
                return status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("Unauthorized: {e}; send `Authorization: Bearer <worker seal token>`"),
                );
            }
        };
        let identity = match self.auth.cached(&token) {
            Some(identity) => identity,
            None => match self.authenticate_cold(&token, remote, "create", path).await {
                Ok(identity) => identity,
                Err(resp) => return resp,
            },
        };
        if let Err(wait) = self
            .limiters
            .for_role(identity.role)
            .check(identity.username.as_str(), Instant::now())
        {
            return status::response_with(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many join requests; retry shortly",
                Some(wait.as_secs().max(1)),
            );
        }
        // The signature was verified by the authentication above; only the claims are read.
        let claims = match daas_seal::SealToken::parse(&token) {
            Ok(t) => t.claims().clone(),
            Err(e) => {
                return status::response(StatusCode::UNAUTHORIZED, "Unauthorized", &e.to_string());
            }
        };
        match workers.join(&identity, &claims, &body, remote).await {
            Ok(answer) => status::json(StatusCode::OK, &answer),
            Err(e) => {
                let code = e.status();
                status::response(
                    code,
                    code.canonical_reason().unwrap_or("Failure"),
                    &e.to_string(),
                )
            }
        }
    }

    /// The API-access helper (role bindings, namespaces, readiness), if an upstream is set.
    pub fn rbac(&self) -> Option<&rbac::Rbac> {
        self.rbac.as_ref()
    }

    fn header_safety(&self) -> HeaderSafety {
        match self.header_safety.load(Ordering::Acquire) {
            1 => HeaderSafety::Safe,
            2 => HeaderSafety::Unsafe,
            _ => HeaderSafety::Unknown,
        }
    }

    /// Whether the API server's request-header settings were last found safe (always true
    /// without RBAC bootstrap, i.e. against stand-ins).
    pub fn request_headers_verified(&self) -> bool {
        self.header_safety() == HeaderSafety::Safe
    }

    /// Checks the upstream's request-header settings once (refusing an API server that reads
    /// identity from headers the proxy does not strip) and records the outcome: nothing is
    /// forwarded until a check has succeeded. No-op without RBAC bootstrap.
    pub async fn check_request_headers(&self) -> Result<(), rbac::RbacError> {
        let Some(rbac) = self.rbac.as_ref().filter(|_| self.config.bootstrap_rbac) else {
            return Ok(());
        };
        let outcome = rbac.check_request_headers().await;
        let safety = match &outcome {
            Ok(()) => HeaderSafety::Safe,
            Err(rbac::RbacError::UnsafeRequestHeaders(_)) => HeaderSafety::Unsafe,
            Err(_) => HeaderSafety::Unknown,
        };
        let before = self.header_safety.swap(safety as u8, Ordering::AcqRel);
        if before != safety as u8 {
            match &outcome {
                Ok(()) => info!("API server request-header settings verified; forwarding"),
                Err(e) => {
                    warn!(error = %e, "API server request-header settings not verified; forwarding stopped")
                }
            }
        }
        outcome
    }

    /// Checks the request-header settings (see [`Proxy::check_request_headers`]), then creates
    /// the cluster-wide role bindings (idempotent). No-op without an upstream or with
    /// `bootstrap_rbac` off.
    pub async fn bootstrap(&self) -> Result<(), rbac::RbacError> {
        match (&self.rbac, self.config.bootstrap_rbac) {
            (Some(rbac), true) => {
                self.check_request_headers().await?;
                rbac.bootstrap().await?;
                self.bootstrapped.store(true, Ordering::Release);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Keeps the front door's view of the API server current until `shutdown`: checks the
    /// request-header settings every second (doubling to 10 s) while they are not verified and
    /// then every `header_check_interval` — so an API server restarted with other settings is
    /// caught and a check that failed at start is retried instead of being ignored — and
    /// finishes the role-binding bootstrap if it has not succeeded yet.
    pub async fn maintain(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let Some(rbac) = self.rbac.as_ref().filter(|_| self.config.bootstrap_rbac) else {
            // Nothing to maintain; still a task that runs until shutdown like the others.
            shutdown.await;
            return;
        };
        tokio::pin!(shutdown);
        let (mut check_retry, mut bootstrap_retry) =
            (Duration::from_secs(1), Duration::from_secs(1));
        let now = tokio::time::Instant::now();
        let (mut next_check, mut next_bootstrap) = (now + check_retry, now + bootstrap_retry);
        loop {
            let bootstrapped = self.bootstrapped.load(Ordering::Acquire);
            let wake = if bootstrapped {
                next_check
            } else {
                next_check.min(next_bootstrap)
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= next_check {
                next_check = if self.check_request_headers().await.is_ok() {
                    check_retry = Duration::from_secs(1);
                    now + self.config.header_check_interval
                } else {
                    let wait = check_retry;
                    check_retry = (check_retry * 2).min(Duration::from_secs(10));
                    now + wait.min(
                        self.config
                            .header_check_interval
                            .max(Duration::from_millis(100)),
                    )
                };
            }
            if !bootstrapped && now >= next_bootstrap && self.request_headers_verified() {
                match rbac.bootstrap().await {
                    Ok(()) => self.bootstrapped.store(true, Ordering::Release),
                    Err(e) => {
                        warn!(error = %e, retry_in = ?bootstrap_retry, "RBAC bootstrap failed; retrying");
                        next_bootstrap = now + bootstrap_retry;
                        bootstrap_retry = (bootstrap_retry * 2).min(Duration::from_secs(60));
                    }
                }
            }
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
        if req.uri().path() == daas_verify_master::wire::PATH {
            return self.attestation(&req, remote).await;
        }
        if req.uri().path() == daas_join_api::PATH {
            return self.join(req, remote).await;
        }
        // Audit records carry at most 256 bytes of path, whatever the client sent.
        let path = truncate(req.uri().path(), 256).to_owned();
        // Before the verdict: a re-check from here on may miss this request's session.
        let rechecks = self.auth.sessions().changes();
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
                self.deny(verb, &path, remote, "denied", e.reason());
                return status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("Unauthorized: {e}; send `Authorization: Bearer <seal token>`"),
                );
            }
        };
        let identity = match self.auth.cached(token) {
            Some(identity) => identity,
            None => match self.authenticate_cold(token, remote, verb, &path).await {
                Ok(identity) => identity,
                Err(resp) => return resp,
            },
        };
        self.record_authn("allowed", "ok");

        if let Err(wait) = self
            .limiters
            .for_role(identity.role)
            .check(identity.username.as_str(), Instant::now())
        {
            audit::record(Some(&identity), verb, &path, remote, "rate_limited", "rate");
            let secs = wait.as_secs().max(1);
            return status::response_with(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!(
                    "rate limit of {}/s for {} ({}) exceeded; retry in {secs}s",
                    self.config.rate_limits.for_role(identity.role).per_second,
                    identity.username,
                    identity.role
                ),
                Some(secs),
            );
        }
        audit::record(Some(&identity), verb, &path, remote, "allowed", "ok");

        let Some(upstream) = self.upstream.clone() else {
            return status::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &self.config.no_upstream_hint,
            );
        };
        if let Some(refused) = self.header_gate() {
            return refused;
        }
        if self.config.bootstrap_rbac
            && let Some(rbac) = &self.rbac
            && let Err(e) = rbac.ensure_user(&identity).await
        {
            return e.response();
        }
        self.forward(
            upstream,
            req,
            identity,
            Credential::Identity,
            verb,
            remote,
            rechecks,
        )
        .await
    }

    /// `GET /attestation?nonce=<hex>`: a fresh document for the caller's nonce and the CA it
    /// attests. No credential is needed (everything in it is public); each client address is
    /// metered with the cold-authentication budget, since each answer costs a document.
    async fn attestation(
        &self,
        req: &Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let Some(service) = &self.config.attestation else {
            return status::response(
                StatusCode::NOT_FOUND,
                "NotFound",
                "this master has no attester (it is not running in an enclave)",
            );
        };
        if req.method() != Method::GET {
            return status::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "GET /attestation?nonce=<hex>",
            );
        }
        let client = crate::ratelimit::client_key(remote.ip());
        if let Err(wait) = self.pre_auth.check(&client, Instant::now()) {
            let secs = wait.as_secs().max(1);
            return status::response_with(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!(
                    "too many attestation requests from {}; retry in {secs}s",
                    remote.ip()
                ),
                Some(secs),
            );
        }
        let nonce = match daas_verify_master::wire::parse_nonce_query(req.uri().query()) {
            Ok(nonce) => nonce,
            Err(e) => {
                return status::response(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("{e}; send GET /attestation?nonce=<16 to 64 bytes as hex>"),
                );
            }
        };
        match service.answer(nonce).await {
            Ok(answer) => status::json(StatusCode::OK, &answer),
            Err(e) => {
                warn!(error = %e, "attestation request failed");
                status::response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the enclave could not produce an attestation document; retry shortly",
                )
            }
        }
    }

    /// A token the verdict cache does not know: metered per client address and in total before
    /// any signature or chain work, then verified.
    async fn authenticate_cold(
        &self,
        token: &str,
        remote: SocketAddr,
        verb: &'static str,
        path: &str,
    ) -> Result<Arc<Identity>, Response<ProxyBody>> {
        let client = crate::ratelimit::client_key(remote.ip());
        if let Err(wait) = self.pre_auth.check(&client, Instant::now()) {
            self.deny(verb, path, remote, "throttled", "pre_auth");
            let secs = wait.as_secs().max(1);
            return Err(status::response_with(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                &format!("too many new tokens from {}; retry in {secs}s", remote.ip()),
                Some(secs),
            ));
        }
        let Ok(_slot) = self.cold_slots.clone().try_acquire_owned() else {
            self.deny(verb, path, remote, "error", "busy");
            return Err(status::response_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "too many tokens are being verified right now; retry shortly",
                Some(1),
            ));
        };
        match self.auth.authenticate(token).await {
            Ok(identity) => Ok(identity),
            Err(e) if e.is_unavailable() => {
                self.deny(verb, path, remote, "error", e.reason());
                warn!(error = %e, "stake view unavailable");
                Err(status::response_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the stake view is unavailable; retry shortly",
                    Some(1),
                ))
            }
            Err(e) => {
                self.deny(verb, path, remote, "denied", e.reason());
                if let Some(wait) = e.retry_after() {
                    let secs = wait.as_secs().max(1);
                    return Err(status::response_with(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        &format!("Unauthorized for now: {e}"),
                        Some(secs),
                    ));
                }
                Err(status::response(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("Unauthorized: {}", client_reason(&e)),
                ))
            }
        }
    }

    /// Counts a refused request and writes its audit line, sampled: a flood of refusals must
    /// not turn into a flood of log lines.
    fn deny(
        &self,
        verb: &str,
        path: &str,
        remote: SocketAddr,
        result: &'static str,
        reason: &'static str,
    ) {
        self.record_authn(result, reason);
        match self.denials.admit() {
            audit::Admit::Log { suppressed } => {
                if suppressed > 0 {
                    info!(target: "audit", suppressed, "authn denials not logged in the last second");
                }
                audit::record(None, verb, path, remote, result, reason);
            }
            audit::Admit::Suppress => {
                self.metrics.audit_suppressed.inc();
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // private; the two callers name every argument
    async fn forward(
        &self,
        upstream: Arc<Upstream<Incoming>>,
        mut req: Request<Incoming>,
        identity: Arc<Identity>,
        credential: Credential,
        verb: &'static str,
        remote: SocketAddr,
        rechecks: u64,
    ) -> Response<ProxyBody> {
        let upgrade = req.version() == Version::HTTP_11 && is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        if credential == Credential::Passthrough {
            prepare_passthrough(&mut parts.headers, upgrade, remote.ip());
        } else {
            prepare_upstream(&mut parts.headers, &identity, upgrade, remote.ip());
        }
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
        if long_running && !self.auth.sessions_allowed() {
            return status::response_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the chain has been out of sight too long for a watch, log stream or exec session to be revocable; retry shortly",
                Some(5),
            );
        }
        let hold = if long_running {
            // Each long-running request holds an upstream connection (and descriptors) for as
            // long as it lasts: bounded per identity and in total. It is also a session: it
            // ends when the credential that opened it is revoked.
            let Some(permits) = self.streams.acquire(&identity.username) else {
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
            };
            let session = self.auth.sessions().open(identity.clone());
            if self.auth.sessions().changes() != rechecks
                && let Some(stake) = &identity.stake
            {
                // A re-check ran between this request's verdict and its session: check it too.
                self.auth.revalidate(Scope::Stake(stake.id));
            }
            Hold::Stream {
                _permits: permits,
                session,
            }
        } else {
            match tokio::time::timeout(
                self.config.response_header_timeout,
                self.requests.acquire(&identity.username),
            )
            .await
            {
                Ok(slot) => Hold::Request { _slot: slot },
                Err(_) => {
                    return status::response_with(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        &format!(
                            "{} has had {} requests in progress for too long",
                            identity.username, self.config.max_requests_per_identity
                        ),
                        Some(5),
                    );
                }
            }
        };
        let client = if long_running {
            &upstream.http1
        } else {
            upstream.pooled_for(&identity.username)
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
                tokio::spawn(splice(
                    client_upgrade,
                    upstream_upgrade,
                    hold,
                    gauge,
                    identity,
                ));
                return resp.map(|_| empty());
            }
            return status::response(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                "the API server switched protocols without being asked to",
            );
        }

        strip_hop_by_hop(resp.headers_mut(), false);
        let gauge = (verb == "watch").then(|| {
            let g = self.metrics.open_watches.clone();
            g.inc();
            g
        });
        let guard = StreamGuard { gauge, _hold: hold };
        resp.map(move |body| Revocable::new(body, guard).boxed_unsync())
    }

    fn record_authn(&self, result: &'static str, reason: &'static str) {
        self.metrics
            .authn
            .get_or_create(&AuthnLabels { result, reason })
            .inc();
    }
}

/// What a client may learn about a refused token: the offline facts it can check itself
/// (format, time, audience, signature) by name; anything read from the chain only as "not
/// authorized" — the exact reason (epochs, amounts, minimums) goes to the audit log, so
/// probing the chain through the proxy costs more than reading it.
fn client_reason(e: &AuthError) -> String {
    match e {
        AuthError::Parse(_)
        | AuthError::Claims(_)
        | AuthError::Signature(_)
        | AuthError::AdminLifetime { .. } => e.to_string(),
        _ => "the stake record named by the token does not authorize it (revoked, unstaked, slashed, below the minimum, or not the signer's)".to_owned(),
    }
}

/// Splices an upgraded client connection (exec, attach, port-forward) with the API server's,
/// until either side closes or the session's credential is revoked.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    hold: Hold,
    gauge: prometheus_client::metrics::gauge::Gauge,
    identity: Arc<Identity>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(e) => {
            warn!(error = %e, "upgrade failed");
            return;
        }
    };
    gauge.inc();
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let revoked = hold.cancelled();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = revoked => {
            info!(target: "audit", user = %identity.username, "upgraded session closed: its credential was revoked");
        }
    }
    gauge.dec();
    drop(hold);
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

/// What a forwarded request holds until its response is done: a long-running request its
/// stream permits and live session, any other its per-identity request slot.
enum Hold {
    Stream {
        _permits: StreamPermits,
        session: Option<Session>,
    },
    Request {
        _slot: tokio::sync::OwnedSemaphorePermit,
    },
}

impl Hold {
    /// Resolves when the session's credential was revoked (never for plain requests).
    fn cancelled(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self {
            Hold::Stream {
                session: Some(s), ..
            } => Box::pin(s.cancelled()),
            _ => Box::pin(std::future::pending()),
        }
    }
}

/// Rides on a response body: releases what the request holds and decrements the watch gauge
/// when the body is dropped (client gone or stream ended).
struct StreamGuard {
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    _hold: Hold,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// A response body that ends with an error as soon as the session holding it is revoked
/// (watches and followed logs end within one checkpoint of the revocation).
struct Revocable {
    inner: Incoming,
    revoked: Pin<Box<dyn Future<Output = ()> + Send>>,
    guard: Option<StreamGuard>,
}

impl Revocable {
    fn new(inner: Incoming, guard: StreamGuard) -> Self {
        Revocable {
            inner,
            revoked: guard._hold.cancelled(),
            guard: Some(guard),
        }
    }
}

impl hyper::body::Body for Revocable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.guard.is_none() {
            return Poll::Ready(None);
        }
        if this.revoked.as_mut().poll(cx).is_ready() {
            this.guard = None;
            return Poll::Ready(Some(Err(
                "the credential of this session was revoked".into()
            )));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(BoxError::from))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.guard.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
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

/// A fixed number of concurrent slots per identity (requests other than long-running ones).
struct PerIdentity {
    per_identity: std::sync::Mutex<lru::LruCache<String, Arc<tokio::sync::Semaphore>>>,
    max: usize,
}

impl PerIdentity {
    fn new(max: usize) -> Self {
        PerIdentity {
            per_identity: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(65_536).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            max: max.max(1),
        }
    }

    /// Waits for one of `identity`'s slots.
    async fn acquire(&self, identity: &str) -> tokio::sync::OwnedSemaphorePermit {
        let mine = {
            let mut map = self
                .per_identity
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(s) = map.get(identity) {
                s.clone()
            } else {
                let s = Arc::new(tokio::sync::Semaphore::new(self.max));
                map.put(identity.to_owned(), s.clone());
                s
            }
        };
        match mine.acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; should it be, do not block the request.
            Err(_) => Arc::new(tokio::sync::Semaphore::new(1))
                .acquire_owned()
                .await
                .expect("a fresh semaphore is open"),
        }
    }
}

pub(crate) fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
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
