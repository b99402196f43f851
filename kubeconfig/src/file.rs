//! Kubeconfig files on disk.
//!
//! YAML goes through kube's own YAML crate (serde-saphyr, YAML 1.1-safe quoting, which
//! kubectl's parser needs: `"0x…"` and `"3"` stay strings). Writes are atomic and private: a
//! 0600 temporary file in the target's directory is written, synced and renamed over the
//! target, so a crash leaves the old file or the new one, never half of one, and a kubeconfig
//! holding a token is never readable by other users. A missing directory is created 0700.
//! [`merge_into_file`] also takes kubectl's `<file>.lock` (so `kubectl config set` and this
//! never interleave) and keeps the previous file as `<file>.bak`.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, KubeconfigError};

use crate::merge::{MergeError, MergeOptions, merge, same};

#[cfg(test)]
mod tests;

/// File-side failures. Parse errors give a position only: the YAML parser's own messages quote
/// the source, and a kubeconfig's source holds tokens.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a valid kubeconfig{detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("serializing the kubeconfig to YAML")]
    Serialize(#[source] serde_saphyr::ser::Error),
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{lock} exists: another process is changing {path} (delete the lock file if it is stale)"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("merging into {path}")]
    Merge {
        path: PathBuf,
        #[source]
        source: MergeError,
    },
}

/// What [`merge_into_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The file did not exist and was created.
    Created,
    /// Every entry was already there; the file was not rewritten.
    Unchanged,
    /// The file was rewritten; its previous content is in `backup`.
    Updated { backup: PathBuf },
}

/// The kubeconfig as YAML, as it is written to disk.
pub fn to_yaml(config: &Kubeconfig) -> Result<String, FileError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // One line per value, as kubectl writes them: no `>-` folding of certificate data or tokens.
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(config, options).map_err(FileError::Serialize)
}

/// Parses kubeconfig YAML with kube's parser. `origin` names the source in errors. Unlike
/// kube's `Kubeconfig::read_from`, relative paths in the file are kept as written, so a merge
/// writes other entries back unchanged.
pub fn parse_kubeconfig(text: &str, origin: &Path) -> Result<Kubeconfig, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Kubeconfig::from_yaml(text).map_err(|e| {
        let detail = match &e {
            KubeconfigError::Parse(yaml) => match yaml.location() {
                Some(at) if at.line() > 0 => {
                    format!(
                        " (YAML error at line {}, column {})",
                        at.line(),
                        at.column()
                    )
                }
                _ => " (YAML error)".to_owned(),
            },
            KubeconfigError::KindMismatch | KubeconfigError::ApiVersionMismatch => {
                " (its YAML documents disagree on kind or apiVersion)".to_owned()
            }
            _ => String::new(),
        };
        FileError::Parse {
            path: origin.to_owned(),
            detail,
        }
    })
}

/// Reads and parses a kubeconfig file (see [`parse_kubeconfig`]).
pub fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, FileError> {
    let bytes = fs::read(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| FileError::Parse {
        path: path.to_owned(),
        detail: " (not UTF-8)".to_owned(),
    })?;
    parse_kubeconfig(&text, path)
}

/// Writes `config` to `path` atomically with mode 0600 (see the module docs). An existing file
/// is an [`FileError::Exists`] unless `overwrite`; the check and the rename are one step.
pub fn write_private(path: &Path, config: &Kubeconfig, overwrite: bool) -> Result<(), FileError> {
    write_bytes_private(path, to_yaml(config)?.as_bytes(), overwrite)
}

/// Merges `from` into the kubeconfig file at `path` (see [`merge`]), creating it if missing.
///
/// Holds `<path>.lock` throughout. A symlinked `path` is followed, so the real file is updated.
/// When the merge changes nothing the file is not touched; otherwise the old content is saved
/// as `<path>.bak` (0600) before the new file is renamed into place (0600).
pub fn merge_into_file(
    path: &Path,
    from: Kubeconfig,
    options: MergeOptions,
) -> Result<MergeOutcome, FileError> {
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| FileError::Read {
                path: path.to_owned(),
                source,
            })?
        }
        _ => path.to_owned(),
    };
    create_private_dir(&parent_dir(&target)).map_err(|source| FileError::Write {
        path: target.clone(),
        source,
    })?;
    let _lock = LockFile::acquire(&target)?;
    let existing = match fs::read(&target) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(FileError::Read {
                path: target,
                source,
            });
        }
    };
    let into = match &existing {
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| FileError::Parse {
                path: target.clone(),
                detail: " (not UTF-8)".to_owned(),
            })?;
            parse_kubeconfig(text, &target)?
        }
        None => Kubeconfig::default(),
    };
    let merged = merge(into.clone(), from, options).map_err(|source| FileError::Merge {
        path: target.clone(),
        source,
    })?;
    match existing {
        None => {
            write_private(&target, &merged, false)?;
            Ok(MergeOutcome::Created)
        }
        Some(_) if same(&into, &merged) => Ok(MergeOutcome::Unchanged),
        Some(old) => {
            let backup = with_suffix(&target, ".bak");
            write_bytes_private(&backup, &old, true)?;
            write_private(&target, &merged, true)?;
            Ok(MergeOutcome::Updated { backup })
        }
    }
}

fn write_bytes_private(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), FileError> {
    let write_err = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    let Some(file_name) = path.file_name() else {
        return Err(write_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        )));
    };
    let dir = parent_dir(path);
    create_private_dir(&dir).map_err(write_err)?;
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    // Removed on drop, so error paths leave no temporary behind.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(bytes).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    if overwrite {
        tmp.persist(path).map_err(|e| write_err(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                FileError::Exists {
                    path: path.to_owned(),
                }
            } else {
                write_err(e.error)
            }
        })?;
    }
    // Makes the rename durable; a failure here does not undo the write.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as is.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// kubectl's lock convention (`clientcmd`): `<file>.lock` created exclusively, removed after.
struct LockFile(PathBuf);

impl LockFile {
    fn acquire(target: &Path) -> Result<Self, FileError> {
        let lock = with_suffix(target, ".lock");
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock)
        {
            Ok(_) => Ok(LockFile(lock)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(FileError::Locked {
                path: target.to_owned(),
                lock,
            }),
            Err(source) => Err(FileError::Write { path: lock, source }),
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
