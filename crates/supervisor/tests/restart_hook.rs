//! `Supervisor::before_restart` with a child that always fails: the hook is asked before each
//! restart (never before the first start) and a `Stop` ends supervision cleanly. The process
//! group, backoff and stop paths are covered by nautilus-master's `k3s_supervisor` tests and
//! staker-agent's `run` tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use daas_supervisor::{
    RestartDecision, RestartPolicy, Spawned, Supervisor, SupervisorConfig, SupervisorState,
};

#[tokio::test]
async fn the_hook_decides_each_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let starts = dir.path().join("starts");
    let mut config = SupervisorConfig::new(
        "/bin/sh",
        vec![
            "-c".into(),
            format!("echo x >> '{}'; exit 1", starts.display()).into(),
        ],
    );
    config.name = "failing".into();
    config.restart = RestartPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        ..RestartPolicy::default()
    };
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let supervisor = Supervisor::new(config, Spawned).before_restart(move |attempt| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            assert_eq!(attempt, n, "the attempt number is passed");
            if n < 3 {
                RestartDecision::Restart
            } else {
                RestartDecision::Stop
            }
        }
    });
    let state = supervisor.subscribe();
    supervisor
        .run(std::future::pending())
        .await
        .expect("a Stop is a clean end");
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    let started = std::fs::read_to_string(&starts).expect("starts");
    assert_eq!(started.lines().count(), 3, "first start + two restarts");
    assert_eq!(*state.borrow(), SupervisorState::Stopped);
}
