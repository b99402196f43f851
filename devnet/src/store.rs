//! The data directory: the chain snapshot (`chain.bcs`), written atomically after every
//! checkpoint, and small private-file helpers (directory 0700, files 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DevnetError;
use crate::state::{Ledger, Snapshot};

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
