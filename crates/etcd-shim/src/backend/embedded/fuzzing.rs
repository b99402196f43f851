//! Request handling under arbitrary input, for the fuzz target (`fuzz/`) and the malformed-
//! request tests. Drives the in-memory store exactly as the writer and readers do, minus disk.

use std::time::{Duration, Instant};

use daas_etcd_proto::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, TxnRequest,
    WatchCreateRequest,
};
use prost::Message;

use super::mvcc::{DiskOp, Mvcc, MvccLimits};

/// One store; feed it operations with [`Harness::step`].
#[derive(Debug)]
pub struct Harness {
    mvcc: Mvcc,
    disk: Vec<DiskOp>,
    now: Instant,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self {
            mvcc: Mvcc::restore(MvccLimits::default(), [], [], 0, 0, Instant::now()),
            disk: Vec::new(),
            now: Instant::now(),
        }
    }

    /// The first byte picks the request type; the rest is decoded as that protobuf message.
    /// Undecodable input is dropped (tonic would answer it with an error before the store).
    /// Returns whether the store accepted the request. Panics only if an invariant breaks.
    pub fn step(&mut self, data: &[u8]) -> bool {
        let Some((&kind, body)) = data.split_first() else {
            return false;
        };
        let before = self.mvcc.current;
        let ok = match kind % 8 {
            0 => RangeRequest::decode(body)
                .is_ok_and(|r| self.mvcc.range(&r, self.mvcc.committed).is_ok()),
            1 => PutRequest::decode(body).is_ok_and(|r| self.mvcc.put(&r, &mut self.disk).is_ok()),
            2 => DeleteRangeRequest::decode(body)
                .is_ok_and(|r| self.mvcc.delete_range(&r, &mut self.disk).is_ok()),
            3 => TxnRequest::decode(body).is_ok_and(|r| self.mvcc.txn(&r, &mut self.disk).is_ok()),
            4 => CompactionRequest::decode(body)
                .is_ok_and(|r| self.mvcc.compact(&r, &mut self.disk).is_ok()),
            5 => LeaseGrantRequest::decode(body).is_ok_and(|r| {
                self.mvcc
                    .lease_grant(r.id, r.ttl, self.now, &mut self.disk)
                    .is_ok()
            }),
            6 => {
                // Time passes; expire what is due, as the reaper does.
                self.now += Duration::from_secs(u64::from(body.first().copied().unwrap_or(1)));
                for id in self.mvcc.expired_leases(self.now) {
                    let _ = self.mvcc.lease_revoke(id, Some(self.now), &mut self.disk);
                }
                true
            }
            _ => WatchCreateRequest::decode(body).is_ok_and(|w| {
                // What a watcher created with this request would be replayed.
                let from = if w.start_revision <= 0 {
                    self.mvcc.committed + 1
                } else {
                    w.start_revision
                };
                self.mvcc.events(from, self.mvcc.committed).is_some()
            }),
        };
        // Every batch commits: the watermark follows.
        self.mvcc.committed = self.mvcc.current;
        self.disk.clear();
        assert!(self.mvcc.current >= before, "revision went backwards");
        assert!(
            self.mvcc.compacted <= self.mvcc.current,
            "compacted beyond current"
        );
        ok
    }

    /// The latest value of `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let req = RangeRequest {
            key: bytes::Bytes::copy_from_slice(key),
            ..RangeRequest::default()
        };
        let resp = self.mvcc.range(&req, self.mvcc.committed).ok()?;
        resp.kvs.first().map(|kv| kv.value.to_vec())
    }

    pub fn revision(&self) -> i64 {
        self.mvcc.current
    }
}
