//! Arbitrary and mutated inputs never panic; they are refused with an error.

mod common;

use common::{VECTORS, aws};
use daas_attestation::{parse, verify};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes);
        let _ = verify(&bytes, &aws(), 1_700_000_000_000);
    }

    #[test]
    fn cose_shaped_prefixes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Start like a real document so the fuzzing reaches the payload parser.
        let mut bytes = vec![0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59, 0x01, 0x00, 0xbf];
        bytes.extend_from_slice(&tail);
        let _ = parse(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_vectors_never_panic_and_are_refused(
        which in 0..VECTORS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let v = &VECTORS[which];
        let mut bytes = v.bytes();
        let original = bytes.clone();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        let _ = parse(&bytes);
        let result = verify(&bytes, &aws(), v.timestamp_ms);
        if bytes != original {
            prop_assert!(result.is_err(), "a mutated {} verified", v.file);
        }
    }
}
