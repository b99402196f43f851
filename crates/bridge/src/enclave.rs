//! The enclave side: egress forwarders (local TCP → parent egress port, with the header),
//! ingress forwarders (vsock → local TCP services) and a dialer for code that connects out
//! directly.
//!
//! The enclave enforces its own allow-list before it sends any header: the parent's list is
//! the parent operator's and may be wider, and the enclave must not rely on it.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::accept::accept_loop;
use crate::allow::{AllowList, Target};
use crate::credentials::CredentialsClient;
use crate::header::{self, Status};
use crate::metrics::{ActiveGuard, Counters, inc};
use crate::splice::{Limits, splice};
use crate::transport::{
    Accepted, BoxListener, BoxStream, PARENT_CID, VsockTransport, connect_within,
};

fn parent_cid() -> u32 {
    PARENT_CID
}

/// One egress forwarder: a local listener whose connections go to `target` via the parent.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EgressForward {
    /// The target (must be on the enclave's allow-list).
    pub target: Target,
    /// The local address to listen on; loopback only (e.g. `127.0.0.1:2379`).
    pub listen: SocketAddr,
}

/// One ingress forwarder: a vsock port whose connections go to a local TCP service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IngressForward {
    /// The vsock port the parent connects to.
    pub vsock_port: u32,
    /// The local service (e.g. `127.0.0.1:8080` for the proxy).
    pub connect: SocketAddr,
}

/// The enclave side's configuration (serde, so it can live in the `serve` config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveConfig {
    /// The parent's CID (3 on Nitro; configurable for tests).
    #[serde(default = "parent_cid")]
    pub parent_cid: u32,
    /// The parent's egress vsock port; required when there are egress forwarders.
    #[serde(default)]
    pub egress_port: Option<u32>,
    /// Targets the enclave may reach. Empty refuses everything.
    #[serde(default)]
    pub allow: AllowList,
    /// Egress forwarders.
    #[serde(default)]
    pub egress: Vec<EgressForward>,
    /// Ingress forwarders.
    #[serde(default)]
    pub ingress: Vec<IngressForward>,
    /// The parent's credentials vsock port, if the relay is used.
    #[serde(default)]
    pub credentials_port: Option<u32>,
    /// Timeouts and sizes.
    #[serde(default)]
    pub limits: Limits,
}

impl Default for EnclaveConfig {
    fn default() -> Self {
        Self {
            parent_cid: PARENT_CID,
            egress_port: None,
            allow: AllowList::default(),
            egress: Vec::new(),
            ingress: Vec::new(),
            credentials_port: None,
            limits: Limits::default(),
        }
    }
}

/// Why the enclave side could not start.
#[derive(Debug, thiserror::Error)]
pub enum EnclaveError {
    /// A forwarder names a target the enclave's own allow-list does not hold.
    #[error("egress target {0} is not on the enclave's allow-list; refusing to forward it")]
    NotAllowed(Target),
    /// Egress forwarders without an egress port.
    #[error("egress forwarders are configured but no egress_port")]
    MissingEgressPort,
    /// A forwarder would listen beyond loopback.
    #[error("egress forwarder for {target} must listen on loopback, not {listen}")]
    NotLoopback {
        /// The target.
        target: Target,
        /// The address given.
        listen: SocketAddr,
    },
    /// A local listener could not be bound.
    #[error("binding egress forwarder {addr} for {target}: {source}")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// Its target.
        target: Target,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A vsock port could not be bound.
    #[error("binding vsock port {port} for ingress: {source}")]
    BindVsock {
        /// The port.
        port: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why an egress connection was not opened.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The enclave's own allow-list refused it; nothing was sent to the parent.
    #[error("{0} is not on the enclave's allow-list")]
    NotAllowed(Target),
    /// No egress port configured.
    #[error("egress is not configured (no egress_port)")]
    NotConfigured,
    /// The parent refused it.
    #[error("the parent refused {target}: {status:?}: {reason}")]
    Refused {
        /// The target.
        target: Target,
        /// The parent's status.
        status: Status,
        /// The parent's reason.
        reason: String,
    },
    /// Talking to the parent failed.
    #[error("egress to {target} via the parent: {source}")]
    Io {
        /// The target.
        target: Target,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Opens egress connections through the parent, after checking the enclave's allow-list.
#[derive(Clone)]
pub struct EgressDialer {
    transport: Arc<dyn VsockTransport>,
    parent_cid: u32,
    port: Option<u32>,
    allow: Arc<AllowList>,
    limits: Limits,
    counters: Arc<Counters>,
}

impl EgressDialer {
    /// Connects to `target` through the parent; on success the stream carries the target's
    /// bytes (the header exchange is done).
    pub async fn dial(&self, target: &Target) -> Result<BoxStream, EgressError> {
        if !self.allow.allows(target) {
            inc(&self.counters.denied);
            info!(%target, "Enclave egress refused: target not on the enclave's allow-list");
            return Err(EgressError::NotAllowed(target.clone()));
        }
        let port = self.port.ok_or(EgressError::NotConfigured)?;
        let io = |source| EgressError::Io {
            target: target.clone(),
            source,
        };
        let exchange = async {
            let mut stream = connect_within(
                self.transport.as_ref(),
                self.parent_cid,
                port,
                self.limits.connect_timeout,
            )
            .await?;
            tokio::io::AsyncWriteExt::write_all(&mut stream, &header::encode(target)).await?;
            let reply = header::read_reply(&mut stream).await?;
            Ok::<_, std::io::Error>((stream, reply))
        };
        // The parent connects to the target before it answers: allow for both connects.
        let limit = self.limits.connect_timeout.saturating_mul(2);
        let (stream, reply) = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| {
                io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the parent did not answer the egress header in time",
                ))
            })
            .and_then(|r| r.map_err(io))
            .inspect_err(|_| inc(&self.counters.failures))?;
        if reply.status != Status::Ok {
            inc(if reply.status == Status::Denied {
                &self.counters.denied
            } else {
                &self.counters.failures
            });
            info!(%target, status = ?reply.status, reason = %reply.reason, "Enclave egress refused by the parent");
            return Err(EgressError::Refused {
                target: target.clone(),
                status: reply.status,
                reason: reply.reason,
            });
        }
        Ok(stream)
    }
}

/// The enclave side of the bridge.
pub struct EnclaveSide;

/// A running enclave side. Call [`EnclaveHandle::shutdown`] to stop it.
pub struct EnclaveHandle {
    egress_addrs: Vec<(Target, SocketAddr)>,
    dialer: EgressDialer,
    credentials_port: Option<u32>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl EnclaveHandle {
    /// Each egress forwarder's target and bound address (useful with port 0).
    pub fn egress_addrs(&self) -> &[(Target, SocketAddr)] {
        &self.egress_addrs
    }

    /// A dialer for code that connects out without a local forwarder.
    pub fn dialer(&self) -> EgressDialer {
        self.dialer.clone()
    }

    /// A client for the parent's credentials relay, if configured.
    pub fn credentials(&self) -> Option<CredentialsClient<'_>> {
        self.credentials_port.map(|port| {
            CredentialsClient::new(self.dialer.transport.as_ref(), port)
                .with_parent_cid(self.dialer.parent_cid)
        })
    }

    /// The enclave side's counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting and drops every forwarded connection.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl EnclaveSide {
    /// Checks the configuration against the enclave's allow-list, binds every listener, and
    /// starts forwarding.
    pub async fn start(
        config: EnclaveConfig,
        transport: Arc<dyn VsockTransport>,
    ) -> Result<EnclaveHandle, EnclaveError> {
        for f in &config.egress {
            if !config.allow.allows(&f.target) {
                return Err(EnclaveError::NotAllowed(f.target.clone()));
            }
            if !f.listen.ip().is_loopback() {
                return Err(EnclaveError::NotLoopback {
                    target: f.target.clone(),
                    listen: f.listen,
                });
            }
        }
        if !config.egress.is_empty() && config.egress_port.is_none() {
            return Err(EnclaveError::MissingEgressPort);
        }
        let counters = Arc::new(Counters::default());
        let dialer = EgressDialer {
            transport: transport.clone(),
            parent_cid: config.parent_cid,
            port: config.egress_port,
            allow: Arc::new(config.allow.clone()),
            limits: config.limits.clone(),
            counters: counters.clone(),
        };
        let mut egress = Vec::new();
        for f in &config.egress {
            let listener =
                TcpListener::bind(f.listen)
                    .await
                    .map_err(|source| EnclaveError::BindTcp {
                        addr: f.listen,
                        target: f.target.clone(),
                        source,
                    })?;
            let addr = listener
                .local_addr()
                .map_err(|source| EnclaveError::BindTcp {
                    addr: f.listen,
                    target: f.target.clone(),
                    source,
                })?;
            egress.push((f.target.clone(), addr, listener));
        }
        let mut ingress = Vec::new();
        for f in &config.ingress {
            let listener =
                transport
                    .listen(f.vsock_port)
                    .map_err(|source| EnclaveError::BindVsock {
                        port: f.vsock_port,
                        source,
                    })?;
            ingress.push((listener, f.connect));
        }
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut egress_addrs = Vec::new();
        for (target, addr, listener) in egress {
            info!(%target, listen = %addr, "Enclave egress forwarder");
            egress_addrs.push((target.clone(), addr));
            tasks.spawn(egress_forwarder(
                listener,
                target,
                dialer.clone(),
                cancel.clone(),
            ));
        }
        for (listener, connect) in ingress {
            info!(vsock_port = listener.port(), %connect, "Enclave ingress forwarder");
            tasks.spawn(ingress_forwarder(
                listener,
                connect,
                config.parent_cid,
                config.limits.clone(),
                counters.clone(),
                cancel.clone(),
            ));
        }
        Ok(EnclaveHandle {
            egress_addrs,
            dialer,
            credentials_port: config.credentials_port,
            counters,
            cancel,
            tasks,
        })
    }
}

async fn egress_forwarder(
    listener: TcpListener,
    target: Target,
    dialer: EgressDialer,
    cancel: CancellationToken,
) {
    let max = dialer.limits.max_connections;
    accept_loop(
        || listener.accept(),
        max,
        cancel,
        "Enclave egress",
        |(tcp, peer)| {
            inc(&dialer.counters.egress_connections);
            let span = info_span!("egress", %target, %peer);
            egress_one(tcp, target.clone(), dialer.clone()).instrument(span)
        },
    )
    .await;
}

async fn egress_one(tcp: TcpStream, target: Target, dialer: EgressDialer) {
    let _active = ActiveGuard::new(&dialer.counters.active);
    let _ = tcp.set_nodelay(true);
    let upstream = match dialer.dial(&target).await {
        Ok(s) => s,
        Err(e) => {
            // dial() has counted it (denied or failure).
            info!(error = %e, "Enclave egress failed");
            return;
        }
    };
    match splice(upstream, tcp, &dialer.limits, &dialer.counters).await {
        Ok(m) => debug!(
            bytes_in = m.toward_enclave,
            bytes_out = m.from_enclave,
            "Egress connection closed"
        ),
        Err(e) => {
            inc(&dialer.counters.failures);
            debug!(error = %e, "Egress connection ended");
        }
    }
}

/// Accepts from the parent only: a connection whose reported peer CID is not the parent's is
/// counted, logged and dropped, and the next one accepted.
async fn accept_from_parent(
    listener: &BoxListener,
    parent_cid: u32,
    counters: &Counters,
) -> std::io::Result<Accepted> {
    loop {
        let accepted = listener.accept().await?;
        match accepted.peer_cid {
            Some(cid) if cid != parent_cid => {
                inc(&counters.denied);
                info!(
                    peer_cid = cid,
                    vsock_port = listener.port(),
                    "Enclave ingress denied a connection from another CID"
                );
            }
            _ => return Ok(accepted),
        }
    }
}

async fn ingress_forwarder(
    listener: BoxListener,
    connect: SocketAddr,
    parent_cid: u32,
    limits: Limits,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let vsock_port = listener.port();
    accept_loop(
        || accept_from_parent(&listener, parent_cid, &counters),
        limits.max_connections,
        cancel,
        "Enclave ingress",
        |accepted| {
            inc(&counters.ingress_connections);
            ingress_one(accepted.stream, connect, limits.clone(), counters.clone())
                .instrument(info_span!("ingress", vsock_port, %connect))
        },
    )
    .await;
}

async fn ingress_one(
    vsock: BoxStream,
    connect: SocketAddr,
    limits: Limits,
    counters: Arc<Counters>,
) {
    let _active = ActiveGuard::new(&counters.active);
    let tcp = match tokio::time::timeout(limits.connect_timeout, TcpStream::connect(connect)).await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            inc(&counters.failures);
            warn!(error = %e, "Enclave ingress: local service unreachable");
            return;
        }
        Err(_) => {
            inc(&counters.failures);
            warn!("Enclave ingress: local service connect timed out");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    match splice(vsock, tcp, &limits, &counters).await {
        Ok(m) => debug!(
            bytes_in = m.toward_enclave,
            bytes_out = m.from_enclave,
            "Ingress connection closed"
        ),
        Err(e) => {
            inc(&counters.failures);
            debug!(error = %e, "Ingress connection ended");
        }
    }
}
