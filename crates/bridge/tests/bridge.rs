//! The parent bridge and the enclave side, in one process, over Unix sockets standing in for
//! vsock. vsock loopback (CID 1) needs the `vsock_loopback` module, which this machine and
//! many CI hosts lack; the code under test is the same, only the transport differs (see
//! `real_vsock.rs` for the opt-in test on a host that has it).

mod support;

use std::time::Duration;

use daas_bridge::header::{self, Status};
use daas_bridge::{
    CredentialsError, EgressError, EgressForward, EnclaveConfig, EnclaveError, EnclaveSide, Limits,
    PARENT_CID, Target,
};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn ingress_round_trip_reaches_the_enclave_service() {
    let pair = Setup::default().start().await;

    let mut client = TcpStream::connect(pair.parent.ingress_addrs()[0])
        .await
        .expect("connect ingress");
    client.write_all(b"GET /version").await.expect("write");
    client.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"GET /version");

    let p = pair.parent.counters().snapshot();
    assert_eq!(p.ingress_connections, 1);
    assert_eq!(pair.enclave.counters().snapshot().ingress_connections, 1);
    pair.shutdown().await;
}

#[tokio::test]
async fn large_transfers_flow_both_ways_with_half_close() {
    const UP: usize = 8 * 1024 * 1024 + 13;
    const DOWN: usize = 6 * 1024 * 1024 + 7;
    let target = echo_server().await.to_string();
    let pair = Setup {
        allow: vec![target.clone()],
        forward: vec![target],
        service: Some(drain_then_reply_server(DOWN).await),
        ..Setup::default()
    }
    .start()
    .await;

    // Ingress: the request is read to EOF (our half-close) before the reply starts.
    let mut client = TcpStream::connect(pair.parent.ingress_addrs()[0])
        .await
        .expect("connect ingress");
    let up = pattern(UP, 1);
    client.write_all(&up).await.expect("upload");
    client.shutdown().await.expect("half-close");
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.expect("download");
    assert_eq!(reply.len(), 8 + DOWN);
    assert_eq!(
        reply[..8],
        checksum(&up).to_be_bytes(),
        "the service saw every byte in order"
    );
    assert_eq!(reply[8..], pattern(DOWN, 7)[..]);

    // Egress: simultaneous upload and echo through the enclave forwarder and the parent.
    let forwarder = pair.enclave.egress_addrs()[0].1;
    let stream = TcpStream::connect(forwarder)
        .await
        .expect("connect forwarder");
    let (mut r, mut w) = stream.into_split();
    let sent = pattern(UP, 3);
    let expected = checksum(&sent);
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.expect("upload");
        w.shutdown().await.expect("half-close");
    });
    let mut echoed = Vec::new();
    r.read_to_end(&mut echoed).await.expect("echo");
    writer.await.expect("writer");
    assert_eq!(echoed.len(), UP);
    assert_eq!(checksum(&echoed), expected);

    let p = pair.parent.counters().snapshot();
    // Directions are relative to the enclave: the ingress upload and the egress echo flow in,
    // the ingress reply and the egress upload flow out.
    assert_eq!(p.bytes_in, (UP + UP) as u64, "{p:?}");
    assert_eq!(p.bytes_out, (8 + DOWN + UP) as u64, "{p:?}");
    pair.shutdown().await;
}

#[tokio::test]
async fn egress_to_an_allowed_target_works_end_to_end() {
    let target = echo_server().await.to_string();
    let pair = Setup {
        allow: vec![target.clone()],
        forward: vec![target.clone()],
        ..Setup::default()
    }
    .start()
    .await;

    let (t, addr) = pair.enclave.egress_addrs()[0].clone();
    assert_eq!(t.to_string(), target);
    let mut s = TcpStream::connect(addr).await.expect("connect forwarder");
    s.write_all(b"etcd request").await.expect("write");
    let mut got = [0u8; 12];
    s.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"etcd request");
    drop(s);

    // The dialer (no local listener) reaches it too.
    let mut s = pair
        .enclave
        .dialer()
        .dial(&target.parse().expect("target"))
        .await
        .expect("dial allowed target");
    s.write_all(b"x").await.expect("write");
    let mut one = [0u8; 1];
    s.read_exact(&mut one).await.expect("read");
    assert_eq!(pair.parent.counters().snapshot().egress_connections, 2);
    assert_eq!(pair.parent.counters().snapshot().denied, 0);
    pair.shutdown().await;
}

/// Opens a raw connection to the parent's egress port as the enclave would.
async fn raw_egress(vs: &Vsock) -> daas_bridge::BoxStream {
    vs.enclave
        .connect(PARENT_CID, EGRESS_PORT)
        .await
        .expect("connect parent egress port")
}

#[tokio::test]
async fn the_parent_denies_targets_off_its_list_even_if_the_enclave_asks() {
    let allowed = echo_server().await.to_string();
    let other = echo_server().await.to_string();
    // The enclave's list is wider than the parent's.
    let pair = Setup {
        allow: vec![allowed],
        enclave_also: vec![other.clone()],
        ..Setup::default()
    }
    .start()
    .await;

    // A hand-made header for a target the parent does not list.
    let mut s = raw_egress(&pair.vs).await;
    let target: Target = other.parse().expect("target");
    s.write_all(&header::encode(&target))
        .await
        .expect("send header");
    s.write_all(b"data that must go nowhere")
        .await
        .expect("send data");
    let reply = header::read_reply(&mut s).await.expect("reply");
    assert_eq!(reply.status, Status::Denied);
    assert!(
        reply.reason.contains("not on the parent's allow-list"),
        "{}",
        reply.reason
    );
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "the parent closes after DENIED");

    // The enclave's dialer gets the parent's refusal as an error.
    let err = match pair.enclave.dialer().dial(&target).await {
        Ok(_) => panic!("the parent must refuse {target}"),
        Err(e) => e,
    };
    assert!(
        matches!(
            &err,
            EgressError::Refused {
                status: Status::Denied,
                ..
            }
        ),
        "{err}"
    );
    let p = pair.parent.counters().snapshot();
    assert_eq!(p.denied, 2);
    assert_eq!(p.bytes_in + p.bytes_out, 0, "nothing was forwarded");
    pair.shutdown().await;
}

#[tokio::test]
async fn the_enclave_refuses_targets_off_its_own_list() {
    let listed = echo_server().await.to_string();
    let unlisted = echo_server().await.to_string();
    // The parent would allow both; the enclave must not rely on it.
    let pair = Setup {
        allow: vec![listed.clone()],
        parent_also: vec![unlisted.clone()],
        ..Setup::default()
    }
    .start()
    .await;

    let err = EnclaveSide::start(
        EnclaveConfig {
            egress_port: Some(EGRESS_PORT),
            allow: allow(std::slice::from_ref(&listed)),
            egress: vec![EgressForward {
                target: unlisted.parse().expect("target"),
                listen: "127.0.0.1:0".parse().expect("addr"),
            }],
            ..EnclaveConfig::default()
        },
        pair.vs.enclave.clone(),
    )
    .await
    .err()
    .expect("a forwarder for an unlisted target is refused");
    assert!(matches!(err, EnclaveError::NotAllowed(_)), "{err}");
    assert!(
        err.to_string().contains("not on the enclave's allow-list"),
        "{err}"
    );

    let err = match pair
        .enclave
        .dialer()
        .dial(&unlisted.parse().expect("target"))
        .await
    {
        Ok(_) => panic!("the enclave must refuse {unlisted}"),
        Err(e) => e,
    };
    assert!(matches!(err, EgressError::NotAllowed(_)), "{err}");
    assert_eq!(pair.enclave.counters().snapshot().denied, 1);
    assert_eq!(
        pair.parent.counters().snapshot().egress_connections,
        0,
        "no header was ever sent to the parent"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn malformed_oversized_and_truncated_headers_are_refused_without_harming_others() {
    let target = echo_server().await.to_string();
    let pair = Setup {
        allow: vec![target.clone()],
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Setup::default()
    }
    .start()
    .await;

    // A good connection opened first, used after the bad ones.
    let mut good = pair
        .enclave
        .dialer()
        .dial(&target.parse().expect("target"))
        .await
        .expect("dial");

    let valid = header::encode(&target.parse().expect("target"));
    let mut bad_magic = valid.clone();
    bad_magic[..4].copy_from_slice(b"GET ");
    let mut oversized = valid.clone();
    oversized[5] = 254;
    let mut long_garbage = b"DAEG\x01\xff".to_vec();
    long_garbage.extend(std::iter::repeat_n(b'a', 4096));
    let mut trailing_dot = b"DAEG\x01\x0aexample.c.".to_vec();
    trailing_dot.extend_from_slice(&443u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("bad magic", bad_magic, false),
        ("host length over 253", oversized, false),
        ("4 KiB of garbage", long_garbage, false),
        ("non-canonical host", trailing_dot, false),
        (
            "truncated then closed",
            valid[..valid.len() - 1].to_vec(),
            true,
        ),
        ("truncated and stalled", valid[..7].to_vec(), false),
    ];
    let n = cases.len() as u64;
    let mut checks = Vec::new();
    for (name, bytes, close) in cases {
        let mut s = raw_egress(&pair.vs).await;
        checks.push(tokio::spawn(async move {
            let _ = s.write_all(&bytes).await;
            if close {
                let _ = s.shutdown().await;
            }
            match header::read_reply(&mut s).await {
                Ok(reply) => {
                    assert_eq!(reply.status, Status::BadHeader, "{name}: {}", reply.reason)
                }
                Err(e) => panic!("{name}: expected a BAD-HEADER reply, got {e}"),
            }
        }));
    }
    for c in checks {
        c.await.expect("case");
    }
    good.write_all(b"still here")
        .await
        .expect("good connection writes");
    let mut got = [0u8; 10];
    good.read_exact(&mut got)
        .await
        .expect("good connection reads");
    assert_eq!(&got, b"still here");
    let p = pair.parent.counters().snapshot();
    assert_eq!(p.bad_headers, n);
    assert_eq!(p.egress_connections, n + 1);
    pair.shutdown().await;
}

#[tokio::test]
async fn credentials_are_relayed_from_imdsv2() {
    let (imds_url, log) = imds_stand_in(true).await;
    let pair = Setup {
        imds: Some(imds_url),
        ..Setup::default()
    }
    .start()
    .await;

    let client = pair
        .enclave
        .credentials()
        .expect("credentials port configured");
    let c = client.fetch().await.expect("credentials relayed");
    assert_eq!(c.access_key_id.expose(), ACCESS_KEY_ID);
    assert_eq!(c.secret_access_key.expose(), SECRET_ACCESS_KEY);
    assert_eq!(c.session_token.expose(), SESSION_TOKEN);
    assert_eq!(c.region, REGION);
    assert_eq!(
        c.expiration
            .map(|e| humantime::format_rfc3339_seconds(e).to_string()),
        Some("2099-12-06T16:00:00Z".to_owned())
    );
    // A second request is answered from the cache (the credentials are far from expiry).
    let again = client.fetch().await.expect("second fetch");
    assert_eq!(again.session_token.expose(), SESSION_TOKEN);

    use std::sync::atomic::Ordering::SeqCst;
    assert!(
        log.token_puts.load(SeqCst) >= 1,
        "IMDSv2 session token was requested"
    );
    assert_eq!(log.refused.load(SeqCst), 0, "every GET carried the token");
    assert_eq!(
        log.authorized_gets.load(SeqCst),
        3,
        "region, role, credentials: once"
    );
    assert_eq!(pair.parent.counters().snapshot().credentials_requests, 2);

    // A malformed request gets nothing and does not disturb the service.
    let mut s = pair
        .vs
        .enclave
        .connect(PARENT_CID, CREDENTIALS_PORT)
        .await
        .expect("connect");
    s.write_all(b"GIVE").await.expect("write");
    s.shutdown().await.expect("close");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
    assert!(client.fetch().await.is_ok());
    pair.shutdown().await;
}

#[tokio::test]
async fn an_imds_failure_reaches_the_enclave_as_a_named_error() {
    let (imds_url, _log) = imds_stand_in(false).await;
    let pair = Setup {
        imds: Some(imds_url),
        ..Setup::default()
    }
    .start()
    .await;
    let err = pair
        .enclave
        .credentials()
        .expect("configured")
        .fetch()
        .await
        .expect_err("no role");
    assert!(matches!(err, CredentialsError::Parent(_)), "{err}");
    assert!(
        err.to_string()
            .contains("IMDS answered 404 Not Found for the role name"),
        "{err}"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_connections() {
    const N: usize = 200;
    let target = echo_server().await.to_string();
    let pair = Setup {
        allow: vec![target.clone()],
        forward: vec![target],
        ..Setup::default()
    }
    .start()
    .await;
    let ingress = pair.parent.ingress_addrs()[0];
    let forwarder = pair.enclave.egress_addrs()[0].1;

    let mut tasks = Vec::new();
    for i in 0..N {
        let addr = if i % 2 == 0 { ingress } else { forwarder };
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let data = pattern(4096 + i, i as u8);
            s.write_all(&data).await.expect("write");
            s.shutdown().await.expect("half-close");
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, data, "connection {i} got its own bytes back");
        }));
    }
    for t in tasks {
        t.await.expect("connection task");
    }
    let p = pair.parent.counters().snapshot();
    assert_eq!(p.ingress_connections + p.egress_connections, N as u64);
    assert_eq!(p.failures, 0);
    pair.shutdown().await;
}

#[tokio::test]
async fn configuration_errors_are_named_before_anything_serves() {
    let vs = vsock();
    let err = daas_bridge::Bridge::start(
        daas_bridge::BridgeConfig {
            enclave_cid: 3,
            ingress: vec![],
            egress: None,
            credentials: None,
            limits: Limits::default(),
        },
        vs.parent.clone(),
    )
    .await
    .err()
    .expect("CID 3 is the parent");
    assert_eq!(
        err.to_string(),
        "enclave CID 3 is reserved (enclave CIDs are 4..4294967294)"
    );

    let err = EnclaveSide::start(
        EnclaveConfig {
            egress_port: Some(EGRESS_PORT),
            allow: allow(&["10.0.0.1:2379".to_owned()]),
            egress: vec![EgressForward {
                target: "10.0.0.1:2379".parse().expect("target"),
                listen: "0.0.0.0:2379".parse().expect("addr"),
            }],
            ..EnclaveConfig::default()
        },
        vs.enclave.clone(),
    )
    .await
    .err()
    .expect("non-loopback forwarder refused");
    assert!(matches!(err, EnclaveError::NotLoopback { .. }), "{err}");

    // The Unix stand-in's only access control is the directory's mode.
    let open_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        open_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let err = daas_bridge::UnixVsock::new(open_dir.path(), PARENT_CID).expect_err("0755 refused");
    assert!(err.to_string().contains("needs a 0700 directory"), "{err}");

    let config: EnclaveConfig = serde_json::from_str(
        r#"{"egress_port": 8000, "allow": ["10.0.0.1:2379"],
            "egress": [{"target": "10.0.0.1:2379", "listen": "127.0.0.1:2379"}],
            "ingress": [{"vsock_port": 8080, "connect": "127.0.0.1:8080"}],
            "credentials_port": 8001, "limits": {"idle_timeout": "10m"}}"#,
    )
    .expect("config parses");
    assert_eq!(config.parent_cid, PARENT_CID);
    assert_eq!(config.limits.idle_timeout, Duration::from_secs(600));
    let bad = serde_json::from_str::<EnclaveConfig>(r#"{"allow": ["*.amazonaws.com:443"]}"#)
        .expect_err("wildcard refused");
    assert!(
        bad.to_string().contains("wildcards are not allowed"),
        "{bad}"
    );
}
