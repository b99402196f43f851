//! Following the chain from a persisted checkpoint cursor.
//!
//! [`Follower`] streams checkpoints with `sui_rpc`'s resumable `stream_checkpoints` (history
//! replay through `ListCheckpoints`, then the live tail through `SubscribeCheckpoints`, gaps
//! repaired), hands each checkpoint's relevant changes to a handler, and only then persists the
//! checkpoint number. On restart it resumes at cursor + 1, and frames at or below the cursor are
//! skipped, so no checkpoint is lost or handed over twice — except the one being handled when
//! the process died, which is handed over again (handlers must be idempotent, as cache
//! eviction is).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use daas_chain_types::{Package, PackageEvent};
use futures_util::{StreamExt, pin_mut};
use prost_types::FieldMask;
use sui_rpc::client::{CheckpointStreamRequest, CheckpointStreamStart};
use sui_rpc::field::FieldMaskUtil;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::Address;

use crate::ChainError;
use crate::effects::decode_event;

/// What one checkpoint changed that a K3s-DaaS reader may care about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointChanges {
    pub sequence: u64,
    /// Every object of the package's types written, created or deleted, plus every record id
    /// named by a package event (a slash changes the cluster's table, not the record, but
    /// names the record).
    pub objects: BTreeSet<Address>,
    /// The package's events in order.
    pub events: Vec<PackageEvent>,
    /// The version each written object of `objects` has after this checkpoint.
    pub versions: std::collections::BTreeMap<Address, u64>,
}

impl CheckpointChanges {
    /// Extracts the changes from a checkpoint (read mask [`CHECKPOINT_MASK`]).
    pub fn from_checkpoint(
        package: &Package,
        sequence: u64,
        checkpoint: &proto::Checkpoint,
    ) -> Result<CheckpointChanges, ChainError> {
        let mut out = CheckpointChanges {
            sequence,
            ..Default::default()
        };
        for tx in &checkpoint.transactions {
            for c in tx.effects.iter().flat_map(|e| e.changed_objects.iter()) {
                let Some(id) = c.object_id.as_deref().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                // Only the package's own objects matter (records, the cluster); on a busy
                // network most changes are other packages'. An object without a type is kept.
                let ours = c
                    .object_type
                    .as_deref()
                    .and_then(|t| t.parse::<sui_sdk_types::StructTag>().ok())
                    .is_none_or(|t| *t.address() == package.id);
                if ours {
                    out.objects.insert(id);
                    if let Some(v) = c.output_version {
                        out.versions.insert(id, v);
                    }
                }
            }
            for ev in tx.events.iter().flat_map(|e| e.events.iter()) {
                if let Some(event) = decode_event(package, ev)? {
                    if let Some(record) = event.record_id() {
                        out.objects.insert(record);
                    }
                    out.events.push(event);
                }
            }
        }
        Ok(out)
    }
}

/// Fields the follower reads from each checkpoint.
pub const CHECKPOINT_MASK: &[&str] = &[
    "sequence_number",
    "transactions.digest",
    "transactions.effects.changed_objects.object_id",
    "transactions.effects.changed_objects.object_type",
    "transactions.effects.changed_objects.output_version",
    "transactions.events.events",
];

/// The last fully handled checkpoint, in a small file written atomically.
#[derive(Clone, Debug)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    pub fn new(path: impl Into<PathBuf>) -> CursorFile {
        CursorFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl std::fmt::Display) -> ChainError {
        ChainError::Cursor {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// `Ok(None)` when no cursor was stored yet.
    pub fn load(&self) -> Result<Option<u64>, ChainError> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| self.err(format!("not a checkpoint number: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Replaces the cursor (temp file in the same directory, fsync, rename).
    pub fn store(&self, sequence: u64) -> Result<(), ChainError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| self.err(e))?;
        writeln!(tmp, "{sequence}").map_err(|e| self.err(e))?;
        tmp.as_file().sync_all().map_err(|e| self.err(e))?;
        tmp.persist(&self.path).map_err(|e| self.err(e.error))?;
        Ok(())
    }
}

/// Milliseconds since the first call in this process (a monotonic clock for freshness).
fn monotonic_ms() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Default for [`Follower::with_stale_after`]: Sui seals a checkpoint about every quarter
/// second and the devnet heartbeats at most every 10 s, so 15 s of silence means the stream is
/// not delivering, whatever the transport says.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15);

/// Shared, lock-free state of a running follower (for readiness and metrics).
#[derive(Debug)]
pub struct FollowerStatus {
    /// Connected and caught up with the tip seen at connect time.
    streaming: AtomicBool,
    /// [`monotonic_ms`] of the last frame.
    last_frame_ms: AtomicU64,
    stale_after_ms: AtomicU64,
    cursor: AtomicU64,
    has_cursor: AtomicBool,
}

impl Default for FollowerStatus {
    fn default() -> Self {
        FollowerStatus {
            streaming: AtomicBool::new(false),
            last_frame_ms: AtomicU64::new(0),
            stale_after_ms: AtomicU64::new(
                u64::try_from(DEFAULT_STALE_AFTER.as_millis()).unwrap_or(u64::MAX),
            ),
            cursor: AtomicU64::new(0),
            has_cursor: AtomicBool::new(false),
        }
    }
}

impl FollowerStatus {
    /// True while the stream is connected, caught up with the chain tip, and has delivered a
    /// frame within the stale-after window. Only then can a reader trust that every change
    /// reaches it.
    pub fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Acquire)
            && monotonic_ms().saturating_sub(self.last_frame_ms.load(Ordering::Acquire))
                <= self.stale_after_ms.load(Ordering::Acquire)
    }

    /// The last handled checkpoint.
    pub fn cursor(&self) -> Option<u64> {
        self.has_cursor
            .load(Ordering::Acquire)
            .then(|| self.cursor.load(Ordering::Acquire))
    }

    /// Marks the stream up (as of now) or down. [`Follower::run`] does this; it is public so a
    /// reader driven by another source of checkpoints (or a test) can report the same way.
    pub fn set_streaming(&self, up: bool) {
        if up {
            self.touch();
        }
        self.streaming.store(up, Ordering::Release);
    }

    fn touch(&self) {
        self.last_frame_ms.store(monotonic_ms(), Ordering::Release);
    }

    fn set_cursor(&self, c: u64) {
        self.cursor.store(c, Ordering::Release);
        self.has_cursor.store(true, Ordering::Release);
    }
}

/// Clears `streaming` on every exit from [`Follower::run`] (errors, cancellation, panics).
struct NotStreamingOnDrop(Arc<FollowerStatus>);

impl Drop for NotStreamingOnDrop {
    fn drop(&mut self) {
        self.0.set_streaming(false);
    }
}

/// What the handler is told.
#[derive(Debug)]
pub enum FollowEvent {
    /// The stream (re)connected; anything cached before may be stale.
    Connected,
    /// One checkpoint's changes.
    Checkpoint(CheckpointChanges),
    /// The stream broke (or went silent); the follower reconnects after a backoff.
    Disconnected(ChainError),
}

/// Follows checkpoints for one package from a persisted cursor.
pub struct Follower {
    client: sui_rpc::Client,
    package: Package,
    cursor: CursorFile,
    status: Arc<FollowerStatus>,
    stale_after: Duration,
}

impl Follower {
    pub fn new(client: sui_rpc::Client, package: Package, cursor: CursorFile) -> Follower {
        Follower {
            client,
            package,
            cursor,
            status: Arc::default(),
            stale_after: DEFAULT_STALE_AFTER,
        }
    }

    /// How long the stream may stay silent before it counts as lost (reconnect, and
    /// [`FollowerStatus::is_streaming`] turns false). Must exceed the chain's checkpoint interval.
    pub fn with_stale_after(self, stale_after: Duration) -> Follower {
        self.status.stale_after_ms.store(
            u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        Follower {
            stale_after,
            ..self
        }
    }

    pub fn status(&self) -> Arc<FollowerStatus> {
        Arc::clone(&self.status)
    }

    fn lost(&self, reason: impl Into<String>) -> ChainError {
        ChainError::Unreachable {
            url: self.client.uri().to_string(),
            reason: reason.into(),
        }
    }

    /// The chain's checkpoint height now (what "caught up" means for this connection).
    async fn tip(&self) -> Result<u64, ChainError> {
        let info = self
            .client
            .clone()
            .ledger_client()
            .get_service_info(sui_rpc::proto::sui::rpc::v2::GetServiceInfoRequest::default())
            .await
            .map_err(|s| ChainError::rpc("GetServiceInfo", s))?
            .into_inner();
        Ok(info.checkpoint_height.unwrap_or(0))
    }

    /// Runs until `handler` fails (its error is returned) or the task is dropped. Without a
    /// stored cursor it starts at the chain tip (a new reader reads current state anyway).
    ///
    /// The status reports streaming only once the stream has caught up with the tip seen at
    /// (re)connect time, and stops as soon as it fails, goes silent for the stale-after window,
    /// skips a checkpoint, or this function returns.
    pub async fn run<H>(self, mut handler: H) -> Result<(), ChainError>
    where
        H: FnMut(FollowEvent) -> Result<(), ChainError>,
    {
        let _guard = NotStreamingOnDrop(self.status.clone());
        let mut backoff = Duration::from_millis(100);
        loop {
            let stored = self.cursor.load()?;
            if let Some(c) = stored {
                self.status.set_cursor(c);
            }
            let failure = match self.tip().await {
                Err(e) => e,
                Ok(tip) => {
                    let (failure, delivered) = self.follow(stored, tip, &mut handler).await?;
                    if delivered {
                        backoff = Duration::from_millis(100);
                    }
                    failure
                }
            };
            self.status.set_streaming(false);
            tracing::warn!(error = %failure, ?backoff, "checkpoint stream lost; reconnecting");
            handler(FollowEvent::Disconnected(failure))?;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One connection, from the cursor: `Ok((why it ended, whether any frame arrived))`, or the
    /// handler's or the cursor file's error (fatal).
    async fn follow<H>(
        &self,
        stored: Option<u64>,
        tip: u64,
        handler: &mut H,
    ) -> Result<(ChainError, bool), ChainError>
    where
        H: FnMut(FollowEvent) -> Result<(), ChainError>,
    {
        let mut request = CheckpointStreamRequest::default();
        request.read_mask = Some(FieldMask::from_paths(CHECKPOINT_MASK));
        request.start = match stored {
            Some(c) => CheckpointStreamStart::Checkpoint(c.saturating_add(1)),
            None => CheckpointStreamStart::Tip,
        };
        let stream = self.client.stream_checkpoints(request);
        pin_mut!(stream);
        let mut last = stored;
        let mut delivered = false;
        loop {
            // sui-rpc retries transient transport errors inside the stream, indefinitely: a
            // partition shows up here only as silence.
            let item = match tokio::time::timeout(self.stale_after, stream.next()).await {
                Err(_) => {
                    return Ok((
                        self.lost(format!("no checkpoint for {:?}", self.stale_after)),
                        delivered,
                    ));
                }
                Ok(None) => return Ok((self.lost("checkpoint stream ended"), delivered)),
                Ok(Some(Err(s))) => {
                    return Ok((ChainError::rpc("SubscribeCheckpoints", s), delivered));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if !delivered {
                delivered = true;
                handler(FollowEvent::Connected)?;
            }
            self.status.touch();
            if last.is_some_and(|l| item.cursor <= l) {
                continue; // already handled (replayed after a reconnect)
            }
            if let Some(l) = last
                && (item.cursor != l + 1 || item.checkpoint.is_none())
            {
                return Ok((
                    self.lost(format!(
                        "checkpoint stream skipped from {l} to {} (payload {})",
                        item.cursor,
                        if item.checkpoint.is_some() {
                            "present"
                        } else {
                            "missing"
                        }
                    )),
                    delivered,
                ));
            }
            if let Some(checkpoint) = &item.checkpoint {
                let changes =
                    CheckpointChanges::from_checkpoint(&self.package, item.cursor, checkpoint)?;
                handler(FollowEvent::Checkpoint(changes))?;
            }
            self.cursor.store(item.cursor)?;
            self.status.set_cursor(item.cursor);
            last = Some(item.cursor);
            if item.cursor >= tip {
                self.status.set_streaming(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = CursorFile::new(dir.path().join("cursor"));
        assert_eq!(c.load().expect("load"), None);
        c.store(41).expect("store");
        c.store(42).expect("store");
        assert_eq!(c.load().expect("load"), Some(42));
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temp files left behind");
        std::fs::write(c.path(), "forty-two").expect("write");
        let err = c.load().expect_err("garbage");
        assert!(err.to_string().contains("not a checkpoint number"), "{err}");
    }
}
