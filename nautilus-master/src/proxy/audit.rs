//! Audit records of authentication decisions, and the sampler that keeps refusals from
//! flooding the log: refusals are what an attacker controls, so at most a fixed number per
//! second are written, and the rest are counted (`daas_proxy_audit_suppressed`).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::auth::Identity;

/// One structured audit record per authentication decision. Never the token.
pub(crate) fn record(
    identity: Option<&Identity>,
    verb: &str,
    path: &str,
    remote: SocketAddr,
    result: &str,
    reason: &str,
) {
    info!(
        target: "audit",
        user = identity.map_or("-", |i| i.username.as_str()),
        role = identity.map_or("-", |i| i.role.as_str()),
        verb,
        path,
        remote = %remote,
        result,
        reason,
        "authn"
    );
}

/// Whether to write a sampled record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Write it; `suppressed` records were dropped since the last one written.
    Log {
        suppressed: u64,
    },
    Suppress,
}

/// At most `per_second` records per one-second window.
pub(crate) struct Sampler {
    per_second: u32,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
}

impl Sampler {
    pub(crate) fn new(per_second: u32) -> Self {
        Sampler {
            per_second,
            window: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }

    pub(crate) fn admit(&self) -> Admit {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Admit {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.written = 0;
        }
        if w.written < self.per_second {
            w.written += 1;
            Admit::Log {
                suppressed: std::mem::take(&mut w.suppressed),
            }
        } else {
            w.suppressed += 1;
            Admit::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_per_second_and_the_rest_is_counted() {
        let s = Sampler::new(2);
        let t0 = Instant::now();
        assert_eq!(s.admit_at(t0), Admit::Log { suppressed: 0 });
        assert_eq!(s.admit_at(t0), Admit::Log { suppressed: 0 });
        for _ in 0..5 {
            assert_eq!(s.admit_at(t0), Admit::Suppress);
        }
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(s.admit_at(t1), Admit::Log { suppressed: 5 });
        assert_eq!(s.admit_at(t1), Admit::Log { suppressed: 0 });
    }
}
