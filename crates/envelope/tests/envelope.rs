//! Envelope behaviour through the public API: round trips, what binds a value to its etcd key,
//! its data key and its write sequence number, and the error each malformed input gets. v1 and
//! v2 envelopes (read only) are covered by the golden vectors in `golden.rs`; what is specific
//! to v3 (the wrapped DEK, the nonce counter, the DEK cache) by `v3.rs`.

use std::collections::HashSet;

use daas_envelope::{
    DataKey, DecryptError, HEADER_LEN, Header, KeyId, KeyRing, KeyRingError, MAGIC, NullCipher,
    OVERHEAD, VERSION, VERSION_1, VERSION_2, ValueCipher,
};
use proptest::prelude::*;

const ETCD_KEY: &[u8] = b"/registry/secrets/kube-system/bootstrap-token-abcdef";

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; 32])
}

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(key(byte), []).expect("one key")
}

#[test]
fn round_trips_empty_small_and_large_values() {
    let ring = ring(1);
    let large: Vec<u8> = (0..3 * 512 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for (plaintext, sequence) in [(&b""[..], 0), (b"hello etcd", 7), (&large, u64::MAX)] {
        let envelope = ring.encrypt(ETCD_KEY, plaintext, sequence);
        assert_eq!(envelope.len(), plaintext.len() + OVERHEAD);
        assert_eq!(&envelope[..3], &MAGIC);
        assert_eq!(envelope[3], VERSION);
        assert_eq!(&envelope[4..8], &ring.active_id().0.to_be_bytes());
        assert_eq!(&envelope[8..16], &sequence.to_be_bytes());
        assert_eq!(
            KeyRing::header_of(&envelope),
            Ok(Header {
                version: 3,
                key_id: ring.active_id(),
                sequence: Some(sequence)
            })
        );
        assert_eq!(
            KeyRing::header_of_prefix(&envelope[..HEADER_LEN], envelope.len()),
            KeyRing::header_of(&envelope)
        );
        if plaintext.len() >= 16 {
            assert!(
                !envelope.windows(16).any(|w| w == &plaintext[..16]),
                "plaintext visible in envelope"
            );
        }
        let out = ring.decrypt(ETCD_KEY, &envelope).expect("decrypts");
        assert_eq!(out.plaintext, plaintext);
        assert_eq!(out.key_id, ring.active_id());
        assert_eq!(out.sequence, Some(sequence));
        assert!(!out.stale);
    }
}

#[test]
fn the_sequence_number_is_authenticated() {
    let ring = ring(1);
    let envelope = ring.encrypt(ETCD_KEY, b"value", 41);
    for other in [0u64, 40, 42, u64::MAX] {
        let mut bad = envelope.clone();
        bad[8..16].copy_from_slice(&other.to_be_bytes());
        assert_eq!(
            ring.decrypt(ETCD_KEY, &bad),
            Err(DecryptError::Authentication {
                key_id: ring.active_id()
            }),
            "sequence {other} accepted"
        );
        // The header itself still parses: it is not authenticated before decryption.
        assert_eq!(
            KeyRing::header_of(&bad).map(|h| h.sequence),
            Ok(Some(other))
        );
    }
}

#[test]
fn a_v3_envelope_relabelled_as_v2_or_v1_does_not_decrypt() {
    let ring = ring(1);
    for version in [VERSION_2, VERSION_1] {
        let mut envelope = ring.encrypt(ETCD_KEY, b"value", 3);
        envelope[3] = version;
        assert_eq!(
            ring.decrypt(ETCD_KEY, &envelope),
            Err(DecryptError::Authentication {
                key_id: ring.active_id()
            })
        );
    }
    // And a v2 envelope relabelled as v3.
    let mut envelope = ring.encrypt_v2(ETCD_KEY, &[0x5a; 64], 3);
    envelope[3] = VERSION;
    assert!(ring.decrypt(ETCD_KEY, &envelope).is_err());
}

#[test]
fn value_is_bound_to_its_etcd_key() {
    let ring = ring(1);
    let envelope = ring.encrypt(b"/registry/secrets/a/x", b"secret", 1);
    for other in [
        &b"/registry/secrets/a/y"[..],
        b"/registry/secrets/a/x/",
        b"",
        b"/registry/secrets/a/",
    ] {
        assert_eq!(
            ring.decrypt(other, &envelope),
            Err(DecryptError::Authentication {
                key_id: ring.active_id()
            })
        );
    }
    // Keys that differ only by a trailing NUL byte are different keys.
    let envelope = ring.encrypt(b"", b"v", 1);
    assert!(ring.decrypt(b"\0", &envelope).is_err());
}

#[test]
fn every_single_byte_change_is_rejected_with_the_right_error() {
    let ring = ring(1);
    let id = ring.active_id();
    let envelope = ring.encrypt(ETCD_KEY, b"a small value", 9);
    for i in 0..envelope.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = envelope.clone();
            bad[i] ^= flip;
            let err = ring
                .decrypt(ETCD_KEY, &bad)
                .expect_err("tampered byte accepted");
            match i {
                0..=2 => assert_eq!(err, DecryptError::BadMagic, "byte {i}"),
                // 3 ^ 1 = 2: read as a v2 envelope, which does not authenticate.
                3 if VERSION ^ flip == VERSION_2 => {
                    assert_eq!(err, DecryptError::Authentication { key_id: id })
                }
                3 => assert_eq!(err, DecryptError::UnsupportedVersion(VERSION ^ flip)),
                4..=7 => assert!(
                    matches!(err, DecryptError::UnknownKey(other) if other != id),
                    "byte {i}: {err:?}"
                ),
                // 16..32 is the DEK id, 32..80 the wrapped DEK.
                16..=79 => assert_eq!(err, DecryptError::BadWrappedKey { key_id: id }, "byte {i}"),
                // 8..16 is the sequence number; 80..92 the nonce, then ciphertext and tag.
                _ => assert_eq!(err, DecryptError::Authentication { key_id: id }, "byte {i}"),
            }
        }
    }
}

#[test]
fn appended_or_removed_bytes_are_rejected() {
    let ring = ring(1);
    let envelope = ring.encrypt(ETCD_KEY, b"value", 1);
    let mut longer = envelope.clone();
    longer.push(0);
    let shorter = &envelope[..envelope.len() - 1];
    for bad in [&longer[..], shorter] {
        assert!(matches!(
            ring.decrypt(ETCD_KEY, bad),
            Err(DecryptError::Authentication { .. })
        ));
    }
}

#[test]
fn every_length_below_108_is_truncated() {
    let ring = ring(1);
    let envelope = ring.encrypt(ETCD_KEY, b"", 1);
    assert_eq!(envelope.len(), 108);
    for len in 0..108 {
        // Without a version byte the smallest envelope (v1, 48 bytes) is the measure.
        let min = if len < 4 { 48 } else { 108 };
        assert_eq!(
            ring.decrypt(ETCD_KEY, &envelope[..len]),
            Err(DecryptError::Truncated { len, min })
        );
        assert_eq!(
            KeyRing::key_id_of(&envelope[..len]),
            Err(DecryptError::Truncated { len, min })
        );
    }
    assert!(ring.decrypt(ETCD_KEY, &envelope).is_ok());
}

#[test]
fn foreign_data_is_bad_magic() {
    let ring = ring(1);
    let protobuf = b"k8s\0\n\x0c\n\x02v1\x12\x06Secret".repeat(4);
    for data in [
        &b"x"[..],
        b"k4",
        b"k3x",
        b"{\"kind\":\"Secret\"}",
        &protobuf,
    ] {
        assert_eq!(ring.decrypt(ETCD_KEY, data), Err(DecryptError::BadMagic));
    }
    let err = ring
        .decrypt(ETCD_KEY, b"plain")
        .expect_err("not an envelope");
    assert_eq!(
        err.to_string(),
        "not a K3s-DaaS envelope (plaintext or foreign data?)"
    );
}

#[test]
fn other_versions_are_unsupported() {
    let ring = ring(1);
    let envelope = ring.encrypt(ETCD_KEY, b"v", 1);
    for version in [0u8, 4, 0xff] {
        let mut bad = envelope.clone();
        bad[3] = version;
        assert_eq!(
            ring.decrypt(ETCD_KEY, &bad),
            Err(DecryptError::UnsupportedVersion(version))
        );
        // Even when short: the version is reported before the length.
        assert_eq!(
            ring.decrypt(ETCD_KEY, &bad[..4]),
            Err(DecryptError::UnsupportedVersion(version))
        );
    }
}

#[test]
fn a_ring_without_the_key_reports_unknown_key() {
    let (one, two) = (ring(1), ring(2));
    let envelope = one.encrypt(ETCD_KEY, b"v", 1);
    assert_eq!(
        two.decrypt(ETCD_KEY, &envelope),
        Err(DecryptError::UnknownKey(one.active_id()))
    );
    assert_eq!(KeyRing::key_id_of(&envelope), Ok(one.active_id()));
}

#[test]
fn rotation_keeps_old_values_readable_and_marks_them_stale() {
    let k1 = ring(1);
    let old = k1.encrypt(ETCD_KEY, b"old", 1);
    let k1_id = k1.active_id();

    let rotated = KeyRing::new(key(2), [key(1)]).expect("distinct keys");
    let k2_id = rotated.active_id();
    assert_ne!(k1_id, k2_id);
    assert_eq!(rotated.ids().collect::<HashSet<_>>(), [k1_id, k2_id].into());
    assert!(rotated.contains(k1_id) && rotated.contains(k2_id));

    let out = rotated
        .decrypt(ETCD_KEY, &old)
        .expect("old key still decrypts");
    assert_eq!(out.plaintext, b"old");
    assert_eq!(out.key_id, k1_id);
    assert!(out.stale);

    let new = rotated.encrypt(ETCD_KEY, b"new", 2);
    assert_eq!(KeyRing::key_id_of(&new), Ok(k2_id));
    let out = rotated.decrypt(ETCD_KEY, &new).expect("decrypts");
    assert_eq!((out.key_id, out.stale), (k2_id, false));

    // The old ring cannot read values written after the rotation.
    assert_eq!(
        k1.decrypt(ETCD_KEY, &new),
        Err(DecryptError::UnknownKey(k2_id))
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let id = key(1).id();
    assert_eq!(
        KeyRing::new(key(1), [key(2), key(1)]).err(),
        Some(KeyRingError::DuplicateKey(id))
    );
    assert!(KeyRing::new(key(1), [key(2), key(3)]).is_ok());
}

#[test]
fn ten_thousand_encryptions_of_one_value_are_all_distinct() {
    let ring = ring(1);
    let mut nonces = HashSet::new();
    let mut envelopes = HashSet::new();
    for _ in 0..10_000 {
        let envelope = ring.encrypt(ETCD_KEY, b"same plaintext", 5);
        nonces.insert(envelope[80..92].to_vec());
        envelopes.insert(envelope);
    }
    assert_eq!(nonces.len(), 10_000);
    assert_eq!(envelopes.len(), 10_000);
}

#[test]
fn null_cipher_is_the_identity() {
    let cipher: &dyn ValueCipher = &NullCipher;
    for value in [&b""[..], b"plain", b"k3e\x01 looks like an envelope"] {
        let stored = cipher.encrypt(ETCD_KEY, value, 3);
        assert_eq!(stored, value);
        let out = cipher.decrypt(b"any key", &stored).expect("identity");
        assert_eq!(out.plaintext, value);
        assert!(!out.stale);
        assert_eq!(out.sequence, None);
    }
}

#[test]
fn key_ring_works_through_the_trait_object() {
    let cipher: Box<dyn ValueCipher> = Box::new(ring(1));
    let stored = cipher.encrypt(ETCD_KEY, b"v", 1);
    assert_ne!(stored, b"v");
    assert_eq!(
        cipher
            .decrypt(ETCD_KEY, &stored)
            .expect("decrypts")
            .plaintext,
        b"v"
    );
}

#[test]
fn debug_output_never_contains_key_bytes_or_plaintext() {
    let bytes = [0xa7u8; 32];
    let key = DataKey::from_bytes(bytes);
    let id = key.id();
    let key_hex = hex::encode(bytes);
    let ring = KeyRing::new(key, [DataKey::from_bytes([0x5c; 32])]).expect("ring");
    for text in [
        format!("{:?}", DataKey::from_bytes(bytes)),
        format!("{:#?}", DataKey::from_bytes(bytes)),
        format!("{ring:?}"),
        format!("{ring:#?}"),
    ] {
        assert!(text.contains(&id.to_string()), "{text}");
        assert!(!text.contains(&key_hex[..8]), "{text}");
        assert!(!text.contains("167, 167"), "{text}"); // the bytes as a Debug array
    }
    let out = ring
        .decrypt(ETCD_KEY, &ring.encrypt(ETCD_KEY, b"TOPSECRET", 1))
        .expect("decrypts");
    assert!(!format!("{out:?}").contains("TOPSECRET"));
    assert!(!format!("{out:?}").contains("84, 79, 80")); // "TOP" as bytes
}

#[test]
fn error_messages_name_the_key_but_no_secret() {
    let ring = ring(1);
    let envelope = ring.encrypt(b"/a", b"v", 1);
    let err = ring.decrypt(b"/b", &envelope).expect_err("moved value");
    assert_eq!(
        err.to_string(),
        format!(
            "value failed authentication under key {}: wrong key, corrupted, or moved from \
             another etcd key",
            ring.active_id()
        )
    );
}

#[test]
fn key_ids_display_and_parse_as_eight_hex_digits() {
    let id = KeyId(0x00ab_cdef);
    assert_eq!(id.to_string(), "00abcdef");
    assert_eq!("00abcdef".parse::<KeyId>(), Ok(id));
    assert_eq!("00ABCDEF".parse::<KeyId>(), Ok(id));
    for bad in [
        "",
        "abcdef",
        "0abcdef",
        "000abcdef",
        "+0abcdef",
        "0x00abcd",
        "0000000g",
        " 00abcde",
    ] {
        assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
    }
    assert_eq!(format!("{id:?}"), "KeyId(00abcdef)");
}

#[test]
fn key_id_is_derived_from_the_key() {
    // SHA-256("k3s-daas/key-id/v1" || 32 × 0x00)[0..4], computed with Python's hashlib.
    let a = DataKey::from_bytes([0; 32]).id();
    assert_eq!(a, KeyId(0x40ab_c749));
    assert_eq!(a, DataKey::from_bytes([0; 32]).id());
    assert_ne!(a, DataKey::from_bytes([1; 32]).id());
    assert_ne!(DataKey::generate().id(), DataKey::generate().id());
}

proptest! {
    #[test]
    fn round_trip_any_key_and_value(
        etcd_key in proptest::collection::vec(any::<u8>(), 0..300),
        value in proptest::collection::vec(any::<u8>(), 0..4096),
        other in proptest::collection::vec(any::<u8>(), 0..300),
        sequence in any::<u64>(),
    ) {
        let ring = KeyRing::new(key(9), [key(8)]).expect("ring");
        let envelope = ring.encrypt(&etcd_key, &value, sequence);
        prop_assert_eq!(envelope.len(), value.len() + OVERHEAD);
        let out = ring.decrypt(&etcd_key, &envelope).expect("round trip");
        prop_assert_eq!(out.plaintext, value);
        prop_assert_eq!(out.sequence, Some(sequence));
        prop_assert!(!out.stale);
        if other != etcd_key {
            let is_auth_err = matches!(
                ring.decrypt(&other, &envelope),
                Err(DecryptError::Authentication { .. })
            );
            prop_assert!(is_auth_err);
        }
    }

    #[test]
    fn arbitrary_bytes_never_decrypt(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ring = ring(1);
        prop_assert!(ring.decrypt(ETCD_KEY, &data).is_err());
    }
}
