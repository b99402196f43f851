//! The etcd v3 gRPC services: request limits, value encryption on the way in, decryption on
//! the way out, everything else delegated to the [`Backend`].

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use daas_envelope::ValueCipher;
use daas_etcd_proto::mvccpb::KeyValue;
use daas_etcd_proto::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DefragmentRequest,
    DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest,
    MoveLeaderResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RangeStreamResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
    WatchRequest, WatchResponse, cluster_server, compare::CompareTarget, kv_server, lease_server,
    maintenance_server, request_op::Request, response_op::Response, watch_server,
};
use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

use crate::backend::Backend;
use crate::errors;
use crate::keys::Keys;
use crate::validate;

/// Limits and identity of one shim.
#[derive(Clone, Debug)]
pub struct ShimOptions {
    /// Largest accepted request, like etcd's `--max-request-bytes` (default 1.5 MiB). Checked
    /// on the plaintext request; an envelope adds 48 bytes per value on top.
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

/// The services, generic over where the ciphertext lives.
pub struct EtcdShim<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) options: Arc<ShimOptions>,
}

impl<B> Clone for EtcdShim<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            keys: self.keys.clone(),
            options: self.options.clone(),
        }
    }
}

impl<B: Backend> EtcdShim<B> {
    pub fn new(backend: B, keys: Arc<Keys>, options: ShimOptions) -> Self {
        Self {
            backend: Arc::new(backend),
            keys,
            options: Arc::new(options),
        }
    }

    fn check_size(&self, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.options.max_request_bytes {
            return Err(errors::request_too_large());
        }
        Ok(())
    }
}

// ------------------------------------------------------------------- sealing and opening

fn seal_put(cipher: &dyn ValueCipher, put: &mut PutRequest) {
    // With ignore_value the stored value is kept; a value sent anyway is etcd's error to report.
    if !put.ignore_value {
        put.value = Bytes::from(cipher.encrypt(&put.key, &put.value));
    }
}

fn seal_txn(cipher: &dyn ValueCipher, txn: &mut TxnRequest) -> Result<(), Status> {
    for cmp in &txn.compare {
        if cmp.target == CompareTarget::Value as i32 {
            return Err(errors::value_compare_unsupported());
        }
    }
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        match &mut op.request {
            Some(Request::RequestPut(put)) => seal_put(cipher, put),
            Some(Request::RequestTxn(nested)) => seal_txn(cipher, nested)?,
            _ => {}
        }
    }
    Ok(())
}

/// Decrypts one stored value in place. Empty values are never envelopes (tombstones,
/// `keys_only` reads) and stay empty.
fn open_kv(cipher: &dyn ValueCipher, kv: &mut KeyValue) -> Result<(), Status> {
    if kv.value.is_empty() {
        return Ok(());
    }
    let opened = cipher
        .decrypt(&kv.key, &kv.value)
        .map_err(|e| errors::undecryptable(&kv.key, &e))?;
    kv.value = Bytes::from(opened.plaintext);
    Ok(())
}

fn open_kvs<'a>(
    cipher: &dyn ValueCipher,
    kvs: impl IntoIterator<Item = &'a mut KeyValue>,
) -> Result<(), Status> {
    kvs.into_iter().try_for_each(|kv| open_kv(cipher, kv))
}

fn open_txn(cipher: &dyn ValueCipher, resp: &mut TxnResponse) -> Result<(), Status> {
    for op in &mut resp.responses {
        match &mut op.response {
            Some(Response::ResponseRange(r)) => open_kvs(cipher, &mut r.kvs)?,
            Some(Response::ResponsePut(r)) => open_kvs(cipher, r.prev_kv.as_mut())?,
            Some(Response::ResponseDeleteRange(r)) => open_kvs(cipher, &mut r.prev_kvs)?,
            Some(Response::ResponseTxn(r)) => open_txn(cipher, r)?,
            None => {}
        }
    }
    Ok(())
}

fn open_watch(cipher: &dyn ValueCipher, resp: &mut WatchResponse) -> Result<(), Status> {
    for event in &mut resp.events {
        open_kvs(
            cipher,
            event.kv.as_mut().into_iter().chain(event.prev_kv.as_mut()),
        )?;
    }
    Ok(())
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
        let cipher = self.keys.cipher();
        let mut resp = self.backend.range(req).await?;
        open_kvs(cipher.as_ref(), &mut resp.kvs)?;
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
        let cipher = self.keys.cipher();
        seal_put(cipher.as_ref(), &mut req);
        let mut resp = self.backend.put(req).await?;
        open_kvs(cipher.as_ref(), resp.prev_kv.as_mut())?;
        Ok(GrpcResponse::new(resp))
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<GrpcResponse<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        validate::delete_range(&req)?;
        let cipher = self.keys.cipher();
        let mut resp = self.backend.delete_range(req).await?;
        open_kvs(cipher.as_ref(), &mut resp.prev_kvs)?;
        Ok(GrpcResponse::new(resp))
    }

    async fn txn(
        &self,
        request: GrpcRequest<TxnRequest>,
    ) -> Result<GrpcResponse<TxnResponse>, Status> {
        let mut req = request.into_inner();
        self.check_size(req.encoded_len())?;
        validate::txn(&req, validate::MAX_TXN_OPS)?;
        let cipher = self.keys.cipher();
        seal_txn(cipher.as_ref(), &mut req)?;
        let mut resp = self.backend.txn(req).await?;
        open_txn(cipher.as_ref(), &mut resp)?;
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
        let opened = responses.map(move |resp| {
            let mut resp = resp?;
            open_watch(keys.cipher().as_ref(), &mut resp)?;
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
        Ok(GrpcResponse::new(
            self.backend.lease_revoke(request.into_inner()).await?,
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
