//! Untrusted stored bytes → `KeyRing::decrypt` under a fixed two-key ring. Must never panic, and
//! must never accept bytes it did not produce (forging a GCM tag is out of the fuzzer's reach,
//! so any `Ok` is a bug). The header parser must agree with `decrypt` on every format error,
//! for v1, v2 and v3 alike. The same input, used as an etcd key, a value and a sequence number,
//! must round-trip.
#![no_main]

use daas_envelope::{
    DataKey, DecryptError, KeyRing, OVERHEAD, OVERHEAD_V1, OVERHEAD_V2, VERSION, VERSION_1,
    VERSION_2,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(DataKey::from_bytes([7; 32]), [DataKey::from_bytes([8; 32])])
        .expect("distinct keys");
    let etcd_key = b"/registry/secrets/default/fuzz";

    let result = ring.decrypt(etcd_key, data);
    assert!(result.is_err(), "accepted bytes that were never encrypted");
    let format_error = matches!(
        result,
        Err(DecryptError::BadMagic
            | DecryptError::UnsupportedVersion(_)
            | DecryptError::Truncated { .. })
    );
    let header = KeyRing::header_of(data);
    assert_eq!(header.is_ok(), !format_error);
    if let Ok(h) = header {
        assert_eq!(data[4..8], h.key_id.0.to_be_bytes());
        match h.version {
            VERSION_1 => assert!(data.len() >= OVERHEAD_V1 && h.sequence.is_none()),
            VERSION_2 | VERSION => {
                let min = if h.version == VERSION { OVERHEAD } else { OVERHEAD_V2 };
                assert!(data.len() >= min);
                assert_eq!(h.sequence.map(u64::to_be_bytes), data[8..16].try_into().ok());
            }
            other => panic!("header_of accepted version {other}"),
        }
        let prefix = &data[..data.len().min(16)];
        assert_eq!(KeyRing::header_of_prefix(prefix, data.len()), Ok(h));
    }

    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (key, value) = data.split_at(split);
    let sequence = value
        .get(..8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
    let envelope = ring.encrypt(key, value, sequence);
    let out = ring.decrypt(key, &envelope).expect("round trip");
    assert_eq!(out.plaintext, value);
    assert_eq!(out.sequence, Some(sequence));
    assert!(!out.stale);
});
