//! The snapshot bytes do not depend on how the snapshot was taken.

use super::*;

#[test]
fn the_shared_view_encodes_to_the_same_snapshot_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    crate::genesis::init(&data, None, "http://127.0.0.1:1").expect("init");
    let ledger = load(&data).expect("load");
    let borrowed = encode(&ledger).expect("encode");
    assert_eq!(
        encode_view(&ledger.snapshot_view()).expect("encode"),
        borrowed
    );
    assert_eq!(fs::read(snapshot_path(&data)).expect("read"), borrowed);
    let recovered = recover(&data).expect("recover");
    assert_eq!(recovered.ledger.tip(), 0);
    assert!(recovered.newest.is_none());
}
