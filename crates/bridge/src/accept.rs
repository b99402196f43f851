//! The accept loop every listener in the bridge runs: parent ingress, egress and credentials,
//! enclave egress and ingress forwarders.
//!
//! One loop, so that limits, cancellation and shutdown behave the same everywhere: at most
//! `max_connections` connections at once (the next accept waits for a permit), finished
//! connections are reaped as they end, an accept error is logged and retried after a short
//! pause (so a persistent error such as EMFILE cannot spin), and cancellation stops accepting
//! and aborts every connection still open. What a connection does, which counter it bumps and
//! which span it runs in is the caller's `handle`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long to wait after a failed accept before the next one.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts with `accept` until `cancel` fires, running `handle(conn)`'s future as a task per
/// connection while holding one of `max_connections` permits (at least one).
///
/// `accept` may refuse a connection itself (e.g. one from the wrong CID) by dropping it and
/// accepting the next; only I/O errors come back here, logged as "`{what}` accept failed".
/// `handle` runs synchronously on the accept loop, so it is the place to count the
/// connection and build its span; the future it returns is what the task runs. Returning (on
/// cancellation) drops the `JoinSet`, which aborts every open connection.
pub(crate) async fn accept_loop<A, AF, T, F, Fut>(
    mut accept: A,
    max_connections: usize,
    cancel: CancellationToken,
    what: &'static str,
    mut handle: F,
) where
    A: FnMut() -> AF,
    AF: Future<Output = io::Result<T>>,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        // Waiting for a permit must not outlast cancellation: a loop at its limit with
        // long-lived connections would otherwise keep shutdown waiting on them.
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            r = accept() => r,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "{what} accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let task = handle(conn);
        conns.spawn(async move {
            // Held until the connection's future has finished (or is aborted).
            let _permit = permit;
            task.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// A stand-in listener: connections (each living until its oneshot fires or drops) and
    /// errors arrive on a channel.
    type Conn = io::Result<oneshot::Receiver<()>>;

    async fn next(rx: &tokio::sync::Mutex<mpsc::UnboundedReceiver<Conn>>) -> Conn {
        match rx.lock().await.recv().await {
            Some(r) => r,
            // The test is over: park, as a listener with no clients does.
            None => std::future::pending().await,
        }
    }

    /// A running loop over the stand-in listener, and what it has done.
    struct Harness {
        tx: mpsc::UnboundedSender<Conn>,
        started: Arc<AtomicUsize>,
        finished: Arc<AtomicUsize>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    /// Counted as finished whether the connection completes or is aborted.
    struct Finish(Arc<AtomicUsize>);

    impl Drop for Finish {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn start(max: usize) -> Harness {
        let (tx, rx) = mpsc::unbounded_channel();
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (started, finished, cancel) = (started.clone(), finished.clone(), cancel.clone());
            async move {
                let rx = tokio::sync::Mutex::new(rx);
                accept_loop(
                    || next(&rx),
                    max,
                    cancel,
                    "Test",
                    |done| {
                        started.fetch_add(1, Ordering::SeqCst);
                        let finish = Finish(finished.clone());
                        async move {
                            let _finish = finish;
                            let _ = done.await;
                        }
                    },
                )
                .await;
            }
        });
        Harness {
            tx,
            started,
            finished,
            cancel,
            task,
        }
    }

    impl Harness {
        fn connect(&self) -> oneshot::Sender<()> {
            let (end, done) = oneshot::channel();
            self.tx.send(Ok(done)).expect("loop is running");
            end
        }

        fn started(&self) -> usize {
            self.started.load(Ordering::SeqCst)
        }

        fn finished(&self) -> usize {
            self.finished.load(Ordering::SeqCst)
        }

        /// Cancels, waits for the loop to end, and says how many connections finished.
        async fn stop(self) -> usize {
            self.cancel.cancel();
            // Under the paused clock an idle runtime jumps to this deadline at once, so a
            // loop that ignores cancellation fails here instead of hanging.
            tokio::time::timeout(Duration::from_secs(3600), self.task)
                .await
                .expect("the loop stops on cancel")
                .expect("the loop does not panic");
            self.finished.load(Ordering::SeqCst)
        }
    }

    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_connections_run_at_once_and_cancel_aborts_the_rest() {
        let h = start(2);
        let mut ends: Vec<_> = (0..3).map(|_| h.connect()).collect();
        settle().await;
        assert_eq!(h.started(), 2, "the third waits for a permit");
        drop(ends.remove(0));
        settle().await;
        assert_eq!(h.started(), 3, "a finished one frees its permit");
        assert_eq!(h.finished(), 1);
        drop(ends.remove(0));
        settle().await;
        assert_eq!(h.finished(), 2);
        assert_eq!(h.stop().await, 3, "cancel aborts the open one");
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_loop_waiting_for_a_permit() {
        let h = start(1);
        let _open = h.connect();
        let _waiting = h.connect();
        settle().await;
        assert_eq!(h.started(), 1, "at the limit");
        assert_eq!(h.stop().await, 1, "cancel aborts the open one");
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_are_retried_after_a_pause() {
        let h = start(2);
        h.tx.send(Err(io::Error::other("EMFILE")))
            .expect("loop is running");
        let _end = h.connect();
        settle().await;
        assert_eq!(h.started(), 0, "pausing after the error");
        tokio::time::advance(ACCEPT_RETRY).await;
        settle().await;
        assert_eq!(h.started(), 1, "accepting again after the pause");
        assert_eq!(h.stop().await, 1, "cancel aborts the open one");
    }
}
