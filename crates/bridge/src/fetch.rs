//! What the web-identity (STS) and container (EKS Pod Identity) credentials sources share: one
//! HTTP/1.1 request per connection, plain or TLS, under a time limit with a bounded reply; and
//! reading a token file afresh (they rotate) with a size bound.
//!
//! Nothing here logs, and no error carries a request or reply body: both hold secrets. The
//! buffers this module owns (the request body, the reply) are wiped after use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::{Zeroize, Zeroizing};

use crate::credentials::Secret;

/// The largest token file read (STS takes web identity tokens of up to 20,000 characters).
pub(crate) const MAX_TOKEN_FILE: u64 = 32 * 1024;

/// Why one HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No TCP connection.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (an untrusted or mismatched certificate lands here).
    #[error("TLS with {host}: {source}")]
    Tls {
        /// The name verified.
        host: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
    /// The request could not be built (a header value with control characters).
    #[error("the request is malformed ({0})")]
    BadRequest(&'static str),
    /// No complete answer within the time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The reply body is over the limit.
    #[error("the reply is larger than {0} bytes")]
    TooLarge(usize),
}

/// Why a token file could not be used. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Opening or reading failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Larger than [`MAX_TOKEN_FILE`].
    #[error("{path} is larger than {MAX_TOKEN_FILE} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Empty, or not one line of printable ASCII.
    #[error("{path} does not hold a token (empty, or not one line of printable ASCII)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a token file afresh (the kubelet rotates projected tokens in place): at most
/// [`MAX_TOKEN_FILE`] bytes, surrounding whitespace trimmed, printable ASCII only (it goes into
/// a form field or a header).
pub(crate) async fn read_token_file(path: &Path) -> Result<Secret, TokenFileError> {
    let read = async {
        let file = tokio::fs::File::open(path).await?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_end(&mut bytes)
            .await?;
        Ok::<_, std::io::Error>(bytes)
    };
    let bytes = read.await.map_err(|source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(TokenFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let token = bytes.trim_ascii();
    if token.is_empty() || !token.iter().all(|b| b.is_ascii_graphic()) {
        return Err(TokenFileError::Malformed {
            path: path.to_path_buf(),
        });
    }
    let token = std::str::from_utf8(token).map_err(|_| TokenFileError::Malformed {
        path: path.to_path_buf(),
    })?;
    Ok(Secret::new(token.to_owned()))
}

/// Where one kind of request goes: `http://` or `https://` host, port and path.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// The host as written in the URL, for `Host` (IPv6 in brackets).
    authority: String,
    /// The host to connect to and verify (IPv6 without brackets).
    host: String,
    port: u16,
    /// Path and query.
    path: String,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A parsed `http(s)://host[:port][/path]` URL, before any policy is applied.
pub(crate) struct Url {
    /// `https`?
    pub(crate) https: bool,
    /// The host without IPv6 brackets.
    pub(crate) host: String,
    /// The port, defaulted from the scheme.
    pub(crate) port: u16,
    /// Path and query (`/` when empty).
    pub(crate) path: String,
}

impl Url {
    /// Parses `url`; `Err` names what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "not a URL")?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be http or https"),
        };
        let authority = uri.authority().ok_or("no host")?;
        if authority.as_str().contains('@') {
            return Err("user information is not allowed");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err("no host");
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_owned();
        Ok(Url {
            https,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The endpoint; `tls` must be given exactly for `https`.
    pub(crate) fn endpoint(self, tls: Option<TlsConnector>) -> Endpoint {
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        Endpoint {
            authority,
            host: self.host,
            port: self.port,
            path: self.path,
            tls: if self.https { tls } else { None },
        }
    }
}

/// Why the TLS roots could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsRootsError {
    /// The extra CA file could not be read.
    #[error("reading the extra CA file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The extra CA file holds no usable PEM certificate.
    #[error("the extra CA file {path} holds no usable certificate")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A TLS connector trusting Mozilla's roots (compiled in) and, for tests, the certificates of
/// `extra_ca`.
pub(crate) fn tls_connector(extra_ca: Option<&Path>) -> Result<TlsConnector, TlsRootsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|source| TlsRootsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(TlsRootsError::Empty {
                path: path.to_path_buf(),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsRootsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// One request: `method` to the endpoint's path with `headers` (values marked sensitive) and
/// `body` (wiped afterwards), within `timeout`, the reply body at most `max_reply` bytes.
pub(crate) async fn exchange(
    endpoint: &Endpoint,
    method: Method,
    headers: &[(HeaderName, &str)],
    body: Zeroizing<Vec<u8>>,
    timeout: Duration,
    max_reply: usize,
) -> Result<(StatusCode, Zeroizing<Vec<u8>>), FetchError> {
    let mut builder = Request::builder()
        .method(method)
        .uri(endpoint.path.as_str())
        .header(http::header::HOST, endpoint.authority.as_str());
    for (name, value) in headers {
        let mut value =
            HeaderValue::from_str(value).map_err(|_| FetchError::BadRequest("a header value"))?;
        value.set_sensitive(true);
        builder = builder.header(name, value);
    }
    // `Bytes::from(Vec)` takes the allocation without copying; `kept` lets us wipe it once hyper
    // has dropped its handle.
    let mut body = body;
    let bytes = Bytes::from(std::mem::take(&mut *body));
    let kept = bytes.clone();
    let request = builder
        .body(Full::new(bytes))
        .map_err(|_| FetchError::BadRequest("the path"))?;
    let result = tokio::time::timeout(timeout, send(endpoint, request, max_reply))
        .await
        .unwrap_or(Err(FetchError::Timeout(timeout)));
    if let Ok(mut unique) = kept.try_into_mut() {
        unique.zeroize();
    }
    result
}

async fn send(
    endpoint: &Endpoint,
    request: Request<Full<Bytes>>,
    max_reply: usize,
) -> Result<(StatusCode, Zeroizing<Vec<u8>>), FetchError> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|source| FetchError::Connect {
            addr: endpoint.authority.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    match &endpoint.tls {
        None => over(tcp, request, max_reply).await,
        Some(tls) => {
            let tls_error = |source| FetchError::Tls {
                host: endpoint.host.clone(),
                source,
            };
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
                tls_error(std::io::Error::other("the host is not a valid TLS name"))
            })?;
            let stream = tls.connect(name, tcp).await.map_err(tls_error)?;
            over(stream, request, max_reply).await
        }
    }
}

async fn over<S>(
    io: S,
    request: Request<Full<Bytes>>,
    max_reply: usize,
) -> Result<(StatusCode, Zeroizing<Vec<u8>>), FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(FetchError::Http)?;
    let driver = tokio::spawn(conn);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(FetchError::Http)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), max_reply)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => FetchError::Http(*e),
                Err(_) => FetchError::TooLarge(max_reply),
            })?
            .to_bytes();
        Ok((status, Zeroizing::new(Vec::from(body))))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let u = Url::parse("http://169.254.170.23/v1/credentials").expect("parses");
        assert!(!u.https);
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("169.254.170.23", 80, "/v1/credentials")
        );
        let u = Url::parse("http://[fd00:ec2::23]/v1/credentials?x=1").expect("parses");
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("fd00:ec2::23", "/v1/credentials?x=1")
        );
        assert_eq!(u.endpoint(None).authority, "[fd00:ec2::23]:80");
        let u = Url::parse("https://sts.eu-west-1.amazonaws.com").expect("parses");
        assert_eq!((u.https, u.port, u.path.as_str()), (true, 443, "/"));
        for bad in [
            "ftp://x/",
            "sts.eu-west-1.amazonaws.com",
            "http://user:pw@127.0.0.1/",
            "",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[tokio::test]
    async fn token_files_are_bounded_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJhbGciOi.payload.sig\n").expect("write");
        let t = read_token_file(&path).await.expect("a token");
        assert_eq!(t.expose(), "eyJhbGciOi.payload.sig");

        std::fs::write(&path, "  \n").expect("write");
        assert!(matches!(
            read_token_file(&path).await,
            Err(TokenFileError::Malformed { .. })
        ));
        std::fs::write(&path, "two\nlines").expect("write");
        assert!(matches!(
            read_token_file(&path).await,
            Err(TokenFileError::Malformed { .. })
        ));
        std::fs::write(&path, vec![b'a'; MAX_TOKEN_FILE as usize + 1]).expect("write");
        assert!(matches!(
            read_token_file(&path).await,
            Err(TokenFileError::TooLarge { .. })
        ));
        let missing = dir.path().join("missing");
        let e = read_token_file(&missing).await.expect_err("missing");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn an_extra_ca_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        assert!(matches!(
            tls_connector(Some(&path)),
            Err(TlsRootsError::Empty { .. })
        ));
        assert!(matches!(
            tls_connector(Some(&dir.path().join("none"))),
            Err(TlsRootsError::Read { .. })
        ));
        assert!(tls_connector(None).is_ok());
    }
}
