//! etcd's request checks (`etcdserver/api/v3rpc/key.go`), done before anything is evaluated:
//! every op of both Txn branches, in etcd's order, with etcd's errors.
//!
//! The server runs them for every backend (a forwarded request with a bad sort option crashes
//! etcd 3.4); the embedded store runs them again for its own callers.

use daas_etcd_proto::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    range_request::{SortOrder, SortTarget},
    request_op::Request,
};
use tonic::Status;

use crate::errors;

/// etcd's `--max-txn-ops` default.
pub const MAX_TXN_OPS: usize = 128;

pub fn range(r: &RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(errors::invalid_sort_option());
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(errors::value_provided());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(errors::lease_provided());
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(())
}

/// `checkTxnRequest`: the largest of compares/success/failure counts against the limit, and a
/// nested txn gets what is left of it.
pub fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(errors::too_many_ops());
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(errors::empty_key());
    }
    for op in r.success.iter().chain(&r.failure) {
        request_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn request_op(op: &RequestOp, max_ops: usize) -> Result<(), Status> {
    match &op.request {
        Some(Request::RequestRange(r)) => range(r),
        Some(Request::RequestPut(r)) => put(r),
        Some(Request::RequestDeleteRange(r)) => delete_range(r),
        Some(Request::RequestTxn(r)) => txn(r, max_ops),
        // etcd's answer to an op without a request.
        None => Err(errors::key_not_found()),
    }
}

/// Keys the shim keeps for itself: no client may store a value under them, so nothing the
/// shim seals for a client can be passed off as its own records (the freshness anchor is
/// sealed under such a label).
pub const RESERVED_PREFIX: &[u8] = b"\0k3s-daas/";

/// Refuses client writes of values under [`RESERVED_PREFIX`], and `ignore_value` puts inside
/// a Txn, anywhere in the request tree.
pub fn writes(txn: &TxnRequest) -> Result<(), Status> {
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(Request::RequestPut(p)) => {
                not_reserved(&p.key)?;
                if p.ignore_value {
                    return Err(errors::ignore_value_in_txn());
                }
            }
            Some(Request::RequestTxn(t)) => writes(t)?,
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a key under [`RESERVED_PREFIX`].
pub fn not_reserved(key: &[u8]) -> Result<(), Status> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(errors::reserved_key());
    }
    Ok(())
}
