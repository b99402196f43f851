//! Copying both directions of a forwarded connection, with half-close, bounded buffers and an
//! idle timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::metrics::Counters;

/// Per-connection limits, shared by both sides.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A connection with no bytes in either direction for this long is closed (`"5m"`).
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Connecting to a TCP target or over vsock must finish within this (`"10s"`).
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// An egress header (or credentials request) must arrive within this (`"10s"`).
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Copy buffer per direction, in bytes: memory per connection is about twice this.
    pub buffer_size: usize,
    /// Connections forwarded at once per listener; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            buffer_size: 16 * 1024,
            max_connections: 1024,
        }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// How a splice ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpliceError {
    /// Neither direction moved a byte for the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Bytes moved, by direction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Moved {
    pub(crate) toward_enclave: u64,
    pub(crate) from_enclave: u64,
}

/// Copies `outer` → `inner` (toward the enclave) and `inner` → `outer` until both directions
/// have seen end-of-stream. An end-of-stream on one side is passed on as a write shutdown
/// (half-close), and the other direction keeps flowing.
pub(crate) async fn splice<O, I>(
    outer: O,
    inner: I,
    limits: &Limits,
    counters: &Counters,
) -> Result<Moved, SpliceError>
where
    O: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (mut outer_r, mut outer_w) = tokio::io::split(outer);
    let (mut inner_r, mut inner_w) = tokio::io::split(inner);
    let activity = Activity::new();
    let buffer = limits.buffer_size.max(1024);
    let toward = copy_half(
        &mut outer_r,
        &mut inner_w,
        buffer,
        &activity,
        &counters.bytes_in,
    );
    let from = copy_half(
        &mut inner_r,
        &mut outer_w,
        buffer,
        &activity,
        &counters.bytes_out,
    );
    tokio::select! {
        r = async { tokio::try_join!(toward, from) } => {
            let (toward_enclave, from_enclave) = r?;
            Ok(Moved { toward_enclave, from_enclave })
        }
        () = activity.idle(limits.idle_timeout) => Err(SpliceError::Idle(limits.idle_timeout)),
    }
}

async fn copy_half<R, W>(
    r: &mut R,
    w: &mut W,
    buffer: usize,
    activity: &Activity,
    counter: &AtomicU64,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the peer may already be gone, which is not an error.
            let _ = w.shutdown().await;
            return Ok(total);
        }
        activity.touch();
        w.write_all(&buf[..n]).await?;
        activity.touch();
        total += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The time of the last byte moved, for the idle timeout.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed_and_busy_ones_are_not() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let (outer, mut client) = tokio::io::duplex(64);
        let (inner, mut server) = tokio::io::duplex(64);
        let splicing = tokio::spawn(async move {
            let counters = Counters::default();
            splice(outer, inner, &limits, &counters).await
        });
        // Traffic every 50 s (paused clock) keeps it open past the 60 s limit.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(50)).await;
            client.write_all(b"ping").await.expect("write");
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.expect("read");
            assert_eq!(&got, b"ping");
        }
        // Then silence: the splice ends with Idle once 60 s pass without a byte.
        let r = splicing.await.expect("splice task");
        assert!(matches!(r, Err(SpliceError::Idle(_))), "{r:?}");
    }

    #[tokio::test]
    async fn half_close_passes_through_and_the_other_direction_continues() {
        let counters = Counters::default();
        let (outer, mut client) = tokio::io::duplex(1024);
        let (inner, mut server) = tokio::io::duplex(1024);
        let limits = Limits::default();
        let splicing = async { splice(outer, inner, &limits, &counters).await };
        let peers = async {
            client.write_all(b"request").await.expect("write");
            client.shutdown().await.expect("half-close");
            let mut req = Vec::new();
            server
                .read_to_end(&mut req)
                .await
                .expect("server sees EOF after the request");
            assert_eq!(req, b"request");
            server
                .write_all(b"response after EOF")
                .await
                .expect("write back");
            server.shutdown().await.expect("close");
            let mut resp = Vec::new();
            client.read_to_end(&mut resp).await.expect("client reads");
            assert_eq!(resp, b"response after EOF");
        };
        let (moved, ()) = tokio::join!(splicing, peers);
        let moved = moved.expect("clean splice");
        assert_eq!(moved.toward_enclave, 7);
        assert_eq!(moved.from_enclave, 18);
        let snap = counters.snapshot();
        assert_eq!((snap.bytes_in, snap.bytes_out), (7, 18));
    }
}
