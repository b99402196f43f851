//! Durable state in one redb file.
//!
//! Tables: `versions: (key, revision) → mvccpb.KeyValue` (prost-encoded; a tombstone has
//! `create_revision == 0`), `leases: id → ttl`, `meta: "revision" | "compacted" → i64`.
//! Every batch of writes is one redb transaction committed with `Durability::Immediate`
//! (fsync) before any of it is acknowledged or visible. Values here are ciphertext.

use std::path::{Path, PathBuf};
use std::time::Instant;

use daas_etcd_proto::mvccpb::KeyValue;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::mvcc::{DiskOp, Mvcc, MvccLimits};

const VERSIONS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("versions");
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// Errors opening or writing the store file.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("embedded store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("embedded store {path}: cannot create directory: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded store {path}: corrupt record at revision {revision}: {source}")]
    Corrupt {
        path: PathBuf,
        revision: u64,
        #[source]
        source: prost::DecodeError,
    },
    #[error("embedded store commit failed: {0}")]
    Commit(#[from] redb::Error),
}

/// Opens the file, waiting up to 5 s for a previous owner to let go: a store closed a moment
/// ago in this process releases the file when its writer thread finishes, and a supervisor
/// restarting the shim may briefly overlap with the old process.
fn open_waiting(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Database::builder().set_cache_size(cache_bytes).create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub(crate) struct Disk {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("path", &self.path).finish()
    }
}

fn rev_u64(rev: i64) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

impl Disk {
    /// Opens (or creates) `dir/state.redb` and rebuilds the in-memory store from it.
    /// `cache_bytes` bounds redb's page cache: reads are served from memory (the MVCC), so the
    /// file's pages are needed only while a commit rewrites them.
    pub(crate) fn open(
        dir: &Path,
        limits: MvccLimits,
        cache_bytes: usize,
    ) -> Result<(Self, Mvcc), DiskError> {
        std::fs::create_dir_all(dir).map_err(|source| DiskError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The store holds only ciphertext, but key names and sizes are not public either.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = dir.join("state.redb");
        let open_err = |source: redb::Error| DiskError::Open {
            path: path.clone(),
            source,
        };
        let db = open_waiting(&path, cache_bytes).map_err(|e| open_err(e.into()))?;
        // Make sure the tables exist so that the first read transaction finds them.
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        {
            txn.open_table(VERSIONS).map_err(|e| open_err(e.into()))?;
            txn.open_table(LEASES).map_err(|e| open_err(e.into()))?;
            txn.open_table(META).map_err(|e| open_err(e.into()))?;
        }
        txn.commit().map_err(|e| open_err(e.into()))?;

        let read = db.begin_read().map_err(|e| open_err(e.into()))?;
        let versions_table = read.open_table(VERSIONS).map_err(|e| open_err(e.into()))?;
        let mut versions = Vec::new();
        for row in versions_table.iter().map_err(|e| open_err(e.into()))? {
            let (k, v) = row.map_err(|e| open_err(e.into()))?;
            let (_, revision) = k.value();
            let kv = KeyValue::decode(v.value()).map_err(|source| DiskError::Corrupt {
                path: path.clone(),
                revision,
                source,
            })?;
            versions.push(kv);
        }
        let mut leases = Vec::new();
        for row in read
            .open_table(LEASES)
            .map_err(|e| open_err(e.into()))?
            .iter()
            .map_err(|e| open_err(e.into()))?
        {
            let (id, ttl) = row.map_err(|e| open_err(e.into()))?;
            leases.push((id.value(), ttl.value()));
        }
        let meta = read.open_table(META).map_err(|e| open_err(e.into()))?;
        let get = |name: &str| -> Result<i64, DiskError> {
            Ok(meta
                .get(name)
                .map_err(|e| open_err(e.into()))?
                .map_or(0, |g| g.value()))
        };
        let revision = get("revision")?;
        let compacted = get("compacted")?;
        drop(meta);
        drop(versions_table);
        drop(read);
        let mvcc = Mvcc::restore(
            limits,
            versions,
            leases,
            revision,
            compacted,
            Instant::now(),
        );
        Ok((Self { db, path }, mvcc))
    }

    /// Writes one batch durably (fsync before returning).
    pub(crate) fn commit(&self, ops: &[DiskOp]) -> Result<(), DiskError> {
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut versions = txn.open_table(VERSIONS).map_err(redb::Error::from)?;
            let mut leases = txn.open_table(LEASES).map_err(redb::Error::from)?;
            let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
            for op in ops {
                match op {
                    DiskOp::PutVersion(kv) => {
                        let buf = kv.encode_to_vec();
                        versions
                            .insert((kv.key.as_ref(), rev_u64(kv.mod_revision)), buf.as_slice())
                            .map_err(redb::Error::from)?;
                    }
                    DiskOp::DropVersion { key, revision } => {
                        versions
                            .remove((key.as_ref(), rev_u64(*revision)))
                            .map_err(redb::Error::from)?;
                    }
                    DiskOp::PutLease { id, ttl } => {
                        leases.insert(*id, *ttl).map_err(redb::Error::from)?;
                    }
                    DiskOp::DropLease(id) => {
                        leases.remove(*id).map_err(redb::Error::from)?;
                    }
                    DiskOp::Revision(rev) => {
                        meta.insert("revision", *rev).map_err(redb::Error::from)?;
                    }
                    DiskOp::Compacted(rev) => {
                        meta.insert("compacted", *rev).map_err(redb::Error::from)?;
                    }
                }
            }
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }
}
