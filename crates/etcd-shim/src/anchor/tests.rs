//! The anchor file: round trip, what makes it unreadable, and the start decisions against an
//! embedded store (the end-to-end restore test is in `tests/encryption.rs`).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use daas_envelope::{DataKey, KeyRing};

use super::*;
use crate::backend::embedded::{EmbeddedBackend, EmbeddedConfig};

fn keys() -> Arc<Keys> {
    Arc::new(Keys::from_ring(
        KeyRing::new(DataKey::generate(), []).expect("ring"),
    ))
}

#[test]
fn stores_and_loads_a_sealed_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anchor = Anchor::new(dir.path().join("sub/anchor"));
    let keys = keys();
    assert_eq!(anchor.load(&keys).expect("absent"), None);
    let w = Watermark {
        revision: 42,
        floor: 7,
        next_seq: 9,
    };
    let sealed_under = anchor.store(&keys, &w).expect("store");
    assert_eq!(Some(sealed_under), keys.active_id());
    assert_eq!(anchor.load(&keys).expect("load"), Some(w));
    let meta = std::fs::metadata(anchor.path()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(anchor.path()).expect("read");
    assert!(bytes.starts_with(b"k3e\x03"));
    // Replaced in place: no temporary files left.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["anchor"]);

    // Tampered, foreign or under an unknown key: unreadable, never silently ignored.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(anchor.path(), &bad).expect("write");
    assert!(matches!(
        anchor.load(&keys),
        Err(AnchorError::Unreadable { .. })
    ));
    std::fs::write(anchor.path(), &bytes).expect("write");
    assert!(matches!(
        anchor.load(&self::keys()),
        Err(AnchorError::Unreadable { .. })
    ));
    // A value sealed for an etcd key is not an anchor, even under the right key.
    let value = keys.cipher().encrypt(b"/registry/x", &bytes[..28], 9);
    std::fs::write(anchor.path(), value).expect("write");
    assert!(matches!(
        anchor.load(&keys),
        Err(AnchorError::Unreadable { .. })
    ));
}

async fn put(backend: &EmbeddedBackend, key: &str) {
    use crate::backend::Backend;
    backend
        .put(daas_etcd_proto::PutRequest {
            key: bytes::Bytes::copy_from_slice(key.as_bytes()),
            value: bytes::Bytes::from_static(b"x"),
            ..Default::default()
        })
        .await
        .expect("put");
}

#[tokio::test]
async fn start_decisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = keys();
    let anchor = Anchor::new(dir.path().join("anchor"));
    let backend = EmbeddedBackend::open(&EmbeddedConfig::new(dir.path().join("a"))).expect("open");

    // A fresh store needs no anchor; one is written at once.
    let f = start(&backend, &keys, &anchor, Baseline::Verify)
        .await
        .expect("first start");
    let first = anchor.load(&keys).expect("load").expect("written");
    assert_eq!(first.next_seq, 1);
    assert_eq!(f.watermark(), first);

    // The next start skips 2^32 sequence numbers and keeps the record.
    put(&backend, "/a").await;
    let f = start(&backend, &keys, &anchor, Baseline::Verify)
        .await
        .expect("restart");
    assert_eq!(f.ticket().expect("ticket").seq(), 1 + RESTART_GAP);

    // Anchor ahead of the store: refused, unless deliberately accepted.
    let ahead = Watermark {
        revision: 1_000,
        floor: 5,
        next_seq: 10,
    };
    anchor.store(&keys, &ahead).expect("store");
    let err = start(&backend, &keys, &anchor, Baseline::Verify)
        .await
        .expect_err("rolled back");
    assert!(
        matches!(
            err,
            AnchorError::RolledBack {
                current: 2,
                anchored: 1_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--accept-rolled-back-datastore"));
    assert!(matches!(
        start(&backend, &keys, &anchor, Baseline::AcceptMissingAnchor).await,
        Err(AnchorError::RolledBack { .. })
    ));
    let f = start(&backend, &keys, &anchor, Baseline::AcceptRollback)
        .await
        .expect("accepted");
    let w = anchor.load(&keys).expect("load").expect("rebaselined");
    assert_eq!((w.revision, w.next_seq), (2, 10 + RESTART_GAP));
    assert_eq!(f.floor_at(3), 10 + RESTART_GAP);

    // No anchor for a store with writes: refused; dev's leniency and the override accept it.
    std::fs::remove_file(anchor.path()).expect("rm");
    assert!(matches!(
        start(&backend, &keys, &anchor, Baseline::Verify).await,
        Err(AnchorError::Missing { current: 2, .. })
    ));
    start(&backend, &keys, &anchor, Baseline::AcceptMissingAnchor)
        .await
        .expect("dev leniency");

    // An unreadable anchor is refused even by dev's leniency.
    std::fs::write(anchor.path(), b"garbage").expect("write");
    assert!(matches!(
        start(&backend, &keys, &anchor, Baseline::AcceptMissingAnchor).await,
        Err(AnchorError::Unreadable { .. })
    ));
    start(&backend, &keys, &anchor, Baseline::AcceptRollback)
        .await
        .expect("override");
}
