//! Single-node backend: an MVCC revisioned store kept in memory and made durable in a
//! redb file through one group-committing writer.
//!
//! - Reads (`Range`) are served from memory at the **committed** revision: linearizable,
//!   because a write is visible only after its batch is fsync'd.
//! - Writes go through [`writer`]; watchers are fed from the in-memory event log by [`watch`].
//! - Leases persist (id, TTL); after a restart every lease gets its full TTL again (etcd
//!   does the same on leader change), and expiry deletes the attached keys through the
//!   normal write path, producing DELETE events with `prev_kv`.
//!
//! The working set lives in memory, like etcd's key index but including values (ciphertext):
//! size the enclave for the cluster state plus history since the last compaction.

mod disk;
#[doc(hidden)]
pub mod fuzzing;
mod mvcc;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use daas_etcd_proto::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest,
    TxnResponse, WatchRequest, WatchResponse,
};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch as tokio_watch};
use tonic::Status;

pub use disk::DiskError;
pub use mvcc::MvccLimits;

pub(crate) use self::mvcc::MEMBER_ID;
use self::mvcc::{Mvcc, header};
use self::writer::{Op, Reply, submit};
use super::{Backend, Requests, Responses};
use crate::errors;

/// The etcd version reported by `Maintenance.Status`. kube-apiserver enables
/// `RequestWatchProgress` (consistent reads from its watch cache) only for etcd ≥ 3.5.13,
/// and this store answers progress requests the way etcd 3.5.13+ does.
pub const REPORTED_ETCD_VERSION: &str = "3.6.13";

/// Options of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    pub dir: PathBuf,
    pub limits: MvccLimits,
    /// Interval of `progress_notify` responses (etcd's default is 10 minutes).
    pub progress_notify_interval: Duration,
    /// How often expired leases are looked for.
    pub lease_check_interval: Duration,
    /// redb's page cache ([`DEFAULT_DISK_CACHE`]). The store serves every read from memory,
    /// so this cache only speeds up commits; redb's own default (1 GiB) would keep a second
    /// copy of the whole file in memory.
    pub disk_cache_bytes: usize,
}

/// Default of [`EmbeddedConfig::disk_cache_bytes`]: 32 MiB.
pub const DEFAULT_DISK_CACHE: usize = 32 << 20;

impl EmbeddedConfig {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            limits: MvccLimits::default(),
            progress_notify_interval: Duration::from_secs(600),
            lease_check_interval: Duration::from_millis(500),
            disk_cache_bytes: DEFAULT_DISK_CACHE,
        }
    }
}

pub(crate) struct Shared {
    mvcc: RwLock<Mvcc>,
    /// The committed revision, published after every durable batch.
    commits: tokio_watch::Sender<i64>,
    db_path: PathBuf,
}

/// The embedded store. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedBackend {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<writer::Job>,
    progress_notify_interval: Duration,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("db", &self.shared.db_path)
            .finish_non_exhaustive()
    }
}

fn poisoned<T>(_: T) -> Status {
    errors::stopped()
}

impl EmbeddedBackend {
    /// Opens the store (replaying it into memory) and starts the writer and lease reaper.
    /// Must be called inside a Tokio runtime.
    pub fn open(config: &EmbeddedConfig) -> Result<Self, DiskError> {
        let (disk, mvcc) =
            disk::Disk::open(&config.dir, config.limits.clone(), config.disk_cache_bytes)?;
        let committed = mvcc.committed;
        tracing::info!(
            dir = %config.dir.display(),
            revision = committed,
            compacted = mvcc.compacted,
            versions = mvcc.version_count(),
            leases = mvcc.leases.len(),
            "embedded store opened"
        );
        let (commits, _) = tokio_watch::channel(committed);
        let shared = Arc::new(Shared {
            mvcc: RwLock::new(mvcc),
            commits,
            db_path: config.dir.join("state.redb"),
        });
        let (jobs, rx) = mpsc::channel(writer::MAX_BATCH * 4);
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("etcd-shim-writer".into())
            .spawn(move || writer::run(writer_shared, disk, rx))
            .map_err(|source| DiskError::Dir {
                path: config.dir.clone(),
                source,
            })?;
        tokio::spawn(reap_leases(
            Arc::downgrade(&shared),
            jobs.downgrade(),
            config.lease_check_interval,
        ));
        Ok(Self {
            shared,
            jobs,
            progress_notify_interval: config.progress_notify_interval,
        })
    }

    /// The committed revision.
    pub fn revision(&self) -> i64 {
        *self.shared.commits.borrow()
    }
}

/// Revokes expired leases through the writer, so their keys' deletions are durable events.
async fn reap_leases(
    shared: std::sync::Weak<Shared>,
    jobs: mpsc::WeakSender<writer::Job>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let (Some(shared), Some(jobs)) = (shared.upgrade(), jobs.upgrade()) else {
            return;
        };
        let now = Instant::now();
        let expired = match shared.mvcc.read() {
            Ok(m) => m.expired_leases(now),
            Err(_) => return,
        };
        drop(shared);
        for id in expired {
            let op = Op::LeaseRevoke {
                id,
                if_expired_at: Some(now),
            };
            if let Err(err) = submit(&jobs, op).await {
                tracing::debug!(lease = id, error = %err, "lease expiry skipped");
            } else {
                tracing::debug!(lease = id, "lease expired");
            }
        }
    }
}

fn unexpected(_: Reply) -> Status {
    Status::internal("etcd-shim: writer returned a mismatched reply")
}

impl Backend for EmbeddedBackend {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Status> {
        let mvcc = self.shared.mvcc.read().map_err(poisoned)?;
        let view = mvcc.committed;
        mvcc.range(&req, view)
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse, Status> {
        match submit(&self.jobs, Op::Put(req)).await? {
            Reply::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, Status> {
        match submit(&self.jobs, Op::Delete(req)).await? {
            Reply::Delete(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        match submit(&self.jobs, Op::Txn(req)).await? {
            Reply::Txn(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, Status> {
        match submit(&self.jobs, Op::Compact(req)).await? {
            Reply::Compact(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(
        &self,
        requests: Requests<WatchRequest>,
    ) -> Result<Responses<WatchResponse>, Status> {
        Ok(watch::serve(
            self.shared.clone(),
            requests,
            self.progress_notify_interval,
        ))
    }

    async fn lease_grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        let op = Op::LeaseGrant {
            id: req.id,
            ttl: req.ttl,
        };
        match submit(&self.jobs, op).await? {
            Reply::LeaseGrant(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, Status> {
        let op = Op::LeaseRevoke {
            id: req.id,
            if_expired_at: None,
        };
        match submit(&self.jobs, op).await? {
            Reply::LeaseRevoke(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        requests: Requests<LeaseKeepAliveRequest>,
    ) -> Result<Responses<LeaseKeepAliveResponse>, Status> {
        let shared = self.shared.clone();
        let responses =
            requests
                .take_while(|r| std::future::ready(r.is_ok()))
                .map(move |request| {
                    let id = request?.id;
                    let mut mvcc = shared.mvcc.write().map_err(poisoned)?;
                    let ttl = mvcc.lease_renew(id, Instant::now());
                    Ok(LeaseKeepAliveResponse {
                        header: header(mvcc.committed),
                        id,
                        ttl,
                    })
                });
        Ok(Box::pin(responses))
    }

    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let mvcc = self.shared.mvcc.read().map_err(poisoned)?;
        let Some(lease) = mvcc.leases.get(&req.id) else {
            // etcd answers an unknown lease with TTL -1, not an error.
            return Ok(LeaseTimeToLiveResponse {
                header: header(mvcc.committed),
                id: req.id,
                ttl: -1,
                ..LeaseTimeToLiveResponse::default()
            });
        };
        let remaining = lease.deadline.saturating_duration_since(Instant::now());
        Ok(LeaseTimeToLiveResponse {
            header: header(mvcc.committed),
            id: req.id,
            ttl: i64::try_from(remaining.as_secs()).unwrap_or(i64::MAX),
            granted_ttl: lease.ttl,
            keys: if req.keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    async fn lease_leases(&self, _req: LeaseLeasesRequest) -> Result<LeaseLeasesResponse, Status> {
        let mvcc = self.shared.mvcc.read().map_err(poisoned)?;
        let mut ids: Vec<i64> = mvcc.leases.keys().copied().collect();
        ids.sort_unstable();
        Ok(LeaseLeasesResponse {
            header: header(mvcc.committed),
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        })
    }

    async fn status(&self, _req: StatusRequest) -> Result<StatusResponse, Status> {
        let committed = self.revision();
        let db_size = std::fs::metadata(&self.shared.db_path)
            .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Ok(StatusResponse {
            header: header(committed),
            version: REPORTED_ETCD_VERSION.into(),
            db_size,
            leader: MEMBER_ID,
            raft_index: u64::try_from(committed).unwrap_or(0),
            raft_term: 1,
            raft_applied_index: u64::try_from(committed).unwrap_or(0),
            db_size_in_use: db_size,
            storage_version: "3.6.0".into(),
            ..StatusResponse::default()
        })
    }

    async fn alarm(&self, _req: AlarmRequest) -> Result<AlarmResponse, Status> {
        // No space quota and no corruption checks: there is never an alarm to report.
        Ok(AlarmResponse {
            header: header(self.revision()),
            alarms: Vec::new(),
        })
    }
}
