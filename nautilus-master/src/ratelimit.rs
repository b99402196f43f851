//! Token-bucket rate limits keyed by anything hashable: per identity (the proxy's request
//! limit), per source address (work done before authentication), per signer (cold token
//! verifications).
//!
//! Buckets live in a bounded LRU. A key that is evicted starts again with a full bucket; the
//! capacity is far above the number of keys active at once, so eviction only happens under a
//! flood of distinct keys — which the limits in front of each limiter make expensive.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use daas_seal::Role;
use lru::LruCache;

/// The key a client address is limited under: an IPv4 address as is, an IPv6 address by its
/// /64 prefix (one host or one customer usually holds a whole /64, so per-address limits would
/// be free to sidestep), an IPv4-mapped IPv6 address as IPv4.
pub(crate) fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(_) => ip,
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Rate-limit settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second per identity (0 disables the limit).
    pub per_second: f64,
    /// Bucket size: requests allowed in a burst.
    pub burst: f64,
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once.
    pub const fn new(per_second: f64, burst: f64) -> Self {
        RateLimit { per_second, burst }
    }

    /// No limit.
    pub const fn unlimited() -> Self {
        RateLimit::new(0.0, 0.0)
    }
}

impl Default for RateLimit {
    /// The proxy's per-identity request limit. kubectl's discovery burst on a cold cache is
    /// ~40 requests; controllers behind the proxy are not expected (they use service accounts
    /// inside the cluster).
    fn default() -> Self {
        RateLimit::new(100.0, 200.0)
    }
}

/// Why a rate-limit setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateLimitError {
    #[error("{0:?} is not a rate: give requests per second, `RATE:BURST`, or `unlimited`")]
    Syntax(String),
    #[error("rate {0} is not a finite number of requests per second ≥ 0")]
    Rate(f64),
    #[error("burst {0} is not a finite number of requests ≥ 1")]
    Burst(f64),
    #[error("{0:?} is not `ROLE=RATE[:BURST]` with ROLE one of worker, user, admin")]
    RoleSyntax(String),
}

impl RateLimit {
    /// A checked setting: `per_second` finite and ≥ 0 (0: no limit), `burst` finite and ≥ 1;
    /// without a burst, two seconds' worth (at least 1).
    pub fn checked(per_second: f64, burst: Option<f64>) -> Result<Self, RateLimitError> {
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(RateLimitError::Rate(per_second));
        }
        if per_second == 0.0 {
            return Ok(RateLimit::unlimited());
        }
        let burst = burst.unwrap_or((2.0 * per_second).max(1.0));
        if !burst.is_finite() || burst < 1.0 {
            return Err(RateLimitError::Burst(burst));
        }
        Ok(RateLimit::new(per_second, burst))
    }

    /// Whether this setting refuses anything.
    pub fn is_unlimited(&self) -> bool {
        self.per_second <= 0.0
    }
}

impl std::str::FromStr for RateLimit {
    type Err = RateLimitError;

    /// `RATE` (burst: two seconds' worth), `RATE:BURST`, or `unlimited` (also `0`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(RateLimit::unlimited());
        }
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| RateLimitError::Syntax(s.chars().take(64).collect()))
        };
        match s.split_once(':') {
            Some((rate, burst)) => RateLimit::checked(number(rate)?, Some(number(burst)?)),
            None => RateLimit::checked(number(s)?, None),
        }
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unlimited() {
            f.write_str("unlimited")
        } else {
            write!(f, "{}:{}", self.per_second, self.burst)
        }
    }
}

impl<'de> serde::Deserialize<'de> for RateLimit {
    /// A number (requests per second) or a string as [`RateLimit::from_str`] reads it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RateLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("requests per second, \"RATE:BURST\" or \"unlimited\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RateLimit, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RateLimit, E> {
                RateLimit::checked(v, None).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RateLimit, E> {
                // Precision above 2^53 requests/s is irrelevant.
                #[allow(clippy::cast_precision_loss)]
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RateLimit, E> {
                #[allow(clippy::cast_precision_loss)]
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The proxy's request limit per identity, by the identity's role: a tenant's kubectl, an
/// operator's CI pipeline and a worker's join have different needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoleRateLimits {
    pub worker: RateLimit,
    pub user: RateLimit,
    pub admin: RateLimit,
}

impl RoleRateLimits {
    /// The same limit for every role.
    pub const fn uniform(limit: RateLimit) -> Self {
        RoleRateLimits {
            worker: limit,
            user: limit,
            admin: limit,
        }
    }

    pub fn for_role(&self, role: Role) -> RateLimit {
        match role {
            Role::Worker => self.worker,
            Role::User => self.user,
            Role::Admin => self.admin,
        }
    }

    pub fn set(&mut self, role: Role, limit: RateLimit) {
        match role {
            Role::Worker => self.worker = limit,
            Role::User => self.user = limit,
            Role::Admin => self.admin = limit,
        }
    }

    /// The defaults with `overrides` (later ones win) applied.
    pub fn with_overrides(overrides: &[RoleRateLimit]) -> Self {
        let mut limits = RoleRateLimits::default();
        for o in overrides {
            limits.set(o.role, o.limit);
        }
        limits
    }
}

impl Default for RoleRateLimits {
    /// [`RateLimit::default`] for every role.
    fn default() -> Self {
        RoleRateLimits::uniform(RateLimit::default())
    }
}

/// One role's limit, as the command line gives it: `ROLE=RATE[:BURST]` or `ROLE=unlimited`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoleRateLimit {
    pub role: Role,
    pub limit: RateLimit,
}

impl std::str::FromStr for RoleRateLimit {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RateLimitError::RoleSyntax(s.chars().take(64).collect());
        let (role, limit) = s.split_once('=').ok_or_else(bad)?;
        let role: Role = role.trim().parse().map_err(|_| bad())?;
        Ok(RoleRateLimit {
            role,
            limit: limit.parse()?,
        })
    }
}

/// One [`RateLimiter`] per role, each keyed by identity.
pub(crate) struct RoleLimiters {
    worker: RateLimiter,
    user: RateLimiter,
    admin: RateLimiter,
}

impl RoleLimiters {
    pub(crate) fn new(limits: RoleRateLimits) -> Self {
        RoleLimiters {
            worker: RateLimiter::new(limits.worker),
            user: RateLimiter::new(limits.user),
            admin: RateLimiter::new(limits.admin),
        }
    }

    pub(crate) fn for_role(&self, role: Role) -> &RateLimiter {
        match role {
            Role::Worker => &self.worker,
            Role::User => &self.user,
            Role::Admin => &self.admin,
        }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets per key, at most 65,536 keys.
pub(crate) struct RateLimiter<K = String> {
    limit: RateLimit,
    buckets: Mutex<LruCache<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter for `limit`; a non-finite or negative rate disables limiting, a burst below
    /// one request becomes one.
    pub(crate) fn new(limit: RateLimit) -> Self {
        let limit = RateLimit {
            per_second: if limit.per_second.is_finite() && limit.per_second > 0.0 {
                limit.per_second
            } else {
                0.0
            },
            burst: if limit.burst.is_finite() {
                limit.burst.max(1.0)
            } else {
                1.0
            },
        };
        RateLimiter {
            limit,
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Takes one request from `key`'s bucket at `now`: `Ok` or `Err(wait)` until the next
    /// request would be allowed.
    pub(crate) fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.lock();
        // The key is copied only for a new bucket: this runs on every proxied request.
        if !buckets.contains(key) {
            buckets.put(
                key.to_owned(),
                Bucket {
                    tokens: self.limit.burst,
                    at: now,
                },
            );
        }
        let bucket = buckets.get_mut(key).ok_or(Duration::from_secs(1))?;
        let tokens = self.refilled(Some(*bucket), now);
        *bucket = Bucket {
            tokens: if tokens >= 1.0 { tokens - 1.0 } else { tokens },
            at: now,
        };
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait(tokens))
        }
    }

    /// Whether `key`'s bucket would allow one request at `now`, without taking it (a key never
    /// charged has a full bucket): `Ok` or `Err(wait)`.
    pub(crate) fn peek<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let tokens = self.refilled(self.lock().peek(key).copied(), now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait(tokens))
        }
    }

    /// Takes one request from `key`'s bucket at `now` whether or not it allows one (never
    /// below empty): for counting what already happened, such as a failed verification.
    pub(crate) fn charge(&self, key: K, now: Instant) {
        if self.limit.per_second <= 0.0 {
            return;
        }
        let mut buckets = self.lock();
        let tokens = self.refilled(buckets.get(&key).copied(), now);
        buckets.put(
            key,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tokens in `bucket` at `now` (a key without a bucket has a full one).
    fn refilled(&self, bucket: Option<Bucket>, now: Instant) -> f64 {
        let RateLimit { per_second, burst } = self.limit;
        match bucket {
            Some(b) => {
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                (b.tokens + elapsed * per_second).min(burst)
            }
            None => burst,
        }
    }

    /// How long until a bucket holding `tokens` (< 1) allows one request.
    fn wait(&self, tokens: f64) -> Duration {
        Duration::try_from_secs_f64((1.0 - tokens) / self.limit.per_second)
            .unwrap_or(Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_identity() {
        let limiter: RateLimiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).expect_err("bucket empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(
            limiter.check("b", t0).is_ok(),
            "other identities unaffected"
        );
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_ok());
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn nonsense_settings_do_not_panic() {
        let t0 = Instant::now();
        for (rate, burst) in [
            (f64::NAN, 1.0),
            (1e-300, 0.0),
            (-5.0, f64::INFINITY),
            (1.0, f64::NAN),
        ] {
            let limiter: RateLimiter = RateLimiter::new(RateLimit {
                per_second: rate,
                burst,
            });
            for _ in 0..3 {
                let _ = limiter.check("a", t0);
            }
        }
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_prefix() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(key("::ffff:10.0.0.7"), "10.0.0.7");
        assert_eq!(key("10.0.0.7"), "10.0.0.7");
    }

    #[test]
    fn zero_rate_disables() {
        let limiter: RateLimiter = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 0.0,
        });
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limiter.check("a", t0).is_ok()));
    }

    #[test]
    fn rate_settings_parse_and_refuse_nonsense() {
        assert_eq!("50".parse(), Ok(RateLimit::new(50.0, 100.0)));
        assert_eq!(
            "0.2".parse(),
            Ok(RateLimit::new(0.2, 1.0)),
            "burst at least 1"
        );
        assert_eq!(" 1000 : 50 ".parse(), Ok(RateLimit::new(1000.0, 50.0)));
        assert_eq!("unlimited".parse(), Ok(RateLimit::unlimited()));
        assert_eq!("0".parse(), Ok(RateLimit::unlimited()));
        assert_eq!("0:99".parse(), Ok(RateLimit::unlimited()));
        for (text, want) in [
            ("", RateLimitError::Syntax(String::new())),
            ("fast", RateLimitError::Syntax("fast".into())),
            ("10:", RateLimitError::Syntax("10:".into())),
            ("-1", RateLimitError::Rate(-1.0)),
            ("10:0.5", RateLimitError::Burst(0.5)),
            ("10:-3", RateLimitError::Burst(-3.0)),
        ] {
            assert_eq!(text.parse::<RateLimit>(), Err(want), "{text:?}");
        }
        for text in ["inf", "NaN", "1e999", "10:inf", "10:NaN"] {
            assert!(text.parse::<RateLimit>().is_err(), "{text:?} accepted");
        }
        let long = "9".repeat(10_000) + "x";
        match long.parse::<RateLimit>() {
            Err(RateLimitError::Syntax(echo)) => assert_eq!(echo.len(), 64, "echo is bounded"),
            other => panic!("{other:?}"),
        }
        // Display round-trips.
        for text in ["12.5:3", "unlimited"] {
            let limit: RateLimit = text.parse().unwrap();
            assert_eq!(limit.to_string().parse::<RateLimit>(), Ok(limit));
        }
    }

    #[test]
    fn role_overrides_apply_to_their_role_only() {
        let overrides: Vec<RoleRateLimit> = ["admin=1000:2000", "worker=unlimited", "admin=500"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let limits = RoleRateLimits::with_overrides(&overrides);
        assert_eq!(
            limits.admin,
            RateLimit::new(500.0, 1000.0),
            "the last one wins"
        );
        assert!(limits.worker.is_unlimited());
        assert_eq!(limits.user, RateLimit::default());
        for bad in ["admin", "root=5", "=5", "user=", "user=x"] {
            assert!(bad.parse::<RoleRateLimit>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn each_role_has_its_own_buckets() {
        let limiters = RoleLimiters::new(RoleRateLimits {
            worker: RateLimit::new(1.0, 1.0),
            user: RateLimit::new(1.0, 2.0),
            admin: RateLimit::unlimited(),
        });
        let t0 = Instant::now();
        let allowed = |role| {
            (0..100)
                .filter(|_| limiters.for_role(role).check("sui:0x1", t0).is_ok())
                .count()
        };
        assert_eq!(allowed(Role::Worker), 1);
        assert_eq!(allowed(Role::User), 2);
        assert_eq!(allowed(Role::Admin), 100);
    }

    #[test]
    fn peek_takes_nothing_and_charge_counts_what_happened() {
        let limiter: RateLimiter<u8> = RateLimiter::new(RateLimit::new(1.0, 2.0));
        let t0 = Instant::now();
        assert_eq!(limiter.peek(&5, t0), Ok(()), "untouched key");
        limiter.charge(5, t0);
        assert_eq!(limiter.peek(&5, t0), Ok(()), "one left");
        assert_eq!(limiter.peek(&5, t0), Ok(()), "peeking took nothing");
        limiter.charge(5, t0);
        assert_eq!(limiter.peek(&5, t0), Err(Duration::from_secs(1)), "spent");
        assert_eq!(limiter.peek(&6, t0), Ok(()), "other keys unaffected");
        // Charges beyond an empty bucket do not dig a deeper hole.
        limiter.charge(5, t0);
        assert_eq!(limiter.peek(&5, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_zero_rate_never_charges() {
        let limiter: RateLimiter<u8> = RateLimiter::new(RateLimit::unlimited());
        let t0 = Instant::now();
        for _ in 0..10 {
            limiter.charge(5, t0);
        }
        assert_eq!(limiter.peek(&5, t0), Ok(()));
    }
}
