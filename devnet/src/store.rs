//! The data directory: the chain snapshot (`chain.bcs`, written atomically), recovery of the
//! chain from the snapshot plus the checkpoint log (`journal.rs`), and small private-file
//! helpers (directory 0700, files 0600).
//!
//! The snapshot format is unchanged by the log (magic `K3DEVNT1`): a data directory with only
//! `chain.bcs` opens as before, and the snapshot's tip is the last checkpoint it covers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DevnetError;
use crate::journal::{self, Generation, LogRecord};
use crate::state::{Ledger, Snapshot, SnapshotView};

/// File name of the snapshot inside the data directory.
pub const SNAPSHOT_FILE: &str = "chain.bcs";
/// Magic prefix and format version of the snapshot file.
const MAGIC: &[u8; 8] = b"K3DEVNT1";

/// Path of the snapshot in `data_dir`.
pub(crate) fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_FILE)
}

/// Creates `dir` (and parents) and restricts it to its owner.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), DevnetError> {
    let err = |source| DevnetError::Write {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600: a fresh temporary file in the same
/// directory is written, synced and renamed over `path`, then the directory is synced.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), DevnetError> {
    let err = |source| DevnetError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    // tempfile creates the file with mode 0600 and removes it on error paths.
    let mut tmp = tempfile::Builder::new()
        .prefix(".devnet.")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    #[cfg(unix)]
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

/// Encodes the ledger as snapshot bytes (done under the ledger lock; written without it).
pub(crate) fn encode(ledger: &Ledger) -> Result<Vec<u8>, DevnetError> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(bcs::to_bytes(&ledger.snapshot_ref())?);
    Ok(bytes)
}

/// Encodes a snapshot view taken under the ledger lock (done without the lock).
pub(crate) fn encode_view(view: &SnapshotView) -> Result<Vec<u8>, DevnetError> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(bcs::to_bytes(view)?);
    Ok(bytes)
}

/// Writes snapshot bytes produced by [`encode`].
pub(crate) fn save(data_dir: &Path, bytes: &[u8]) -> Result<(), DevnetError> {
    write_private_file(&snapshot_path(data_dir), bytes)
}

/// Whether `data_dir` holds a chain.
pub(crate) fn exists(data_dir: &Path) -> bool {
    snapshot_path(data_dir).is_file()
}

/// Loads the chain of `data_dir`.
pub(crate) fn load(data_dir: &Path) -> Result<Ledger, DevnetError> {
    let path = snapshot_path(data_dir);
    let bytes = fs::read(&path).map_err(|source| DevnetError::Read {
        path: path.clone(),
        source,
    })?;
    let bad = |reason: String| DevnetError::Snapshot {
        path: path.clone(),
        reason,
    };
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("unknown format".to_owned()))?;
    let snapshot: Snapshot = bcs::from_bytes(body).map_err(|e| bad(e.to_string()))?;
    Ledger::from_snapshot(snapshot).map_err(bad)
}

/// A chain recovered from its snapshot and log, and where the log continues.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) ledger: Ledger,
    /// The newest log generation and the length of its valid prefix.
    pub(crate) newest: Option<(Generation, u64)>,
    /// Valid records and bytes in all log generations (what the next snapshot will absorb).
    pub(crate) log_records: u64,
    pub(crate) log_bytes: u64,
}

/// Loads the snapshot of `data_dir` and replays the log over it. Records the snapshot covers
/// are skipped; a torn record at the end of the newest generation is dropped with a warning
/// (the caller cuts it off before appending); any other bad record is an error naming the
/// file and offset.
pub(crate) fn recover(data_dir: &Path) -> Result<Recovered, DevnetError> {
    let mut ledger = load(data_dir)?;
    let covered = ledger.tip();
    let generations = journal::generations(data_dir)?;
    let (mut newest_generation, mut log_records, mut log_bytes) = (None, 0, 0);
    let count = generations.len();
    for (i, generation) in generations.into_iter().enumerate() {
        let newest = i + 1 == count;
        let path = &generation.path;
        let content = fs::read(path).map_err(|source| DevnetError::Read {
            path: path.clone(),
            source,
        })?;
        let scan = journal::scan(path, &content, newest)?;
        if let Some((offset, reason)) = &scan.torn {
            tracing::warn!(
                path = %path.display(),
                offset,
                reason = %reason,
                "dropping a torn record at the end of the checkpoint log (a crash during an append)"
            );
        }
        for (offset, range) in &scan.records {
            let corrupt = |reason: String| DevnetError::LogCorrupt {
                path: path.clone(),
                offset: *offset as u64,
                reason,
            };
            let record: LogRecord = bcs::from_bytes(&content[range.clone()])
                .map_err(|e| corrupt(format!("undecodable record: {e}")))?;
            if record.checkpoint.summary.sequence_number <= covered {
                continue;
            }
            ledger
                .replay(record.transaction, record.checkpoint)
                .map_err(corrupt)?;
        }
        log_records += scan.records.len() as u64;
        log_bytes += scan.good_len;
        if newest {
            newest_generation = Some((generation, scan.good_len));
        }
    }
    Ok(Recovered {
        ledger,
        newest: newest_generation,
        log_records,
        log_bytes,
    })
}

#[cfg(test)]
mod tests;
