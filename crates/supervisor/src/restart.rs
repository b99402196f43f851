//! When and how often a child that exits on its own is started again.

use std::time::Duration;

use crate::SupervisorError;

/// When and how often a child that exits on its own is started again.
///
/// The delay starts at `initial_backoff` and doubles with every restart, up to `max_backoff`.
/// A child that stayed up for `reset_after` counts as healthy: the next delay is
/// `initial_backoff` again. Exits sooner than `reset_after` are rapid failures; with
/// `max_rapid_failures: Some(n)`, the n-th consecutive one ends supervision with
/// [`SupervisorError::GaveUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// First delay (default 1 s).
    pub initial_backoff: Duration,
    /// Longest delay (default 60 s).
    pub max_backoff: Duration,
    /// Uptime after which the backoff resets (default 2 min).
    pub reset_after: Duration,
    /// Give up after this many consecutive rapid failures (default: never).
    pub max_rapid_failures: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
            max_rapid_failures: None,
        }
    }
}

/// The backoff state between restarts.
#[derive(Debug)]
pub(crate) struct Restarts {
    policy: RestartPolicy,
    /// Exits since the child last stayed up for `reset_after` (the restart attempt number).
    streak: u32,
    /// Consecutive rapid exits.
    rapid: u32,
}

impl Restarts {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            streak: 0,
            rapid: 0,
        }
    }

    /// After an exit of a child (called `name`) that ran for `uptime`: the restart attempt
    /// number and the delay before it, or the error that ends supervision.
    pub(crate) fn after_exit(
        &mut self,
        name: &str,
        uptime: Duration,
    ) -> Result<(u32, Duration), SupervisorError> {
        if uptime >= self.policy.reset_after {
            self.streak = 0;
            self.rapid = 0;
        } else {
            self.rapid = self.rapid.saturating_add(1);
            if let Some(max) = self.policy.max_rapid_failures
                && self.rapid >= max
            {
                return Err(SupervisorError::GaveUp {
                    name: name.to_owned(),
                    failures: self.rapid,
                    window: self.policy.reset_after,
                });
            }
        }
        self.streak = self.streak.saturating_add(1);
        let doublings = (self.streak - 1).min(31);
        let delay = self
            .policy
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.policy.max_backoff);
        Ok((self.streak, delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(max_rapid_failures: Option<u32>) -> RestartPolicy {
        RestartPolicy {
            initial_backoff: S,
            max_backoff: 60 * S,
            reset_after: 120 * S,
            max_rapid_failures,
        }
    }

    /// Feeds uptimes (seconds) to a fresh backoff; returns what each exit led to.
    fn check(max: Option<u32>, uptimes: &[u64], expected: &[Result<(u32, u64), u32>]) {
        let mut restarts = Restarts::new(policy(max));
        let got: Vec<Result<(u32, u64), u32>> = uptimes
            .iter()
            .map(
                |&up| match restarts.after_exit("k3s", Duration::from_secs(up)) {
                    Ok((attempt, delay)) => Ok((attempt, delay.as_secs())),
                    Err(SupervisorError::GaveUp { failures, .. }) => Err(failures),
                    Err(e) => panic!("unexpected {e}"),
                },
            )
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        check(
            None,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((3, 4)),
                Ok((4, 8)),
                Ok((5, 16)),
                Ok((6, 32)),
                Ok((7, 60)),
                Ok((8, 60)),
                Ok((9, 60)),
            ],
        );
    }

    #[test]
    fn backoff_resets_after_a_long_run() {
        check(
            None,
            &[1, 1, 1, 120, 5, 500],
            &[
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((3, 4)),
                Ok((1, 1)),
                Ok((2, 2)),
                Ok((1, 1)),
            ],
        );
    }

    #[test]
    fn gives_up_after_rapid_failures() {
        check(Some(3), &[0, 0, 0], &[Ok((1, 1)), Ok((2, 2)), Err(3)]);
        // A long run in between starts the count again.
        check(
            Some(2),
            &[0, 200, 0, 0],
            &[Ok((1, 1)), Ok((1, 1)), Ok((2, 2)), Err(2)],
        );
        let err = Restarts::new(policy(Some(1)))
            .after_exit("kubelet", Duration::ZERO)
            .expect_err("gives up at once");
        assert!(
            err.to_string().starts_with("kubelet exited 1 times"),
            "{err}"
        );
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut restarts = Restarts::new(policy(None));
        for _ in 0..100 {
            let (_, delay) = restarts
                .after_exit("k3s", Duration::ZERO)
                .expect("never gives up");
            assert!(delay <= 60 * S);
        }
    }
}
