//! `POST /join`: a fresh worker Seal token buys the join material for its node.

use std::time::{Duration, UNIX_EPOCH};

use daas_join_api::{FORMAT_V1, JoinRequest, JoinResponse, MAX_JOIN_TOKEN_TTL_MS};
use daas_seal::{Claims, Role};
use http::StatusCode;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use tracing::info;

use super::bindings::{BindError, BindingState};
use super::tokens::{self, BootstrapToken};
use super::{Outstanding, Workers, now_ms};
use crate::auth::{Identity, StakeView};

/// Why a join was refused; each maps to an HTTP status and a message for the staker.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("joining needs a worker token; this token is for role {0}")]
    NotWorker(Role),
    #[error(
        "a join token may live at most {} minutes; mint a fresh one for the join (`--ttl 5m`)",
        MAX_JOIN_TOKEN_TTL_MS / 60_000
    )]
    TokenTooLong,
    #[error(
        "this token was issued before the last accepted join of stake record {0}: a replayed or \
         stale token; mint a fresh one"
    )]
    Replayed(daas_seal::Address),
    #[error("invalid request body: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("node name {0} is being revoked; it cannot join")]
    Revoking(String),
    #[error(
        "a Node named {0} exists that no stake record is bound to; the cluster operator must delete it first"
    )]
    ForeignNode(String),
    #[error("the master is still starting (node bindings not loaded); retry shortly")]
    NotReady,
    #[error("the cluster's API could not be reached: {0}")]
    Kube(#[from] kube::Error),
}

impl JoinError {
    pub fn status(&self) -> StatusCode {
        match self {
            JoinError::NotWorker(_) => StatusCode::FORBIDDEN,
            JoinError::TokenTooLong | JoinError::Replayed(_) => StatusCode::UNAUTHORIZED,
            JoinError::BadRequest(_) => StatusCode::BAD_REQUEST,
            JoinError::Bind(BindError::Kube(_) | BindError::Unreadable(_))
            | JoinError::Kube(_)
            | JoinError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            JoinError::Bind(_) | JoinError::Revoking(_) | JoinError::ForeignNode(_) => {
                StatusCode::CONFLICT
            }
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            JoinError::NotWorker(_) => "not_worker",
            JoinError::TokenTooLong => "token_too_long",
            JoinError::Replayed(_) => "replayed",
            JoinError::BadRequest(_) => "bad_request",
            JoinError::Bind(BindError::Kube(_) | BindError::Unreadable(_))
            | JoinError::Kube(_)
            | JoinError::NotReady => "unavailable",
            JoinError::Bind(BindError::Taken { .. }) => "name_taken",
            JoinError::Bind(BindError::Retired { .. }) => "name_retired",
            JoinError::Revoking(_) => "revoking",
            JoinError::ForeignNode(_) => "foreign_node",
        }
    }
}

impl<V: StakeView + 'static> Workers<V> {
    /// Issues the join material for an authenticated worker (`identity`, whose token's claims
    /// are `claims`): binds the node name to the record, replaces any outstanding bootstrap
    /// token of the node, creates the bootstrap token and node-password Secrets.
    pub async fn join(
        &self,
        identity: &Identity,
        claims: &Claims,
        body: &[u8],
        remote: std::net::SocketAddr,
    ) -> Result<JoinResponse, JoinError> {
        let request: JoinRequest = if body.iter().all(u8::is_ascii_whitespace) {
            JoinRequest::default()
        } else {
            serde_json::from_slice(body).map_err(|e| JoinError::BadRequest(e.to_string()))?
        };
        let result = self.join_inner(identity, claims, request, remote).await;
        match &result {
            Ok(_) => self.metrics.join("issued", "ok"),
            Err(e) => {
                self.metrics.join("refused", e.reason());
                info!(target: "audit", user = %identity.username, stake = %claims.stake, node = claims.node_name.as_ref().map_or("-", |n| n.as_str()), %remote, result = "refused", reason = e.reason(), "join refused: {e}");
            }
        }
        result
    }

    async fn join_inner(
        &self,
        identity: &Identity,
        claims: &Claims,
        request: JoinRequest,
        remote: std::net::SocketAddr,
    ) -> Result<JoinResponse, JoinError> {
        if identity.role != Role::Worker {
            return Err(JoinError::NotWorker(identity.role));
        }
        if !self.is_loaded() {
            return Err(JoinError::NotReady);
        }
        let node = match &claims.node_name {
            Some(n) => n.as_str().to_owned(),
            None => return Err(JoinError::NotWorker(identity.role)),
        };
        if claims.expires_at_ms.saturating_sub(claims.issued_at_ms) > MAX_JOIN_TOKEN_TTL_MS {
            return Err(JoinError::TokenTooLong);
        }
        // One join at a time: the binding's last-join mark and the node's one outstanding
        // token are read and written together.
        let _serial = self.join_lock.lock().await;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let existing = self.bindings.get(&node);
        if existing.is_none() && nodes.get_opt(&node).await?.is_some() {
            return Err(JoinError::ForeignNode(node));
        }
        let now = now_ms();
        let mut binding = self
            .bindings
            .bind(&node, claims.stake, identity.address, now)
            .await?;
        if binding.state != BindingState::Bound {
            return Err(JoinError::Revoking(node));
        }
        // Replays (and tokens minted before the last join) are refused, across restarts: the
        // mark lives with the binding.
        if binding
            .last_join_issued_at_ms
            .is_some_and(|last| claims.issued_at_ms <= last)
        {
            return Err(JoinError::Replayed(claims.stake));
        }
        binding.last_join_issued_at_ms = Some(claims.issued_at_ms);
        self.bindings.update(&binding).await?;

        self.delete_tokens_of(&node).await?;
        let token = BootstrapToken::generate();
        let expires_at_ms = now
            .saturating_add(u64::try_from(self.config.token_ttl.as_millis()).unwrap_or(u64::MAX));
        let expiration =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(expires_at_ms))
                .to_string();
        let stake = claims.stake.to_string();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "kube-system");
        secrets
            .create(
                &PostParams::default(),
                &token.to_secret(&node, &stake, &expiration, claims.token_epoch),
            )
            .await?;
        self.tokens_lock().insert(
            token.id().to_owned(),
            Outstanding {
                token: token.clone(),
                node: node.clone(),
                stake: claims.stake,
                expires_at_ms,
                token_epoch: claims.token_epoch,
            },
        );
        // The node password: a fresh one each join (the Secret is immutable: replace it).
        let password = tokens::generate_node_password();
        let hash = tokens::hash_node_password(&password);
        let name = tokens::node_password_secret_name(&node);
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        secrets
            .create(
                &PostParams::default(),
                &tokens::node_password_secret(&node, &stake, &hash),
            )
            .await?;

        info!(target: "audit", user = %identity.username, stake = %claims.stake, node = %node, token_id = token.id(), agent = ?request.agent, %remote, result = "issued", "join material issued");
        Ok(JoinResponse {
            format: FORMAT_V1.to_owned(),
            node_name: node,
            stake,
            server: self.config.server_url.clone(),
            ca_certificate: self.ca_pem.clone(),
            client_ca_certificate: self.client_ca_pem.clone(),
            ca_hash: self.ca_hash.clone(),
            token: format!("{}::{}", self.ca_hash, token.expose()),
            bootstrap_token: token.expose(),
            node_password: password.to_string(),
            expires_at_ms,
        })
    }
}
