//! The EKS credentials sources (web identity and Pod Identity) never log the tokens they read
//! or the credentials they get, at any level, on success or failure. Its own file: it installs a
//! process-wide subscriber capturing TRACE output.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use daas_bridge::{ContainerConfig, CredentialsSource, WebIdentityConfig};
use support::eks::*;
use support::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn relay_once(source: CredentialsSource) -> Result<(), String> {
    let pair = Setup {
        credentials: Some((source, Some(REGION.to_owned()))),
        ..Setup::default()
    }
    .start()
    .await;
    let fetched = pair
        .enclave
        .credentials()
        .expect("configured")
        .fetch()
        .await;
    if let Ok(creds) = &fetched {
        // Even formatting the whole struct into a log line shows nothing secret.
        tracing::info!(?creds, "Fetched credentials");
    }
    pair.shutdown().await;
    fetched.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_credentials_never_appear_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().expect("tempdir");
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let web = |token: &str| {
        let path = dir.path().join(format!("web-{}", token.len()));
        std::fs::write(&path, token).expect("write token");
        CredentialsSource::WebIdentity(WebIdentityConfig {
            role_arn: ROLE_ARN.to_owned(),
            token_file: path,
            session_name: SESSION_NAME.to_owned(),
            duration_seconds: None,
            endpoint: Some(sts.url.clone()),
            extra_ca: Some(sts.ca_file.path().to_path_buf()),
        })
    };
    relay_once(web(WEB_TOKEN))
        .await
        .expect("web identity relayed");
    let refused = relay_once(web(EXPIRED_WEB_TOKEN))
        .await
        .expect_err("expired");
    assert!(refused.contains("ExpiredTokenException"), "{refused}");

    let (uri, agent) = pod_identity_stand_in(Expiry::Far).await;
    let pod_token = dir.path().join("pod-token");
    std::fs::write(&pod_token, POD_TOKEN).expect("write pod token");
    let pod = || {
        CredentialsSource::Container(ContainerConfig {
            full_uri: uri.clone(),
            token_file: pod_token.clone(),
        })
    };
    relay_once(pod()).await.expect("pod identity relayed");
    *agent.accepted.lock().expect("accepted") = POD_TOKEN_ROTATED.to_owned();
    let refused = relay_once(pod()).await.expect_err("wrong token");
    assert!(refused.contains("401"), "{refused}");
    agent
        .garbage
        .store(true, std::sync::atomic::Ordering::SeqCst);
    std::fs::write(&pod_token, POD_TOKEN_ROTATED).expect("rotate pod token");
    let refused = relay_once(pod()).await.expect_err("garbage");
    assert!(refused.contains("malformed"), "{refused}");

    let logs =
        String::from_utf8(capture.0.lock().expect("capture lock").clone()).expect("utf-8 logs");
    assert!(
        logs.contains("source=\"web-identity\"") || logs.contains("source=web-identity"),
        "the relay logged its source:\n{logs}"
    );
    assert!(
        logs.contains("ExpiredTokenException"),
        "the refusal was logged:\n{logs}"
    );
    assert!(
        logs.contains("<redacted>"),
        "the Debug line is there, redacted:\n{logs}"
    );
    for secret in [
        WEB_TOKEN,
        EXPIRED_WEB_TOKEN,
        STS_ACCESS_KEY_ID,
        STS_SECRET_ACCESS_KEY,
        STS_SESSION_TOKEN,
        POD_TOKEN,
        POD_TOKEN_ROTATED,
        POD_ACCESS_KEY_ID,
        POD_SECRET_ACCESS_KEY,
        POD_SESSION_TOKEN,
        GARBAGE_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
