//! The key ring the shim encrypts with, reloadable while serving.

use std::sync::{Arc, RwLock};

use daas_envelope::{KeyId, KeyProvider, KeyRing, NullCipher, ProviderError, ValueCipher};

enum Source {
    Provider(Box<dyn KeyProvider>),
    Fixed,
    /// Benchmarks only: measures the cost of encryption against the same path without it.
    Null,
}

/// The current cipher plus where it comes from. Rotation = write a new ring through the
/// provider (`nautilus-master keys rotate`), then [`Keys::reload`] (periodic, or the admin API):
/// new writes use the new active key immediately, old values stay readable.
pub struct Keys {
    source: Source,
    ring: RwLock<Option<Arc<KeyRing>>>,
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
            ring: RwLock::new(Some(Arc::new(ring))),
        })
    }

    /// A fixed ring that never reloads (tests, tools).
    pub fn from_ring(ring: KeyRing) -> Self {
        Self {
            source: Source::Fixed,
            ring: RwLock::new(Some(Arc::new(ring))),
        }
    }

    /// **No encryption.** For the benchmark that measures encryption overhead; never served
    /// by the CLI.
    pub fn null_for_benchmarks() -> Self {
        Self {
            source: Source::Null,
            ring: RwLock::new(None),
        }
    }

    /// The cipher for one request (a cheap `Arc` clone; a concurrent reload does not affect it).
    pub fn cipher(&self) -> Arc<dyn ValueCipher> {
        match self.ring() {
            Some(ring) => ring,
            None => Arc::new(NullCipher),
        }
    }

    pub fn ring(&self) -> Option<Arc<KeyRing>> {
        self.ring.read().ok().and_then(|r| r.clone())
    }

    pub fn active_id(&self) -> Option<KeyId> {
        self.ring().map(|r| r.active_id())
    }

    pub fn describe(&self) -> String {
        match &self.source {
            Source::Provider(p) => p.describe(),
            Source::Fixed => "fixed key ring".into(),
            Source::Null => "NONE (benchmark null cipher)".into(),
        }
    }

    /// Re-reads the ring. On error the current ring stays in use.
    pub fn reload(&self) -> Result<Reloaded, ProviderError> {
        let ring = match &self.source {
            Source::Provider(provider) => Arc::new(provider.load()?),
            Source::Fixed | Source::Null => {
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
        let previous_active = match self.ring.write() {
            Ok(mut slot) => slot.replace(ring).map(|r| r.active_id()),
            Err(_) => None,
        };
        Ok(Reloaded {
            previous_active,
            active,
            ids,
        })
    }
}
