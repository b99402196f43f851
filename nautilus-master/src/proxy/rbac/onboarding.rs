//! First-time setup per user: at most one attempt at a time for each user and none shared
//! between users, so a user whose setup hangs or always fails (a namespace stuck in
//! `Terminating`, one owned by someone else) delays nobody else. A failure is remembered with
//! exponential backoff: until it expires the user's requests get the remembered answer at
//! once, without calling the API server.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::RbacError;

/// First retry delay after a failed setup; doubles per further failure up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Users remembered (set up or failing); the least recently seen are forgotten first, and a
/// forgotten user's next request runs the (idempotent) setup again.
const CAPACITY: usize = 65_536;

/// A remembered failure.
struct Failure {
    last: Arc<RbacError>,
    failures: u32,
    retry_at: Instant,
}

/// One user's state: done, or the lock that serialises their attempts and the last failure.
#[derive(Default)]
struct UserSetup {
    ready: AtomicBool,
    attempt: tokio::sync::Mutex<Option<Failure>>,
}

/// Users' first-time setups (see the module documentation).
pub(super) struct Onboarding {
    users: Mutex<LruCache<String, Arc<UserSetup>>>,
    timeout: Duration,
}

impl Onboarding {
    /// `timeout` bounds one setup attempt.
    pub(super) fn new(timeout: Duration) -> Self {
        Onboarding {
            users: Mutex::new(LruCache::new(
                NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN),
            )),
            timeout,
        }
    }

    /// Runs `setup` for `user` unless it already succeeded (in this process) or failed less
    /// than its backoff ago. Concurrent calls for one user wait for the attempt in progress
    /// and share its outcome; calls for other users never wait for it.
    pub(super) async fn ensure<F, Fut>(&self, user: &str, setup: F) -> Result<(), RbacError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), RbacError>>,
    {
        let slot = {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            users
                .get_or_insert(user.to_owned(), || Arc::new(UserSetup::default()))
                .clone()
        };
        if slot.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut failure = slot.attempt.lock().await;
        if slot.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(f) = failure.as_ref()
            && now < f.retry_at
        {
            return Err(RbacError::Backoff {
                retry_in: f.retry_at - now,
                last: f.last.clone(),
            });
        }
        let outcome = match tokio::time::timeout(self.timeout, setup()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(RbacError::Timeout),
        };
        match outcome {
            Ok(()) => {
                slot.ready.store(true, Ordering::Release);
                *failure = None;
                Ok(())
            }
            Err(e) => {
                let failures = failure.as_ref().map_or(1, |f| f.failures.saturating_add(1));
                let last = Arc::new(e);
                *failure = Some(Failure {
                    last: last.clone(),
                    failures,
                    retry_at: Instant::now() + backoff(failures),
                });
                Err(RbacError::Failed(last))
            }
        }
    }
}

/// Delay before retrying after `failures` consecutive failures (≥ 1).
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn failing() -> RbacError {
        RbacError::NamespaceTerminating {
            namespace: "u-a".into(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    /// A user whose setup hangs does not hold up another user's; when it times out, it is
    /// remembered and not retried before its backoff, then retried.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_setup_delays_nobody_else() {
        let o = Arc::new(Onboarding::new(Duration::from_secs(10)));
        let started = Arc::new(tokio::sync::Notify::new());
        let hung = tokio::spawn({
            let (o, started) = (o.clone(), started.clone());
            async move {
                o.ensure("a", || async move {
                    started.notify_one();
                    std::future::pending::<Result<(), RbacError>>().await
                })
                .await
            }
        });
        started.notified().await;
        o.ensure("b", || async { Ok(()) }).await.unwrap();
        assert!(
            !hung.is_finished(),
            "b finished while a's setup is still running"
        );

        let err = hung.await.unwrap().unwrap_err();
        assert!(matches!(&err, RbacError::Failed(e) if matches!(**e, RbacError::Timeout)));

        let calls = AtomicUsize::new(0);
        let count = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let err = o.ensure("a", count).await.unwrap_err();
        assert!(matches!(err, RbacError::Backoff { .. }), "{err}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "retried within the backoff"
        );
        tokio::time::advance(FIRST_BACKOFF).await;
        o.ensure("a", count).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        o.ensure("a", count).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "set up once");
    }

    /// Concurrent first requests of one user run the setup once; consecutive failures back
    /// off longer each time.
    #[tokio::test(start_paused = true)]
    async fn one_attempt_at_a_time_and_growing_backoff() {
        let o = Arc::new(Onboarding::new(Duration::from_secs(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let slow_ok = |calls: Arc<AtomicUsize>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        };
        let a = tokio::spawn({
            let (o, c) = (o.clone(), calls.clone());
            async move { o.ensure("u", || slow_ok(c)).await }
        });
        let b = tokio::spawn({
            let (o, c) = (o.clone(), calls.clone());
            async move { o.ensure("u", || slow_ok(c)).await }
        });
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        for (attempt, wait) in [(1, 1), (2, 2), (3, 4)] {
            let err = o
                .ensure("v", || async { Err(failing()) })
                .await
                .unwrap_err();
            assert!(
                matches!(err, RbacError::Failed(_)),
                "attempt {attempt}: {err}"
            );
            tokio::time::advance(Duration::from_secs(wait) - Duration::from_millis(1)).await;
            let err = o.ensure("v", || async { Ok(()) }).await.unwrap_err();
            match err {
                RbacError::Backoff { retry_in, last } => {
                    assert_eq!(retry_in, Duration::from_millis(1), "attempt {attempt}");
                    assert!(matches!(*last, RbacError::NamespaceTerminating { .. }));
                }
                other => panic!("attempt {attempt}: {other}"),
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        o.ensure("v", || async { Ok(()) }).await.unwrap();
    }
}
