//! Where the shim listens, with what TLS, and the serve loop.
//!
//! Architecture invariant: nothing serves the decrypted cluster state without authenticating
//! its client. A unix socket is 0600 (only its owner); loopback TCP is reachable only from this
//! host; any other TCP address needs mTLS (a client CA). KeyAdmin gets a listener of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use daas_etcd_proto::admin::key_admin_server::KeyAdminServer;
use daas_etcd_proto::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::admin::KeyAdmin;
use crate::anchor::{self, Anchor};
use crate::backend::Backend;
use crate::keys::Keys;
use crate::server::EtcdShim;

/// A listen address: `host:port` or `unix:///path/to.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err("unix socket path is empty".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Self::Tcp)
            .map_err(|e| format!("{s:?} is neither host:port (IP literal) nor unix:///path: {e}"))
    }
}

/// Server certificate, key and (for mTLS) the CA that client certificates must chain to.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve on non-loopback address {0} without client-certificate \
         authentication: anyone who can reach it could read and write every value in clear. \
         Give --tls-cert and --tls-key together with --tls-client-ca (mTLS), or listen on \
         127.0.0.1 or a unix socket"
    )]
    UnauthenticatedRemote(SocketAddr),
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound listener (bind first so the caller knows the address before serving).
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Whether `tls` authenticates clients (mTLS with a client CA).
fn authenticates_clients(tls: Option<&ServerTls>) -> bool {
    tls.is_some_and(|t| t.client_ca_pem.is_some())
}

/// A TCP address anyone but this host's own users may reach needs client certificates; TLS
/// alone would only encrypt the decrypted cluster state on its way to anybody.
fn check_tcp(addr: SocketAddr, tls: Option<&ServerTls>) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && !authenticates_clients(tls) {
        return Err(ServeError::UnauthenticatedRemote(addr));
    }
    Ok(())
}

impl Listener {
    /// Binds. A TCP listener on a non-loopback address is refused (before binding) unless
    /// `tls` authenticates clients; a unix socket is created with mode 0600.
    pub async fn bind(listen: &Listen, tls: Option<&ServerTls>) -> Result<Self, ServeError> {
        match listen {
            Listen::Tcp(addr) => {
                check_tcp(*addr, tls)?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind {
                        what: addr.to_string(),
                        source,
                    })?;
                Ok(Self::Tcp(listener))
            }
            Listen::Unix(path) => {
                // A stale socket from a previous run would make bind fail.
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                let listener =
                    tokio::net::UnixListener::bind(path).map_err(|source| ServeError::Bind {
                        what: path.display().to_string(),
                        source,
                    })?;
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(|source| ServeError::Bind {
                            what: path.display().to_string(),
                            source,
                        })?;
                }
                Ok(Self::Unix(listener, path.clone()))
            }
        }
    }

    /// The URL a client uses (`http://127.0.0.1:PORT`, `https://…`, `unix://…`).
    pub fn url(&self, tls: bool) -> String {
        match self {
            Self::Tcp(l) => {
                let scheme = if tls { "https" } else { "http" };
                match l.local_addr() {
                    Ok(addr) => format!("{scheme}://{addr}"),
                    Err(_) => format!("{scheme}://<unknown>"),
                }
            }
            Self::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }

    /// The same check as [`bind`](Self::bind), for a listener bound elsewhere.
    fn check(&self, tls: Option<&ServerTls>) -> Result<(), ServeError> {
        match self {
            Self::Tcp(l) => match l.local_addr() {
                Ok(addr) => check_tcp(addr, tls),
                Err(source) => Err(ServeError::Bind {
                    what: "a TCP listener".into(),
                    source,
                }),
            },
            Self::Unix(..) => Ok(()),
        }
    }

    fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp(_))
    }
}

/// The TLS the KeyAdmin listener uses: the shim's TLS on TCP, none on a (0600) unix socket.
pub fn admin_tls<'a>(admin: &Listen, tls: Option<&'a ServerTls>) -> Option<&'a ServerTls> {
    match admin {
        Listen::Tcp(_) => tls,
        Listen::Unix(_) => None,
    }
}

/// Serving options beyond the shim itself.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub tls: Option<ServerTls>,
    /// Re-read the key ring this often (0 = never; the admin `Reload` still works).
    pub key_reload_interval: Duration,
    /// Persist the freshness watermark here, at most every second while it changes and once
    /// more at shutdown (see [`crate::anchor`]). `None`: nothing survives a restart.
    pub anchor: Option<Anchor>,
}

/// Serves the etcd API and gRPC health on `listener`, and `daas.shim.v1.KeyAdmin` on `admin`
/// (its own listener, never the etcd one; TLS only when it is TCP), until `shutdown` resolves
/// or either server fails. Non-loopback TCP listeners without client-certificate
/// authentication are refused.
pub async fn serve<B: Backend>(
    shim: EtcdShim<B>,
    listener: Listener,
    admin: Option<Listener>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    listener.check(options.tls.as_ref())?;
    let admin_tls = admin
        .as_ref()
        .and_then(|a| a.is_tcp().then_some(options.tls.as_ref()).flatten())
        .cloned();
    if let Some(a) = &admin {
        a.check(admin_tls.as_ref())?;
    }
    let reloader = spawn_key_reloader(shim.keys.clone(), options.key_reload_interval);
    let writer = options
        .anchor
        .clone()
        .map(|a| anchor::spawn_writer(shim.freshness.clone(), shim.keys.clone(), a));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let etcd = async {
        let result = serve_etcd(
            shim.clone(),
            listener,
            options.tls.as_ref(),
            stopped(stop_rx.clone()),
        )
        .await;
        let _ = stop_tx.send(true);
        result
    };
    let admin = async {
        let Some(admin) = admin else {
            return Ok(());
        };
        let result = serve_admin(
            KeyAdmin::new(shim.clone()),
            admin,
            admin_tls.as_ref(),
            stopped(stop_rx.clone()),
        )
        .await;
        let _ = stop_tx.send(true);
        result
    };
    let trigger = async {
        tokio::select! {
            () = shutdown => {}
            () = stopped(stop_rx.clone()) => {}
        }
        let _ = stop_tx.send(true);
    };
    let (etcd, admin, ()) = tokio::join!(etcd, admin, trigger);

    if let Some(task) = reloader {
        task.abort();
    }
    if let (Some(task), Some(anchor)) = (writer, &options.anchor) {
        task.abort();
        let watermark = shim.freshness.watermark();
        match anchor::write_now(&shim.keys, anchor, watermark).await {
            Ok(()) => {
                tracing::info!(anchor = %anchor.path().display(), revision = watermark.revision, "freshness anchor written at shutdown")
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the freshness anchor at shutdown"),
        }
    }
    etcd.and(admin)
}

fn tls_config(tls: &ServerTls) -> ServerTlsConfig {
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    if let Some(ca) = &tls.client_ca_pem {
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    config
}

fn builder(tls: Option<&ServerTls>) -> Result<Server, ServeError> {
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(10_000));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls_config(tls))?;
    }
    Ok(builder)
}

async fn serve_etcd<B: Backend>(
    shim: EtcdShim<B>,
    listener: Listener,
    tls: Option<&ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let max_decoding = shim.options.max_request_bytes + 512 * 1024;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let router = builder(tls)?
        .add_service(
            KvServer::new(shim.clone())
                .max_decoding_message_size(max_decoding)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::new(shim.clone())
                .max_decoding_message_size(max_decoding)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(LeaseServer::new(shim.clone()))
        .add_service(ClusterServer::new(shim.clone()))
        .add_service(MaintenanceServer::new(shim))
        .add_service(health);
    run(router, listener, shutdown).await
}

async fn serve_admin<B: Backend>(
    admin: KeyAdmin<B>,
    listener: Listener,
    tls: Option<&ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let router = builder(tls)?.add_service(KeyAdminServer::new(admin));
    run(router, listener, shutdown).await
}

async fn run(
    router: tonic::transport::server::Router,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let result = match listener {
        Listener::Tcp(l) => {
            // With an external incoming stream tonic ignores `Server::tcp_nodelay`: set it on
            // the accepted sockets here, or every small reply waits ~40 ms for a delayed ACK.
            let incoming = TcpIncoming::from(l)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60)));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Listener::Unix(l, path) => {
            let result = router
                .serve_with_incoming_shutdown(UnixListenerStream::new(l), shutdown)
                .await;
            let _ = std::fs::remove_file(path);
            result
        }
    };
    result.map_err(ServeError::from)
}

fn spawn_key_reloader(keys: Arc<Keys>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        let mut last_error: Option<String> = None;
        loop {
            ticker.tick().await;
            match keys.reload() {
                Ok(r) => {
                    if r.previous_active != Some(r.active) {
                        tracing::info!(active = %r.active, keys = r.ids.len(), "key ring reloaded: new active key");
                    }
                    last_error = None;
                }
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(error = %msg, "key ring reload failed; keeping the current ring");
                    }
                    last_error = Some(msg);
                }
            }
        }
    }))
}
