//! Where the (already encrypted) key-value data lives.
//!
//! A [`Backend`] speaks the etcd v3 messages themselves, so the server layer above it is
//! only encryption, limits and plumbing, and each backend keeps etcd's exact semantics:
//! the [`etcd`] backend by forwarding to a real etcd, the [`embedded`] backend by
//! implementing the MVCC store itself. Values crossing this trait are always ciphertext.

use std::future::Future;
use std::pin::Pin;

use daas_etcd_proto::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
    WatchRequest, WatchResponse,
};
use futures_util::Stream;
use tonic::Status;

pub mod embedded;
pub mod etcd;

/// A stream of client messages (watch or lease keep-alive requests).
pub type Requests<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
/// A stream of server messages.
pub type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The etcd v3 surface a datastore offers the shim. Errors are etcd's own statuses.
pub trait Backend: Send + Sync + 'static {
    fn range(
        &self,
        req: RangeRequest,
    ) -> impl Future<Output = Result<RangeResponse, Status>> + Send;
    fn put(&self, req: PutRequest) -> impl Future<Output = Result<PutResponse, Status>> + Send;
    fn delete_range(
        &self,
        req: DeleteRangeRequest,
    ) -> impl Future<Output = Result<DeleteRangeResponse, Status>> + Send;
    fn txn(&self, req: TxnRequest) -> impl Future<Output = Result<TxnResponse, Status>> + Send;
    fn compact(
        &self,
        req: CompactionRequest,
    ) -> impl Future<Output = Result<CompactionResponse, Status>> + Send;
    /// One bidirectional watch stream (many watchers per stream).
    fn watch(
        &self,
        requests: Requests<WatchRequest>,
    ) -> impl Future<Output = Result<Responses<WatchResponse>, Status>> + Send;
    fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> impl Future<Output = Result<LeaseGrantResponse, Status>> + Send;
    fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
    ) -> impl Future<Output = Result<LeaseRevokeResponse, Status>> + Send;
    fn lease_keep_alive(
        &self,
        requests: Requests<LeaseKeepAliveRequest>,
    ) -> impl Future<Output = Result<Responses<LeaseKeepAliveResponse>, Status>> + Send;
    fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> impl Future<Output = Result<LeaseTimeToLiveResponse, Status>> + Send;
    fn lease_leases(
        &self,
        req: LeaseLeasesRequest,
    ) -> impl Future<Output = Result<LeaseLeasesResponse, Status>> + Send;
    fn status(
        &self,
        req: StatusRequest,
    ) -> impl Future<Output = Result<StatusResponse, Status>> + Send;
    fn alarm(
        &self,
        req: AlarmRequest,
    ) -> impl Future<Output = Result<AlarmResponse, Status>> + Send;
}
