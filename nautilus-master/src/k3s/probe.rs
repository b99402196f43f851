//! Readiness probes for the supervised k3s server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{K3sServerConfig, ReadinessProbe};

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

/// Ready once `GET /ping` on the K3s supervisor port answers `pong` over TLS verified against
/// the cluster CA K3s wrote (`<data-dir>/server/tls/server-ca.crt`). Unlike a TCP connect this
/// proves the server's certificates exist and its HTTP stack serves.
#[derive(Debug, Clone)]
pub struct HttpsPingProbe {
    addr: SocketAddr,
    ca_file: std::path::PathBuf,
    timeout: Duration,
}

impl HttpsPingProbe {
    /// Probes a server started with `config`.
    pub fn for_server(config: &K3sServerConfig) -> Self {
        Self {
            addr: TcpConnectProbe::for_server(config).addr(),
            ca_file: config.data_dir.join("server/tls/server-ca.crt"),
            timeout: Duration::from_secs(2),
        }
    }

    /// Probes `addr`, trusting only the CA in `ca_file`.
    pub fn new(addr: SocketAddr, ca_file: impl Into<std::path::PathBuf>) -> Self {
        Self {
            addr,
            ca_file: ca_file.into(),
            timeout: Duration::from_secs(2),
        }
    }

    async fn ping(&self) -> Option<bool> {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pem = std::fs::read(&self.ca_file).ok()?; // a small file, read once per probe
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.ok()?).ok()?;
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        let mut tls = connector.connect(name, tcp).await.ok()?;
        tls.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        (&mut tls)
            .take(16 * 1024)
            .read_to_end(&mut answer)
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&answer);
        Some(text.starts_with("HTTP/1.1 200") && text.ends_with("pong"))
    }
}

impl ReadinessProbe for HttpsPingProbe {
    async fn ready(&self) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, self.ping()).await,
            Ok(Some(true))
        )
    }
}

#[cfg(test)]
mod https_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TLS server answering like K3s's `/ping`; returns its address and CA PEM.
    async fn pong_server(body: &'static str) -> (SocketAddr, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, ca.pem())
    }

    #[tokio::test]
    async fn ready_only_with_the_right_ca_and_a_pong() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, ca) = pong_server("pong").await;
        let ca_file = dir.path().join("server-ca.crt");
        let probe = HttpsPingProbe::new(addr, &ca_file);
        assert!(
            !probe.ready().await,
            "no CA file yet: K3s has not written its certs"
        );
        std::fs::write(&ca_file, &ca).unwrap();
        assert!(probe.ready().await);

        let (_, other_ca) = pong_server("pong").await;
        let wrong = dir.path().join("other.crt");
        std::fs::write(&wrong, other_ca).unwrap();
        assert!(
            !HttpsPingProbe::new(addr, &wrong).ready().await,
            "CA must verify"
        );

        let (odd, odd_ca) = pong_server("nope").await;
        let odd_file = dir.path().join("odd.crt");
        std::fs::write(&odd_file, odd_ca).unwrap();
        assert!(!HttpsPingProbe::new(odd, &odd_file).ready().await);
    }
}
