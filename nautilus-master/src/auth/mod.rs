//! Seal-token authentication: parse → claims → signature → on-chain stake → identity.
//!
//! [`SealAuthenticator`] is the single place that decides whether a bearer token is a valid
//! K3s-DaaS credential. It performs the offline checks of `daas-seal`, then asks a
//! [`StakeView`] for the stake record the token names and applies the on-chain rules. Verified
//! tokens are cached (bounded LRU keyed by SHA-256 of the token, expiring with the token,
//! evictable by stake id when the chain says the record changed).
//!
//! Architecture invariant: a token is accepted only if its signature verifies, the signing key's
//! address owns the stake record, and the record is active, in this cluster, for this role, at
//! or above the role minimum and at the token's epoch. The cache never extends a token's life.

mod cache;
mod identity;
mod stake;

use std::sync::Arc;
use std::time::SystemTime;

use daas_seal::{
    Address, ClaimsError, ParseError, SealToken, SignatureError, TimeRules, VerifyStage,
};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use cache::CacheStats;
pub use identity::{EXTRA_STAKE, GROUP_AUTHENTICATED, Identity, role_group};
pub use stake::{InMemoryStakeView, StakeRecord, StakeStatus, StakeView, StakeViewError};

use cache::TokenCache;

/// Why a token was refused. Variants never contain the token.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("token names a stake record that does not exist")]
    UnknownStake,
    #[error("stake record is not owned by the token's signer")]
    NotStakeOwner,
    #[error("stake record belongs to another cluster")]
    WrongCluster,
    #[error("stake record is {0}, not active")]
    StakeInactive(StakeStatus),
    #[error("token role does not match the stake record's role")]
    RoleMismatch,
    #[error("token node name does not match the stake record")]
    NodeNameMismatch,
    #[error("stake of {amount_mist} MIST is below the role minimum of {minimum_mist} MIST")]
    BelowMinimum { amount_mist: u64, minimum_mist: u64 },
    #[error("token epoch {token} was revoked (stake record is at epoch {record})")]
    Revoked { token: u64, record: u64 },
    #[error("stake view unavailable")]
    StakeView(#[source] StakeViewError),
}

impl AuthError {
    /// A short, stable label for metrics and audit logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Parse(ParseError::TooLong { .. }) => "too_long",
            AuthError::Parse(_) => "malformed",
            AuthError::Claims(ClaimsError::Expired) => "expired",
            AuthError::Claims(ClaimsError::NotYetValid) => "not_yet_valid",
            AuthError::Claims(ClaimsError::WrongAudience) => "wrong_audience",
            AuthError::Claims(_) => "bad_claims",
            AuthError::Signature(_) => "bad_signature",
            AuthError::UnknownStake => "unknown_stake",
            AuthError::NotStakeOwner => "not_owner",
            AuthError::WrongCluster => "wrong_cluster",
            AuthError::StakeInactive(_) => "stake_inactive",
            AuthError::RoleMismatch => "role_mismatch",
            AuthError::NodeNameMismatch => "node_mismatch",
            AuthError::BelowMinimum { .. } => "below_minimum",
            AuthError::Revoked { .. } => "revoked",
            AuthError::StakeView(_) => "stake_view_unavailable",
        }
    }

    /// Whether the failure is the server's (retry later), not the credential's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::StakeView(_))
    }
}

impl From<VerifyStage> for AuthError {
    fn from(e: VerifyStage) -> Self {
        match e {
            VerifyStage::Claims(c) => AuthError::Claims(c),
            VerifyStage::Signature(s) => AuthError::Signature(s),
        }
    }
}

/// Authenticator settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The on-chain `Cluster` object id tokens must name.
    pub cluster: Address,
    pub time: TimeRules,
    /// Maximum cached tokens.
    pub cache_capacity: usize,
}

impl AuthConfig {
    pub fn new(cluster: Address) -> Self {
        AuthConfig {
            cluster,
            time: TimeRules::default(),
            cache_capacity: 65_536,
        }
    }
}

/// Authenticates Seal tokens against a [`StakeView`].
#[derive(Debug)]
pub struct SealAuthenticator<V> {
    config: AuthConfig,
    view: V,
    cache: TokenCache,
}

impl<V: StakeView> SealAuthenticator<V> {
    pub fn new(config: AuthConfig, view: V) -> Self {
        let cache = TokenCache::new(config.cache_capacity);
        SealAuthenticator {
            config,
            view,
            cache,
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn view(&self) -> &V {
        &self.view
    }

    /// Authenticates `token` at the current wall-clock time.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        self.authenticate_at(token, unix_ms_now()).await
    }

    /// Authenticates `token` as of `now_ms` (Unix milliseconds).
    pub async fn authenticate_at(
        &self,
        token: &str,
        now_ms: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        if token.len() > daas_seal::MAX_TOKEN_LEN {
            // Checked before hashing so oversized input costs nothing.
            return Err(ParseError::TooLong {
                len: token.len(),
                max: daas_seal::MAX_TOKEN_LEN,
            }
            .into());
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // A view that is not following the chain cannot promise that cached verdicts were
        // evicted when their records changed: neither use nor add cached verdicts then.
        let fresh = self.view.is_fresh();
        if fresh && let Some(identity) = self.cache.get(&key, now_ms, &self.config.time) {
            return Ok(identity);
        }

        // Read before the chain lookup: an eviction from here on voids this verdict for caching.
        let generation = self.cache.generation();
        let unverified = SealToken::parse(token)?;
        let verified = unverified.verify(now_ms, &self.config.cluster, &self.config.time)?;
        let claims = verified.claims();

        let record = self
            .view
            .stake_record(claims.stake)
            .await
            .map_err(AuthError::StakeView)?
            .ok_or(AuthError::UnknownStake)?;
        if record.owner != claims.signer {
            return Err(AuthError::NotStakeOwner);
        }
        if record.cluster != self.config.cluster {
            return Err(AuthError::WrongCluster);
        }
        if record.status != StakeStatus::Active {
            return Err(AuthError::StakeInactive(record.status));
        }
        if record.role != claims.role {
            return Err(AuthError::RoleMismatch);
        }
        if claims.node_name.as_ref().map(|n| n.as_str()) != record.node_name.as_deref() {
            return Err(AuthError::NodeNameMismatch);
        }
        let minimum = self
            .view
            .minimum_stake(claims.role)
            .await
            .map_err(AuthError::StakeView)?;
        if record.amount_mist < minimum {
            return Err(AuthError::BelowMinimum {
                amount_mist: record.amount_mist,
                minimum_mist: minimum,
            });
        }
        if record.token_epoch != claims.token_epoch {
            return Err(AuthError::Revoked {
                token: claims.token_epoch,
                record: record.token_epoch,
            });
        }

        let identity = Arc::new(Identity::for_claims(claims));
        if !fresh {
            return Ok(identity);
        }
        self.cache.insert_if_current(
            generation,
            key,
            identity.clone(),
            claims.stake,
            claims.expires_at_ms,
        );
        Ok(identity)
    }

    /// Drops every cached token of `stake`: call when the chain reports the record changed
    /// (unstake, revoke, slash, role or amount change). Returns how many entries were dropped.
    pub fn evict_stake(&self, stake: &Address) -> usize {
        self.cache.evict_stake(stake)
    }

    /// Drops every cached token: call when a cluster-wide rule changes (role minimums, cluster
    /// migration). Returns how many entries were dropped.
    pub fn evict_all(&self) -> usize {
        self.cache.evict_all()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// Current Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    daas_seal::unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests;
