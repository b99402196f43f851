//! The freshness anchor: a [`Watermark`] kept **outside the datastore**, so a datastore swapped
//! for an older copy (or values written by a process that crashed) can be recognised at the
//! next start.
//!
//! # File
//!
//! One file, replaced atomically (temporary file in the same directory with mode 0600, fsync,
//! rename, fsync of the directory). It holds one envelope (`daas-envelope`, v3; a v2 one is
//! still read) sealed with the shim's key ring under the label [`ANCHOR_LABEL`], in place of an
//! etcd key; the shim refuses client writes to every key that starts with `\0k3s-daas/`
//! ([`RESERVED_PREFIX`](crate::validate::RESERVED_PREFIX)), so no value it seals for a client can
//! ever be passed off as an anchor. The plaintext is 28 bytes:
//!
//! ```text
//! offset  length  field
//!      0       3  magic      b"k3a"
//!      3       1  version    0x01
//!      4       8  revision   i64 BE: a revision the backend answered with
//!     12       8  floor      u64 BE: values at revisions above it carry sequence numbers ≥ floor
//!     20       8  next_seq   u64 BE: no higher sequence number had been handed out
//! ```
//!
//! The envelope's own sequence number is `next_seq` too.
//!
//! # Start
//!
//! [`start`] reads the backend's current revision and the anchor, then:
//! - current revision below the anchored one: the datastore was rolled back (restored from an
//!   older copy). Refused, unless [`Baseline::AcceptRollback`].
//! - no anchor but a datastore with writes: refused (a deleted anchor would hide a rollback),
//!   unless [`Baseline::AcceptRollback`] or [`Baseline::AcceptMissingAnchor`].
//! - otherwise the shim continues with the record `(revision, floor)` and sequence numbers from
//!   `next_seq + 2^32` ([`RESTART_GAP`]): a process that crashed after its last anchor write may
//!   have written values with sequence numbers from `next_seq` on (far fewer than 2^32, since
//!   the anchor is written every second), and starting above all of them keeps a replay of those
//!   values detectable once this process has recorded its own writes.
//!
//! The new anchor is written before the shim serves, then at most once a second while it changes
//! ([`spawn_writer`]) and once more at a clean shutdown.

use std::fs::{DirBuilder, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use daas_envelope::{DecryptError, KeyId, KeyRing};
use daas_etcd_proto::StatusRequest;

use crate::backend::Backend;
use crate::freshness::{Freshness, Watermark};
use crate::keys::Keys;

/// The label the anchor is sealed under, in place of an etcd key (reserved: see the module doc).
pub const ANCHOR_LABEL: &[u8] = b"\0k3s-daas/freshness-anchor";
/// Sequence numbers a restart skips: more than any process writes between two anchor writes.
pub const RESTART_GAP: u64 = 1 << 32;
/// How often the anchor is rewritten while it changes.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

const MAGIC: &[u8; 4] = b"k3a\x01";
const PLAINTEXT_LEN: usize = 28;

/// Why the anchor cannot be used, or why the shim must not start.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The anchor file could not be read or written.
    #[error("freshness anchor {}: cannot {op}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an anchor sealed by this key ring.
    #[error(
        "freshness anchor {}: cannot be opened ({source}): sealed under a key this ring does not \
         hold (retired? start with the archived keys), or not written by this shim",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: DecryptError,
    },
    /// It decrypts but is not an anchor.
    #[error("freshness anchor {}: malformed contents", path.display())]
    Malformed { path: PathBuf },
    /// The datastore is behind the anchor.
    #[error(
        "the datastore was rolled back: it is at revision {current}, but this shim had already \
         seen revision {anchored} (freshness anchor {}). It was restored from an older copy, or \
         replaced. If you restored a backup on purpose (disaster recovery), start once with \
         --accept-rolled-back-datastore to make its current state the new baseline; otherwise \
         find out who changed the datastore",
        path.display()
    )]
    RolledBack {
        current: i64,
        anchored: i64,
        path: PathBuf,
    },
    /// No anchor, but the datastore has been written to.
    #[error(
        "no freshness anchor at {} but the datastore is at revision {current}: either this is the \
         first start of this release on an existing datastore, or the anchor was deleted (which \
         would hide a rollback). If you know which, start once with \
         --accept-rolled-back-datastore to take the current state as the baseline",
        path.display()
    )]
    Missing { current: i64, path: PathBuf },
    /// Sequence numbers would overflow (2^32 restarts).
    #[error("freshness anchor {}: the write sequence is exhausted", path.display())]
    Exhausted { path: PathBuf },
    /// The backend could not be asked for its revision or scanned.
    #[error("reading the datastore's revision: {0}")]
    Backend(#[source] tonic::Status),
}

/// How strictly [`start`] holds the datastore to the anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Production: refuse a rolled-back datastore, a missing or unreadable anchor.
    Verify,
    /// Like `Verify`, but a missing anchor file (never an unreadable or older one) starts a new
    /// baseline, logged at warn. For `nautilus-master dev`, whose data directories may predate
    /// the anchor.
    AcceptMissingAnchor,
    /// Disaster recovery, by explicit operator choice only: whatever the datastore holds now
    /// becomes the baseline. Logged at warn.
    AcceptRollback,
}

/// The anchor file.
#[derive(Clone, Debug)]
pub struct Anchor {
    path: PathBuf,
}

impl Anchor {
    /// The anchor at `path`. Does no I/O.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and opens the anchor; `None` when the file does not exist.
    pub fn load(&self, keys: &Keys) -> Result<Option<Watermark>, AnchorError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AnchorError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let opened = keys
            .cipher()
            .decrypt(ANCHOR_LABEL, &bytes)
            .map_err(|source| AnchorError::Unreadable {
                path: self.path.clone(),
                source,
            })?;
        let p = opened.plaintext;
        let malformed = || AnchorError::Malformed {
            path: self.path.clone(),
        };
        if p.len() != PLAINTEXT_LEN || &p[..4] != MAGIC {
            return Err(malformed());
        }
        let word = |at: usize| -> [u8; 8] { p[at..at + 8].try_into().expect("8 bytes in range") };
        let watermark = Watermark {
            revision: i64::from_be_bytes(word(4)),
            floor: u64::from_be_bytes(word(12)),
            next_seq: u64::from_be_bytes(word(20)),
        };
        if opened.sequence != Some(watermark.next_seq) {
            return Err(malformed());
        }
        Ok(Some(watermark))
    }

    /// Seals `watermark` with the active key and replaces the file atomically. Blocking (fsync).
    /// Returns the key it was sealed under.
    pub fn store(&self, keys: &Keys, watermark: &Watermark) -> Result<KeyId, AnchorError> {
        let mut plaintext = Vec::with_capacity(PLAINTEXT_LEN);
        plaintext.extend_from_slice(MAGIC);
        plaintext.extend_from_slice(&watermark.revision.to_be_bytes());
        plaintext.extend_from_slice(&watermark.floor.to_be_bytes());
        plaintext.extend_from_slice(&watermark.next_seq.to_be_bytes());
        let sealed = keys
            .cipher()
            .encrypt(ANCHOR_LABEL, &plaintext, watermark.next_seq);
        let io = |op: &'static str| {
            let path = self.path.clone();
            move |source| AnchorError::Io { op, path, source }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io("create its directory"))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".anchor-")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io("create a temporary file next to"))?;
        tmp.write_all(&sealed)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io("write"))?;
        tmp.persist(&self.path)
            .map_err(|e| io("replace")(e.error))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the directory of"))?;
        Ok(KeyRing::key_id_of(&sealed).unwrap_or(KeyId(0)))
    }
}

/// Checks the datastore against the anchor and sets up the freshness state this process
/// continues with; writes the new anchor before returning. See the module doc.
pub async fn start<B: Backend>(
    backend: &B,
    keys: &Arc<Keys>,
    anchor: &Anchor,
    baseline: Baseline,
) -> Result<Arc<Freshness>, AnchorError> {
    let current = backend
        .status(StatusRequest {})
        .await
        .map_err(AnchorError::Backend)?
        .header
        .map_or(0, |h| h.revision);
    let loaded = match anchor.load(keys) {
        Ok(loaded) => loaded,
        Err(e @ (AnchorError::Unreadable { .. } | AnchorError::Malformed { .. }))
            if baseline == Baseline::AcceptRollback =>
        {
            tracing::warn!(anchor = %anchor.path.display(), error = %e, "--accept-rolled-back-datastore: ignoring the unreadable freshness anchor");
            None
        }
        Err(e) => return Err(e),
    };
    let exhausted = || AnchorError::Exhausted {
        path: anchor.path.clone(),
    };
    let (seed, start_seq) = match loaded {
        Some(w) if current >= w.revision => {
            let start = w.next_seq.checked_add(RESTART_GAP).ok_or_else(exhausted)?;
            ((w.revision, w.floor), start)
        }
        Some(w) => {
            if baseline != Baseline::AcceptRollback {
                return Err(AnchorError::RolledBack {
                    current,
                    anchored: w.revision,
                    path: anchor.path.clone(),
                });
            }
            tracing::warn!(
                current,
                anchored = w.revision,
                anchor = %anchor.path.display(),
                "--accept-rolled-back-datastore: the datastore is BEHIND the freshness anchor; taking its current state as the new baseline"
            );
            let start = w.next_seq.checked_add(RESTART_GAP).ok_or_else(exhausted)?;
            // Everything stored now is at or below `current`; everything written from now on
            // carries `start` or more.
            ((current, start), start)
        }
        None if current <= 1 => ((current.max(0), 1), 1),
        None => {
            if baseline == Baseline::Verify {
                return Err(AnchorError::Missing {
                    current,
                    path: anchor.path.clone(),
                });
            }
            let highest = highest_sequence(backend).await?;
            tracing::warn!(
                current,
                anchor = %anchor.path.display(),
                "no freshness anchor for a datastore that has been written to; taking its current state as the baseline"
            );
            let start = highest
                .checked_add(RESTART_GAP)
                .ok_or_else(exhausted)?
                .max(1);
            ((current, start), start)
        }
    };
    let limit = start_seq.saturating_add(RESTART_GAP);
    let freshness = Arc::new(Freshness::starting_at(start_seq, Some(seed), limit));
    let watermark = freshness.watermark();
    write_now(keys, anchor, watermark).await?;
    tracing::info!(
        anchor = %anchor.path.display(),
        revision = watermark.revision,
        "freshness anchor checked"
    );
    Ok(freshness)
}

/// The largest write sequence number among the stored v2 and v3 envelopes (0 if none).
async fn highest_sequence<B: Backend>(backend: &B) -> Result<u64, AnchorError> {
    let mut highest = 0;
    let mut scan = crate::scan::Scan::new(500);
    while let Some(kvs) = scan
        .next_page(backend)
        .await
        .map_err(AnchorError::Backend)?
    {
        for kv in kvs {
            if let Ok(header) = KeyRing::header_of(&kv.value) {
                highest = highest.max(header.sequence.unwrap_or(0));
            }
        }
    }
    Ok(highest)
}

/// Rewrites the anchor at most every [`WRITE_INTERVAL`] while the watermark changes (or the
/// active key did), raising the sequence limit after each write. Failures are logged at warn
/// and retried; writes stop being accepted only if the anchor stays unwritten for 2^32 writes.
pub fn spawn_writer(
    freshness: Arc<Freshness>,
    keys: Arc<Keys>,
    anchor: Anchor,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(WRITE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<(Watermark, Option<KeyId>)> = None;
        let mut failing = false;
        loop {
            ticker.tick().await;
            let watermark = freshness.watermark();
            let active = keys.active_id();
            if last == Some((watermark, active)) {
                continue;
            }
            match write_now(&keys, &anchor, watermark).await {
                Ok(()) => {
                    freshness.raise_limit(watermark.next_seq.saturating_add(RESTART_GAP));
                    last = Some((watermark, active));
                    if failing {
                        tracing::info!(anchor = %anchor.path.display(), "freshness anchor written again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(anchor = %anchor.path.display(), error = %e, "cannot write the freshness anchor; retrying every second");
                    }
                    failing = true;
                }
            }
        }
    })
}

/// Writes the anchor once (off the async threads).
pub async fn write_now(
    keys: &Arc<Keys>,
    anchor: &Anchor,
    watermark: Watermark,
) -> Result<(), AnchorError> {
    let keys = keys.clone();
    let target = anchor.clone();
    tokio::task::spawn_blocking(move || target.store(&keys, &watermark).map(|_| ()))
        .await
        .map_err(|e| AnchorError::Io {
            op: "write",
            path: anchor.path.clone(),
            source: std::io::Error::other(e),
        })?
}

#[cfg(test)]
mod tests;
