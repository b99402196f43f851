//! Accept loops: TLS (or explicit dev plaintext), HTTP/1.1 with upgrades and HTTP/2, limits
//! against slow and numerous clients, graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::{Proxy, ProxyBody};
use crate::auth::StakeView;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// A client that has not finished the TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection whose first request head is not complete by then (after the TLS
    /// handshake) is dropped, whatever the protocol; on HTTP/1.1 also each later head
    /// (slowloris).
    pub header_read_timeout: Duration,
    /// Open connections beyond this are closed at accept.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64) beyond this are closed at
    /// accept.
    pub max_connections_per_ip: usize,
    /// A connection with no request in progress for this long is closed (HTTP/2 included,
    /// whose keep-alive pings would otherwise hold it open forever).
    pub idle_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// On shutdown, how long open requests (watches included) may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_connections_per_ip: 256,
            idle_timeout: Duration::from_secs(60),
            max_concurrent_streams: 250,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The client certificate a TLS client presented (verified by the listener's client-certificate
/// verifier), attached to each of its requests as an extension. Only listeners configured to
/// ask for one (the :6443 front) ever attach it.
#[derive(Clone, Debug)]
pub struct ClientCert(pub rustls::pki_types::CertificateDer<'static>);

/// A client byte stream: TLS over TCP, or TCP alone in explicit dev mode.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>
        + Send
        + Sync,
>;

/// Serves the kubectl front door on `listener` until `shutdown` resolves, then drains.
/// `tls: None` is plaintext, allowed only behind the explicit `--insecure-dev-http` flag.
pub async fn serve_proxy<V: StakeView + 'static>(
    proxy: Arc<Proxy<V>>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connections = proxy.metrics.open_connections.clone();
    let handler: Handler = Arc::new(move |req, remote| {
        let proxy = proxy.clone();
        Box::pin(proxy.handle(req, remote))
    });
    serve(listener, tls, limits, handler, Some(connections), shutdown).await;
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    handler: Handler,
    connections: Option<Gauge>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = PerIp::new(limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    // Closes the connections still open when the drain times out (dropping their tasks; the
    // tasks would otherwise outlive the server, and with them what they hold: the proxy, its
    // chain client, upstream watches).
    let closer = tokio_util::sync::CancellationToken::new();
    let local = listener.local_addr().ok();
    tokio::pin!(shutdown);

    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%remote, "connection limit reached; closing");
            continue;
        };
        let Some(ip_slot) = per_ip.acquire(crate::ratelimit::client_key(remote.ip())) else {
            debug!(%remote, "connection limit for this address reached; closing");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let handler = handler.clone();
        let watcher = graceful.watcher();
        let connections = connections.clone();
        let closed = closer.clone().cancelled_owned();
        let connection = async move {
            let _slots = (slot, ip_slot);
            let got_request = Arc::new(AtomicBool::new(false));
            let seen = got_request.clone();
            let activity = Activity::new();
            let active = activity.clone();
            let client_cert = Arc::new(std::sync::OnceLock::<ClientCert>::new());
            let cert_slot = client_cert.clone();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                seen.store(true, Ordering::Relaxed);
                if let Some(cert) = cert_slot.get() {
                    req.extensions_mut().insert(cert.clone());
                }
                let busy = active.begin();
                let fut = handler(req, remote);
                async move {
                    let resp = fut.await;
                    // The request counts as in progress until its response body is done.
                    Ok::<_, std::convert::Infallible>(resp.map(move |body| {
                        body.map_frame(move |f| {
                            let _ = &busy;
                            f
                        })
                        .boxed_unsync()
                    }))
                }
            });
            let first_request = limits.header_read_timeout;
            // TLS (or, behind the dev flag, plaintext) first; then one serving path for both.
            let io: Option<Box<dyn Io>> = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            if let Some(cert) = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|certs| certs.first())
                            {
                                let _ = client_cert.set(ClientCert(cert.clone().into_owned()));
                            }
                            Some(Box::new(stream))
                        }
                        Ok(Err(e)) => {
                            debug!(%remote, error = %e, "TLS handshake failed");
                            None
                        }
                        Err(_) => {
                            debug!(%remote, "TLS handshake timed out");
                            None
                        }
                    }
                }
                None => Some(Box::new(tcp)),
            };
            if let Some(io) = io {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                let conn = watcher.watch(conn);
                let conn = until_idle(conn, &activity, limits.idle_timeout);
                match first_request_deadline(conn, &got_request, first_request).await {
                    Some(Some(Ok(()))) => {}
                    Some(Some(Err(e))) => {
                        debug!(%remote, error = %e, "connection ended with an error");
                    }
                    Some(None) => debug!(%remote, "idle; closing"),
                    None => debug!(%remote, "no request in time; closing"),
                }
            }
        };
        tokio::spawn(async move {
            if let Some(g) = &connections {
                g.inc();
            }
            tokio::select! {
                () = connection => {}
                () = closed => debug!(%remote, "closed at the end of the drain"),
            }
            if let Some(g) = &connections {
                g.dec();
            }
        });
    }

    drop(listener);
    info!(addr = ?local, "draining connections");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(addr = ?local, "drain timed out; closing the remaining connections");
    }
    closer.cancel();
}

/// Drives `conn`, but drops it (closing the connection) if no complete request head has
/// arrived (`got_request`) within `timeout`. hyper's HTTP/1.1 header timeout starts only once
/// the protocol has been detected from the first 24 bytes, and HTTP/2 has no such timeout, so
/// without this a client that completes TLS and then sends nothing, or half an HTTP/2 preface,
/// would hold its connection slot forever.
async fn first_request_deadline<T>(
    conn: impl Future<Output = T>,
    got_request: &AtomicBool,
    timeout: Duration,
) -> Option<T> {
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return Some(result),
        () = tokio::time::sleep(timeout) => {}
    }
    if got_request.load(Ordering::Relaxed) {
        Some(conn.await)
    } else {
        None
    }
}

/// Requests in progress on one connection, and when that count last changed.
#[derive(Clone)]
struct Activity(Arc<std::sync::Mutex<(usize, tokio::time::Instant)>>);

/// One request in progress; dropped when its response body is done.
struct Busy(Activity);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(std::sync::Mutex::new((
            0,
            tokio::time::Instant::now(),
        ))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, tokio::time::Instant)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self) -> Busy {
        let mut a = self.lock();
        a.0 += 1;
        a.1 = tokio::time::Instant::now();
        Busy(self.clone())
    }

    /// When the connection went idle, if it is.
    fn idle_since(&self) -> Option<tokio::time::Instant> {
        let a = self.lock();
        (a.0 == 0).then_some(a.1)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut a = self.0.lock();
        a.0 = a.0.saturating_sub(1);
        a.1 = tokio::time::Instant::now();
    }
}

/// Drives `conn` until it ends (`Some`), or drops it once no request has been in progress for
/// `idle` (`None`, which closes the connection).
async fn until_idle<T>(
    conn: impl Future<Output = T>,
    activity: &Activity,
    idle: Duration,
) -> Option<T> {
    tokio::pin!(conn);
    loop {
        let deadline = activity
            .idle_since()
            .map_or_else(|| tokio::time::Instant::now() + idle, |since| since + idle);
        tokio::select! {
            done = &mut conn => return Some(done),
            () = tokio::time::sleep_until(deadline) => {
                if activity
                    .idle_since()
                    .is_some_and(|since| since.elapsed() >= idle)
                {
                    return None;
                }
            }
        }
    }
}

/// Open connections per client address.
struct PerIp {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One connection's place in [`PerIp`]; released on drop.
struct IpSlot {
    ip: std::net::IpAddr,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> Self {
        PerIp {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    fn acquire(&self, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address() {
        let per_ip = PerIp::new(2);
        let a: std::net::IpAddr = [10, 0, 0, 1].into();
        let b: std::net::IpAddr = [10, 0, 0, 2].into();
        let a1 = per_ip.acquire(a).expect("first");
        let _a2 = per_ip.acquire(a).expect("second");
        assert!(per_ip.acquire(a).is_none());
        assert!(per_ip.acquire(b).is_some(), "other addresses unaffected");
        drop(a1);
        assert!(per_ip.acquire(a).is_some(), "released on close");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_end_and_busy_ones_do_not() {
        let activity = Activity::new();
        let idle = Duration::from_secs(60);
        let never = std::future::pending::<()>();
        let busy = activity.begin();
        let watched = tokio::spawn({
            let activity = activity.clone();
            async move { until_idle(never, &activity, idle).await }
        });
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !watched.is_finished(),
            "a request in progress keeps it open"
        );
        drop(busy);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(watched.await.expect("task"), None, "closed once idle");
    }
}
