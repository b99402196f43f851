//! `nautilus-master etcd-shim`: the encrypting etcd v3 server, standalone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use daas_envelope::{EnvKey, KeyFile, KeyProvider, KeyRingDir};
use daas_etcd_shim::backend::Backend;
use daas_etcd_shim::{
    EmbeddedBackend, EmbeddedConfig, EtcdBackend, EtcdConfig, EtcdShim, Keys, Listen, Listener,
    ServeOptions, ServerTls, ShimOptions, serve,
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
    pub(crate) fn provider(&self) -> Box<dyn KeyProvider> {
        match (&self.keyring, &self.key_file, &self.key_env) {
            (Some(dir), _, _) => Box::new(KeyRingDir::new(dir.clone())),
            (_, Some(file), _) => Box::new(KeyFile::new(file.clone())),
            (_, _, Some(var)) => Box::new(EnvKey::new(var.clone())),
            // clap's group makes one of them required.
            (None, None, None) => Box::new(KeyRingDir::new(PathBuf::from(".daas-dev/keys"))),
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct EtcdShimArgs {
    /// Listen address: `127.0.0.1:2379` or `unix:///run/k3s-daas/etcd.sock`. Plaintext is
    /// refused on anything but loopback or a unix socket.
    #[arg(long, default_value = "127.0.0.1:2379", env = "DAAS_ETCD_LISTEN")]
    listen: Listen,
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
    /// CA (PEM) that client certificates must chain to: enables mTLS.
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
    /// How often the key ring is re-read (0s = only on `keys rotate --endpoint`).
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
    let keys = Arc::new(
        Keys::from_provider(args.keys.provider()).context("loading the value encryption keys")?,
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
    let listener = Listener::bind(&args.listen, tls.is_some()).await?;
    let url = listener.url(tls.is_some());
    let options = ShimOptions {
        max_request_bytes: args.max_request_bytes,
        advertise_url: args.advertise_url.clone().unwrap_or_else(|| url.clone()),
    };
    let serve_options = ServeOptions {
        tls,
        key_reload_interval: args.key_reload_interval,
    };
    tracing::info!(
        keys = %keys.describe(),
        active_key = %keys.active_id().map(|k| k.to_string()).unwrap_or_default(),
        backend = %args.backend,
        "etcd shim starting"
    );
    if let Some(dir) = args.backend.strip_prefix("embedded:") {
        if dir.is_empty() {
            bail!("embedded backend needs a directory: embedded:<dir>");
        }
        let mut config = EmbeddedConfig::new(dir);
        config.progress_notify_interval = args.progress_notify_interval;
        let backend = EmbeddedBackend::open(&config)?;
        serve_on(backend, keys, options, listener, serve_options, &url).await?;
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
        let backend = EtcdBackend::connect(&config)?;
        serve_on(backend, keys, options, listener, serve_options, &url).await?;
    }
    tracing::info!("etcd shim stopped");
    Ok(())
}

/// Announces the bound URL, then serves until SIGTERM/SIGINT. Generic over the backend so
/// both datastore choices share one serve path.
async fn serve_on<B: Backend>(
    backend: B,
    keys: Arc<Keys>,
    options: ShimOptions,
    listener: Listener,
    serve_options: ServeOptions,
    url: &str,
) -> Result<()> {
    announce(url);
    serve(
        EtcdShim::new(backend, keys, options),
        listener,
        serve_options,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// One line on stdout once the socket is bound, for supervisors and tests.
fn announce(url: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "etcd-shim listening on {url}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
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
}
