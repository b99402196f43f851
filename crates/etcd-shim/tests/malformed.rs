//! Malformed and hostile requests against the embedded store's request handling (the same
//! harness the fuzz target drives): clear refusals, nothing applied, no panic.

use bytes::Bytes;
use daas_etcd_proto::{
    CompactionRequest, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
};
use daas_etcd_shim::backend::embedded::fuzzing::Harness;
use prost::Message;

fn step(h: &mut Harness, kind: u8, msg: &impl Message) -> bool {
    let mut data = vec![kind];
    data.extend(msg.encode_to_vec());
    h.step(&data)
}

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from_static(b"v"),
        ..PutRequest::default()
    }
}

#[test]
fn hostile_ranges_are_answered_or_refused_without_effect() {
    let mut h = Harness::new();
    assert!(step(&mut h, 1, &put("/a")));
    assert!(step(&mut h, 1, &put("/b")));
    let rev = h.revision();
    for range in [
        RangeRequest {
            key: Bytes::from_static(b"/z"),
            range_end: Bytes::from_static(b"/a"),
            ..Default::default()
        }, // inverted
        RangeRequest {
            key: Bytes::from_static(b"/"),
            range_end: Bytes::from_static(b"\0"),
            limit: -5,
            ..Default::default()
        }, // negative limit
        RangeRequest {
            key: Bytes::from_static(b"/"),
            range_end: Bytes::from_static(b"\0"),
            limit: i64::MAX,
            revision: -7,
            ..Default::default()
        },
    ] {
        assert!(step(&mut h, 0, &range), "{range:?}");
    }
    // Empty keys, future revisions and bad sort options are refused.
    assert!(!step(&mut h, 0, &RangeRequest::default()));
    assert!(!step(
        &mut h,
        0,
        &RangeRequest {
            key: Bytes::from_static(b"/a"),
            revision: i64::MAX,
            ..Default::default()
        }
    ));
    assert!(!step(
        &mut h,
        0,
        &RangeRequest {
            key: Bytes::from_static(b"/a"),
            sort_order: 99,
            ..Default::default()
        }
    ));
    assert_eq!(h.revision(), rev, "reads must not write");
}

#[test]
fn failed_writes_leave_no_trace() {
    let mut h = Harness::new();
    assert!(step(&mut h, 1, &put("/a")));
    let rev = h.revision();
    // A txn whose second put names an unknown lease: the first put must not survive.
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp {
                request: Some(Request::RequestPut(put("/x"))),
            },
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    lease: 42,
                    ..put("/y")
                })),
            },
        ],
        failure: vec![],
    };
    assert!(!step(&mut h, 3, &txn));
    assert_eq!(h.revision(), rev);
    assert_eq!(h.get(b"/x"), None, "first op of a failed txn survived");
    assert_eq!(h.get(b"/a").as_deref(), Some(&b"v"[..]));
    // Duplicate keys, oversize op counts, empty compare keys, empty put keys: refused.
    let dup = TxnRequest {
        success: vec![
            RequestOp {
                request: Some(Request::RequestPut(put("/d"))),
            },
            RequestOp {
                request: Some(Request::RequestPut(put("/d"))),
            },
        ],
        ..Default::default()
    };
    assert!(!step(&mut h, 3, &dup));
    let many = TxnRequest {
        success: (0..129)
            .map(|i| RequestOp {
                request: Some(Request::RequestPut(put(&format!("/m{i}")))),
            })
            .collect(),
        ..Default::default()
    };
    assert!(!step(&mut h, 3, &many));
    let empty_cmp = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: Bytes::new(),
            range_end: Bytes::new(),
            target_union: Some(TargetUnion::ModRevision(0)),
        }],
        ..Default::default()
    };
    assert!(!step(&mut h, 3, &empty_cmp));
    assert!(!step(&mut h, 1, &put("")));
    // Compaction beyond the head, or twice at the same revision.
    assert!(!step(
        &mut h,
        4,
        &CompactionRequest {
            revision: i64::MAX,
            physical: false
        }
    ));
    assert!(step(
        &mut h,
        4,
        &CompactionRequest {
            revision: rev,
            physical: true
        }
    ));
    assert!(!step(
        &mut h,
        4,
        &CompactionRequest {
            revision: rev,
            physical: true
        }
    ));
    assert_eq!(h.revision(), rev);
}

#[test]
fn garbage_bytes_never_panic() {
    // A deterministic pseudo-random sweep (the fuzz target explores further).
    let mut h = Harness::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect();
        h.step(&bytes);
    }
}
