//! The container source (EKS Pod Identity): `GET` the agent's credentials URI with the pod's
//! token file as `Authorization`.
//!
//! ```text
//! GET /v1/credentials HTTP/1.1          ; AWS_CONTAINER_CREDENTIALS_FULL_URI
//! Authorization: <AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE's content>
//!
//! 200 {"AccessKeyId":…,"SecretAccessKey":…,"Token":…,"AccountId":…,"Expiration":"RFC 3339"}
//! ```
//!
//! Plain HTTP carries the token and the credentials, so only the Pod Identity agent's
//! link-local addresses (`169.254.170.23`, `fd00:ec2::23`) and loopback are accepted, as IP
//! literals (a name could resolve anywhere). The token file is read afresh for every call
//! (the kubelet rotates it). Errors never carry the token or the reply body.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::credentials::{AwsCredentials, Secret};
use crate::fetch::{self, Endpoint, FetchError, TokenFileError, Url};

/// The EKS Pod Identity agent's URI (what EKS sets `AWS_CONTAINER_CREDENTIALS_FULL_URI` to).
pub const EKS_POD_IDENTITY_URI: &str = "http://169.254.170.23/v1/credentials";
/// The agent's IPv6 address.
const AGENT_V6: &str = "fd00:ec2::23";
const AGENT_V4: &str = "169.254.170.23";
const MAX_REPLY: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the container credentials come from (the Pod Identity environment:
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// `http://169.254.170.23/v1/credentials`, `http://[fd00:ec2::23]/…`, or loopback (tests).
    pub full_uri: String,
    /// The file whose content is the `Authorization` header (read afresh every time).
    pub token_file: PathBuf,
}

/// Why the container source gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The URI is unusable or not allowed.
    #[error("container credentials (Pod Identity): URI `{uri}`: {why}")]
    BadUri {
        /// The URI.
        uri: String,
        /// Why.
        why: &'static str,
    },
    /// The token file could not be read.
    #[error("container credentials (Pod Identity): the token file: {0}")]
    Token(#[source] TokenFileError),
    /// The request failed.
    #[error("container credentials (Pod Identity) at {endpoint}: {source}")]
    Fetch {
        /// The endpoint's `host:port`.
        endpoint: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// A non-200 answer (401/403: the token was refused).
    #[error("container credentials (Pod Identity): the agent answered {0}")]
    Status(StatusCode),
    /// The body is not the credentials JSON (details withheld: it may hold secrets).
    #[error("container credentials (Pod Identity): the answer is malformed ({0})")]
    Malformed(&'static str),
}

/// The client of one credentials URI.
#[derive(Debug)]
pub(crate) struct Container {
    endpoint: Endpoint,
    endpoint_name: String,
    token_file: PathBuf,
}

impl Container {
    /// Checks the URI against the allowed hosts.
    pub(crate) fn new(config: &ContainerConfig) -> Result<Self, ContainerError> {
        let bad = |why| ContainerError::BadUri {
            uri: config.full_uri.clone(),
            why,
        };
        let url = Url::parse(&config.full_uri).map_err(bad)?;
        if url.https {
            return Err(bad(
                "https is not supported; the Pod Identity agent is plain http on a link-local address",
            ));
        }
        if !allowed_host(&url.host) {
            return Err(bad(
                "plain http is only allowed to the Pod Identity agent (169.254.170.23, [fd00:ec2::23]) or a loopback IP",
            ));
        }
        let endpoint_name = if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        Ok(Self {
            endpoint: url.endpoint(None),
            endpoint_name,
            token_file: config.token_file.clone(),
        })
    }

    /// Reads the token file and fetches the credentials; `region` is attached to them.
    pub(crate) async fn credentials(&self, region: &str) -> Result<AwsCredentials, ContainerError> {
        let token = fetch::read_token_file(&self.token_file)
            .await
            .map_err(ContainerError::Token)?;
        let (status, body) = fetch::exchange(
            &self.endpoint,
            Method::GET,
            &[
                (http::header::AUTHORIZATION, token.expose()),
                (http::header::ACCEPT, "application/json"),
            ],
            Zeroizing::new(Vec::new()),
            TIMEOUT,
            MAX_REPLY,
        )
        .await
        .map_err(|source| ContainerError::Fetch {
            endpoint: self.endpoint_name.clone(),
            source,
        })?;
        drop(token);
        if status != StatusCode::OK {
            return Err(ContainerError::Status(status));
        }
        parse(&body, region)
    }
}

fn allowed_host(host: &str) -> bool {
    if host == AGENT_V4 {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || AGENT_V6.parse::<IpAddr>().is_ok_and(|agent| agent == ip),
        Err(_) => false,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

fn parse(body: &[u8], region: &str) -> Result<AwsCredentials, ContainerError> {
    let reply = serde_json::from_slice::<Reply>(body)
        .map_err(|_| ContainerError::Malformed("not the credentials JSON"))?;
    let Reply {
        access_key_id,
        secret_access_key,
        token,
        expiration,
    } = reply;
    let (id, key, token) = (
        Secret::new(access_key_id),
        Secret::new(secret_access_key),
        Secret::new(token),
    );
    if [&id, &key, &token].iter().any(|s| s.expose().is_empty()) {
        return Err(ContainerError::Malformed("an empty credential field"));
    }
    let expiration = humantime::parse_rfc3339_weak(&expiration)
        .map_err(|_| ContainerError::Malformed("the Expiration is not an RFC 3339 time"))?;
    Ok(AwsCredentials {
        access_key_id: id,
        secret_access_key: key,
        session_token: token,
        expiration: Some(expiration),
        region: region.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(uri: &str) -> ContainerConfig {
        ContainerConfig {
            full_uri: uri.into(),
            token_file:
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
                    .into(),
        }
    }

    #[test]
    fn only_the_agent_and_loopback_are_allowed() {
        for ok in [
            EKS_POD_IDENTITY_URI,
            "http://[fd00:ec2::23]/v1/credentials",
            "http://127.0.0.1:8080/creds",
            "http://[::1]:1/x",
        ] {
            assert!(Container::new(&config(ok)).is_ok(), "{ok} must be allowed");
        }
        for bad in [
            "http://169.254.170.2/v2/credentials/x",
            "http://localhost/v1/credentials",
            "http://example.com/v1/credentials",
            "http://10.0.0.1/",
            "https://169.254.170.23/v1/credentials",
            "169.254.170.23/v1/credentials",
        ] {
            assert!(
                matches!(
                    Container::new(&config(bad)),
                    Err(ContainerError::BadUri { .. })
                ),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn replies_parse_or_are_refused() {
        let good = br#"{"AccessKeyId":"ASIA1","SecretAccessKey":"sk","Token":"st","AccountId":"123456789012","Expiration":"2026-12-06T16:00:00Z"}"#;
        let c = parse(good, "eu-west-1").expect("parses");
        assert_eq!(
            (c.access_key_id.expose(), c.secret_access_key.expose()),
            ("ASIA1", "sk")
        );
        assert_eq!(c.session_token.expose(), "st");
        for (bad, why) in [
            (&b"{not json"[..], "not the credentials JSON"),
            (br#"{"AccessKeyId":"ASIA1"}"#, "not the credentials JSON"),
            (
                br#"{"AccessKeyId":"","SecretAccessKey":"sk","Token":"st","Expiration":"2026-12-06T16:00:00Z"}"#,
                "an empty credential field",
            ),
            (
                br#"{"AccessKeyId":"a","SecretAccessKey":"sk","Token":"st","Expiration":"soon"}"#,
                "the Expiration is not an RFC 3339 time",
            ),
        ] {
            match parse(bad, "r") {
                Err(ContainerError::Malformed(w)) => assert_eq!(w, why),
                other => panic!("expected Malformed({why}), got {other:?}"),
            }
        }
    }
}
