//! Production backend: a real etcd (or etcd cluster) outside the enclave.
//!
//! Requests are forwarded unchanged (their values already sealed by the server layer), so
//! revisions, leases, compaction, watch ids and error statuses are etcd's own. Only
//! ciphertext ever reaches this connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use daas_etcd_proto::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
    WatchRequest, WatchResponse, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use futures_util::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Status, Streaming};

use super::{Backend, Requests, Responses};

/// How to reach the backing etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port` URLs, one per member.
    pub endpoints: Vec<String>,
    /// PEM CA bundle that signs the etcd server certificates (required for https).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key for mTLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Upper bound on one response from etcd (large LISTs); default 2 GiB like the Go client.
    pub max_response_bytes: Option<usize>,
    /// HTTP/2 connections (per endpoint set) that KV requests are spread over; 0 means 1.
    pub connections: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            ca_pem: None,
            client_identity: None,
            max_response_bytes: None,
            connections: 4,
        }
    }
}

/// Errors building the connection (bad URLs or TLS material). Runtime errors are gRPC statuses.
#[derive(Debug, thiserror::Error)]
pub enum EtcdConfigError {
    #[error("no etcd endpoints given")]
    NoEndpoints,
    #[error("etcd endpoint {url:?}: {source}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("etcd endpoint {url:?} uses https but no CA bundle was given")]
    MissingCa { url: String },
}

/// The forwarding backend.
#[derive(Clone, Debug)]
pub struct EtcdBackend {
    kv: Vec<KvClient<Channel>>,
    next: std::sync::Arc<AtomicUsize>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
}

impl EtcdBackend {
    /// Builds a load-balanced channel over every endpoint. Connects lazily: the first
    /// request fails with `Unavailable` if etcd is down, and later ones reconnect.
    pub fn connect(config: &EtcdConfig) -> Result<Self, EtcdConfigError> {
        if config.endpoints.is_empty() {
            return Err(EtcdConfigError::NoEndpoints);
        }
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for url in &config.endpoints {
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(|source| EtcdConfigError::Endpoint {
                    url: url.clone(),
                    source,
                })?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            if url.starts_with("https://") {
                let ca = config
                    .ca_pem
                    .as_ref()
                    .ok_or_else(|| EtcdConfigError::MissingCa { url: url.clone() })?;
                let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
                if let Some((cert, key)) = &config.client_identity {
                    tls = tls.identity(Identity::from_pem(cert, key));
                }
                endpoint =
                    endpoint
                        .tls_config(tls)
                        .map_err(|source| EtcdConfigError::Endpoint {
                            url: url.clone(),
                            source,
                        })?;
            }
            endpoints.push(endpoint);
        }
        let channel_for = |endpoints: &[Endpoint]| {
            if endpoints.len() == 1 {
                endpoints[0].connect_lazy()
            } else {
                Channel::balance_list(endpoints.iter().cloned())
            }
        };
        let channel = channel_for(&endpoints);
        let max = config.max_response_bytes.unwrap_or(2 << 30);
        // KV traffic spreads over several HTTP/2 connections: one connection serialises
        // every frame through one socket and one h2 task (measured in docs/performance.md).
        let kv = (0..config.connections.max(1))
            .map(|_| {
                KvClient::new(channel_for(&endpoints))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX)
            })
            .collect();
        Ok(Self {
            kv,
            next: std::sync::Arc::new(AtomicUsize::new(0)),
            watch: WatchClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX),
            lease: LeaseClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel),
        })
    }
}

impl EtcdBackend {
    fn kv(&self) -> KvClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.kv.len();
        self.kv[i].clone()
    }
}

fn forward<T>(stream: Streaming<T>) -> Responses<T>
where
    T: Send + 'static,
{
    Box::pin(stream)
}

fn upstream<T: Send + 'static>(requests: Requests<T>) -> impl futures_util::Stream<Item = T> {
    // A client-side stream error ends the upstream stream; tonic then closes ours.
    requests
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok()))
}

impl Backend for EtcdBackend {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(self.kv().range(req).await?.into_inner())
    }
    async fn put(&self, req: PutRequest) -> Result<PutResponse, Status> {
        Ok(self.kv().put(req).await?.into_inner())
    }
    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, Status> {
        Ok(self.kv().delete_range(req).await?.into_inner())
    }
    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(self.kv().txn(req).await?.into_inner())
    }
    async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, Status> {
        Ok(self.kv().compact(req).await?.into_inner())
    }
    async fn watch(
        &self,
        requests: Requests<WatchRequest>,
    ) -> Result<Responses<WatchResponse>, Status> {
        let mut request = tonic::Request::new(upstream(requests));
        // kube-apiserver sends this on every watch; etcd enforces it, so pass it on.
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        Ok(forward(
            self.watch.clone().watch(request).await?.into_inner(),
        ))
    }
    async fn lease_grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        Ok(self.lease.clone().lease_grant(req).await?.into_inner())
    }
    async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, Status> {
        Ok(self.lease.clone().lease_revoke(req).await?.into_inner())
    }
    async fn lease_keep_alive(
        &self,
        requests: Requests<LeaseKeepAliveRequest>,
    ) -> Result<Responses<LeaseKeepAliveResponse>, Status> {
        Ok(forward(
            self.lease
                .clone()
                .lease_keep_alive(upstream(requests))
                .await?
                .into_inner(),
        ))
    }
    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        Ok(self
            .lease
            .clone()
            .lease_time_to_live(req)
            .await?
            .into_inner())
    }
    async fn lease_leases(&self, req: LeaseLeasesRequest) -> Result<LeaseLeasesResponse, Status> {
        Ok(self.lease.clone().lease_leases(req).await?.into_inner())
    }
    async fn status(&self, req: StatusRequest) -> Result<StatusResponse, Status> {
        Ok(self.maintenance.clone().status(req).await?.into_inner())
    }
    async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse, Status> {
        Ok(self.maintenance.clone().alarm(req).await?.into_inner())
    }
}
