//! The credentials relay never logs the credentials or the IMDS session token, at any level.
//! Its own file: it installs a process-wide subscriber capturing TRACE output.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::*;
use tokio::io::AsyncWriteExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (imds_url, _log) = imds_stand_in(true).await;
    let pair = Setup {
        imds: Some(imds_url),
        ..Setup::default()
    }
    .start()
    .await;

    let creds = pair
        .enclave
        .credentials()
        .expect("configured")
        .fetch()
        .await
        .expect("credentials relayed");
    assert_eq!(creds.secret_access_key.expose(), SECRET_ACCESS_KEY);
    // Even formatting the whole struct into a log line shows nothing secret.
    tracing::info!(?creds, "Fetched credentials");
    assert!(!format!("{creds:?}").contains(SECRET_ACCESS_KEY));

    // A malformed request is logged (at info) without echoing anything.
    let mut s = pair
        .vs
        .enclave
        .connect(daas_bridge::PARENT_CID, CREDENTIALS_PORT)
        .await
        .expect("connect");
    s.write_all(SESSION_TOKEN.as_bytes()).await.expect("write");
    drop(s);
    let again = pair
        .enclave
        .credentials()
        .expect("configured")
        .fetch()
        .await;
    assert!(again.is_ok());
    pair.shutdown().await;

    let logs =
        String::from_utf8(capture.0.lock().expect("capture lock").clone()).expect("utf-8 logs");
    assert!(
        logs.contains("Bridge credentials relay"),
        "the relay did log:\n{logs}"
    );
    assert!(
        logs.contains("<redacted>"),
        "the Debug line is there, redacted:\n{logs}"
    );
    for secret in [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, IMDS_TOKEN] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
