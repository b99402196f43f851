//! Where the shim listens, with what TLS, and the serve loop.

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
        "refusing to serve plaintext etcd on non-loopback address {0}: give --tls-cert/--tls-key \
         (and --tls-client-ca for mTLS), or listen on 127.0.0.1 or a unix socket"
    )]
    PlaintextRemote(SocketAddr),
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

impl Listener {
    /// Binds. Plaintext is allowed only on loopback or a unix socket.
    pub async fn bind(listen: &Listen, tls: bool) -> Result<Self, ServeError> {
        match listen {
            Listen::Tcp(addr) => {
                if !tls && !addr.ip().is_loopback() {
                    return Err(ServeError::PlaintextRemote(*addr));
                }
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
}

/// Serving options beyond the shim itself.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub tls: Option<ServerTls>,
    /// Re-read the key ring this often (0 = never; the admin `Reload` still works).
    pub key_reload_interval: Duration,
}

/// Serves the etcd API, gRPC health and the key admin API until `shutdown` resolves.
pub async fn serve<B: Backend>(
    shim: EtcdShim<B>,
    listener: Listener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let max_decoding = shim.options.max_request_bytes + 512 * 1024;
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(10_000));
    if let Some(tls) = &options.tls {
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reloader = spawn_key_reloader(shim.keys.clone(), options.key_reload_interval);
    let router = builder
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
        .add_service(MaintenanceServer::new(shim.clone()))
        .add_service(KeyAdminServer::new(KeyAdmin::new(shim)))
        .add_service(health);
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
    if let Some(task) = reloader {
        task.abort();
    }
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
