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
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !buckets.contains(key) {
            buckets.put(
                key.to_owned(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let bucket = buckets.get_mut(key).ok_or(Duration::from_secs(1))?;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600)))
        }
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
}
