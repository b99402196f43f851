//! The claims a Seal token carries, and the time/audience rules applied to them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sui_sdk_types::Address;

use crate::error::ClaimsError;

/// What a stake entitles its owner to. The numbers are the on-chain `u8` role constants of the
/// Move package (`k3s_daas::cluster::role_*`) and the payload byte; they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A compute provider joining a machine as a K3s agent.
    Worker,
    /// A tenant: `edit` in a namespace of their own.
    User,
    /// Cluster administrator.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Worker, Role::User, Role::Admin];

    /// The wire/on-chain code.
    pub const fn code(self) -> u8 {
        match self {
            Role::Worker => 0,
            Role::User => 1,
            Role::Admin => 2,
        }
    }

    /// The role for a wire/on-chain code, `None` for codes this version does not know.
    pub const fn from_code(code: u8) -> Option<Role> {
        match code {
            0 => Some(Role::Worker),
            1 => Some(Role::User),
            2 => Some(Role::Admin),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ClaimsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ClaimsError::UnknownRoleName(s.chars().take(32).collect()))
    }
}

/// A Kubernetes node name as a worker token carries it: an RFC 1123 DNS label
/// (1–63 bytes of `[a-z0-9-]`, starting and ending alphanumeric). The Move package applies the
/// same rule to `StakeRecord.node_name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    pub const MAX_LEN: usize = 63;

    pub fn new(name: impl Into<String>) -> Result<Self, ClaimsError> {
        let name = name.into();
        let bytes = name.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first().is_some_and(|b| *b != b'-')
            && bytes.last().is_some_and(|b| *b != b'-');
        if ok {
            Ok(NodeName(name))
        } else {
            Err(ClaimsError::InvalidNodeName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The decoded payload of a Seal token v1.
///
/// Times are Unix milliseconds, the unit of Sui's `&Clock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Audience: the object id of the on-chain `Cluster` this token is for.
    pub cluster: Address,
    /// The Sui address that signed the token; must own the stake record.
    pub signer: Address,
    /// Object id of the signer's `StakeRecord`.
    pub stake: Address,
    pub role: Role,
    /// Present for workers (their Kubernetes node name), absent otherwise.
    pub node_name: Option<NodeName>,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    /// Must equal the stake record's `token_epoch`; bumping it on chain revokes older tokens.
    pub token_epoch: u64,
    /// 128 random bits: makes every token unique (cache keys, audit correlation).
    pub nonce: [u8; 16],
}

impl Claims {
    pub fn builder(cluster: Address, signer: Address, stake: Address, role: Role) -> ClaimsBuilder {
        ClaimsBuilder {
            claims: Claims {
                cluster,
                signer,
                stake,
                role,
                node_name: None,
                issued_at_ms: 0,
                expires_at_ms: 0,
                token_epoch: 0,
                nonce: [0; 16],
            },
            nonce_set: false,
        }
    }

    /// Internal consistency that does not depend on the clock: workers name their node, nobody
    /// else does, and the token expires after it was issued.
    pub fn validate_shape(&self) -> Result<(), ClaimsError> {
        match (self.role, &self.node_name) {
            (Role::Worker, None) => return Err(ClaimsError::MissingNodeName),
            (Role::User | Role::Admin, Some(_)) => return Err(ClaimsError::UnexpectedNodeName),
            _ => {}
        }
        if self.expires_at_ms <= self.issued_at_ms {
            return Err(ClaimsError::EmptyLifetime);
        }
        Ok(())
    }

    /// Applies the audience and time rules. Order is fixed (audience, shape, lifetime, not
    /// before, expiry) so that the reported error is deterministic.
    pub fn check(
        &self,
        now_ms: u64,
        audience: &Address,
        rules: &TimeRules,
    ) -> Result<(), ClaimsError> {
        if self.cluster != *audience {
            return Err(ClaimsError::WrongAudience);
        }
        self.validate_shape()?;
        let lifetime = self.expires_at_ms - self.issued_at_ms;
        if lifetime > rules.max_lifetime_ms {
            return Err(ClaimsError::LifetimeTooLong {
                lifetime_ms: lifetime,
                max_ms: rules.max_lifetime_ms,
            });
        }
        if self.issued_at_ms > now_ms.saturating_add(rules.clock_skew_ms) {
            return Err(ClaimsError::NotYetValid);
        }
        if !rules.is_unexpired(self.expires_at_ms, now_ms) {
            return Err(ClaimsError::Expired);
        }
        Ok(())
    }
}

/// Builder so callers cannot forget the nonce or the lifetime.
#[derive(Debug)]
pub struct ClaimsBuilder {
    claims: Claims,
    nonce_set: bool,
}

impl ClaimsBuilder {
    pub fn node_name(mut self, name: NodeName) -> Self {
        self.claims.node_name = Some(name);
        self
    }

    pub fn token_epoch(mut self, epoch: u64) -> Self {
        self.claims.token_epoch = epoch;
        self
    }

    /// Valid from `issued_at_ms` for `ttl_ms`.
    pub fn lifetime(mut self, issued_at_ms: u64, ttl_ms: u64) -> Self {
        self.claims.issued_at_ms = issued_at_ms;
        self.claims.expires_at_ms = issued_at_ms.saturating_add(ttl_ms);
        self
    }

    /// A fixed nonce, for golden vectors and tests. Production code uses [`Self::random_nonce`].
    pub fn nonce(mut self, nonce: [u8; 16]) -> Self {
        self.claims.nonce = nonce;
        self.nonce_set = true;
        self
    }

    /// 128 bits from the operating system's CSPRNG.
    pub fn random_nonce(mut self) -> Self {
        use rand_core::RngCore;
        rand_core::OsRng.fill_bytes(&mut self.claims.nonce);
        self.nonce_set = true;
        self
    }

    pub fn build(self) -> Result<Claims, ClaimsError> {
        if !self.nonce_set {
            return Err(ClaimsError::MissingNonce);
        }
        self.claims.validate_shape()?;
        Ok(self.claims)
    }
}

/// How strictly the verifier treats time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRules {
    /// Longest `expires_at - issued_at` accepted.
    pub max_lifetime_ms: u64,
    /// Tolerated clock difference between minter and verifier, applied to both ends.
    pub clock_skew_ms: u64,
}

impl TimeRules {
    /// The single expiry rule, shared by [`Claims::check`] and the authenticator's cache so a
    /// cached entry can never outlive the token.
    pub fn is_unexpired(&self, expires_at_ms: u64, now_ms: u64) -> bool {
        now_ms < expires_at_ms.saturating_add(self.clock_skew_ms)
    }
}

impl Default for TimeRules {
    /// 24 h maximum lifetime, 60 s skew.
    fn default() -> Self {
        TimeRules {
            max_lifetime_ms: 24 * 60 * 60 * 1000,
            clock_skew_ms: 60 * 1000,
        }
    }
}

/// `t` as Unix milliseconds, the time unit of claims: 0 before 1970, saturating far in the future.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The BCS layout of the payload. Field order is the wire format: never reorder.
#[derive(Serialize, Deserialize)]
pub(crate) struct PayloadV1 {
    pub(crate) magic: [u8; 7],
    pub(crate) version: u8,
    pub(crate) cluster: Address,
    pub(crate) signer: Address,
    pub(crate) stake: Address,
    pub(crate) role: u8,
    pub(crate) node_name: Option<String>,
    pub(crate) issued_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) token_epoch: u64,
    pub(crate) nonce: [u8; 16],
}
