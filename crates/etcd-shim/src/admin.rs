//! `daas.shim.v1.KeyAdmin`: key ring status, reload and re-encryption (`rewrap`).
//!
//! Served on a listener of its own (see [`crate::listen`]), never next to the etcd API.
//! Inputs are bounded: a rewrap writes at 1..=[`MAX_RATE`] values per second and reads pages
//! of 1..=[`MAX_PAGE`] keys; anything outside is `InvalidArgument`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use daas_envelope::{KeyId, KeyRing, VERSION, VERSION_1};
use daas_etcd_proto::admin::{
    KeyCount, KeyStatusRequest, KeyStatusResponse, ReloadRequest, ReloadResponse, RewrapRequest,
    RewrapResponse, key_admin_server,
};
use daas_etcd_proto::{
    Compare, PutRequest, RequestOp, StatusRequest, TxnRequest, compare::CompareResult,
    compare::CompareTarget, compare::TargetUnion, request_op::Request,
};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use crate::backend::Backend;
use crate::scan::{Scan, compact_revision};
use crate::server::EtcdShim;

/// Default and largest rewrap page (keys per read).
pub const DEFAULT_PAGE: u32 = 500;
pub const MAX_PAGE: u32 = 5_000;
/// Default and largest rewrap rate (writes per second).
pub const DEFAULT_RATE: u32 = 500;
pub const MAX_RATE: u32 = 10_000;
/// Keys per page of a status scan, which needs only each value's 16-byte header. Small on
/// purpose: etcd has no read that returns part of a value, so with the etcd backend every value
/// crosses the wire once, and one page of full values (at most 100 × etcd's 1.5 MiB value
/// limit, typically a few hundred KiB) is held while its headers are counted. The embedded
/// backend hands out shared buffers, so nothing is copied there.
const STATUS_PAGE: u32 = 100;

/// Key administration on top of a running shim.
pub struct KeyAdmin<B> {
    shim: EtcdShim<B>,
}

impl<B: Backend> KeyAdmin<B> {
    pub fn new(shim: EtcdShim<B>) -> Self {
        Self { shim }
    }
}

fn ids_of(ring: Option<&KeyRing>) -> Vec<String> {
    ring.map(|r| r.ids().map(|id| id.to_string()).collect())
        .unwrap_or_default()
}

/// A client-chosen bound: 0 means `default`, otherwise it must lie in `1..=max`.
fn bounded(value: u32, default: u32, max: u32, what: &str) -> Result<u32, Status> {
    match value {
        0 => Ok(default),
        v if v <= max => Ok(v),
        v => Err(Status::invalid_argument(format!(
            "{what} must be between 1 and {max} (0 for the default {default}), got {v}"
        ))),
    }
}

#[derive(Default)]
struct Count {
    values: u64,
    v1: u64,
}

#[tonic::async_trait]
impl<B: Backend> key_admin_server::KeyAdmin for KeyAdmin<B> {
    async fn status(
        &self,
        request: GrpcRequest<KeyStatusRequest>,
    ) -> Result<GrpcResponse<KeyStatusResponse>, Status> {
        let ring = self.shim.keys.ring();
        let active = ring.as_ref().map(|r| r.active_id());
        let mut resp = KeyStatusResponse {
            active_key_id: active.map(|id| id.to_string()).unwrap_or_default(),
            key_ids: ids_of(ring.as_deref()),
            provider: self.shim.keys.describe(),
            ..KeyStatusResponse::default()
        };
        if request.into_inner().scan {
            let backend = self.shim.backend.as_ref();
            let mut counts: BTreeMap<KeyId, Count> = BTreeMap::new();
            let mut scanned = 0u64;
            let mut unreadable = 0u64;
            let mut scan = Scan::new(STATUS_PAGE);
            while let Some(kvs) = scan.next_page(backend).await? {
                // Only each value's header is looked at; the page is dropped before the next
                // one is read.
                for kv in kvs {
                    scanned += 1;
                    match KeyRing::header_of(&kv.value) {
                        Ok(h) => {
                            let count = counts.entry(h.key_id).or_default();
                            count.values += 1;
                            if h.version == VERSION_1 {
                                count.v1 += 1;
                            }
                        }
                        Err(_) => unreadable += 1,
                    }
                }
            }
            resp.revision = scan.revision;
            resp.scanned = scanned;
            resp.unreadable = unreadable;
            resp.counts = counts
                .into_iter()
                .map(|(id, count)| KeyCount {
                    key_id: id.to_string(),
                    values: count.values,
                    active: Some(id) == active,
                    loaded: ring.as_ref().is_some_and(|r| r.contains(id)),
                    v1_values: count.v1,
                })
                .collect();
        } else {
            resp.revision = self
                .shim
                .backend
                .status(StatusRequest {})
                .await?
                .header
                .map_or(0, |h| h.revision);
        }
        resp.compact_revision = compact_revision(self.shim.backend.as_ref(), resp.revision).await?;
        Ok(GrpcResponse::new(resp))
    }

    async fn reload(
        &self,
        _request: GrpcRequest<ReloadRequest>,
    ) -> Result<GrpcResponse<ReloadResponse>, Status> {
        let reloaded = self
            .shim
            .keys
            .reload()
            .map_err(|e| Status::failed_precondition(format!("key ring reload failed: {e}")))?;
        if reloaded.previous_active != Some(reloaded.active) {
            tracing::info!(active = %reloaded.active, "key ring reloaded: new active key");
        }
        Ok(GrpcResponse::new(ReloadResponse {
            active_key_id: reloaded.active.to_string(),
            key_ids: reloaded.ids.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn rewrap(
        &self,
        request: GrpcRequest<RewrapRequest>,
    ) -> Result<GrpcResponse<RewrapResponse>, Status> {
        let req = request.into_inner();
        let rate = bounded(
            req.max_writes_per_second,
            DEFAULT_RATE,
            MAX_RATE,
            "max_writes_per_second",
        )?;
        let page = bounded(req.page_size, DEFAULT_PAGE, MAX_PAGE, "page_size")?;
        let Some(ring) = self.shim.keys.ring() else {
            return Err(Status::failed_precondition("no key ring (null cipher)"));
        };
        let active = ring.active_id();
        let mut pacer = tokio::time::interval(Duration::from_secs(1) / rate);
        let mut out = RewrapResponse {
            active_key_id: active.to_string(),
            ..RewrapResponse::default()
        };
        let backend = self.shim.backend.as_ref();
        let mut scan = Scan::new(page);
        while let Some(kvs) = scan.next_page(backend).await? {
            for kv in kvs {
                out.scanned += 1;
                match KeyRing::header_of(&kv.value) {
                    // Current: the active key and the envelope version written (v3); values
                    // of older versions under the active key are upgraded too.
                    Ok(h) if h.key_id == active && h.version == VERSION => continue,
                    Ok(_) => {}
                    Err(_) => {
                        out.unreadable += 1;
                        continue;
                    }
                }
                // Opened with the same checks as a client read: a replayed value must not be
                // laundered into a fresh one by re-sealing it.
                let mut opened = kv.clone();
                if self.shim.opener().value(&mut opened).is_err() {
                    out.unreadable += 1;
                    continue;
                }
                pacer.tick().await;
                let ticket = self.shim.freshness.ticket()?;
                let txn = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Mod as i32,
                        key: kv.key.clone(),
                        range_end: Bytes::new(),
                        target_union: Some(TargetUnion::ModRevision(kv.mod_revision)),
                    }],
                    success: vec![RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: kv.key.clone(),
                            value: Bytes::from(ring.encrypt(&kv.key, &opened.value, ticket.seq())),
                            lease: kv.lease,
                            ..PutRequest::default()
                        })),
                    }],
                    failure: Vec::new(),
                };
                let backend = self.shim.backend.clone();
                let written = self
                    .shim
                    .send_write(ticket, async move { backend.txn(txn).await }, |r| {
                        r.header.as_ref().map(|h| h.revision)
                    })
                    .await;
                match written {
                    Ok(r) if r.succeeded => out.rewrapped += 1,
                    // Changed meanwhile (so written with the active key) or its lease expired.
                    Ok(_) | Err(_) => out.conflicts += 1,
                }
            }
        }
        out.revision = scan.revision;
        tracing::info!(
            scanned = out.scanned,
            rewrapped = out.rewrapped,
            conflicts = out.conflicts,
            unreadable = out.unreadable,
            active = %active,
            "rewrap pass finished"
        );
        Ok(GrpcResponse::new(out))
    }
}

#[cfg(test)]
mod tests;
