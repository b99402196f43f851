//! Untrusted stored bytes → `KeyRing::decrypt` under a fixed two-key ring. Must never panic, and
//! must never accept bytes it did not produce (forging a GCM tag is out of the fuzzer's reach,
//! so any `Ok` is a bug). The same input, used as an etcd key and a value, must round-trip.
#![no_main]

use daas_envelope::{DataKey, DecryptError, KeyRing, OVERHEAD};
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
    assert_eq!(KeyRing::key_id_of(data).is_ok(), !format_error);
    if let Ok(id) = KeyRing::key_id_of(data) {
        assert!(data.len() >= OVERHEAD);
        assert_eq!(data[4..8], id.0.to_be_bytes());
    }

    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (key, value) = data.split_at(split);
    let envelope = ring.encrypt(key, value);
    let out = ring.decrypt(key, &envelope).expect("round trip");
    assert_eq!(out.plaintext, value);
    assert!(!out.stale);
});
