//! Framing and scanning of log generations: torn tails are dropped, corruption before valid
//! records is refused with the offset.

use std::path::Path;

use super::*;

fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
    let mut bytes = LOG_MAGIC.to_vec();
    for p in payloads {
        bytes.extend(frame(p).expect("frame"));
    }
    bytes
}

fn payloads(bytes: &[u8], scan: &Scan) -> Vec<Vec<u8>> {
    scan.records
        .iter()
        .map(|(_, r)| bytes[r.clone()].to_vec())
        .collect()
}

/// Offset of record `i` in `log_of` of payloads of these lengths.
fn offset_of(lengths: &[usize], i: usize) -> usize {
    LOG_MAGIC.len() + lengths[..i].iter().map(|l| FRAME_HEADER + l).sum::<usize>()
}

fn path() -> &'static Path {
    Path::new("/data/chain.00000001.log")
}

#[test]
fn records_round_trip() {
    let bytes = log_of(&[b"one", b"", b"three"]);
    let scan = scan(path(), &bytes, true).expect("scan");
    assert_eq!(
        payloads(&bytes, &scan),
        vec![b"one".to_vec(), vec![], b"three".to_vec()]
    );
    assert_eq!(scan.good_len, bytes.len() as u64);
    assert!(scan.torn.is_none());
}

#[test]
fn a_torn_tail_is_dropped_at_the_last_good_record() {
    let full = log_of(&[b"one", b"two", b"three"]);
    let good = offset_of(&[3, 3, 5], 2);
    // Cut inside the header, inside the payload, and a full-length record with bad bytes.
    let mut flipped = full.clone();
    *flipped.last_mut().expect("byte") ^= 0xff;
    for (case, bytes) in [
        ("header", full[..good + 5].to_vec()),
        ("payload", full[..full.len() - 1].to_vec()),
        ("checksum", flipped),
    ] {
        let scan = scan(path(), &bytes, true).expect(case);
        assert_eq!(
            payloads(&bytes, &scan),
            vec![b"one".to_vec(), b"two".to_vec()],
            "{case}"
        );
        assert_eq!(scan.good_len, good as u64, "{case}");
        assert_eq!(scan.torn.as_ref().map(|t| t.0), Some(good), "{case}");
    }
}

#[test]
fn an_incomplete_header_of_the_newest_generation_is_torn() {
    let scan = scan(path(), &LOG_MAGIC[..3], true).expect("scan");
    assert!(scan.records.is_empty());
    assert_eq!(scan.good_len, 0);
    assert!(scan.torn.is_some());
}

#[test]
fn corruption_followed_by_valid_records_is_refused_with_its_offset() {
    let lengths = [3, 3, 5];
    let mut bytes = log_of(&[b"one", b"two", b"three"]);
    let second = offset_of(&lengths, 1);
    bytes[second + FRAME_HEADER] ^= 0x01;
    match scan(path(), &bytes, true) {
        Err(DevnetError::LogCorrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!(p, path());
            assert_eq!(offset, second as u64);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected LogCorrupt, got {other:?}"),
    }
}

#[test]
fn an_oversized_length_is_refused_without_reading_it() {
    let lengths = [3, 3, 5];
    let mut bytes = log_of(&[b"one", b"two", b"three"]);
    let second = offset_of(&lengths, 1);
    bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Valid records follow: corruption, named by offset and the limit.
    match scan(path(), &bytes, true) {
        Err(DevnetError::LogCorrupt { offset, reason, .. }) => {
            assert_eq!(offset, second as u64);
            assert!(reason.contains("exceeds the limit"), "{reason}");
        }
        other => panic!("expected LogCorrupt, got {other:?}"),
    }
    // As the last record it can only be a torn append: dropped.
    let mut tail = log_of(&[b"one"]);
    let at = tail.len();
    tail.extend_from_slice(&(MAX_RECORD as u32 + 1).to_le_bytes());
    tail.extend_from_slice(&[0; 8 + 16]);
    let scan = scan(path(), &tail, true).expect("scan");
    assert_eq!(scan.records.len(), 1);
    assert_eq!(scan.torn.as_ref().map(|t| t.0), Some(at));
    assert!(
        scan.torn
            .as_ref()
            .is_some_and(|t| t.1.contains("exceeds the limit"))
    );
    assert!(frame(&vec![0; MAX_RECORD + 1]).is_err());
}

#[test]
fn only_the_newest_generation_may_be_torn() {
    let full = log_of(&[b"one", b"two"]);
    let bytes = &full[..full.len() - 1];
    assert!(matches!(
        scan(path(), bytes, false),
        Err(DevnetError::LogCorrupt { .. })
    ));
}

#[test]
fn another_file_is_not_a_log() {
    let mut bytes = log_of(&[b"one"]);
    bytes[0] = b'X';
    match scan(path(), &bytes, true) {
        Err(DevnetError::LogCorrupt {
            offset: 0, reason, ..
        }) => {
            assert!(reason.contains("magic"), "{reason}")
        }
        other => panic!("expected LogCorrupt, got {other:?}"),
    }
}

#[test]
fn appends_are_cut_back_and_generations_listed_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = LogWriter::create(dir.path(), 2).expect("create");
    w.append(&frame(b"a").expect("frame")).expect("append");
    LogWriter::create(dir.path(), 10).expect("create");
    std::fs::write(dir.path().join("chain.x.log"), b"not ours").expect("write");
    let found: Vec<u64> = generations(dir.path())
        .expect("generations")
        .iter()
        .map(|g| g.number)
        .collect();
    assert_eq!(found, vec![2, 10]);
    // Reopening after a torn append cuts the file to its good length.
    let g2 = generations(dir.path()).expect("generations")[0].clone();
    let mut bytes = std::fs::read(&g2.path).expect("read");
    let good = bytes.len() as u64;
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&g2.path, &bytes).expect("write");
    let mut w = LogWriter::reopen(&g2, good).expect("reopen");
    w.append(&frame(b"b").expect("frame")).expect("append");
    let bytes = std::fs::read(&g2.path).expect("read");
    let scan = scan(&g2.path, &bytes, true).expect("scan");
    assert_eq!(payloads(&bytes, &scan), vec![b"a".to_vec(), b"b".to_vec()]);
    remove_before(dir.path(), 10).expect("remove");
    assert_eq!(generations(dir.path()).expect("generations").len(), 1);
}
