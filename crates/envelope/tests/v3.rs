//! Envelope v3: the per-ring DEK wrapped under the ring key, the counter nonce, the cache of
//! unwrapped DEKs, and every way to substitute one envelope's DEK for another's.

use std::collections::HashSet;
use std::sync::Arc;

use daas_envelope::{DataKey, DecryptError, KeyRing, OVERHEAD, VERSION, VERSION_2};

const ETCD_KEY: &[u8] = b"/registry/secrets/default/db-password";
/// Field offsets of an envelope v3.
const DEK_ID: std::ops::Range<usize> = 16..32;
const WRAPPED: std::ops::Range<usize> = 32..80;
const NONCE: std::ops::Range<usize> = 80..92;

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; 32])
}

fn new_ring(byte: u8) -> KeyRing {
    KeyRing::new(key(byte), []).expect("one key")
}

fn counter_of(envelope: &[u8]) -> u64 {
    assert_eq!(envelope[NONCE][..4], [0; 4], "upper 32 nonce bits are zero");
    u64::from_be_bytes(envelope[84..92].try_into().expect("8 bytes"))
}

#[test]
fn one_ring_writes_under_one_dek_with_consecutive_nonces() {
    let ring = new_ring(1);
    let a = ring.encrypt(ETCD_KEY, b"a", 1);
    let b = ring.encrypt(ETCD_KEY, b"b", 2);
    assert_eq!((a[3], a.len()), (VERSION, 1 + OVERHEAD));
    assert_eq!(a[DEK_ID], b[DEK_ID]);
    assert_eq!(a[WRAPPED], b[WRAPPED]);
    assert_eq!((counter_of(&a), counter_of(&b)), (0, 1));
    // The DEK travels wrapped: its bytes are not in the envelope in the clear, and a second
    // ring with the same key has another DEK.
    let other = new_ring(1).encrypt(ETCD_KEY, b"a", 1);
    assert_ne!(a[DEK_ID], other[DEK_ID]);
    assert_ne!(a[WRAPPED], other[WRAPPED]);
    for (envelope, plaintext) in [(&a, b"a"), (&b, b"b"), (&other, b"a")] {
        let out = ring.decrypt(ETCD_KEY, envelope).expect("decrypts");
        assert_eq!(out.plaintext, plaintext);
        assert!(!out.stale);
    }
}

#[test]
fn nonces_are_unique_across_threads() {
    const THREADS: usize = 4;
    const EACH: usize = 5_000;
    let ring = Arc::new(new_ring(1));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| ring.encrypt(ETCD_KEY, b"same", i as u64))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut counters = HashSet::new();
    let mut dek_ids = HashSet::new();
    for handle in handles {
        for envelope in handle.join().expect("encrypting thread") {
            counters.insert(counter_of(&envelope));
            dek_ids.insert(envelope[DEK_ID].to_vec());
        }
    }
    assert_eq!(counters.len(), THREADS * EACH);
    assert_eq!(counters, (0..(THREADS * EACH) as u64).collect());
    assert_eq!(dek_ids.len(), 1);
}

#[test]
fn the_dek_is_replaced_after_two_to_the_32_nonces() {
    let ring = new_ring(1);
    let first = ring.encrypt(ETCD_KEY, b"first", 1);
    ring.advance_nonce_counter((1 << 32) - 2);
    let a = ring.encrypt(ETCD_KEY, b"a", 2);
    let b = ring.encrypt(ETCD_KEY, b"b", 3);
    let c = ring.encrypt(ETCD_KEY, b"c", 4);
    let d = ring.encrypt(ETCD_KEY, b"d", 5);
    assert_eq!(counter_of(&a), (1 << 32) - 2);
    assert_eq!(counter_of(&b), (1 << 32) - 1);
    assert_eq!(a[DEK_ID], first[DEK_ID]);
    assert_eq!(b[DEK_ID], first[DEK_ID]);
    // Counter exhausted: a fresh DEK, counting from 0 again.
    assert_ne!(c[DEK_ID], b[DEK_ID]);
    assert_ne!(c[WRAPPED], b[WRAPPED]);
    assert_eq!((counter_of(&c), counter_of(&d)), (0, 1));
    assert_eq!(c[DEK_ID], d[DEK_ID]);
    // The counter never moves back.
    ring.advance_nonce_counter(0);
    assert_eq!(counter_of(&ring.encrypt(ETCD_KEY, b"e", 6)), 2);
    // Both DEKs' values stay readable, by this ring and by a new one with the same key.
    let reader = KeyRing::new(key(2), [key(1)]).expect("rotated ring");
    for (envelope, plaintext) in [(&first, &b"first"[..]), (&a, b"a"), (&b, b"b"), (&c, b"c")] {
        assert_eq!(
            ring.decrypt(ETCD_KEY, envelope)
                .expect("decrypts")
                .plaintext,
            plaintext
        );
        let out = reader.decrypt(ETCD_KEY, envelope).expect("decrypts");
        assert_eq!(out.plaintext, plaintext);
        assert!(out.stale, "under a key that is no longer active");
    }
}

#[test]
fn every_header_field_is_authenticated() {
    let ring = KeyRing::new(key(1), [key(2)]).expect("ring");
    let id = ring.active_id();
    let envelope = ring.encrypt(ETCD_KEY, b"some value", 77);
    let tampered = |range: std::ops::Range<usize>| {
        let mut bad = envelope.clone();
        bad[range.start] ^= 0x01;
        bad[range.end - 1] ^= 0x80;
        ring.decrypt(ETCD_KEY, &bad)
            .expect_err("tampered envelope accepted")
    };
    // The key id of the other key in the ring: its unwrapping fails.
    let mut other_key = envelope.clone();
    other_key[4..8].copy_from_slice(&key(2).id().0.to_be_bytes());
    assert_eq!(
        ring.decrypt(ETCD_KEY, &other_key),
        Err(DecryptError::BadWrappedKey {
            key_id: key(2).id()
        })
    );
    let auth = DecryptError::Authentication { key_id: id };
    let bad_dek = DecryptError::BadWrappedKey { key_id: id };
    assert_eq!(tampered(8..16), auth, "sequence number");
    assert_eq!(tampered(DEK_ID), bad_dek, "DEK id");
    assert_eq!(tampered(WRAPPED), bad_dek, "wrapped DEK");
    assert_eq!(tampered(NONCE), auth, "nonce");
    let len = envelope.len();
    assert_eq!(tampered(92..len - 16), auth, "ciphertext");
    assert_eq!(tampered(len - 16..len), auth, "tag");
    // The untouched envelope still decrypts: nothing bad was cached.
    assert!(ring.decrypt(ETCD_KEY, &envelope).is_ok());
}

#[test]
fn a_value_moved_to_another_etcd_key_fails() {
    let ring = new_ring(1);
    let envelope = ring.encrypt(b"/registry/secrets/a/x", b"secret", 1);
    for other in [
        &b"/registry/secrets/a/y"[..],
        b"/registry/secrets/a/x\0",
        b"",
    ] {
        assert_eq!(
            ring.decrypt(other, &envelope),
            Err(DecryptError::Authentication {
                key_id: ring.active_id()
            })
        );
    }
}

#[test]
fn a_wrapped_dek_from_another_key_is_refused() {
    let one = new_ring(1);
    let two = new_ring(2);
    let reader = KeyRing::new(key(1), [key(2)]).expect("ring");
    let from_two = two.encrypt(ETCD_KEY, b"v", 1);
    // Relabelled as written under key 1: key 1 cannot unwrap key 2's DEK.
    let mut relabelled = from_two.clone();
    relabelled[4..8].copy_from_slice(&one.active_id().0.to_be_bytes());
    for ring in [&one, &reader] {
        assert_eq!(
            ring.decrypt(ETCD_KEY, &relabelled),
            Err(DecryptError::BadWrappedKey {
                key_id: one.active_id()
            })
        );
    }
    // Key 1's DEK id and wrapped DEK spliced into key 2's value: still the wrong key.
    let from_one = one.encrypt(ETCD_KEY, b"v", 1);
    let mut spliced = from_two.clone();
    spliced[16..80].copy_from_slice(&from_one[16..80]);
    assert_eq!(
        reader.decrypt(ETCD_KEY, &spliced),
        Err(DecryptError::BadWrappedKey {
            key_id: two.active_id()
        })
    );
    // Another ring's valid DEK under the same key: unwraps, but the value does not
    // authenticate under it.
    let sibling = new_ring(1).encrypt(ETCD_KEY, b"w", 1);
    let mut swapped = from_one.clone();
    swapped[16..80].copy_from_slice(&sibling[16..80]);
    assert_eq!(
        one.decrypt(ETCD_KEY, &swapped),
        Err(DecryptError::Authentication {
            key_id: one.active_id()
        })
    );
}

#[test]
fn a_swapped_wrapped_dek_with_the_same_dek_id_fails_and_is_not_trusted_from_the_cache() {
    let dek_id = [0x42; 16];
    let a = KeyRing::with_dek(key(1), [], [0xaa; 32], dek_id).expect("ring a");
    let b = KeyRing::with_dek(key(1), [], [0xbb; 32], dek_id).expect("ring b");
    let from_a = a.encrypt(ETCD_KEY, b"written by a", 1);
    let from_b = b.encrypt(ETCD_KEY, b"written by b", 1);
    assert_eq!(from_a[DEK_ID], from_b[DEK_ID]);
    assert_ne!(from_a[WRAPPED], from_b[WRAPPED]);
    let mut swapped = from_a.clone();
    swapped[WRAPPED].copy_from_slice(&from_b[WRAPPED]);
    let fail = Err(DecryptError::Authentication {
        key_id: a.active_id(),
    });
    // `a` has its own DEK cached under this id: the other wrapped bytes are unwrapped again
    // (to b's DEK), and the value fails under it.
    assert_eq!(a.decrypt(ETCD_KEY, &swapped), fail);
    // A reader that has cached nothing yet.
    let reader = new_ring(1);
    assert_eq!(reader.decrypt(ETCD_KEY, &swapped), fail);
    // Each ring still reads the other's genuine values, the cache notwithstanding.
    assert_eq!(
        a.decrypt(ETCD_KEY, &from_b).expect("b's value").plaintext,
        b"written by b"
    );
    assert_eq!(
        a.decrypt(ETCD_KEY, &from_a).expect("a's value").plaintext,
        b"written by a"
    );
    assert_eq!(
        reader
            .decrypt(ETCD_KEY, &from_b)
            .expect("b's value")
            .plaintext,
        b"written by b"
    );
    assert_eq!(
        reader
            .decrypt(ETCD_KEY, &from_a)
            .expect("a's value")
            .plaintext,
        b"written by a"
    );
    assert_eq!(reader.decrypt(ETCD_KEY, &swapped), fail);
}

#[test]
fn the_dek_cache_is_bounded() {
    let reader = new_ring(1);
    assert_eq!(reader.dek_cache_len(), 1, "its own write DEK");
    let envelopes: Vec<Vec<u8>> = (0..1100u32)
        .map(|i| new_ring(1).encrypt(ETCD_KEY, &i.to_be_bytes(), u64::from(i)))
        .collect();
    for (i, envelope) in (0u32..).zip(&envelopes) {
        let out = reader.decrypt(ETCD_KEY, envelope).expect("decrypts");
        assert_eq!(out.plaintext, i.to_be_bytes());
        assert!(reader.dek_cache_len() <= 1024);
    }
    assert_eq!(reader.dek_cache_len(), 1024);
    // Evicted DEKs are unwrapped again.
    for (i, envelope) in (0u32..).zip(&envelopes) {
        assert_eq!(
            reader
                .decrypt(ETCD_KEY, envelope)
                .expect("decrypts")
                .plaintext,
            i.to_be_bytes()
        );
    }
    assert_eq!(reader.dek_cache_len(), 1024);
}

#[test]
fn forged_envelopes_never_enter_the_cache() {
    let reader = new_ring(1);
    let envelope = new_ring(1).encrypt(ETCD_KEY, b"v", 1);
    for i in 0..200u8 {
        let mut forged = envelope.clone();
        forged[DEK_ID][0] = i;
        forged[DEK_ID][1] ^= 0xff;
        assert!(reader.decrypt(ETCD_KEY, &forged).is_err());
    }
    // A valid DEK under a value that does not authenticate is not cached either.
    let mut bad_tag = envelope.clone();
    let last = bad_tag.len() - 1;
    bad_tag[last] ^= 1;
    assert!(reader.decrypt(ETCD_KEY, &bad_tag).is_err());
    assert_eq!(reader.dek_cache_len(), 1);
    assert!(reader.decrypt(ETCD_KEY, &envelope).is_ok());
    assert_eq!(reader.dek_cache_len(), 2);
}

#[test]
fn truncated_and_extended_v3_envelopes_fail() {
    let ring = new_ring(1);
    let envelope = ring.encrypt(ETCD_KEY, &[7; 100], 1);
    for len in 4..OVERHEAD {
        assert_eq!(
            ring.decrypt(ETCD_KEY, &envelope[..len]),
            Err(DecryptError::Truncated { len, min: OVERHEAD })
        );
    }
    let auth = Err(DecryptError::Authentication {
        key_id: ring.active_id(),
    });
    for len in OVERHEAD..envelope.len() {
        assert_eq!(
            ring.decrypt(ETCD_KEY, &envelope[..len]),
            auth,
            "cut at {len}"
        );
    }
    for extra in [1usize, 16, 4096] {
        let mut longer = envelope.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        assert_eq!(ring.decrypt(ETCD_KEY, &longer), auth);
    }
}

#[test]
fn same_keys_compares_the_keys_and_the_active_one_not_the_deks() {
    let ring = KeyRing::new(key(1), [key(2)]).expect("ring");
    assert!(ring.same_keys(&KeyRing::new(key(1), [key(2)]).expect("ring")));
    for other in [
        KeyRing::new(key(2), [key(1)]).expect("other active"),
        KeyRing::new(key(1), []).expect("fewer keys"),
        KeyRing::new(key(1), [key(2), key(3)]).expect("more keys"),
        KeyRing::new(key(1), [key(3)]).expect("another key"),
    ] {
        assert!(!ring.same_keys(&other), "{other:?}");
        assert!(!other.same_keys(&ring), "{other:?}");
    }
}

#[test]
fn v2_values_still_decrypt_and_keep_their_staleness_rule() {
    let ring = KeyRing::new(key(2), [key(1)]).expect("ring");
    let old_ring = new_ring(1);
    let active_v2 = ring.encrypt_v2(ETCD_KEY, b"v2 under the active key", 5);
    let old_v2 = old_ring.encrypt_v2(ETCD_KEY, b"v2 under the old key", 6);
    assert_eq!(active_v2[3], VERSION_2);
    let out = ring.decrypt(ETCD_KEY, &active_v2).expect("v2 decrypts");
    assert_eq!(
        (out.plaintext.as_slice(), out.sequence, out.stale),
        (&b"v2 under the active key"[..], Some(5), false)
    );
    let out = ring.decrypt(ETCD_KEY, &old_v2).expect("v2 decrypts");
    assert_eq!((out.sequence, out.stale), (Some(6), true));
}
