//! What ed25519 batch verification would give the cold Seal path: the cost per signature of
//! `ed25519_dalek::verify_batch` at batch sizes 1/8/32/64 against `verify_strict` one by one
//! (the baseline, measured in the same run). Distinct keys, 32-byte messages (Sui signs the
//! BLAKE2b digest of the personal message). Not wired into the authenticator: see
//! docs/performance.md ("Batch verification") for why.
//!
//! Run: `cargo bench -p daas-seal --bench ed25519_batch` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// On-CPU time of this thread (`/proc/thread-self/schedstat`, ns), so that other processes on
/// a shared machine do not count against the rate; wall time where the file is missing.
fn cpu_time(wall: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| wall.elapsed())
}

/// Runs `f` for at least `budget` of wall time; returns items per on-CPU second (`f` does
/// `per_call` items).
fn rate(budget: Duration, per_call: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let cpu_start = cpu_time(start);
    let mut ops = 0u64;
    while start.elapsed() < budget {
        f();
        ops += per_call;
    }
    ops as f64 / (cpu_time(start) - cpu_start).as_secs_f64()
}

/// The best of `rounds` runs of [`rate`]: on a shared machine, the least disturbed one.
fn best_rate(rounds: u32, budget: Duration, per_call: u64, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| rate(budget, per_call, &mut f))
        .fold(0.0, f64::max)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, budget) = if quick {
        (1, Duration::from_millis(300))
    } else {
        (3, Duration::from_secs(1))
    };
    const N: usize = 64;
    let keys: Vec<SigningKey> = (0..N)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let messages: Vec<[u8; 32]> = (0..N).map(|i| [i as u8; 32]).collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();

    println!("ed25519 batch verification, one core, per signature (distinct keys)");
    let single = best_rate(rounds, budget, N as u64, || {
        for i in 0..N {
            black_box(verifying[i].verify_strict(&messages[i], &signatures[i]))
                .expect("valid signature");
        }
    });
    println!(
        "  {:<30} {single:>9.0}/s {:>7.1} us  1.00x",
        "verify_strict, one by one",
        1e6 / single
    );
    for size in [1usize, 8, 32, 64] {
        let refs: Vec<&[u8]> = messages[..size].iter().map(|m| &m[..]).collect();
        let per_s = best_rate(rounds, budget, size as u64, || {
            black_box(ed25519_dalek::verify_batch(
                &refs,
                &signatures[..size],
                &verifying[..size],
            ))
            .expect("valid batch");
        });
        println!(
            "  {:<30} {per_s:>9.0}/s {:>7.1} us  {:.2}x",
            format!("verify_batch, batch of {size}"),
            1e6 / per_s,
            per_s / single
        );
    }
    // A batch with one bad signature fails as a whole; finding it costs the single checks.
    let mut bad = signatures[..32].to_vec();
    let mut bytes = bad[7].to_bytes();
    bytes[40] ^= 1;
    bad[7] = Signature::from_bytes(&bytes);
    let refs: Vec<&[u8]> = messages[..32].iter().map(|m| &m[..]).collect();
    let per_s = best_rate(rounds, budget, 32, || {
        if ed25519_dalek::verify_batch(&refs, &bad, &verifying[..32]).is_err() {
            for i in 0..32 {
                black_box(verifying[i].verify_strict(&messages[i], &bad[i])).ok();
            }
        }
    });
    println!(
        "  {:<30} {per_s:>9.0}/s {:>7.1} us  {:.2}x",
        "batch of 32, one bad + fallback",
        1e6 / per_s,
        per_s / single
    );
}
