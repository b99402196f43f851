//! Key providers: where a [`KeyRing`] comes from. The only code in this crate that does I/O.
//!
//! Unix only: key material is guarded by file modes, checked the way ssh checks private keys.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use crate::envelope::KeyRing;
use crate::error::ProviderError;
use crate::key::{DataKey, KEY_LEN, KeyId};

/// Name of the file in a [`KeyRingDir`] that holds the active key id.
const ACTIVE: &str = "active";
/// Subdirectory of a [`KeyRingDir`] that holds retired keys.
const ARCHIVE: &str = "archive";
/// Suffix of key files in a [`KeyRingDir`].
const KEY_SUFFIX: &str = ".key";
/// Largest `active` file accepted (an id, a newline, some slack).
const ACTIVE_MAX_LEN: u64 = 64;
/// Mode of key files, and the widest mode accepted for them.
const FILE_MODE: u32 = 0o600;
/// Mode of the key directory, and the widest mode accepted for it.
const DIR_MODE: u32 = 0o700;

/// A source of data keys.
pub trait KeyProvider: Send + Sync {
    /// Loads the key ring, checking everything it reads.
    fn load(&self) -> Result<KeyRing, ProviderError>;

    /// Where the keys come from, for logs and status output. Never key material.
    fn describe(&self) -> String;
}

/// The production file provider: a directory holding a key ring.
///
/// ```text
/// <dir>/              mode 0700 or stricter (group and others: no access)
///   <keyid>.key       32 raw key bytes, mode 0600 or stricter; <keyid> = 8 lowercase hex digits
///   active            the active key id, 8 lowercase hex digits (a trailing newline is allowed)
///   archive/          retired keys (same rules), loaded only by a provider built
///     <keyid>.key     with [`with_archived`](Self::with_archived)
/// ```
///
/// Every file is written to a temporary file in the same directory with mode 0600 from
/// creation, synced, renamed into place, and the directory is synced: a crash leaves either
/// the old or the new state. `load` refuses group- or other-accessible files and directories,
/// key files that are not exactly 32 bytes, and key files whose name is not their key's id.
///
/// Run the mutating operations ([`init`](Self::init), [`rotate`](Self::rotate),
/// [`retire`](Self::retire), [`unretire`](Self::unretire)) one at a time; they take no lock.
#[derive(Debug, Clone)]
pub struct KeyRingDir {
    dir: PathBuf,
    with_archived: bool,
}

impl KeyRingDir {
    /// The key ring in `dir`. Does no I/O.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyRingDir {
            dir: dir.into(),
            with_archived: false,
        }
    }

    /// The same ring, whose [`load`](KeyProvider::load) also reads the retired keys in
    /// `archive/` (decrypt-only): for reading a restored backup that still holds values sealed
    /// under them. Never needed in normal operation.
    pub fn with_archived(mut self) -> Self {
        self.with_archived = true;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700, with missing parents) if needed, generates the first
    /// key and makes it active. Refuses a directory that already holds a key ring.
    pub fn init(&self) -> Result<KeyId, ProviderError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .map_err(io_err("create directory", &self.dir))?;
        check_dir(&self.dir)?;
        if self.has_ring_files()? {
            return Err(ProviderError::AlreadyInitialised {
                dir: self.dir.clone(),
            });
        }
        let key = DataKey::generate();
        write_key_file(&self.dir, &key)?;
        write_active(&self.dir, key.id())?;
        Ok(key.id())
    }

    /// Generates a new key, writes its key file, then atomically makes it active. Old keys stay
    /// for decryption until [`retire`](Self::retire)d. Running processes pick the new key up
    /// when they [`load`](KeyProvider::load) again.
    pub fn rotate(&self) -> Result<KeyId, ProviderError> {
        let ring = self.load()?;
        let key = loop {
            let key = DataKey::generate();
            if !ring.contains(key.id()) {
                break key;
            }
        };
        write_key_file(&self.dir, &key)?;
        write_active(&self.dir, key.id())?;
        Ok(key.id())
    }

    /// Moves the key file of `id`, which must not be the active key, into `archive/` (mode
    /// 0700, created if needed). An archived key is no longer loaded, so values still sealed
    /// under it stop decrypting; but backups and history sealed under it stay recoverable:
    /// [`with_archived`](Self::with_archived) loads it again for reading, and
    /// [`unretire`](Self::unretire) moves it back. Retire a key only once every value has been
    /// rewritten under a newer key (decryption reports
    /// [`Decrypted::stale`](crate::Decrypted::stale) for values that still need it).
    pub fn retire(&self, id: KeyId) -> Result<(), ProviderError> {
        let ring = self.load()?;
        if ring.active_id() == id {
            return Err(ProviderError::RetireActive(id));
        }
        let path = key_path(&self.dir, id);
        if !path.is_file() {
            return Err(ProviderError::NoSuchKey { path });
        }
        let archive = self.archive_dir();
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&archive)
            .map_err(io_err("create directory", &archive))?;
        check_dir(&archive)?;
        move_key_file(&path, &key_path(&archive, id))?;
        sync_dir(&archive)?;
        sync_dir(&self.dir)
    }

    /// Moves the archived key `id` back into the ring (decrypt-only; the active key does not
    /// change). For an offline restore of a backup sealed under a retired key.
    pub fn unretire(&self, id: KeyId) -> Result<(), ProviderError> {
        check_dir(&self.dir)?;
        let archive = self.archive_dir();
        let from = key_path(&archive, id);
        if !from.is_file() {
            return Err(ProviderError::NoSuchKey { path: from });
        }
        // Check it before it joins the ring: a bad file must not break the next load.
        let key = read_key_file(&from)?;
        if key.id() != id {
            return Err(ProviderError::IdMismatch {
                path: from,
                actual: key.id(),
            });
        }
        move_key_file(&from, &key_path(&self.dir, id))?;
        sync_dir(&self.dir)?;
        sync_dir(&archive)
    }

    /// Ids of the retired keys in `archive/`, in ascending order (empty without an archive).
    pub fn archived_ids(&self) -> Result<Vec<KeyId>, ProviderError> {
        let archive = self.archive_dir();
        if !archive.exists() {
            return Ok(Vec::new());
        }
        check_dir(&archive)?;
        let mut ids: Vec<KeyId> = key_files(&archive)?.into_iter().map(|(id, _)| id).collect();
        ids.sort();
        Ok(ids)
    }

    fn archive_dir(&self) -> PathBuf {
        self.dir.join(ARCHIVE)
    }

    fn has_ring_files(&self) -> Result<bool, ProviderError> {
        for entry in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == ACTIVE || name.ends_with(KEY_SUFFIX) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn read_active(&self) -> Result<KeyId, ProviderError> {
        let path = self.dir.join(ACTIVE);
        let bad = || ProviderError::BadActive { path: path.clone() };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ProviderError::NoActive { path });
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let meta = file.metadata().map_err(io_err("stat", &path))?;
        if !meta.is_file() || meta.len() > ACTIVE_MAX_LEN {
            return Err(bad());
        }
        let mut text = String::new();
        match file.read_to_string(&mut text) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(bad()),
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        let text = text.trim_end_matches('\n');
        canonical_id(text).ok_or_else(bad)
    }
}

impl KeyProvider for KeyRingDir {
    fn load(&self) -> Result<KeyRing, ProviderError> {
        check_dir(&self.dir)?;
        let active_id = self.read_active()?;
        let mut active = None;
        let mut previous = Vec::new();
        let mut loaded = std::collections::BTreeSet::new();
        for (named, path) in key_files(&self.dir)? {
            let key = read_key_file(&path)?;
            if key.id() != named {
                return Err(ProviderError::IdMismatch {
                    path,
                    actual: key.id(),
                });
            }
            loaded.insert(named);
            if named == active_id {
                active = Some(key);
            } else {
                previous.push(key);
            }
        }
        let active = active.ok_or_else(|| ProviderError::ActiveKeyMissing {
            dir: self.dir.clone(),
            id: active_id,
        })?;
        if self.with_archived {
            let archive = self.archive_dir();
            if archive.exists() {
                check_dir(&archive)?;
                for (named, path) in key_files(&archive)? {
                    // A crash inside retire/unretire can leave a key in both places.
                    if loaded.contains(&named) {
                        continue;
                    }
                    let key = read_key_file(&path)?;
                    if key.id() != named {
                        return Err(ProviderError::IdMismatch {
                            path,
                            actual: key.id(),
                        });
                    }
                    previous.push(key);
                }
            }
        }
        Ok(KeyRing::new(active, previous)?)
    }

    fn describe(&self) -> String {
        if self.with_archived {
            format!(
                "key ring directory {} (with archived keys)",
                self.dir.display()
            )
        } else {
            format!("key ring directory {}", self.dir.display())
        }
    }
}

/// The `<id>.key` entries of `dir` with the id their name gives; other names are ignored, a
/// `*.key` name that is not a canonical id is an error.
fn key_files(dir: &Path) -> Result<Vec<(KeyId, PathBuf)>, ProviderError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(KEY_SUFFIX)) else {
            continue;
        };
        let path = entry.path();
        let Some(named) = canonical_id(stem) else {
            return Err(ProviderError::BadKeyFileName { path });
        };
        out.push((named, path));
    }
    Ok(out)
}

/// Moves a key file without ever replacing one: hard link, then unlink the source. A crash in
/// between leaves the key in both places, which `load` tolerates.
fn move_key_file(from: &Path, to: &Path) -> Result<(), ProviderError> {
    fs::hard_link(from, to).map_err(io_err("create", to))?;
    fs::remove_file(from).map_err(io_err("remove", from))
}

/// A single file of 32 raw key bytes (mode 0600 or stricter): a ring with one key.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// The key file at `path`. Does no I/O.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into() }
    }
}

impl KeyProvider for KeyFile {
    fn load(&self) -> Result<KeyRing, ProviderError> {
        Ok(KeyRing::new(read_key_file(&self.path)?, [])?)
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}

/// **Development and tests only**: one key from an environment variable, as 64 hex digits or
/// standard (padded) base64 of 32 bytes; see [`parse_key_text`].
///
/// A process's environment is readable through `/proc/<pid>/environ` by the same user (and
/// root), is inherited by every child process and often ends up in crash reports: never put a
/// production key there.
#[derive(Debug, Clone)]
pub struct EnvKey {
    var: String,
}

impl EnvKey {
    /// The key in environment variable `var`. Does no I/O.
    pub fn new(var: impl Into<String>) -> Self {
        EnvKey { var: var.into() }
    }
}

impl KeyProvider for EnvKey {
    fn load(&self) -> Result<KeyRing, ProviderError> {
        let text = match std::env::var(&self.var) {
            Ok(text) => Zeroizing::new(text),
            Err(std::env::VarError::NotPresent) => {
                return Err(ProviderError::EnvMissing {
                    var: self.var.clone(),
                });
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ProviderError::EnvInvalid {
                    var: self.var.clone(),
                });
            }
        };
        let key = parse_key_text(&text).ok_or_else(|| ProviderError::EnvInvalid {
            var: self.var.clone(),
        })?;
        Ok(KeyRing::new(key, [])?)
    }

    fn describe(&self) -> String {
        format!("environment variable {} (development only)", self.var)
    }
}

/// Parses a 32-byte key written as 64 hex digits (either case) or standard padded base64 (44
/// characters). Surrounding whitespace is ignored. `None` for anything else.
pub fn parse_key_text(text: &str) -> Option<DataKey> {
    let text = text.trim();
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if text.len() == 2 * KEY_LEN {
        hex::decode_to_slice(text, bytes.as_mut()).ok()?;
    } else if Base64::decode(text, bytes.as_mut()).ok()?.len() != KEY_LEN {
        return None;
    }
    Some(DataKey::from_zeroizing(bytes))
}

/// `text` as a key id, only in its canonical (lowercase) spelling.
fn canonical_id(text: &str) -> Option<KeyId> {
    text.parse::<KeyId>()
        .ok()
        .filter(|id| id.to_string() == text)
}

fn key_path(dir: &Path, id: KeyId) -> PathBuf {
    dir.join(format!("{id}{KEY_SUFFIX}"))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ProviderError {
    let path = path.to_path_buf();
    move |source| ProviderError::Io { op, path, source }
}

fn check_mode(path: &Path, mode: u32, want: u32) -> Result<(), ProviderError> {
    if mode & 0o077 != 0 {
        return Err(ProviderError::InsecureMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
            want,
        });
    }
    Ok(())
}

fn check_dir(dir: &Path) -> Result<(), ProviderError> {
    let meta = fs::metadata(dir).map_err(io_err("stat", dir))?;
    if !meta.is_dir() {
        return Err(ProviderError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    check_mode(dir, meta.mode(), DIR_MODE)
}

/// Reads a key file: a regular file, mode 0600 or stricter, exactly 32 bytes.
fn read_key_file(path: &Path) -> Result<DataKey, ProviderError> {
    let not_a_file = || ProviderError::NotAFile {
        path: path.to_path_buf(),
    };
    // Checked before opening so a FIFO cannot block the open; checked again on the handle.
    if !fs::metadata(path).map_err(io_err("stat", path))?.is_file() {
        return Err(not_a_file());
    }
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let meta = file.metadata().map_err(io_err("stat", path))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    check_mode(path, meta.mode(), FILE_MODE)?;
    if meta.len() != KEY_LEN as u64 {
        return Err(ProviderError::BadLength {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    file.read_exact(bytes.as_mut())
        .map_err(io_err("read", path))?;
    Ok(DataKey::from_zeroizing(bytes))
}

/// Writes `<dir>/<id>.key` atomically (temporary file with mode 0600, sync, rename without
/// replacing, sync of the directory).
fn write_key_file(dir: &Path, key: &DataKey) -> Result<(), ProviderError> {
    let path = key_path(dir, key.id());
    let tmp = write_temp(dir, key.expose_secret())?;
    tmp.persist_noclobber(&path)
        .map_err(|e| io_err("create", &path)(e.error))?;
    sync_dir(dir)
}

/// Replaces `<dir>/active` atomically.
fn write_active(dir: &Path, id: KeyId) -> Result<(), ProviderError> {
    let path = dir.join(ACTIVE);
    let tmp = write_temp(dir, format!("{id}\n").as_bytes())?;
    tmp.persist(&path)
        .map_err(|e| io_err("replace", &path)(e.error))?;
    sync_dir(dir)
}

/// A synced temporary file in `dir`, mode 0600 from creation, holding `contents`.
fn write_temp(dir: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile, ProviderError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err("write", tmp.path()))?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> Result<(), ProviderError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}
