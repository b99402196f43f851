//! The exec credential plugin's payload: a short-lived Seal token wrapped in a
//! `client.authentication.k8s.io/v1` `ExecCredential`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daas_seal::{Address, Claims, NodeName, Role, SealToken, mint};
use daas_wallet::WalletKey;
use serde::{Deserialize, Serialize};

/// API version of the exec credential protocol this crate speaks.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// `ExecCredential` as kubectl reads it from a plugin's stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential {
    pub api_version: String,
    pub kind: String,
    pub status: ExecCredentialStatus,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredentialStatus {
    /// RFC 3339 UTC; kubectl re-runs the plugin after this instant.
    pub expiration_timestamp: String,
    /// The Seal token (a bearer credential).
    pub token: String,
}

impl std::fmt::Debug for ExecCredentialStatus {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCredentialStatus")
            .field("expiration_timestamp", &self.expiration_timestamp)
            .finish_non_exhaustive()
    }
}

/// What to mint for.
#[derive(Debug, Clone)]
pub struct CredentialRequest {
    pub cluster: Address,
    pub stake: Address,
    pub role: Role,
    pub node_name: Option<NodeName>,
    pub token_epoch: u64,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Claims(#[from] daas_seal::ClaimsError),
    #[error(transparent)]
    Mint(#[from] daas_seal::MintError),
    #[error("token lifetime does not fit in milliseconds")]
    Lifetime,
}

/// Mints a token valid from `now` for `request.ttl` and wraps it for kubectl.
pub fn exec_credential(
    key: &WalletKey,
    request: &CredentialRequest,
    now: SystemTime,
) -> Result<ExecCredential, CredentialError> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CredentialError::Lifetime)?
        .as_millis();
    let now_ms = u64::try_from(now_ms).map_err(|_| CredentialError::Lifetime)?;
    let ttl_ms = u64::try_from(request.ttl.as_millis()).map_err(|_| CredentialError::Lifetime)?;
    let mut builder = Claims::builder(request.cluster, key.address(), request.stake, request.role)
        .lifetime(now_ms, ttl_ms)
        .token_epoch(request.token_epoch)
        .random_nonce();
    if let Some(name) = &request.node_name {
        builder = builder.node_name(name.clone());
    }
    let token: SealToken = mint(key.keypair(), builder.build()?)?;
    let expires = UNIX_EPOCH
        .checked_add(Duration::from_millis(token.claims().expires_at_ms))
        .ok_or(CredentialError::Lifetime)?;
    Ok(ExecCredential {
        api_version: EXEC_API_VERSION.to_owned(),
        kind: "ExecCredential".to_owned(),
        status: ExecCredentialStatus {
            expiration_timestamp: humantime::format_rfc3339_seconds(expires).to_string(),
            token: token.into_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_seal::TimeRules;
    use daas_wallet::Scheme;

    #[test]
    fn credential_carries_a_verifiable_short_lived_token() {
        let key = WalletKey::generate(Scheme::Ed25519);
        let req = CredentialRequest {
            cluster: Address::new([1; 32]),
            stake: Address::new([2; 32]),
            role: Role::User,
            node_name: None,
            token_epoch: 5,
            ttl: Duration::from_secs(600),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let cred = exec_credential(&key, &req, now).expect("credential");
        assert_eq!(cred.api_version, EXEC_API_VERSION);
        assert_eq!(cred.status.expiration_timestamp, "2026-09-21T14:23:20Z");
        let t = SealToken::parse(&cred.status.token).expect("parse");
        t.verify_signature().expect("signature");
        assert_eq!(t.claims().token_epoch, 5);
        assert_eq!(t.claims().expires_at_ms - t.claims().issued_at_ms, 600_000);
        t.check_claims(1_790_000_000_000, &req.cluster, &TimeRules::default())
            .expect("valid now");
        assert!(!format!("{cred:?}").contains(&cred.status.token));
        let json = serde_json::to_value(&cred).expect("json");
        assert!(json["status"]["expirationTimestamp"].is_string());
    }
}
