//! Encryption at rest, freshness and request limits, end to end.
//!
//! - Over a real etcd, only envelopes (`k3e…`, 108 bytes of overhead) reach etcd; a value
//!   moved to another key, a plaintext value, or a value sealed under another key ring is
//!   refused with `DataLoss` naming the key, and the shim keeps serving.
//! - Whoever holds the datastore cannot roll it back unnoticed: an older ciphertext put back,
//!   a deleted key resurrected with its last ciphertext, an empty value, a replayed value in a
//!   watch, all fail with `DataLoss` naming key and revision (both backends); a cancelled write
//!   that still commits is no false alarm; an embedded store restored from an older copy is
//!   refused at start unless the operator accepts the rollback.
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
use daas_etcd_shim::backend::Backend;
use daas_etcd_shim::{
    AnchorError, Baseline, EmbeddedBackend, EmbeddedConfig, EtcdShim, ShimOptions,
};
use rand_core::RngCore;
use tonic::{Code, Status};

use support::record::{Session, assert_same, err_repr};
use support::{
    Clients, EtcdProcess, ShimHandle, Trio, start_anchored_embedded_shim, start_embedded_shim,
    start_embedded_shim_with_raw, start_etcd, start_etcd_shim, test_keys,
};

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
    assert_data_loss(result, key, "cannot be decrypted", what);
}

/// `result` must be DataLoss whose message names `key` and contains `says`; never a value.
fn assert_data_loss<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    key: &str,
    says: &str,
    what: &str,
) {
    let status = match result {
        Ok(v) => panic!("{what}: reading {key} must fail with DataLoss, got {v:?}"),
        Err(s) => s,
    };
    assert_eq!(
        status.code(),
        Code::DataLoss,
        "{what}: {}",
        err_repr(&status)
    );
    assert!(
        status.message().contains(key) && status.message().contains(says),
        "{what}: the message must name the key and say {says:?}: {}",
        err_repr(&status)
    );
}

// ------------------------------------------------------------------- over real etcd

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_backend_sees_only_envelopes() {
    let Some((etcd, _shim, via_shim, direct)) = shim_over_etcd().await else {
        return;
    };

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
        plaintext.len() + 108,
        "envelope v3 overhead must be 108 bytes"
    );
    assert_eq!(daas_envelope::OVERHEAD, 108);
    assert_eq!(stored[3], daas_envelope::VERSION);

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

// ------------------------------------------------------------ freshness, over real etcd

/// The stored bytes of `key`, read around the shim.
async fn raw_value(direct: &Clients, key: &str) -> Bytes {
    value_of(direct, key)
        .await
        .expect("direct read")
        .expect("stored in etcd")
}

async fn raw_put(direct: &Clients, key: &str, value: impl Into<Bytes>) {
    direct
        .kv
        .clone()
        .put(put(key, value))
        .await
        .expect("direct put");
}

/// `result` must be DataLoss naming `key` and a revision, and never carry a value.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, key: &str, what: &str) {
    assert_data_loss(result, key, "revision", what);
}

fn prefix_of(p: &str) -> RangeRequest {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().expect("non-empty") += 1;
    RangeRequest {
        key: b(p),
        range_end: Bytes::from(end),
        ..Default::default()
    }
}

/// kube-apiserver's GuaranteedUpdate shape: `Txn[MOD(key)==rev] Put / else Range(key)`.
fn guaranteed_update(key: &str, rev: i64, value: &str) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: b(key),
            range_end: Bytes::new(),
            target_union: Some(TargetUnion::ModRevision(rev)),
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(put(key, value.to_owned()))),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(get(key))),
        }],
    }
}

/// A real etcd, a shim over it with the test keys, and clients of both (`None`: etcd missing,
/// skipped). The first two must stay alive for the test.
async fn shim_over_etcd() -> Option<(EtcdProcess, ShimHandle, Clients, Clients)> {
    let etcd = start_etcd().await?;
    let shim = start_etcd_shim(&etcd.url, test_keys()).await;
    let via_shim = Clients::connect(&shim.url).await;
    let direct = Clients::connect(&etcd.url).await;
    Some((etcd, shim, via_shim, direct))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_ciphertext_is_data_loss() {
    let Some((_etcd, _shim, via_shim, direct)) = shim_over_etcd().await else {
        return;
    };
    let mut kv = via_shim.kv.clone();

    kv.put(put("/fresh/rb", "subject: alice"))
        .await
        .expect("v1");
    let c1 = raw_value(&direct, "/fresh/rb").await;
    kv.put(put("/fresh/rb", "subject: nobody"))
        .await
        .expect("v2");
    kv.put(put("/fresh/other", "x")).await.expect("other");
    // The datastore holder puts the older ciphertext back: it decrypts, but is stale.
    raw_put(&direct, "/fresh/rb", c1).await;
    assert_refused(
        value_of(&via_shim, "/fresh/rb").await,
        "/fresh/rb",
        "a replayed older ciphertext",
    );
    assert_refused(
        kv.range(prefix_of("/fresh/")).await,
        "/fresh/rb",
        "a list containing it",
    );
    // The update path (CAS against a stale revision) reads it in the failure branch.
    assert_refused(
        kv.txn(guaranteed_update("/fresh/rb", 1, "new")).await,
        "/fresh/rb",
        "a failed CAS returning it",
    );
    // keys_only reads carry no value and still work.
    let keys = kv
        .range(RangeRequest {
            keys_only: true,
            ..prefix_of("/fresh/")
        })
        .await
        .expect("keys_only")
        .into_inner();
    assert_eq!(keys.kvs.len(), 2);
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()));
    // Other keys are unaffected; a fresh write over the replayed one heals it.
    assert_eq!(
        value_of(&via_shim, "/fresh/other").await.expect("other"),
        Some(b("x"))
    );
    kv.put(put("/fresh/rb", "subject: nobody"))
        .await
        .expect("overwrite");
    assert_eq!(
        value_of(&via_shim, "/fresh/rb").await.expect("healed"),
        Some(b("subject: nobody"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resurrected_key_is_data_loss() {
    let Some((_etcd, _shim, via_shim, direct)) = shim_over_etcd().await else {
        return;
    };
    let mut kv = via_shim.kv.clone();

    // Deleted through the shim (kube-apiserver's delete Txn), then re-inserted raw.
    kv.put(put("/fresh/crb", "cluster-admin"))
        .await
        .expect("put");
    let last = raw_value(&direct, "/fresh/crb").await;
    let rev = kv
        .range(get("/fresh/crb"))
        .await
        .expect("get")
        .into_inner()
        .kvs[0]
        .mod_revision;
    let deleted = kv
        .txn(TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Mod as i32,
                key: b("/fresh/crb"),
                range_end: Bytes::new(),
                target_union: Some(TargetUnion::ModRevision(rev)),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestDeleteRange(
                    daas_etcd_proto::DeleteRangeRequest {
                        key: b("/fresh/crb"),
                        ..Default::default()
                    },
                )),
            }],
            failure: vec![],
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.succeeded);
    raw_put(&direct, "/fresh/crb", last).await;
    assert_refused(
        value_of(&via_shim, "/fresh/crb").await,
        "/fresh/crb",
        "a key deleted through the shim, resurrected with its last ciphertext",
    );

    // Deleted raw, behind the shim's back, and put back raw after the shim wrote something
    // else: also caught (what is not caught is the deletion itself; see docs/etcd-shim.md).
    kv.put(put("/fresh/sa", "token")).await.expect("put");
    let last = raw_value(&direct, "/fresh/sa").await;
    kv.put(put("/fresh/lease", "renewed")).await.expect("put");
    direct
        .kv
        .clone()
        .delete_range(daas_etcd_proto::DeleteRangeRequest {
            key: b("/fresh/sa"),
            ..Default::default()
        })
        .await
        .expect("raw delete");
    raw_put(&direct, "/fresh/sa", last).await;
    assert_refused(
        value_of(&via_shim, "/fresh/sa").await,
        "/fresh/sa",
        "a key deleted raw, resurrected with its last ciphertext",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_value_over_etcd_is_data_loss() {
    let Some((_etcd, _shim, via_shim, direct)) = shim_over_etcd().await else {
        return;
    };
    let mut kv = via_shim.kv.clone();
    kv.put(put("/empty/ok", "v")).await.expect("put");
    raw_put(&direct, "/empty/forged", Bytes::new()).await;
    assert_refused(
        value_of(&via_shim, "/empty/forged").await,
        "/empty/forged",
        "an empty stored value",
    );
    assert_refused(
        kv.range(prefix_of("/empty/")).await,
        "/empty/forged",
        "a list containing an empty value",
    );
    let count = kv
        .range(RangeRequest {
            count_only: true,
            ..prefix_of("/empty/")
        })
        .await
        .expect("count_only carries no values")
        .into_inner();
    assert_eq!(count.count, 2);
    let keys = kv
        .range(RangeRequest {
            keys_only: true,
            ..prefix_of("/empty/")
        })
        .await
        .expect("keys_only carries no values")
        .into_inner();
    assert_eq!(keys.kvs.len(), 2);
    // A delete's prev_kv carries the value: an empty one is refused too (the delete itself
    // has happened; the answer is what fails closed).
    assert_refused(
        kv.delete_range(daas_etcd_proto::DeleteRangeRequest {
            key: b("/empty/forged"),
            prev_kv: true,
            ..Default::default()
        })
        .await,
        "/empty/forged",
        "an empty prev_kv",
    );
    // A legitimate delete with prev_kv gets the plaintext.
    let deleted = kv
        .delete_range(daas_etcd_proto::DeleteRangeRequest {
            key: b("/empty/ok"),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.prev_kvs[0].value, b("v"));
}

/// Opens a watch on `prefix` (with prev_kv) through `c`; returns the request sender and the
/// response stream.
async fn watch_prefix(
    c: &Clients,
    prefix: &str,
) -> (
    tokio::sync::mpsc::Sender<daas_etcd_proto::WatchRequest>,
    tonic::Streaming<daas_etcd_proto::WatchResponse>,
) {
    use daas_etcd_proto::{WatchCreateRequest, WatchRequest, watch_request::RequestUnion};
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let range = prefix_of(prefix);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: range.key,
            range_end: range.range_end,
            prev_kv: true,
            ..Default::default()
        })),
    })
    .await
    .expect("send create");
    let mut stream = c
        .watch
        .clone()
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    let created = stream.message().await.expect("created").expect("response");
    assert!(created.created);
    (tx, stream)
}

/// Reads watch responses until one has events or an error ends the stream.
async fn next_events(
    stream: &mut tonic::Streaming<daas_etcd_proto::WatchResponse>,
) -> Result<Vec<daas_etcd_proto::mvccpb::Event>, tonic::Status> {
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("a watch response within 10 s")?;
        match next {
            Some(resp) if !resp.events.is_empty() => return Ok(resp.events),
            Some(_) => continue,
            None => panic!("watch stream ended without an error"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_delivering_a_replayed_value_fails() {
    let Some((_etcd, _shim, via_shim, direct)) = shim_over_etcd().await else {
        return;
    };
    let mut kv = via_shim.kv.clone();
    let (_tx, mut stream) = watch_prefix(&via_shim, "/w/").await;

    kv.put(put("/w/psa", "restricted")).await.expect("v1");
    let c1 = raw_value(&direct, "/w/psa").await;
    let events = next_events(&mut stream).await.expect("v1 event");
    assert_eq!(events[0].kv.as_ref().expect("kv").value, b("restricted"));
    kv.put(put("/w/psa", "privileged-not")).await.expect("v2");
    next_events(&mut stream).await.expect("v2 event");
    // A delete event (empty kv, prev_kv with the value) is delivered normally.
    kv.put(put("/w/tmp", "t")).await.expect("tmp");
    next_events(&mut stream).await.expect("tmp event");
    kv.delete_range(daas_etcd_proto::DeleteRangeRequest {
        key: b("/w/tmp"),
        ..Default::default()
    })
    .await
    .expect("delete");
    let events = next_events(&mut stream).await.expect("delete event");
    assert_eq!(events[0].prev_kv.as_ref().expect("prev_kv").value, b("t"));
    assert!(events[0].kv.as_ref().expect("kv").value.is_empty());

    raw_put(&direct, "/w/psa", c1).await;
    assert_refused(
        next_events(&mut stream).await,
        "/w/psa",
        "a watch event carrying a replayed value",
    );
}

// ------------------------------------------------------- freshness, embedded store

/// The raw stored bytes of `key` in the embedded store (around the shim).
async fn raw_embedded(store: &EmbeddedBackend, key: &str) -> Bytes {
    store
        .range(get(key))
        .await
        .expect("raw read")
        .kvs
        .into_iter()
        .next()
        .expect("stored")
        .value
}

async fn raw_embedded_put(store: &EmbeddedBackend, key: &str, value: impl Into<Bytes>) {
    store.put(put(key, value)).await.expect("raw put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_gets_the_same_checks() {
    let (shim, store) = start_embedded_shim_with_raw(test_keys()).await;
    let via_shim = Clients::connect(&shim.url).await;
    let mut kv = via_shim.kv.clone();
    let (_tx, mut stream) = watch_prefix(&via_shim, "/e/").await;

    kv.put(put("/e/secret", "v1")).await.expect("v1");
    let c1 = raw_embedded(&store, "/e/secret").await;
    kv.put(put("/e/secret", "v2")).await.expect("v2");
    next_events(&mut stream).await.expect("v1 event");
    next_events(&mut stream).await.expect("v2 event");
    // A delete event: empty kv, prev_kv opened.
    kv.delete_range(daas_etcd_proto::DeleteRangeRequest {
        key: b("/e/secret"),
        prev_kv: true,
        ..Default::default()
    })
    .await
    .expect("delete");
    let events = next_events(&mut stream).await.expect("delete event");
    assert_eq!(events[0].prev_kv.as_ref().expect("prev_kv").value, b("v2"));
    assert!(events[0].kv.as_ref().expect("kv").value.is_empty());

    // Resurrected with an older ciphertext.
    raw_embedded_put(&store, "/e/secret", c1).await;
    assert_refused(
        value_of(&via_shim, "/e/secret").await,
        "/e/secret",
        "embedded: an older ciphertext put back",
    );
    assert_refused(
        next_events(&mut stream).await,
        "/e/secret",
        "embedded: the watch event carrying it",
    );
    // An empty value.
    raw_embedded_put(&store, "/e/empty", Bytes::new()).await;
    assert_refused(
        value_of(&via_shim, "/e/empty").await,
        "/e/empty",
        "embedded: an empty value",
    );
    // keys_only / count_only, top level and inside a Txn, carry no value and still work.
    let keys = kv
        .range(RangeRequest {
            keys_only: true,
            ..prefix_of("/e/")
        })
        .await
        .expect("keys_only")
        .into_inner();
    assert_eq!(keys.kvs.len(), 2);
    let txn = kv
        .txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp {
                    request: Some(Request::RequestRange(RangeRequest {
                        keys_only: true,
                        ..prefix_of("/e/")
                    })),
                },
                RequestOp {
                    request: Some(Request::RequestRange(RangeRequest {
                        count_only: true,
                        ..prefix_of("/e/")
                    })),
                },
            ],
            failure: vec![],
        })
        .await
        .expect("keys_only and count_only inside a Txn")
        .into_inner();
    assert_eq!(txn.responses.len(), 2);
    // The same Range with values inside a Txn is refused.
    assert_refused(
        kv.txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestRange(prefix_of("/e/"))),
            }],
            failure: vec![],
        })
        .await,
        "/e/",
        "embedded: a Txn range returning them",
    );
}

/// A backend that holds puts of one key until released, to cancel a write mid-flight. Like a
/// real etcd that already received the request, it applies the put once released even if the
/// caller has gone away.
struct Gated {
    inner: EmbeddedBackend,
    key: Bytes,
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Backend for Gated {
    async fn range(&self, req: RangeRequest) -> Result<daas_etcd_proto::RangeResponse, Status> {
        self.inner.range(req).await
    }
    async fn put(&self, req: PutRequest) -> Result<daas_etcd_proto::PutResponse, Status> {
        if req.key != self.key {
            return self.inner.put(req).await;
        }
        self.arrived.notify_one();
        let (inner, release) = (self.inner.clone(), self.release.clone());
        let on_the_wire = tokio::spawn(async move {
            release.notified().await;
            inner.put(req).await
        });
        on_the_wire
            .await
            .map_err(|e| Status::internal(e.to_string()))?
    }
    async fn delete_range(
        &self,
        req: daas_etcd_proto::DeleteRangeRequest,
    ) -> Result<daas_etcd_proto::DeleteRangeResponse, Status> {
        self.inner.delete_range(req).await
    }
    async fn txn(&self, req: TxnRequest) -> Result<daas_etcd_proto::TxnResponse, Status> {
        self.inner.txn(req).await
    }
    async fn compact(
        &self,
        req: daas_etcd_proto::CompactionRequest,
    ) -> Result<daas_etcd_proto::CompactionResponse, Status> {
        self.inner.compact(req).await
    }
    async fn watch(
        &self,
        requests: daas_etcd_shim::backend::Requests<daas_etcd_proto::WatchRequest>,
    ) -> Result<daas_etcd_shim::backend::Responses<daas_etcd_proto::WatchResponse>, Status> {
        self.inner.watch(requests).await
    }
    async fn lease_grant(
        &self,
        req: daas_etcd_proto::LeaseGrantRequest,
    ) -> Result<daas_etcd_proto::LeaseGrantResponse, Status> {
        self.inner.lease_grant(req).await
    }
    async fn lease_revoke(
        &self,
        req: daas_etcd_proto::LeaseRevokeRequest,
    ) -> Result<daas_etcd_proto::LeaseRevokeResponse, Status> {
        self.inner.lease_revoke(req).await
    }
    async fn lease_keep_alive(
        &self,
        requests: daas_etcd_shim::backend::Requests<daas_etcd_proto::LeaseKeepAliveRequest>,
    ) -> Result<daas_etcd_shim::backend::Responses<daas_etcd_proto::LeaseKeepAliveResponse>, Status>
    {
        self.inner.lease_keep_alive(requests).await
    }
    async fn lease_time_to_live(
        &self,
        req: daas_etcd_proto::LeaseTimeToLiveRequest,
    ) -> Result<daas_etcd_proto::LeaseTimeToLiveResponse, Status> {
        self.inner.lease_time_to_live(req).await
    }
    async fn lease_leases(
        &self,
        req: daas_etcd_proto::LeaseLeasesRequest,
    ) -> Result<daas_etcd_proto::LeaseLeasesResponse, Status> {
        self.inner.lease_leases(req).await
    }
    async fn status(
        &self,
        req: daas_etcd_proto::StatusRequest,
    ) -> Result<daas_etcd_proto::StatusResponse, Status> {
        self.inner.status(req).await
    }
    async fn alarm(
        &self,
        req: daas_etcd_proto::AlarmRequest,
    ) -> Result<daas_etcd_proto::AlarmResponse, Status> {
        self.inner.alarm(req).await
    }
}

/// A client that gives up on a put while the backend is still working on it must not make
/// the shim forget that write: it commits later, after other writes were recorded, and must
/// then read back as valid (no false DataLoss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_in_flight_is_no_false_alarm() {
    use daas_etcd_proto::kv_server::Kv;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedBackend::open(&EmbeddedConfig::new(dir.path())).expect("open");
    let arrived = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let shim = EtcdShim::new(
        Gated {
            inner: store.clone(),
            key: b("/slow"),
            arrived: arrived.clone(),
            release: release.clone(),
        },
        test_keys(),
        ShimOptions::default(),
    );
    {
        let slow = shim.put(tonic::Request::new(put("/slow", "late but legitimate")));
        tokio::select! {
            _ = slow => panic!("the gated put cannot finish before it is released"),
            () = arrived.notified() => {}
        }
        // `slow` is dropped here: the client cancelled while the backend holds the write.
    }
    for key in ["/a", "/b", "/c"] {
        shim.put(tonic::Request::new(put(key, "v")))
            .await
            .expect("later writes");
    }
    release.notify_one();
    // The cancelled write still commits, at a revision above the later writes' records.
    let committed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let r = store.range(get("/slow")).await.expect("raw read");
            if let Some(kv) = r.kvs.first() {
                return kv.mod_revision;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the cancelled write commits");
    assert!(committed > 4, "committed at {committed}, after /a /b /c");
    // Give the write task time to finish its ticket, then write once more.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    shim.put(tonic::Request::new(put("/d", "v")))
        .await
        .expect("a write after it");
    // The cancelled write was finished with its answer (not left pinned for the grace
    // period): the floor has moved past it to the last write's own number (5).
    assert_eq!(shim.freshness().floor_at(i64::MAX), 5);
    let got = shim
        .range(tonic::Request::new(get("/slow")))
        .await
        .expect("the cancelled write reads back: no false DataLoss")
        .into_inner();
    assert_eq!(got.kvs[0].value, b("late but legitimate"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// The whole embedded store put back to an older copy while the shim was down: refused at
/// start (the anchor lives outside the store), accepted with the deliberate override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_embedded_store_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let anchor = tmp.path().join("keys.anchor");
    let keys = test_keys();
    let start = |baseline| start_anchored_embedded_shim(&store, &anchor, keys.clone(), baseline);

    let shim = start(Baseline::Verify).await.expect("first start");
    let c = Clients::connect(&shim.url).await;
    c.kv.clone()
        .put(put("/r/binding", "alice: admin"))
        .await
        .expect("put");
    shim.stop().await;
    copy_dir(&store, &tmp.path().join("copy"));

    let shim = start(Baseline::Verify).await.expect("restart");
    let c = Clients::connect(&shim.url).await;
    for (k, v) in [("/r/binding", "alice: revoked"), ("/r/other", "x")] {
        c.kv.clone().put(put(k, v)).await.expect("put");
    }
    shim.stop().await;

    // The datastore holder swaps the store for the older copy.
    std::fs::remove_dir_all(&store).expect("rm");
    copy_dir(&tmp.path().join("copy"), &store);
    let err = match start(Baseline::Verify).await {
        Ok(_) => panic!("a rolled-back store must be refused at start"),
        Err(e) => e,
    };
    assert!(matches!(err, AnchorError::RolledBack { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("rolled back") && text.contains("--accept-rolled-back-datastore"),
        "{text}"
    );

    // Disaster recovery on purpose: the override takes the restored state as the baseline.
    let shim = start(Baseline::AcceptRollback)
        .await
        .expect("accepted with the override");
    let c = Clients::connect(&shim.url).await;
    assert_eq!(
        value_of(&c, "/r/binding").await.expect("restored value"),
        Some(b("alice: admin"))
    );
    assert_eq!(value_of(&c, "/r/other").await.expect("get"), None);
    c.kv.clone().put(put("/r/after", "y")).await.expect("put");
    shim.stop().await;
    // ... and from then on it is the anchor the next start is checked against.
    let shim = start(Baseline::Verify)
        .await
        .expect("start after re-baseline");
    shim.stop().await;
}
