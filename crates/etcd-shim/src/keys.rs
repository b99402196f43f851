//! The key ring the shim encrypts with, reloadable while serving.
//!
//! Fail closed: there is always a ring. A poisoned lock (a panic while a reload held it) is
//! recovered, because the slot only ever holds a complete `Arc<KeyRing>`; nothing ever falls
//! back to storing plaintext. The null cipher exists only with the `null-cipher` feature (for
//! the benchmark that measures what encryption costs) and only through
//! [`Keys::null_for_benchmarks`]; no binary enables that feature.

use std::sync::{Arc, PoisonError, RwLock};

use daas_envelope::{KeyId, KeyProvider, KeyRing, ProviderError, ValueCipher};

enum Source {
    Provider(Box<dyn KeyProvider>),
    Fixed,
    /// Benchmarks only: measures the cost of encryption against the same path without it.
    #[cfg(feature = "null-cipher")]
    Null,
}

/// The current cipher plus where it comes from. Rotation = write a new ring through the
/// provider (`nautilus-master keys rotate`), then [`Keys::reload`] (periodic, or the admin API):
/// new writes use the new active key immediately, old values stay readable.
pub struct Keys {
    source: Source,
    ring: RwLock<Arc<KeyRing>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("source", &self.describe())
            .field("active", &self.active_id())
            .finish()
    }
}

/// What a reload changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    pub previous_active: Option<KeyId>,
    pub active: KeyId,
    pub ids: Vec<KeyId>,
}

impl Keys {
    /// Loads the ring once; fails if the provider cannot produce one.
    pub fn from_provider(provider: Box<dyn KeyProvider>) -> Result<Self, ProviderError> {
        let ring = provider.load()?;
        Ok(Self {
            source: Source::Provider(provider),
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// A fixed ring that never reloads (tests, tools).
    pub fn from_ring(ring: KeyRing) -> Self {
        Self {
            source: Source::Fixed,
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    /// **No encryption.** For the benchmark that measures encryption overhead; never served
    /// by the CLI, and compiled only with the `null-cipher` feature.
    #[cfg(feature = "null-cipher")]
    pub fn null_for_benchmarks() -> Self {
        Self {
            source: Source::Null,
            // Never used for sealing: `cipher` returns the null cipher for this source.
            ring: RwLock::new(Arc::new(
                KeyRing::new(daas_envelope::DataKey::generate(), [])
                    .expect("a ring of one key has no duplicate"),
            )),
        }
    }

    /// Whether this is the benchmark's null cipher (no sealing, no freshness checks).
    pub fn is_null(&self) -> bool {
        #[cfg(feature = "null-cipher")]
        if matches!(self.source, Source::Null) {
            return true;
        }
        false
    }

    fn current(&self) -> Arc<KeyRing> {
        // The slot is replaced whole, so a guard poisoned by a panic elsewhere still holds a
        // complete ring: recover it rather than fail open.
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cipher for one request (a cheap `Arc` clone; a concurrent reload does not affect it).
    pub fn cipher(&self) -> Arc<dyn ValueCipher> {
        #[cfg(feature = "null-cipher")]
        if self.is_null() {
            return Arc::new(daas_envelope::NullCipher);
        }
        self.current()
    }

    /// The ring, or `None` for the benchmark's null cipher.
    pub fn ring(&self) -> Option<Arc<KeyRing>> {
        (!self.is_null()).then(|| self.current())
    }

    pub fn active_id(&self) -> Option<KeyId> {
        self.ring().map(|r| r.active_id())
    }

    pub fn describe(&self) -> String {
        match &self.source {
            Source::Provider(p) => p.describe(),
            Source::Fixed => "fixed key ring".into(),
            #[cfg(feature = "null-cipher")]
            Source::Null => "NONE (benchmark null cipher)".into(),
        }
    }

    /// Re-reads the ring. On error the current ring stays in use, and so it does when the
    /// provider returns the same keys (same bytes, same active key): a new ring would write
    /// under a new envelope data key and start with an empty cache of them, once per reload
    /// interval.
    pub fn reload(&self) -> Result<Reloaded, ProviderError> {
        let ring = match &self.source {
            Source::Provider(provider) => Arc::new(provider.load()?),
            _ => {
                let current = self.ring();
                let active = current.as_ref().map_or(KeyId(0), |r| r.active_id());
                return Ok(Reloaded {
                    previous_active: Some(active),
                    active,
                    ids: current.map(|r| r.ids().collect()).unwrap_or_default(),
                });
            }
        };
        let active = ring.active_id();
        let ids: Vec<KeyId> = ring.ids().collect();
        let previous = {
            let mut slot = self.ring.write().unwrap_or_else(PoisonError::into_inner);
            if slot.same_keys(&ring) {
                Arc::clone(&slot)
            } else {
                std::mem::replace(&mut *slot, ring)
            }
        };
        Ok(Reloaded {
            previous_active: Some(previous.active_id()),
            active,
            ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use daas_envelope::DataKey;

    use super::*;

    fn poisoned() -> Arc<Keys> {
        let keys = Arc::new(Keys::from_ring(
            KeyRing::new(DataKey::generate(), []).expect("ring"),
        ));
        let k = keys.clone();
        let result = std::thread::spawn(move || {
            let _guard = k.ring.write().expect("not yet poisoned");
            panic!("poison the key ring lock");
        })
        .join();
        assert!(result.is_err());
        assert!(keys.ring.is_poisoned());
        keys
    }

    #[test]
    fn a_poisoned_ring_still_seals_and_never_accepts_plaintext() {
        let keys = poisoned();
        let cipher = keys.cipher();
        let secret = b"MARKER-this-must-never-be-stored-in-clear";
        let stored = cipher.encrypt(b"/registry/secrets/a", secret, 1);
        assert!(stored.starts_with(b"k3e"), "not sealed");
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret),
            "plaintext stored"
        );
        assert_eq!(
            cipher
                .decrypt(b"/registry/secrets/a", &stored)
                .expect("opens")
                .plaintext,
            secret
        );
        assert!(
            cipher.decrypt(b"/registry/secrets/a", secret).is_err(),
            "plaintext accepted as a stored value"
        );
        assert!(keys.active_id().is_some());
        assert!(!keys.is_null());
    }

    #[test]
    fn a_reload_that_finds_the_same_keys_keeps_the_ring_and_its_data_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring_dir = daas_envelope::KeyRingDir::new(dir.path().join("keys"));
        let first = ring_dir.init().expect("init");
        let keys = Keys::from_provider(Box::new(ring_dir.clone())).expect("load");
        let before = keys.ring().expect("ring");
        let reloaded = keys.reload().expect("reload");
        assert_eq!(
            (reloaded.previous_active, reloaded.active),
            (Some(first), first)
        );
        assert!(Arc::ptr_eq(&before, &keys.ring().expect("ring")));
        // Same DEK: the envelope's DEK id (bytes 16..32) is unchanged.
        let a = before.encrypt(b"/k", b"v", 1);
        let b = keys.cipher().encrypt(b"/k", b"v", 2);
        assert_eq!(a[16..32], b[16..32]);
        // A rotation does replace it.
        let second = ring_dir.rotate().expect("rotate");
        keys.reload().expect("reload");
        assert_eq!(keys.active_id(), Some(second));
        assert!(!Arc::ptr_eq(&before, &keys.ring().expect("ring")));
    }

    #[test]
    fn a_poisoned_ring_still_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring_dir = daas_envelope::KeyRingDir::new(dir.path().join("keys"));
        let first = ring_dir.init().expect("init");
        let keys = Arc::new(Keys::from_provider(Box::new(ring_dir.clone())).expect("load"));
        let k = keys.clone();
        let _ = std::thread::spawn(move || {
            let _guard = k.ring.write().expect("not yet poisoned");
            panic!("poison");
        })
        .join();
        let second = ring_dir.rotate().expect("rotate");
        let reloaded = keys.reload().expect("reload");
        assert_eq!(reloaded.previous_active, Some(first));
        assert_eq!(reloaded.active, second);
        assert_eq!(keys.active_id(), Some(second));
    }
}
