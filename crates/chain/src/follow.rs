//! Following the chain from its tip.
//!
//! [`Follower`] streams checkpoints with `sui_rpc`'s `stream_checkpoints`, starting at the chain
//! tip on every (re)connect, and hands each checkpoint's relevant changes to a handler in order.
//! It persists nothing: a reader that follows the chain to keep caches honest gains nothing from
//! replaying what it missed while it was away, because a (re)connect ([`FollowEvent::Connected`])
//! tells it to drop everything it cached anyway. So a restart after any downtime is streaming
//! within one round trip, never behind the full node's retention window, and no checkpoint costs
//! an fsync.
//!
//! Within one connection the stream must be gapless: a skipped checkpoint ends the connection
//! (the next one starts at the tip again, after `Disconnected` and `Connected`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use daas_chain_types::{Package, PackageEvent};
use futures_util::{StreamExt, pin_mut};
use prost_types::FieldMask;
use sui_rpc::client::{CheckpointStreamRequest, CheckpointStreamStart};
use sui_rpc::field::FieldMaskUtil;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::Address;

use crate::ChainError;
use crate::effects::decode_event;

/// What one checkpoint changed that a K3s-DaaS reader may care about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointChanges {
    pub sequence: u64,
    /// Every object of the package's types written, created or deleted, plus every record id
    /// named by a package event (a slash changes the cluster's table, not the record, but
    /// names the record).
    pub objects: BTreeSet<Address>,
    /// The package's events in order.
    pub events: Vec<PackageEvent>,
    /// The version each written object of `objects` has after this checkpoint.
    pub versions: std::collections::BTreeMap<Address, u64>,
    /// Events of the package that could not be decoded (a newer package version, or a
    /// misbehaving endpoint). Whatever they changed is unknown: a reader should drop everything
    /// it cached.
    pub undecodable: usize,
}

impl CheckpointChanges {
    /// Extracts the changes from a checkpoint (read mask [`CHECKPOINT_MASK`]). An event of the
    /// package that does not decode is logged and counted in `undecodable`, never fatal.
    pub fn from_checkpoint(
        package: &Package,
        sequence: u64,
        checkpoint: &proto::Checkpoint,
    ) -> CheckpointChanges {
        let mut out = CheckpointChanges {
            sequence,
            ..Default::default()
        };
        for tx in &checkpoint.transactions {
            for c in tx.effects.iter().flat_map(|e| e.changed_objects.iter()) {
                let Some(id) = c.object_id.as_deref().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                // Only the package's own objects matter (records, the cluster); on a busy
                // network most changes are other packages'. An object without a type is kept.
                let ours = c
                    .object_type
                    .as_deref()
                    .and_then(|t| t.parse::<sui_sdk_types::StructTag>().ok())
                    .is_none_or(|t| *t.address() == package.id);
                if ours {
                    out.objects.insert(id);
                    if let Some(v) = c.output_version {
                        out.versions.insert(id, v);
                    }
                }
            }
            for ev in tx.events.iter().flat_map(|e| e.events.iter()) {
                match decode_event(package, ev) {
                    Ok(Some(event)) => {
                        if let Some(record) = event.record_id() {
                            out.objects.insert(record);
                        }
                        out.events.push(event);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out.undecodable += 1;
                        tracing::warn!(
                            checkpoint = sequence,
                            transaction = tx.digest.as_deref().unwrap_or("?"),
                            event_type = ev.event_type.as_deref().unwrap_or("?"),
                            error = %e,
                            "undecodable event of the package; treating the checkpoint as an unknown change"
                        );
                    }
                }
            }
        }
        out
    }
}

/// Fields the follower reads from each checkpoint.
pub const CHECKPOINT_MASK: &[&str] = &[
    "sequence_number",
    "transactions.digest",
    "transactions.effects.changed_objects.object_id",
    "transactions.effects.changed_objects.object_type",
    "transactions.effects.changed_objects.output_version",
    "transactions.events.events",
];

/// Milliseconds since the first call in this process (a monotonic clock for freshness).
fn monotonic_ms() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Default for [`Follower::with_stale_after`]: Sui seals a checkpoint about every quarter
/// second and the devnet heartbeats at most every 10 s, so 15 s of silence means the stream is
/// not delivering, whatever the transport says.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15);

/// Shared, lock-free state of a running follower (for readiness and metrics).
#[derive(Debug)]
pub struct FollowerStatus {
    /// Connected and caught up with the tip seen at connect time.
    streaming: AtomicBool,
    /// [`monotonic_ms`] of the last frame.
    last_frame_ms: AtomicU64,
    stale_after_ms: AtomicU64,
    /// The highest checkpoint handed to the handler in this process.
    cursor: AtomicU64,
    has_cursor: AtomicBool,
    /// Package events that could not be decoded, since start.
    undecodable: AtomicU64,
}

impl Default for FollowerStatus {
    fn default() -> Self {
        FollowerStatus {
            streaming: AtomicBool::new(false),
            last_frame_ms: AtomicU64::new(0),
            stale_after_ms: AtomicU64::new(
                u64::try_from(DEFAULT_STALE_AFTER.as_millis()).unwrap_or(u64::MAX),
            ),
            cursor: AtomicU64::new(0),
            has_cursor: AtomicBool::new(false),
            undecodable: AtomicU64::new(0),
        }
    }
}

impl FollowerStatus {
    /// True while the stream is connected, caught up with the chain tip, and has delivered a
    /// frame within the stale-after window. Only then can a reader trust that every change
    /// reaches it.
    pub fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Acquire)
            && monotonic_ms().saturating_sub(self.last_frame_ms.load(Ordering::Acquire))
                <= self.stale_after_ms.load(Ordering::Acquire)
    }

    /// The highest checkpoint handed to the handler in this process (never decreases). Every
    /// change up to it has been handled, so an answer read at a lower height may miss one.
    pub fn cursor(&self) -> Option<u64> {
        self.has_cursor
            .load(Ordering::Acquire)
            .then(|| self.cursor.load(Ordering::Acquire))
    }

    /// Marks the stream up (as of now) or down. [`Follower::run`] does this; it is public so a
    /// reader driven by another source of checkpoints (or a test) can report the same way.
    pub fn set_streaming(&self, up: bool) {
        if up {
            self.touch();
        }
        self.streaming.store(up, Ordering::Release);
    }

    fn touch(&self) {
        self.last_frame_ms.store(monotonic_ms(), Ordering::Release);
    }

    /// Package events that could not be decoded since start (each made the handler drop
    /// everything).
    pub fn undecodable_events(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    /// Records that checkpoint `c` was handled. Public for readers driven by another source of
    /// checkpoints (and tests), like [`FollowerStatus::set_streaming`].
    pub fn set_cursor(&self, c: u64) {
        self.cursor.fetch_max(c, Ordering::AcqRel);
        self.has_cursor.store(true, Ordering::Release);
    }
}

/// Clears `streaming` on every exit from [`Follower::run`] (errors, cancellation, panics).
struct NotStreamingOnDrop(Arc<FollowerStatus>);

impl Drop for NotStreamingOnDrop {
    fn drop(&mut self) {
        self.0.set_streaming(false);
    }
}

/// What the handler is told.
#[derive(Debug)]
pub enum FollowEvent {
    /// The stream (re)connected; anything cached before may be stale.
    Connected,
    /// One checkpoint's changes.
    Checkpoint(CheckpointChanges),
    /// The stream broke (or went silent); the follower reconnects after a backoff.
    Disconnected(ChainError),
}

/// Follows checkpoints for one package, from the chain tip.
pub struct Follower {
    client: sui_rpc::Client,
    package: Package,
    status: Arc<FollowerStatus>,
    stale_after: Duration,
}

impl Follower {
    pub fn new(client: sui_rpc::Client, package: Package) -> Follower {
        Follower {
            client,
            package,
            status: Arc::default(),
            stale_after: DEFAULT_STALE_AFTER,
        }
    }

    /// How long the stream may stay silent before it counts as lost (reconnect, and
    /// [`FollowerStatus::is_streaming`] turns false). Must exceed the chain's checkpoint interval.
    pub fn with_stale_after(self, stale_after: Duration) -> Follower {
        self.status.stale_after_ms.store(
            u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        Follower {
            stale_after,
            ..self
        }
    }

    pub fn status(&self) -> Arc<FollowerStatus> {
        Arc::clone(&self.status)
    }

    fn lost(&self, reason: impl Into<String>) -> ChainError {
        ChainError::Unreachable {
            url: self.client.uri().to_string(),
            reason: reason.into(),
        }
    }

    /// The chain's checkpoint height now (what "caught up" means for this connection). An
    /// endpoint that does not answer within the stale-after window counts as lost.
    async fn tip(&self) -> Result<u64, ChainError> {
        let mut ledger = self.client.clone().ledger_client();
        let call =
            ledger.get_service_info(sui_rpc::proto::sui::rpc::v2::GetServiceInfoRequest::default());
        let info = tokio::time::timeout(self.stale_after, call)
            .await
            .map_err(|_| {
                self.lost(format!(
                    "no answer to GetServiceInfo for {:?}",
                    self.stale_after
                ))
            })?
            .map_err(|s| ChainError::rpc("GetServiceInfo", s))?
            .into_inner();
        Ok(info.checkpoint_height.unwrap_or(0))
    }

    /// Runs until `handler` fails (its error is returned) or the task is dropped; a lost stream
    /// is reconnected with backoff, starting at the tip again.
    ///
    /// The status reports streaming only once the stream has caught up with the tip seen at
    /// (re)connect time, and stops as soon as it fails, goes silent for the stale-after window,
    /// skips a checkpoint, or this function returns.
    pub async fn run<H>(self, mut handler: H) -> Result<(), ChainError>
    where
        H: FnMut(FollowEvent) -> Result<(), ChainError>,
    {
        let _guard = NotStreamingOnDrop(self.status.clone());
        let mut backoff = Duration::from_millis(100);
        loop {
            let failure = match self.tip().await {
                Err(e) => e,
                Ok(tip) => {
                    let (failure, delivered) = self.follow(tip, &mut handler).await?;
                    if delivered {
                        backoff = Duration::from_millis(100);
                    }
                    failure
                }
            };
            self.status.set_streaming(false);
            tracing::warn!(error = %failure, ?backoff, "checkpoint stream lost; reconnecting");
            handler(FollowEvent::Disconnected(failure))?;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One connection, from the tip: `Ok((why it ended, whether any frame arrived))`, or the
    /// handler's error (fatal).
    async fn follow<H>(&self, tip: u64, handler: &mut H) -> Result<(ChainError, bool), ChainError>
    where
        H: FnMut(FollowEvent) -> Result<(), ChainError>,
    {
        let mut request = CheckpointStreamRequest::default();
        request.read_mask = Some(FieldMask::from_paths(CHECKPOINT_MASK));
        request.start = CheckpointStreamStart::Tip;
        let stream = self.client.stream_checkpoints(request);
        pin_mut!(stream);
        let mut last: Option<u64> = None;
        let mut delivered = false;
        loop {
            // sui-rpc retries transient transport errors inside the stream, indefinitely: a
            // partition shows up here only as silence.
            let item = match tokio::time::timeout(self.stale_after, stream.next()).await {
                Err(_) => {
                    return Ok((
                        self.lost(format!("no checkpoint for {:?}", self.stale_after)),
                        delivered,
                    ));
                }
                Ok(None) => return Ok((self.lost("checkpoint stream ended"), delivered)),
                Ok(Some(Err(s))) => {
                    return Ok((ChainError::rpc("SubscribeCheckpoints", s), delivered));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if !delivered {
                delivered = true;
                handler(FollowEvent::Connected)?;
            }
            self.status.touch();
            if last.is_some_and(|l| item.cursor <= l) {
                continue; // already handled (a replayed frame)
            }
            if let Some(l) = last
                && (item.cursor != l + 1 || item.checkpoint.is_none())
            {
                return Ok((
                    self.lost(format!(
                        "checkpoint stream skipped from {l} to {} (payload {})",
                        item.cursor,
                        if item.checkpoint.is_some() {
                            "present"
                        } else {
                            "missing"
                        }
                    )),
                    delivered,
                ));
            }
            if let Some(checkpoint) = &item.checkpoint {
                let changes =
                    CheckpointChanges::from_checkpoint(&self.package, item.cursor, checkpoint);
                if changes.undecodable > 0 {
                    self.status
                        .undecodable
                        .fetch_add(changes.undecodable as u64, Ordering::Relaxed);
                }
                handler(FollowEvent::Checkpoint(changes))?;
            }
            self.status.set_cursor(item.cursor);
            last = Some(item.cursor);
            if item.cursor >= tip {
                self.status.set_streaming(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_tag: &str, contents: &[u8]) -> proto::Event {
        let mut ev = proto::Event::default();
        ev.event_type = Some(type_tag.to_owned());
        let mut bcs = proto::Bcs::default();
        bcs.value = Some(contents.to_vec().into());
        ev.contents = Some(bcs);
        ev
    }

    fn checkpoint(events: Vec<proto::Event>) -> proto::Checkpoint {
        let mut tx_events = proto::TransactionEvents::default();
        tx_events.events = events;
        let mut tx = proto::ExecutedTransaction::default();
        tx.digest = Some("tx".into());
        tx.events = Some(tx_events);
        let mut c = proto::Checkpoint::default();
        c.transactions = vec![tx];
        c
    }

    /// An event of the package with an unknown name (a newer package version) or garbage
    /// contents is counted, not fatal; the rest of the checkpoint is still read.
    #[test]
    fn undecodable_package_events_are_counted_not_fatal() {
        let package = Package::new(Address::from_static("0xda"));
        let record = Address::from_static("0x5eed");
        let cluster = Address::from_static("0xc1");
        let mut slashed = Vec::new();
        slashed.extend_from_slice(cluster.as_bytes());
        slashed.extend_from_slice(record.as_bytes());
        let c = checkpoint(vec![
            event(&format!("{}::cluster::SomethingNew", package.id), b"\x01"),
            event(&format!("{}::cluster::Slashed", package.id), b"\x00"),
            event("0x2::coin::CoinEvent", b""),
            event(&format!("{}::cluster::Slashed", package.id), &slashed),
        ]);
        let changes = CheckpointChanges::from_checkpoint(&package, 7, &c);
        assert_eq!(changes.undecodable, 2);
        assert_eq!(changes.events.len(), 1, "{:?}", changes.events);
        assert!(changes.objects.contains(&record));
    }

    #[test]
    fn the_cursor_never_goes_back() {
        let status = FollowerStatus::default();
        assert_eq!(status.cursor(), None);
        status.set_cursor(10);
        status.set_cursor(7);
        assert_eq!(status.cursor(), Some(10));
    }
}
