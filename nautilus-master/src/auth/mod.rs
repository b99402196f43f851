//! Seal-token authentication: parse → claims → signature → on-chain stake → identity.
//!
//! [`SealAuthenticator`] is the single place that decides whether a bearer token is a valid
//! K3s-DaaS credential. It performs the offline checks of `daas-seal`, then asks a
//! [`StakeView`] for the stake record the token names and applies the on-chain rules. Verified
//! tokens are cached (bounded LRU keyed by SHA-256 of the token, expiring with the token,
//! evictable by stake id or owner when the chain says something changed).
//!
//! Work before a verdict is metered, cheapest refusal first. Before its signature is checked
//! (the one expensive step, ~70 µs for ed25519), a token is refused when its key does not hash
//! to its signer, when it names a stake the view knows does not exist, when the record the view
//! holds cannot match it (owner, cluster, status, role, grant, node name), and when the stake it
//! names has spent its budget of failed verifications ([`AuthConfig::bad_signatures_per_stake`],
//! off by default). After the signature, each signer gets
//! a budget of cold verifications (chain lookups and cache inserts) per second, so one staker
//! minting token after token can neither flood the chain endpoint nor push other users' verdicts
//! out of the cache.
//!
//! Live sessions ([`Sessions`]) are re-checked when the chain changes under them
//! ([`SealAuthenticator::revalidate`]) and cancelled when they no longer pass.
//!
//! Architecture invariant: a token is accepted only if its signature verifies, the signing key's
//! address owns the stake record, and the record is active, in this cluster, for this role, at
//! or above the role minimum and at the token's epoch. The cache never extends a token's life.

mod cache;
mod identity;
mod sessions;
mod stake;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use daas_seal::{
    Address, ClaimsError, ParseError, Role, SealToken, SignatureError, TimeRules, VerifyStage,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use cache::CacheStats;
pub use identity::{EXTRA_STAKE, GROUP_AUTHENTICATED, Identity, StakeBinding, role_group};
pub use sessions::{Scope, Session, Sessions};
pub use stake::{InMemoryStakeView, StakeRecord, StakeStatus, StakeView, StakeViewError};

use crate::ratelimit::{RateLimit, RateLimiter};
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
    #[error("the cluster has not granted the token's signer this role (staker-agent admin grant)")]
    NotGranted,
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
    #[error(
        "the admin role is reserved to the operator's allow-list, which does not name the token's signer"
    )]
    AdminNotAllowed,
    #[error("admin tokens may live at most {}s; mint a shorter one", .max_ms / 1000)]
    AdminLifetime { max_ms: u64 },
    #[error("too many new tokens from this signer; retry in {}s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
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
            AuthError::NotGranted => "not_granted",
            AuthError::WrongCluster => "wrong_cluster",
            AuthError::StakeInactive(_) => "stake_inactive",
            AuthError::RoleMismatch => "role_mismatch",
            AuthError::NodeNameMismatch => "node_mismatch",
            AuthError::BelowMinimum { .. } => "below_minimum",
            AuthError::Revoked { .. } => "revoked",
            AuthError::AdminNotAllowed => "admin_not_allowed",
            AuthError::AdminLifetime { .. } => "admin_lifetime",
            AuthError::Throttled { .. } => "throttled",
            AuthError::StakeView(_) => "stake_view_unavailable",
        }
    }

    /// Whether the failure is the server's (retry later), not the credential's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::StakeView(_))
    }

    /// `Some(wait)` when the credential may be fine but its signer must slow down.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
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
    /// Cached tokens one stake may hold; a newer one replaces its oldest.
    pub cache_per_stake: usize,
    /// Cold verifications (a token not in the cache, with a valid signature: a chain lookup and
    /// a cache insert) per signer address. Beyond it: [`AuthError::Throttled`].
    pub cold_per_signer: RateLimit,
    /// Failed signature verifications per claimed stake id; unlimited (off) by default. When
    /// set, a spent budget refuses tokens naming that stake with [`AuthError::Throttled`] before
    /// their signature is checked; genuine tokens are never charged. The price: while someone
    /// forges tokens naming a stake, its holder's *new* tokens wait too (cached ones keep
    /// working), so turn it on only where CPU spent on forgeries matters more than that.
    pub bad_signatures_per_stake: RateLimit,
    /// When set, the admin role is granted only to these addresses, whatever the chain says
    /// (an operator's pin on top of the cluster's on-chain consent).
    pub admin_allowlist: Option<BTreeSet<Address>>,
    /// Longest lifetime of an admin token (shorter than `time.max_lifetime_ms`): a token that a
    /// phished wallet signature yields is worth less.
    pub admin_max_lifetime_ms: u64,
    /// How long live sessions survive losing sight of the chain (its follower disconnected):
    /// after that they are cancelled, since a revocation could no longer be seen.
    pub session_grace: Duration,
}

impl AuthConfig {
    pub fn new(cluster: Address) -> Self {
        AuthConfig {
            cluster,
            time: TimeRules::default(),
            cache_capacity: 65_536,
            cache_per_stake: 16,
            cold_per_signer: RateLimit::new(10.0, 20.0),
            // Off by default: a budget per *target* lets anyone who knows a staker's public
            // key lock that staker's new tokens out (OpenSSH's per-source penalties avoid
            // per-account lockouts for the same reason). Work is already bounded per source
            // address and in total by the proxy before the signature.
            bad_signatures_per_stake: RateLimit::unlimited(),
            admin_allowlist: None,
            admin_max_lifetime_ms: 60 * 60 * 1000,
            session_grace: Duration::from_secs(30),
        }
    }
}

/// Authenticates Seal tokens against a [`StakeView`].
pub struct SealAuthenticator<V> {
    config: AuthConfig,
    view: V,
    cache: TokenCache,
    cold: RateLimiter<Address>,
    /// Failed signature verifications per claimed stake id (see
    /// [`AuthConfig::bad_signatures_per_stake`]): charged after a failure, peeked before a
    /// signature is checked, so genuine tokens never spend it.
    bad_signatures: RateLimiter<Address>,
    sessions: Arc<Sessions>,
    /// Bumped each time the chain is regained (see [`SealAuthenticator::chain_lost`]).
    chain_epoch: AtomicU64,
    /// Whether the chain is out of sight now (a session deadline is armed).
    chain_out: std::sync::atomic::AtomicBool,
    /// Whether the chain has been out of sight for longer than the session grace: no new session
    /// may start until it is back.
    grace_over: std::sync::atomic::AtomicBool,
}

impl<V> std::fmt::Debug for SealAuthenticator<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealAuthenticator")
            .field("cluster", &self.config.cluster)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl<V: StakeView> SealAuthenticator<V> {
    pub fn new(config: AuthConfig, view: V) -> Self {
        let cache = TokenCache::new(config.cache_capacity, config.cache_per_stake);
        let cold = RateLimiter::new(config.cold_per_signer);
        let bad_signatures = RateLimiter::new(config.bad_signatures_per_stake);
        SealAuthenticator {
            config,
            view,
            cache,
            cold,
            bad_signatures,
            sessions: Arc::default(),
            chain_epoch: AtomicU64::new(0),
            chain_out: std::sync::atomic::AtomicBool::new(false),
            grace_over: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The registry of live sessions opened with this authenticator's verdicts.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// Whether a new live session may start: not while the chain has been out of sight for
    /// longer than the session grace, since nothing could end it on a revocation.
    pub fn sessions_allowed(&self) -> bool {
        !self.grace_over.load(Ordering::Acquire)
    }

    /// The cached verdict for `token`, if any (no parsing, no I/O): the fast path a front door
    /// tries before it spends anything on a cold verification.
    pub fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        self.cached_at(token, unix_ms_now())
    }

    fn cached_at(&self, token: &str, now_ms: u64) -> Option<Arc<Identity>> {
        if token.len() > daas_seal::MAX_TOKEN_LEN || !self.view.is_fresh() {
            return None;
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // A miss is counted by the verification that follows it.
        self.cache.probe(&key, now_ms, &self.config.time)
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
        unverified.check_claims(now_ms, &self.config.cluster, &self.config.time)?;
        let c = unverified.claims();
        if c.role == Role::Admin
            && c.expires_at_ms.saturating_sub(c.issued_at_ms) > self.config.admin_max_lifetime_ms
        {
            return Err(AuthError::AdminLifetime {
                max_ms: self.config.admin_max_lifetime_ms,
            });
        }
        self.refuse_before_signature(&unverified, fresh)?;
        let stake = unverified.claims().stake;
        let verified = match unverified.verify(now_ms, &self.config.cluster, &self.config.time) {
            Ok(verified) => verified,
            Err(e) => {
                if matches!(e, VerifyStage::Signature(_)) {
                    self.bad_signatures.charge(stake, Instant::now());
                }
                return Err(e.into());
            }
        };
        let claims = verified.claims();
        // The signer is authentic from here on: meter its chain lookups and cache inserts.
        if let Err(retry_after) = self.cold.check(&claims.signer, Instant::now()) {
            return Err(AuthError::Throttled { retry_after });
        }
        let identity = Arc::new(Identity::for_claims(claims));
        self.check_stake(&identity).await?;
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

    /// The checks a token must pass before its signature is verified, cheapest first. Each
    /// refuses only tokens that the full verdict would refuse too, with the error a genuine
    /// signature would get: its key does not hash to its signer; its stake is known absent; the
    /// admin allow-list leaves its signer out; the record the view holds without I/O does not
    /// match it (as in [`SealAuthenticator::check_stake`], same order); its stake has spent its
    /// budget of failed verifications.
    fn refuse_before_signature(
        &self,
        unverified: &daas_seal::Unverified,
        fresh: bool,
    ) -> Result<(), AuthError> {
        unverified.check_signer()?;
        let c = unverified.claims();
        if self.view.known_absent(&c.stake) {
            return Err(AuthError::UnknownStake);
        }
        self.check_admin_allowed(&c.signer, c.role)?;
        if fresh && let Some(record) = self.view.known_record(&c.stake) {
            let node_name = c.node_name.as_ref().map(|n| n.as_str());
            self.check_record(&record, &c.signer, c.role, node_name)?;
        }
        if let Err(retry_after) = self.bad_signatures.peek(&c.stake, Instant::now()) {
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(())
    }

    fn check_admin_allowed(&self, address: &Address, role: Role) -> Result<(), AuthError> {
        if role == Role::Admin
            && let Some(allowed) = &self.config.admin_allowlist
            && !allowed.contains(address)
        {
            return Err(AuthError::AdminNotAllowed);
        }
        Ok(())
    }

    /// The rules of [`SealAuthenticator::check_stake`] that need only the record, in its order.
    fn check_record(
        &self,
        record: &StakeRecord,
        address: &Address,
        role: Role,
        node_name: Option<&str>,
    ) -> Result<(), AuthError> {
        if record.owner != *address {
            return Err(AuthError::NotStakeOwner);
        }
        if record.cluster != self.config.cluster {
            return Err(AuthError::WrongCluster);
        }
        if record.status != StakeStatus::Active {
            return Err(AuthError::StakeInactive(record.status));
        }
        if record.role != role {
            return Err(AuthError::RoleMismatch);
        }
        if !record.granted {
            return Err(AuthError::NotGranted);
        }
        if node_name != record.node_name.as_deref() {
            return Err(AuthError::NodeNameMismatch);
        }
        Ok(())
    }

    /// The on-chain half of the verdict: the record `identity` is bound to exists, is owned by
    /// its address, is active in this cluster for its role (and node name), holds at least the
    /// role minimum and is at its token epoch; an admin is on the operator's allow-list when one
    /// is set. Used for new tokens and to re-check live sessions.
    pub async fn check_stake(&self, identity: &Identity) -> Result<(), AuthError> {
        let binding = identity.stake.as_ref().ok_or(AuthError::UnknownStake)?;
        self.check_admin_allowed(&identity.address, identity.role)?;
        let record = self
            .view
            .stake_record(binding.id)
            .await
            .map_err(AuthError::StakeView)?
            .ok_or(AuthError::UnknownStake)?;
        self.check_record(
            &record,
            &identity.address,
            identity.role,
            binding.node_name.as_deref(),
        )?;
        let minimum = self
            .view
            .minimum_stake(identity.role)
            .await
            .map_err(AuthError::StakeView)?;
        if record.amount_mist < minimum {
            return Err(AuthError::BelowMinimum {
                amount_mist: record.amount_mist,
                minimum_mist: minimum,
            });
        }
        if record.token_epoch != binding.token_epoch {
            return Err(AuthError::Revoked {
                token: binding.token_epoch,
                record: record.token_epoch,
            });
        }
        Ok(())
    }

    /// Drops every cached token of `stake`: call when the chain reports the record changed
    /// (unstake, revoke, slash, role or amount change). Returns how many entries were dropped.
    pub fn evict_stake(&self, stake: &Address) -> usize {
        self.cache.evict_stake(stake)
    }

    /// Drops every cached token of every stake `owner` holds (a grant of the owner changed).
    pub fn evict_owner(&self, owner: &Address) -> usize {
        self.cache.evict_owner(owner)
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

/// How often a session re-check that could not reach the chain is retried, and the pause
/// before the first retry (doubled each time): about 6 s in all, then the session ends.
const RECHECK_ATTEMPTS: u32 = 6;
const RECHECK_BACKOFF: Duration = Duration::from_millis(200);

impl<V: StakeView + 'static> SealAuthenticator<V> {
    /// Re-checks the live sessions in `scope` against the chain, now, and cancels those whose
    /// credential no longer passes [`SealAuthenticator::check_stake`]. Call after evicting what
    /// the change touched (the re-check reads through the view). A re-check that cannot reach
    /// the chain is retried for a few seconds, then the session is cancelled too: a session
    /// nobody can vouch for does not stay open.
    pub fn revalidate(self: &Arc<Self>, scope: Scope) {
        self.sessions.changed();
        let affected = self.sessions.affected(scope);
        if affected.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let checks = affected.into_iter().flat_map(|(stake, a)| {
                a.identities
                    .into_iter()
                    .map(move |identity| (stake, identity))
            });
            futures_util::stream::iter(checks)
                .for_each_concurrent(16, |(stake, identity)| {
                    let this = this.clone();
                    async move {
                        let verdict = this.recheck(&identity).await;
                        if let Err(e) = verdict {
                            let n = this
                                .sessions
                                .cancel(Scope::Stake(stake), |i| i.stake == identity.stake && i.role == identity.role);
                            if n > 0 {
                                tracing::info!(target: "audit", user = %identity.username, stake = %stake, sessions = n, reason = e.reason(), "live sessions ended: the credential no longer passes");
                            }
                        }
                    }
                })
                .await;
        });
    }

    async fn recheck(&self, identity: &Identity) -> Result<(), AuthError> {
        let mut backoff = RECHECK_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.check_stake(identity).await {
                Err(e) if e.is_unavailable() && attempt < RECHECK_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    /// The chain follower lost its stream: revocations can no longer be seen. Unless
    /// [`SealAuthenticator::chain_regained`] is called within the configured session grace,
    /// every live session is cancelled then.
    pub fn chain_lost(self: &Arc<Self>) {
        if self.chain_out.swap(true, Ordering::AcqRel) {
            return; // already counting down since the first loss
        }
        let epoch = self.chain_epoch.load(Ordering::Acquire);
        let this = self.clone();
        let grace = self.config.session_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if this.chain_epoch.load(Ordering::Acquire) == epoch {
                this.grace_over.store(true, Ordering::Release);
                let n = this.sessions.cancel(Scope::All, |_| true);
                if n > 0 {
                    tracing::warn!(target: "audit", sessions = n, ?grace, "live sessions ended: the chain has been out of sight longer than the session grace");
                }
            }
        });
    }

    /// The follower streams again: stop any pending [`SealAuthenticator::chain_lost`] deadline
    /// and re-check every live session against the chain as it is now.
    pub fn chain_regained(self: &Arc<Self>) {
        self.chain_epoch.fetch_add(1, Ordering::AcqRel);
        self.chain_out.store(false, Ordering::Release);
        self.grace_over.store(false, Ordering::Release);
        self.revalidate(Scope::All);
    }
}

/// Current Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    daas_seal::unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests;
