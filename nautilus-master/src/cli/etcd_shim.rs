//! `nautilus-master etcd-shim`: the encrypting etcd v3 server, standalone.
//!
//! Two listeners: the etcd API (`--listen`) and KeyAdmin (`--admin-listen`, a 0600 unix socket
//! next to the key ring by default). A non-loopback TCP address is refused unless clients must
//! present a certificate (`--tls-client-ca`). The freshness anchor (`--anchor`, next to the key
//! ring by default, never inside the datastore) is checked before anything is served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use daas_envelope::{EnvKey, KeyFile, KeyProvider, KeyRingDir};
use daas_etcd_shim::backend::Backend;
use daas_etcd_shim::listen::admin_tls;
use daas_etcd_shim::{
    Anchor, Baseline, EmbeddedBackend, EmbeddedConfig, EtcdBackend, EtcdConfig, EtcdShim, Keys,
    Listen, Listener, ServeOptions, ServerTls, ShimOptions, serve,
};

/// Where the key ring comes from (exactly one).
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub(crate) struct KeySourceArgs {
    /// Key ring directory (`<id>.key` files + `active`; see `keys init`). Production.
    #[arg(long, env = "DAAS_KEYRING")]
    pub(crate) keyring: Option<PathBuf>,
    /// A single 32-byte raw key file (mode 0600).
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
    /// DEV ONLY: name of an environment variable holding the key (64 hex chars or base64).
    #[arg(long)]
    pub(crate) key_env: Option<String>,
}

impl KeySourceArgs {
    /// The provider; `with_archived` also loads a key ring directory's retired keys.
    pub(crate) fn provider(&self, with_archived: bool) -> Box<dyn KeyProvider> {
        match (&self.keyring, &self.key_file, &self.key_env) {
            (Some(dir), _, _) if with_archived => Box::new(KeyRingDir::new(dir).with_archived()),
            (Some(dir), _, _) => Box::new(KeyRingDir::new(dir.clone())),
            (_, Some(file), _) => Box::new(KeyFile::new(file.clone())),
            (_, _, Some(var)) => Box::new(EnvKey::new(var.clone())),
            // clap's group makes one of them required.
            (None, None, None) => Box::new(KeyRingDir::new(PathBuf::from(".daas-dev/keys"))),
        }
    }

    /// `<key ring or key file>.<suffix>`, beside it: where the shim keeps its own state by
    /// default. `None` for a key in the environment (no file to sit beside).
    pub(crate) fn sibling(&self, suffix: &str) -> Option<PathBuf> {
        let path = self.keyring.as_ref().or(self.key_file.as_ref())?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        Some(path.with_file_name(format!("{name}.{suffix}")))
    }
}

#[derive(Args, Debug)]
pub(crate) struct EtcdShimArgs {
    /// etcd API address: `127.0.0.1:2379` or `unix:///run/k3s-daas/etcd.sock` (created 0600).
    /// Any other TCP address is refused unless clients must present a certificate
    /// (`--tls-client-ca`): TLS alone would hand the decrypted state to anyone who connects.
    #[arg(long, default_value = "127.0.0.1:2379", env = "DAAS_ETCD_LISTEN")]
    listen: Listen,
    /// KeyAdmin address (key status, reload, rewrap), never served on the etcd listener.
    /// Default: the 0600 unix socket `unix://<key ring>.admin.sock` beside the key ring (or key
    /// file). Loopback TCP is allowed; other TCP addresses only with `--tls-client-ca` (the
    /// same TLS as the etcd listener).
    #[arg(long, env = "DAAS_ETCD_ADMIN_LISTEN")]
    admin_listen: Option<Listen>,
    /// Freshness anchor file: the newest revision and write sequence the shim has seen, kept
    /// outside the datastore so a datastore restored from an older copy is refused at start.
    /// Default: `<key ring>.anchor` beside the key ring (or key file). Never inside the
    /// datastore. In a Nitro deployment, keep it on storage the parent cannot roll back.
    #[arg(long, env = "DAAS_ETCD_ANCHOR")]
    anchor: Option<PathBuf>,
    /// DISASTER RECOVERY ONLY: start although the datastore is behind the freshness anchor
    /// (restored from an older copy) or the anchor is missing or unreadable, and take the
    /// datastore's current state as the new baseline. Logged at warn. Deliberately no
    /// environment variable: it must not stay switched on.
    #[arg(long)]
    accept_rolled_back_datastore: bool,
    /// Also load the retired keys in `<key ring>/archive/` (decrypt-only), to read a restored
    /// backup sealed under them. Only with `--keyring`.
    #[arg(long, requires = "keyring")]
    with_archived_keys: bool,
    /// Datastore: `embedded:<dir>` (single node), or a real etcd as `etcd://host:port[,host:port]`
    /// (`etcds://` or `https://` for TLS; `http://` also accepted).
    #[arg(
        long,
        default_value = "embedded:.daas-dev/etcd",
        env = "DAAS_ETCD_BACKEND"
    )]
    backend: String,
    #[command(flatten)]
    keys: KeySourceArgs,
    /// Server certificate (PEM) for TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to: enables mTLS. Required for any
    /// non-loopback TCP listener.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// CA (PEM) of the backend etcd's server certificates.
    #[arg(long)]
    backend_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS to the backend etcd.
    #[arg(long, requires = "backend_key")]
    backend_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS to the backend etcd.
    #[arg(long, requires = "backend_cert")]
    backend_key: Option<PathBuf>,
    /// Largest request accepted (etcd's --max-request-bytes).
    #[arg(long, default_value_t = 1536 * 1024)]
    max_request_bytes: usize,
    /// Interval of watch progress notifications (embedded backend).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    progress_notify_interval: Duration,
    /// How often the key ring is re-read (0s = only on `keys rotate --admin-endpoint` or
    /// `keys reload`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    key_reload_interval: Duration,
    /// URL advertised in MemberList (default: the listen URL).
    #[arg(long)]
    advertise_url: Option<String>,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Backend URLs: `etcd://` → `http://`, `etcds://` → `https://`.
fn etcd_endpoints(spec: &str) -> Result<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = spec.strip_prefix("etcd://") {
        ("http", rest)
    } else if let Some(rest) = spec.strip_prefix("etcds://") {
        ("https", rest)
    } else if let Some(rest) = spec.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = spec.strip_prefix("https://") {
        ("https", rest)
    } else {
        bail!("unknown backend {spec:?}: use embedded:<dir> or etcd://host:port[,host:port]");
    };
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|hostport| {
            let hostport = hostport
                .strip_prefix("http://")
                .or_else(|| hostport.strip_prefix("https://"))
                .unwrap_or(hostport);
            format!("{scheme}://{hostport}")
        })
        .collect();
    if endpoints.is_empty() {
        bail!("backend {spec:?} names no endpoint");
    }
    Ok(endpoints)
}

pub(crate) async fn run(args: EtcdShimArgs) -> Result<()> {
    let anchor_path = match (args.anchor.clone(), args.keys.sibling("anchor")) {
        (Some(path), _) | (None, Some(path)) => path,
        (None, None) => bail!("--key-env has no file to keep the anchor beside: give --anchor"),
    };
    let admin_listen = match (&args.admin_listen, args.keys.sibling("admin.sock")) {
        (Some(listen), _) => listen.clone(),
        (None, Some(path)) => Listen::Unix(path),
        (None, None) => {
            bail!("--key-env has no file to put the admin socket beside: give --admin-listen")
        }
    };
    let embedded_dir = match args.backend.strip_prefix("embedded:") {
        Some("") => bail!("embedded backend needs a directory: embedded:<dir>"),
        Some(dir) => Some(PathBuf::from(dir)),
        None => None,
    };
    if let Some(dir) = &embedded_dir {
        refuse_inside(&anchor_path, dir)?;
    }
    let keys = Arc::new(
        Keys::from_provider(args.keys.provider(args.with_archived_keys))
            .context("loading the value encryption keys")?,
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert_pem: read(cert, "TLS certificate")?,
            key_pem: read(key, "TLS key")?,
            client_ca_pem: args
                .tls_client_ca
                .as_ref()
                .map(|p| read(p, "client CA"))
                .transpose()?,
        }),
        _ => None,
    };
    // Both listeners are bound (or refused) before the datastore is touched.
    let listener = Listener::bind(&args.listen, tls.as_ref()).await?;
    let admin = Listener::bind(&admin_listen, admin_tls(&admin_listen, tls.as_ref()))
        .await
        .context("KeyAdmin listener")?;
    let url = listener.url(tls.is_some());
    let admin_url = admin.url(admin_tls(&admin_listen, tls.as_ref()).is_some());
    let options = ShimOptions {
        max_request_bytes: args.max_request_bytes,
        advertise_url: args.advertise_url.clone().unwrap_or_else(|| url.clone()),
    };
    let serve_options = ServeOptions {
        tls,
        key_reload_interval: args.key_reload_interval,
        anchor: Some(Anchor::new(&anchor_path)),
    };
    let baseline = if args.accept_rolled_back_datastore {
        tracing::warn!(
            "--accept-rolled-back-datastore: a datastore behind the freshness anchor will be accepted as the new baseline"
        );
        Baseline::AcceptRollback
    } else {
        Baseline::Verify
    };
    tracing::info!(
        keys = %keys.describe(),
        active_key = %keys.active_id().map(|k| k.to_string()).unwrap_or_default(),
        backend = %args.backend,
        anchor = %anchor_path.display(),
        "etcd shim starting"
    );
    let served = Served {
        keys,
        options,
        listener,
        admin,
        serve_options,
        baseline,
        url,
        admin_url,
    };
    if let Some(dir) = embedded_dir {
        let mut config = EmbeddedConfig::new(dir);
        config.progress_notify_interval = args.progress_notify_interval;
        served.run(EmbeddedBackend::open(&config)?).await?;
    } else {
        let config = EtcdConfig {
            endpoints: etcd_endpoints(&args.backend)?,
            ca_pem: args
                .backend_ca
                .as_ref()
                .map(|p| read(p, "backend CA"))
                .transpose()?,
            client_identity: match (&args.backend_cert, &args.backend_key) {
                (Some(c), Some(k)) => Some((read(c, "backend cert")?, read(k, "backend key")?)),
                _ => None,
            },
            ..EtcdConfig::default()
        };
        served.run(EtcdBackend::connect(&config)?).await?;
    }
    tracing::info!("etcd shim stopped");
    Ok(())
}

/// The anchor must not live inside the datastore: whoever can roll the one back could roll
/// back the other with it.
fn refuse_inside(anchor: &Path, store: &Path) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if absolute(anchor).starts_with(absolute(store)) {
        bail!(
            "the freshness anchor {} is inside the datastore {}: keep it elsewhere (--anchor)",
            anchor.display(),
            store.display()
        );
    }
    Ok(())
}

/// Everything bound and loaded, waiting for a backend.
struct Served {
    keys: Arc<Keys>,
    options: ShimOptions,
    listener: Listener,
    admin: Listener,
    serve_options: ServeOptions,
    baseline: Baseline,
    url: String,
    admin_url: String,
}

impl Served {
    /// Checks the datastore against the anchor, announces the bound URLs, then serves until
    /// SIGTERM/SIGINT. Generic over the backend so both datastore choices share one path.
    async fn run<B: Backend>(self, backend: B) -> Result<()> {
        let anchor = self
            .serve_options
            .anchor
            .clone()
            .context("the CLI always keeps an anchor")?;
        let freshness = daas_etcd_shim::anchor::start(&backend, &self.keys, &anchor, self.baseline)
            .await
            .context("checking the datastore against the freshness anchor")?;
        let shutdown = shutdown_signal()?;
        announce(&self.url, &self.admin_url);
        serve(
            EtcdShim::with_freshness(backend, self.keys, self.options, freshness),
            self.listener,
            Some(self.admin),
            self.serve_options,
            shutdown,
        )
        .await?;
        Ok(())
    }
}

/// Two lines on stdout once the sockets are bound and the datastore checked, for supervisors
/// and tests: the etcd URL first, then the KeyAdmin URL.
fn announce(url: &str, admin_url: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "etcd-shim listening on {url}");
    let _ = writeln!(out, "etcd-shim KeyAdmin on {admin_url}");
    let _ = out.flush();
}

/// Installs the SIGTERM/SIGINT handlers now, so a signal that arrives right after the
/// announcement still stops the shim cleanly (anchor written), and returns a future that
/// resolves on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls() {
        assert_eq!(
            etcd_endpoints("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap(),
            vec!["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            etcd_endpoints("etcds://etcd-1:2379").unwrap(),
            vec!["https://etcd-1:2379"]
        );
        assert!(etcd_endpoints("postgres://x").is_err());
        assert!(etcd_endpoints("etcd://").is_err());
    }

    #[test]
    fn state_files_sit_beside_the_key_ring() {
        let keys = |ring: Option<&str>, file: Option<&str>| KeySourceArgs {
            keyring: ring.map(PathBuf::from),
            key_file: file.map(PathBuf::from),
            key_env: None,
        };
        assert_eq!(
            keys(Some("/var/lib/k3s-daas/keys/"), None).sibling("anchor"),
            Some(PathBuf::from("/var/lib/k3s-daas/keys.anchor"))
        );
        assert_eq!(
            keys(Some("keys"), None).sibling("admin.sock"),
            Some(PathBuf::from("keys.admin.sock"))
        );
        assert_eq!(
            keys(None, Some("/etc/k.key")).sibling("anchor"),
            Some(PathBuf::from("/etc/k.key.anchor"))
        );
        assert_eq!(keys(None, None).sibling("anchor"), None);
        assert!(refuse_inside(Path::new("/d/etcd/anchor"), Path::new("/d/etcd")).is_err());
        assert!(refuse_inside(Path::new("/d/keys.anchor"), Path::new("/d/etcd")).is_ok());
    }
}
