//! Per-value cost of the envelope: envelope v3 (per-ring DEK, counter nonce) against v2
//! (HKDF-Expand + AES key schedule per value) and against bare AES-256-GCM with one key (the
//! floor), for a 1 KiB value, measured in the same run in alternating rounds; and a 500-value
//! list decrypted under each. ring's AES-256-GCM, which v3 uses per value, is timed too (its own
//! floor). Plain std timing; `--quick` for CI smoke runs.
//!
//!   cargo bench -p daas-envelope --bench envelope [-- --quick]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use daas_envelope::{DataKey, KeyRing};

const ETCD_KEY: &[u8] = b"/registry/bench/k00000042";
const VALUE_LEN: usize = 1024;
const LIST: usize = 500;

/// Runs `f` repeatedly for about `budget`; returns microseconds per call.
fn micros_per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// One measured operation: a name and the closure.
type Op<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (budget, rounds) = if quick {
        (Duration::from_millis(100), 1)
    } else {
        (Duration::from_millis(700), 5)
    };

    let ring = KeyRing::new(DataKey::from_bytes([0x42; 32]), []).expect("ring");
    let value = vec![0x5a; VALUE_LEN];
    let v2 = ring.encrypt_v2(ETCD_KEY, &value, 1);
    let v3 = ring.encrypt(ETCD_KEY, &value, 1);
    assert_eq!(ring.decrypt(ETCD_KEY, &v2).expect("v2").plaintext, value);
    assert_eq!(ring.decrypt(ETCD_KEY, &v3).expect("v3").plaintext, value);
    let list_v2: Vec<Vec<u8>> = (0..LIST as u64)
        .map(|i| ring.encrypt_v2(ETCD_KEY, &value, i))
        .collect();
    let list_v3: Vec<Vec<u8>> = (0..LIST as u64)
        .map(|i| ring.encrypt(ETCD_KEY, &value, i))
        .collect();

    // The floor: one aes-gcm AES-256-GCM instance, a fresh buffer per value, v3's AAD size.
    let bare = Aes256Gcm::new_from_slice(&[7; 32]).expect("32-byte key");
    let aad = vec![0u8; 92 + 4 + ETCD_KEY.len()];
    let nonce = Nonce::from([1u8; 12]);
    let mut sealed = value.clone();
    let bare_tag = bare
        .encrypt_in_place_detached(&nonce, &aad, &mut sealed)
        .expect("encrypt");

    // The same with ring.
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7; 32]).expect("32-byte key"),
    );
    let ring_nonce = || ring::aead::Nonce::assume_unique_for_key([1u8; 12]);
    let mut ring_sealed = value.clone();
    let ring_tag = ring_key
        .seal_in_place_separate_tag(ring_nonce(), ring::aead::Aad::from(&aad), &mut ring_sealed)
        .expect("seal");
    ring_sealed.extend_from_slice(ring_tag.as_ref());

    let mut ops: Vec<Op> = vec![
        (
            "aes-gcm AES-256-GCM encrypt",
            Box::new(|| {
                let mut buf = value.clone();
                let tag = bare
                    .encrypt_in_place_detached(&nonce, &aad, &mut buf)
                    .expect("encrypt");
                black_box((buf, tag));
            }),
        ),
        (
            "aes-gcm AES-256-GCM decrypt",
            Box::new(|| {
                let mut buf = sealed.clone();
                bare.decrypt_in_place_detached(&nonce, &aad, &mut buf, &Tag::from(bare_tag))
                    .expect("decrypt");
                black_box(buf);
            }),
        ),
        (
            "ring AES-256-GCM encrypt",
            Box::new(|| {
                let mut buf = value.clone();
                let tag = ring_key
                    .seal_in_place_separate_tag(ring_nonce(), ring::aead::Aad::from(&aad), &mut buf)
                    .expect("seal");
                black_box((buf, tag.as_ref()[0]));
            }),
        ),
        (
            "ring AES-256-GCM decrypt",
            Box::new(|| {
                let mut buf = ring_sealed.clone();
                let plain = ring_key
                    .open_in_place(ring_nonce(), ring::aead::Aad::from(&aad), &mut buf)
                    .expect("open")
                    .len();
                black_box((buf, plain));
            }),
        ),
        (
            "v2 encrypt",
            Box::new(|| {
                black_box(ring.encrypt_v2(ETCD_KEY, black_box(&value), 9));
            }),
        ),
        (
            "v2 decrypt",
            Box::new(|| {
                black_box(ring.decrypt(ETCD_KEY, black_box(&v2)).expect("v2"));
            }),
        ),
        (
            "v3 encrypt",
            Box::new(|| {
                black_box(ring.encrypt(ETCD_KEY, black_box(&value), 9));
            }),
        ),
        (
            "v3 decrypt",
            Box::new(|| {
                black_box(ring.decrypt(ETCD_KEY, black_box(&v3)).expect("v3"));
            }),
        ),
        (
            "v2 decrypt 500-value list",
            Box::new(|| {
                for e in &list_v2 {
                    black_box(ring.decrypt(ETCD_KEY, e).expect("v2"));
                }
            }),
        ),
        (
            "v3 decrypt 500-value list",
            Box::new(|| {
                for e in &list_v3 {
                    black_box(ring.decrypt(ETCD_KEY, e).expect("v3"));
                }
            }),
        ),
    ];

    // Alternating rounds; the best round of each counts (least disturbed by other load).
    let mut best = vec![f64::INFINITY; ops.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in ops.iter_mut().enumerate() {
            best[i] = best[i].min(micros_per_op(budget, f));
        }
    }
    let by_name = |name: &str| {
        ops.iter()
            .position(|(n, _)| *n == name)
            .map(|i| best[i])
            .expect("measured")
    };
    let (bare_enc, bare_dec) = (
        by_name("aes-gcm AES-256-GCM encrypt"),
        by_name("aes-gcm AES-256-GCM decrypt"),
    );
    println!(
        "envelope bench ({}; {rounds} round(s) of {budget:?}; 1 KiB values)",
        if quick { "quick" } else { "full" }
    );
    println!(
        "{:<30} {:>12} {:>12}",
        "operation", "µs per op", "× aes-gcm"
    );
    for (i, (name, _)) in ops.iter().enumerate() {
        let floor = if name.contains("list") {
            bare_dec * LIST as f64
        } else if name.contains("encrypt") {
            bare_enc
        } else {
            bare_dec
        };
        println!("{name:<30} {:>12.3} {:>12.2}", best[i], best[i] / floor);
    }
    println!(
        "v3 / v2: encrypt {:.2}, decrypt {:.2}, 500-value list {:.2}",
        by_name("v3 encrypt") / by_name("v2 encrypt"),
        by_name("v3 decrypt") / by_name("v2 decrypt"),
        by_name("v3 decrypt 500-value list") / by_name("v2 decrypt 500-value list"),
    );
}
