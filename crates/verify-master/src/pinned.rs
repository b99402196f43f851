//! Requests to a master whose CA is already known: verified by
//! [`verify_master`](crate::verify_master), or pinned explicitly by the user. The TLS connection trusts that CA
//! alone, for the endpoint's name; nothing else is accepted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use rustls_pki_types::CertificateDer;

use crate::error::VerifyMasterError;
use crate::fetch::{Endpoint, Http1Error, http1_over_tls};

/// How long a whole pinned request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to a pinned request: any status, the body read up to the caller's limit.
#[derive(Debug)]
pub struct PinnedResponse {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// The body (at most the caller's `max_len` bytes).
    pub body: Bytes,
}

/// `POST path` with a JSON `body` and `Authorization: Bearer <bearer>` to `endpoint`, over TLS
/// that trusts only `ca_der` (the verified or pinned CA); reads at most `max_len` bytes of the
/// answer ([`VerifyMasterError::TooLarge`] beyond). The bearer value is marked sensitive and
/// appears in no error.
pub async fn post_json_pinned(
    endpoint: &Endpoint,
    ca_der: &[u8],
    path: &str,
    bearer: &str,
    body: Vec<u8>,
    max_len: usize,
) -> Result<PinnedResponse, VerifyMasterError> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        post_inner(endpoint, ca_der, path, bearer, body, max_len),
    )
    .await
    .map_err(|_| VerifyMasterError::Request {
        endpoint: endpoint.to_string(),
        why: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
    })?
}

async fn post_inner(
    endpoint: &Endpoint,
    ca_der: &[u8],
    path: &str,
    bearer: &str,
    body: Vec<u8>,
    max_len: usize,
) -> Result<PinnedResponse, VerifyMasterError> {
    let fail = |why: String| VerifyMasterError::Request {
        endpoint: endpoint.to_string(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| fail(format!("the pinned CA is not a usable root: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (mut sender, driver) = http1_over_tls(
        endpoint,
        config,
        "TLS handshake (trusting only the pinned CA)",
    )
    .await
    .map_err(|e| match e {
        Http1Error::Endpoint(e) => e,
        Http1Error::Io(why) => fail(why),
    })?;
    let mut authorization = http::HeaderValue::try_from(format!("Bearer {bearer}"))
        .map_err(|_| fail("the bearer token is not a valid header value".into()))?;
    authorization.set_sensitive(true);
    let request = http::Request::post(path)
        .header(http::header::HOST, endpoint.host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(format!("HTTP: {e}")))?;
    let status = response.status();
    let too_large = || VerifyMasterError::TooLarge {
        endpoint: endpoint.to_string(),
        limit: max_len,
    };
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_len as u64) {
        driver.abort();
        return Err(too_large());
    }
    let body = Limited::new(response.into_body(), max_len)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large()
            } else {
                fail(format!("reading the answer: {e}"))
            }
        })?
        .to_bytes();
    driver.abort();
    Ok(PinnedResponse { status, body })
}
