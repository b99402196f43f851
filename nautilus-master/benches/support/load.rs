//! What the proxy benches share: concurrent timed request loops, and on-CPU time per thread.

use std::future::Future;
use std::time::{Duration, Instant};

/// What the loops measured: latencies of successful requests that started after the warm-up
/// and finished before the end (sorted), failures in that window, and every request completed
/// (warm-up included, for CPU per request).
pub(crate) struct Timed {
    pub(crate) lat: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) total: usize,
}

/// Runs each request function in a loop of its own, concurrently, until `end`. A request
/// function answers whether its request succeeded.
pub(crate) async fn timed_loops<F, Fut>(loops: Vec<F>, measure_from: Instant, end: Instant) -> Timed
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let tasks: Vec<_> = loops
        .into_iter()
        .map(|mut request| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut errors, mut total) = (0, 0);
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let ok = request().await;
                    let done = Instant::now();
                    total += 1;
                    if t >= measure_from && done <= end {
                        if ok {
                            lat.push(done - t);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (lat, errors, total)
            })
        })
        .collect();
    let mut timed = Timed {
        lat: Vec::new(),
        errors: 0,
        total: 0,
    };
    for task in tasks {
        let (lat, errors, total) = task.await.unwrap();
        timed.lat.extend(lat);
        timed.errors += errors;
        timed.total += total;
    }
    timed.lat.sort_unstable();
    timed
}

/// Percentile `p` (0..=1) of `sorted` latencies; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// On-CPU nanoseconds of every thread of this process, with its name
/// (`/proc/self/task/*/{comm,schedstat}`).
pub(crate) fn thread_cpu_ns() -> Vec<(String, u64)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|task| {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let ns = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            (comm.trim().to_owned(), ns)
        })
        .collect()
}
