//! The request every proxy bench times, and how the benches log.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};

use crate::upstream::Conn;

/// One `GET url` as kubectl sends it (bearer `auth`, JSON, kubectl's user agent) plus `extra`
/// headers; whether it answered 200 with its whole body.
pub(crate) async fn get(
    conn: &Conn,
    url: &str,
    auth: &str,
    extra: &[(HeaderName, HeaderValue)],
) -> bool {
    let mut req = Request::get(url)
        .header(header::AUTHORIZATION, auth)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "kubectl/v1.36.0 (bench)");
    for (name, value) in extra {
        req = req.header(name, value);
    }
    let Ok(req) = req.body(Full::new(Bytes::new())) else {
        return false;
    };
    match conn.send(req).await {
        Ok(resp) => {
            let ok = resp.status() == 200;
            ok & resp.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Logs at `filter` into a sink, formatted as the binary formats them for the journal (no
/// colour codes): the audit lines cost what they cost in production.
pub(crate) fn log_to_sink(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(std::io::sink)
        .init();
}
