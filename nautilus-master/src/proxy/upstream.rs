//! The connection to the Kubernetes API server: TLS verified against the cluster CA, the
//! front-proxy client certificate presented, HTTP/2 when the server offers it.
//!
//! Pooled clients share one configuration: a few that offer `h2` and `http/1.1` (everything
//! except long-running requests; each identity always uses the same one, so a tenant that leaves
//! responses unread stalls at most the tenants sharing its connection), and one that offers only
//! `http/1.1` (watches, followed logs and exec/attach/port-forward upgrades, which Kubernetes
//! serves over HTTP/1.1 only, each on a connection of its own).
//!
//! HTTP/2 flow control: unread response data holds connection window until it is read. Each
//! stream may hold at most [`STREAM_WINDOW`]; the connection window is [`CONNECTION_WINDOW`], far
//! more than one identity can hold with its capped concurrent requests (see
//! `ProxyConfig::max_requests_per_identity`), so one stalled reader cannot close the window
//! for everybody.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::{ALPN_H2, ALPN_HTTP11, TlsError, UpstreamTls, server_name};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Upstream settings.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `https://host:port` of the API server (K3s: `https://127.0.0.1:6443`).
    pub url: Uri,
    pub tls: UpstreamTls,
    /// TCP connect + TLS handshake limit.
    pub connect_timeout: Duration,
}

impl UpstreamConfig {
    pub fn new(url: &str, tls: UpstreamTls) -> Result<Self, TlsError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| TlsError::BadUpstreamUrl(url.to_owned()))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(TlsError::BadUpstreamUrl(url.to_owned()));
        }
        Ok(UpstreamConfig {
            url: uri,
            tls,
            connect_timeout: Duration::from_secs(10),
        })
    }
}

/// Connects TCP + TLS (cluster CA, client cert) to the upstream named by the request URI.
#[derive(Clone)]
pub(crate) struct TlsConnect {
    tls: TlsConnector,
    timeout: Duration,
}

impl TlsConnect {
    pub(crate) fn new(config: &UpstreamConfig, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        Ok(TlsConnect {
            tls: TlsConnector::from(config.tls.client_config(alpn)?),
            timeout: config.connect_timeout,
        })
    }
}

impl tower_service::Service<Uri> for TlsConnect {
    type Response = UpstreamConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let host = uri.host().ok_or("upstream URI without host")?.to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = server_name(&host)?;
            let connect = async {
                let addr = (host.trim_start_matches('[').trim_end_matches(']'), port);
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| "upstream connect timed out")??;
            Ok(UpstreamConn(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection to the upstream, reporting whether ALPN chose HTTP/2.
pub(crate) struct UpstreamConn(TokioIo<TlsStream<TcpStream>>);

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        let (_, session) = self.0.inner().get_ref();
        if session.alpn_protocol() == Some(ALPN_H2) {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl hyper::rt::Read for UpstreamConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// HTTP/2 receive window of each upstream stream.
pub(crate) const STREAM_WINDOW: u32 = 512 * 1024;
/// HTTP/2 receive window of each upstream connection.
pub(crate) const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Builds a pooled client over [`TlsConnect`] for request bodies of type `B`.
pub(crate) fn client<B>(connect: TlsConnect, http2: bool) -> Client<TlsConnect, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .set_host(true);
    if http2 {
        builder
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(20))
            .http2_keep_alive_while_idle(false);
    }
    builder.build(connect)
}

/// The clients, built once.
pub(crate) struct Upstream<B> {
    pub(crate) base: Uri,
    pooled: Vec<Client<TlsConnect, B>>,
    /// Keyed per process: nobody can choose an identity that shares a given tenant's
    /// connection.
    shard_key: std::hash::RandomState,
    pub(crate) http1: Client<TlsConnect, B>,
}

impl<B> Upstream<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// `shards` pooled HTTP/2-capable clients (at least one) plus the HTTP/1.1 one.
    pub(crate) fn new(config: &UpstreamConfig, shards: usize) -> Result<Arc<Self>, TlsError> {
        let connect = TlsConnect::new(config, &[ALPN_H2, ALPN_HTTP11])?;
        Ok(Arc::new(Upstream {
            base: config.url.clone(),
            pooled: (0..shards.max(1))
                .map(|_| client(connect.clone(), true))
                .collect(),
            shard_key: std::hash::RandomState::new(),
            http1: client(TlsConnect::new(config, &[ALPN_HTTP11])?, false),
        }))
    }

    /// The pooled client `identity` always uses.
    pub(crate) fn pooled_for(&self, identity: &str) -> &Client<TlsConnect, B> {
        use std::hash::BuildHasher;
        let h = self.shard_key.hash_one(identity);
        let i = usize::try_from(h % self.pooled.len() as u64).unwrap_or(0);
        &self.pooled[i]
    }

    /// `base` with the path and query of `path_and_query`.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(path_and_query.parse()?);
        Ok(Uri::from_parts(parts)?)
    }
}
