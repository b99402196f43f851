//! `authentication.k8s.io/v1` TokenReview webhook, so the API server itself (K3s's
//! `--authentication-token-webhook-config-file`) accepts Seal tokens with the same
//! authenticator as the proxy. Served over TLS on a loopback listener of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use tracing::{info, warn};

use super::server::{Handler, ServeLimits, serve};
use super::{ProxyBody, status};
use crate::auth::{SealAuthenticator, StakeView};

/// Largest TokenReview body accepted (a Seal token is at most a few hundred bytes).
pub const MAX_REVIEW_BYTES: usize = 64 * 1024;
/// Path the webhook answers on.
pub const PATH: &str = "/tokenreview";

/// Serves the webhook on `listener` (TLS) until `shutdown`.
pub async fn serve_webhook<V: StakeView + 'static>(
    auth: Arc<SealAuthenticator<V>>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let handler: Handler = Arc::new(move |req, remote| {
        let auth = auth.clone();
        Box::pin(async move { review(&auth, req, remote).await })
    });
    serve(
        listener,
        Some(tls),
        ServeLimits::default(),
        handler,
        None,
        shutdown,
    )
    .await;
}

async fn review<V: StakeView>(
    auth: &SealAuthenticator<V>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<ProxyBody> {
    if req.uri().path() != PATH {
        return status::response(StatusCode::NOT_FOUND, "NotFound", "not found");
    }
    if req.method() != Method::POST {
        return status::response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "POST a TokenReview",
        );
    }
    let body = match Limited::new(req.into_body(), MAX_REVIEW_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return status::response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "TokenReview body too large",
            );
        }
    };
    let review: TokenReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return status::response(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "not an authentication.k8s.io/v1 TokenReview: {}",
                    json_error_kind(&e)
                ),
            );
        }
    };
    let token = review.spec.token.as_str();
    let status = match auth.authenticate(token).await {
        Ok(identity) => {
            info!(target: "audit", user = %identity.username, source = "webhook", %remote, result = "allowed", "authn");
            TokenReviewStatus {
                authenticated: Some(true),
                user: Some(UserInfo {
                    username: Some(identity.username.clone()),
                    uid: Some(identity.uid.clone()),
                    groups: Some(identity.groups.clone()),
                    extra: Some(identity.extra.clone()),
                }),
                // Empty audiences: valid for the API server's own audiences.
                audiences: None,
                error: None,
            }
        }
        Err(e) => {
            if e.is_unavailable() {
                warn!(error = %e, "stake view unavailable");
            }
            info!(target: "audit", user = "-", source = "webhook", %remote, result = "denied", reason = e.reason(), "authn");
            TokenReviewStatus {
                authenticated: Some(false),
                error: Some(e.to_string()),
                ..TokenReviewStatus::default()
            }
        }
    };
    let answer = TokenReview {
        metadata: Default::default(),
        spec: Default::default(),
        status: Some(status),
    };
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    status::with_body(StatusCode::OK, body, "application/json")
}

/// A description of a JSON error that never echoes the input (which holds a token).
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "unexpected fields or types",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}
