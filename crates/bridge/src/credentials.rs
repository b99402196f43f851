//! The credentials relay: the enclave asks the parent for its instance role's temporary AWS
//! credentials (the enclave has no network and no IMDS of its own).
//!
//! ```text
//! request = %x44.41.43.52 %x01          ; "DACR", version 1
//! reply   = length json                 ; length: 4 bytes big-endian, 1..=16384
//! json    = {"version":1,"access_key_id":…,"secret_access_key":…,"session_token":…,
//!            "expiration":"RFC 3339"|null,"region":…}
//!         / {"version":1,"error":"why"}
//! ```
//!
//! The credentials are the parent's own (it can use them whenever it likes), so the relay adds
//! no power to the parent. They still never reach a log: every field is a [`Secret`] whose
//! `Debug` is redacted, and the buffers that held the JSON are wiped after use.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroize;

use crate::transport::{PARENT_CID, VsockTransport, connect_within};

/// The request bytes.
pub(crate) const REQUEST: [u8; 5] = *b"DACR\x01";
/// The largest reply body.
pub(crate) const MAX_REPLY: usize = 16 * 1024;

/// A string that must not be logged: `Debug` prints `<redacted>`, and it is wiped on drop.
/// No `PartialEq`: nothing should compare these in variable time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The value, for the one place that needs it (signing a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Temporary AWS credentials and the region they are for.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    /// `AccessKeyId`.
    pub access_key_id: Secret,
    /// `SecretAccessKey`.
    pub secret_access_key: Secret,
    /// `Token` (the session token, `X-Amz-Security-Token`).
    pub session_token: Secret,
    /// When they stop working, if known.
    pub expiration: Option<SystemTime>,
    /// The region, e.g. `eu-west-1`.
    pub region: String,
}

/// Why the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Talking to the other side failed.
    #[error("credentials relay I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The request is not `DACR\x01`.
    #[error("credentials request is malformed")]
    BadRequest,
    /// The reply length is 0 or above the limit.
    #[error("credentials reply length {0} is out of range (1..={MAX_REPLY})")]
    BadLength(u32),
    /// The reply is not the JSON above (details withheld: it may hold secrets).
    #[error("credentials reply is malformed")]
    Malformed,
    /// The parent could not get credentials and said why.
    #[error("the parent could not provide credentials: {0}")]
    Parent(String),
}

#[derive(Serialize, Deserialize)]
struct Wire {
    version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        for s in [
            &mut self.access_key_id,
            &mut self.secret_access_key,
            &mut self.session_token,
        ]
        .into_iter()
        .flatten()
        {
            s.zeroize();
        }
    }
}

/// Reads the request (parent side).
pub(crate) async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<(), CredentialsError> {
    let mut req = [0u8; REQUEST.len()];
    r.read_exact(&mut req)
        .await
        .map_err(|_| CredentialsError::BadRequest)?;
    if req != REQUEST {
        return Err(CredentialsError::BadRequest);
    }
    Ok(())
}

/// Writes the reply (parent side).
pub(crate) async fn write_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    result: Result<&AwsCredentials, String>,
) -> std::io::Result<()> {
    let wire = match result {
        Ok(c) => Wire {
            version: 1,
            error: None,
            access_key_id: Some(c.access_key_id.expose().to_owned()),
            secret_access_key: Some(c.secret_access_key.expose().to_owned()),
            session_token: Some(c.session_token.expose().to_owned()),
            expiration: c
                .expiration
                .map(|e| humantime::format_rfc3339_seconds(e).to_string()),
            region: Some(c.region.clone()),
        },
        Err(reason) => Wire {
            version: 1,
            error: Some(reason),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            expiration: None,
            region: None,
        },
    };
    let mut json = serde_json::to_vec(&wire).map_err(std::io::Error::other)?;
    let written = async {
        let len = u32::try_from(json.len())
            .ok()
            .filter(|n| (1..=MAX_REPLY as u32).contains(n))
            .ok_or_else(|| std::io::Error::other("credentials reply too large"))?;
        w.write_all(&len.to_be_bytes()).await?;
        w.write_all(&json).await?;
        w.flush().await
    }
    .await;
    json.zeroize();
    written
}

async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> Result<AwsCredentials, CredentialsError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len == 0 || len as usize > MAX_REPLY {
        return Err(CredentialsError::BadLength(len));
    }
    let mut json = vec![0u8; len as usize];
    r.read_exact(&mut json).await?;
    let parsed = serde_json::from_slice::<Wire>(&json);
    json.zeroize();
    let mut wire = parsed.map_err(|_| CredentialsError::Malformed)?;
    if wire.version != 1 {
        return Err(CredentialsError::Malformed);
    }
    if let Some(e) = wire.error.take() {
        return Err(CredentialsError::Parent(e));
    }
    let (Some(id), Some(key), Some(token), Some(region)) = (
        wire.access_key_id.take(),
        wire.secret_access_key.take(),
        wire.session_token.take(),
        wire.region.take(),
    ) else {
        return Err(CredentialsError::Malformed);
    };
    let expiration = match wire.expiration.take() {
        Some(e) => {
            Some(humantime::parse_rfc3339_weak(&e).map_err(|_| CredentialsError::Malformed)?)
        }
        None => None,
    };
    Ok(AwsCredentials {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new(key),
        session_token: Secret::new(token),
        expiration,
        region,
    })
}

/// The enclave's client for the parent's credentials service.
pub struct CredentialsClient<'a> {
    transport: &'a dyn VsockTransport,
    parent_cid: u32,
    port: u32,
    timeout: Duration,
}

impl<'a> CredentialsClient<'a> {
    /// A client for the service on the parent ([`PARENT_CID`]) at vsock `port`.
    pub fn new(transport: &'a dyn VsockTransport, port: u32) -> Self {
        Self {
            transport,
            parent_cid: PARENT_CID,
            port,
            timeout: Duration::from_secs(10),
        }
    }

    /// Asks another CID than the parent's (tests).
    pub fn with_parent_cid(mut self, cid: u32) -> Self {
        self.parent_cid = cid;
        self
    }

    /// Fetches the parent's current credentials.
    pub async fn fetch(&self) -> Result<AwsCredentials, CredentialsError> {
        let exchange = async {
            let mut stream =
                connect_within(self.transport, self.parent_cid, self.port, self.timeout).await?;
            stream.write_all(&REQUEST).await?;
            stream.flush().await?;
            read_reply(&mut stream).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CredentialsError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the credentials service did not answer in time",
            ))),
        }
    }
}
