//! Arbitrary sequences of etcd requests (protobuf-decoded from the input) against the
//! embedded store: no panic, revisions never go back, compaction never passes the head.
#![no_main]

use daas_etcd_shim::backend::embedded::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut harness = Harness::new();
    // Records are length-prefixed: [len u8][kind u8][body...].
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (record, next) = tail.split_at(len);
        harness.step(record);
        rest = next;
    }
});
