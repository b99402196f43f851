//! The parent side: ingress TCP → enclave, enclave egress → allow-listed TCP, and the
//! credentials relay.
//!
//! The parent is not trusted by the enclave, and nothing here asks it to be: ingress bytes are
//! TLS the enclave terminates, egress bytes are TLS the enclave originates, and the
//! credentials are the parent's own. What the parent's allow-list protects is the parent's
//! network, from an enclave that asks for more than it should.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::accept::accept_loop;
use crate::allow::AllowList;
use crate::credentials;
use crate::header::{self, Status};
use crate::metrics::{ActiveGuard, Counters, inc};
use crate::source::{CachedCredentials, CredentialsSource, SourceError};
use crate::splice::{Limits, splice};
use crate::transport::{
    Accepted, BoxListener, BoxStream, MIN_ENCLAVE_CID, VsockTransport, connect_within,
};

/// One ingress route: a TCP address on the parent forwarded to a vsock port in the enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressRoute {
    /// Where the parent listens (e.g. `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// The enclave's vsock port.
    pub vsock_port: u32,
}

impl std::str::FromStr for IngressRoute {
    type Err = String;

    /// `LISTEN=PORT`, e.g. `0.0.0.0:8080=8080`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (listen, port) = s.split_once('=').ok_or_else(|| {
            format!("`{s}`: expected LISTEN_ADDR=VSOCK_PORT, e.g. 0.0.0.0:8080=8080")
        })?;
        let listen = listen
            .parse()
            .map_err(|_| format!("`{listen}` is not an IP:port address"))?;
        let vsock_port = port
            .parse::<u32>()
            .ok()
            .filter(|p| *p != 0 && *p != u32::MAX)
            .ok_or_else(|| format!("`{port}` is not a vsock port (1..4294967294)"))?;
        Ok(Self { listen, vsock_port })
    }
}

/// Egress: where the enclave connects and what it may reach.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// The parent's vsock port for enclave-originated connections.
    pub vsock_port: u32,
    /// Targets the parent will connect to. Empty refuses everything.
    pub allow: AllowList,
}

/// The credentials relay.
#[derive(Debug, Clone)]
pub struct CredentialsConfig {
    /// The parent's vsock port for credentials requests.
    pub vsock_port: u32,
    /// Where the credentials come from.
    pub source: CredentialsSource,
    /// The region to report (and, for `web-identity`, of the STS endpoint). Required for
    /// `web-identity` and `container`; asked from IMDS when `None` with `imds`.
    pub region: Option<String>,
}

/// Everything the parent bridge serves.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The enclave's CID (≥ 4).
    pub enclave_cid: u32,
    /// Ingress routes.
    pub ingress: Vec<IngressRoute>,
    /// Egress, if the enclave may connect out.
    pub egress: Option<EgressConfig>,
    /// The credentials relay, if served.
    pub credentials: Option<CredentialsConfig>,
    /// Timeouts and sizes.
    pub limits: Limits,
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The enclave CID is reserved.
    #[error("enclave CID {0} is reserved (enclave CIDs are 4..4294967294)")]
    BadCid(u32),
    /// A TCP ingress address could not be bound.
    #[error("binding ingress {addr}: {source}")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A vsock port could not be bound.
    #[error("binding vsock port {port} for {what}: {source}")]
    BindVsock {
        /// The port.
        port: u32,
        /// Egress or credentials.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The credentials source is misconfigured. (Not a `#[source]`: the message already holds
    /// the whole cause, and a chain would print it twice.)
    #[error("credentials relay: {0}")]
    Credentials(SourceError),
    /// Two routes or services share a port.
    #[error("{0}")]
    Conflict(String),
}

/// The parent bridge.
pub struct Bridge;

/// A running bridge. Dropping it does not stop it; call [`BridgeHandle::shutdown`].
pub struct BridgeHandle {
    ingress_addrs: Vec<SocketAddr>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl BridgeHandle {
    /// The bound ingress addresses, in configuration order (useful with port 0).
    pub fn ingress_addrs(&self) -> &[SocketAddr] {
        &self.ingress_addrs
    }

    /// The bridge's counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting and drops every forwarded connection.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the bridge stops (it runs until [`shutdown`](Self::shutdown) or `cancel`).
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// A token that stops the bridge when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

struct Shared {
    enclave_cid: u32,
    limits: Limits,
    counters: Arc<Counters>,
    transport: Arc<dyn VsockTransport>,
}

impl Bridge {
    /// Binds every listener (so configuration errors surface before anything is served) and
    /// starts serving.
    pub async fn start(
        config: BridgeConfig,
        transport: Arc<dyn VsockTransport>,
    ) -> Result<BridgeHandle, BridgeError> {
        if config.enclave_cid < MIN_ENCLAVE_CID || config.enclave_cid == u32::MAX {
            return Err(BridgeError::BadCid(config.enclave_cid));
        }
        if let (Some(e), Some(c)) = (&config.egress, &config.credentials)
            && e.vsock_port == c.vsock_port
        {
            return Err(BridgeError::Conflict(format!(
                "egress and credentials both use vsock port {}",
                e.vsock_port
            )));
        }
        let shared = Arc::new(Shared {
            enclave_cid: config.enclave_cid,
            limits: config.limits.clone(),
            counters: Arc::new(Counters::default()),
            transport: transport.clone(),
        });
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut ingress_addrs = Vec::new();
        let mut tcp = Vec::new();
        for route in &config.ingress {
            let listener =
                TcpListener::bind(route.listen)
                    .await
                    .map_err(|source| BridgeError::BindTcp {
                        addr: route.listen,
                        source,
                    })?;
            let addr = listener
                .local_addr()
                .map_err(|source| BridgeError::BindTcp {
                    addr: route.listen,
                    source,
                })?;
            ingress_addrs.push(addr);
            tcp.push((listener, addr, route.vsock_port));
        }
        let egress = match &config.egress {
            Some(e) => Some((
                transport
                    .listen(e.vsock_port)
                    .map_err(|source| BridgeError::BindVsock {
                        port: e.vsock_port,
                        what: "egress",
                        source,
                    })?,
                Arc::new(e.allow.clone()),
            )),
            None => None,
        };
        let creds = match &config.credentials {
            Some(c) => {
                let source = CachedCredentials::new(&c.source, c.region.clone())
                    .map_err(BridgeError::Credentials)?;
                Some((
                    transport
                        .listen(c.vsock_port)
                        .map_err(|source| BridgeError::BindVsock {
                            port: c.vsock_port,
                            what: "credentials",
                            source,
                        })?,
                    Arc::new(source),
                ))
            }
            None => None,
        };
        // Everything is bound: start serving.
        for (listener, addr, port) in tcp {
            info!(listen = %addr, enclave_cid = config.enclave_cid, vsock_port = port, transport = %transport.describe(), "Bridge ingress");
            tasks.spawn(ingress_loop(listener, port, shared.clone(), cancel.clone()));
        }
        if let Some((listener, allow)) = egress {
            info!(
                vsock_port = listener.port(),
                targets = allow.len(),
                "Bridge egress"
            );
            tasks.spawn(egress_loop(listener, allow, shared.clone(), cancel.clone()));
        }
        if let Some((listener, source)) = creds {
            info!(
                vsock_port = listener.port(),
                source = source.name(),
                "Bridge credentials relay"
            );
            tasks.spawn(credentials_loop(
                listener,
                source,
                shared.clone(),
                cancel.clone(),
            ));
        }
        Ok(BridgeHandle {
            ingress_addrs,
            counters: shared.counters.clone(),
            cancel,
            tasks,
        })
    }
}

async fn ingress_loop(
    listener: TcpListener,
    vsock_port: u32,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let max = shared.limits.max_connections;
    accept_loop(
        || listener.accept(),
        max,
        cancel,
        "Bridge ingress",
        |(tcp, peer)| {
            inc(&shared.counters.ingress_connections);
            let shared = shared.clone();
            let span = info_span!("ingress", %peer, vsock_port);
            ingress_one(tcp, vsock_port, shared).instrument(span)
        },
    )
    .await;
}

async fn ingress_one(tcp: TcpStream, vsock_port: u32, shared: Arc<Shared>) {
    let _active = ActiveGuard::new(&shared.counters.active);
    let _ = tcp.set_nodelay(true);
    let vsock = match connect_within(
        shared.transport.as_ref(),
        shared.enclave_cid,
        vsock_port,
        shared.limits.connect_timeout,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            inc(&shared.counters.failures);
            warn!(error = %e, "Bridge ingress: enclave unreachable");
            return;
        }
    };
    match splice(tcp, vsock, &shared.limits, &shared.counters).await {
        Ok(m) => debug!(
            bytes_in = m.toward_enclave,
            bytes_out = m.from_enclave,
            "Ingress connection closed"
        ),
        Err(e) => {
            inc(&shared.counters.failures);
            debug!(error = %e, "Ingress connection ended");
        }
    }
}

/// Accepts from the enclave only: a connection whose reported peer CID is not the enclave's
/// is counted, logged and dropped, and the next one accepted.
async fn accept_from_enclave(
    listener: &BoxListener,
    shared: &Shared,
    what: &'static str,
) -> std::io::Result<Accepted> {
    loop {
        let accepted = listener.accept().await?;
        match accepted.peer_cid {
            Some(cid) if cid != shared.enclave_cid => {
                inc(&shared.counters.denied);
                info!(
                    peer_cid = cid,
                    enclave_cid = shared.enclave_cid,
                    service = what,
                    "Bridge denied a connection from another CID"
                );
            }
            _ => return Ok(accepted),
        }
    }
}

async fn egress_loop(
    listener: BoxListener,
    allow: Arc<AllowList>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let max = shared.limits.max_connections;
    accept_loop(
        || accept_from_enclave(&listener, &shared, "egress"),
        max,
        cancel,
        "Bridge egress",
        |accepted| {
            inc(&shared.counters.egress_connections);
            let shared = shared.clone();
            let allow = allow.clone();
            async move {
                let _active = ActiveGuard::new(&shared.counters.active);
                egress_one(accepted.stream, &allow, &shared).await;
            }
            .instrument(info_span!("egress"))
        },
    )
    .await;
}

async fn egress_one(mut vsock: BoxStream, allow: &AllowList, shared: &Shared) {
    let target =
        match tokio::time::timeout(shared.limits.header_timeout, header::read(&mut vsock)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                inc(&shared.counters.bad_headers);
                info!(error = %e, "Bridge egress refused a malformed header");
                let _ = header::write_reply(&mut vsock, Status::BadHeader, &e.to_string()).await;
                return;
            }
            Err(_) => {
                inc(&shared.counters.bad_headers);
                info!("Bridge egress: no complete header in time");
                let _ = header::write_reply(&mut vsock, Status::BadHeader, "header timeout").await;
                return;
            }
        };
    if !allow.allows(&target) {
        inc(&shared.counters.denied);
        info!(%target, "Bridge egress denied: target not on the parent's allow-list");
        let _ = header::write_reply(
            &mut vsock,
            Status::Denied,
            &format!("{target} is not on the parent's allow-list"),
        )
        .await;
        return;
    }
    let connect = TcpStream::connect((target.host_str(), target.port));
    let tcp = match tokio::time::timeout(shared.limits.connect_timeout, connect).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            inc(&shared.counters.failures);
            info!(%target, error = %e, "Bridge egress: target unreachable");
            let _ = header::write_reply(
                &mut vsock,
                Status::ConnectFailed,
                &format!("connecting to {target}: {e}"),
            )
            .await;
            return;
        }
        Err(_) => {
            inc(&shared.counters.failures);
            info!(%target, "Bridge egress: connect timed out");
            let _ = header::write_reply(
                &mut vsock,
                Status::ConnectFailed,
                &format!("connecting to {target} timed out"),
            )
            .await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    if header::write_reply(&mut vsock, Status::Ok, "")
        .await
        .is_err()
    {
        inc(&shared.counters.failures);
        return;
    }
    debug!(%target, "Egress connection open");
    match splice(tcp, vsock, &shared.limits, &shared.counters).await {
        Ok(m) => {
            debug!(%target, bytes_in = m.toward_enclave, bytes_out = m.from_enclave, "Egress connection closed")
        }
        Err(e) => {
            inc(&shared.counters.failures);
            debug!(%target, error = %e, "Egress connection ended");
        }
    }
}

async fn credentials_loop(
    listener: BoxListener,
    source: Arc<CachedCredentials>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    accept_loop(
        || accept_from_enclave(&listener, &shared, "credentials"),
        // Requests are tiny and rare; a handful at once is plenty.
        8,
        cancel,
        "Bridge credentials",
        |accepted| credentials_one(accepted.stream, source.clone(), shared.clone()),
    )
    .await;
}

async fn credentials_one(
    mut stream: BoxStream,
    source: Arc<CachedCredentials>,
    shared: Arc<Shared>,
) {
    let request = tokio::time::timeout(
        shared.limits.header_timeout,
        credentials::read_request(&mut stream),
    )
    .await;
    if !matches!(request, Ok(Ok(()))) {
        inc(&shared.counters.bad_headers);
        info!("Bridge credentials relay refused a malformed request");
        return;
    }
    inc(&shared.counters.credentials_requests);
    let fetched = source.get().await;
    let reply = match &fetched {
        Ok(c) => Ok(c),
        Err(e) => {
            inc(&shared.counters.failures);
            warn!(source = source.name(), error = %e, "Bridge credentials relay: the source failed");
            Err(e.to_string())
        }
    };
    match credentials::write_reply(&mut stream, reply).await {
        Ok(()) => debug!("Credentials relayed to the enclave"),
        Err(e) => debug!(error = %e, "Credentials reply not delivered"),
    }
    let _ = stream.shutdown().await;
}
