//! What the parent/enclave bridge adds to a kubectl request: the real proxy in front of the
//! stand-in API server, reached (a) directly on its TCP listener and (b) through the bridge as
//! production chains it: parent ingress (TCP) → "vsock" → enclave-side ingress forwarder → the
//! proxy's TCP listener. Both in the same run, same client code, same Seal token.
//!
//! Run: `cargo bench -p nautilus-master --bench proxy_bridge` (add `-- --quick` for a short
//! run; `--secs S` per target and case, split into `--rounds N` that alternate direct and
//! bridged; `--log FILTER` for the tracing filter, default `info` like the binaries, written to
//! a sink). See docs/performance.md.
//!
//! The "vsock" is the bridge crate's Unix-socket stand-in (`UnixVsock`; this machine has no
//! vsock loopback), so the figure is the bridge's own cost, two more hops and two splices, not
//! Nitro's vsock latency. Everything runs in this process on one machine:
//! - the stand-in API server (2 workers, threads `standin-*`);
//! - the proxy (2 workers) with the enclave side of the bridge on the same runtime, as in
//!   `serve` inside the enclave;
//! - the parent bridge on a runtime of its own (2 workers, `bridge-parent`), as the separate
//!   `nautilus-master bridge` process on the parent instance;
//! - the load generator (2 workers, `bench-client`).

#![allow(clippy::unwrap_used)] // bench: a failed setup step should panic

#[path = "../tests/support/proxy.rs"]
mod proxy;
mod support;
#[path = "../tests/support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_bridge::{
    Bridge, BridgeConfig, EnclaveConfig, EnclaveSide, IngressForward, IngressRoute, Limits,
    PARENT_CID, UnixVsock,
};
use daas_seal::Role;
use nautilus_master::proxy::{ProxyConfig, RateLimit, RoleRateLimits};
use proxy::RunningProxy;
use upstream::{Conn, Upstream, client_config};

const LIST: &str = "/api/v1/namespaces/x/configmaps?items=500";
const VERSION: &str = "/version";

/// The enclave's CID and the vsock port of the kubectl route (as in docs/bridge.md).
const ENCLAVE_CID: u32 = 16;
const KUBECTL_PORT: u32 = 8080;

struct Opts {
    secs: f64,
    rounds: usize,
    quick: bool,
    log: String,
}

impl Opts {
    fn parse() -> Self {
        let mut opts = Opts {
            secs: 4.0,
            rounds: 4,
            quick: false,
            log: "info".into(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.secs = 0.8;
                    opts.rounds = 2;
                    opts.quick = true;
                }
                "--secs" => opts.secs = args.next().unwrap().parse().unwrap(),
                "--rounds" => opts.rounds = args.next().unwrap().parse().unwrap(),
                "--log" => opts.log = args.next().unwrap(),
                _ => {} // `--bench` from cargo, filters
            }
        }
        opts
    }
}

/// Where requests go: the proxy's own listener, or the parent bridge's ingress.
struct Target {
    addr: SocketAddr,
    base: String,
}

struct Case {
    name: &'static str,
    path: &'static str,
    http2: bool,
    conns: usize,
    in_flight: usize,
    /// A new TCP + TLS connection for every request (one request per connection).
    fresh: bool,
}

const fn case(name: &'static str, path: &'static str, http2: bool, conns: usize) -> Case {
    Case {
        name,
        path,
        http2,
        conns,
        in_flight: conns,
        fresh: false,
    }
}

const CASES: [Case; 7] = [
    case("GET /version, HTTP/1.1, 1 in flight", VERSION, false, 1),
    case("GET /version, HTTP/2, 1 in flight", VERSION, true, 1),
    Case {
        fresh: true,
        ..case(
            "new connection + GET /version, HTTP/1.1, 1 at a time",
            VERSION,
            false,
            1,
        )
    },
    case("GET /version, HTTP/1.1, 16 conns", VERSION, false, 16),
    Case {
        in_flight: 16,
        ..case(
            "GET /version, HTTP/2, 16 streams on 2 conns",
            VERSION,
            true,
            2,
        )
    },
    case("LIST 500 (~560 KB), HTTP/2, 1 in flight", LIST, true, 1),
    Case {
        in_flight: 8,
        ..case("LIST 500 (~560 KB), HTTP/2, 8 streams", LIST, true, 1)
    },
];

struct Stats {
    lat: Vec<Duration>,
    per_sec: f64,
    errors: usize,
    /// Requests completed including warm-up (for CPU per request).
    total: usize,
    cpu: Cpu,
}

impl Stats {
    /// Pools rounds of one target (latencies, counts, CPU); `per_sec` over their total time.
    fn pool(rounds: Vec<Stats>, secs: f64) -> Stats {
        let mut all = Stats {
            lat: Vec::new(),
            per_sec: 0.0,
            errors: 0,
            total: 0,
            cpu: Cpu::default(),
        };
        for r in rounds {
            all.lat.extend(r.lat);
            all.errors += r.errors;
            all.total += r.total;
            all.cpu = all.cpu.plus(&r.cpu);
        }
        all.lat.sort_unstable();
        all.per_sec = all.lat.len() as f64 / secs;
        all
    }

    fn pct(&self, p: f64) -> Duration {
        support::load::percentile(&self.lat, p)
    }
}

async fn measure(
    target: &Target,
    tls: &Arc<rustls::ClientConfig>,
    case: &Case,
    token: &str,
    secs: f64,
) -> Stats {
    let cpu_before = Cpu::now();
    let mut conns = Vec::new();
    if !case.fresh {
        for _ in 0..case.conns {
            conns.push(Conn::connect(target.addr, tls.clone(), case.http2).await);
        }
    }
    let warmup = Duration::from_millis(200);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs_f64(secs);
    let url = format!("{}{}", target.base, case.path);
    let auth = format!("Bearer {token}");
    let loops = (0..case.in_flight)
        .map(|i| {
            let conn = conns.get(i % case.conns).cloned();
            let (url, auth, tls, addr) = (url.clone(), auth.clone(), tls.clone(), target.addr);
            let (http2, fresh) = (case.http2, case.fresh);
            move || {
                let (conn, url, auth, tls) = (conn.clone(), url.clone(), auth.clone(), tls.clone());
                async move {
                    if fresh {
                        let c = Conn::connect(addr, tls, http2).await;
                        support::http::get(&c, &url, &auth, &[]).await
                    } else {
                        support::http::get(conn.as_ref().unwrap(), &url, &auth, &[]).await
                    }
                }
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

/// On-CPU time (ns, from `/proc/self/task/*/schedstat`) by thread group: the stand-in, the
/// load generator, the parent bridge, and everything else (the proxy's runtime, which also
/// runs the enclave side of the bridge; the main thread only waits).
#[derive(Clone, Copy, Default)]
struct Cpu {
    upstream: u64,
    client: u64,
    parent: u64,
    enclave: u64,
}

impl Cpu {
    fn now() -> Self {
        let mut cpu = Cpu::default();
        for (name, ns) in support::load::thread_cpu_ns() {
            match name.as_str() {
                c if c.starts_with("standin") => cpu.upstream += ns,
                c if c.starts_with("bench-client") => cpu.client += ns,
                c if c.starts_with("bridge-parent") => cpu.parent += ns,
                _ => cpu.enclave += ns,
            }
        }
        cpu
    }

    fn plus(&self, other: &Cpu) -> Cpu {
        Cpu {
            upstream: self.upstream + other.upstream,
            client: self.client + other.client,
            parent: self.parent + other.parent,
            enclave: self.enclave + other.enclave,
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            upstream: self.upstream.saturating_sub(before.upstream),
            client: self.client.saturating_sub(before.client),
            parent: self.parent.saturating_sub(before.parent),
            enclave: self.enclave.saturating_sub(before.enclave),
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
        max_streams_per_identity: 1_000_000,
        max_streams: 1_000_000,
        max_requests_per_identity: 1_000_000,
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start(&tmp.path().join("tls"), config);
    let token = proxy.staker(Role::User).token(proxy.cluster, 0);

    // Both sides of the bridge over one socket directory (created 0700 by `UnixVsock`).
    let sockets = tmp.path().join("vsock");
    let parent_vsock = Arc::new(UnixVsock::new(&sockets, PARENT_CID).unwrap());
    let enclave_vsock = Arc::new(UnixVsock::new(&sockets, ENCLAVE_CID).unwrap());
    // Inside the enclave: vsock 8080 → the proxy's listener, on the proxy's runtime.
    let enclave = proxy
        .runtime
        .block_on(EnclaveSide::start(
            EnclaveConfig {
                ingress: vec![IngressForward {
                    vsock_port: KUBECTL_PORT,
                    connect: proxy.addr,
                }],
                ..EnclaveConfig::default()
            },
            enclave_vsock,
        ))
        .unwrap();
    // On the parent: TCP → vsock 8080, default limits (16 KiB buffers), as `bridge` runs.
    let parent_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bridge-parent")
        .enable_all()
        .build()
        .unwrap();
    let parent = parent_rt
        .block_on(Bridge::start(
            BridgeConfig {
                enclave_cid: ENCLAVE_CID,
                ingress: vec![IngressRoute {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    vsock_port: KUBECTL_PORT,
                }],
                egress: None,
                credentials: None,
                limits: Limits::default(),
            },
            parent_vsock,
        ))
        .unwrap();
    let bridge_addr = parent.ingress_addrs()[0];
    let direct = Target {
        addr: proxy.addr,
        base: proxy.url.clone(),
    };
    let bridged = Target {
        addr: bridge_addr,
        base: format!("https://{bridge_addr}"),
    };
    // The proxy's certificate names 127.0.0.1, where the bridge listens too.
    let tls = client_config(&proxy.ca_pem, None, &[b"h2", b"http/1.1"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();

    println!(
        "proxy through the bridge vs direct{}: {:.1} s per target and case in {} alternating rounds (+0.2 s warm-up each), log filter {:?}, {} cores",
        if opts.quick { " (--quick)" } else { "" },
        opts.secs,
        opts.rounds,
        opts.log,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "  direct: client -> proxy {}; bridged: client -> parent ingress {bridge_addr} -> unix \"vsock\" {ENCLAVE_CID}.{KUBECTL_PORT} -> enclave forwarder -> proxy",
        proxy.addr
    );
    println!();
    println!(
        "| Case | direct p50 / p99 µs | bridged p50 / p99 µs | added p50 / p99 µs | direct req/s | bridged req/s | bridged ÷ direct | CPU µs/req: proxy direct → proxy + enclave side bridged, parent bridge |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        for case in &CASES {
            // Alternating rounds (direct, bridged, bridged, direct, ...), so drift in the
            // machine's load hits both alike.
            let slice = opts.secs / opts.rounds as f64;
            let (mut ds, mut bs) = (Vec::new(), Vec::new());
            for round in 0..opts.rounds {
                if round % 2 == 0 {
                    ds.push(measure(&direct, &tls, case, &token, slice).await);
                    bs.push(measure(&bridged, &tls, case, &token, slice).await);
                } else {
                    bs.push(measure(&bridged, &tls, case, &token, slice).await);
                    ds.push(measure(&direct, &tls, case, &token, slice).await);
                }
            }
            let d = Stats::pool(ds, opts.secs);
            let b = Stats::pool(bs, opts.secs);
            assert_eq!(
                d.errors + b.errors,
                0,
                "{}: errors {} / {}",
                case.name,
                d.errors,
                b.errors
            );
            let per_req = |ns: u64, n: usize| ns as f64 / 1e3 / n.max(1) as f64;
            println!(
                "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {:+.0} / {:+.0} | {:.0} | {:.0} | {:.2}× | {:.0} → {:.0}, {:.0} |",
                case.name,
                us(d.pct(0.5)),
                us(d.pct(0.99)),
                us(b.pct(0.5)),
                us(b.pct(0.99)),
                us(b.pct(0.5)) - us(d.pct(0.5)),
                us(b.pct(0.99)) - us(d.pct(0.99)),
                d.per_sec,
                b.per_sec,
                b.per_sec / d.per_sec,
                per_req(d.cpu.enclave, d.total),
                per_req(b.cpu.enclave, b.total),
                per_req(b.cpu.parent, b.total),
            );
        }
    });
    let p = parent.counters().snapshot();
    let e = enclave.counters().snapshot();
    println!();
    println!(
        "parent bridge: {} ingress connections, {} B toward the enclave, {} B back, {} failures; enclave side: {} failures",
        p.ingress_connections, p.bytes_in, p.bytes_out, p.failures, e.failures
    );
    assert_eq!(p.failures + e.failures, 0, "the bridge reported failures");
    drop(rt);
    parent_rt.block_on(parent.shutdown());
    proxy.runtime.block_on(enclave.shutdown());
    drop(parent_rt);
    drop(proxy);
    drop(upstream);
}
