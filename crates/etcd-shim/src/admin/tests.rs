//! KeyAdmin against an embedded store: input bounds, header-only status counts, and rewrap
//! refusing to launder a value that fails the freshness check.

use std::sync::Arc;

use daas_envelope::DataKey;
use daas_etcd_proto::admin::key_admin_server::KeyAdmin as _;
use daas_etcd_proto::{RangeRequest, kv_server::Kv as _};
use tonic::Code;

use super::*;
use crate::backend::embedded::{EmbeddedBackend, EmbeddedConfig};
use crate::keys::Keys;
use crate::server::ShimOptions;

fn shim(dir: &std::path::Path, ring: KeyRing) -> EtcdShim<EmbeddedBackend> {
    let backend = EmbeddedBackend::open(&EmbeddedConfig::new(dir)).expect("open");
    EtcdShim::new(
        backend,
        Arc::new(Keys::from_ring(ring)),
        ShimOptions::default(),
    )
}

async fn put(shim: &EtcdShim<EmbeddedBackend>, key: &str, value: &str) {
    shim.put(GrpcRequest::new(PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..PutRequest::default()
    }))
    .await
    .expect("put");
}

fn rewrap(rate: u32, page: u32) -> GrpcRequest<RewrapRequest> {
    GrpcRequest::new(RewrapRequest {
        page_size: page,
        max_writes_per_second: rate,
    })
}

#[tokio::test]
async fn rewrap_bounds_are_invalid_argument_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shim = shim(
        dir.path(),
        KeyRing::new(DataKey::generate(), []).expect("ring"),
    );
    put(&shim, "/a", "v").await;
    let admin = KeyAdmin::new(shim);
    for (rate, page) in [
        (u32::MAX, 0),
        (MAX_RATE + 1, 0),
        (1_000_000_001, 0),
        (0, u32::MAX),
        (0, MAX_PAGE + 1),
    ] {
        let err = admin
            .rewrap(rewrap(rate, page))
            .await
            .expect_err("out of bounds");
        assert_eq!(err.code(), Code::InvalidArgument, "{rate}/{page}: {err:?}");
    }
    for (rate, page) in [(0, 0), (1, 1), (MAX_RATE, MAX_PAGE)] {
        let out = admin
            .rewrap(rewrap(rate, page))
            .await
            .expect("within bounds")
            .into_inner();
        assert_eq!((out.scanned, out.rewrapped), (1, 0), "{rate}/{page}");
    }
}

#[tokio::test]
async fn status_counts_headers_and_rewrap_upgrades_old_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = [3u8; 32];
    let shim = shim(
        dir.path(),
        KeyRing::new(DataKey::from_bytes(old), []).expect("ring"),
    );
    put(&shim, "/a", "1").await;
    put(&shim, "/b", "2").await;
    // Rotate: a new active key, the old one kept for reading.
    let rotated = EtcdShim {
        keys: Arc::new(Keys::from_ring(
            KeyRing::new(DataKey::generate(), [DataKey::from_bytes(old)]).expect("ring"),
        )),
        ..shim.clone()
    };
    put(&rotated, "/c", "3").await;
    let admin = KeyAdmin::new(rotated.clone());
    let status = admin
        .status(GrpcRequest::new(KeyStatusRequest { scan: true }))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.scanned, 3);
    assert_eq!(status.compact_revision, 0);
    let old_id = DataKey::from_bytes(old).id().to_string();
    let old_count = status
        .counts
        .iter()
        .find(|c| c.key_id == old_id)
        .expect("old key counted");
    assert_eq!((old_count.values, old_count.v1_values), (2, 0));
    assert!(!old_count.active && old_count.loaded);

    let out = admin
        .rewrap(rewrap(0, 0))
        .await
        .expect("rewrap")
        .into_inner();
    assert_eq!((out.scanned, out.rewrapped, out.unreadable), (3, 2, 0));
    let status = admin
        .status(GrpcRequest::new(KeyStatusRequest { scan: true }))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.counts.len(), 1);
    assert!(status.counts[0].active);

    // After a compaction the status reports it.
    rotated
        .compact(GrpcRequest::new(daas_etcd_proto::CompactionRequest {
            revision: 5,
            physical: false,
        }))
        .await
        .expect("compact");
    let status = admin
        .status(GrpcRequest::new(KeyStatusRequest { scan: true }))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.compact_revision, 5);
}

#[tokio::test]
async fn rewrap_does_not_launder_a_replayed_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = [4u8; 32];
    let shim = shim(
        dir.path(),
        KeyRing::new(DataKey::from_bytes(old), []).expect("ring"),
    );
    put(&shim, "/k", "v1").await;
    let c1 = shim
        .backend
        .range(RangeRequest {
            key: Bytes::from_static(b"/k"),
            ..RangeRequest::default()
        })
        .await
        .expect("raw read")
        .kvs
        .remove(0)
        .value;
    put(&shim, "/k", "v2").await;
    // The datastore puts the old ciphertext back (behind the shim's back).
    shim.backend
        .put(PutRequest {
            key: Bytes::from_static(b"/k"),
            value: c1,
            ..PutRequest::default()
        })
        .await
        .expect("raw put");
    let rotated = EtcdShim {
        keys: Arc::new(Keys::from_ring(
            KeyRing::new(DataKey::generate(), [DataKey::from_bytes(old)]).expect("ring"),
        )),
        ..shim.clone()
    };
    let out = KeyAdmin::new(rotated.clone())
        .rewrap(rewrap(0, 0))
        .await
        .expect("rewrap")
        .into_inner();
    assert_eq!((out.rewrapped, out.unreadable), (0, 1));
    let err = rotated
        .range(GrpcRequest::new(RangeRequest {
            key: Bytes::from_static(b"/k"),
            ..RangeRequest::default()
        }))
        .await
        .expect_err("still stale");
    assert_eq!(err.code(), Code::DataLoss);
}
