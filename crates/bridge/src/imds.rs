//! The parent's instance-role credentials from EC2's instance metadata service, IMDSv2 only.
//!
//! IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` gives a session
//! token; every `GET` then carries it as `X-aws-ec2-metadata-token`. The role name comes from
//! `/latest/meta-data/iam/security-credentials/`, the credentials from `…/<role>`, the region
//! from `/latest/meta-data/placement/region`. The base URL is configurable so tests can point
//! it at a stand-in; production is `http://169.254.169.254`.
//!
//! Errors never carry response bodies: those hold the credentials.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::credentials::{AwsCredentials, Secret};

/// EC2's metadata endpoint.
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";

const TOKEN_TTL_SECS: &str = "300";
const MAX_BODY: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metadata service did not give us credentials.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    /// The configured base URL is not `http://host[:port]`.
    #[error("IMDS URL `{0}` is not http://host[:port]")]
    BadUrl(String),
    /// No TCP connection.
    #[error("connecting to IMDS at {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("IMDS request for {what} failed: {source}")]
    Http {
        /// Which request.
        what: &'static str,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// No answer within the timeout.
    #[error("IMDS request for {0} timed out")]
    Timeout(&'static str),
    /// A non-200 answer.
    #[error("IMDS answered {status} for {what}")]
    Status {
        /// Which request.
        what: &'static str,
        /// The status.
        status: StatusCode,
    },
    /// A body over 64 KiB.
    #[error("IMDS answer for {0} is too large")]
    TooLarge(&'static str),
    /// The body is not what IMDS sends (details withheld: it may hold secrets).
    #[error("IMDS answer for {0} is malformed")]
    Malformed(&'static str),
    /// No instance role is attached.
    #[error("the instance has no IAM role (IMDS lists none)")]
    NoRole,
}

/// An IMDSv2 client.
#[derive(Debug, Clone)]
pub struct Imds {
    authority: String,
}

impl Imds {
    /// A client for `base_url` (`http://169.254.169.254`, or a test stand-in).
    pub fn new(base_url: &str) -> Result<Self, ImdsError> {
        let bad = || ImdsError::BadUrl(base_url.to_owned());
        let uri: Uri = base_url.trim_end_matches('/').parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") || uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{}:80", authority.host())
        };
        Ok(Self { authority })
    }

    /// Fetches the role's current temporary credentials, with `region` attached.
    pub async fn credentials(&self, region: &str) -> Result<AwsCredentials, ImdsError> {
        let token = self.token().await?;
        let listing = self
            .get(
                "/latest/meta-data/iam/security-credentials/",
                &token,
                "the role name",
            )
            .await?;
        let listing =
            std::str::from_utf8(&listing).map_err(|_| ImdsError::Malformed("the role name"))?;
        let role = listing.lines().next().map(str::trim).unwrap_or("");
        if role.is_empty() {
            return Err(ImdsError::NoRole);
        }
        if !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(ImdsError::Malformed("the role name"));
        }
        let path = format!("/latest/meta-data/iam/security-credentials/{role}");
        let mut body = self
            .get(&path, &token, "the role credentials")
            .await?
            .to_vec();
        let parsed = serde_json::from_slice::<ImdsCredentials>(&body);
        zeroize::Zeroize::zeroize(&mut body);
        let c = parsed.map_err(|_| ImdsError::Malformed("the role credentials"))?;
        if c.code != "Success" {
            return Err(ImdsError::Malformed(
                "the role credentials (Code is not Success)",
            ));
        }
        let expiration = humantime::parse_rfc3339_weak(&c.expiration)
            .map_err(|_| ImdsError::Malformed("the credentials' Expiration"))?;
        Ok(AwsCredentials {
            access_key_id: Secret::new(c.access_key_id),
            secret_access_key: Secret::new(c.secret_access_key),
            session_token: Secret::new(c.token),
            expiration: Some(expiration),
            region: region.to_owned(),
        })
    }

    /// The instance's region.
    pub async fn region(&self) -> Result<String, ImdsError> {
        let token = self.token().await?;
        let body = self
            .get("/latest/meta-data/placement/region", &token, "the region")
            .await?;
        let region = std::str::from_utf8(&body)
            .map_err(|_| ImdsError::Malformed("the region"))?
            .trim();
        if region.is_empty()
            || region.len() > 32
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ImdsError::Malformed("the region"));
        }
        Ok(region.to_owned())
    }

    async fn token(&self) -> Result<Secret, ImdsError> {
        let body = self
            .request(
                Method::PUT,
                "/latest/api/token",
                ("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECS),
                "a session token",
            )
            .await?;
        let token = String::from_utf8(body.to_vec())
            .map_err(|_| ImdsError::Malformed("a session token"))?;
        Ok(Secret::new(token.trim().to_owned()))
    }

    async fn get(
        &self,
        path: &str,
        token: &Secret,
        what: &'static str,
    ) -> Result<Bytes, ImdsError> {
        self.request(
            Method::GET,
            path,
            ("x-aws-ec2-metadata-token", token.expose()),
            what,
        )
        .await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        header: (&'static str, &str),
        what: &'static str,
    ) -> Result<Bytes, ImdsError> {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|source| ImdsError::Connect {
                    addr: self.authority.clone(),
                    source,
                })?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|source| ImdsError::Http { what, source })?;
            let driver = tokio::spawn(conn);
            let mut value = http::HeaderValue::from_str(header.1)
                .map_err(|_| ImdsError::Malformed("a session token"))?;
            value.set_sensitive(true);
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, self.authority.as_str())
                .header(header.0, value)
                .body(Empty::<Bytes>::new())
                .map_err(|_| ImdsError::Malformed("the request path"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|source| ImdsError::Http { what, source })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| ImdsError::TooLarge(what))?
                .to_bytes();
            driver.abort();
            if status != StatusCode::OK {
                return Err(ImdsError::Status { what, status });
            }
            Ok(body)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ImdsError::Timeout(what))?
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    code: String,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}
