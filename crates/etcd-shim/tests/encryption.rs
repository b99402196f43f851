//! Encryption at rest and request limits, end to end.
//!
//! - Over a real etcd, only envelopes (`k3e…`, 48 bytes of overhead) reach etcd; a value
//!   moved to another key, a plaintext value, or a value sealed under another key ring is
//!   refused with `DataLoss` naming the key, and the shim keeps serving.
//! - The embedded store's files never contain a value's plaintext (checked against a
//!   null-cipher control, which proves the scan finds plaintext when it is there).
//! - Request limits and unsupported compares answer like etcd.
//!
//! Needs an etcd binary (`ETCD_BIN`, default `etcd` on `PATH`) for the etcd cases; without
//! one they print `SKIP` and pass, unless `DAAS_REQUIRE_PEERS=1`.

mod support;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use daas_etcd_proto::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
};
use daas_etcd_shim::Keys;
use rand_core::RngCore;
use tonic::Code;

use support::record::{Session, assert_same, err_repr};
use support::{Clients, Trio, start_embedded_shim, start_etcd, start_etcd_shim, test_keys};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(key: &str, value: impl Into<Bytes>) -> PutRequest {
    PutRequest {
        key: b(key),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        ..Default::default()
    }
}

fn marker() -> String {
    let mut raw = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut raw);
    format!("MARKER-{}", hex::encode(raw))
}

async fn value_of(c: &Clients, key: &str) -> Result<Option<Bytes>, tonic::Status> {
    let resp = c.kv.clone().range(get(key)).await?.into_inner();
    Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
}

fn assert_undecryptable(result: Result<Option<Bytes>, tonic::Status>, key: &str, what: &str) {
    let status = match result {
        Ok(v) => panic!("{what}: reading {key} must fail with DataLoss, got value {v:?}"),
        Err(s) => s,
    };
    assert_eq!(
        status.code(),
        Code::DataLoss,
        "{what}: {}",
        err_repr(&status)
    );
    assert!(
        status.message().contains(key) && status.message().contains("cannot be decrypted"),
        "{what}: the message must name the key and say it cannot be decrypted: {}",
        err_repr(&status)
    );
}

// ------------------------------------------------------------------- over real etcd

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_backend_sees_only_envelopes() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let shim = start_etcd_shim(&etcd.url, test_keys()).await;
    let via_shim = Clients::connect(&shim.url).await;
    let direct = Clients::connect(&etcd.url).await;

    let plaintext = marker();
    via_shim
        .kv
        .clone()
        .put(put("/enc/secret", plaintext.clone()))
        .await
        .expect("put through the shim");

    // What etcd holds: an envelope, never the plaintext.
    let stored = value_of(&direct, "/enc/secret")
        .await
        .expect("direct read")
        .expect("key stored in etcd");
    assert!(
        !stored
            .windows(plaintext.len())
            .any(|w| w == plaintext.as_bytes()),
        "etcd holds the plaintext marker: {stored:?}"
    );
    assert!(
        stored.starts_with(&daas_envelope::MAGIC),
        "etcd value does not start with the envelope magic k3e: {stored:?}"
    );
    assert_eq!(
        stored.len(),
        plaintext.len() + 48,
        "envelope overhead must be 48 bytes"
    );
    assert_eq!(daas_envelope::OVERHEAD, 48);

    // Clients of the shim see exactly what they wrote, in every response that carries values.
    assert_eq!(
        value_of(&via_shim, "/enc/secret").await.expect("get"),
        Some(Bytes::from(plaintext.clone()))
    );
    let prev = via_shim
        .kv
        .clone()
        .put(PutRequest {
            prev_kv: true,
            ..put("/enc/secret", plaintext.clone())
        })
        .await
        .expect("put with prev_kv")
        .into_inner();
    assert_eq!(
        prev.prev_kv.map(|kv| kv.value),
        Some(Bytes::from(plaintext.clone()))
    );

    // The same ciphertext under another key: the key is bound into the envelope.
    direct
        .kv
        .clone()
        .put(put("/enc/copy", stored.clone()))
        .await
        .expect("direct put of the copied ciphertext");
    assert_undecryptable(
        value_of(&via_shim, "/enc/copy").await,
        "/enc/copy",
        "ciphertext moved to another key",
    );
    // A plaintext value written behind the shim's back.
    direct
        .kv
        .clone()
        .put(put("/enc/raw", "written directly"))
        .await
        .expect("direct put of a plaintext");
    assert_undecryptable(
        value_of(&via_shim, "/enc/raw").await,
        "/enc/raw",
        "plaintext written directly to etcd",
    );
    // A prefix read containing an undecryptable value fails as a whole (fail closed).
    let listing = via_shim
        .kv
        .clone()
        .range(RangeRequest {
            key: b("/enc/"),
            range_end: b("/enc0"),
            ..Default::default()
        })
        .await;
    assert_eq!(
        listing.as_ref().map_err(|s| s.code()).err(),
        Some(Code::DataLoss),
        "a list containing an undecryptable value must fail: {listing:?}"
    );

    // The shim keeps serving.
    assert_eq!(
        value_of(&via_shim, "/enc/secret")
            .await
            .expect("get after DataLoss"),
        Some(Bytes::from(plaintext.clone()))
    );

    // A second shim over the same etcd with a different key ring cannot read the value.
    let other = start_etcd_shim(&etcd.url, test_keys()).await;
    let via_other = Clients::connect(&other.url).await;
    assert_undecryptable(
        value_of(&via_other, "/enc/secret").await,
        "/enc/secret",
        "value sealed under another key ring",
    );
    via_other
        .kv
        .clone()
        .put(put("/enc/other", "mine"))
        .await
        .expect("the second shim keeps serving writes");
    assert_eq!(
        value_of(&via_other, "/enc/other").await.expect("get"),
        Some(b("mine"))
    );
    assert_eq!(
        value_of(&via_other, "/enc/missing")
            .await
            .expect("get missing"),
        None
    );
    // And the first shim cannot read the second one's value either.
    assert_undecryptable(
        value_of(&via_shim, "/enc/other").await,
        "/enc/other",
        "value sealed by the other shim",
    );
}

// -------------------------------------------------------------------- embedded store

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_files_hold_no_plaintext() {
    let sealed = start_embedded_shim(test_keys()).await;
    let control = start_embedded_shim(Arc::new(Keys::null_for_benchmarks())).await;
    let (c_sealed, c_control) = tokio::join!(
        Clients::connect(&sealed.url),
        Clients::connect(&control.url)
    );
    let secret = marker();
    let plain = marker();
    // Several writes, a txn and an overwrite with prev_kv: every stored version must be sealed.
    for (c, value) in [(&c_sealed, &secret), (&c_control, &plain)] {
        let mut kv = c.kv.clone();
        kv.put(put("/enc/secret", value.clone()))
            .await
            .expect("put");
        kv.txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(put("/enc/txn", value.clone()))),
            }],
            failure: vec![],
        })
        .await
        .expect("txn put");
        kv.put(PutRequest {
            prev_kv: true,
            ..put("/enc/secret", format!("{value}-v2"))
        })
        .await
        .expect("overwrite");
        assert_eq!(
            value_of(c, "/enc/secret").await.expect("get"),
            Some(Bytes::from(format!("{value}-v2")))
        );
    }
    let sealed_dir = sealed.dir.as_ref().expect("embedded dir").path();
    let control_dir = control.dir.as_ref().expect("embedded dir").path();
    assert!(
        sealed_dir.join("state.redb").is_file(),
        "expected state.redb in {}",
        sealed_dir.display()
    );
    assert!(file_count(sealed_dir) > 0);
    // The scan finds plaintext when it is there (null cipher) ...
    let found = files_containing(control_dir, plain.as_bytes());
    assert!(
        !found.is_empty(),
        "control: the null-cipher store's plaintext was not found: the scan is blind"
    );
    // ... and keys are stored in clear in both (they are not secret).
    assert!(!files_containing(sealed_dir, b"/enc/secret").is_empty());
    // ... but not in the encrypted store.
    let leaked = files_containing(sealed_dir, secret.as_bytes());
    assert!(leaked.is_empty(), "plaintext marker found in {leaked:?}");
}

// ------------------------------------------------------------------ request limits

fn value_compare() -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Value as i32,
        key: b("/lim/1"),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::Value(b("v"))),
    }
}

async fn script_limits(s: &mut Session) {
    let _ = s.put("put /lim/1", put("/lim/1", "v")).await;
    let _ = s.put("put /lim/2", put("/lim/2", "w")).await;
    let _ = s
        .range(
            "range with negative limit",
            RangeRequest {
                key: b("/lim/"),
                range_end: b("/lim0"),
                limit: -5,
                ..Default::default()
            },
        )
        .await;
    let _ = s
        .range(
            "range with range_end < key",
            RangeRequest {
                key: b("/lim/2"),
                range_end: b("/lim/1"),
                ..Default::default()
            },
        )
        .await;
    let _ = s
        .range(
            "count_only with range_end < key",
            RangeRequest {
                key: b("/lim/2"),
                range_end: b("/lim/1"),
                count_only: true,
                ..Default::default()
            },
        )
        .await;
    let too_big = Bytes::from(vec![b'x'; 1536 * 1024 + 1]);
    let _ = s
        .put("put a value over 1.5 MiB", put("/lim/big", too_big.clone()))
        .await;
    let _ = s
        .txn(
            "txn putting a value over 1.5 MiB",
            TxnRequest {
                compare: vec![],
                success: vec![RequestOp {
                    request: Some(Request::RequestPut(put("/lim/big", too_big))),
                }],
                failure: vec![],
            },
        )
        .await;
    let _ = s
        .range(
            "nothing written (and the revision did not move)",
            RangeRequest {
                key: b("/lim/"),
                range_end: b("/lim0"),
                ..Default::default()
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_and_value_compares() {
    let Some(trio) = Trio::start().await else {
        return;
    };
    let mut a = Session::new("A (etcd)", trio.a.clone());
    let mut sb = Session::new("B (shim over etcd)", trio.b.clone());
    let mut c = Session::new("C (shim embedded)", trio.c.clone());
    tokio::join!(
        script_limits(&mut a),
        script_limits(&mut sb),
        script_limits(&mut c)
    );
    assert_same("request_limits_and_value_compares", &a, &[&sb, &c]);
    let too_large = "ERROR code=InvalidArgument message=\"etcdserver: request is too large\"";
    let big_put = a
        .rec
        .steps
        .iter()
        .find(|(l, _)| l == "put a value over 1.5 MiB")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // Steps hold the Debug text of the recorded error string.
    assert_eq!(big_put, format!("{too_large:?}"), "A answered {big_put}");

    // Compares on VALUE cannot be evaluated over randomised ciphertext: both shims refuse.
    for (name, clients) in [("B", &trio.b), ("C", &trio.c)] {
        let err = clients
            .kv
            .clone()
            .txn(TxnRequest {
                compare: vec![value_compare()],
                success: vec![RequestOp {
                    request: Some(Request::RequestPut(put("/lim/1", "changed"))),
                }],
                failure: vec![],
            })
            .await
            .expect_err("a VALUE compare must be refused");
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{name}: {}",
            err_repr(&err)
        );
        assert_eq!(
            value_of(clients, "/lim/1").await.expect("get"),
            Some(b("v")),
            "{name}: the refused txn wrote nothing"
        );
    }
}
