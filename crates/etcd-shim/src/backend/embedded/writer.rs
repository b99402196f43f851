//! The single writer: group commit.
//!
//! One thread owns all mutations. It takes every queued write (up to [`MAX_BATCH`]),
//! applies them in order to the in-memory store (so each compare sees the writes before
//! it), commits their disk changes in **one** fsync'd redb transaction, then publishes the
//! new committed revision to readers and watchers and only then acknowledges the callers.
//! While one batch is syncing, the next one queues up: the fsync cost is shared by every
//! client that wrote in the meantime.

use std::sync::Arc;
use std::time::Instant;

use daas_etcd_proto::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse, TxnRequest, TxnResponse,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::Shared;
use super::disk::Disk;
use super::mvcc::DiskOp;
use crate::errors;

/// Most writes sharing one commit.
pub(crate) const MAX_BATCH: usize = 1024;

pub(crate) enum Op {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
        if_expired_at: Option<Instant>,
    },
}

pub(crate) enum Reply {
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
}

pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Reply, Status>>,
}

/// Runs until every sender is dropped. A failed commit aborts the process: after a failed
/// fsync the kernel may have dropped the dirty pages, so retrying could acknowledge data
/// that is not on disk (PostgreSQL's "fsyncgate"; etcd also treats WAL sync errors as fatal).
pub(crate) fn run(shared: Arc<Shared>, disk: Disk, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut results: Vec<Result<Reply, Status>> = Vec::with_capacity(MAX_BATCH);
    let mut disk_ops: Vec<DiskOp> = Vec::new();
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        {
            let Ok(mut mvcc) = shared.mvcc.write() else {
                tracing::error!("store lock poisoned; writer stops");
                return;
            };
            for job in &batch {
                let result = match &job.op {
                    Op::Put(r) => mvcc.put(r, &mut disk_ops).map(Reply::Put),
                    Op::Delete(r) => mvcc.delete_range(r, &mut disk_ops).map(Reply::Delete),
                    Op::Txn(r) => mvcc.txn(r, &mut disk_ops).map(Reply::Txn),
                    Op::Compact(r) => mvcc.compact(r, &mut disk_ops).map(Reply::Compact),
                    Op::LeaseGrant { id, ttl } => mvcc
                        .lease_grant(*id, *ttl, Instant::now(), &mut disk_ops)
                        .map(Reply::LeaseGrant),
                    Op::LeaseRevoke { id, if_expired_at } => mvcc
                        .lease_revoke(*id, *if_expired_at, &mut disk_ops)
                        .map(Reply::LeaseRevoke),
                };
                results.push(result);
            }
        }
        if !disk_ops.is_empty() {
            if let Err(err) = disk.commit(&disk_ops) {
                tracing::error!(error = %err, "embedded store commit failed; aborting so that no unsynced write is acknowledged");
                std::process::abort();
            }
            disk_ops.clear();
        }
        let committed = match shared.mvcc.write() {
            Ok(mut mvcc) => {
                mvcc.committed = mvcc.current;
                mvcc.committed
            }
            Err(_) => return,
        };
        shared.commits.send_replace(committed);
        for (job, result) in batch.drain(..).zip(results.drain(..)) {
            // The caller may have gone away (client cancelled); the write stands regardless.
            let _ = job.reply.send(result);
        }
    }
    tracing::debug!("embedded store writer stopped");
}

/// Sends one write to the writer and waits for its durable result.
pub(crate) async fn submit(jobs: &mpsc::Sender<Job>, op: Op) -> Result<Reply, Status> {
    let (reply, rx) = oneshot::channel();
    jobs.send(Job { op, reply })
        .await
        .map_err(|_| errors::stopped())?;
    rx.await.map_err(|_| errors::stopped())?
}
