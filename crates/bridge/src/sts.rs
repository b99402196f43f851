//! The web-identity source (EKS IRSA): the pod's projected ServiceAccount token exchanged for
//! the role's temporary credentials with STS `AssumeRoleWithWebIdentity`.
//!
//! ```text
//! POST / HTTP/1.1                       ; https://sts.<region>.amazonaws.com, unsigned
//! Content-Type: application/x-www-form-urlencoded; charset=utf-8
//!
//! Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=…&RoleSessionName=…
//!   &WebIdentityToken=…[&DurationSeconds=…]
//! ```
//!
//! The reply is XML: `AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/
//! Credentials/{AccessKeyId,SecretAccessKey,SessionToken,Expiration}`, or on failure
//! `ErrorResponse/Error/{Code,Message}` (with `RequestId`). The token file is read afresh for
//! every call, because the kubelet rotates it. TLS verifies `sts.<region>.amazonaws.com`
//! against Mozilla's roots; an endpoint override and an extra CA exist for tests.
//!
//! Errors never carry the token or the reply body; STS's own error message is kept (bounded):
//! it names the failure and holds no secret.

use std::path::PathBuf;
use std::time::Duration;

use http::{Method, StatusCode};
use zeroize::Zeroizing;

use crate::credentials::{AwsCredentials, Secret};
use crate::fetch::{self, Endpoint, FetchError, TlsRootsError, TokenFileError, Url};

/// The STS API version of `AssumeRoleWithWebIdentity`.
const VERSION: &str = "2011-06-15";
/// The largest STS reply read.
const MAX_REPLY: usize = 64 * 1024;
/// Time for one call: connect, TLS, request and reply.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest STS error code and message kept.
const MAX_CODE: usize = 128;
const MAX_MESSAGE: usize = 512;
/// The role session name when none is given (`AWS_ROLE_SESSION_NAME`).
pub const DEFAULT_SESSION_NAME: &str = "daas-bridge";

/// How to assume the role (the IRSA environment: `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`,
/// `AWS_ROLE_SESSION_NAME`).
#[derive(Debug, Clone)]
pub struct WebIdentityConfig {
    /// The role to assume, `arn:aws:iam::<account>:role/<name>`.
    pub role_arn: String,
    /// The projected ServiceAccount token (read afresh at every refresh).
    pub token_file: PathBuf,
    /// `RoleSessionName`: 2 to 64 of `[A-Za-z0-9+=,.@_-]`.
    pub session_name: String,
    /// `DurationSeconds` (900..=43200); STS's default (one hour) when `None`.
    pub duration_seconds: Option<u32>,
    /// `https://host[:port]` instead of `https://sts.<region>.amazonaws.com` (tests, or a
    /// partition this bridge does not know).
    pub endpoint: Option<String>,
    /// TEST ONLY: a PEM file of CA certificates trusted besides Mozilla's roots.
    pub extra_ca: Option<PathBuf>,
}

/// Why the web-identity source gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum WebIdentityError {
    /// The configuration is unusable.
    #[error("web identity (IRSA): {0}")]
    Config(String),
    /// The TLS roots could not be built.
    #[error("web identity (IRSA): {0}")]
    Tls(#[source] TlsRootsError),
    /// The token file could not be read.
    #[error("web identity (IRSA): the token file: {0}")]
    Token(#[source] TokenFileError),
    /// The call to STS failed.
    #[error("web identity (IRSA): STS at {endpoint}: {source}")]
    Fetch {
        /// The endpoint's `host:port`.
        endpoint: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// STS refused, with an error document.
    #[error(
        "web identity (IRSA): STS refused AssumeRoleWithWebIdentity ({status}): {code}: {message}{}",
        request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default()
    )]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// STS's error code, e.g. `ExpiredTokenException`, `InvalidIdentityToken`, `AccessDenied`.
        code: String,
        /// STS's message (bounded).
        message: String,
        /// STS's request id, for AWS support.
        request_id: Option<String>,
    },
    /// A non-200 answer without an error document.
    #[error("web identity (IRSA): STS answered {0} without an error document")]
    Status(StatusCode),
    /// A 200 answer that is not the credentials document (details withheld: it may hold
    /// secrets).
    #[error("web identity (IRSA): STS's answer is malformed ({0})")]
    Malformed(&'static str),
}

/// The STS client of one role.
#[derive(Debug)]
pub(crate) struct WebIdentity {
    role_arn: String,
    token_file: PathBuf,
    session_name: String,
    duration_seconds: Option<u32>,
    endpoint: Endpoint,
    endpoint_name: String,
}

impl WebIdentity {
    /// Checks `config` and builds the client for STS in `region`.
    pub(crate) fn new(config: &WebIdentityConfig, region: &str) -> Result<Self, WebIdentityError> {
        let bad = |m: String| WebIdentityError::Config(m);
        let arn = &config.role_arn;
        if !arn.starts_with("arn:")
            || !(20..=2048).contains(&arn.len())
            || !arn.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad(format!(
                "`{arn}` is not a role ARN (arn:aws:iam::<account>:role/<name>)"
            )));
        }
        let name = &config.session_name;
        if !(2..=64).contains(&name.len())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(bad(format!(
                "role session name `{name}` must be 2 to 64 of A-Z a-z 0-9 + = , . @ _ -"
            )));
        }
        if let Some(d) = config.duration_seconds
            && !(900..=43200).contains(&d)
        {
            return Err(bad(format!("duration {d} s is outside STS's 900..=43200")));
        }
        let url = config
            .endpoint
            .clone()
            .unwrap_or_else(|| default_endpoint(region));
        let parsed = Url::parse(&url).map_err(|why| bad(format!("STS endpoint `{url}`: {why}")))?;
        if !parsed.https {
            return Err(bad(format!("STS endpoint `{url}` must be https")));
        }
        let tls =
            fetch::tls_connector(config.extra_ca.as_deref()).map_err(WebIdentityError::Tls)?;
        let endpoint_name = format!("{}:{}", parsed.host, parsed.port);
        Ok(Self {
            role_arn: arn.clone(),
            token_file: config.token_file.clone(),
            session_name: name.clone(),
            duration_seconds: config.duration_seconds,
            endpoint: parsed.endpoint(Some(tls)),
            endpoint_name,
        })
    }

    /// Reads the token file and assumes the role; `region` is attached to the credentials.
    pub(crate) async fn credentials(
        &self,
        region: &str,
    ) -> Result<AwsCredentials, WebIdentityError> {
        let token = fetch::read_token_file(&self.token_file)
            .await
            .map_err(WebIdentityError::Token)?;
        let form = self.form(&token);
        drop(token);
        let (status, body) = fetch::exchange(
            &self.endpoint,
            Method::POST,
            &[
                (
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                (http::header::ACCEPT, "text/xml"),
            ],
            form,
            TIMEOUT,
            MAX_REPLY,
        )
        .await
        .map_err(|source| WebIdentityError::Fetch {
            endpoint: self.endpoint_name.clone(),
            source,
        })?;
        let xml = std::str::from_utf8(&body);
        if status != StatusCode::OK {
            return Err(xml
                .ok()
                .and_then(|x| parse_error(status, x))
                .unwrap_or(WebIdentityError::Status(status)));
        }
        let xml = xml.map_err(|_| WebIdentityError::Malformed("not UTF-8"))?;
        parse_credentials(xml, region)
    }

    fn form(&self, token: &Secret) -> Zeroizing<Vec<u8>> {
        let mut form = Zeroizing::new(Vec::with_capacity(256 + token.expose().len() * 3));
        let duration = self.duration_seconds.map(|d| d.to_string());
        let fields = [
            ("Action", Some("AssumeRoleWithWebIdentity")),
            ("Version", Some(VERSION)),
            ("RoleArn", Some(self.role_arn.as_str())),
            ("RoleSessionName", Some(self.session_name.as_str())),
            ("WebIdentityToken", Some(token.expose())),
            ("DurationSeconds", duration.as_deref()),
        ];
        for (name, value) in fields {
            let Some(value) = value else { continue };
            if !form.is_empty() {
                form.push(b'&');
            }
            form.extend_from_slice(name.as_bytes());
            form.push(b'=');
            percent_encode(value.as_bytes(), &mut form);
        }
        form
    }
}

/// `https://sts.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China regions).
fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{suffix}")
}

/// `application/x-www-form-urlencoded` value encoding: unreserved bytes as they are, every
/// other byte `%XX`.
fn percent_encode(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The credentials of a successful reply.
fn parse_credentials(xml: &str, region: &str) -> Result<AwsCredentials, WebIdentityError> {
    let malformed = WebIdentityError::Malformed;
    let doc = roxmltree::Document::parse(xml).map_err(|_| malformed("not XML"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "AssumeRoleWithWebIdentityResponse" {
        return Err(malformed("not an AssumeRoleWithWebIdentityResponse"));
    }
    let creds = child(root, "AssumeRoleWithWebIdentityResult")
        .and_then(|r| child(r, "Credentials"))
        .ok_or(malformed("no Credentials"))?;
    let field = |name, what| text(creds, name).ok_or(malformed(what));
    let access_key_id = field("AccessKeyId", "no AccessKeyId")?;
    let secret_access_key = field("SecretAccessKey", "no SecretAccessKey")?;
    let session_token = field("SessionToken", "no SessionToken")?;
    let expiration = humantime::parse_rfc3339_weak(field("Expiration", "no Expiration")?)
        .map_err(|_| malformed("the Expiration is not an RFC 3339 time"))?;
    Ok(AwsCredentials {
        access_key_id: Secret::new(access_key_id.to_owned()),
        secret_access_key: Secret::new(secret_access_key.to_owned()),
        session_token: Secret::new(session_token.to_owned()),
        expiration: Some(expiration),
        region: region.to_owned(),
    })
}

/// STS's error document, if the body is one.
fn parse_error(status: StatusCode, xml: &str) -> Option<WebIdentityError> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "ErrorResponse" {
        return None;
    }
    let error = child(root, "Error")?;
    let code = bounded(text(error, "Code")?, MAX_CODE);
    let message = text(error, "Message").map_or_else(String::new, |m| bounded(m, MAX_MESSAGE));
    let request_id = text(root, "RequestId").map(|r| bounded(r, MAX_CODE));
    Some(WebIdentityError::Refused {
        status,
        code,
        message,
        request_id,
    })
}

/// At most `max` characters, control characters replaced (the text reaches logs).
fn bounded(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

    fn success(expiration: &str) -> String {
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="{NS}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:daas:master</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/daas/daas-bridge</Arn>
      <AssumedRoleId>AROAEXAMPLE:daas-bridge</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
        )
    }

    #[test]
    fn a_success_reply_gives_the_credentials() {
        let c = parse_credentials(&success("2026-12-06T16:00:00Z"), "eu-west-1").expect("parses");
        assert_eq!(c.access_key_id.expose(), "ASIAEXAMPLE");
        assert_eq!(
            c.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(c.session_token.expose(), "FwoGZXIvYXdzEXAMPLE");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(
            c.expiration,
            Some(humantime::parse_rfc3339("2026-12-06T16:00:00Z").expect("time"))
        );
        // Fractional seconds, as some STS replies carry.
        assert!(parse_credentials(&success("2026-12-06T16:00:00.123Z"), "eu-west-1").is_ok());
    }

    #[test]
    fn malformed_replies_are_refused_without_echoing_them() {
        let good = success("2026-12-06T16:00:00Z");
        let cases: Vec<(String, &str)> = vec![
            ("not xml at all".into(), "not XML"),
            (
                good.replace("AssumeRoleWithWebIdentityResponse", "AssumeRoleResponse"),
                "not an AssumeRoleWithWebIdentityResponse",
            ),
            (good.replace("Credentials>", "Creds>"), "no Credentials"),
            (
                good.replace("<AccessKeyId>ASIAEXAMPLE</AccessKeyId>", "<AccessKeyId/>"),
                "no AccessKeyId",
            ),
            (
                good.replace("2026-12-06T16:00:00Z", "tomorrow"),
                "the Expiration is not an RFC 3339 time",
            ),
            (format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{good}"), "not XML"),
        ];
        for (xml, why) in cases {
            match parse_credentials(&xml, "eu-west-1") {
                Err(WebIdentityError::Malformed(w)) => assert_eq!(w, why, "{xml}"),
                other => panic!("expected Malformed({why}), got {other:?}"),
            }
        }
        let e = parse_credentials(&good.replace("Expiration", "Expiry"), "r").expect_err("bad");
        assert!(!e.to_string().contains("wJalrXUtnFEMI"), "{e}");
    }

    #[test]
    fn error_replies_name_the_code_and_message() {
        let xml = format!(
            r#"<ErrorResponse xmlns="{NS}">
  <Error><Type>Sender</Type><Code>ExpiredTokenException</Code>
    <Message>Token expired: current date/time 1 must be before the expiration date/time 0</Message>
  </Error>
  <RequestId>d5d4d1f7-EXAMPLE</RequestId>
</ErrorResponse>"#
        );
        let e = parse_error(StatusCode::BAD_REQUEST, &xml).expect("an error document");
        let WebIdentityError::Refused {
            code, request_id, ..
        } = &e
        else {
            panic!("expected Refused, got {e:?}");
        };
        assert_eq!(code, "ExpiredTokenException");
        assert_eq!(request_id.as_deref(), Some("d5d4d1f7-EXAMPLE"));
        let shown = e.to_string();
        assert!(shown.contains("400 Bad Request"), "{shown}");
        assert!(shown.contains("Token expired"), "{shown}");
        assert!(parse_error(StatusCode::FORBIDDEN, "<html>nope</html>").is_none());
        let long = format!(
            "<ErrorResponse><Error><Code>X</Code><Message>{}</Message></Error></ErrorResponse>",
            "m".repeat(5000)
        );
        let Some(WebIdentityError::Refused { message, .. }) =
            parse_error(StatusCode::FORBIDDEN, &long)
        else {
            panic!("expected Refused");
        };
        assert_eq!(message.len(), MAX_MESSAGE);
    }

    fn config() -> WebIdentityConfig {
        WebIdentityConfig {
            role_arn: "arn:aws:iam::123456789012:role/daas-master".into(),
            token_file: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
            session_name: DEFAULT_SESSION_NAME.into(),
            duration_seconds: None,
            endpoint: None,
            extra_ca: None,
        }
    }

    #[test]
    fn the_form_encodes_every_field() {
        let client = WebIdentity::new(
            &WebIdentityConfig {
                duration_seconds: Some(3600),
                ..config()
            },
            "eu-west-1",
        )
        .expect("client");
        let form = client.form(&Secret::new("a.b+c/d=".into()));
        assert_eq!(
            std::str::from_utf8(&form).expect("ascii"),
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15\
             &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdaas-master\
             &RoleSessionName=daas-bridge&WebIdentityToken=a.b%2Bc%2Fd%3D&DurationSeconds=3600"
        );
        assert_eq!(client.endpoint_name, "sts.eu-west-1.amazonaws.com:443");
        let cn = WebIdentity::new(&config(), "cn-north-1").expect("client");
        assert_eq!(cn.endpoint_name, "sts.cn-north-1.amazonaws.com.cn:443");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let cases = [
            WebIdentityConfig {
                role_arn: "daas-master".into(),
                ..config()
            },
            WebIdentityConfig {
                session_name: "a".into(),
                ..config()
            },
            WebIdentityConfig {
                session_name: "has space".into(),
                ..config()
            },
            WebIdentityConfig {
                duration_seconds: Some(60),
                ..config()
            },
            WebIdentityConfig {
                endpoint: Some("http://sts.eu-west-1.amazonaws.com".into()),
                ..config()
            },
        ];
        for c in cases {
            assert!(
                matches!(
                    WebIdentity::new(&c, "eu-west-1"),
                    Err(WebIdentityError::Config(_))
                ),
                "{c:?} must be refused"
            );
        }
    }
}
