//! The worker join exchange: `POST /join` on the master's :8080, authenticated by a fresh
//! worker Seal token (`Authorization: Bearer …`) whose node name is the one on its stake record.
//!
//! The answer is everything a K3s agent (or a plain kubelet) needs to join, and nothing more:
//! the :6443 address, the cluster CA the agent pins, and a **per-node, short-lived** bootstrap
//! token bound to the stake record and node name, plus the node password K3s binds the name
//! with. Never the K3s server or agent token.
//!
//! Errors come back as a Kubernetes `Status` object (`{"kind":"Status","code":…,"reason":…,
//! "message":…}`), like every other refusal of the master.

use serde::{Deserialize, Serialize};

/// Path of the join endpoint on the master's :8080.
pub const PATH: &str = "/join";
/// Value of [`JoinResponse::format`].
pub const FORMAT_V1: &str = "k3s-daas-join/v1";
/// Largest request body the master reads (the request carries no body today; room for options).
pub const MAX_REQUEST_LEN: usize = 4 * 1024;
/// Largest response body a client reads.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// Longest lifetime (`expires_at - issued_at`) of a Seal token the join endpoint accepts: a join
/// token is minted for one call, and each is accepted once.
pub const MAX_JOIN_TOKEN_TTL_MS: u64 = 10 * 60 * 1000;

/// The (optional) JSON body of `POST /join`. Unknown fields are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// How the node will join: decides nothing on the master today, recorded in the audit line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentKind>,
}

/// What runs on the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// `k3s agent` (uses [`JoinResponse::token`] and [`JoinResponse::node_password`]).
    K3sAgent,
    /// A plain kubelet with TLS bootstrap (uses [`JoinResponse::bootstrap_token`]).
    Kubelet,
}

/// The master's answer to a successful join.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinResponse {
    /// Always [`FORMAT_V1`].
    pub format: String,
    /// The node name bound to the stake record (the Node object's name).
    pub node_name: String,
    /// The stake record the node is bound to (`0x…`).
    pub stake: String,
    /// The :6443 front agents and kubelets talk to (`https://host:port`).
    pub server: String,
    /// The cluster CA (PEM) exactly as `/cacerts` serves it: the enclave's attested CA.
    pub ca_certificate: String,
    /// The CA (PEM) of the client certificates the API server presents to kubelets (logs,
    /// exec, port-forward): a plain kubelet's `--client-ca-file`. K3s agents fetch it from
    /// `/v1-k3s/client-ca.crt` themselves.
    pub client_ca_certificate: String,
    /// `K10` + SHA-256 (hex) of [`Self::ca_certificate`]'s bytes: K3s's CA pin.
    pub ca_hash: String,
    /// The K3s secure join token `K10<hash>::<id>.<secret>` (for `k3s agent --token-file`).
    pub token: String,
    /// The bare bootstrap token `<id>.<secret>` (for a kubelet's bootstrap kubeconfig).
    pub bootstrap_token: String,
    /// The node password K3s binds the node name with (`/etc/rancher/node/password`).
    pub node_password: String,
    /// When the bootstrap token stops working (ms since the Unix epoch). It is also deleted
    /// once the node has registered.
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for JoinResponse {
    /// Secrets (the tokens and the node password) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinResponse")
            .field("format", &self.format)
            .field("node_name", &self.node_name)
            .field("stake", &self.stake)
            .field("server", &self.server)
            .field("ca_hash", &self.ca_hash)
            .field("token", &"<redacted>")
            .field("bootstrap_token", &"<redacted>")
            .field("node_password", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> JoinResponse {
        JoinResponse {
            format: FORMAT_V1.into(),
            node_name: "w-1".into(),
            stake: "0x1".into(),
            server: "https://127.0.0.1:6443".into(),
            ca_certificate: "pem".into(),
            client_ca_certificate: "client pem".into(),
            ca_hash: "K10ab".into(),
            token: "K10ab::abcdef.0123456789abcdef".into(),
            bootstrap_token: "abcdef.0123456789abcdef".into(),
            node_password: "secret-password".into(),
            expires_at_ms: 1,
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(!text.contains("secret-password"), "{text}");
        assert!(text.contains("w-1"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["server_token"] = "x".into();
        assert!(serde_json::from_value::<JoinResponse>(value).is_err());
        assert!(serde_json::from_str::<JoinRequest>(r#"{"agent":"kubelet","x":1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<JoinRequest>(r#"{"agent":"k3s-agent"}"#).unwrap(),
            JoinRequest {
                agent: Some(AgentKind::K3sAgent)
            }
        );
    }
}
