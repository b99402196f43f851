//! What the kubectl proxy costs: request latency and throughput directly against the stand-in
//! API server and through the proxy (TLS on both hops, Seal token from the cache, identity
//! headers, audit log), for small GETs and 500-item LISTs; then the memory of many open
//! watches.
//!
//! Run: `cargo bench -p nautilus-master --bench proxy` (add `-- --quick` for a short run;
//! `--secs S` per measurement, `--watches N`, `--log FILTER` for the tracing filter, default
//! `info` like the binary, written to a sink). See docs/performance.md.
//!
//! Everything runs in this process on one machine: stand-in API server (2 workers), proxy
//! (2 workers) and the load generator (2 workers). RSS is the whole process's.

#![allow(clippy::unwrap_used)] // bench: a failed setup step should panic

#[path = "../tests/support/proxy.rs"]
mod proxy;
mod support;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use daas_seal::Role;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use nautilus_master::proxy::{ProxyConfig, RateLimit, RoleRateLimits};
use proxy::RunningProxy;
use upstream::{Conn, Upstream, client_config};

const LIST: &str = "/api/v1/namespaces/x/configmaps?items=500";
const VERSION: &str = "/version";
const WATCH: &str = "/api/v1/namespaces/x/configmaps?watch=true&resourceVersion=1";

struct Opts {
    secs: f64,
    watches: usize,
    log: String,
}

impl Opts {
    fn parse() -> Self {
        let mut opts = Opts {
            secs: 4.0,
            watches: 5000,
            log: "info".into(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.secs = 1.5;
                    opts.watches = 500;
                }
                "--secs" => opts.secs = args.next().unwrap().parse().unwrap(),
                "--watches" => opts.watches = args.next().unwrap().parse().unwrap(),
                "--log" => opts.log = args.next().unwrap(),
                _ => {} // `--bench` from cargo, filters
            }
        }
        opts
    }
}

/// Where requests go: the stand-in directly (front-proxy client certificate) or the proxy.
#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: std::net::SocketAddr,
    base: String,
    tls: Arc<rustls::ClientConfig>,
}

struct Case {
    name: &'static str,
    path: &'static str,
    http2: bool,
    conns: usize,
    in_flight: usize,
}

const CASES: [Case; 6] = [
    Case {
        name: "GET /version, HTTP/1.1, 1 in flight",
        path: VERSION,
        http2: false,
        conns: 1,
        in_flight: 1,
    },
    Case {
        name: "GET /version, HTTP/2, 1 in flight",
        path: VERSION,
        http2: true,
        conns: 1,
        in_flight: 1,
    },
    Case {
        name: "GET /version, HTTP/1.1, 16 conns",
        path: VERSION,
        http2: false,
        conns: 16,
        in_flight: 16,
    },
    Case {
        name: "GET /version, HTTP/2, 16 streams",
        path: VERSION,
        http2: true,
        conns: 2,
        in_flight: 16,
    },
    Case {
        name: "LIST 500 (~560 KB), HTTP/2, 1 in flight",
        path: LIST,
        http2: true,
        conns: 1,
        in_flight: 1,
    },
    Case {
        name: "LIST 500 (~560 KB), HTTP/2, 8 streams",
        path: LIST,
        http2: true,
        conns: 1,
        in_flight: 8,
    },
];

struct Stats {
    lat: Vec<Duration>,
    per_sec: f64,
    errors: usize,
    /// Requests completed including warm-up (for CPU per request).
    total: usize,
    /// CPU time per thread group over the whole measurement, connection setup included.
    cpu: Cpu,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        support::load::percentile(&self.lat, p)
    }
}

async fn measure(target: &Target, case: &Case, token: &str, secs: f64) -> Stats {
    let cpu_before = Cpu::now();
    let mut conns = Vec::new();
    for _ in 0..case.conns {
        conns.push(Conn::connect(target.addr, target.tls.clone(), case.http2).await);
    }
    let warmup = Duration::from_millis(300);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs_f64(secs);
    let url = format!("{}{}", target.base, case.path);
    let auth = format!("Bearer {token}");
    let loops = (0..case.in_flight)
        .map(|i| {
            let conn = conns[i % conns.len()].clone();
            let (url, auth) = (url.clone(), auth.clone());
            move || {
                let (conn, url, auth) = (conn.clone(), url.clone(), auth.clone());
                async move { support::http::get(&conn, &url, &auth, &[]).await }
            }
        })
        .collect();
    let timed = support::load::timed_loops(loops, measure_from, end).await;
    drop(conns);
    Stats {
        per_sec: timed.lat.len() as f64 / secs,
        lat: timed.lat,
        errors: timed.errors,
        total: timed.total,
        cpu: Cpu::now().since(&cpu_before),
    }
}

/// On-CPU time (ns, from `/proc/self/task/*/schedstat`) of the stand-in's threads, the load
/// generator's, and everything else (the proxy's runtime; the main thread only waits).
#[derive(Clone, Copy, Default)]
struct Cpu {
    upstream: u64,
    client: u64,
    proxy: u64,
}

impl Cpu {
    fn now() -> Self {
        let mut cpu = Cpu::default();
        for (name, ns) in support::load::thread_cpu_ns() {
            match name.as_str() {
                c if c.starts_with("standin") => cpu.upstream += ns,
                c if c.starts_with("bench-client") => cpu.client += ns,
                _ => cpu.proxy += ns,
            }
        }
        cpu
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            upstream: self.upstream.saturating_sub(before.upstream),
            client: self.client.saturating_sub(before.client),
            proxy: self.proxy.saturating_sub(before.proxy),
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn metric(proxy: &RunningProxy, name: &str) -> f64 {
    let host = proxy.admin_url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

struct WatchRun {
    open_secs: f64,
    fanout_ms: f64,
    rss_before: u64,
    rss_open: u64,
    rss_closed: u64,
}

/// Opens `n` watches to `target`, over HTTP/2 with `per_conn` streams per connection or over
/// HTTP/1.1 with a connection each; checks each delivers one pushed event, closes them; RSS
/// before, while open, after close.
async fn watches(
    target: &Target,
    upstream: &Upstream,
    token: &str,
    n: usize,
    http2: bool,
    per_conn: usize,
) -> WatchRun {
    let per_conn = if http2 { per_conn } else { 1 };
    let rss_before = rss_kib();
    let started = Instant::now();
    let received = Arc::new(AtomicUsize::new(0));
    let headers = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::new();
    for _ in 0..n.div_ceil(per_conn) {
        conns.push(Conn::connect(target.addr, target.tls.clone(), http2).await);
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        let conn = conns[i / per_conn].clone();
        let req = Request::get(format!("{}{WATCH}", target.base))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (received, headers) = (received.clone(), headers.clone());
        tasks.push(tokio::spawn(async move {
            let resp = conn.send(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            headers.fetch_add(1, Ordering::SeqCst);
            let mut body = resp.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if frame.data_ref().is_some_and(|d| d.ends_with(b"\n")) {
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while upstream.open_watches() < n || headers.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} watches open upstream, {} answered",
            upstream.open_watches(),
            headers.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = rss_kib();
    let pushed = Instant::now();
    assert_eq!(
        upstream.push_event(r#"{"type":"ADDED","object":{"kind":"ConfigMap"}}"#),
        n
    );
    while received.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "event not delivered to all");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let fanout_ms = pushed.elapsed().as_secs_f64() * 1e3;
    for t in &tasks {
        t.abort();
    }
    drop(conns);
    while upstream.open_watches() > 0 {
        assert!(Instant::now() < deadline, "watches not closed upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    WatchRun {
        open_secs,
        fanout_ms,
        rss_before,
        rss_open,
        rss_closed: rss_kib(),
    }
}

fn main() {
    let opts = Opts::parse();
    support::http::log_to_sink(&opts.log);
    let upstream = Upstream::start();
    upstream.set_recording(false);
    let tmp = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        upstream: Some(upstream.config()),
        bootstrap_rbac: false,
        // The limiter runs (mutex + LRU per request) but never refuses.
        rate_limits: RoleRateLimits::uniform(RateLimit::new(1e9, 1e9)),
        // One identity opens all the watches and sends every request: the stream and
        // request caps run but never refuse.
        max_streams_per_identity: 1_000_000,
        max_streams: 1_000_000,
        max_requests_per_identity: 1_000_000,
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start(&tmp.path().join("tls"), config);
    let token = proxy.staker(Role::User).token(proxy.cluster, 0);
    let direct = Target {
        name: "direct",
        addr: upstream.addr,
        base: upstream.url.clone(),
        tls: client_config(
            &upstream.ca_pem,
            Some((&upstream.client_cert_pem, &upstream.client_key_pem)),
            &[b"h2", b"http/1.1"],
        ),
    };
    let proxied = Target {
        name: "proxy",
        addr: proxy.addr,
        base: proxy.url.clone(),
        tls: client_config(&proxy.ca_pem, None, &[b"h2", b"http/1.1"]),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();

    println!(
        "kubectl proxy bench: {:.1} s per measurement (+0.3 s warm-up), log filter {:?}, {} cores, RSS at start {:.1} MiB",
        opts.secs,
        opts.log,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rss_kib() as f64 / 1024.0
    );
    let n = opts.watches;
    let limit = nofile_limit();
    println!();
    println!(
        "Watches: {n} (RLIMIT_NOFILE {}; the proxied run needs about 2 × {n} descriptors: one \
         upstream connection per watch, both ends in this process)",
        limit.map_or("unknown".into(), |l| l.to_string())
    );
    if limit.is_some_and(|l| (l as usize) < 2 * n + 500) {
        println!("  too few file descriptors: raise `ulimit -n` or pass a smaller --watches");
    } else {
        println!();
        println!(
            "| Watches | open all (s) | one event to all (ms) | RSS before (MiB) | RSS open (MiB) | per watch (KiB) | RSS after close (MiB) |"
        );
        println!("|---|---|---|---|---|---|---|");
        rt.block_on(async {
            // Through the proxy first, so the direct baselines cannot lower its numbers by
            // reusing memory it freed; then again, to show that memory is reused, not leaked.
            let runs = [
                (&proxied, "proxy, HTTP/2 client", true, 250),
                (&direct, "direct, HTTP/2 (100 streams/conn)", true, 100),
                (&direct, "direct, HTTP/1.1 (conn each)", false, 1),
                (&proxied, "proxy again", true, 250),
            ];
            for (target, label, http2, per_conn) in runs {
                let run = watches(target, &upstream, &token, n, http2, per_conn).await;
                if target.name == "proxy" {
                    assert_eq!(metric(&proxy, "daas_proxy_open_watches"), 0.0);
                }
                let mib = |k: u64| k as f64 / 1024.0;
                println!(
                    "| {n}, {label} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    run.open_secs,
                    run.fanout_ms,
                    mib(run.rss_before),
                    mib(run.rss_open),
                    run.rss_open.saturating_sub(run.rss_before) as f64 / n as f64,
                    mib(run.rss_closed),
                );
            }
        });
    }
    println!();
    println!(
        "| Case | direct p50 / p99 µs | proxy p50 / p99 µs | added p50 / p99 µs | direct req/s | proxy req/s | proxy ÷ direct | CPU µs/req: stand-in, proxy | RSS after (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        for case in &CASES {
            let d = measure(&direct, case, &token, opts.secs).await;
            let p = measure(&proxied, case, &token, opts.secs).await;
            assert_eq!(
                d.errors + p.errors,
                0,
                "{}: errors {} / {}",
                case.name,
                d.errors,
                p.errors
            );
            let per_req = |ns: u64, n: usize| ns as f64 / 1e3 / n.max(1) as f64;
            println!(
                "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {:+.0} / {:+.0} | {:.0} | {:.0} | {:.2}× | {:.0}, {:.0} | {:.0} |",
                case.name,
                us(d.pct(0.5)),
                us(d.pct(0.99)),
                us(p.pct(0.5)),
                us(p.pct(0.99)),
                us(p.pct(0.5)) - us(d.pct(0.5)),
                us(p.pct(0.99)) - us(d.pct(0.99)),
                d.per_sec,
                p.per_sec,
                p.per_sec / d.per_sec,
                per_req(d.cpu.upstream, d.total),
                per_req(p.cpu.proxy, p.total),
                rss_kib() as f64 / 1024.0,
            );
        }
    });
    drop(proxy);
    drop(upstream);
    drop(rt);
}
