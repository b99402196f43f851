//! What the kubectl proxy costs in front of the real kube-apiserver v1.36 (`../shared/peers/k8s`,
//! on an etcd shim of its own): the same requests, with the same identity, sent straight to the
//! API server (front-proxy client certificate plus the `X-Remote-*` headers the proxy would
//! send) and through the proxy (Seal token, verdict cache hit). The ratio users feel.
//!
//! Run: `cargo bench -p nautilus-master --bench proxy_apiserver` (add `-- --quick`; `--secs S`
//! per round, `--items N` ConfigMaps to list, `--rounds R` alternating rounds, `--curve 1,4,16`
//! client counts of the cost curve, `--log FILTER`).
//! Needs `DAAS_K8S_PEER_DIR`; without it the bench prints why and exits 0, unless
//! `DAAS_REQUIRE_PEERS=1`. See docs/performance.md.
//!
//! In this process: the proxy (2 workers) and the load generator (2 workers). Outside it:
//! kube-apiserver, its controller manager and scheduler, and the etcd shim, all on the same
//! 2 cores. CPU per request is read from `/proc` for the proxy's threads and for the
//! kube-apiserver process.

#![allow(clippy::unwrap_used)] // bench: a failed setup step should panic

mod support;
#[path = "../tests/support/mod.rs"]
mod tsupport;
// `support::http` names the client as `crate::upstream`, as the other proxy benches include it.
use tsupport::upstream;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use daas_seal::Role;
use http::{HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use nautilus_master::proxy::{ProxyConfig, RateLimit, RoleRateLimits};
use tsupport::proxy::{RunningProxy, peer_upstream};
use tsupport::upstream::{Conn, client_config};

struct Opts {
    secs: f64,
    rounds: usize,
    items: usize,
    log: String,
    /// Client counts of the cost curve.
    curve: Vec<usize>,
}

impl Opts {
    fn parse() -> Self {
        let mut opts = Opts {
            secs: 2.0,
            rounds: 4,
            items: 500,
            log: "info".into(),
            curve: vec![1, 4, 16, 64, 256],
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.secs = 0.6;
                    opts.rounds = 2;
                    opts.items = 100;
                    opts.curve = vec![1, 16, 64];
                }
                "--secs" => opts.secs = args.next().unwrap().parse().unwrap(),
                "--rounds" => opts.rounds = args.next().unwrap().parse::<usize>().unwrap().max(2),
                "--items" => opts.items = args.next().unwrap().parse().unwrap(),
                "--curve" => {
                    opts.curve = args
                        .next()
                        .unwrap()
                        .split(',')
                        .map(|n| n.parse().unwrap())
                        .collect();
                }
                "--log" => opts.log = args.next().unwrap(),
                _ => {} // `--bench` from cargo, filters
            }
        }
        opts
    }
}

/// Where requests go, and what they carry besides the path.
struct Target {
    name: &'static str,
    addr: std::net::SocketAddr,
    base: String,
    tls: Arc<rustls::ClientConfig>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

struct Case {
    name: String,
    path: String,
    http2: bool,
    conns: usize,
    in_flight: usize,
}

#[derive(Default)]
struct Pooled {
    lat: Vec<Duration>,
    secs: f64,
    done: usize,
    errors: usize,
    /// Requests completed including warm-up, and the CPU they took (ns).
    total: usize,
    proxy_ns: u64,
    apiserver_ns: u64,
}

impl Pooled {
    /// Percentile `p` in µs (`lat` sorted).
    fn pct(&self, p: f64) -> f64 {
        support::load::percentile(&self.lat, p).as_secs_f64() * 1e6
    }

    fn per_sec(&self) -> f64 {
        self.done as f64 / self.secs.max(1e-9)
    }

    fn cpu_us(&self, ns: u64) -> f64 {
        ns as f64 / 1e3 / self.total.max(1) as f64
    }
}

/// On-CPU ns of a process (utime + stime from `/proc/PID/stat`, in clock ticks of 10 ms).
fn process_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks * 10_000_000
}

/// The proxy's share of this process's CPU: every thread but the load generator's.
fn proxy_cpu_ns() -> u64 {
    support::load::thread_cpu_ns()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("bench-client"))
        .map(|(_, ns)| ns)
        .sum()
}

fn apiserver_pid(run_dir: &Path) -> u32 {
    let text = std::fs::read_to_string(run_dir.join("pids/kube-apiserver.pid")).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

async fn round(
    target: &Target,
    case: &Case,
    token: &str,
    secs: f64,
    apiserver: u32,
    into: &mut Pooled,
) {
    let (proxy0, api0) = (proxy_cpu_ns(), process_cpu_ns(apiserver));
    let mut conns = Vec::new();
    for _ in 0..case.conns {
        conns.push(Conn::connect(target.addr, target.tls.clone(), case.http2).await);
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(200);
    let end = measure_from + Duration::from_secs_f64(secs);
    let url = format!("{}{}", target.base, case.path);
    let auth = format!("Bearer {token}");
    let headers = Arc::new(target.headers.clone());
    let loops = (0..case.in_flight)
        .map(|i| {
            let conn = conns[i % conns.len()].clone();
            let (url, auth, headers) = (url.clone(), auth.clone(), headers.clone());
            move || {
                let (conn, url, auth, headers) =
                    (conn.clone(), url.clone(), auth.clone(), headers.clone());
                async move { support::http::get(&conn, &url, &auth, &headers).await }
            }
        })
        .collect();
    let timed = support::load::timed_loops(loops, measure_from, end).await;
    drop(conns);
    into.done += timed.lat.len();
    into.lat.extend(timed.lat);
    into.secs += secs;
    into.errors += timed.errors;
    into.total += timed.total;
    into.proxy_ns += proxy_cpu_ns().saturating_sub(proxy0);
    into.apiserver_ns += process_cpu_ns(apiserver).saturating_sub(api0);
}

/// Creates namespace `bench` and `items` ConfigMaps in it (about 300 bytes each, like small
/// real ones), straight to the API server as `target`'s identity.
async fn preload(target: &Target, items: usize) {
    let conn = Conn::connect(target.addr, target.tls.clone(), true).await;
    let post = |path: &str, body: String| {
        let mut req = Request::post(format!("{}{path}", target.base))
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &target.headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let conn = conn.clone();
        async move {
            let resp = conn.send(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(
                status == 201 || status == 409,
                "create: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    };
    post(
        "/api/v1/namespaces",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}"#.into(),
    )
    .await;
    let value = "v".repeat(200);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for i in 0..items {
        pending.push(post(
            "/api/v1/namespaces/bench/configmaps",
            format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","labels":{{"app":"bench"}}}},"data":{{"key":"{value}"}}}}"#
            ),
        ));
        if pending.len() >= 16 {
            futures_util::StreamExt::next(&mut pending).await;
        }
    }
    while futures_util::StreamExt::next(&mut pending).await.is_some() {}
}

/// Bytes and DATA frames of one response to `path` from `target` over HTTP/2: how the body
/// arrives shapes what relaying it costs.
async fn frames(target: &Target, path: &str, token: &str) -> (usize, usize) {
    let conn = Conn::connect(target.addr, target.tls.clone(), true).await;
    let mut req = Request::get(format!("{}{path}", target.base))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "application/json");
    for (name, value) in &target.headers {
        req = req.header(name, value);
    }
    let resp = conn
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut bytes, mut count) = (0, 0);
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            bytes += data.len();
            count += 1;
        }
    }
    (bytes, count)
}

fn main() {
    let opts = Opts::parse();
    support::http::log_to_sink(&opts.log);
    let Some(peer_dir) = tsupport::peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset")
    else {
        println!(
            "proxy vs kube-apiserver bench skipped: no kube-apiserver peer (DAAS_K8S_PEER_DIR)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let api = tsupport::ApiServerOnShim::start(&peer_dir, tmp.path(), &[]);
    let apiserver = apiserver_pid(&api.run_dir);
    let config = ProxyConfig {
        upstream: Some(peer_upstream(&api.url(), &api.pki())),
        // One admin identity sends everything, as a CI pipeline would: its rate is raised
        // (the point of the per-role setting); the request slots run but never refuse.
        rate_limits: RoleRateLimits {
            admin: RateLimit::unlimited(),
            ..RoleRateLimits::default()
        },
        max_requests_per_identity: 1_000_000,
        ..ProxyConfig::default()
    };
    // The cost curve opens up to 256 connections from this one address (and the previous
    // round's may still be closing): the per-address cap runs but does not refuse.
    let limits = nautilus_master::proxy::ServeLimits {
        max_connections_per_ip: 4096,
        ..nautilus_master::proxy::ServeLimits::default()
    };
    let proxy = RunningProxy::start_with(&tmp.path().join("tls"), config, limits);
    let admin = proxy.staker(Role::Admin);
    let token = admin.token(proxy.cluster, 0);

    // Straight to the API server as the identity the proxy forwards for this token.
    let pki = api.pki();
    let read = |name: &str| std::fs::read_to_string(pki.join(name)).unwrap();
    let remote = |name: &'static str, value: String| {
        (
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        )
    };
    let direct = Target {
        name: "direct",
        addr: format!("127.0.0.1:{}", api.port).parse().unwrap(),
        base: api.url(),
        tls: client_config(
            &read("ca.crt"),
            Some((
                &read("front-proxy-client.crt"),
                &read("front-proxy-client.key"),
            )),
            &[b"h2", b"http/1.1"],
        ),
        headers: vec![
            remote("x-remote-user", format!("sui:{}", admin.address())),
            remote("x-remote-uid", admin.stake.to_string()),
            remote("x-remote-group", "k3s-daas:admin".into()),
            remote("x-remote-group", "system:authenticated".into()),
            remote(
                "x-remote-extra-k3s-daas.io%2fstake-id",
                admin.stake.to_string(),
            ),
        ],
    };
    let proxied = Target {
        name: "proxy",
        addr: proxy.addr,
        base: proxy.url.clone(),
        tls: client_config(&proxy.ca_pem, None, &[b"h2", b"http/1.1"]),
        headers: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    let loaded = Instant::now();
    rt.block_on(preload(&direct, opts.items));
    let small = "/api/v1/namespaces/bench/configmaps/cm-0".to_owned();
    let list = "/api/v1/namespaces/bench/configmaps".to_owned();
    let mut cases: Vec<Case> = [
        (
            "GET /version, HTTP/1.1, 1 in flight",
            "/version".to_owned(),
            false,
            1,
            1,
        ),
        (
            "GET /version, HTTP/2, 1 in flight",
            "/version".to_owned(),
            true,
            1,
            1,
        ),
        (
            "GET a ConfigMap, HTTP/2, 1 in flight",
            small.clone(),
            true,
            1,
            1,
        ),
        (
            "GET /version, HTTP/1.1, 16 conns",
            "/version".to_owned(),
            false,
            16,
            16,
        ),
        (
            "GET a ConfigMap, HTTP/2, 16 streams on 2 conns",
            small.clone(),
            true,
            2,
            16,
        ),
        (
            "LIST ConfigMaps, HTTP/2, 1 in flight",
            list.clone(),
            true,
            1,
            1,
        ),
        ("LIST ConfigMaps, HTTP/2, 4 streams", list, true, 1, 4),
    ]
    .map(|(name, path, http2, conns, in_flight)| Case {
        name: name.replace("ConfigMaps", &format!("{} ConfigMaps", opts.items)),
        path,
        http2,
        conns,
        in_flight,
    })
    .into();
    // The cost curve: more clients, each on an HTTP/2 connection of its own with one request
    // in flight (one identity: through the proxy they share its upstream connection).
    for clients in &opts.curve {
        cases.push(Case {
            name: format!("curve: GET a ConfigMap, {clients} clients (a connection each)"),
            path: small.clone(),
            http2: true,
            conns: *clients,
            in_flight: *clients,
        });
    }

    println!(
        "kubectl proxy vs the real kube-apiserver: {} alternating rounds of {:.1} s per target and case (+0.2 s warm-up each), {} ConfigMaps loaded in {:.1} s, log filter {:?}, {} cores",
        opts.rounds,
        opts.secs,
        opts.items,
        loaded.elapsed().as_secs_f64(),
        opts.log,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let list_path = "/api/v1/namespaces/bench/configmaps";
    for target in [&direct, &proxied] {
        let (bytes, count) = rt.block_on(frames(target, list_path, &token));
        println!(
            "one LIST of {} ConfigMaps via {}: {bytes} bytes in {count} body frames ({} bytes per frame)",
            opts.items,
            target.name,
            bytes / count.max(1)
        );
    }
    println!();
    println!(
        "| Case | direct p50 / p99 µs | proxy p50 / p99 µs | added p50 µs | p99 proxy ÷ direct | req/s direct → proxy | proxy ÷ direct | CPU µs/req: apiserver direct, apiserver + proxy proxied |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        for case in &cases {
            let (mut d, mut p) = (Pooled::default(), Pooled::default());
            // Alternate (direct, proxy, proxy, direct, …) so drift on the shared machine
            // falls on both.
            for r in 0..opts.rounds {
                let order = if r % 2 == 0 {
                    [(&direct, &mut d), (&proxied, &mut p)]
                } else {
                    [(&proxied, &mut p), (&direct, &mut d)]
                };
                for (target, into) in order {
                    round(target, case, &token, opts.secs, apiserver, into).await;
                    assert_eq!(into.errors, 0, "{}: {} errors via {}", case.name, into.errors, target.name);
                }
            }
            d.lat.sort_unstable();
            p.lat.sort_unstable();
            println!(
                "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {:+.0} | {:.2}× | {:.0} → {:.0} | {:.2}× | {:.0}; {:.0} + {:.0} |",
                case.name,
                d.pct(0.5),
                d.pct(0.99),
                p.pct(0.5),
                p.pct(0.99),
                p.pct(0.5) - d.pct(0.5),
                p.pct(0.99) / d.pct(0.99).max(1e-9),
                d.per_sec(),
                p.per_sec(),
                p.per_sec() / d.per_sec().max(1e-9),
                d.cpu_us(d.apiserver_ns),
                p.cpu_us(p.apiserver_ns),
                p.cpu_us(p.proxy_ns),
            );
        }
    });
    drop(proxy);
    drop(rt);
    drop(api);
}
