//! Shared test harness: real etcd processes (the oracle) and in-process shims.
//!
//! - [`start_etcd`] runs a fresh single-member etcd on free loopback ports with a temporary
//!   data dir, killed on drop. The binary comes from `ETCD_BIN` (default: `etcd` on `PATH`).
//!   Without it the test prints `SKIP: …` and returns, unless `DAAS_REQUIRE_PEERS=1`, in
//!   which case it fails.
//! - [`start_embedded_shim`] / [`start_etcd_shim`] serve an [`EtcdShim`] on `127.0.0.1:0`.
//! - [`Clients`] holds one client per etcd service for a URL.

#![allow(dead_code, unreachable_pub)]

pub mod record;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_envelope::{DataKey, KeyRing};
use daas_etcd_proto::{
    RangeRequest, cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use daas_etcd_shim::{
    Anchor, AnchorError, Baseline, EmbeddedBackend, EmbeddedConfig, EtcdBackend, EtcdConfig,
    EtcdShim, Keys, Listen, Listener, ServeOptions, ShimOptions, serve,
};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tonic::transport::Channel;

// ------------------------------------------------------------------------ real etcd

/// The etcd binary, or `None` (after printing `SKIP`) when it is missing and peers are optional.
pub fn etcd_bin() -> Option<PathBuf> {
    let required = std::env::var("DAAS_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    let candidate =
        std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from);
    let found = if candidate.components().count() > 1 {
        candidate.is_file().then_some(candidate.clone())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&candidate))
                .find(|p| p.is_file())
        })
    };
    match found {
        Some(path) => Some(path),
        None => {
            let reason = format!(
                "etcd binary {} not found (set ETCD_BIN or install etcd)",
                candidate.display()
            );
            assert!(!required, "DAAS_REQUIRE_PEERS=1 but {reason}");
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

/// Two distinct free loopback ports (both bound at once so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().expect("local addr").port(),
        b.local_addr().expect("local addr").port(),
    )
}

/// A running etcd, killed (and its data dir removed) on drop.
pub struct EtcdProcess {
    child: Child,
    pub url: String,
    pub dir: TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EtcdProcess {
    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    // A Go panic's first line says what happened; the tail is mostly its stack.
    let panic = lines
        .iter()
        .position(|l| l.starts_with("panic:"))
        .map(|i| lines[i..(i + 3).min(lines.len())].join("\n"))
        .unwrap_or_default();
    format!(
        "{panic}\n...\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

fn spawn_etcd(bin: &Path) -> EtcdProcess {
    let dir = tempfile::tempdir().expect("temp dir for etcd");
    let (client, peer) = free_ports();
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log file");
    let mut cmd = Command::new(bin);
    // Settings from the environment (ETCD_*) would override the flags below.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--name")
        .arg("t")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("t={peer_url}"))
        .arg("--log-level")
        .arg("error")
        .arg("--logger")
        .arg("zap")
        .arg("--log-outputs")
        .arg("stderr")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log file"))
        .stderr(log);
    let child = cmd.spawn().expect("spawn etcd");
    EtcdProcess {
        child,
        url: client_url,
        dir,
    }
}

/// Starts a fresh etcd and waits until a `Range` succeeds. `None` = skipped (no binary).
pub async fn start_etcd() -> Option<EtcdProcess> {
    let bin = etcd_bin()?;
    let mut last_error = String::new();
    // A port picked above can be taken by someone else before etcd binds it: retry.
    for _attempt in 0..3 {
        let mut etcd = spawn_etcd(&bin);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                last_error = format!("etcd exited with {status}: {}", etcd.log_tail());
                break;
            }
            if Instant::now() > deadline {
                last_error = format!("etcd not ready after 20 s: {}", etcd.log_tail());
                break;
            }
            if let Ok(mut kv) = connect_kv(&etcd.url).await {
                let probe = RangeRequest {
                    key: "health-probe".into(),
                    ..Default::default()
                };
                if kv.range(probe).await.is_ok() {
                    return Some(etcd);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("cannot start etcd: {last_error}");
}

async fn connect_kv(url: &str) -> Result<KvClient<Channel>, tonic::transport::Error> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("valid url")
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await?;
    Ok(KvClient::new(channel))
}

// ----------------------------------------------------------------------- the shim

/// A fresh random key ring.
pub fn test_keys() -> Arc<Keys> {
    Arc::new(Keys::from_ring(
        KeyRing::new(DataKey::generate(), []).expect("key ring"),
    ))
}

/// A shim served in-process; shut down on drop (or with [`ShimHandle::stop`], which waits).
pub struct ShimHandle {
    pub url: String,
    /// The embedded backend's data dir (`None` for the etcd backend).
    pub dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ShimHandle {
    /// Shuts the shim down and waits until it has stopped (anchor written, store closed).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("shim serve task");
        }
    }
}

impl Drop for ShimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn serve_shim<B: daas_etcd_shim::backend::Backend>(
    make: impl FnOnce(ShimOptions) -> EtcdShim<B>,
    dir: Option<TempDir>,
) -> ShimHandle {
    serve_shim_anchored(make, dir, None).await
}

async fn serve_shim_anchored<B: daas_etcd_shim::backend::Backend>(
    make: impl FnOnce(ShimOptions) -> EtcdShim<B>,
    dir: Option<TempDir>,
    anchor: Option<Anchor>,
) -> ShimHandle {
    let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse().expect("addr")), None)
        .await
        .expect("bind shim listener");
    let url = listener.url(false);
    let options = ShimOptions {
        advertise_url: url.clone(),
        ..ShimOptions::default()
    };
    let shim = make(options);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = serve(
            shim,
            listener,
            None,
            ServeOptions {
                tls: None,
                key_reload_interval: Duration::ZERO,
                anchor,
            },
            async {
                let _ = rx.await;
            },
        )
        .await;
        if let Err(e) = result {
            eprintln!("shim serve loop ended with error: {e}");
        }
    });
    ShimHandle {
        url,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A shim over the embedded store in a fresh temp dir.
pub async fn start_embedded_shim(keys: Arc<Keys>) -> ShimHandle {
    let dir = tempfile::tempdir().expect("temp dir for the embedded store");
    let backend =
        EmbeddedBackend::open(&EmbeddedConfig::new(dir.path())).expect("open embedded store");
    serve_shim(|options| EtcdShim::new(backend, keys, options), Some(dir)).await
}

/// A shim over the embedded store in a fresh temp dir, and a second handle on that store for
/// writing around the shim (what whoever holds the datastore can do).
pub async fn start_embedded_shim_with_raw(keys: Arc<Keys>) -> (ShimHandle, EmbeddedBackend) {
    let dir = tempfile::tempdir().expect("temp dir for the embedded store");
    let backend =
        EmbeddedBackend::open(&EmbeddedConfig::new(dir.path())).expect("open embedded store");
    let raw = backend.clone();
    let shim = serve_shim(|options| EtcdShim::new(backend, keys, options), Some(dir)).await;
    (shim, raw)
}

/// A shim over the embedded store in `store`, checked against and keeping the freshness anchor
/// at `anchor`, as `nautilus-master etcd-shim` runs it. Fails where the CLI refuses to start.
pub async fn start_anchored_embedded_shim(
    store: &Path,
    anchor: &Path,
    keys: Arc<Keys>,
    baseline: Baseline,
) -> Result<ShimHandle, AnchorError> {
    let backend = EmbeddedBackend::open(&EmbeddedConfig::new(store)).expect("open embedded store");
    let anchor = Anchor::new(anchor);
    let freshness = daas_etcd_shim::anchor::start(&backend, &keys, &anchor, baseline).await?;
    Ok(serve_shim_anchored(
        |options| EtcdShim::with_freshness(backend, keys, options, freshness),
        None,
        Some(anchor),
    )
    .await)
}

/// A shim forwarding to the etcd at `etcd_url`.
pub async fn start_etcd_shim(etcd_url: &str, keys: Arc<Keys>) -> ShimHandle {
    let backend = EtcdBackend::connect(&EtcdConfig {
        endpoints: vec![etcd_url.to_owned()],
        ..Default::default()
    })
    .expect("etcd backend config");
    serve_shim(|options| EtcdShim::new(backend, keys, options), None).await
}

// ------------------------------------------------------------------------- clients

/// One client per etcd service, sharing a channel.
#[derive(Clone)]
pub struct Clients {
    pub url: String,
    pub kv: KvClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
    pub cluster: ClusterClient<Channel>,
}

impl Clients {
    pub async fn connect(url: &str) -> Self {
        let channel = Channel::from_shared(url.to_owned())
            .expect("valid url")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Self {
            url: url.to_owned(),
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            watch: WatchClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            lease: LeaseClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel.clone()),
            cluster: ClusterClient::new(channel),
        }
    }
}

/// The three targets of a differential test, each fresh:
/// A = real etcd, B = shim over a second real etcd, C = shim over the embedded store.
pub struct Trio {
    pub etcd_a: EtcdProcess,
    pub etcd_b: EtcdProcess,
    pub shim_b: ShimHandle,
    pub shim_c: ShimHandle,
    pub a: Clients,
    pub b: Clients,
    pub c: Clients,
}

impl Trio {
    /// `None` = skipped (no etcd binary).
    pub async fn start() -> Option<Self> {
        etcd_bin()?;
        let (etcd_a, etcd_b) = tokio::join!(start_etcd(), start_etcd());
        let (etcd_a, etcd_b) = (etcd_a?, etcd_b?);
        let shim_b = start_etcd_shim(&etcd_b.url, test_keys()).await;
        let shim_c = start_embedded_shim(test_keys()).await;
        let (a, b, c) = tokio::join!(
            Clients::connect(&etcd_a.url),
            Clients::connect(&shim_b.url),
            Clients::connect(&shim_c.url)
        );
        Some(Self {
            etcd_a,
            etcd_b,
            shim_b,
            shim_c,
            a,
            b,
            c,
        })
    }
}
