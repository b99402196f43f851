//! The sequencer and the record staircase, without a backend: soundness (no value the shim
//! wrote is ever reported stale, however writes interleave, finish or get cancelled) and
//! detection (a value put back at a later revision is).

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn fresh() -> Arc<Freshness> {
    Arc::new(Freshness::new())
}

/// (ticket order, answer order) → F at the revision after the last write.
#[test]
fn sequential_writes_raise_the_floor() {
    let f = fresh();
    let mut written = Vec::new();
    for rev in 2..=5 {
        let t = f.ticket().expect("ticket");
        written.push((rev, t.seq()));
        t.answered(Some(rev));
    }
    for (rev, seq) in &written {
        assert!(f.check(b"/k", *rev, Some(*seq)).is_ok(), "rev {rev}");
    }
    // The value written at revision 2 (seq 1), put back at revision 6: stale.
    let err = f.check(b"/k", 6, Some(1)).expect_err("replay");
    assert_eq!(err.code(), tonic::Code::DataLoss);
    assert!(err.message().contains("\"/k\"") && err.message().contains("revision 6"));
    // Envelope v1 (no sequence number) counts as 0.
    assert!(f.check(b"/k", 6, None).is_err());
    assert!(f.check(b"/k", 2, None).is_ok());
    assert_eq!(
        f.watermark(),
        Watermark {
            revision: 5,
            floor: 4,
            next_seq: 5
        }
    );
}

#[test]
fn a_write_in_flight_keeps_the_floor_down() {
    let f = fresh();
    let slow = f.ticket().expect("ticket"); // seq 1, committed late at revision 4
    let a = f.ticket().expect("ticket"); // seq 2
    a.answered(Some(2));
    let b = f.ticket().expect("ticket"); // seq 3, floor 1: `slow` is still in flight
    b.answered(Some(3));
    // `slow` commits at revision 4 > 3 with seq 1: must not be reported stale.
    assert!(f.check(b"/slow", 4, Some(1)).is_ok());
    slow.answered(Some(4));
    let c = f.ticket().expect("ticket"); // seq 4, floor 4
    c.answered(Some(5));
    assert!(f.check(b"/slow", 6, Some(1)).is_err());
    assert!(f.check(b"/slow", 6, Some(4)).is_ok());
}

#[test]
fn an_unknown_outcome_is_pinned_for_the_grace_period() {
    let f = Arc::new(Freshness::new().with_unknown_outcome_grace(Duration::from_millis(200)));
    let lost = f.ticket().expect("ticket"); // seq 1: the connection broke
    lost.unknown();
    let a = f.ticket().expect("ticket");
    a.answered(Some(2));
    // The lost write commits after all, at revision 3: not stale.
    assert!(f.check(b"/lost", 3, Some(1)).is_ok());
    std::thread::sleep(Duration::from_millis(250));
    let b = f.ticket().expect("ticket"); // the pin has expired: floor = own seq
    b.answered(Some(4));
    assert_eq!(f.floor_at(5), 3);
}

#[test]
fn a_dropped_ticket_counts_as_unknown() {
    let f = fresh();
    drop(f.ticket().expect("ticket")); // seq 1, never finished
    let a = f.ticket().expect("ticket");
    a.answered(Some(7));
    assert!(f.check(b"/k", 8, Some(1)).is_ok());
}

#[test]
fn definitive_errors_finish_and_transport_errors_pin() {
    let f = fresh();
    let t = f.ticket().expect("ticket");
    t.finish_with::<()>(
        &Err(Status::invalid_argument("etcdserver: key not found")),
        |_| None,
    );
    let t = f.ticket().expect("ticket"); // seq 2
    t.finish_with::<()>(&Err(Status::unavailable("connection reset")), |_| None);
    let t = f.ticket().expect("ticket"); // seq 3, floor 2 (seq 2 pinned)
    t.answered(Some(9));
    assert_eq!(f.floor_at(10), 2);
}

#[test]
fn the_limit_refuses_tickets_until_raised() {
    let f = Arc::new(Freshness::starting_at(10, Some((5, 10)), 12));
    assert_eq!(f.ticket().expect("10").seq(), 10);
    assert_eq!(f.ticket().expect("11").seq(), 11);
    let err = f.ticket().expect_err("limit");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    f.raise_limit(100);
    f.raise_limit(13); // never lowers
    assert_eq!(f.ticket().expect("12").seq(), 12);
}

#[test]
fn the_staircase_is_bounded_and_only_loses_precision() {
    let f = fresh();
    for rev in 1..=(3 * MAX_RECORDS as i64) {
        f.ticket().expect("ticket").answered(Some(rev));
    }
    assert!(f.records() <= MAX_RECORDS, "{}", f.records());
    let mut last = 0;
    for rev in 1..=(3 * MAX_RECORDS as i64 + 1) {
        let floor = f.floor_at(rev);
        // Monotone, and never above the truth (the value written at `rev` has seq `rev`).
        assert!(floor >= last);
        assert!(rev > 3 * MAX_RECORDS as i64 || floor <= rev as u64);
        last = floor;
    }
    // The newest records are exact.
    assert_eq!(
        f.floor_at(3 * MAX_RECORDS as i64 + 1),
        3 * MAX_RECORDS as u64
    );
}

#[test]
fn a_seed_from_the_anchor_applies_above_its_revision() {
    let f = Freshness::starting_at(1 << 40, Some((100, 5_000)), u64::MAX);
    assert!(f.check(b"/old", 100, Some(3)).is_ok());
    assert!(f.check(b"/old", 101, Some(3)).is_err());
    assert!(f.check(b"/crashed", 150, Some(6_000)).is_ok());
    assert_eq!(f.watermark().revision, 100);
}

/// A model of a linearizable datastore under arbitrary interleavings of ticketing, commits,
/// answers and cancellations: no value the shim wrote is ever reported stale.
#[derive(Debug, Clone)]
enum Step {
    Start,
    Commit(usize),
    Answer(usize),
    Cancel(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Start),
        3 => (0usize..64).prop_map(Step::Commit),
        3 => (0usize..64).prop_map(Step::Answer),
        1 => (0usize..64).prop_map(Step::Cancel),
    ]
}

struct Write {
    ticket: Option<Ticket>,
    seq: u64,
    committed: Option<i64>,
}

proptest! {
    #[test]
    fn no_write_of_the_shim_is_ever_reported_stale(steps in proptest::collection::vec(step(), 1..200)) {
        let f = fresh();
        let mut writes: Vec<Write> = Vec::new();
        let mut revision = 1i64;
        for step in steps {
            match step {
                Step::Start => {
                    let ticket = f.ticket().expect("ticket");
                    let seq = ticket.seq();
                    writes.push(Write { ticket: Some(ticket), seq, committed: None });
                }
                Step::Commit(i) => {
                    // The backend applies a write any time after it was sent, even after the
                    // client gave up (cancelled), but only once.
                    if let Some(w) = writes.get_mut(i) && w.committed.is_none() {
                        revision += 1;
                        w.committed = Some(revision);
                    }
                }
                Step::Answer(i) => {
                    if let Some(w) = writes.get_mut(i)
                        && let Some(rev) = w.committed
                        && let Some(t) = w.ticket.take()
                    {
                        t.answered(Some(rev));
                    }
                }
                Step::Cancel(i) => {
                    if let Some(w) = writes.get_mut(i) {
                        drop(w.ticket.take());
                    }
                }
            }
            for w in &writes {
                if let Some(rev) = w.committed {
                    prop_assert!(f.check(b"/k", rev, Some(w.seq)).is_ok(),
                        "seq {} at {rev} reported stale (floor {})", w.seq, f.floor_at(rev));
                }
            }
        }
        // And a replay is caught: once everything is answered, the oldest value put back at a
        // new revision is stale whenever a later write has been recorded.
        for w in &mut writes {
            if let (Some(rev), Some(t)) = (w.committed, w.ticket.take()) { t.answered(Some(rev)); }
        }
        let t = f.ticket().expect("ticket");
        let newest = t.seq();
        revision += 1;
        t.answered(Some(revision));
        if writes.iter().all(|w| w.ticket.is_none()) && newest > 1 {
            prop_assert!(f.check(b"/k", revision + 1, Some(0)).is_err());
        }
    }
}
