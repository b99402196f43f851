//! `ListCheckpoints`: the bounded, cursor-paginated scan with watermarks and a final
//! `QueryEnd`, as `sui_rpc::Client::list_checkpoints` / `stream_checkpoints` expect it.
//!
//! Cursors are the checkpoint sequence number as 8 big-endian bytes. Every frame carries a
//! watermark `{cursor, checkpoint}`; item frames name the item's checkpoint. The stream ends with
//! exactly one `QueryEnd`: `ItemLimit` on the last item frame when more items remain, otherwise a
//! terminal frame without item whose reason is `CheckpointBound` (the requested end),
//! `CursorBound` (`options.before`) or `LedgerTip` (the latest checkpoint was reached first).

use sui_rpc::field::FieldMaskTree;
use sui_rpc::proto::sui::rpc::v2 as proto;
use tonic::Status;

use super::convert;
use crate::state::Ledger;

/// Items per response when the request sets no limit, and the most the devnet returns.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1_000;

pub(crate) fn encode_cursor(seq: u64) -> prost::bytes::Bytes {
    prost::bytes::Bytes::copy_from_slice(&seq.to_be_bytes())
}

fn decode_cursor(field: &str, bytes: &[u8]) -> Result<u64, Status> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        Status::invalid_argument(format!("options.{field} is not a checkpoint cursor"))
    })?;
    Ok(u64::from_be_bytes(array))
}

fn watermark(cursor: u64, checkpoint: Option<u64>) -> proto::Watermark {
    let mut w = proto::Watermark::default();
    w.cursor = Some(encode_cursor(cursor));
    w.checkpoint = checkpoint;
    w
}

fn frame(
    checkpoint: Option<proto::Checkpoint>,
    watermark: proto::Watermark,
    end: Option<proto::QueryEndReason>,
) -> proto::ListCheckpointsResponse {
    let mut f = proto::ListCheckpointsResponse::default();
    f.checkpoint = checkpoint;
    f.watermark = Some(watermark);
    f.end = end.map(|reason| {
        let mut e = proto::QueryEnd::default();
        e.set_reason(reason);
        e
    });
    f
}

/// All frames of one `ListCheckpoints` call.
pub(crate) fn list_checkpoints(
    ledger: &Ledger,
    request: &proto::ListCheckpointsRequest,
    mask: &FieldMaskTree,
) -> Result<Vec<proto::ListCheckpointsResponse>, Status> {
    let options = request.options.clone().unwrap_or_default();
    let descending = match options.ordering {
        None => false,
        Some(o) => match proto::Ordering::try_from(o) {
            Ok(proto::Ordering::Ascending) => false,
            Ok(proto::Ordering::Descending) => true,
            _ => return Err(Status::invalid_argument("unknown ordering")),
        },
    };
    let limit = match options.limit {
        None | Some(0) => DEFAULT_LIMIT,
        Some(l) => l.min(MAX_LIMIT),
    };
    let limit = limit as usize;
    let after = options
        .after
        .as_deref()
        .map(|b| decode_cursor("after", b))
        .transpose()?;
    let before = options
        .before
        .as_deref()
        .map(|b| decode_cursor("before", b))
        .transpose()?;
    let tip = ledger.tip();
    let indexed_end = tip + 1;

    // The effective interval [lo, hi) in canonical (ascending) order.
    let mut lo = request.start_checkpoint.unwrap_or(0);
    if let Some(a) = after {
        lo = lo.max(a.saturating_add(1));
    }
    let requested_end = match (request.end_checkpoint, before) {
        (Some(e), Some(b)) => Some(e.min(b)),
        (e, b) => e.or(b),
    };
    let hi = requested_end.unwrap_or(indexed_end).min(indexed_end);

    let item = |seq: u64| -> Result<proto::Checkpoint, Status> {
        let record = ledger
            .checkpoint(seq)
            .ok_or_else(|| Status::internal(format!("checkpoint {seq} missing")))?;
        Ok(convert::checkpoint_masked(ledger, record, mask))
    };

    let mut frames = Vec::new();
    let sequence: Box<dyn Iterator<Item = u64>> = if lo >= hi {
        Box::new(std::iter::empty())
    } else if descending {
        Box::new((lo..hi).rev())
    } else {
        Box::new(lo..hi)
    };
    let total = hi.saturating_sub(lo) as usize;
    for (n, seq) in sequence.enumerate() {
        let last_allowed = n + 1 == limit;
        let more = n + 1 < total;
        let end = (last_allowed && more).then_some(proto::QueryEndReason::ItemLimit);
        frames.push(frame(Some(item(seq)?), watermark(seq, Some(seq)), end));
        if end.is_some() {
            return Ok(frames);
        }
    }

    // The whole interval was delivered: say which bound ended it.
    let terminal = if descending {
        if lo > tip {
            frame(
                None,
                watermark(lo, None),
                Some(proto::QueryEndReason::LedgerTip),
            )
        } else if after
            .is_some_and(|a| a.saturating_add(1) >= request.start_checkpoint.unwrap_or(0))
        {
            frame(
                None,
                watermark(lo, Some(lo)),
                Some(proto::QueryEndReason::CursorBound),
            )
        } else {
            frame(
                None,
                watermark(lo, Some(lo)),
                Some(proto::QueryEndReason::CheckpointBound),
            )
        }
    } else {
        let end_bound = request
            .end_checkpoint
            .filter(|e| *e <= indexed_end && before.is_none_or(|b| *e <= b));
        let cursor_bound = before.filter(|b| *b <= indexed_end);
        let (reason, scanned_to) = if end_bound.is_some() {
            (proto::QueryEndReason::CheckpointBound, hi)
        } else if cursor_bound.is_some() {
            (proto::QueryEndReason::CursorBound, hi)
        } else {
            (proto::QueryEndReason::LedgerTip, lo.max(hi))
        };
        // Everything in the interval up to `scanned_to - 1` has been delivered.
        let covered = scanned_to.checked_sub(1);
        frame(None, watermark(covered.unwrap_or(0), covered), Some(reason))
    };
    frames.push(terminal);
    Ok(frames)
}
