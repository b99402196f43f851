//! Stand-ins for the two EKS credential services the bridge can relay from:
//!
//! - [`sts_stand_in`] stands in for AWS STS's regional endpoint answering
//!   `AssumeRoleWithWebIdentity` (EKS IRSA): HTTPS on 127.0.0.1 with a certificate from a fresh
//!   test CA, the form fields checked, the real XML shapes for success and errors;
//! - [`pod_identity_stand_in`] stands in for the EKS Pod Identity agent
//!   (`http://169.254.170.23/v1/credentials`): plain HTTP on 127.0.0.1, the `Authorization`
//!   header checked against the current token, 401 otherwise.
//!
//! Test values only.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The IRSA role and session.
pub(crate) const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/daas-master";
pub(crate) const SESSION_NAME: &str = "daas-bridge-test";
/// Projected ServiceAccount tokens STS accepts (the second is the "rotated" one).
pub(crate) const WEB_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-web-identity-token-one.c2ln";
pub(crate) const WEB_TOKEN_ROTATED: &str = "eyJhbGciOiJSUzI1NiJ9.test-web-identity-token-two.c2ln";
/// A token STS reports as expired.
pub(crate) const EXPIRED_WEB_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-expired-token.c2ln";
/// What STS hands out.
pub(crate) const STS_ACCESS_KEY_ID: &str = "ASIASTSTESTACCESSKEY";
pub(crate) const STS_SECRET_ACCESS_KEY: &str = "sts-test-secret/access+key=0123456789";
pub(crate) const STS_SESSION_TOKEN: &str = "sts-test-session-token-FwoGZXIvYXdzEXAMPLE";
/// A secret-looking value in a malformed reply: must never be echoed.
pub(crate) const GARBAGE_SECRET: &str = "garbage-reply-secret-7c7c7c";
/// Pod Identity tokens and what the agent hands out.
pub(crate) const POD_TOKEN: &str = "test-pod-identity-token-aaaa";
pub(crate) const POD_TOKEN_ROTATED: &str = "test-pod-identity-token-bbbb";
pub(crate) const POD_ACCESS_KEY_ID: &str = "ASIAPODTESTACCESSKEY";
pub(crate) const POD_SECRET_ACCESS_KEY: &str = "pod-test-secret-access-key-0f0f0f";
pub(crate) const POD_SESSION_TOKEN: &str = "pod-test-session-token-IQoJEXAMPLE";

/// How a stand-in dates its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// 2099: the bridge caches them.
    Far,
    /// One minute from now, inside the bridge's five-minute refresh margin: never cached.
    Soon,
}

impl Expiry {
    fn rfc3339(self) -> String {
        match self {
            Expiry::Far => "2099-12-06T16:00:00Z".to_owned(),
            Expiry::Soon => {
                humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(60))
                    .to_string()
            }
        }
    }
}

/// What the STS stand-in answers with a 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StsReply {
    /// The credentials document.
    Credentials,
    /// A 200 whose body is not XML (and holds a secret-looking value).
    Garbage,
}

/// What the STS stand-in saw.
#[derive(Default)]
pub(crate) struct StsState {
    /// `WebIdentityToken` of every well-formed call, in order.
    pub(crate) tokens: Mutex<Vec<String>>,
    /// Calls refused for a bad method, path, content type or form field.
    pub(crate) bad_requests: AtomicUsize,
    /// `DurationSeconds` of the last call.
    pub(crate) duration: Mutex<Option<String>>,
    reply: Mutex<Option<StsReply>>,
    expiry: Mutex<Option<Expiry>>,
}

impl StsState {
    /// The tokens seen so far.
    pub(crate) fn tokens(&self) -> Vec<String> {
        self.tokens.lock().expect("tokens").clone()
    }

    /// Changes what a 200 carries.
    pub(crate) fn set_reply(&self, reply: StsReply) {
        *self.reply.lock().expect("reply") = Some(reply);
    }
}

/// A running STS stand-in.
pub(crate) struct StsStandIn {
    /// `https://127.0.0.1:<port>`.
    pub(crate) url: String,
    /// The test CA's certificate (PEM).
    pub(crate) ca_file: tempfile::NamedTempFile,
    /// What it saw.
    pub(crate) state: Arc<StsState>,
}

/// Starts the STS stand-in with a serving certificate for `names` (use `127.0.0.1` to match
/// the URL; anything else to test name verification).
pub(crate) async fn sts_stand_in(names: &[&str], expiry: Expiry) -> StsStandIn {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "STS stand-in test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("leaf params")
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
    let mut ca_file = tempfile::NamedTempFile::new().expect("CA file");
    ca_file
        .write_all(ca_cert.pem().as_bytes())
        .expect("write CA");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind STS stand-in");
    let addr: SocketAddr = listener.local_addr().expect("STS addr");
    let state = Arc::new(StsState {
        reply: Mutex::new(Some(StsReply::Credentials)),
        expiry: Mutex::new(Some(expiry)),
        ..StsState::default()
    });
    let served = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let state = served.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(sts_handle(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    StsStandIn {
        url: format!("https://{addr}"),
        ca_file,
        state,
    }
}

fn xml(status: StatusCode, body: String) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> http::Response<Full<Bytes>> {
    xml(
        status,
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#
        ),
    )
}

async fn sts_handle(
    state: &StsState,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let form_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let shape_ok = req.method() == http::Method::POST && req.uri().path() == "/" && form_type;
    let Ok(body) = req.into_body().collect().await else {
        return sts_error(StatusCode::BAD_REQUEST, "MalformedInput", "unreadable body");
    };
    let form = form_decode(&body.to_bytes());
    let field = |k: &str| form.get(k).map(String::as_str);
    if !shape_ok
        || field("Action") != Some("AssumeRoleWithWebIdentity")
        || field("Version") != Some("2011-06-15")
        || field("RoleArn") != Some(ROLE_ARN)
        || field("RoleSessionName") != Some(SESSION_NAME)
    {
        state.bad_requests.fetch_add(1, Ordering::SeqCst);
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "the stand-in did not get the expected form",
        );
    }
    let Some(token) = field("WebIdentityToken") else {
        state.bad_requests.fetch_add(1, Ordering::SeqCst);
        return sts_error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "The request must contain the parameter WebIdentityToken",
        );
    };
    state.tokens.lock().expect("tokens").push(token.to_owned());
    *state.duration.lock().expect("duration") = field("DurationSeconds").map(str::to_owned);
    if token == EXPIRED_WEB_TOKEN {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            "Token expired: current date/time 1765036800 must be before the expiration date/time 1765033200",
        );
    }
    if token != WEB_TOKEN && token != WEB_TOKEN_ROTATED {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider",
        );
    }
    let reply = (*state.reply.lock().expect("reply")).unwrap_or(StsReply::Credentials);
    if reply == StsReply::Garbage {
        return xml(
            StatusCode::OK,
            format!("{{\"not\":\"xml {GARBAGE_SECRET}\"}}"),
        );
    }
    let expiry = (*state.expiry.lock().expect("expiry")).unwrap_or(Expiry::Far);
    xml(
        StatusCode::OK,
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:daas:master</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/daas-master/{SESSION_NAME}</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{SESSION_NAME}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{STS_SESSION_TOKEN}</SessionToken>
      <SecretAccessKey>{STS_SECRET_ACCESS_KEY}</SecretAccessKey>
      <Expiration>{}</Expiration>
      <AccessKeyId>{STS_ACCESS_KEY_ID}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/TEST</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
            expiry.rfc3339()
        ),
    )
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
fn form_decode(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let k = decode(kv.next().unwrap_or_default());
            let v = decode(kv.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

/// What the Pod Identity stand-in saw and accepts.
pub(crate) struct PodIdentityState {
    /// The token it accepts now.
    pub(crate) accepted: Mutex<String>,
    /// `Authorization` values of the accepted calls, in order.
    pub(crate) seen: Mutex<Vec<String>>,
    /// Calls refused 401.
    pub(crate) refused: AtomicUsize,
    /// Answer 200 with a body that is not the credentials JSON.
    pub(crate) garbage: std::sync::atomic::AtomicBool,
    expiry: Expiry,
}

/// Starts the Pod Identity stand-in; returns its full URI (`http://127.0.0.1:<port>/v1/credentials`).
pub(crate) async fn pod_identity_stand_in(expiry: Expiry) -> (String, Arc<PodIdentityState>) {
    let state = Arc::new(PodIdentityState {
        accepted: Mutex::new(POD_TOKEN.to_owned()),
        seen: Mutex::new(Vec::new()),
        refused: AtomicUsize::new(0),
        garbage: std::sync::atomic::AtomicBool::new(false),
        expiry,
    });
    let served = state.clone();
    let app = Router::new().route(
        "/v1/credentials",
        get(move |headers: HeaderMap| {
            let state = served.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if auth != *state.accepted.lock().expect("accepted") {
                    state.refused.fetch_add(1, Ordering::SeqCst);
                    return (
                        StatusCode::UNAUTHORIZED,
                        r#"{"code":"InvalidToken","message":"Service account token cannot be empty"}"#
                            .to_owned(),
                    );
                }
                state.seen.lock().expect("seen").push(auth);
                if state.garbage.load(Ordering::SeqCst) {
                    return (StatusCode::OK, format!("{{\"AccessKeyId\": {GARBAGE_SECRET}"));
                }
                let body = serde_json::json!({
                    "AccessKeyId": POD_ACCESS_KEY_ID,
                    "SecretAccessKey": POD_SECRET_ACCESS_KEY,
                    "Token": POD_SESSION_TOKEN,
                    "AccountId": "123456789012",
                    "Expiration": state.expiry.rfc3339(),
                });
                (StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind Pod Identity stand-in");
    let addr = listener.local_addr().expect("Pod Identity addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1/credentials"), state)
}
