//! What the kubectl proxy does on the wire, observed from both ends: a real TLS client in front
//! and the stand-in API server (`support::upstream`) behind, which records every request
//! exactly as the proxy forwarded it.
//!
//! Covered: the identity the proxy asserts and the client headers it must drop; 401/429/503 as
//! Kubernetes `Status` objects with nothing forwarded; HTTP/2 on both hops; unbuffered watches
//! and the watch gauge; exec-style upgrades; large bodies; upstream TLS verification and the
//! front-proxy client certificate; slow and stalled clients; the upstream response timeout;
//! watches beyond the API server's HTTP/2 stream limit; the TokenReview webhook; kubectl.
//! RBAC against a real kube-apiserver is `proxy_kube_apiserver.rs`.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use daas_seal::Role;
use http::{HeaderMap, Request, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use nautilus_master::auth::unix_ms_now;
use nautilus_master::proxy::{
    ProxyConfig, RateLimit, RoleRateLimits, ServeLimits, UpstreamConfig, UpstreamTls,
};
use support::proxy::{RunningProxy, Staker, random_address};
use support::upstream::{Ca, Conn, Recorded, Upstream, client_config, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIGMAPS: &str = "/api/v1/namespaces/x/configmaps";

/// The stand-in API server and a proxy in front of it (`bootstrap_rbac` off: the stand-in has
/// no RBAC API, and its request log should hold only what clients sent).
struct Setup {
    upstream: Upstream,
    proxy: RunningProxy,
    rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self::with(|c| c, ServeLimits::default())
    }

    fn with(config: impl FnOnce(ProxyConfig) -> ProxyConfig, limits: ServeLimits) -> Self {
        let upstream = Upstream::start();
        let tmp = tempfile::tempdir().unwrap();
        let base = ProxyConfig {
            upstream: Some(upstream.config()),
            bootstrap_rbac: false,
            ..ProxyConfig::default()
        };
        let proxy = RunningProxy::start_with(&tmp.path().join("tls"), config(base), limits);
        Setup {
            upstream,
            proxy,
            rt: client_runtime(),
            _tmp: tmp,
        }
    }

    fn user(&self) -> (Staker, String) {
        let staker = self.proxy.staker(Role::User);
        let token = staker.token(self.proxy.cluster, 0);
        (staker, token)
    }

    /// A client connection to the proxy, trusting its CA.
    fn connect(&self, http2: bool) -> Conn {
        let config = proxy_client_config(&self.proxy);
        let addr = self.proxy.addr;
        self.rt
            .block_on(async move { Conn::connect(addr, config, http2).await })
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn proxy_client_config(proxy: &RunningProxy) -> Arc<rustls::ClientConfig> {
    client_config(&proxy.ca_pem, None, &[b"h2", b"http/1.1"])
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

fn get(url: String, token: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(empty())
        .unwrap()
}

async fn read_all(resp: hyper::Response<Incoming>) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Reads body frames until a newline-terminated line has arrived.
async fn next_line(body: &mut Incoming) -> String {
    let mut buf = Vec::new();
    while !buf.ends_with(b"\n") {
        let frame = body
            .frame()
            .await
            .expect("stream ended")
            .expect("stream error");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    String::from_utf8(buf).unwrap()
}

async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Plain HTTP GET of the admin listener with std only.
fn admin_get(proxy: &RunningProxy, path: &str) -> String {
    support::http_get(proxy.admin_url.trim_start_matches("http://"), path)
}

/// The value of an unlabelled metric on `/metrics`.
fn metric(proxy: &RunningProxy, name: &str) -> f64 {
    let body = admin_get(proxy, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Asserts `body` is a Kubernetes `Status` failure with `code` and `reason`; returns it.
fn assert_status(body: &[u8], code: u16, reason: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    v
}

/// No header value of any recorded request contains `needle`.
fn assert_never_forwarded(recorded: &[Recorded], needle: &str) {
    for r in recorded {
        for (name, value) in &r.headers {
            assert!(
                !String::from_utf8_lossy(value.as_bytes()).contains(needle),
                "{needle:?} reached the upstream in {name} of {} {}",
                r.method,
                r.path_and_query
            );
        }
        assert!(!r.path_and_query.contains(needle));
    }
}

// ---- Identity -------------------------------------------------------------------------------

#[test]
fn forwards_the_seal_identity_and_strips_client_credentials() {
    let s = Setup::new();
    let (user, token) = s.user();
    let path = format!("{CONFIGMAPS}?limit=2&labelSelector=app%3Dbench&fieldSelector=a%3D%3Db");
    let hostile = [
        ("impersonate-user", "system:admin"),
        ("impersonate-group", "system:masters"),
        ("impersonate-uid", "0"),
        ("impersonate-extra-scopes", "everything"),
        ("x-remote-user", "system:admin"),
        ("x-remote-uid", "0"),
        ("x-remote-group", "system:masters"),
        ("x-remote-extra-foo", "bar"),
        ("proxy-authorization", "Basic c211Z2dsZWQ6eA=="),
        ("accept", "application/json"),
        ("user-agent", "kubectl/v1.36.0 (fidelity)"),
    ];
    for http2 in [false, true] {
        s.upstream.clear();
        let conn = s.connect(http2);
        let mut req = Request::get(format!("{}{path}", s.proxy.url))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (k, v) in hostile {
            req = req.header(k, v);
        }
        if !http2 {
            // Connection-named headers are hop-by-hop: a way to smuggle a header past a proxy
            // that only strips a fixed list. (HTTP/2 has no Connection header.)
            req = req
                .header(header::CONNECTION, "keep-alive, x-custom")
                .header("x-custom", "smuggled");
        }
        let (status, _, body) = s.rt.block_on(async {
            read_all(conn.send(req.body(empty()).unwrap()).await.unwrap()).await
        });
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["items"].as_array().unwrap().len(), 3);

        let recorded = s.upstream.recorded();
        assert_eq!(recorded.len(), 1, "exactly one request forwarded");
        let r = &recorded[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path_and_query, path, "path and query forwarded verbatim");
        assert_eq!(
            r.one("x-remote-user"),
            Some(format!("sui:{}", user.address()))
        );
        assert_eq!(r.one("x-remote-uid"), Some(user.stake.to_string()));
        assert_eq!(
            r.all("x-remote-group"),
            ["k3s-daas:user", "system:authenticated"]
        );
        assert_eq!(
            r.all("x-remote-extra-k3s-daas.io%2fstake-id"),
            [user.stake.to_string()]
        );
        let mut identity_headers: Vec<&str> = r
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| {
                k.starts_with("x-remote-")
                    || k.starts_with("impersonate-")
                    || k.contains("authorization")
            })
            .collect();
        identity_headers.sort_unstable();
        identity_headers.dedup();
        assert_eq!(
            identity_headers,
            [
                "x-remote-extra-k3s-daas.io%2fstake-id",
                "x-remote-group",
                "x-remote-uid",
                "x-remote-user"
            ],
            "only the proxy's identity headers reach the upstream"
        );
        for gone in ["x-custom", "connection", "x-remote-extra-foo"] {
            assert!(!r.headers.contains_key(gone), "{gone} was forwarded");
        }
        for needle in [
            token.as_str(),
            "system:admin",
            "system:masters",
            "smuggled",
            "c211Z2dsZWQ6eA",
            "everything",
        ] {
            assert_never_forwarded(&recorded, needle);
        }
        assert_eq!(r.one("accept").as_deref(), Some("application/json"));
        assert_eq!(
            r.one("user-agent").as_deref(),
            Some("kubectl/v1.36.0 (fidelity)")
        );
        if r.version == Version::HTTP_11 {
            assert_eq!(r.one("host"), Some(s.upstream.addr.to_string()));
        }
    }
}

// ---- Refusals -------------------------------------------------------------------------------

#[test]
fn bad_credentials_get_a_401_status_and_nothing_is_forwarded() {
    let s = Setup::new();
    let cluster = s.proxy.cluster;
    let (expired_staker, _) = s.user();
    let expired = expired_staker.token_at(cluster, 0, unix_ms_now() - 3_600_000, 60_000);
    let revoked_staker = s.proxy.staker(Role::User);
    let revoked = revoked_staker.token(cluster, 0);
    s.proxy.revoke(&revoked_staker);
    let other_cluster = s.proxy.staker(Role::Admin).token(random_address(), 0);
    let (_, valid) = s.user();
    let oversized = "A".repeat(100 * 1024);

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("missing", vec![], ""),
        (
            "basic",
            vec!["Basic dXNlcjpwYXNzd29yZA==".into()],
            "dXNlcjpwYXNzd29yZA",
        ),
        ("empty bearer", vec!["Bearer ".into()], ""),
        (
            "garbage",
            vec!["Bearer not-a-seal-token".into()],
            "not-a-seal-token",
        ),
        (
            "oversized",
            vec![format!("Bearer {oversized}")],
            &oversized[..64],
        ),
        ("expired", vec![format!("Bearer {expired}")], &expired),
        ("revoked", vec![format!("Bearer {revoked}")], &revoked),
        (
            "other cluster",
            vec![format!("Bearer {other_cluster}")],
            &other_cluster,
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {valid}"), format!("Bearer {valid}")],
            &valid,
        ),
    ];
    let conn = s.connect(false);
    for (name, auth, secret) in &cases {
        let mut req = Request::get(format!("{}{CONFIGMAPS}", s.proxy.url));
        for a in auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let (status, headers, body) = s.rt.block_on(async {
            read_all(conn.send(req.body(empty()).unwrap()).await.unwrap()).await
        });
        assert_eq!(status, 401, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{name}");
        let v = assert_status(&body, 401, "Unauthorized");
        assert!(
            v["message"].as_str().unwrap().starts_with("Unauthorized"),
            "{name}: {v}"
        );
        if !secret.is_empty() {
            assert!(
                !String::from_utf8_lossy(&body).contains(secret),
                "{name}: the 401 body echoes the credential"
            );
        }
    }
    assert!(
        s.upstream.recorded().is_empty(),
        "refused requests reached the upstream: {:?}",
        s.upstream.recorded()
    );
    // The valid token itself works, on the same connection.
    let (status, _, _) =
        s.rt.block_on(conn.get(&s.proxy.url, "/version", Some(&valid)));
    assert_eq!(status, 200);
    assert_eq!(s.upstream.recorded().len(), 1);
}

#[test]
fn rate_limited_identities_get_429_with_retry_after() {
    let s = Setup::with(
        |c| ProxyConfig {
            rate_limits: RoleRateLimits {
                user: RateLimit::new(0.05, 2.0),
                admin: RateLimit::new(0.05, 5.0),
                ..RoleRateLimits::default()
            },
            ..c
        },
        ServeLimits::default(),
    );
    let (_, token) = s.user();
    let conn = s.connect(true);
    let statuses: Vec<(StatusCode, HeaderMap, Bytes)> = s.rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(conn.get(&s.proxy.url, "/version", Some(&token)).await);
        }
        out
    });
    assert_eq!(statuses[0].0, 200);
    assert_eq!(statuses[1].0, 200);
    let (status, headers, body) = &statuses[2];
    assert_eq!(*status, 429);
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    let v = assert_status(body, 429, "TooManyRequests");
    assert_eq!(v["details"]["retryAfterSeconds"], retry);
    assert_eq!(s.upstream.recorded().len(), 2, "the 429 was not forwarded");

    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("0.05/s") && message.contains("(user)"),
        "{message}"
    );

    // The bucket is per identity.
    let (_, other) = s.user();
    let (status, _, _) =
        s.rt.block_on(conn.get(&s.proxy.url, "/version", Some(&other)));
    assert_eq!(status, 200);
    assert_eq!(s.upstream.recorded().len(), 3);

    // And its size is per role: an admin gets its own, larger burst.
    let admin = s.proxy.staker(Role::Admin).token(s.proxy.cluster, 0);
    let statuses: Vec<StatusCode> = s.rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(conn.get(&s.proxy.url, "/version", Some(&admin)).await.0);
        }
        out
    });
    assert_eq!(statuses[..5], [StatusCode::OK; 5], "{statuses:?}");
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.upstream.recorded().len(), 8);
}

#[test]
fn without_an_upstream_authenticated_requests_get_503_status() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy = RunningProxy::start(&tmp.path().join("tls"), ProxyConfig::default());
    let token = proxy.staker(Role::User).token(proxy.cluster, 0);
    let rt = client_runtime();
    let config = proxy_client_config(&proxy);
    let (ok, anon) = rt.block_on(async {
        let conn = Conn::connect(proxy.addr, config, true).await;
        (
            conn.get(&proxy.url, "/api", Some(&token)).await,
            conn.get(&proxy.url, "/api", None).await,
        )
    });
    assert_eq!(ok.0, 503);
    let v = assert_status(&ok.2, 503, "ServiceUnavailable");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no Kubernetes API server"),
        "{v}"
    );
    assert_eq!(
        anon.0, 401,
        "authentication comes before the upstream check"
    );
}

// ---- Protocols ------------------------------------------------------------------------------

#[test]
fn http2_on_both_hops() {
    let s = Setup::new();
    let (_, token) = s.user();
    let h2 = s.connect(true);
    let responses = s.rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let conn = h2.clone();
            let req = get(format!("{}{CONFIGMAPS}?items={i}", s.proxy.url), &token);
            tasks.push(tokio::spawn(async move {
                let resp = conn.send(req).await.unwrap();
                let version = resp.version();
                let (status, _, body) = read_all(resp).await;
                (version, status, body)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (i, (version, status, body)) in responses.iter().enumerate() {
        assert_eq!(*version, Version::HTTP_2);
        assert_eq!(*status, 200);
        let list: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), i);
    }
    let recorded = s.upstream.recorded();
    assert_eq!(recorded.len(), 8);
    assert!(
        recorded.iter().all(|r| r.version == Version::HTTP_2),
        "the proxy negotiated h2 with the upstream: {:?}",
        recorded.iter().map(|r| r.version).collect::<Vec<_>>()
    );

    // An HTTP/1.1 client's request also travels upstream over the pooled HTTP/2 connection.
    s.upstream.clear();
    let h1 = s.connect(false);
    let resp = s.rt.block_on(async {
        let resp = h1
            .send(get(format!("{}/version", s.proxy.url), &token))
            .await
            .unwrap();
        assert_eq!(resp.version(), Version::HTTP_11);
        read_all(resp).await
    });
    assert_eq!(resp.0, 200);
    assert_eq!(s.upstream.recorded()[0].version, Version::HTTP_2);
}

#[test]
fn watches_stream_event_by_event_and_are_counted() {
    let s = Setup::new();
    let (_, token) = s.user();
    for http2 in [false, true] {
        let conn = s.connect(http2);
        s.rt.block_on(async {
            let resp = conn
                .send(get(
                    format!(
                        "{}{CONFIGMAPS}?watch=true&resourceVersion=1000",
                        s.proxy.url
                    ),
                    &token,
                ))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let mut body = resp.into_body();
            eventually("the upstream watch to open", Duration::from_secs(5), || {
                s.upstream.open_watches() == 1
            })
            .await;
            assert_eq!(metric(&s.proxy, "daas_proxy_open_watches"), 1.0);

            let first =
                r#"{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"one"}}}"#;
            assert_eq!(s.upstream.push_event(first), 1);
            // Event 2 does not exist yet: if the proxy buffered, this read would time out.
            let line = tokio::time::timeout(Duration::from_secs(3), next_line(&mut body))
                .await
                .expect("event 1 was held back by the proxy");
            assert_eq!(line.trim_end(), first);

            let second =
                r#"{"type":"MODIFIED","object":{"kind":"ConfigMap","metadata":{"name":"one"}}}"#;
            assert_eq!(s.upstream.push_event(second), 1);
            let line = tokio::time::timeout(Duration::from_secs(3), next_line(&mut body))
                .await
                .expect("event 2 was held back by the proxy");
            assert_eq!(line.trim_end(), second);
            assert_eq!(metric(&s.proxy, "daas_proxy_open_watches"), 1.0);

            drop(body);
            drop(conn);
            eventually(
                "the watch gauge to drop after the client left",
                Duration::from_secs(5),
                || metric(&s.proxy, "daas_proxy_open_watches") == 0.0,
            )
            .await;
            eventually(
                "the proxy to close the upstream watch",
                Duration::from_secs(5),
                || s.upstream.open_watches() == 0,
            )
            .await;
        });
    }
}

#[test]
fn watches_beyond_the_upstream_stream_limit_do_not_starve_other_requests() {
    // kube-apiserver advertises 100 concurrent streams per HTTP/2 connection. Long-running
    // watches must not occupy the streams every other request needs.
    let s = Setup::new();
    let (_, token) = s.user();
    let watches = support::upstream::KUBE_APISERVER_MAX_STREAMS as usize + 20;
    let conn = s.connect(true);
    s.rt.block_on(async {
        let mut bodies = Vec::new();
        let mut pending = Vec::new();
        for _ in 0..watches {
            let conn = conn.clone();
            let req = get(format!("{}{CONFIGMAPS}?watch=true", s.proxy.url), &token);
            pending.push(tokio::spawn(async move { conn.send(req).await }));
        }
        let started = Instant::now();
        let other = tokio::time::timeout(
            Duration::from_secs(10),
            conn.get(&s.proxy.url, "/version", Some(&token)),
        )
        .await
        .expect("a GET hung behind the open watches");
        assert_eq!(other.0, 200);
        for p in pending {
            let resp =
                tokio::time::timeout(Duration::from_secs(10).saturating_sub(started.elapsed()), p)
                    .await
                    .expect("a watch did not get its response headers")
                    .unwrap()
                    .unwrap();
            assert_eq!(resp.status(), 200);
            bodies.push(resp.into_body());
        }
        eventually("all watches open upstream", Duration::from_secs(5), || {
            s.upstream.open_watches() == watches
        })
        .await;
        assert_eq!(
            s.upstream.push_event(r#"{"type":"ADDED","object":{}}"#),
            watches
        );
        for body in &mut bodies {
            tokio::time::timeout(Duration::from_secs(5), next_line(body))
                .await
                .unwrap();
        }
    });
}

#[test]
fn long_running_requests_are_capped_per_identity() {
    let s = Setup::with(
        |c| ProxyConfig {
            max_streams_per_identity: 2,
            ..c
        },
        ServeLimits::default(),
    );
    let (_, token) = s.user();
    let (_, other) = s.user();
    let conn = s.connect(true);
    s.rt.block_on(async {
        let watch = |t: &str| get(format!("{}{CONFIGMAPS}?watch=1", s.proxy.url), t);
        let first = conn.send(watch(&token)).await.unwrap();
        let second = conn.send(watch(&token)).await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(second.status(), 200);
        // The third stream of the same identity is refused, as is a `logs -f`-style request.
        let (code, headers, body) = read_all(conn.send(watch(&token)).await.unwrap()).await;
        assert_eq!(code, 429);
        assert!(headers.contains_key(http::header::RETRY_AFTER));
        assert_status(&body, 429, "TooManyRequests");
        let follow = get(format!("{}{CONFIGMAPS}?follow=yes", s.proxy.url), &token);
        assert_eq!(read_all(conn.send(follow).await.unwrap()).await.0, 429);
        // Short requests and other identities are unaffected.
        assert_eq!(
            conn.get(&s.proxy.url, "/version", Some(&token)).await.0,
            200
        );
        let theirs = conn.send(watch(&other)).await.unwrap();
        assert_eq!(theirs.status(), 200);
        // Closing a watch frees its slot.
        drop(first);
        eventually("the slot to free up", Duration::from_secs(5), || {
            s.upstream.open_watches() == 2
        })
        .await;
        let again = conn.send(watch(&token)).await.unwrap();
        assert_eq!(again.status(), 200);
    });
}

#[test]
fn upgrades_are_spliced_both_ways() {
    let s = Setup::new();
    let (user, token) = s.user();
    s.rt.block_on(async {
        let (mut tls, head) = open_exec(&s, &token).await;
        let resp = head.to_ascii_lowercase();
        assert!(resp.contains("upgrade: spdy/3.1"), "{resp}");
        assert!(resp.contains("connection: upgrade"), "{resp}");
        eventually("the upgrade gauge", Duration::from_secs(5), || {
            metric(&s.proxy, "daas_proxy_open_upgrades") == 1.0
        })
        .await;

        for msg in [&b"hello through the proxy"[..], &[0u8, 1, 2, 255, 254][..]] {
            tls.write_all(msg).await.unwrap();
            let mut echo = vec![0u8; msg.len()];
            tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut echo))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(echo, msg);
        }
        drop(tls);
        eventually("the upgrade gauge to drop", Duration::from_secs(5), || {
            metric(&s.proxy, "daas_proxy_open_upgrades") == 0.0
        })
        .await;
    });
    let recorded = s.upstream.recorded();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(
        r.version,
        Version::HTTP_11,
        "upgrades need HTTP/1.1 upstream"
    );
    assert_eq!(r.one("upgrade").as_deref(), Some("SPDY/3.1"));
    assert_eq!(
        r.one("connection").map(|c| c.to_ascii_lowercase()),
        Some("upgrade".into())
    );
    assert_eq!(
        r.one("x-stream-protocol-version").as_deref(),
        Some("v4.channel.k8s.io")
    );
    assert_eq!(
        r.one("x-remote-user"),
        Some(format!("sui:{}", user.address()))
    );
    assert_never_forwarded(&recorded, &token);
}

#[test]
fn large_bodies_arrive_whole() {
    let s = Setup::new();
    let (_, token) = s.user();
    let size = 8 * 1024 * 1024;
    let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for http2 in [false, true] {
        s.upstream.clear();
        let conn = s.connect(http2);
        let (status, _, resp) = s.rt.block_on(async {
            let req = Request::post(format!("{}{CONFIGMAPS}", s.proxy.url))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .unwrap();
            read_all(conn.send(req).await.unwrap()).await
        });
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&resp));
        let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
        assert_eq!(v["receivedBytes"], size, "http2={http2}");
        assert_eq!(s.upstream.recorded()[0].method, "POST");
    }
}

// ---- Upstream TLS ---------------------------------------------------------------------------

#[test]
fn an_upstream_outside_the_configured_ca_gets_nothing() {
    let upstream = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let wrong = Ca::new("some other CA");
    let tls = UpstreamTls {
        ca_pem: wrong.pem.into_bytes(),
        ..upstream.tls()
    };
    let config = ProxyConfig {
        upstream: Some(UpstreamConfig::new(&upstream.url, tls).unwrap()),
        bootstrap_rbac: false,
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start(&tmp.path().join("tls"), config);
    let token = proxy.staker(Role::User).token(proxy.cluster, 0);
    let rt = client_runtime();
    let cc = proxy_client_config(&proxy);
    let (status, _, body) = rt.block_on(async {
        Conn::connect(proxy.addr, cc, true)
            .await
            .get(&proxy.url, "/api", Some(&token))
            .await
    });
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert_status(&body, 502, "ServiceUnavailable");
    assert!(upstream.recorded().is_empty());
}

#[test]
fn the_upstream_requires_the_front_proxy_client_certificate() {
    let upstream = Upstream::start();
    let rt = client_runtime();

    // Directly: no client certificate, or one from the wrong CA, is refused; ours works.
    let wrong_ca = Ca::new("cluster client CA, not front-proxy");
    let (wrong_cert, wrong_key) = wrong_ca.issue_client("front-proxy-client");
    rt.block_on(async {
        for client in [None, Some((wrong_cert.as_str(), wrong_key.as_str()))] {
            let cc = client_config(&upstream.ca_pem, client, &[b"http/1.1"]);
            // TLS 1.3: the client may finish its side first; the refusal then shows on read.
            if let Ok(mut tls) = tls_connect(upstream.addr, cc).await {
                let _ = tls
                    .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
                    .await
                    .unwrap();
                assert!(matches!(read, Ok(0) | Err(_)), "accepted: {read:?}");
            }
        }
        let cc = client_config(
            &upstream.ca_pem,
            Some((&upstream.client_cert_pem, &upstream.client_key_pem)),
            &[b"h2"],
        );
        let (status, _, _) = Conn::connect(upstream.addr, cc, true)
            .await
            .get(&upstream.url, "/version", None)
            .await;
        assert_eq!(status, 200);
    });
    assert_eq!(upstream.recorded().len(), 1);
    let refused = upstream.rejected_handshakes();
    assert!(refused >= 2, "refused {refused}");

    // Through a proxy configured with a client certificate the upstream does not accept.
    let tmp = tempfile::tempdir().unwrap();
    let tls = UpstreamTls {
        client_cert_pem: wrong_cert.into_bytes(),
        client_key_pem: wrong_key.into_bytes(),
        ..upstream.tls()
    };
    let proxy = RunningProxy::start(
        &tmp.path().join("tls"),
        ProxyConfig {
            upstream: Some(UpstreamConfig::new(&upstream.url, tls).unwrap()),
            bootstrap_rbac: false,
            ..ProxyConfig::default()
        },
    );
    let token = proxy.staker(Role::User).token(proxy.cluster, 0);
    let cc = proxy_client_config(&proxy);
    let (status, _, body) = rt.block_on(async {
        Conn::connect(proxy.addr, cc, false)
            .await
            .get(&proxy.url, "/api", Some(&token))
            .await
    });
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert_eq!(upstream.recorded().len(), 1, "nothing new was served");
    assert!(upstream.rejected_handshakes() > refused);
}

// ---- Slow clients and a slow upstream -------------------------------------------------------

/// Seconds until the server closes `stream` (EOF or error), reading whatever it sends; `None`
/// if it is still open after `limit`.
async fn time_to_close<S: tokio::io::AsyncRead + Unpin>(
    mut stream: S,
    limit: Duration,
) -> Option<f64> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed().as_secs_f64()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn slow_and_silent_clients_are_disconnected() {
    let limits = ServeLimits {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    };
    let s = Setup::with(|c| c, limits);
    let (_, token) = s.user();
    let addr = s.proxy.addr;
    let ca = s.proxy.ca_pem.clone();
    s.rt.block_on(async {
        let tls = |alpn: &'static [u8]| {
            let cc = client_config(&ca, None, &[alpn]);
            async move { tls_connect(addr, cc).await.unwrap() }
        };
        let mut slow = Vec::new();
        // 1. A partial request head, then silence (classic slowloris).
        let mut partial = tls(b"http/1.1").await;
        partial
            .write_all(b"GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
            .await
            .unwrap();
        slow.push((
            "partial head",
            tokio::spawn(time_to_close(partial, Duration::from_secs(6))),
        ));
        // 2. TLS done, then not a single byte.
        let silent = tls(b"http/1.1").await;
        slow.push((
            "silent after TLS",
            tokio::spawn(time_to_close(silent, Duration::from_secs(6))),
        ));
        // 3. Half an HTTP/2 connection preface.
        let mut preface = tls(b"h2").await;
        preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        slow.push((
            "partial h2 preface",
            tokio::spawn(time_to_close(preface, Duration::from_secs(6))),
        ));
        // 4. The whole HTTP/2 preface, then no SETTINGS frame.
        let mut no_settings = tls(b"h2").await;
        no_settings
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        slow.push((
            "h2 preface without SETTINGS",
            tokio::spawn(time_to_close(no_settings, Duration::from_secs(6))),
        ));
        // 5. A TCP connection that never starts TLS.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.push((
            "no TLS handshake",
            tokio::spawn(time_to_close(tcp, Duration::from_secs(6))),
        ));
        // 6. Half a ClientHello record.
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        slow.push((
            "partial ClientHello",
            tokio::spawn(time_to_close(half, Duration::from_secs(6))),
        ));

        // Meanwhile a normal client is served.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let conn = Conn::connect(addr, client_config(&ca, None, &[b"h2"]), false).await;
        let (status, _, _) = conn.get(&s.proxy.url, "/version", Some(&token)).await;
        assert_eq!(status, 200);

        let mut results = Vec::new();
        for (what, t) in slow {
            results.push((what, t.await.unwrap()));
        }
        for (what, secs) in &results {
            assert!(
                secs.is_some_and(|s| (0.7..4.0).contains(&s)),
                "{what}: closed after {secs:.2?}s (None: still open after 6s), limit 1s; \
                 all: {results:.2?}"
            );
        }
    });
    assert_eq!(s.upstream.recorded().len(), 1, "only the normal request");
}

#[test]
fn a_slow_upstream_gets_a_504_status() {
    let s = Setup::with(
        |c| ProxyConfig {
            response_header_timeout: Duration::from_millis(500),
            ..c
        },
        ServeLimits::default(),
    );
    let (_, token) = s.user();
    let conn = s.connect(true);
    let (fast, slow, elapsed) = s.rt.block_on(async {
        let fast = conn
            .get(&s.proxy.url, "/version?delay_ms=50", Some(&token))
            .await;
        let start = Instant::now();
        let slow = conn
            .get(&s.proxy.url, "/version?delay_ms=3000", Some(&token))
            .await;
        (fast, slow, start.elapsed())
    });
    assert_eq!(fast.0, 200);
    assert_eq!(slow.0, 504, "{}", String::from_utf8_lossy(&slow.2));
    assert_status(&slow.2, 504, "Timeout");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
}

// ---- TokenReview webhook --------------------------------------------------------------------

/// POSTs (or `method`s) `body` to the webhook; returns status and body.
fn webhook(s: &Setup, method: http::Method, body: Vec<u8>) -> (StatusCode, Bytes) {
    let url = s.proxy.webhook_url.clone();
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cc = proxy_client_config(&s.proxy);
    s.rt.block_on(async move {
        let conn = Conn::connect(addr, cc, false).await;
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let (status, _, body) = read_all(conn.send(req).await.unwrap()).await;
        (status, body)
    })
}

fn review(token: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]},
    }))
    .unwrap()
}

#[test]
fn webhook_reviews_tokens() {
    let s = Setup::new();
    let (user, token) = s.user();
    let (status, body) = webhook(&s, http::Method::POST, review(&token));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["apiVersion"], "authentication.k8s.io/v1", "{v}");
    assert_eq!(v["kind"], "TokenReview", "{v}");
    let st = &v["status"];
    assert_eq!(st["authenticated"], true, "{v}");
    assert_eq!(st["user"]["username"], format!("sui:{}", user.address()));
    assert_eq!(st["user"]["uid"], user.stake.to_string());
    assert_eq!(
        st["user"]["groups"],
        serde_json::json!(["k3s-daas:user", "system:authenticated"])
    );
    assert_eq!(
        st["user"]["extra"]["k3s-daas.io/stake-id"],
        serde_json::json!([user.stake.to_string()])
    );
    assert!(!String::from_utf8_lossy(&body).contains(&token));

    s.proxy.revoke(&user);
    let (status, body) = webhook(&s, http::Method::POST, review(&token));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"]["authenticated"], false, "{v}");
    assert!(v["status"]["user"].is_null(), "{v}");
    let err = v["status"]["error"].as_str().unwrap();
    assert!(!err.is_empty() && !err.contains(&token), "{err}");
    assert!(
        s.upstream.recorded().is_empty(),
        "the webhook never calls upstream"
    );
}

#[test]
fn webhook_refuses_malformed_oversized_and_non_post_requests() {
    let s = Setup::new();
    let (_, token) = s.user();
    let malformed =
        format!(r#"{{"apiVersion":"authentication.k8s.io/v1","spec":{{"token":"{token}""#);
    let (status, body) = webhook(&s, http::Method::POST, malformed.into_bytes());
    assert_eq!(status, 400);
    assert_status(&body, 400, "BadRequest");
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(&token) && !text.contains("apiVersion\":\"auth"),
        "{text}"
    );

    let wrong_shape = br#"{"spec":{"token":42}}"#.to_vec();
    let (status, body) = webhook(&s, http::Method::POST, wrong_shape);
    assert_eq!(status, 400);
    assert!(!String::from_utf8_lossy(&body).contains("42"));

    let mut big = review(&token);
    big.truncate(big.len() - 2);
    big.extend_from_slice(format!(r#","pad":"{}"}}}}"#, "x".repeat(70 * 1024)).as_bytes());
    assert!(big.len() > 64 * 1024);
    let (status, body) = webhook(&s, http::Method::POST, big);
    assert_eq!(status, 413);
    assert_status(&body, 413, "RequestEntityTooLarge");

    let (status, body) = webhook(&s, http::Method::GET, Vec::new());
    assert_eq!(status, 405);
    assert_status(&body, 405, "MethodNotAllowed");
}

// ---- kubectl --------------------------------------------------------------------------------

#[test]
fn kubectl_get_raw_through_the_proxy() {
    let Some(kubectl) = support::peer("KUBECTL", "kubectl") else {
        return;
    };
    let s = Setup::new();
    let (user, token) = s.user();
    let dir = tempfile::tempdir().unwrap();
    let kc = s.proxy.kubeconfig(dir.path(), "user", &token, None);
    let out = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["--request-timeout=20s", "get", "--raw", CONFIGMAPS])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    let recorded = s.upstream.recorded();
    let r = recorded
        .iter()
        .find(|r| r.path_and_query.starts_with(CONFIGMAPS))
        .unwrap_or_else(|| panic!("kubectl's request not seen: {recorded:?}"));
    assert!(r.one("user-agent").unwrap().starts_with("kubectl"));
    assert_eq!(
        r.one("x-remote-user"),
        Some(format!("sui:{}", user.address()))
    );
    assert_never_forwarded(&recorded, &token);

    let expired = user.token_at(s.proxy.cluster, 0, unix_ms_now() - 3_600_000, 60_000);
    let kc = s.proxy.kubeconfig(dir.path(), "expired", &expired, None);
    let out = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["--request-timeout=20s", "get", "--raw", CONFIGMAPS])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("You must be logged in to the server"),
        "kubectl said: {stderr}"
    );
    assert!(!stderr.contains(&expired));
    assert_eq!(
        s.upstream.recorded().len(),
        recorded.len(),
        "401 not forwarded"
    );
}

// ------------------------------------------------------------------------------------------------
// Security review findings (docs/security.md): each of these failed on the code before the fix.

/// Opens `POST …/exec` as an HTTP/1.1 upgrade with `token`; returns the spliced stream and the
/// 101 response head.
async fn open_exec(
    s: &Setup,
    token: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    let config = client_config(&s.proxy.ca_pem, None, &[b"http/1.1"]);
    let mut tls = tls_connect(s.proxy.addr, config).await.unwrap();
    let head = format!(
        "POST /api/v1/namespaces/x/pods/p/exec?command=sh&stdin=true HTTP/1.1\r\n\
         Host: {}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n\
         Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         Content-Length: 0\r\n\r\n",
        s.proxy.addr
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    while !resp.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed before the response head");
        resp.push(b[0]);
    }
    let head = String::from_utf8(resp).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tls, head)
}

/// H2: revoking a credential ends the sessions it opened — watches (HTTP/1.1 and HTTP/2) and
/// upgraded exec tunnels — not only its new requests. Another identity's sessions stay open.
#[test]
fn revocation_ends_open_watches_and_exec_tunnels() {
    let s = Setup::new();
    let (victim, token) = s.user();
    let (_, other_token) = s.user();
    s.rt.block_on(async {
        let watch_url = format!("{}{CONFIGMAPS}?watch=true", s.proxy.url);
        let config = proxy_client_config(&s.proxy);
        let h1 = Conn::connect(s.proxy.addr, config.clone(), false).await;
        let h2 = Conn::connect(s.proxy.addr, config, true).await;
        let mut watches = Vec::new();
        for (conn, t) in [(&h1, &token), (&h2, &token), (&h2, &other_token)] {
            let resp = conn.send(get(watch_url.clone(), t)).await.unwrap();
            assert_eq!(resp.status(), 200);
            watches.push(resp.into_body());
        }
        let (mut exec, _) = open_exec(&s, &token).await;
        eventually("three upstream watches", Duration::from_secs(5), || {
            s.upstream.open_watches() == 3
        })
        .await;
        assert_eq!(metric(&s.proxy, "daas_proxy_open_sessions"), 4.0);
        let event = r#"{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a"}}}"#;
        s.upstream.push_event(event);
        for w in &mut watches {
            assert_eq!(next_line(w).await.trim_end(), event);
        }
        exec.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        exec.read_exact(&mut echo).await.unwrap();

        let revoked_at = Instant::now();
        s.proxy.revoke(&victim);
        for w in &mut watches[..2] {
            let end = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match w.frame().await {
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => return,
                    }
                }
            })
            .await;
            assert!(end.is_ok(), "the revoked watch is still open");
        }
        let mut buf = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(5), exec.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0) | Err(_))),
            "the revoked exec tunnel is still open: {closed:?}"
        );
        let took = revoked_at.elapsed();
        eventually(
            "the proxy to close the revoked upstream watches",
            Duration::from_secs(5),
            || s.upstream.open_watches() == 1,
        )
        .await;
        // The other identity's watch is untouched.
        s.upstream.push_event(event);
        assert_eq!(next_line(&mut watches[2]).await.trim_end(), event);
        eventually("the session gauge", Duration::from_secs(5), || {
            metric(&s.proxy, "daas_proxy_open_sessions") == 1.0
        })
        .await;
        println!("revoked sessions ended {took:?} after the revocation");
    });
}

/// H7: tokens from a key with no stake, each naming a random stake id, cost at most the
/// per-address budget of lookups; the rest is refused before any signature or chain work.
#[test]
fn an_unauthenticated_flood_does_not_reach_the_stake_view() {
    let s = Setup::new();
    let stranger = support::proxy::add_staker(&s.proxy.view, random_address(), Role::User);
    let lookups_before = s.proxy.view.lookups();
    let conn = s.connect(true);
    let mut codes = std::collections::BTreeMap::new();
    s.rt.block_on(async {
        for _ in 0..1000 {
            let forged = Staker {
                key: stranger.key.clone(),
                stake: random_address(),
                role: Role::User,
                node: None,
            };
            let token = forged.token(s.proxy.cluster, 0);
            let (code, _, _) = conn.get(&s.proxy.url, CONFIGMAPS, Some(&token)).await;
            *codes.entry(code.as_u16()).or_insert(0u32) += 1;
        }
    });
    let lookups = s.proxy.view.lookups() - lookups_before;
    // 40 at once, then 20/s for the few seconds the loop takes.
    assert!(
        lookups <= 200,
        "{lookups} lookups for 1000 forged tokens: {codes:?}"
    );
    assert!(codes.get(&429).copied().unwrap_or(0) >= 700, "{codes:?}");
    assert_eq!(codes.get(&200), None, "{codes:?}");
    assert!(s.upstream.recorded().is_empty(), "nothing forwarded");
}

/// H7: one staker minting token after token can neither push another user's verdict out of the
/// cache nor make the proxy verify more than its budget.
#[test]
fn one_staker_cannot_flush_everyone_elses_cached_verdicts() {
    let upstream = Upstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        upstream: Some(upstream.config()),
        bootstrap_rbac: false,
        // Isolate the per-signer budget and per-stake cap from the per-address limit.
        pre_auth_per_ip: RateLimit::unlimited(),
        rate_limits: RoleRateLimits::uniform(RateLimit::unlimited()),
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start_opts(
        &tmp.path().join("tls"),
        config,
        support::proxy::Options {
            auth: Box::new(|c| nautilus_master::auth::AuthConfig {
                cache_capacity: 64,
                // The default burst of 20 cold verifications per signer, with a refill too slow
                // to matter however long the flood takes (at the default 10/s a slow machine
                // refilled enough during the flood to fail the count below).
                cold_per_signer: RateLimit::new(0.001, 20.0),
                ..c
            }),
            ..support::proxy::Options::default()
        },
    );
    let rt = client_runtime();
    let config = proxy_client_config(&proxy);
    let addr = proxy.addr;
    let conn = rt.block_on(async move { Conn::connect(addr, config, true).await });
    let alice = proxy.staker(Role::User);
    let alice_token = alice.token(proxy.cluster, 0);
    let flooder = proxy.staker(Role::User);
    let mut throttled = 0;
    rt.block_on(async {
        let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&alice_token)).await;
        assert_eq!(code, 200);
        for _ in 0..300 {
            let t = flooder.token(proxy.cluster, 0);
            let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&t)).await;
            if code == 429 {
                throttled += 1;
            }
        }
    });
    assert_eq!(
        throttled, 280,
        "the flooder gets its burst of 20 cold verifications, then 429"
    );
    let lookups = proxy.view.lookups();
    rt.block_on(async {
        let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&alice_token)).await;
        assert_eq!(code, 200);
    });
    assert_eq!(
        proxy.view.lookups(),
        lookups,
        "alice's verdict was still cached (no lookup)"
    );
    assert!(proxy.proxy.authenticator().cache_stats().entries <= 1 + 16);
}

/// H8: a tenant that leaves large responses unread on HTTP/2 does not stall another tenant on
/// the shared upstream connection.
#[test]
fn a_stalled_reader_does_not_stall_other_tenants() {
    // One upstream connection for everybody: the worst case for sharing.
    let s = Setup::with(
        |c| ProxyConfig {
            upstream_connections: 1,
            ..c
        },
        ServeLimits::default(),
    );
    let (_, slow_token) = s.user();
    let (_, fast_token) = s.user();
    let big = format!("{}{CONFIGMAPS}/big?bytes={}", s.proxy.url, 3 * 1024 * 1024);
    let slow = {
        let config = proxy_client_config(&s.proxy);
        let addr = s.proxy.addr;
        s.rt.block_on(async move { Conn::connect_h2_window(addr, config, 0).await })
    };
    let fast = s.connect(true);
    s.rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let resp = slow.send(get(big.clone(), &slow_token)).await.unwrap();
            assert_eq!(resp.status(), 200);
            held.push(resp); // never read
        }
        // Give the proxy time to fill what it can.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let small = tokio::time::timeout(
            Duration::from_secs(2),
            fast.get(
                &s.proxy.url,
                &format!("{CONFIGMAPS}/big?bytes=1000"),
                Some(&fast_token),
            ),
        )
        .await;
        let (code, _, body) =
            small.expect("the other tenant's small GET stalled behind unread data");
        assert_eq!((code, body.len()), (StatusCode::OK, 1000));
        println!("small GET next to 9 MiB unread: {:?}", started.elapsed());
        drop(held);
    });
}

/// M2: connections that sit idle are closed, so a client holding many cannot lock others out;
/// and one address cannot take more than its share of connections.
#[test]
fn idle_connections_are_closed_and_capped_per_address() {
    let limits = ServeLimits {
        max_connections: 8,
        max_connections_per_ip: 6,
        idle_timeout: Duration::from_millis(800),
        ..ServeLimits::default()
    };
    let s = Setup::with(|c| c, limits);
    let (_, token) = s.user();
    s.rt.block_on(async {
        // Six from 127.0.0.1 (its cap), each with one request, then idle and kept open.
        let mut held = Vec::new();
        for _ in 0..6 {
            let c = Conn::connect(s.proxy.addr, proxy_client_config(&s.proxy), true).await;
            let (code, _, _) = c.get(&s.proxy.url, "/version", None).await;
            assert_eq!(code, 401);
            held.push(c);
        }
        // A seventh from the same address is refused at accept.
        let config = proxy_client_config(&s.proxy);
        let refused = tls_connect(s.proxy.addr, config.clone()).await;
        let refused = match refused {
            Err(_) => true,
            Ok(mut tls) => matches!(
                tokio::time::timeout(Duration::from_secs(2), tls.read(&mut [0u8; 1])).await,
                Ok(Ok(0) | Err(_))
            ),
        };
        assert!(refused, "a seventh connection from one address was kept");
        // Another address still gets in (127.0.0.2 is loopback too).
        let other = connect_from([127, 0, 0, 2], s.proxy.addr, config.clone(), &s.proxy.url).await;
        assert_eq!(other, StatusCode::UNAUTHORIZED);
        // Once idle, the held connections are closed and their slots free.
        let started = Instant::now();
        loop {
            let c = Conn::try_connect(s.proxy.addr, config.clone(), true).await;
            if let Some(c) = c
                && let Ok(Ok(resp)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    c.send(get(format!("{}{CONFIGMAPS}", s.proxy.url), &token)),
                )
                .await
            {
                assert_eq!(resp.status(), 200);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "idle connections were never closed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(held);
    });
}

/// Connects from `local` (a loopback alias) and sends one unauthenticated GET.
async fn connect_from(
    local: [u8; 4],
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    base: &str,
) -> StatusCode {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let conn = Conn::handshake(tcp, config, true).await;
    conn.get(base, "/version", None).await.0
}

/// M3: the proxy forwards nothing until it has verified that the API server reads identity only
/// from headers it strips — not while the check cannot complete, and not once it finds the
/// settings unsafe; it notices when they change.
#[test]
fn nothing_is_forwarded_until_the_request_header_settings_are_verified() {
    let upstream = Upstream::start();
    upstream.set_request_headers(support::upstream::RequestHeaderConfig::Unavailable);
    let tmp = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        upstream: Some(upstream.config()),
        header_check_interval: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = RunningProxy::start_opts(
        &tmp.path().join("tls"),
        config,
        support::proxy::Options {
            require_bootstrap: false,
            ..support::proxy::Options::default()
        },
    );
    let rt = client_runtime();
    let admin = proxy.staker(Role::Admin);
    let token = admin.token(proxy.cluster, 0);
    let client_config = proxy_client_config(&proxy);
    let addr = proxy.addr;
    let conn = rt.block_on(async move { Conn::connect(addr, client_config, true).await });
    let forwarded = |u: &Upstream| {
        u.recorded()
            .iter()
            .filter(|r| r.path_and_query.starts_with(CONFIGMAPS))
            .count()
    };
    rt.block_on(async {
        // Unavailable for a while, then not published, then unsafe: 503 all along, nothing
        // forwarded.
        for phase in [
            support::upstream::RequestHeaderConfig::Unavailable,
            support::upstream::RequestHeaderConfig::Missing,
            support::upstream::RequestHeaderConfig::Unsafe,
        ] {
            upstream.set_request_headers(phase);
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&token)).await;
                assert_eq!(code, 503, "{phase:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        assert_eq!(forwarded(&upstream), 0);
        upstream.set_request_headers(support::upstream::RequestHeaderConfig::Safe);
        eventually(
            "the settings to be verified",
            Duration::from_secs(15),
            || proxy.proxy.request_headers_verified(),
        )
        .await;
        let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&token)).await;
        assert_eq!(code, 200);
        // Restarted with unsafe settings: noticed at the next check, forwarding stops.
        upstream.set_request_headers(support::upstream::RequestHeaderConfig::Unsafe);
        eventually("the change to be noticed", Duration::from_secs(5), || {
            !proxy.proxy.request_headers_verified()
        })
        .await;
        let (code, _, _) = conn.get(&proxy.url, CONFIGMAPS, Some(&token)).await;
        assert_eq!(code, 503);
    });
    assert_eq!(forwarded(&upstream), 1);
}

/// L6: a refused token's answer says what the holder can check offline, and nothing the chain
/// told the proxy about the record (epochs, amounts).
#[test]
fn refusals_do_not_echo_chain_details() {
    let s = Setup::new();
    let (staker, token) = s.user();
    s.proxy.revoke(&staker);
    let conn = s.connect(true);
    let (code, _, body) =
        s.rt.block_on(conn.get(&s.proxy.url, CONFIGMAPS, Some(&token)));
    assert_eq!(code, 401);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("epoch"), "{text}");
    assert!(text.contains("does not authorize it"), "{text}");
    let expired = staker.token_at(s.proxy.cluster, 1, unix_ms_now() - 7_200_000, 3_600_000);
    let (code, _, body) =
        s.rt.block_on(conn.get(&s.proxy.url, CONFIGMAPS, Some(&expired)));
    assert_eq!(code, 401);
    assert!(String::from_utf8_lossy(&body).contains("expired"));
}
