//! Freshness: noticing that the datastore handed back an older value than the one the shim
//! last wrote under a key, without trusting the datastore for anything.
//!
//! Every write (Put, DeleteRange, LeaseRevoke, a Txn that may put or delete, a rewrap) takes a
//! [`Ticket`] **before** it is sent to the backend: `seq`, the next write sequence number
//! (sealed into every value of that write, see `daas-envelope`), and `floor`, the smallest
//! sequence number among the writes in flight at that moment (the ticket's own included). When
//! the backend answers with header revision `R`, the shim records `(R, floor)`. Deletes store
//! no value but their record raises the floor above the value they deleted, which is what
//! catches that value being put back.
//!
//! **What it catches, and when.** A value `V` read at revision `r` is refused when a write
//! answered with a revision below `r` was sent after `V`'s write was answered, and no write
//! older than `V`'s was still in flight then. A value put back by the datastore after the
//! shim's next write (any key) has been committed is therefore caught; one committed before
//! it is not (the shim has no later write to compare with). `docs/etcd-shim.md` has the table.
//!
//! **Why that is sound.** Let a value `V` written by the shim have `mod_revision > R`. If `V`'s
//! write had been answered before the ticket was taken, `V` was committed before the recorded
//! write was even sent, so `V`'s revision would be `≤ R`. So `V`'s write was either in flight
//! when the ticket was taken (its sequence number is `≥ floor`, the minimum of those), or
//! started later (its number is larger than the ticket's, which is `≥ floor`). Hence for every
//! value returned to a client: `seq ≥ F(mod_revision)`, where `F(r)` is the largest floor of
//! the records with `R < r`. A value below that is an older ciphertext the datastore put back
//! (a replay, a resurrected deleted key, a rolled-back store) and the read fails with
//! `DataLoss`.
//!
//! Three things keep it sound:
//! - A write counts as answered only when the backend answered. If the client cancels first,
//!   the server hands the rest of the write to a task of its own, which finishes the ticket
//!   with the answer (`server.rs`, `WriteInFlight`), so the shim never forgets a write that may
//!   still commit. A ticket dropped unfinished counts as an unknown outcome.
//! - When the outcome is unknown (transport error, timeout), the write may still commit later:
//!   its sequence number stays **pinned** in the in-flight set for a grace period
//!   ([`DEFAULT_UNKNOWN_OUTCOME_GRACE`]). A write that commits even later than that is reported
//!   as stale when read: a false alarm, never a missed one.
//! - The records form a staircase (revision and floor both increasing), bounded in size.
//!   Dropping a record only lowers `F`, so coarsening never causes a false alarm.
//!
//! Records hold across restarts only through the anchor (`crate::anchor`); without one, a
//! [`Freshness`] covers the values written by its own process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tonic::{Code, Status};

use crate::errors;

/// How long the sequence number of a write whose outcome is unknown stays pinned.
pub const DEFAULT_UNKNOWN_OUTCOME_GRACE: Duration = Duration::from_secs(300);
/// Most records kept; beyond it the older half is thinned out.
pub const MAX_RECORDS: usize = 4096;

/// What the anchor persists: the newest record and the next sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Watermark {
    /// A revision the backend answered with.
    pub revision: i64,
    /// Every value the shim wrote with `mod_revision > revision` has a sequence number `≥ floor`.
    pub floor: u64,
    /// No sequence number at or above this one has been handed out.
    pub next_seq: u64,
}

/// The sequencer and the record staircase of one shim process.
#[derive(Debug)]
pub struct Freshness {
    sequencer: Mutex<Sequencer>,
    records: RwLock<Records>,
    grace: Duration,
}

#[derive(Debug)]
struct Sequencer {
    next: u64,
    /// Sequence numbers handed out whose backend answer has not arrived.
    in_flight: BTreeSet<u64>,
    /// Sequence numbers of writes with an unknown outcome, until the instant given.
    pinned: BTreeMap<u64, Instant>,
    /// Sequence numbers must stay below this (see [`Freshness::raise_limit`]).
    limit: u64,
}

impl Sequencer {
    fn floor(&mut self, now: Instant) -> u64 {
        self.pinned.retain(|_, until| *until > now);
        let in_flight = self.in_flight.first().copied().unwrap_or(self.next);
        let pinned = self.pinned.keys().next().copied().unwrap_or(self.next);
        in_flight.min(pinned).min(self.next)
    }
}

/// `revision → floor`, both strictly increasing.
#[derive(Debug, Default)]
struct Records {
    steps: BTreeMap<i64, u64>,
}

impl Records {
    /// `F(r)`: the largest floor recorded at a revision below `r`.
    fn floor_below(&self, revision: i64) -> u64 {
        self.steps
            .range(..revision)
            .next_back()
            .map_or(0, |(_, floor)| *floor)
    }

    fn record(&mut self, revision: i64, floor: u64) {
        if self.floor_below(revision.saturating_add(1)) >= floor {
            return; // an earlier-or-equal revision already claims as much
        }
        self.steps.insert(revision, floor);
        let dominated: Vec<i64> = self
            .steps
            .range(revision.saturating_add(1)..)
            .take_while(|(_, f)| **f <= floor)
            .map(|(r, _)| *r)
            .collect();
        for r in dominated {
            self.steps.remove(&r);
        }
        if self.steps.len() > MAX_RECORDS {
            // Remove every other record of the older half: F drops there, never rises.
            let older: Vec<i64> = self
                .steps
                .keys()
                .take(self.steps.len() / 2)
                .step_by(2)
                .copied()
                .collect();
            for r in older {
                self.steps.remove(&r);
            }
        }
    }

    fn newest(&self) -> Option<(i64, u64)> {
        self.steps.iter().next_back().map(|(r, f)| (*r, *f))
    }
}

/// A write's place in the sequence. Finish it with the backend's answer
/// ([`answered`](Self::answered)) or with [`unknown`](Self::unknown); dropping it unfinished
/// counts as unknown.
#[derive(Debug)]
pub struct Ticket {
    freshness: Arc<Freshness>,
    seq: u64,
    floor: u64,
    finished: bool,
}

impl Ticket {
    /// The sequence number to seal into every value of this write.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The backend answered. `revision` is its header revision, if it gave one: recorded
    /// together with this ticket's floor.
    pub fn answered(mut self, revision: Option<i64>) {
        self.finished = true;
        self.freshness.finish(self.seq, self.floor, revision);
    }

    /// The write may or may not have been applied (and may still be): keep its sequence
    /// number pinned for the grace period.
    pub fn unknown(mut self) {
        self.finished = true;
        self.freshness.pin(self.seq);
    }

    /// Finishes the ticket from the backend's result: definitive gRPC errors (etcd's request
    /// errors) count as answered without a revision, transport-level ones as unknown.
    pub fn finish_with<T>(self, result: &Result<T, Status>, revision: impl Fn(&T) -> Option<i64>) {
        match result {
            Ok(resp) => self.answered(revision(resp)),
            Err(status) if is_definitive(status) => self.answered(None),
            Err(_) => self.unknown(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.freshness.pin(self.seq);
        }
    }
}

/// Whether a gRPC error from the backend means the write was certainly not applied. etcd
/// answers invalid or refused requests with these codes before anything is proposed; every
/// other code (Unavailable, DeadlineExceeded, Unknown, Internal, Cancelled, …) can follow a
/// write that was or will be applied.
fn is_definitive(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::ResourceExhausted
            | Code::Unimplemented
    )
}

impl Default for Freshness {
    fn default() -> Self {
        Self::new()
    }
}

impl Freshness {
    /// In memory only: sequence numbers from 1, no records. Detects replays of values this
    /// process wrote; nothing survives a restart (the anchor does that).
    pub fn new() -> Self {
        Self::starting_at(1, None, u64::MAX)
    }

    /// Continues from an anchor: sequence numbers from `next_seq`, the record `seed`
    /// (revision, floor), and sequence numbers must stay below `limit` until
    /// [`raise_limit`](Self::raise_limit) moves it.
    pub fn starting_at(next_seq: u64, seed: Option<(i64, u64)>, limit: u64) -> Self {
        let mut records = Records::default();
        if let Some((revision, floor)) = seed {
            records.record(revision, floor);
        }
        Self {
            sequencer: Mutex::new(Sequencer {
                next: next_seq,
                in_flight: BTreeSet::new(),
                pinned: BTreeMap::new(),
                limit,
            }),
            records: RwLock::new(records),
            grace: DEFAULT_UNKNOWN_OUTCOME_GRACE,
        }
    }

    /// The same with another grace period for writes of unknown outcome (tests).
    pub fn with_unknown_outcome_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    fn sequencer(&self) -> std::sync::MutexGuard<'_, Sequencer> {
        // The sequencer's fields are plain numbers and sets updated in single statements: a
        // panic elsewhere cannot leave them inconsistent.
        self.sequencer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket for a write about to be sent. Fails (Unavailable) only when the anchor has not
    /// been persisted for so long that a restart could no longer tell this process's values
    /// from replays (see `crate::anchor`).
    pub fn ticket(self: &Arc<Self>) -> Result<Ticket, Status> {
        let mut s = self.sequencer();
        let seq = s.next;
        if seq >= s.limit {
            return Err(errors::anchor_stale());
        }
        s.next += 1;
        s.in_flight.insert(seq);
        let floor = s.floor(Instant::now());
        Ok(Ticket {
            freshness: self.clone(),
            seq,
            floor,
            finished: false,
        })
    }

    fn finish(&self, seq: u64, floor: u64, revision: Option<i64>) {
        // Record before the write leaves the in-flight set: a concurrent ticket then sees a
        // floor no higher than this one's, which keeps the staircase cheap to maintain.
        if let Some(revision) = revision.filter(|r| *r > 0) {
            self.records
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .record(revision, floor);
        }
        self.sequencer().in_flight.remove(&seq);
    }

    fn pin(&self, seq: u64) {
        let mut s = self.sequencer();
        s.in_flight.remove(&seq);
        s.pinned.insert(seq, Instant::now() + self.grace);
    }

    /// `F(mod_revision)`: the smallest sequence number a value stored at `mod_revision` may
    /// carry.
    pub fn floor_at(&self, mod_revision: i64) -> u64 {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .floor_below(mod_revision)
    }

    /// Checks a value read back: its sequence number (`None` for envelope v1, treated as 0)
    /// must be at least `F(mod_revision)`. The error names the key and revision, never the
    /// value.
    pub fn check(&self, key: &[u8], mod_revision: i64, seq: Option<u64>) -> Result<(), Status> {
        let floor = self.floor_at(mod_revision);
        if seq.unwrap_or(0) < floor {
            return Err(errors::stale_value(key, mod_revision));
        }
        Ok(())
    }

    /// What the anchor persists now.
    pub fn watermark(&self) -> Watermark {
        let next_seq = self.sequencer().next;
        let (revision, floor) = self
            .records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .newest()
            .unwrap_or((0, 0));
        Watermark {
            revision,
            floor,
            next_seq,
        }
    }

    /// Allows sequence numbers up to (excluding) `limit`; never lowers it.
    pub fn raise_limit(&self, limit: u64) {
        let mut s = self.sequencer();
        s.limit = s.limit.max(limit);
    }

    /// Number of records held (tests, status).
    pub fn records(&self) -> usize {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .steps
            .len()
    }
}

#[cfg(test)]
mod tests;
