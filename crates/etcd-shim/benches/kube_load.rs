//! kube-apiserver-style load against real etcd and the encrypting shim.
//!
//! ```text
//! cargo bench -p daas-etcd-shim --bench kube_load                 # ~4 min, 5 s per case
//! cargo bench -p daas-etcd-shim --bench kube_load -- --quick      # CI smoke, ~20 s
//!   options: --secs S (per case), --targets abcde, --cases 123456, --keys N, --clients N (all
//!   cases but 6), --disk-cache-mib M (embedded targets)
//!   env: ETCD_BIN (default `etcd` on PATH), KUBE_LOAD_DIR (where data dirs go; default $TMPDIR)
//! ```
//!
//! Targets, each started fresh and stopped before the next one:
//! (a) etcd directly, (b) shim → etcd, (c) shim embedded, (d) shim embedded with the null
//! cipher, (e) shim → etcd with the null cipher. Workloads follow the reference method of
//! `shared/notes/etcd-for-kube-apiserver.md` §7.2 (8 gRPC connections shared round-robin by the
//! client tasks, 1 KiB values, keys `/registry/bench/kNNNNNNNN` over a 10,000-key space, wall
//! clock bound per case). Client, shims and etcd share this machine's cores.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use daas_envelope::{DataKey, KeyRing};
use daas_etcd_proto::compare::{CompareResult, CompareTarget, TargetUnion};
use daas_etcd_proto::kv_client::KvClient;
use daas_etcd_proto::request_op::Request;
use daas_etcd_proto::response_op::Response;
use daas_etcd_proto::watch_client::WatchClient;
use daas_etcd_proto::watch_request::RequestUnion;
use daas_etcd_proto::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use daas_etcd_shim::{
    EmbeddedBackend, EmbeddedConfig, EtcdBackend, EtcdConfig, EtcdShim, Keys, Listen, Listener,
    ServeOptions, ShimOptions, serve,
};
use futures_util::StreamExt;
use tonic::transport::{Channel, Endpoint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const VALUE_LEN: usize = 1024;
const CONNECTIONS: usize = 8;
const LIST_LIMIT: i64 = 500;
const PREFIX: &str = "/registry/bench/";
const PREFIX_END: &str = "/registry/bench0";
const CREATE_PREFIX: &str = "/registry/bench-create/";
const WATCH_PREFIX: &str = "/registry/bench-watch/";
const WATCH_PREFIX_END: &str = "/registry/bench-watch0";

// ----------------------------------------------------------------------------- options

/// `--clients N`: every case but the single-client put runs with N clients (the cost curve).
static CLIENTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

#[derive(Clone, Debug)]
struct Options {
    quick: bool,
    case_time: Duration,
    keys: u64,
    targets: Vec<Target>,
    cases: Vec<Case>,
    base_dir: PathBuf,
    etcd_bin: String,
    /// redb's page cache for the embedded targets (`--disk-cache-mib`).
    disk_cache_bytes: usize,
}

fn parse_options() -> Result<Options, BoxError> {
    let mut quick = false;
    let mut secs: Option<f64> = None;
    let mut keys: Option<u64> = None;
    let mut disk_cache_bytes = daas_etcd_shim::DEFAULT_DISK_CACHE;
    let mut targets = Target::ALL.to_vec();
    let mut cases = Case::ALL.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--secs" => secs = Some(args.next().ok_or("--secs needs a value")?.parse()?),
            "--keys" => keys = Some(args.next().ok_or("--keys needs a value")?.parse()?),
            "--clients" => {
                let n: usize = args.next().ok_or("--clients needs a value")?.parse()?;
                CLIENTS.set(n.max(1)).map_err(|_| "--clients given twice")?;
            }
            "--disk-cache-mib" => {
                let mib: usize = args
                    .next()
                    .ok_or("--disk-cache-mib needs a value")?
                    .parse()?;
                disk_cache_bytes = mib << 20;
            }
            "--targets" => {
                let list = args.next().ok_or("--targets needs e.g. abcde")?;
                targets = Target::ALL
                    .iter()
                    .copied()
                    .filter(|t| list.contains(t.letter()))
                    .collect();
            }
            "--cases" => {
                let list = args.next().ok_or("--cases needs e.g. 123456")?;
                cases = Case::ALL
                    .iter()
                    .copied()
                    .filter(|c| list.contains(char::from(b'0' + c.number())))
                    .collect();
            }
            // `cargo bench` passes `--bench`; libtest-style filters are ignored too.
            _ => {}
        }
    }
    let case_time = Duration::from_secs_f64(secs.unwrap_or(if quick { 0.4 } else { 5.0 }));
    let keys = keys.unwrap_or(if quick { 2_000 } else { 10_000 });
    if keys < LIST_LIMIT as u64 {
        return Err(format!("--keys must be at least {LIST_LIMIT}").into());
    }
    let base_dir = std::env::var_os("KUBE_LOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let etcd_bin = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    Ok(Options {
        quick,
        case_time,
        keys,
        targets,
        cases,
        base_dir,
        etcd_bin,
        disk_cache_bytes,
    })
}

// ----------------------------------------------------------------------------- targets

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Etcd,
    ShimEtcd,
    ShimEmbedded,
    ShimEmbeddedNull,
    ShimEtcdNull,
}

impl Target {
    const ALL: [Target; 5] = [
        Target::Etcd,
        Target::ShimEtcd,
        Target::ShimEmbedded,
        Target::ShimEmbeddedNull,
        Target::ShimEtcdNull,
    ];

    fn letter(self) -> char {
        match self {
            Target::Etcd => 'a',
            Target::ShimEtcd => 'b',
            Target::ShimEmbedded => 'c',
            Target::ShimEmbeddedNull => 'd',
            Target::ShimEtcdNull => 'e',
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::Etcd => "etcd direct",
            Target::ShimEtcd => "shim -> etcd, AES-GCM",
            Target::ShimEmbedded => "shim embedded, AES-GCM",
            Target::ShimEmbeddedNull => "shim embedded, null cipher",
            Target::ShimEtcdNull => "shim -> etcd, null cipher",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Target::Etcd => "(a) etcd",
            Target::ShimEtcd => "(b) shim→etcd",
            Target::ShimEmbedded => "(c) shim embedded",
            Target::ShimEmbeddedNull => "(d) embedded, null",
            Target::ShimEtcdNull => "(e) shim→etcd, null",
        }
    }

    fn needs_etcd(self) -> bool {
        matches!(self, Target::Etcd | Target::ShimEtcd | Target::ShimEtcdNull)
    }
}

/// A running etcd process, killed on drop.
struct EtcdProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn etcd_version(bin: &str) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| text.trim().to_string());
    Some(version)
}

fn start_etcd(bin: &str, base: &Path) -> Result<EtcdProcess, BoxError> {
    let dir = tempfile::Builder::new()
        .prefix("kube-load-etcd-")
        .tempdir_in(base)?;
    let client_port = free_port()?;
    let mut peer_port = free_port()?;
    while peer_port == client_port {
        peer_port = free_port()?;
    }
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.path().join("etcd.log"))?;
    let child = Command::new(bin)
        .arg("--name")
        .arg("b")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("b={peer}")])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(EtcdProcess {
        child,
        url: client,
        _dir: dir,
    })
}

/// Waits until `url` answers a linearizable Range (etcd elected itself, shim is serving).
async fn wait_ready(url: &str) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let channel = Endpoint::from_shared(url.to_string())?
                .connect_timeout(Duration::from_secs(1))
                .connect()
                .await?;
            KvClient::new(channel)
                .range(RangeRequest {
                    key: Bytes::from_static(b"/ready"),
                    ..Default::default()
                })
                .await?;
            Ok::<(), BoxError>(())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if Instant::now() > deadline => {
                return Err(format!("{url} not ready: {e}").into());
            }
            Err(_) if Instant::now() > deadline => return Err(format!("{url} not ready").into()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One running target. The shim gets its own Tokio runtime (2 workers, like a separate
/// process would), dropped — with the backend's writer thread — before the data dir.
struct Running {
    url: String,
    server_rt: Option<tokio::runtime::Runtime>,
    dir: Option<tempfile::TempDir>,
    etcd: Option<EtcdProcess>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(rt) = self.server_rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.etcd.take();
        self.dir.take();
    }
}

fn start_target(target: Target, opts: &Options) -> Result<Running, BoxError> {
    let etcd = if target.needs_etcd() {
        Some(start_etcd(&opts.etcd_bin, &opts.base_dir)?)
    } else {
        None
    };
    if target == Target::Etcd {
        let url = etcd.as_ref().map(|e| e.url.clone()).unwrap_or_default();
        return Ok(Running {
            url,
            server_rt: None,
            dir: None,
            etcd,
        });
    }
    let keys = Arc::new(match target {
        Target::ShimEmbeddedNull | Target::ShimEtcdNull => Keys::null_for_benchmarks(),
        _ => Keys::from_ring(KeyRing::new(DataKey::generate(), [])?),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shim")
        .enable_all()
        .build()?;
    let dir = if target.needs_etcd() {
        None
    } else {
        Some(
            tempfile::Builder::new()
                .prefix("kube-load-embedded-")
                .tempdir_in(&opts.base_dir)?,
        )
    };
    let etcd_url = etcd.as_ref().map(|e| e.url.clone());
    let dir_path = dir.as_ref().map(|d| d.path().to_path_buf());
    let url = rt.block_on(async move {
        let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse()?), None).await?;
        let url = listener.url(false);
        let serve_options = ServeOptions {
            tls: None,
            key_reload_interval: Duration::ZERO,
            anchor: None,
        };
        match (etcd_url, dir_path) {
            (Some(etcd_url), _) => {
                let backend = EtcdBackend::connect(&EtcdConfig {
                    endpoints: vec![etcd_url],
                    ..Default::default()
                })?;
                let shim = EtcdShim::new(backend, keys, ShimOptions::default());
                tokio::spawn(serve(
                    shim,
                    listener,
                    None,
                    serve_options,
                    std::future::pending(),
                ));
            }
            (None, Some(dir)) => {
                let backend = EmbeddedBackend::open(&EmbeddedConfig {
                    disk_cache_bytes: opts.disk_cache_bytes,
                    ..EmbeddedConfig::new(dir)
                })?;
                let shim = EtcdShim::new(backend, keys, ShimOptions::default());
                tokio::spawn(serve(
                    shim,
                    listener,
                    None,
                    serve_options,
                    std::future::pending(),
                ));
            }
            (None, None) => return Err::<String, BoxError>("no backend".into()),
        }
        Ok(url)
    })?;
    Ok(Running {
        url,
        server_rt: Some(rt),
        dir,
        etcd,
    })
}

// ----------------------------------------------------------------------------- cases

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Case {
    CasCreate,
    UpdateCycle,
    Get,
    List500,
    Watch,
    SinglePut,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::CasCreate,
        Case::UpdateCycle,
        Case::Get,
        Case::List500,
        Case::Watch,
        Case::SinglePut,
    ];

    fn number(self) -> u8 {
        match self {
            Case::CasCreate => 1,
            Case::UpdateCycle => 2,
            Case::Get => 3,
            Case::List500 => 4,
            Case::Watch => 5,
            Case::SinglePut => 6,
        }
    }

    fn clients(self) -> usize {
        if let Some(n) = CLIENTS.get()
            && self != Case::SinglePut
        {
            return *n;
        }
        match self {
            Case::CasCreate | Case::UpdateCycle | Case::Get => 64,
            Case::List500 | Case::Watch => 16,
            Case::SinglePut => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Case::CasCreate => "CAS create (Txn MOD==0 Put)",
            Case::UpdateCycle => "update cycle (Range + Txn MOD==rev)",
            Case::Get => "get (linearizable Range)",
            Case::List500 => "list limit 500 (1 KiB values)",
            Case::Watch => "watch latency (write ack → event)",
            Case::SinglePut => "single-client durable Put",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Case::UpdateCycle => "cycles/s",
            Case::List500 => "lists/s",
            Case::Watch => "events/s",
            _ => "ops/s",
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Summary {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    n: u64,
    errors: u64,
    note: String,
}

fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted_ns.len() - 1) as f64).round() as usize;
    sorted_ns[idx.min(sorted_ns.len() - 1)] as f64 / 1e6
}

/// splitmix64: enough randomness for key choice, no extra crate.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn key(n: u64) -> Bytes {
    Bytes::from(format!("{PREFIX}k{n:08}"))
}

/// The client side: 8 connections shared round-robin by the tasks, plus one for the watcher.
#[derive(Clone)]
struct Clients {
    kv: Vec<KvClient<Channel>>,
    watch_channel: Channel,
    value: Bytes,
    keys: u64,
}

impl Clients {
    async fn connect(url: &str, keys: u64) -> Result<Self, BoxError> {
        let endpoint = Endpoint::from_shared(url.to_string())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        let mut kv = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            kv.push(
                KvClient::new(endpoint.connect().await?)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20),
            );
        }
        let watch_channel = endpoint.connect().await?;
        let mut rng = Rng(0x5EED);
        let value: Vec<u8> = (0..VALUE_LEN).map(|_| rng.next() as u8).collect();
        Ok(Self {
            kv,
            watch_channel,
            value: Bytes::from(value),
            keys,
        })
    }

    fn kv(&self, task: usize) -> KvClient<Channel> {
        self.kv[task % self.kv.len()].clone()
    }
}

fn put_op(key: Bytes, value: Bytes) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn mod_equals(key: Bytes, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key,
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::ModRevision(rev)),
    }
}

/// Runs `clients` tasks, each repeating `op(task, random)` until `time` is up; `op` returns
/// how many operations it completed (0 = not counted). Latency is per `op` call.
async fn drive<F, Fut>(clients: usize, time: Duration, op: F) -> Summary
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = Vec::with_capacity(clients);
    for task in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng(0xC0FFEE ^ ((task as u64 + 1) << 32) ^ start.elapsed().as_nanos() as u64);
            let mut lat = Vec::new();
            let mut ops = 0u64;
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match op(task, rng.next()).await {
                    Ok(n) => {
                        if n > 0 {
                            lat.push(t0.elapsed().as_nanos() as u64);
                            ops += n;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            (lat, ops, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut ops = 0;
    let mut errors = 0;
    let mut first_error: Option<String> = None;
    for task in tasks {
        match task.await {
            Ok((lat, o, e, fe)) => {
                all.extend(lat);
                ops += o;
                errors += e;
                if first_error.is_none() {
                    first_error = fe;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Summary {
        ops_per_s: ops as f64 / elapsed,
        p50_ms: percentile_ms(&all, 50.0),
        p99_ms: percentile_ms(&all, 99.0),
        n: ops,
        errors,
        note: first_error
            .map(|e| format!("first error: {e}"))
            .unwrap_or_default(),
    }
}

/// Writes every key of the key space once (64 writers) so reads, updates and lists find data.
async fn preload(c: &Clients) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..64 {
        let mut kv = c.kv(task);
        let next = next.clone();
        let value = c.value.clone();
        let keys = c.keys;
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    return Ok::<(), tonic::Status>(());
                }
                kv.put(PutRequest {
                    key: key(n),
                    value: value.clone(),
                    ..Default::default()
                })
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(start.elapsed())
}

async fn run_case(case: Case, c: &Clients, time: Duration) -> Summary {
    let clients = case.clients();
    match case {
        Case::CasCreate => {
            let c = c.clone();
            let next = Arc::new(AtomicU64::new(0));
            drive(clients, time, move |task, _| {
                let mut kv = c.kv(task);
                let key = Bytes::from(format!(
                    "{CREATE_PREFIX}k{:010}",
                    next.fetch_add(1, Ordering::Relaxed)
                ));
                let value = c.value.clone();
                async move {
                    let resp = kv
                        .txn(TxnRequest {
                            compare: vec![mod_equals(key.clone(), 0)],
                            success: vec![put_op(key, value)],
                            failure: vec![],
                        })
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner();
                    if resp.succeeded {
                        Ok(1)
                    } else {
                        Err("create compare failed on a fresh key".into())
                    }
                }
            })
            .await
        }
        Case::UpdateCycle => {
            let c = c.clone();
            let retries = Arc::new(AtomicU64::new(0));
            let r = retries.clone();
            let mut s = drive(clients, time, move |task, rnd| {
                let mut kv = c.kv(task);
                let key = key(rnd % c.keys);
                let value = c.value.clone();
                let retries = r.clone();
                async move {
                    let got = kv
                        .range(RangeRequest {
                            key: key.clone(),
                            limit: 1,
                            ..Default::default()
                        })
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner();
                    let mut rev = got.kvs.first().map_or(0, |kv| kv.mod_revision);
                    for _ in 0..100 {
                        let resp = kv
                            .txn(TxnRequest {
                                compare: vec![mod_equals(key.clone(), rev)],
                                success: vec![put_op(key.clone(), value.clone())],
                                failure: vec![RequestOp {
                                    request: Some(Request::RequestRange(RangeRequest {
                                        key: key.clone(),
                                        ..Default::default()
                                    })),
                                }],
                            })
                            .await
                            .map_err(|s| s.to_string())?
                            .into_inner();
                        if resp.succeeded {
                            return Ok(1);
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        rev = match resp.responses.first().and_then(|r| r.response.as_ref()) {
                            Some(Response::ResponseRange(r)) => {
                                r.kvs.first().map_or(0, |kv| kv.mod_revision)
                            }
                            _ => 0,
                        };
                    }
                    Err("update did not succeed after 100 retries".into())
                }
            })
            .await;
            let retries = retries.load(Ordering::Relaxed);
            let _ = write!(
                s.note,
                "{}≈{:.0} RPC/s, {retries} conflict retries",
                if s.note.is_empty() { "" } else { "; " },
                s.ops_per_s * 2.0
            );
            s
        }
        Case::Get => {
            let c = c.clone();
            drive(clients, time, move |task, rnd| {
                let mut kv = c.kv(task);
                let key = key(rnd % c.keys);
                async move {
                    let resp = kv
                        .range(RangeRequest {
                            key,
                            ..Default::default()
                        })
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner();
                    if resp.kvs.len() == 1 {
                        Ok(1)
                    } else {
                        Err(format!("get returned {} kvs", resp.kvs.len()))
                    }
                }
            })
            .await
        }
        Case::List500 => {
            let c = c.clone();
            drive(clients, time, move |task, _| {
                let mut kv = c.kv(task);
                async move {
                    let resp = kv
                        .range(RangeRequest {
                            key: Bytes::from_static(PREFIX.as_bytes()),
                            range_end: Bytes::from_static(PREFIX_END.as_bytes()),
                            limit: LIST_LIMIT,
                            ..Default::default()
                        })
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner();
                    if resp.kvs.len() == LIST_LIMIT as usize
                        && resp.kvs.iter().all(|kv| kv.value.len() == VALUE_LEN)
                    {
                        Ok(1)
                    } else {
                        Err(format!("list returned {} kvs", resp.kvs.len()))
                    }
                }
            })
            .await
        }
        Case::Watch => watch_case(c, time, clients)
            .await
            .unwrap_or_else(|e| Summary {
                ops_per_s: f64::NAN,
                p50_ms: f64::NAN,
                p99_ms: f64::NAN,
                n: 0,
                errors: 1,
                note: format!("watch failed: {e}"),
            }),
        Case::SinglePut => {
            let c = c.clone();
            drive(clients, time, move |task, rnd| {
                let mut kv = c.kv(task);
                let key = key(rnd % c.keys);
                let value = c.value.clone();
                async move {
                    kv.put(PutRequest {
                        key,
                        value,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?;
                    Ok(1)
                }
            })
            .await
        }
    }
}

/// One prefix watcher (prev_kv) and `writers` Put clients; latency = event receipt − write ack
/// for the same revision (clamped at 0: an event may overtake its ack).
async fn watch_case(c: &Clients, time: Duration, writers: usize) -> Result<Summary, BoxError> {
    let mut wc = WatchClient::new(c.watch_channel.clone()).max_decoding_message_size(64 << 20);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::from_static(WATCH_PREFIX.as_bytes()),
            range_end: Bytes::from_static(WATCH_PREFIX_END.as_bytes()),
            prev_kv: true,
            ..Default::default()
        })),
    };
    // Keep the request side open for the life of the watch.
    let requests = futures_util::stream::iter([create]).chain(futures_util::stream::pending());
    let mut request = tonic::Request::new(requests);
    request.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    let mut stream = wc.watch(request).await?.into_inner();
    match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
        Ok(Ok(Some(r))) if r.created => {}
        other => return Err(format!("watch not created: {other:?}").into()),
    }
    let last_acked = Arc::new(AtomicI64::new(0));
    let writers_done = Arc::new(AtomicI64::new(0));
    let watcher = {
        let last_acked = last_acked.clone();
        let writers_done = writers_done.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<i64, Instant> = HashMap::new();
            let mut max_rev = 0i64;
            let mut give_up: Option<Instant> = None;
            loop {
                if writers_done.load(Ordering::Acquire) == 1 {
                    if max_rev >= last_acked.load(Ordering::Acquire) {
                        break;
                    }
                    let limit =
                        *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
                    if Instant::now() > limit {
                        break;
                    }
                }
                match tokio::time::timeout(Duration::from_millis(50), stream.message()).await {
                    Ok(Ok(Some(resp))) => {
                        let now = Instant::now();
                        for ev in resp.events {
                            if let Some(kv) = ev.kv {
                                max_rev = max_rev.max(kv.mod_revision);
                                seen.insert(kv.mod_revision, now);
                            }
                        }
                    }
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
            seen
        })
    };
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = Vec::new();
    for task in 0..writers {
        let mut kv = c.kv(task);
        let value = c.value.clone();
        let keys = c.keys;
        let last_acked = last_acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0xABCD ^ task as u64);
            let mut acks = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let key = Bytes::from(format!("{WATCH_PREFIX}k{:08}", rng.next() % keys));
                match kv
                    .put(PutRequest {
                        key,
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(resp) => {
                        let now = Instant::now();
                        let rev = resp.into_inner().header.map_or(0, |h| h.revision);
                        last_acked.fetch_max(rev, Ordering::AcqRel);
                        acks.push((rev, now));
                    }
                    Err(_) => errors += 1,
                }
            }
            (acks, errors)
        }));
    }
    let mut acks = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (a, e) = task.await?;
        acks.extend(a);
        errors += e;
    }
    let write_elapsed = start.elapsed().as_secs_f64();
    writers_done.store(1, Ordering::Release);
    let seen = watcher.await?;
    let mut lat = Vec::with_capacity(acks.len());
    let mut early = 0u64;
    let mut missing = 0u64;
    for (rev, ack) in &acks {
        match seen.get(rev) {
            Some(ev) => {
                if ev < ack {
                    early += 1;
                }
                lat.push(ev.saturating_duration_since(*ack).as_nanos() as u64);
            }
            None => missing += 1,
        }
    }
    lat.sort_unstable();
    let n = lat.len() as u64;
    Ok(Summary {
        ops_per_s: n as f64 / write_elapsed,
        p50_ms: percentile_ms(&lat, 50.0),
        p99_ms: percentile_ms(&lat, 99.0),
        n,
        errors: errors + missing,
        note: format!(
            "{} writes, {early} events before their ack ({:.0}%), {missing} missing",
            acks.len(),
            100.0 * early as f64 / acks.len().max(1) as f64
        ),
    })
}

// ----------------------------------------------------------------------------- report

type Results = HashMap<(Target, Case), Summary>;

fn fmt_int(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn ratio(r: &Results, case: Case, num: Target, den: Target) -> Option<(f64, f64)> {
    let n = r.get(&(num, case))?;
    let d = r.get(&(den, case))?;
    Some((n.ops_per_s / d.ops_per_s, n.p99_ms / d.p99_ms))
}

fn fmt_ratio(x: Option<(f64, f64)>) -> String {
    match x {
        Some((t, p)) if t.is_finite() && p.is_finite() => format!("{t:.2}× / {p:.2}×"),
        _ => "—".into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn print_goals(opts: &Options, r: &Results) {
    println!("\n## Goals (informational; the process does not fail on MISS)");
    let mut any = false;
    // (b) ≥ 0.85× (a) throughput with p99 ≤ 1.3× (a) at 64 clients.
    for case in opts.cases.iter().copied().filter(|c| c.clients() == 64) {
        if let Some((t, p)) = ratio(r, case, Target::ShimEtcd, Target::Etcd) {
            any = true;
            println!(
                "{} (b) shim→etcd ≥ 0.85× etcd throughput, p99 ≤ 1.3× @64 clients, case {} {}: {t:.2}× throughput, {p:.2}× p99",
                verdict(t >= 0.85 && p <= 1.3),
                case.number(),
                case.name()
            );
        }
    }
    if let Some(s) = r.get(&(Target::ShimEmbedded, Case::CasCreate)) {
        any = true;
        println!(
            "{} (c) embedded ≥ 10,000 durable writes/s @64 clients (case 1): {} writes/s",
            verdict(s.ops_per_s >= 10_000.0),
            fmt_int(s.ops_per_s)
        );
    }
    for (enc, null, label) in [
        (Target::ShimEmbedded, Target::ShimEmbeddedNull, "(c) vs (d)"),
        (Target::ShimEtcd, Target::ShimEtcdNull, "(b) vs (e)"),
    ] {
        for case in opts.cases.iter().copied() {
            if let Some((t, _)) = ratio(r, case, enc, null) {
                any = true;
                let overhead = (1.0 - t) * 100.0;
                println!(
                    "{} encryption overhead < 5% {label}, case {} {}: {overhead:+.1}% throughput",
                    verdict(overhead < 5.0),
                    case.number(),
                    case.name()
                );
            }
        }
    }
    // The acceptance bars of the notes, §7.4, for the embedded shim.
    let t = Target::ShimEmbedded;
    if let Some(s) = r.get(&(t, Case::CasCreate)) {
        any = true;
        println!(
            "{} §7.4 (c) ≥ 1,000 CAS writes/s @64 with p99 < 25 ms: {} writes/s, p99 {} ms",
            verdict(s.ops_per_s >= 1000.0 && s.p99_ms < 25.0),
            fmt_int(s.ops_per_s),
            fmt_ms(s.p99_ms)
        );
    }
    if let Some(s) = r.get(&(t, Case::SinglePut)) {
        any = true;
        println!(
            "{} §7.4 (c) single-client durable write p50 < 2 ms: {} ms",
            verdict(s.p50_ms < 2.0),
            fmt_ms(s.p50_ms)
        );
    }
    if let Some(s) = r.get(&(t, Case::List500)) {
        any = true;
        println!(
            "{} §7.4 (c) 500-item list p50 < 25 ms: {} ms",
            verdict(s.p50_ms < 25.0),
            fmt_ms(s.p50_ms)
        );
    }
    if let Some(s) = r.get(&(t, Case::Watch)) {
        any = true;
        println!(
            "{} §7.4 (c) watch fan-out latency < 10 ms (p99 ack→event): {} ms",
            verdict(s.p99_ms < 10.0),
            fmt_ms(s.p99_ms)
        );
    }
    if !any {
        println!("(no goal could be evaluated with the targets that ran)");
    }
}

fn print_comparison(opts: &Options, r: &Results) {
    println!("\n## Per case: ratios (throughput ratio / p99 ratio)");
    for case in &opts.cases {
        println!(
            "case {} {} ({} clients):",
            case.number(),
            case.name(),
            case.clients()
        );
        for (num, den, what) in [
            (Target::ShimEtcd, Target::Etcd, "(b)/(a) shim→etcd vs etcd"),
            (
                Target::ShimEmbedded,
                Target::Etcd,
                "(c)/(a) embedded vs etcd",
            ),
            (
                Target::ShimEmbedded,
                Target::ShimEmbeddedNull,
                "(c)/(d) embedded AES vs null",
            ),
            (
                Target::ShimEtcd,
                Target::ShimEtcdNull,
                "(b)/(e) shim→etcd AES vs null",
            ),
        ] {
            if let Some(x) = ratio(r, *case, num, den) {
                println!("    {what:<32} {}", fmt_ratio(Some(x)));
            }
        }
    }
}

fn markdown_table(opts: &Options, r: &Results, header: &str) -> String {
    let targets: Vec<Target> = opts.targets.clone();
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = write!(out, "| Case | clients |");
    for t in &targets {
        let _ = write!(out, " {} |", t.short());
    }
    let pairs: Vec<(Target, Target, &str)> = [
        (Target::ShimEtcd, Target::Etcd, "b/a"),
        (Target::ShimEmbedded, Target::Etcd, "c/a"),
        (Target::ShimEmbedded, Target::ShimEmbeddedNull, "c/d"),
        (Target::ShimEtcd, Target::ShimEtcdNull, "b/e"),
    ]
    .into_iter()
    .filter(|(a, b, _)| targets.contains(a) && targets.contains(b))
    .collect();
    for (_, _, name) in &pairs {
        let _ = write!(out, " {name} |");
    }
    let _ = write!(out, "\n|---|---|");
    for _ in 0..targets.len() + pairs.len() {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for case in &opts.cases {
        let _ = write!(
            out,
            "| {}. {} ({}) | {} |",
            case.number(),
            case.name(),
            case.unit(),
            case.clients()
        );
        for t in &targets {
            match r.get(&(*t, *case)) {
                Some(s) => {
                    let _ = write!(
                        out,
                        " {} · {} / {} |",
                        fmt_int(s.ops_per_s),
                        fmt_ms(s.p50_ms),
                        fmt_ms(s.p99_ms)
                    );
                }
                None => out.push_str(" — |"),
            }
        }
        for (a, b, _) in &pairs {
            let _ = write!(out, " {} |", fmt_ratio(ratio(r, *case, *a, *b)));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nCells: throughput · p50 / p99 ms (watch: ack→event latency). Ratios: throughput / p99."
    );
    out
}

// ----------------------------------------------------------------------------- main

/// `/proc/loadavg`'s first three fields: a busy machine (another build) skews every number.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<(), BoxError> {
    let mut opts = parse_options()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let etcd = etcd_version(&opts.etcd_bin);
    println!("# kube_load: kube-apiserver-style load, etcd vs encrypting etcd-shim");
    println!(
        "machine: {cores} cores (client, shim{} share them; CPU-bound numbers), data dirs in {}",
        if etcd.is_some() { " and etcd" } else { "" },
        opts.base_dir.display()
    );
    match &etcd {
        Some(v) => println!("etcd: {} version {v}", opts.etcd_bin),
        None => {
            println!(
                "etcd: NOT FOUND ({:?} --version failed; set ETCD_BIN) — running only (c) and (d)",
                opts.etcd_bin
            );
            opts.targets.retain(|t| !t.needs_etcd());
        }
    }
    println!(
        "load average at start: {} (anything else running skews the results)",
        load_average()
    );
    println!(
        "mode: {}; {:.1} s per case; {} keys × {} B values; {CONNECTIONS} connections per target",
        if opts.quick { "quick" } else { "full" },
        opts.case_time.as_secs_f64(),
        opts.keys,
        VALUE_LEN
    );
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let mut results: Results = HashMap::new();
    let total = Instant::now();
    for target in opts.targets.clone() {
        println!("\n## ({}) {}", target.letter(), target.name());
        let running = start_target(target, &opts)?;
        let url = running.url.clone();
        let outcome = client_rt.block_on(async {
            wait_ready(&url).await?;
            let clients = Clients::connect(&url, opts.keys).await?;
            let took = preload(&clients).await?;
            println!(
                "  preload {} keys: {:.2} s ({} puts/s, 64 clients)",
                opts.keys,
                took.as_secs_f64(),
                fmt_int(opts.keys as f64 / took.as_secs_f64())
            );
            for case in &opts.cases {
                let s = run_case(*case, &clients, opts.case_time).await;
                println!(
                    "  {}. {:<38} {:>3} cl  {:>9} {:<9} p50 {:>7} ms  p99 {:>7} ms  n={}{}{}",
                    case.number(),
                    case.name(),
                    case.clients(),
                    fmt_int(s.ops_per_s),
                    case.unit(),
                    fmt_ms(s.p50_ms),
                    fmt_ms(s.p99_ms),
                    s.n,
                    if s.errors > 0 {
                        format!(" errors={}", s.errors)
                    } else {
                        String::new()
                    },
                    if s.note.is_empty() {
                        String::new()
                    } else {
                        format!("  [{}]", s.note)
                    }
                );
                results.insert((target, *case), s);
            }
            Ok::<(), BoxError>(())
        });
        drop(running);
        if let Err(e) = outcome {
            println!("  target ({}) failed: {e}", target.letter());
        }
    }
    print_comparison(&opts, &results);
    print_goals(&opts, &results);
    let header = format!(
        "## Summary ({cores} cores shared by client and servers; etcd {}; {} mode, {:.1} s per case)",
        etcd.as_deref().unwrap_or("absent"),
        if opts.quick { "quick" } else { "full" },
        opts.case_time.as_secs_f64()
    );
    println!("\n{}", markdown_table(&opts, &results, &header));
    println!(
        "total time {:.1} s; load average at end: {}",
        total.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}
