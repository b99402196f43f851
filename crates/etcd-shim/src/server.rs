//! The etcd v3 gRPC services: request limits, value encryption on the way in, decryption and
//! freshness checks on the way out, everything else delegated to the [`Backend`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use daas_envelope::ValueCipher;
use daas_etcd_proto::mvccpb::{KeyValue, event::EventType};
use daas_etcd_proto::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, Compare, DefragmentRequest,
    DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest,
    MoveLeaderResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RangeStreamResponse,
    RequestOp, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse, TxnRequest,
    TxnResponse, WatchRequest, WatchResponse, cluster_server,
    compare::{CompareResult, CompareTarget, TargetUnion},
    kv_server, lease_server, maintenance_server,
    request_op::Request,
    response_op::Response,
    watch_server,
};
use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

use crate::backend::Backend;
use crate::errors;
use crate::freshness::{Freshness, Ticket};
use crate::keys::Keys;
use crate::validate;

/// Limits and identity of one shim.
#[derive(Clone, Debug)]
pub struct ShimOptions {
    /// Largest accepted request, like etcd's `--max-request-bytes` (default 1.5 MiB). Checked
    /// on the plaintext request; an envelope adds 108 bytes per value on top.
    pub max_request_bytes: usize,
    /// URL clients reach this shim at (reported by `MemberList`).
    pub advertise_url: String,
}

impl Default for ShimOptions {
    fn default() -> Self {
        Self {
            max_request_bytes: 1536 * 1024,
            advertise_url: "http://127.0.0.1:2379".into(),
        }
    }
}

/// How often a put with `ignore_value` retries its compare-and-swap before giving up.
const KEEP_VALUE_ATTEMPTS: usize = 16;

/// The services, generic over where the ciphertext lives.
pub struct EtcdShim<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) options: Arc<ShimOptions>,
    pub(crate) freshness: Arc<Freshness>,
}

impl<B> Clone for EtcdShim<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            keys: self.keys.clone(),
            options: self.options.clone(),
            freshness: self.freshness.clone(),
        }
    }
}

impl<B: Backend> EtcdShim<B> {
    /// A shim whose freshness checks cover the values this process writes (no anchor:
    /// tests, benchmarks, tools). Servers start from an anchor with
    /// [`with_freshness`](Self::with_freshness) and [`crate::anchor::start`].
    pub fn new(backend: B, keys: Arc<Keys>, options: ShimOptions) -> Self {
        Self::with_freshness(backend, keys, options, Arc::new(Freshness::new()))
    }

    /// A shim continuing from `freshness` (see [`crate::anchor::start`]).
    pub fn with_freshness(
        backend: B,
        keys: Arc<Keys>,
        options: ShimOptions,
        freshness: Arc<Freshness>,
    ) -> Self {
        Self {
            backend: Arc::new(backend),
            keys,
            options: Arc::new(options),
            freshness,
        }
    }

    /// The freshness state (the anchor writer persists its watermark).
    pub fn freshness(&self) -> &Arc<Freshness> {
        &self.freshness
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    fn check_size(&self, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.options.max_request_bytes {
            return Err(errors::request_too_large());
        }
        Ok(())
    }

    pub(crate) fn opener(&self) -> Opener {
        Opener::new(self.keys.as_ref(), &self.freshness)
    }

    /// Sends one write to the backend under `ticket` and finishes the ticket with the answer.
    /// If the client goes away first, the write is not abandoned: the rest of it runs to its
    /// answer in a task of its own, so the shim never forgets a write that may still commit
    /// (see `crate::freshness` and [`WriteInFlight`]).
    pub(crate) async fn send_write<T, F>(
        &self,
        ticket: Ticket,
        write: F,
        revision: fn(&T) -> Option<i64>,
    ) -> Result<T, Status>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Status>> + Send + 'static,
    {
        WriteInFlight {
            write: Some(Box::pin(write)),
            ticket: Some(ticket),
            revision,
        }
        .await
    }

    /// A put with `ignore_value`: the backend would keep the stored envelope at a new revision,
    /// with a sequence number older than the records there. So the shim reads the value,
    /// checks and opens it, and writes it back sealed afresh, by compare-and-swap on
    /// `mod_revision` (with etcd's response shape and errors).
    async fn put_keeping_value(&self, req: PutRequest) -> Result<PutResponse, Status> {
        for _ in 0..KEEP_VALUE_ATTEMPTS {
            let current = self
                .backend
                .range(RangeRequest {
                    key: req.key.clone(),
                    ..RangeRequest::default()
                })
                .await?;
            let Some(mut kv) = current.kvs.into_iter().next() else {
                return Err(errors::key_not_found());
            };
            let mod_revision = kv.mod_revision;
            let opener = self.opener();
            opener.value(&mut kv)?;
            let ticket = self.freshness.ticket()?;
            let put = PutRequest {
                key: req.key.clone(),
                value: Bytes::from(opener.seal(&req.key, &kv.value, ticket.seq())),
                lease: req.lease,
                prev_kv: req.prev_kv,
                ignore_value: false,
                ignore_lease: req.ignore_lease,
            };
            let txn = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Mod as i32,
                    key: req.key.clone(),
                    range_end: Bytes::new(),
                    target_union: Some(TargetUnion::ModRevision(mod_revision)),
                }],
                success: vec![RequestOp {
                    request: Some(Request::RequestPut(put)),
                }],
                failure: Vec::new(),
            };
            let backend = self.backend.clone();
            let resp = self
                .send_write(ticket, async move { backend.txn(txn).await }, txn_revision)
                .await?;
            if !resp.succeeded {
                continue; // changed meanwhile: read again
            }
            let prev_kv = match resp.responses.into_iter().next().and_then(|r| r.response) {
                Some(Response::ResponsePut(p)) => p.prev_kv,
                _ => {
                    return Err(Status::internal(
                        "etcd-shim: the backend answered a put with another response",
                    ));
                }
            };
            let mut out = PutResponse {
                header: resp.header,
                prev_kv,
            };
            opener.kvs(out.prev_kv.as_mut())?;
            return Ok(out);
        }
        Err(Status::unavailable(
            "etcd-shim: the key kept changing during a put with ignore_value; retry",
        ))
    }
}

/// A backend write in progress.
type BoxedWrite<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

/// A backend write and its ticket. Awaited in the request's own task (no extra task switch on
/// the common path); when dropped before the backend answered (the client cancelled), the
/// rest of the write is handed to a task of its own, which finishes the ticket when the
/// answer comes. Without a runtime to hand it to, the ticket is dropped unfinished, which pins
/// its sequence number for the grace period.
struct WriteInFlight<T: Send + 'static> {
    write: Option<BoxedWrite<T>>,
    ticket: Option<Ticket>,
    revision: fn(&T) -> Option<i64>,
}

impl<T: Send + 'static> Future for WriteInFlight<T> {
    type Output = Result<T, Status>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(write) = self.write.as_mut() else {
            return std::task::Poll::Ready(Err(Status::internal(
                "etcd-shim: write polled after completion",
            )));
        };
        let result = std::task::ready!(write.as_mut().poll(cx));
        self.write = None;
        if let Some(ticket) = self.ticket.take() {
            ticket.finish_with(&result, self.revision);
        }
        std::task::Poll::Ready(result)
    }
}

impl<T: Send + 'static> Drop for WriteInFlight<T> {
    fn drop(&mut self) {
        let (Some(write), Some(ticket)) = (self.write.take(), self.ticket.take()) else {
            return;
        };
        let revision = self.revision;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let result = write.await;
                ticket.finish_with(&result, revision);
            });
        }
    }
}

fn put_revision(r: &PutResponse) -> Option<i64> {
    r.header.as_ref().map(|h| h.revision)
}

fn txn_revision(r: &TxnResponse) -> Option<i64> {
    r.header.as_ref().map(|h| h.revision)
}

// ------------------------------------------------------------------- sealing and opening

fn seal_put(cipher: &dyn ValueCipher, put: &mut PutRequest, seq: u64) {
    // With ignore_value the stored value is kept; a value sent anyway is etcd's error to report.
    if !put.ignore_value {
        put.value = Bytes::from(cipher.encrypt(&put.key, &put.value, seq));
    }
}

fn seal_txn(cipher: &dyn ValueCipher, txn: &mut TxnRequest, seq: u64) {
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        match &mut op.request {
            Some(Request::RequestPut(put)) => seal_put(cipher, put, seq),
            Some(Request::RequestTxn(nested)) => seal_txn(cipher, nested, seq),
            _ => {}
        }
    }
}

/// Compares on VALUE anywhere in the tree: ciphertexts are randomised, a backend cannot
/// evaluate them.
fn check_compares(txn: &TxnRequest) -> Result<(), Status> {
    if txn
        .compare
        .iter()
        .any(|c| c.target == CompareTarget::Value as i32)
    {
        return Err(errors::value_compare_unsupported());
    }
    for op in txn.success.iter().chain(&txn.failure) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            check_compares(nested)?;
        }
    }
    Ok(())
}

/// Whether a Txn may write (a put or a delete in either branch, at any depth).
fn may_write(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => true,
            Some(Request::RequestTxn(nested)) => may_write(nested),
            _ => false,
        })
}

/// What each op of a Txn returns, so its response can be checked: whether a Range op's kvs
/// carry values (not with `keys_only`/`count_only`).
#[derive(Debug, Default)]
pub(crate) struct TxnShape {
    success: Vec<OpShape>,
    failure: Vec<OpShape>,
}

#[derive(Debug)]
enum OpShape {
    Range { values: bool },
    Other,
    Txn(TxnShape),
}

impl TxnShape {
    pub(crate) fn of(txn: &TxnRequest) -> Self {
        let ops = |ops: &[RequestOp]| {
            ops.iter()
                .map(|op| match &op.request {
                    Some(Request::RequestRange(r)) => OpShape::Range {
                        values: !(r.keys_only || r.count_only),
                    },
                    Some(Request::RequestTxn(t)) => OpShape::Txn(TxnShape::of(t)),
                    _ => OpShape::Other,
                })
                .collect()
        };
        Self {
            success: ops(&txn.success),
            failure: ops(&txn.failure),
        }
    }
}

/// Opens every value on the way out: refuses empty values, decrypts, and checks each value's
/// write sequence number against the freshness records. Fail closed: one bad value fails the
/// whole response.
pub(crate) struct Opener {
    cipher: Arc<dyn ValueCipher>,
    /// `None` for the benchmark's null cipher: values are stored as they are, so there is no
    /// envelope to require and no sequence number to check.
    freshness: Option<Arc<Freshness>>,
}

impl Opener {
    pub(crate) fn new(keys: &Keys, freshness: &Arc<Freshness>) -> Self {
        Self {
            cipher: keys.cipher(),
            freshness: (!keys.is_null()).then(|| freshness.clone()),
        }
    }

    pub(crate) fn seal(&self, key: &[u8], plaintext: &[u8], seq: u64) -> Vec<u8> {
        self.cipher.encrypt(key, plaintext, seq)
    }

    /// One stored value that must be there.
    pub(crate) fn value(&self, kv: &mut KeyValue) -> Result<(), Status> {
        let Some(freshness) = &self.freshness else {
            let opened = self
                .cipher
                .decrypt(&kv.key, &kv.value)
                .map_err(|e| errors::undecryptable(&kv.key, &e))?;
            kv.value = Bytes::from(opened.plaintext);
            return Ok(());
        };
        if kv.value.is_empty() {
            return Err(errors::empty_value(&kv.key, kv.mod_revision));
        }
        let opened = self
            .cipher
            .decrypt(&kv.key, &kv.value)
            .map_err(|e| errors::undecryptable(&kv.key, &e))?;
        freshness.check(&kv.key, kv.mod_revision, opened.sequence)?;
        kv.value = Bytes::from(opened.plaintext);
        Ok(())
    }

    pub(crate) fn kvs<'a>(
        &self,
        kvs: impl IntoIterator<Item = &'a mut KeyValue>,
    ) -> Result<(), Status> {
        kvs.into_iter().try_for_each(|kv| self.value(kv))
    }

    /// The kvs of a Range: with `keys_only`/`count_only` no value is expected, and none is
    /// passed on (the client asked for none; a value there would be ciphertext).
    pub(crate) fn range_kvs(&self, kvs: &mut [KeyValue], values: bool) -> Result<(), Status> {
        if values {
            return self.kvs(kvs.iter_mut());
        }
        for kv in kvs {
            kv.value = Bytes::new();
        }
        Ok(())
    }

    pub(crate) fn txn(&self, resp: &mut TxnResponse, shape: &TxnShape) -> Result<(), Status> {
        let ops = if resp.succeeded {
            &shape.success
        } else {
            &shape.failure
        };
        let empty = TxnShape::default();
        for (i, op) in resp.responses.iter_mut().enumerate() {
            let op_shape = ops.get(i);
            match &mut op.response {
                Some(Response::ResponseRange(r)) => {
                    let values = !matches!(op_shape, Some(OpShape::Range { values: false }));
                    self.range_kvs(&mut r.kvs, values)?;
                }
                Some(Response::ResponsePut(r)) => self.kvs(r.prev_kv.as_mut())?,
                Some(Response::ResponseDeleteRange(r)) => self.kvs(&mut r.prev_kvs)?,
                Some(Response::ResponseTxn(r)) => {
                    let nested = match op_shape {
                        Some(OpShape::Txn(t)) => t,
                        _ => &empty,
                    };
                    self.txn(r, nested)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Watch events: a PUT's `kv` and every `prev_kv` carry a value; a DELETE's `kv` is a
    /// tombstone without one.
    pub(crate) fn watch(&self, resp: &mut WatchResponse) -> Result<(), Status> {
        for event in &mut resp.events {
            if let Some(kv) = event.kv.as_mut() {
                if event.r#type == EventType::Delete as i32 {
                    if !kv.value.is_empty() {
                        return Err(errors::delete_event_with_value(&kv.key, kv.mod_revision));
                    }
                } else {
                    self.value(kv)?;
                }
            }
            self.kvs(event.prev_kv.as_mut())?;
        }
        Ok(())
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn client_stream<T: Send + 'static>(s: Streaming<T>) -> BoxStream<T> {
    Box::pin(s)
}

// ------------------------------------------------------------------------------ KV

#[tonic::async_trait]
impl<B: Backend> kv_server::Kv for EtcdShim<B> {
    async fn range(
        &self,
        request: GrpcRequest<RangeRequest>,
    ) -> Result<GrpcResponse<RangeResponse>, Status> {
        let req = request.into_inner();
        // Checked here for every backend: etcd 3.4 crashes on an out-of-range sort target.
        validate::range(&req)?;
        let opener = self.opener();
        let values = !(req.keys_only || req.count_only);
        let mut resp = self.backend.range(req).await?;
        opener.range_kvs(&mut resp.kvs, values)?;
        Ok(GrpcResponse::new(resp))
    }

    type RangeStreamStream = BoxStream<RangeStreamResponse>;

    async fn range_stream(
        &self,
        _request: GrpcRequest<RangeRequest>,
    ) -> Result<GrpcResponse<Self::RangeStreamStream>, Status> {
        // kube-apiserver ≥ 1.37 probes this and falls back to paged Range on Unimplemented.
        Err(Status::unimplemented(
            "etcd-shim: RangeStream is not supported",
        ))
    }

    async fn put(
        &self,
        request: GrpcRequest<PutRequest>,
    ) -> Result<GrpcResponse<PutResponse>, Status> {
        let mut req = request.into_inner();
        self.check_size(req.encoded_len())?;
        validate::put(&req)?;
        validate::not_reserved(&req.key)?;
        if req.ignore_value {
            return Ok(GrpcResponse::new(self.put_keeping_value(req).await?));
        }
        let opener = self.opener();
        let ticket = self.freshness.ticket()?;
        seal_put(opener.cipher.as_ref(), &mut req, ticket.seq());
        let backend = self.backend.clone();
        let mut resp = self
            .send_write(ticket, async move { backend.put(req).await }, put_revision)
            .await?;
        opener.kvs(resp.prev_kv.as_mut())?;
        Ok(GrpcResponse::new(resp))
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<GrpcResponse<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        validate::delete_range(&req)?;
        let opener = self.opener();
        // A delete takes a ticket too: its record raises the floor above the deleted value,
        // so that value put back later (a resurrection) is caught.
        let ticket = self.freshness.ticket()?;
        let backend = self.backend.clone();
        let mut resp = self
            .send_write(
                ticket,
                async move { backend.delete_range(req).await },
                |r: &DeleteRangeResponse| r.header.as_ref().map(|h| h.revision),
            )
            .await?;
        opener.kvs(&mut resp.prev_kvs)?;
        Ok(GrpcResponse::new(resp))
    }

    async fn txn(
        &self,
        request: GrpcRequest<TxnRequest>,
    ) -> Result<GrpcResponse<TxnResponse>, Status> {
        let mut req = request.into_inner();
        self.check_size(req.encoded_len())?;
        validate::txn(&req, validate::MAX_TXN_OPS)?;
        check_compares(&req)?;
        validate::writes(&req)?;
        let opener = self.opener();
        let shape = TxnShape::of(&req);
        let mut resp = if may_write(&req) {
            let ticket = self.freshness.ticket()?;
            seal_txn(opener.cipher.as_ref(), &mut req, ticket.seq());
            let backend = self.backend.clone();
            self.send_write(ticket, async move { backend.txn(req).await }, txn_revision)
                .await?
        } else {
            self.backend.txn(req).await?
        };
        opener.txn(&mut resp, &shape)?;
        Ok(GrpcResponse::new(resp))
    }

    async fn compact(
        &self,
        request: GrpcRequest<CompactionRequest>,
    ) -> Result<GrpcResponse<CompactionResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend.compact(request.into_inner()).await?,
        ))
    }
}

// --------------------------------------------------------------------------- Watch

#[tonic::async_trait]
impl<B: Backend> watch_server::Watch for EtcdShim<B> {
    type WatchStream = BoxStream<WatchResponse>;

    async fn watch(
        &self,
        request: GrpcRequest<Streaming<WatchRequest>>,
    ) -> Result<GrpcResponse<Self::WatchStream>, Status> {
        let responses = self
            .backend
            .watch(client_stream(request.into_inner()))
            .await?;
        let keys = self.keys.clone();
        let freshness = self.freshness.clone();
        let opened = responses.map(move |resp| {
            let mut resp = resp?;
            Opener::new(&keys, &freshness).watch(&mut resp)?;
            Ok(resp)
        });
        Ok(GrpcResponse::new(Box::pin(opened)))
    }
}

// --------------------------------------------------------------------------- Lease

#[tonic::async_trait]
impl<B: Backend> lease_server::Lease for EtcdShim<B> {
    async fn lease_grant(
        &self,
        request: GrpcRequest<LeaseGrantRequest>,
    ) -> Result<GrpcResponse<LeaseGrantResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend.lease_grant(request.into_inner()).await?,
        ))
    }

    async fn lease_revoke(
        &self,
        request: GrpcRequest<LeaseRevokeRequest>,
    ) -> Result<GrpcResponse<LeaseRevokeResponse>, Status> {
        // Deletes the lease's keys: a write like DeleteRange (see there).
        let ticket = self.freshness.ticket()?;
        let backend = self.backend.clone();
        let req = request.into_inner();
        Ok(GrpcResponse::new(
            self.send_write(
                ticket,
                async move { backend.lease_revoke(req).await },
                |r: &LeaseRevokeResponse| r.header.as_ref().map(|h| h.revision),
            )
            .await?,
        ))
    }

    type LeaseKeepAliveStream = BoxStream<LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        request: GrpcRequest<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<GrpcResponse<Self::LeaseKeepAliveStream>, Status> {
        Ok(GrpcResponse::new(
            self.backend
                .lease_keep_alive(client_stream(request.into_inner()))
                .await?,
        ))
    }

    async fn lease_time_to_live(
        &self,
        request: GrpcRequest<LeaseTimeToLiveRequest>,
    ) -> Result<GrpcResponse<LeaseTimeToLiveResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend
                .lease_time_to_live(request.into_inner())
                .await?,
        ))
    }

    async fn lease_leases(
        &self,
        request: GrpcRequest<LeaseLeasesRequest>,
    ) -> Result<GrpcResponse<LeaseLeasesResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend.lease_leases(request.into_inner()).await?,
        ))
    }
}

// ------------------------------------------------------------------------- Cluster

fn not_served(what: &str) -> Status {
    Status::unimplemented(format!("etcd-shim: {what} is not supported"))
}

#[tonic::async_trait]
impl<B: Backend> cluster_server::Cluster for EtcdShim<B> {
    async fn member_add(
        &self,
        _r: GrpcRequest<MemberAddRequest>,
    ) -> Result<GrpcResponse<MemberAddResponse>, Status> {
        Err(not_served("MemberAdd"))
    }
    async fn member_remove(
        &self,
        _r: GrpcRequest<MemberRemoveRequest>,
    ) -> Result<GrpcResponse<MemberRemoveResponse>, Status> {
        Err(not_served("MemberRemove"))
    }
    async fn member_update(
        &self,
        _r: GrpcRequest<MemberUpdateRequest>,
    ) -> Result<GrpcResponse<MemberUpdateResponse>, Status> {
        Err(not_served("MemberUpdate"))
    }
    async fn member_promote(
        &self,
        _r: GrpcRequest<MemberPromoteRequest>,
    ) -> Result<GrpcResponse<MemberPromoteResponse>, Status> {
        Err(not_served("MemberPromote"))
    }

    /// The shim is the one member its clients see: the backend's own members (and their
    /// addresses outside the enclave) are never advertised, so a client that syncs its
    /// endpoint list cannot be steered around the encryption.
    async fn member_list(
        &self,
        _r: GrpcRequest<MemberListRequest>,
    ) -> Result<GrpcResponse<MemberListResponse>, Status> {
        let status = self.backend.status(StatusRequest {}).await?;
        Ok(GrpcResponse::new(MemberListResponse {
            header: status.header,
            members: vec![Member {
                id: crate::backend::embedded::MEMBER_ID,
                name: "k3s-daas-etcd-shim".into(),
                peer_ur_ls: Vec::new(),
                client_ur_ls: vec![self.options.advertise_url.clone()],
                is_learner: false,
            }],
        }))
    }
}

// --------------------------------------------------------------------- Maintenance

#[tonic::async_trait]
impl<B: Backend> maintenance_server::Maintenance for EtcdShim<B> {
    async fn alarm(
        &self,
        request: GrpcRequest<AlarmRequest>,
    ) -> Result<GrpcResponse<AlarmResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend.alarm(request.into_inner()).await?,
        ))
    }
    async fn status(
        &self,
        request: GrpcRequest<StatusRequest>,
    ) -> Result<GrpcResponse<StatusResponse>, Status> {
        Ok(GrpcResponse::new(
            self.backend.status(request.into_inner()).await?,
        ))
    }
    async fn defragment(
        &self,
        _r: GrpcRequest<DefragmentRequest>,
    ) -> Result<GrpcResponse<DefragmentResponse>, Status> {
        Err(not_served("Defragment"))
    }
    async fn hash(
        &self,
        _r: GrpcRequest<HashRequest>,
    ) -> Result<GrpcResponse<HashResponse>, Status> {
        Err(not_served("Hash"))
    }
    async fn hash_kv(
        &self,
        _r: GrpcRequest<HashKvRequest>,
    ) -> Result<GrpcResponse<HashKvResponse>, Status> {
        Err(not_served("HashKV"))
    }
    type SnapshotStream = BoxStream<SnapshotResponse>;
    async fn snapshot(
        &self,
        _r: GrpcRequest<SnapshotRequest>,
    ) -> Result<GrpcResponse<Self::SnapshotStream>, Status> {
        // A snapshot would ship the whole (encrypted) store out; back up the backend instead.
        Err(not_served("Snapshot"))
    }
    async fn move_leader(
        &self,
        _r: GrpcRequest<MoveLeaderRequest>,
    ) -> Result<GrpcResponse<MoveLeaderResponse>, Status> {
        Err(not_served("MoveLeader"))
    }
    async fn downgrade(
        &self,
        _r: GrpcRequest<DowngradeRequest>,
    ) -> Result<GrpcResponse<DowngradeResponse>, Status> {
        Err(not_served("Downgrade"))
    }
}
