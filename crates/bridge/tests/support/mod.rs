//! Shared test setup: a parent bridge and an enclave side in one process, talking over Unix
//! sockets that stand in for vsock (this machine, like many CI hosts, has no vsock loopback),
//! plus small TCP peers and a stand-in for EC2's IMDSv2.

#![allow(dead_code)] // each test file uses a different part

pub(crate) mod eks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use daas_bridge::{
    AllowList, Bridge, BridgeConfig, BridgeHandle, CredentialsConfig, CredentialsSource,
    EgressConfig, EgressForward, EnclaveConfig, EnclaveHandle, EnclaveSide, IngressForward,
    IngressRoute, Limits, PARENT_CID, UnixVsock, VsockTransport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The enclave's CID in these tests.
pub(crate) const ENCLAVE_CID: u32 = 16;
/// vsock ports.
pub(crate) const INGRESS_PORT: u32 = 8080;
pub(crate) const EGRESS_PORT: u32 = 8000;
pub(crate) const CREDENTIALS_PORT: u32 = 8001;

/// A TCP echo server on 127.0.0.1:0: echoes until EOF, then half-closes.
pub(crate) async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that reads its whole request until EOF, then answers `reply_len` bytes of a
/// pattern derived from the request length, then closes: proves half-close passes through.
pub(crate) async fn drain_then_reply_server(reply_len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind drain server");
    let addr = listener.local_addr().expect("drain addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = Vec::new();
                if s.read_to_end(&mut req).await.is_err() {
                    return;
                }
                let sum = checksum(&req);
                let mut reply = Vec::with_capacity(reply_len + 8);
                reply.extend_from_slice(&sum.to_be_bytes());
                reply.extend(pattern(reply_len, 7));
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Deterministic test bytes.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A cheap order-sensitive checksum.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Both sides' transports over one temporary directory.
pub(crate) struct Vsock {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) parent: Arc<dyn VsockTransport>,
    pub(crate) enclave: Arc<dyn VsockTransport>,
}

pub(crate) fn vsock() -> Vsock {
    let dir = tempfile::tempdir().expect("tempdir");
    // A fresh subdirectory: UnixVsock creates it 0700 (the temp dir itself follows the umask).
    let sockets = dir.path().join("vsock");
    let parent = Arc::new(UnixVsock::new(&sockets, PARENT_CID).expect("parent transport"));
    let enclave = Arc::new(UnixVsock::new(&sockets, ENCLAVE_CID).expect("enclave transport"));
    Vsock {
        dir,
        parent,
        enclave,
    }
}

pub(crate) fn allow(entries: &[String]) -> AllowList {
    AllowList::from_entries(entries).expect("test allow-list")
}

/// A parent bridge with ingress 127.0.0.1:0 → INGRESS_PORT, egress on EGRESS_PORT with
/// `parent_allow`, and (if a source is given) the credentials relay on CREDENTIALS_PORT.
pub(crate) async fn parent(
    vsock: &Vsock,
    parent_allow: AllowList,
    credentials: Option<(CredentialsSource, Option<String>)>,
    limits: Limits,
) -> BridgeHandle {
    Bridge::start(
        BridgeConfig {
            enclave_cid: ENCLAVE_CID,
            ingress: vec![IngressRoute {
                listen: "127.0.0.1:0".parse().expect("addr"),
                vsock_port: INGRESS_PORT,
            }],
            egress: Some(EgressConfig {
                vsock_port: EGRESS_PORT,
                allow: parent_allow,
            }),
            credentials: credentials.map(|(source, region)| CredentialsConfig {
                vsock_port: CREDENTIALS_PORT,
                source,
                region,
            }),
            limits,
        },
        vsock.parent.clone(),
    )
    .await
    .expect("parent bridge starts")
}

/// An enclave side forwarding INGRESS_PORT to `service`, and one local egress forwarder per
/// entry of `forward` (all of which must be on `enclave_allow`).
pub(crate) async fn enclave(
    vsock: &Vsock,
    service: SocketAddr,
    enclave_allow: AllowList,
    forward: &[String],
    limits: Limits,
) -> EnclaveHandle {
    EnclaveSide::start(
        EnclaveConfig {
            egress_port: Some(EGRESS_PORT),
            allow: enclave_allow,
            egress: forward
                .iter()
                .map(|t| EgressForward {
                    target: t.parse().expect("forward target"),
                    listen: "127.0.0.1:0".parse().expect("addr"),
                })
                .collect(),
            ingress: vec![IngressForward {
                vsock_port: INGRESS_PORT,
                connect: service,
            }],
            credentials_port: Some(CREDENTIALS_PORT),
            limits,
            ..EnclaveConfig::default()
        },
        vsock.enclave.clone(),
    )
    .await
    .expect("enclave side starts")
}

/// What a test wants of a parent and enclave pair; [`Setup::start`] builds it. The default is
/// both sides allowing nothing, no egress forwarders, no credentials relay, default limits,
/// and an echo server as the enclave's ingress service.
#[derive(Default)]
pub(crate) struct Setup {
    /// Targets on both sides' allow-lists.
    pub(crate) allow: Vec<String>,
    /// Targets only the enclave's allow-list adds.
    pub(crate) enclave_also: Vec<String>,
    /// Targets only the parent's allow-list adds.
    pub(crate) parent_also: Vec<String>,
    /// One enclave egress forwarder per target (each must be on the enclave's list).
    pub(crate) forward: Vec<String>,
    /// The enclave's ingress service; an echo server when `None`.
    pub(crate) service: Option<SocketAddr>,
    /// The IMDS URL, which turns the credentials relay on (source `imds`, region from IMDS).
    pub(crate) imds: Option<String>,
    /// Any other credentials source and its region (overrides `imds`).
    pub(crate) credentials: Option<(CredentialsSource, Option<String>)>,
    /// Both sides' limits.
    pub(crate) limits: Limits,
}

/// A running parent bridge and enclave side over one stand-in vsock.
pub(crate) struct Pair {
    pub(crate) vs: Vsock,
    pub(crate) parent: BridgeHandle,
    pub(crate) enclave: EnclaveHandle,
}

impl Setup {
    /// Starts the enclave side, then the parent bridge.
    pub(crate) async fn start(self) -> Pair {
        let vs = vsock();
        let service = match self.service {
            Some(s) => s,
            None => echo_server().await,
        };
        let enclave_allow = [self.allow.as_slice(), &self.enclave_also].concat();
        let parent_allow = [self.allow.as_slice(), &self.parent_also].concat();
        let enclave = enclave(
            &vs,
            service,
            allow(&enclave_allow),
            &self.forward,
            self.limits.clone(),
        )
        .await;
        let credentials = self
            .credentials
            .or(self.imds.map(|url| (CredentialsSource::Imds { url }, None)));
        let parent = parent(&vs, allow(&parent_allow), credentials, self.limits).await;
        Pair {
            vs,
            parent,
            enclave,
        }
    }
}

impl Pair {
    /// Stops both sides.
    pub(crate) async fn shutdown(self) {
        self.parent.shutdown().await;
        self.enclave.shutdown().await;
    }
}

/// What the IMDS stand-in hands out. Test values only.
pub(crate) const ACCESS_KEY_ID: &str = "ASIATESTACCESSKEYID01";
pub(crate) const SECRET_ACCESS_KEY: &str = "test-secret-access-key-9f8e7d6c5b4a";
pub(crate) const SESSION_TOKEN: &str = "test-session-token-IQoJb3JpZ2luX2VjEXAMPLE";
pub(crate) const IMDS_TOKEN: &str = "test-imds-session-token-5a5a5a";
pub(crate) const ROLE: &str = "daas-parent-role";
pub(crate) const REGION: &str = "eu-west-1";

/// Requests the stand-in served, by kind.
#[derive(Default)]
pub(crate) struct ImdsLog {
    pub(crate) token_puts: AtomicUsize,
    pub(crate) authorized_gets: AtomicUsize,
    pub(crate) refused: AtomicUsize,
}

/// A stand-in for EC2's instance metadata service, IMDSv2 only: a session token must be
/// obtained with `PUT /latest/api/token` (TTL header required) and presented on every GET;
/// a GET without it is refused 401, as IMDSv2-only instances do. Serves one role's
/// credentials and the region.
pub(crate) async fn imds_stand_in(role_ok: bool) -> (String, Arc<ImdsLog>) {
    let log = Arc::new(ImdsLog::default());
    let authorized = {
        let log = log.clone();
        move |headers: &HeaderMap| {
            let ok = headers
                .get("x-aws-ec2-metadata-token")
                .is_some_and(|v| v.as_bytes() == IMDS_TOKEN.as_bytes());
            if ok {
                log.authorized_gets.fetch_add(1, Ordering::SeqCst);
            } else {
                log.refused.fetch_add(1, Ordering::SeqCst);
            }
            ok
        }
    };
    let token_log = log.clone();
    let a1 = authorized.clone();
    let a2 = authorized.clone();
    let a3 = authorized;
    let app = Router::new()
        .route(
            "/latest/api/token",
            put(move |headers: HeaderMap| {
                let log = token_log.clone();
                async move {
                    let ttl = headers
                        .get("x-aws-ec2-metadata-token-ttl-seconds")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u32>().ok());
                    match ttl {
                        Some(1..=21600) => {
                            log.token_puts.fetch_add(1, Ordering::SeqCst);
                            (StatusCode::OK, IMDS_TOKEN.to_owned())
                        }
                        _ => {
                            log.refused.fetch_add(1, Ordering::SeqCst);
                            (StatusCode::BAD_REQUEST, String::new())
                        }
                    }
                }
            }),
        )
        .route(
            "/latest/meta-data/iam/security-credentials/",
            get(move |headers: HeaderMap| async move {
                if !a1(&headers) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                if role_ok {
                    (StatusCode::OK, ROLE.to_owned())
                } else {
                    (StatusCode::NOT_FOUND, String::new())
                }
            }),
        )
        .route(
            &format!("/latest/meta-data/iam/security-credentials/{ROLE}"),
            get(move |headers: HeaderMap| async move {
                if !a2(&headers) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                let body = serde_json::json!({
                    "Code": "Success",
                    "LastUpdated": "2026-12-06T10:00:00Z",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": ACCESS_KEY_ID,
                    "SecretAccessKey": SECRET_ACCESS_KEY,
                    "Token": SESSION_TOKEN,
                    "Expiration": "2099-12-06T16:00:00Z",
                });
                (StatusCode::OK, body.to_string())
            }),
        )
        .route(
            "/latest/meta-data/placement/region",
            get(move |headers: HeaderMap| async move {
                if !a3(&headers) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                (StatusCode::OK, REGION.to_owned())
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind IMDS stand-in");
    let addr = listener.local_addr().expect("IMDS addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), log)
}
