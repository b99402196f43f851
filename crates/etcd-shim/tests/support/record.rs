//! Recording responses of one target and diffing recordings between targets.
//!
//! Every response is normalised (only `cluster_id`, `member_id` and `raft_term` of every
//! header, nested ones included, are zeroed; lists with unspecified order are sorted) and
//! stored as its pretty `Debug` text, so a comparison is field by field and a mismatch can be
//! printed as a line diff.

use std::fmt::Debug;
use std::time::Duration;

use daas_etcd_proto::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, ResponseHeader, TxnRequest, TxnResponse, WatchResponse, response_op::Response,
};
use tonic::Status;

use super::Clients;

// --------------------------------------------------------------------- normalising

pub fn norm_header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// Zeroes what legitimately differs between servers.
pub trait Norm {
    fn norm(&mut self);
}

macro_rules! header_only {
    ($($t:ty),*) => {$(
        impl Norm for $t {
            fn norm(&mut self) {
                norm_header(&mut self.header);
            }
        }
    )*};
}

header_only!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    CompactionResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    LeaseKeepAliveResponse,
    WatchResponse
);

impl Norm for TxnResponse {
    fn norm(&mut self) {
        norm_header(&mut self.header);
        for op in &mut self.responses {
            match &mut op.response {
                Some(Response::ResponseRange(r)) => r.norm(),
                Some(Response::ResponsePut(r)) => r.norm(),
                Some(Response::ResponseDeleteRange(r)) => r.norm(),
                Some(Response::ResponseTxn(r)) => r.norm(),
                None => {}
            }
        }
    }
}

impl Norm for LeaseTimeToLiveResponse {
    fn norm(&mut self) {
        norm_header(&mut self.header);
        // etcd lists a lease's keys in Go map order.
        self.keys.sort();
    }
}

impl Norm for LeaseLeasesResponse {
    fn norm(&mut self) {
        norm_header(&mut self.header);
        self.leases.sort_by_key(|l| l.id);
    }
}

// ------------------------------------------------------------------------ recording

pub fn err_repr(s: &Status) -> String {
    format!("ERROR code={:?} message={:?}", s.code(), s.message())
}

/// The recorded steps of one target.
#[derive(Debug, Default)]
pub struct Rec {
    pub steps: Vec<(String, String)>,
}

impl Rec {
    pub fn note(&mut self, label: impl Into<String>, value: impl Debug) {
        self.steps.push((label.into(), format!("{value:#?}")));
    }

    pub fn result<T: Norm + Debug>(
        &mut self,
        label: &str,
        r: Result<tonic::Response<T>, Status>,
    ) -> Result<T, Status> {
        match r {
            Ok(resp) => {
                let mut v = resp.into_inner();
                v.norm();
                self.note(label, &v);
                Ok(v)
            }
            Err(s) => {
                self.note(label, err_repr(&s));
                Err(s)
            }
        }
    }
}

/// A target's clients plus its recording: scripts call these and everything is recorded.
pub struct Session {
    pub name: &'static str,
    pub c: Clients,
    pub rec: Rec,
}

impl Session {
    pub fn new(name: &'static str, c: Clients) -> Self {
        Self {
            name,
            c,
            rec: Rec::default(),
        }
    }

    pub fn note(&mut self, label: impl Into<String>, value: impl Debug) {
        self.rec.note(label, value);
    }

    pub async fn put(&mut self, label: &str, req: PutRequest) -> Result<PutResponse, Status> {
        let r = self.c.kv.put(req).await;
        self.rec.result(label, r)
    }

    pub async fn range(&mut self, label: &str, req: RangeRequest) -> Result<RangeResponse, Status> {
        let r = self.c.kv.range(req).await;
        self.rec.result(label, r)
    }

    pub async fn delete(
        &mut self,
        label: &str,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        let r = self.c.kv.delete_range(req).await;
        self.rec.result(label, r)
    }

    pub async fn txn(&mut self, label: &str, req: TxnRequest) -> Result<TxnResponse, Status> {
        let r = self.c.kv.txn(req).await;
        self.rec.result(label, r)
    }

    pub async fn compact(
        &mut self,
        label: &str,
        revision: i64,
    ) -> Result<CompactionResponse, Status> {
        // physical: return only once the compaction is done (etcd compacts in the background).
        let r = self
            .c
            .kv
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await;
        self.rec.result(label, r)
    }

    pub async fn grant(
        &mut self,
        label: &str,
        id: i64,
        ttl: i64,
    ) -> Result<LeaseGrantResponse, Status> {
        let r = self
            .c
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id })
            .await;
        self.rec.result(label, r)
    }

    pub async fn revoke(&mut self, label: &str, id: i64) -> Result<LeaseRevokeResponse, Status> {
        let r = self.c.lease.lease_revoke(LeaseRevokeRequest { id }).await;
        self.rec.result(label, r)
    }

    pub async fn leases(&mut self, label: &str) -> Result<LeaseLeasesResponse, Status> {
        let r = self.c.lease.lease_leases(LeaseLeasesRequest {}).await;
        self.rec.result(label, r)
    }

    /// TimeToLive; the remaining TTL ticks, so it is recorded as "within `granted - 2
    /// ..= granted`" (or its exact value when ≤ 0, i.e. an unknown lease).
    pub async fn time_to_live(
        &mut self,
        label: &str,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let r = self
            .c
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
            .await;
        match r {
            Ok(resp) => {
                let mut v = resp.into_inner();
                v.norm();
                let ttl = v.ttl;
                let mut shown = v.clone();
                if ttl > 0 {
                    shown.ttl = 0;
                    let ok = ttl >= v.granted_ttl - 2 && ttl <= v.granted_ttl;
                    self.rec.note(
                        label,
                        (
                            shown,
                            format!("remaining ttl within granted-2..=granted: {ok}"),
                        ),
                    );
                } else {
                    self.rec.note(label, shown);
                }
                Ok(v)
            }
            Err(s) => {
                self.rec.note(label, err_repr(&s));
                Err(s)
            }
        }
    }

    /// One request on a fresh keep-alive stream; records the first answer (or the error).
    pub async fn keep_alive(&mut self, label: &str, id: i64) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(LeaseKeepAliveRequest { id }).await.expect("send");
        let outcome = async {
            let mut stream = self
                .c
                .lease
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            stream.message().await
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), outcome)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "test: no keep-alive answer in 5 s",
                ))
            });
        drop(tx);
        match outcome {
            Ok(Some(mut r)) => {
                r.norm();
                self.rec.note(label, r);
            }
            Ok(None) => self.rec.note(label, "stream ended without an answer"),
            Err(s) => self.rec.note(label, err_repr(&s)),
        }
    }
}

// --------------------------------------------------------------------------- diffing

/// A line diff (LCS) of two texts, with six lines of context around each change.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    let changed: Vec<bool> = ops.iter().map(|(c, _)| *c != ' ').collect();
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        let near = (k.saturating_sub(6)..=(k + 6).min(ops.len() - 1)).any(|x| changed[x]);
        if near {
            out.push_str(&format!("    {c} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("      ...\n");
            skipped = true;
        }
    }
    out
}

/// Compares `other` with the reference recording; returns one report per differing step.
pub fn compare(reference: &Session, other: &Session) -> Vec<String> {
    let mut out = Vec::new();
    let (r, o) = (&reference.rec.steps, &other.rec.steps);
    for k in 0..r.len().max(o.len()) {
        match (r.get(k), o.get(k)) {
            (Some((lr, vr)), Some((lo, vo))) => {
                if lr != lo {
                    out.push(format!(
                        "step {k}: {} ran {lr:?} but {} ran {lo:?} (scripts diverged)",
                        reference.name, other.name
                    ));
                    break;
                }
                if vr != vo {
                    out.push(format!(
                        "step {k} {lr:?}: {} differs from {}\n  --- {} ---\n{}\n  --- {} ---\n{}\n  --- diff (- {}, + {}) ---\n{}",
                        other.name,
                        reference.name,
                        reference.name,
                        indent(vr),
                        other.name,
                        indent(vo),
                        reference.name,
                        other.name,
                        line_diff(vr, vo)
                    ));
                }
            }
            (Some((lr, _)), None) => {
                out.push(format!("step {k} {lr:?}: missing on {}", other.name));
            }
            (None, Some((lo, _))) => {
                out.push(format!("step {k} {lo:?}: extra on {}", other.name));
            }
            (None, None) => {}
        }
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Panics with every difference of B and C from A.
pub fn assert_same(test: &str, a: &Session, others: &[&Session]) {
    let mut reports = Vec::new();
    for other in others {
        reports.extend(compare(a, other));
    }
    if !reports.is_empty() {
        panic!(
            "{test}: {} difference(s) from real etcd ({} steps recorded):\n\n{}",
            reports.len(),
            a.rec.steps.len(),
            reports.join("\n\n")
        );
    }
}
