//! Counters for one side of the bridge: plain atomics, so any metrics exporter can read them.
//!
//! Byte directions are named relative to the enclave on both sides: `bytes_in` flows toward
//! the enclave (ingress requests, egress responses), `bytes_out` away from it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; share with `Arc`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Ingress connections accepted (TCP on the parent, vsock in the enclave).
    pub ingress_connections: AtomicU64,
    /// Egress connections (enclave-originated) accepted or opened.
    pub egress_connections: AtomicU64,
    /// Credentials requests served (parent) or made (enclave).
    pub credentials_requests: AtomicU64,
    /// Connections currently being forwarded.
    pub active: AtomicU64,
    /// Bytes toward the enclave.
    pub bytes_in: AtomicU64,
    /// Bytes away from the enclave.
    pub bytes_out: AtomicU64,
    /// Connections refused by policy: a target off the allow-list, or a peer CID that is not
    /// the enclave's.
    pub denied: AtomicU64,
    /// Malformed, oversized or truncated egress headers.
    pub bad_headers: AtomicU64,
    /// Connections that failed for another reason (connect error, I/O error, idle timeout).
    pub failures: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // field-for-field copy of Counters
pub struct CountersSnapshot {
    pub ingress_connections: u64,
    pub egress_connections: u64,
    pub credentials_requests: u64,
    pub active: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub denied: u64,
    pub bad_headers: u64,
    pub failures: u64,
}

impl Counters {
    /// Reads every counter (each individually atomic; the set is not a single instant).
    pub fn snapshot(&self) -> CountersSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            ingress_connections: r(&self.ingress_connections),
            egress_connections: r(&self.egress_connections),
            credentials_requests: r(&self.credentials_requests),
            active: r(&self.active),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            denied: r(&self.denied),
            bad_headers: r(&self.bad_headers),
            failures: r(&self.failures),
        }
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Holds one `active` slot for as long as it lives.
pub(crate) struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    pub(crate) fn new(active: &'a AtomicU64) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        Self(active)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
