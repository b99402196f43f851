//! The worker's state directory (`--state-dir`, default `/var/lib/k3s-daas`): what a join
//! writes, how (atomically, with the right modes), and what is removed when the node is
//! revoked.
//!
//! Layout (the directory is 0700):
//! - `ca.crt` (0644): the cluster CA, PEM, as the master serves it.
//! - `client-ca.crt` (0644): the CA of the API server's client certificate (a plain kubelet's
//!   `--client-ca-file`).
//! - `token` (0600): the K3s secure join token `K10…::<id>.<secret>` (`k3s agent --token-file`).
//! - `node-password` (0600): the node password K3s binds the node name with.
//! - `bootstrap.kubeconfig` (0600): server, CA and bootstrap token for a kubelet's TLS bootstrap.
//! - `k3s-agent.yaml` (0600): k3s config file (`server`, `token-file`, `node-name`).
//! - `join.json` (0644): what was joined (node, stake, server, CA hash, expiry), no secret.
//!   Written last: its presence means the rest is complete.
//! - `kubelet.kubeconfig`, `pki/`: written by a plain kubelet after its TLS bootstrap.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub(crate) const CA_FILE: &str = "ca.crt";
pub(crate) const CLIENT_CA_FILE: &str = "client-ca.crt";
pub(crate) const TOKEN_FILE: &str = "token";
pub(crate) const NODE_PASSWORD_FILE: &str = "node-password";
pub(crate) const BOOTSTRAP_KUBECONFIG: &str = "bootstrap.kubeconfig";
pub(crate) const K3S_CONFIG: &str = "k3s-agent.yaml";
pub(crate) const JOIN_RECORD: &str = "join.json";
pub(crate) const KUBELET_KUBECONFIG: &str = "kubelet.kubeconfig";
pub(crate) const PKI_DIR: &str = "pki";

/// The files holding secrets: removed when the node is revoked.
pub(crate) const SECRET_FILES: [&str; 3] = [TOKEN_FILE, NODE_PASSWORD_FILE, BOOTSTRAP_KUBECONFIG];

/// Largest file read back from the state directory.
const MAX_READ: u64 = 64 * 1024;

/// `join.json`: what was joined. No secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JoinRecord {
    pub(crate) node_name: String,
    pub(crate) stake: String,
    pub(crate) server: String,
    pub(crate) master: String,
    pub(crate) ca_hash: String,
    pub(crate) agent: String,
    pub(crate) joined_at_ms: u64,
    /// When the bootstrap token stops working (ms since the Unix epoch).
    pub(crate) expires_at_ms: u64,
}

/// The state directory.
#[derive(Clone, Debug)]
pub(crate) struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The directory at `root`; nothing is created yet.
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory (0700) if needed, and makes an existing one 0700.
    pub(crate) fn create(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .with_context(|| format!("creating the state directory {}", self.root.display()))?;
        let meta = fs::symlink_metadata(&self.root)
            .with_context(|| format!("reading {}", self.root.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", self.root.display());
        }
        fs::set_permissions(&self.root, Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", self.root.display()))?;
        Ok(())
    }

    /// Writes `name` atomically with `mode`: a temporary file in the directory, created with
    /// that mode, synced, then renamed over `name`. A reader sees the old file or the new one.
    pub(crate) fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf> {
        let path = self.path(name);
        write_atomic(&path, contents, mode)?;
        Ok(path)
    }

    /// `join.json`, if a join completed here.
    pub(crate) fn record(&self) -> Result<Option<JoinRecord>> {
        let path = self.path(JOIN_RECORD);
        match read_small(&path)? {
            None => Ok(None),
            Some(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not a join record", path.display())
                })?))
            }
        }
    }

    /// A file's contents, if it exists (at most 64 KiB).
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        read_small(&self.path(name))
    }

    /// Removes the secret files; returns the ones that existed.
    pub(crate) fn remove_secrets(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for name in SECRET_FILES {
            let path = self.path(name);
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
        }
        Ok(removed)
    }
}

/// `path`'s contents, if it exists (refused beyond 64 KiB).
pub(crate) fn read_small(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_READ {
        bail!("{} is larger than {MAX_READ} bytes", path.display());
    }
    Ok(Some(bytes))
}

/// Writes `path` atomically with `mode` (see [`StateDir::write`]); the parent must exist.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut suffix = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(suffix)
    ));
    let result = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask may have narrowed the creation mode: set it exactly.
        file.set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", tmp.display()))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = fs::File::open(dir) {
        // The rename is durable once the directory is.
        let _ = d.sync_all();
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").mode() & 0o7777
    }

    #[test]
    fn writes_atomically_with_exact_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::new(tmp.path().join("state"));
        dir.create().expect("create");
        assert_eq!(mode(dir.root()), 0o700);
        let secret = dir.write(TOKEN_FILE, b"one", 0o600).expect("write");
        let public = dir.write(CA_FILE, b"ca", 0o644).expect("write");
        assert_eq!((mode(&secret), mode(&public)), (0o600, 0o644));
        // Overwriting an existing file with a looser mode still leaves the new mode.
        fs::set_permissions(&secret, Permissions::from_mode(0o666)).expect("chmod");
        dir.write(TOKEN_FILE, b"two", 0o600).expect("rewrite");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(fs::read(&secret).expect("read"), b"two");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.root())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // An existing, too-open directory is narrowed.
        fs::set_permissions(dir.root(), Permissions::from_mode(0o755)).expect("chmod");
        dir.create().expect("create again");
        assert_eq!(mode(dir.root()), 0o700);
    }

    #[test]
    fn removes_only_the_secrets() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::new(tmp.path());
        for name in [TOKEN_FILE, NODE_PASSWORD_FILE, CA_FILE, JOIN_RECORD] {
            dir.write(name, b"x", 0o600).expect("write");
        }
        let removed = dir.remove_secrets().expect("remove");
        assert_eq!(removed.len(), 2);
        assert!(dir.path(CA_FILE).exists() && dir.path(JOIN_RECORD).exists());
        assert!(!dir.path(TOKEN_FILE).exists() && !dir.path(NODE_PASSWORD_FILE).exists());
        assert!(dir.remove_secrets().expect("again").is_empty());
    }

    #[test]
    fn oversized_files_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("big");
        fs::write(&path, vec![b'x'; 64 * 1024 + 1]).expect("write");
        assert!(read_small(&path).is_err());
        assert!(
            read_small(&tmp.path().join("missing"))
                .expect("ok")
                .is_none()
        );
    }
}
