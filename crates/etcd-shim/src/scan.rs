//! Paging through every stored key-value (ciphertext) of a backend, in key order, and finding
//! its compaction revision. Used by KeyAdmin (status, rewrap) and by the anchor's re-baseline.

use bytes::Bytes;
use daas_etcd_proto::RangeRequest;
use daas_etcd_proto::mvccpb::KeyValue;
use tonic::{Code, Status};

use crate::backend::Backend;

/// Pages through every stored key-value in key order, each page read at the latest revision.
pub(crate) struct Scan {
    from: Option<Bytes>,
    page: u32,
    /// Header revision of the last page.
    pub(crate) revision: i64,
}

impl Scan {
    pub(crate) fn new(page: u32) -> Self {
        Self {
            from: Some(Bytes::from_static(b"\0")),
            page: page.max(1),
            revision: 0,
        }
    }

    pub(crate) async fn next_page<B: Backend>(
        &mut self,
        backend: &B,
    ) -> Result<Option<Vec<KeyValue>>, Status> {
        let Some(from) = self.from.take() else {
            return Ok(None);
        };
        let resp = backend
            .range(RangeRequest {
                key: from,
                range_end: Bytes::from_static(b"\0"),
                limit: i64::from(self.page),
                ..RangeRequest::default()
            })
            .await?;
        self.revision = resp.header.map_or(self.revision, |h| h.revision);
        if resp.more
            && let Some(last) = resp.kvs.last()
        {
            let mut next = last.key.to_vec();
            next.push(0);
            self.from = Some(Bytes::from(next));
        }
        Ok(Some(resp.kvs))
    }
}

/// The backend's compaction revision: the smallest revision a read may still ask for (0 when
/// nothing was compacted). etcd has no call that reports it, but answers a read below it with
/// `OutOfRange` "required revision has been compacted", so a binary search over
/// `[1, current]` with `count_only` reads of one key finds it in about log2(current) requests,
/// with any backend.
pub(crate) async fn compact_revision<B: Backend>(backend: &B, current: i64) -> Result<i64, Status> {
    let readable = |revision: i64| async move {
        let probe = RangeRequest {
            key: Bytes::from_static(crate::validate::RESERVED_PREFIX),
            revision,
            count_only: true,
            ..RangeRequest::default()
        };
        match backend.range(probe).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::OutOfRange && s.message().contains("compacted") => {
                Ok(false)
            }
            Err(s) => Err(s),
        }
    };
    if current < 1 || readable(1).await? {
        return Ok(0);
    }
    // Invariant: `lo` is compacted away, `hi` is readable.
    let (mut lo, mut hi) = (1, current);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if readable(mid).await? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}
