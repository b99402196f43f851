//! Bounded cache of verified tokens.
//!
//! Keyed by SHA-256 of the token text, so the cache holds no credentials. Entries expire with
//! the token (same rule as the verifier) and can be dropped by stake id. Revocation scans the
//! cache (O(capacity)); revocations are rare chain events, lookups are the hot path.

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
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
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

    pub(crate) fn insert(
        &self,
        key: [u8; 32],
        identity: Arc<Identity>,
        stake: Address,
        expires_at_ms: u64,
    ) {
        self.lock().put(
            key,
            Entry {
                identity,
                stake,
                expires_at_ms,
            },
        );
    }

    pub(crate) fn evict_stake(&self, stake: &Address) -> usize {
        let mut entries = self.lock();
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

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().len(),
        }
    }
}
