//! Readiness probes for the supervised k3s server.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::K3sServerConfig;

/// Tells the [`Supervisor`](super::Supervisor) when a freshly started k3s serves.
///
/// Called repeatedly (every [`SupervisorConfig::probe_interval`](super::SupervisorConfig)) until
/// it returns `true` once; a probe should bound its own time.
pub trait ReadinessProbe: Send + Sync {
    /// Whether the server is ready now.
    fn ready(&self) -> impl Future<Output = bool> + Send;
}

/// Ready once a TCP connection to the https port succeeds.
///
/// This only shows that the K3s supervisor listens (it does so before kube-apiserver is up);
/// an HTTPS probe of the API replaces it where that matters.
#[derive(Debug, Clone)]
pub struct TcpConnectProbe {
    addr: SocketAddr,
    timeout: Duration,
}

impl TcpConnectProbe {
    /// How long one connection attempt may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// Probes `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Probes the https port of a server started with `config` (its bind address, or loopback
    /// when it binds the unspecified address).
    pub fn for_server(config: &K3sServerConfig) -> Self {
        let ip = match config.bind_address {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self::new(SocketAddr::new(ip, config.https_listen_port))
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The address probed.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl ReadinessProbe for TcpConnectProbe {
    async fn ready(&self) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(self.addr)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::Datastore;

    #[tokio::test]
    async fn tcp_probe() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert!(TcpConnectProbe::new(addr).ready().await);
        drop(listener);
        assert!(!TcpConnectProbe::new(addr).ready().await);
    }

    #[test]
    fn probes_the_server_port() {
        let mut config = K3sServerConfig::new("/d", Datastore::plain("http://x"), "/t", "/k");
        config.https_listen_port = 7443;
        assert_eq!(
            TcpConnectProbe::for_server(&config).addr(),
            "127.0.0.1:7443".parse().expect("literal")
        );
        config.bind_address = "0.0.0.0".parse().expect("literal");
        assert_eq!(
            TcpConnectProbe::for_server(&config).addr(),
            "127.0.0.1:7443".parse().expect("literal")
        );
        config.bind_address = "10.1.2.3".parse().expect("literal");
        assert_eq!(
            TcpConnectProbe::for_server(&config).addr(),
            "10.1.2.3:7443".parse().expect("literal")
        );
    }
}
