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
    /// Every object id written, created or deleted, plus every record id named by a package
    /// event (a slash changes the cluster's table, not the record, but names the record).
    pub objects: BTreeSet<Address>,
    /// The package's events in order.
    pub events: Vec<PackageEvent>,
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
                if let Some(id) = c.object_id.as_deref().and_then(|s| s.parse().ok()) {
                    out.objects.insert(id);
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
    "transactions.effects.changed_objects",
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

    /// Replaces the cursor (temp file, fsync, rename).
    pub fn store(&self, sequence: u64) -> Result<(), ChainError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir).map_err(|e| self.err(e))?;
        writeln!(tmp.1, "{sequence}").map_err(|e| self.err(e))?;
        tmp.1.sync_all().map_err(|e| self.err(e))?;
        std::fs::rename(&tmp.0, &self.path).map_err(|e| self.err(e))
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    for attempt in 0u32..16 {
        let path = dir.join(format!(
            ".cursor.{}.{}.{attempt}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "cannot create a temporary cursor file",
    ))
}

/// Shared, lock-free state of a running follower (for readiness and metrics).
#[derive(Debug, Default)]
pub struct FollowerStatus {
    streaming: AtomicBool,
    cursor: AtomicU64,
    has_cursor: AtomicBool,
}

impl FollowerStatus {
    /// True while the stream is up and delivering.
    pub fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Acquire)
    }

    /// The last handled checkpoint.
    pub fn cursor(&self) -> Option<u64> {
        self.has_cursor
            .load(Ordering::Acquire)
            .then(|| self.cursor.load(Ordering::Acquire))
    }

    /// Marks the stream up or down. [`Follower::run`] does this; it is public so a reader
    /// driven by another source of checkpoints (or a test) can report the same way.
    pub fn set_streaming(&self, up: bool) {
        self.streaming.store(up, Ordering::Release);
    }

    fn set_cursor(&self, c: u64) {
        self.cursor.store(c, Ordering::Release);
        self.has_cursor.store(true, Ordering::Release);
    }
}

/// What the handler is told.
#[derive(Debug)]
pub enum FollowEvent {
    /// The stream (re)connected; anything cached before may be stale.
    Connected,
    /// One checkpoint's changes.
    Checkpoint(CheckpointChanges),
    /// The stream broke; the follower reconnects after a backoff.
    Disconnected(ChainError),
}

/// Follows checkpoints for one package from a persisted cursor.
pub struct Follower {
    client: sui_rpc::Client,
    package: Package,
    cursor: CursorFile,
    status: Arc<FollowerStatus>,
}

impl Follower {
    pub fn new(client: sui_rpc::Client, package: Package, cursor: CursorFile) -> Follower {
        Follower {
            client,
            package,
            cursor,
            status: Arc::default(),
        }
    }

    pub fn status(&self) -> Arc<FollowerStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `handler` fails (its error is returned) or the task is dropped. Without a
    /// stored cursor it starts at the chain tip (a new reader reads current state anyway).
    pub async fn run<H>(self, mut handler: H) -> Result<(), ChainError>
    where
        H: FnMut(FollowEvent) -> Result<(), ChainError>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            let stored = self.cursor.load()?;
            if let Some(c) = stored {
                self.status.set_cursor(c);
            }
            let mut request = CheckpointStreamRequest::default();
            request.read_mask = Some(FieldMask::from_paths(CHECKPOINT_MASK));
            request.start = match stored {
                Some(c) => CheckpointStreamStart::Checkpoint(c.saturating_add(1)),
                None => CheckpointStreamStart::Tip,
            };
            let stream = self.client.stream_checkpoints(request);
            pin_mut!(stream);
            let mut last = stored;
            let mut announced = false;
            let failure = loop {
                let Some(item) = stream.next().await else {
                    break ChainError::Unreachable {
                        url: self.client.uri().to_string(),
                        reason: "checkpoint stream ended".into(),
                    };
                };
                let frame = match item {
                    Ok(f) => f,
                    Err(s) => break ChainError::rpc("SubscribeCheckpoints", s),
                };
                if !announced {
                    announced = true;
                    self.status.set_streaming(true);
                    handler(FollowEvent::Connected)?;
                    backoff = Duration::from_millis(100);
                }
                if last.is_some_and(|l| frame.cursor <= l) {
                    continue; // already handled (replayed after a reconnect)
                }
                if let Some(checkpoint) = &frame.checkpoint {
                    let changes = CheckpointChanges::from_checkpoint(
                        &self.package,
                        frame.cursor,
                        checkpoint,
                    )?;
                    handler(FollowEvent::Checkpoint(changes))?;
                }
                self.cursor.store(frame.cursor)?;
                self.status.set_cursor(frame.cursor);
                last = Some(frame.cursor);
            };
            self.status.set_streaming(false);
            tracing::warn!(error = %failure, ?backoff, "checkpoint stream lost; reconnecting");
            handler(FollowEvent::Disconnected(failure))?;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
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
