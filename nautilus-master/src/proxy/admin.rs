//! Health and metrics on a loopback listener of their own (`/healthz`, `/readyz`, `/metrics`),
//! kept off :8080 so the API server's own `/healthz`, `/readyz` and `/metrics` stay reachable
//! through the proxy and the proxy's internals are not exposed to the network.

use std::future::Future;
use std::sync::Arc;

use http::{Response, StatusCode};

use super::server::{Handler, ServeLimits, serve};
use super::{Proxy, ProxyBody, status};
use crate::auth::StakeView;

/// An extra readiness condition (e.g. "k3s supervisor reports ready").
pub type ReadyCheck = (String, Arc<dyn Fn() -> bool + Send + Sync>);

/// Serves `/healthz`, `/readyz` and `/metrics` (plain HTTP: bind it to loopback).
pub async fn serve_admin<V: StakeView + 'static>(
    proxy: Arc<Proxy<V>>,
    checks: Vec<ReadyCheck>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    let checks = Arc::new(checks);
    let handler: Handler = Arc::new(move |req, _remote| {
        let proxy = proxy.clone();
        let checks = checks.clone();
        Box::pin(async move {
            match req.uri().path() {
                "/healthz" | "/livez" => status::with_body(StatusCode::OK, "ok\n", "text/plain"),
                "/readyz" => readyz(&proxy, &checks).await,
                "/metrics" => status::with_body(
                    StatusCode::OK,
                    proxy.metrics().encode(super::metrics::Scrape {
                        cache: proxy.authenticator().cache_stats(),
                        sessions: proxy.authenticator().sessions().len(),
                        undecodable_events: proxy.authenticator().view().undecodable_events(),
                        workers: proxy.workers().map(|w| w.metrics()),
                    }),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                _ => status::with_body(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
            }
        })
    });
    serve(
        listener,
        None,
        ServeLimits::default(),
        handler,
        None,
        shutdown,
    )
    .await;
}

async fn readyz<V: StakeView + 'static>(
    proxy: &Proxy<V>,
    checks: &[ReadyCheck],
) -> Response<ProxyBody> {
    let mut lines = Vec::new();
    let mut ready = true;
    let mut check = |name: &str, ok: bool| {
        ready &= ok;
        lines.push(format!("[{}] {name}", if ok { "+" } else { "-" }));
    };
    match proxy.rbac() {
        Some(rbac) => check("upstream", rbac.upstream_ready().await),
        None => check("upstream (none configured)", false),
    }
    check("stake-view", proxy.authenticator().view().is_fresh());
    check("request-headers", proxy.request_headers_verified());
    for (name, f) in checks {
        check(name, f());
    }
    let verdict = if ready { "ok" } else { "not ready" };
    lines.push(format!("readyz check {}", verdict));
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    status::with_body(code, lines.join("\n") + "\n", "text/plain")
}
