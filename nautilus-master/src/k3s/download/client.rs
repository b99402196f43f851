//! The HTTP side of the download: one GET per connection (hyper's HTTP/1.1 client over TCP or
//! rustls), redirects under the URL policy, bounded bodies with timeouts, and progress lines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::info;

use super::{DownloadConfig, DownloadError, MAX_REDIRECTS};

/// Where a response body goes: memory (the checksum file) or a file, hashed on the way.
pub(super) trait Sink {
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), DownloadError>> + Send;
}

impl Sink for Vec<u8> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), DownloadError> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// GETs `url` into `sink`, following redirects, refusing bodies over `limit`, within
/// `config.total_timeout`.
pub(super) async fn fetch(
    config: &DownloadConfig,
    url: &str,
    limit: u64,
    sink: &mut impl Sink,
) -> Result<(), DownloadError> {
    tokio::time::timeout(
        config.total_timeout,
        fetch_following(config, url, limit, sink),
    )
    .await
    .map_err(|_| DownloadError::Timeout {
        url: strip_query(url).to_owned(),
        what: "the whole download",
        after: config.total_timeout,
    })?
}

async fn fetch_following(
    config: &DownloadConfig,
    url: &str,
    limit: u64,
    sink: &mut impl Sink,
) -> Result<(), DownloadError> {
    let mut current = parse_url(url)?;
    check_url(&current, None)?;
    for _ in 0..=MAX_REDIRECTS {
        let response = get(config, &current).await?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        ) {
            let next = redirect_target(&current, response.headers().get(header::LOCATION))?;
            check_url(&next, Some(&current))?;
            current = next;
            continue;
        }
        if status != StatusCode::OK {
            return Err(DownloadError::Status {
                url: display_url(&current),
                status: status.as_u16(),
            });
        }
        return read_body(config, &current, response, limit, sink).await;
    }
    Err(DownloadError::TooManyRedirects {
        url: url.to_owned(),
        max: MAX_REDIRECTS,
    })
}

async fn read_body(
    config: &DownloadConfig,
    url: &Uri,
    response: http::Response<Incoming>,
    limit: u64,
    sink: &mut impl Sink,
) -> Result<(), DownloadError> {
    let shown = display_url(url);
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(DownloadError::TooLarge { url: shown, limit });
    }
    let mut body = response.into_body();
    let mut received: u64 = 0;
    let mut progress = Progress::new(announced);
    loop {
        let frame = tokio::time::timeout(config.idle_timeout, body.frame())
            .await
            .map_err(|_| DownloadError::Timeout {
                url: shown.clone(),
                what: "the next part of the body",
                after: config.idle_timeout,
            })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|source| DownloadError::Interrupted {
            url: shown.clone(),
            received,
            source,
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received = received.saturating_add(data.len() as u64);
        if received > limit {
            return Err(DownloadError::TooLarge { url: shown, limit });
        }
        sink.write(&data).await?;
        progress.update(&shown, received);
    }
    if let Some(expected) = announced.filter(|&len| len != received) {
        return Err(DownloadError::Truncated {
            url: shown,
            received,
            expected,
        });
    }
    Ok(())
}

/// Logs a line at every 10 % of a body of known length (every 16 MiB otherwise); bodies
/// under 1 MiB (the checksum file) are not reported.
struct Progress {
    total: Option<u64>,
    next: u64,
}

impl Progress {
    const STEP_UNKNOWN: u64 = 16 * 1024 * 1024;
    const QUIET_BELOW: u64 = 1024 * 1024;

    fn new(total: Option<u64>) -> Self {
        let mut p = Self { total, next: 0 };
        p.next = p.step();
        p
    }

    fn step(&self) -> u64 {
        self.total.map_or(Self::STEP_UNKNOWN, |t| (t / 10).max(1))
    }

    fn update(&mut self, url: &str, received: u64) {
        if received < self.next {
            return;
        }
        let step = self.step();
        // Skip the lines a large chunk jumped over.
        self.next = (received / step + 1) * step;
        let mib = received / (1024 * 1024);
        match self.total {
            Some(total) if total >= Self::QUIET_BELOW => {
                let percent = received.saturating_mul(100) / total.max(1);
                info!(%url, percent, mib, "downloading k3s: {percent}%");
            }
            Some(_) => {}
            None => info!(%url, mib, "downloading k3s: {mib} MiB"),
        }
    }
}

/// One GET on a fresh connection (HTTP/1.1; the connection is closed with the response).
async fn get(
    config: &DownloadConfig,
    url: &Uri,
) -> Result<http::Response<Incoming>, DownloadError> {
    let shown = display_url(url);
    let host = url.host().unwrap_or_default();
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    let io = tokio::time::timeout(config.connect_timeout, connect(host, port, https))
        .await
        .map_err(|_| DownloadError::Timeout {
            url: shown.clone(),
            what: "connecting",
            after: config.connect_timeout,
        })??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|source| DownloadError::Http {
            url: shown.clone(),
            source,
        })?;
    // Drives the connection until the body has been read; ends with it.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(
            header::HOST,
            url.authority().map_or(authority.as_str(), |a| a.as_str()),
        )
        .header(
            header::USER_AGENT,
            concat!("k3s-daas-nautilus-master/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| DownloadError::BadUrl {
            url: shown.clone(),
            reason: "cannot build a request for it",
        })?;
    tokio::time::timeout(config.idle_timeout, sender.send_request(request))
        .await
        .map_err(|_| DownloadError::Timeout {
            url: shown.clone(),
            what: "the response",
            after: config.idle_timeout,
        })?
        .map_err(|source| DownloadError::Http { url: shown, source })
}

/// Anything a connection can run over: plain TCP or TLS on TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

async fn connect(host: &str, port: u16, https: bool) -> Result<Pin<Box<dyn Io>>, DownloadError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let authority = format!("{host}:{port}");
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|source| DownloadError::Connect {
            host: authority.clone(),
            source,
        })?;
    if !https {
        return Ok(Box::pin(tcp));
    }
    let name = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(bare.to_owned()).map_err(|_| {
            DownloadError::BadUrl {
                url: authority.clone(),
                reason: "the host is not a valid TLS server name",
            }
        })?,
    };
    let tls = tokio_rustls::TlsConnector::from(tls_config())
        .connect(name, tcp)
        .await
        .map_err(|source| DownloadError::Tls {
            host: authority,
            source,
        })?;
    Ok(Box::pin(tls))
}

/// Mozilla's roots (webpki-roots), not the OS store: the same trust on every machine, and
/// nothing to install in a minimal container.
fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(crate::proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub(super) fn parse_url(url: &str) -> Result<Uri, DownloadError> {
    url.parse::<Uri>().map_err(|_| DownloadError::BadUrl {
        url: strip_query(url).to_owned(),
        reason: "not a URL",
    })
}

/// The URL policy: `https`, or `http` to a loopback host; a host and no user info; and no
/// step down from `https` to `http` on a redirect.
pub(super) fn check_url(url: &Uri, from: Option<&Uri>) -> Result<(), DownloadError> {
    let refuse = |reason| {
        Err(DownloadError::BadUrl {
            url: display_url(url),
            reason,
        })
    };
    let Some(authority) = url.authority() else {
        return refuse("it has no host");
    };
    if authority.as_str().contains('@') {
        return refuse("it carries user information");
    }
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if from.is_some_and(|f| f.scheme_str() == Some("https")) => {
            refuse("a redirect from https to plain http")
        }
        Some("http") if daas_chain::config::is_loopback_host(authority.host()) => Ok(()),
        Some("http") => refuse("plain http is allowed only to a loopback host"),
        _ => refuse("only https (or http to a loopback host) is allowed"),
    }
}

/// Resolves a `Location` header against the URL that answered with it.
pub(super) fn redirect_target(
    current: &Uri,
    location: Option<&http::HeaderValue>,
) -> Result<Uri, DownloadError> {
    let bad = |reason| DownloadError::BadUrl {
        url: display_url(current),
        reason,
    };
    let location = location
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("a redirect without a usable Location header"))?;
    if location.contains("://") {
        return parse_url(location);
    }
    let scheme = current.scheme_str().unwrap_or("https");
    let authority = current.authority().map_or("", |a| a.as_str());
    let joined = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let dir = current.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{scheme}://{authority}{dir}/{location}")
    };
    parse_url(&joined)
}

/// A URL without its query (signed object-store URLs carry short-lived credentials there).
pub(super) fn display_url(url: &Uri) -> String {
    strip_query(&url.to_string()).to_owned()
}

pub(super) fn strip_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(before, _)| before)
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn progress_logs_every_tenth() {
        let mut p = Progress::new(Some(100 * 1024 * 1024));
        let mut lines = 0;
        for mib in 1..=100u64 {
            let before = p.next;
            p.update("u", mib * 1024 * 1024);
            if p.next != before {
                lines += 1;
            }
        }
        assert_eq!(lines, 10);
    }
}
