//! Prometheus metrics of the front door (served on the admin listener's `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) verb: &'static str,
    pub(crate) code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AuthnLabels {
    pub(crate) result: &'static str,
    pub(crate) reason: &'static str,
}

/// Values read at scrape time.
pub(crate) struct Scrape<'a> {
    pub(crate) cache: crate::auth::CacheStats,
    pub(crate) sessions: usize,
    /// From the chain follower, when there is one.
    pub(crate) undecodable_events: Option<u64>,
    /// The worker path's metrics, when it runs.
    pub(crate) workers: Option<&'a crate::workers::WorkerMetrics>,
}

/// All proxy metrics; cheap to update from any task.
pub struct Metrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) authn: Family<AuthnLabels, Counter>,
    pub(crate) upstream_seconds: Histogram,
    pub(crate) open_watches: Gauge,
    pub(crate) open_upgrades: Gauge,
    pub(crate) open_connections: Gauge,
    pub(crate) authn_cache_hits: Gauge,
    pub(crate) authn_cache_misses: Gauge,
    pub(crate) authn_cache_entries: Gauge,
    pub(crate) audit_suppressed: Counter,
    pub(crate) open_sessions: Gauge,
    pub(crate) chain_undecodable_events: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            requests: Family::default(),
            authn: Family::default(),
            // 0.5 ms … ~16 s.
            upstream_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            open_watches: Gauge::default(),
            open_upgrades: Gauge::default(),
            open_connections: Gauge::default(),
            authn_cache_hits: Gauge::default(),
            authn_cache_misses: Gauge::default(),
            authn_cache_entries: Gauge::default(),
            audit_suppressed: Counter::default(),
            open_sessions: Gauge::default(),
            chain_undecodable_events: Gauge::default(),
        }
    }

    /// Renders the text exposition format. The token-cache and session gauges are read here,
    /// at scrape time, rather than on every request.
    pub(crate) fn encode(&self, at_scrape: Scrape<'_>) -> String {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let cache = at_scrape.cache;
        self.authn_cache_hits.set(gauge(cache.hits));
        self.authn_cache_misses.set(gauge(cache.misses));
        self.authn_cache_entries
            .set(gauge(u64::try_from(cache.entries).unwrap_or(u64::MAX)));
        self.open_sessions
            .set(gauge(u64::try_from(at_scrape.sessions).unwrap_or(u64::MAX)));
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("daas_proxy");
        registry.register(
            "requests",
            "Requests answered, by Kubernetes verb and HTTP status code",
            self.requests.clone(),
        );
        registry.register(
            "authn",
            "Authentication decisions, by result and reason",
            self.authn.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding a request to the API server's response headers",
            self.upstream_seconds.clone(),
        );
        registry.register(
            "open_watches",
            "Watch responses currently streaming",
            self.open_watches.clone(),
        );
        registry.register(
            "open_upgrades",
            "Upgraded connections (exec, attach, port-forward) currently open",
            self.open_upgrades.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open",
            self.open_connections.clone(),
        );
        registry.register(
            "authn_cache_hits",
            "Token cache hits since start (as of the scrape)",
            self.authn_cache_hits.clone(),
        );
        registry.register(
            "authn_cache_misses",
            "Token cache misses since start",
            self.authn_cache_misses.clone(),
        );
        registry.register(
            "authn_cache_entries",
            "Tokens currently cached",
            self.authn_cache_entries.clone(),
        );
        registry.register(
            "audit_suppressed",
            "Audit records of refused requests not written (sampling under a flood)",
            self.audit_suppressed.clone(),
        );
        registry.register(
            "open_sessions",
            "Long-running requests registered for revocation (watches, logs -f, upgrades)",
            self.open_sessions.clone(),
        );
        if let Some(n) = at_scrape.undecodable_events {
            self.chain_undecodable_events.set(gauge(n));
            registry.register(
                "chain_undecodable_events",
                "Package events the chain follower could not decode since start (each dropped every cached verdict)",
                self.chain_undecodable_events.clone(),
            );
        }
        if let Some(workers) = at_scrape.workers {
            workers.register(&mut root);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &root);
        out
    }
}
