//! Bounded cache of verified tokens.
//!
//! Keyed by SHA-256 of the token text, so the cache holds no credentials. Entries expire with
//! the token (same rule as the verifier) and can be dropped by stake id or by owner address.
//! Both are indexed: an eviction costs the number of entries it drops, not the cache size, so
//! chain events (which anyone can cause for the price of gas) cannot stall authentication
//! behind a cache-wide scan.
//!
//! One stake holds at most `max_per_stake` entries: a staker who mints token after token
//! replaces their own older entries instead of pushing everyone else's out.
//!
//! Race: a verification reads the chain, then inserts. An eviction in between would be undone
//! by that insert, so every eviction bumps a generation counter and inserts are conditional on
//! the generation read before the chain lookup.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use daas_seal::{Address, TimeRules};
use lru::LruCache;

use super::Identity;

type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    identity: Arc<Identity>,
    stake: Address,
    expires_at_ms: u64,
}

#[derive(Debug)]
struct Entries {
    lru: LruCache<Key, Entry>,
    /// stake → its keys, oldest first.
    by_stake: HashMap<Address, Vec<Key>>,
    /// owner address → the stakes with entries.
    by_owner: HashMap<Address, HashSet<Address>>,
}

impl Entries {
    /// Drops `key`'s index entries (the LRU entry is already gone).
    fn unindex(&mut self, key: &Key, entry: &Entry) {
        let owner = entry.identity.address;
        let Some(keys) = self.by_stake.get_mut(&entry.stake) else {
            return;
        };
        keys.retain(|k| k != key);
        if keys.is_empty() {
            self.by_stake.remove(&entry.stake);
            if let Some(stakes) = self.by_owner.get_mut(&owner) {
                stakes.remove(&entry.stake);
                if stakes.is_empty() {
                    self.by_owner.remove(&owner);
                }
            }
        }
    }

    fn remove(&mut self, key: &Key) -> bool {
        match self.lru.pop(key) {
            Some(entry) => {
                self.unindex(key, &entry);
                true
            }
            None => false,
        }
    }

    fn remove_stake(&mut self, stake: &Address) -> usize {
        let Some(keys) = self.by_stake.remove(stake) else {
            return 0;
        };
        let mut owner = None;
        for k in &keys {
            if let Some(e) = self.lru.pop(k) {
                owner = Some(e.identity.address);
            }
        }
        if let Some(owner) = owner
            && let Some(stakes) = self.by_owner.get_mut(&owner)
        {
            stakes.remove(stake);
            if stakes.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
        keys.len()
    }
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: Mutex<Entries>,
    max_per_stake: usize,
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
    pub(crate) fn new(capacity: usize, max_per_stake: usize) -> Self {
        TokenCache {
            entries: Mutex::new(Entries {
                lru: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                by_stake: HashMap::new(),
                by_owner: HashMap::new(),
            }),
            max_per_stake: max_per_stake.max(1),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Read before consulting the stake view; pass to [`Self::insert_if_current`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written (each operation
        // updates the LRU and its indexes without calling out), so a poisoned cache is still
        // consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &Key, now_ms: u64, rules: &TimeRules) -> Option<Arc<Identity>> {
        self.lookup(key, now_ms, rules, true)
    }

    /// [`Self::get`] that counts only a hit: for a probe that a full verification (and its own
    /// lookup) follows on a miss.
    pub(crate) fn probe(&self, key: &Key, now_ms: u64, rules: &TimeRules) -> Option<Arc<Identity>> {
        self.lookup(key, now_ms, rules, false)
    }

    fn lookup(
        &self,
        key: &Key,
        now_ms: u64,
        rules: &TimeRules,
        count_miss: bool,
    ) -> Option<Arc<Identity>> {
        let mut entries = self.lock();
        let found = match entries.lru.get(key) {
            Some(e) if rules.is_unexpired(e.expires_at_ms, now_ms) => Some(e.identity.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        };
        drop(entries);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else if count_miss {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Inserts unless an eviction happened since `generation` was read (checked under the lock,
    /// and evictions bump the generation under the same lock, so no eviction can slip between
    /// the check and the insert). A stake already holding `max_per_stake` entries loses its
    /// oldest. Returns whether the entry was inserted.
    pub(crate) fn insert_if_current(
        &self,
        generation: u64,
        key: Key,
        identity: Arc<Identity>,
        stake: Address,
        expires_at_ms: u64,
    ) -> bool {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        entries.remove(&key);
        let mine = entries.by_stake.get(&stake).map_or(0, Vec::len);
        if mine >= self.max_per_stake
            && let Some(oldest) = entries
                .by_stake
                .get(&stake)
                .and_then(|k| k.first().copied())
        {
            entries.remove(&oldest);
        }
        let owner = identity.address;
        let entry = Entry {
            identity,
            stake,
            expires_at_ms,
        };
        if let Some((pushed_out, old)) = entries.lru.push(key, entry)
            && pushed_out != key
        {
            entries.unindex(&pushed_out, &old);
        }
        entries.by_stake.entry(stake).or_default().push(key);
        entries.by_owner.entry(owner).or_default().insert(stake);
        true
    }

    pub(crate) fn evict_stake(&self, stake: &Address) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove_stake(stake)
    }

    /// Drops every entry of every stake `owner` holds (e.g. the owner lost a role grant).
    pub(crate) fn evict_owner(&self, owner: &Address) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let stakes: Vec<Address> = entries
            .by_owner
            .get(owner)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        stakes.iter().map(|s| entries.remove_stake(s)).sum()
    }

    pub(crate) fn evict_all(&self) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let n = entries.lru.len();
        entries.lru.clear();
        entries.by_stake.clear();
        entries.by_owner.clear();
        n
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().lru.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_seal::Role;

    fn identity(owner: u8) -> Arc<Identity> {
        Arc::new(Identity {
            username: format!("sui:0x{owner:x}"),
            uid: "0x2".into(),
            groups: vec![],
            extra: Default::default(),
            address: Address::new([owner; 32]),
            role: Role::User,
            stake: None,
        })
    }

    fn key(i: u32) -> Key {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn insert_after_a_concurrent_eviction_is_dropped() {
        let cache = TokenCache::new(8, 4);
        let stake = Address::new([5; 32]);
        // verification starts, reads the generation, then the chain says "revoked"
        let seen = cache.generation();
        cache.evict_stake(&stake);
        assert!(!cache.insert_if_current(seen, [1; 32], identity(1), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 0);
        // a verification that started after the eviction inserts normally
        let seen = cache.generation();
        assert!(cache.insert_if_current(seen, [1; 32], identity(1), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 1);
        // evict_all clears and also invalidates in-flight inserts
        let seen = cache.generation();
        assert_eq!(cache.evict_all(), 1);
        assert!(!cache.insert_if_current(seen, [2; 32], identity(1), stake, u64::MAX));
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn one_stake_holds_at_most_its_share() {
        let cache = TokenCache::new(64, 4);
        let (a, b) = (Address::new([0xa; 32]), Address::new([0xb; 32]));
        let g = cache.generation();
        assert!(cache.insert_if_current(g, key(0), identity(1), a, u64::MAX));
        for i in 1..1000 {
            assert!(cache.insert_if_current(g, key(i), identity(2), b, u64::MAX));
        }
        let rules = TimeRules::default();
        assert!(
            cache.get(&key(0), 0, &rules).is_some(),
            "a's entry survives"
        );
        assert_eq!(cache.stats().entries, 5, "b keeps only its 4 newest");
        assert!(cache.get(&key(999), 0, &rules).is_some());
        assert!(cache.get(&key(995), 0, &rules).is_none());
    }

    #[test]
    fn evictions_by_stake_and_owner_use_the_index() {
        let cache = TokenCache::new(4, 4);
        let g = cache.generation();
        let stakes: Vec<Address> = (0..3u8).map(|i| Address::new([i + 1; 32])).collect();
        cache.insert_if_current(g, key(1), identity(7), stakes[0], u64::MAX);
        cache.insert_if_current(g, key(2), identity(7), stakes[1], u64::MAX);
        cache.insert_if_current(g, key(3), identity(8), stakes[2], u64::MAX);
        cache.insert_if_current(g, key(4), identity(8), stakes[2], u64::MAX);
        // Capacity 4: a fifth entry pushes out the least recently used (key 1) and its index.
        cache.insert_if_current(g, key(5), identity(8), stakes[2], u64::MAX);
        assert_eq!(
            cache.evict_stake(&stakes[0]),
            0,
            "pushed out, index cleaned"
        );
        assert_eq!(cache.evict_owner(&Address::new([7; 32])), 1);
        assert_eq!(cache.evict_stake(&stakes[2]), 3);
        assert_eq!(cache.stats().entries, 0);
        let entries = cache.lock();
        assert!(entries.by_stake.is_empty() && entries.by_owner.is_empty());
    }

    #[test]
    fn expired_entries_leave_the_indexes() {
        let cache = TokenCache::new(8, 4);
        let stake = Address::new([3; 32]);
        let g = cache.generation();
        cache.insert_if_current(g, key(1), identity(1), stake, 1_000);
        let rules = TimeRules {
            max_lifetime_ms: 10_000,
            clock_skew_ms: 0,
        };
        assert!(cache.get(&key(1), 2_000, &rules).is_none());
        assert!(cache.lock().by_stake.is_empty());
    }
}
