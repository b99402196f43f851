//! Errors the proxy itself answers, as Kubernetes `Status` objects so kubectl prints them the
//! way it prints the API server's own (`error: You must be logged in to the server (…)`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

use super::ProxyBody;

/// A `Status` response with `code`, Kubernetes `reason` and a human `message` (never a token).
pub(crate) fn response(code: StatusCode, reason: &str, message: &str) -> Response<ProxyBody> {
    response_with(code, reason, message, None)
}

/// Like [`response`], with `Retry-After` (seconds) for 429/503.
pub(crate) fn response_with(
    code: StatusCode,
    reason: &str,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response<ProxyBody> {
    let status = Status {
        code: Some(i32::from(code.as_u16())),
        message: Some(message.to_owned()),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
        details: retry_after_secs.map(|s| StatusDetails {
            retry_after_seconds: i32::try_from(s).ok(),
            ..StatusDetails::default()
        }),
        ..Status::default()
    };
    // `Status` from k8s-openapi omits apiVersion/kind in its own serialisation of a plain
    // struct; write them explicitly so clients decode it as a Status.
    let mut value = serde_json::to_value(&status).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("kind".into(), "Status".into());
        obj.insert("apiVersion".into(), "v1".into());
        obj.entry("metadata")
            .or_insert_with(|| serde_json::json!({}));
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let mut resp = with_body(code, body, "application/json");
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(s) = retry_after_secs {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// `value` as a JSON body (never cached: every answer is fresh).
pub(crate) fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<ProxyBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = with_body(code, body, "application/json");
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A complete response of `code` with `body` as `content_type`: every answer the proxy,
/// webhook and admin listener write themselves.
pub(crate) fn with_body(
    code: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn is_a_kubernetes_status() {
        let resp = response_with(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "slow down",
            Some(2),
        );
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["code"], 429);
        assert_eq!(v["details"]["retryAfterSeconds"], 2);
    }
}
