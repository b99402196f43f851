//! `daas.shim.v1.KeyAdmin`: key ring status, reload and re-encryption (`rewrap`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use daas_envelope::{KeyId, KeyRing};
use daas_etcd_proto::admin::{
    KeyCount, KeyStatusRequest, KeyStatusResponse, ReloadRequest, ReloadResponse, RewrapRequest,
    RewrapResponse, key_admin_server,
};
use daas_etcd_proto::mvccpb::KeyValue;
use daas_etcd_proto::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare::CompareResult,
    compare::CompareTarget, compare::TargetUnion, request_op::Request,
};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use crate::backend::Backend;
use crate::server::EtcdShim;

const DEFAULT_PAGE: u32 = 500;
const DEFAULT_RATE: u32 = 500;

/// Key administration on top of a running shim.
pub struct KeyAdmin<B> {
    shim: EtcdShim<B>,
}

impl<B: Backend> KeyAdmin<B> {
    pub fn new(shim: EtcdShim<B>) -> Self {
        Self { shim }
    }
}

/// Pages through every stored key-value (ciphertext) in key order.
struct Scan {
    from: Option<Bytes>,
    page: u32,
    revision: i64,
}

impl Scan {
    fn new(page: u32) -> Self {
        Self {
            from: Some(Bytes::from_static(b"\0")),
            page: page.max(1),
            revision: 0,
        }
    }

    async fn next_page<B: Backend>(
        &mut self,
        backend: &B,
    ) -> Result<Option<Vec<KeyValue>>, Status> {
        let Some(from) = self.from.take() else {
            return Ok(None);
        };
        let resp = backend
            .range(RangeRequest {
                key: from,
                range_end: Bytes::from_static(b"\0"),
                limit: i64::from(self.page),
                ..RangeRequest::default()
            })
            .await?;
        self.revision = resp.header.map_or(self.revision, |h| h.revision);
        if resp.more
            && let Some(last) = resp.kvs.last()
        {
            let mut next = last.key.to_vec();
            next.push(0);
            self.from = Some(Bytes::from(next));
        }
        Ok(Some(resp.kvs))
    }
}

fn ids_of(ring: Option<&KeyRing>) -> Vec<String> {
    ring.map(|r| r.ids().map(|id| id.to_string()).collect())
        .unwrap_or_default()
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
            let mut counts: BTreeMap<KeyId, u64> = BTreeMap::new();
            let mut scanned = 0u64;
            let mut unreadable = 0u64;
            let mut scan = Scan::new(DEFAULT_PAGE);
            while let Some(kvs) = scan.next_page(self.shim.backend.as_ref()).await? {
                for kv in kvs {
                    scanned += 1;
                    match KeyRing::key_id_of(&kv.value) {
                        Ok(id) => *counts.entry(id).or_default() += 1,
                        Err(_) => unreadable += 1,
                    }
                }
            }
            resp.revision = scan.revision;
            resp.scanned = scanned;
            resp.unreadable = unreadable;
            resp.counts = counts
                .into_iter()
                .map(|(id, values)| KeyCount {
                    key_id: id.to_string(),
                    values,
                    active: Some(id) == active,
                    loaded: ring.as_ref().is_some_and(|r| r.contains(id)),
                })
                .collect();
        }
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
        let Some(ring) = self.shim.keys.ring() else {
            return Err(Status::failed_precondition("no key ring (null cipher)"));
        };
        let active = ring.active_id();
        let rate = if req.max_writes_per_second == 0 {
            DEFAULT_RATE
        } else {
            req.max_writes_per_second
        };
        let page = if req.page_size == 0 {
            DEFAULT_PAGE
        } else {
            req.page_size
        };
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
                match KeyRing::key_id_of(&kv.value) {
                    Ok(id) if id == active => continue,
                    Ok(_) => {}
                    Err(_) => {
                        out.unreadable += 1;
                        continue;
                    }
                }
                let Ok(opened) = ring.decrypt(&kv.key, &kv.value) else {
                    out.unreadable += 1;
                    continue;
                };
                pacer.tick().await;
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
                            value: Bytes::from(ring.encrypt(&kv.key, &opened.plaintext)),
                            lease: kv.lease,
                            ..PutRequest::default()
                        })),
                    }],
                    failure: Vec::new(),
                };
                match backend.txn(txn).await {
                    Ok(r) if r.succeeded => out.rewrapped += 1,
                    // Changed meanwhile (so written with the active key) or its lease expired.
                    Ok(_) | Err(_) => out.conflicts += 1,
                }
            }
        }
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
