//! The append-only checkpoint log: one framed record per sealed checkpoint (its transaction,
//! if any, and the checkpoint), appended and `fdatasync`ed before the checkpoint is announced.
//!
//! The log is split into generations, `chain.<generation>.log`. A snapshot (`store.rs`) is
//! taken by starting a new generation, writing the snapshot, then deleting the older
//! generations, so a crash at any point leaves a snapshot plus every record after it. Recovery
//! replays every generation over the snapshot and skips records the snapshot already covers.
//!
//! File format (all integers little-endian):
//! ```text
//! log    = magic *record
//! magic  = "K3DLOG01"
//! record = len:u32 check:8 payload:len   ; check = SHA-256(len || payload)[..8]
//! payload = BCS(LogRecord)
//! ```
//! A record that is invalid and is followed by no valid record is a torn tail (a crash mid
//! append): it is dropped with a warning and the file truncated to the last good record. An
//! invalid record followed by a valid one is corruption and refuses to open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::DevnetError;
use crate::state::{CheckpointRecord, TxRecord};

/// Magic prefix and format version of a log generation.
pub(crate) const LOG_MAGIC: &[u8; 8] = b"K3DLOG01";
/// Largest record payload accepted (the largest gRPC message the devnet takes is 64 MiB).
pub(crate) const MAX_RECORD: usize = 64 << 20;
/// Length and checksum before each payload.
const FRAME_HEADER: usize = 4 + 8;

/// What one log record replays: the checkpoint and the transaction sealed in it, if any.
#[derive(Deserialize)]
pub(crate) struct LogRecord {
    pub(crate) transaction: Option<TxRecord>,
    pub(crate) checkpoint: CheckpointRecord,
}

/// A borrowed [`LogRecord`]: the same BCS bytes.
#[derive(Serialize)]
pub(crate) struct LogRecordRef<'a> {
    pub(crate) transaction: Option<&'a TxRecord>,
    pub(crate) checkpoint: &'a CheckpointRecord,
}

/// Frames `payload` as a log record (see the module docs).
pub(crate) fn frame(payload: &[u8]) -> Result<Vec<u8>, DevnetError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_RECORD)
        .ok_or(DevnetError::RecordTooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(&len.to_le_bytes(), payload));
    out.extend_from_slice(payload);
    Ok(out)
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> [u8; 8] {
    let mut hash = Sha256::new();
    hash.update(len);
    hash.update(payload);
    let digest = hash.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Parses the frame at `offset`: the payload's range and the next record's offset.
fn parse_frame(bytes: &[u8], offset: usize) -> Result<(usize, usize), String> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.len() < FRAME_HEADER {
        return Err(format!(
            "{} bytes left, less than a record header",
            rest.len()
        ));
    }
    let len_bytes: [u8; 4] = rest[..4].try_into().expect("4 bytes checked above");
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_RECORD {
        // Refused before anything is read or allocated for it.
        return Err(format!(
            "record length {len} exceeds the limit of {MAX_RECORD}"
        ));
    }
    if rest.len() - FRAME_HEADER < len {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
    if checksum(&len_bytes, payload) != rest[4..FRAME_HEADER] {
        return Err("checksum mismatch".to_owned());
    }
    let start = offset + FRAME_HEADER;
    Ok((start, start + len))
}

/// Whether a valid frame starts anywhere at or after `from`.
fn valid_frame_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len().saturating_sub(FRAME_HEADER - 1)).any(|o| parse_frame(bytes, o).is_ok())
}

/// One log generation found in the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Generation {
    pub(crate) number: u64,
    pub(crate) path: PathBuf,
}

/// Path of generation `number` in `data_dir`.
pub(crate) fn generation_path(data_dir: &Path, number: u64) -> PathBuf {
    data_dir.join(format!("chain.{number:08}.log"))
}

/// The log generations in `data_dir`, oldest first.
pub(crate) fn generations(data_dir: &Path) -> Result<Vec<Generation>, DevnetError> {
    let read_err = |source| DevnetError::Read {
        path: data_dir.to_owned(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(data_dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("chain."))
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push(Generation {
            number,
            path: entry.path(),
        });
    }
    found.sort_by_key(|g| g.number);
    Ok(found)
}

/// The valid records of one generation file.
#[derive(Debug)]
pub(crate) struct Scan {
    /// `(offset, payload range)` of every valid record, in order.
    pub(crate) records: Vec<(usize, std::ops::Range<usize>)>,
    /// Length of the file up to the end of the last valid record.
    pub(crate) good_len: u64,
    /// Offset and reason of a dropped torn tail.
    pub(crate) torn: Option<(usize, String)>,
}

/// Scans `bytes`, the content of the generation at `path`. Only the newest generation
/// (`newest`) may end in a torn record; anywhere else an invalid record is corruption.
pub(crate) fn scan(path: &Path, bytes: &[u8], newest: bool) -> Result<Scan, DevnetError> {
    let corrupt = |offset: usize, reason: String| DevnetError::LogCorrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < LOG_MAGIC.len() && newest && LOG_MAGIC.starts_with(bytes) {
        // Crash while the generation was being created.
        return Ok(Scan {
            records: Vec::new(),
            good_len: 0,
            torn: Some((0, "incomplete log header".to_owned())),
        });
    }
    if !bytes.starts_with(LOG_MAGIC) {
        return Err(corrupt(0, "not a devnet log (unknown magic)".to_owned()));
    }
    let mut records = Vec::new();
    let mut offset = LOG_MAGIC.len();
    let mut torn = None;
    while offset < bytes.len() {
        match parse_frame(bytes, offset) {
            Ok((start, next)) => {
                records.push((offset, start..next));
                offset = next;
            }
            Err(reason) if newest && !valid_frame_after(bytes, offset + 1) => {
                torn = Some((offset, reason));
                break;
            }
            Err(reason) => {
                return Err(corrupt(
                    offset,
                    format!("{reason}; valid records follow it, so it is not a torn tail"),
                ));
            }
        }
    }
    Ok(Scan {
        records,
        good_len: offset as u64,
        torn,
    })
}

fn sync_dir(dir: &Path) -> Result<(), DevnetError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| DevnetError::Write {
            path: dir.to_owned(),
            source,
        })?;
    Ok(())
}

/// The generation being appended to.
#[derive(Debug)]
pub(crate) struct LogWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl LogWriter {
    /// Creates (or recreates, if a crash left it incomplete) generation `number`: magic,
    /// synced, directory synced.
    pub(crate) fn create(data_dir: &Path, number: u64) -> Result<LogWriter, DevnetError> {
        let path = generation_path(data_dir, number);
        let err = |source| DevnetError::Write {
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        // Appending: every record lands at the end even if the file was written elsewhere.
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(err)?;
        file.set_len(0).map_err(err)?;
        file.write_all(LOG_MAGIC).map_err(err)?;
        file.sync_data().map_err(err)?;
        sync_dir(data_dir)?;
        Ok(LogWriter {
            file,
            path,
            len: LOG_MAGIC.len() as u64,
        })
    }

    /// Opens an existing generation for appending after its first `good_len` bytes, cutting
    /// off (and syncing) anything after them.
    pub(crate) fn reopen(generation: &Generation, good_len: u64) -> Result<LogWriter, DevnetError> {
        let err = |source| DevnetError::Write {
            path: generation.path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&generation.path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len != good_len {
            file.set_len(good_len).map_err(err)?;
            file.sync_data().map_err(err)?;
        }
        Ok(LogWriter {
            file,
            path: generation.path.clone(),
            len: good_len,
        })
    }

    /// Appends one framed record and `fdatasync`s it. On failure the file is cut back to its
    /// previous length, so a later append does not follow a partial record.
    pub(crate) fn append(&mut self, framed: &[u8]) -> Result<(), DevnetError> {
        let result = self
            .file
            .write_all(framed)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += framed.len() as u64;
                Ok(())
            }
            Err(source) => {
                if let Err(e) = self.file.set_len(self.len) {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot cut a failed append off the log");
                }
                Err(DevnetError::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

/// Deletes the generations older than `keep_from` (they are covered by a snapshot).
pub(crate) fn remove_before(data_dir: &Path, keep_from: u64) -> Result<(), DevnetError> {
    let mut removed = false;
    for g in generations(data_dir)?
        .into_iter()
        .filter(|g| g.number < keep_from)
    {
        fs::remove_file(&g.path).map_err(|source| DevnetError::Write {
            path: g.path.clone(),
            source,
        })?;
        removed = true;
    }
    if removed {
        sync_dir(data_dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
