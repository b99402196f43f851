//! Bounded cache of verified tokens.
//!
//! Keyed by SHA-256 of the token text, so the cache holds no credentials. Entries expire with
//! the token (same rule as the verifier) and can be dropped by stake id. Revocation scans the
//! cache (O(capacity)); revocations are rare chain events, lookups are the hot path.
//!
//! Race: a verification reads the chain, then inserts. An eviction in between would be undone
//! by that insert, so every eviction bumps a generation counter and inserts are conditional on
//! the generation read before the chain lookup.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use daas_seal::{Address, TimeRules};
use lru::LruCache;

use super::Identity;

#[derive(Debug)]
struct Entry {
    identity: Arc<Identity>,
    stake: Address,
    expires_at_ms: u64,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: Mutex<LruCache<[u8; 32], Entry>>,
    /// Bumped by every eviction. A verification that started before an eviction must not insert
    /// its (possibly stale) verdict after it: see [`TokenCache::insert_if_current`].
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Read before consulting the stake view; pass to [`Self::insert_if_current`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<[u8; 32], Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (LruCache operations
        // are single calls), so a poisoned cache is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(
        &self,
        key: &[u8; 32],
        now_ms: u64,
        rules: &TimeRules,
    ) -> Option<Arc<Identity>> {
        let mut entries = self.lock();
        let found = match entries.get(key) {
            Some(e) if rules.is_unexpired(e.expires_at_ms, now_ms) => Some(e.identity.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        };
        drop(entries);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Inserts unless an eviction happened since `generation` was read (checked under the lock,
    /// and evictions bump the generation under the same lock, so no eviction can slip between
    /// the check and the insert). Returns whether the entry was inserted.
    pub(crate) fn insert_if_current(
        &self,
        generation: u64,
        key: [u8; 32],
        identity: Arc<Identity>,
        stake: Address,
        expires_at_ms: u64,
    ) -> bool {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        entries.put(
            key,
            Entry {
                identity,
                stake,
                expires_at_ms,
            },
        );
        true
    }

    pub(crate) fn evict_stake(&self, stake: &Address) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let doomed: Vec<[u8; 32]> = entries
            .iter()
            .filter(|(_, e)| e.stake == *stake)
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            entries.pop(k);
        }
        doomed.len()
    }

    pub(crate) fn evict_all(&self) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let n = entries.len();
        entries.clear();
        n
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_seal::Role;

    fn identity() -> Arc<Identity> {
        Arc::new(Identity {
            username: "sui:0x1".into(),
            uid: "0x2".into(),
            groups: vec![],
            extra: Default::default(),
            address: Address::ZERO,
            role: Role::User,
        })
    }

    #[test]
    fn insert_after_a_concurrent_eviction_is_dropped() {
        let cache = TokenCache::new(8);
        let stake = Address::new([5; 32]);
        // verification starts, reads the generation, then the chain says "revoked"
        let seen = cache.generation();
        cache.evict_stake(&stake);
        assert!(!cache.insert_if_current(seen, [1; 32], identity(), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 0);
        // a verification that started after the eviction inserts normally
        let seen = cache.generation();
        assert!(cache.insert_if_current(seen, [1; 32], identity(), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 1);
        // evict_all clears and also invalidates in-flight inserts
        let seen = cache.generation();
        assert_eq!(cache.evict_all(), 1);
        assert!(!cache.insert_if_current(seen, [2; 32], identity(), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 0);
    }
}
