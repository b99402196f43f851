//! Seal authentication throughput on one core: cold (parse + claims + signature + StakeView
//! lookup + cache insert) and cached (SHA-256 + LRU hit), per signature scheme; then, for
//! ed25519, the crypto floor (one double-scalar multiplication) and the refusal rate of forged
//! tokens against genuine cold ones. Batch verification is measured in
//! `crates/seal/benches/ed25519_batch.rs` (its `batch` feature stays out of this build).
//!
//! Run: `cargo bench -p nautilus-master --bench authn` (add `-- --quick` for a short run;
//! `-- --cold-only` runs only the ed25519 cold path, for `perf record`).
//! Prints tokens/s and the ratio to the earlier prototype's claimed 10,000 verifications/s and
//! to this goals (50,000 cold, 2,000,000 cached). See docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::RateLimit;
use nautilus_master::auth::{
    AuthConfig, InMemoryStakeView, SealAuthenticator, StakeRecord, StakeStatus,
};

const CLUSTER: Address = Address::new([0xc1; 32]);
const NOW: u64 = 1_790_000_000_000;
const PROTOTYPE_CLAIM: f64 = 10_000.0;

type Auth = SealAuthenticator<Arc<InMemoryStakeView>>;

fn stake_id(i: usize) -> Address {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Address::new(id)
}

fn token_for(key: &WalletKey, stake: Address) -> String {
    let claims = Claims::builder(CLUSTER, key.address(), stake, Role::User)
        .lifetime(NOW, 3_600_000)
        .random_nonce()
        .build()
        .expect("claims");
    mint(key.keypair(), claims).expect("mint").into_string()
}

fn setup(scheme: Scheme, n: usize, cache: usize) -> (Auth, Vec<String>) {
    setup_with(scheme, n, cache, RateLimit::unlimited())
}

/// `n` stake records of one key and a token per record; `bad_signatures` is the per-stake
/// budget of failed verifications.
fn setup_with(
    scheme: Scheme,
    n: usize,
    cache: usize,
    bad_signatures: RateLimit,
) -> (Auth, Vec<String>) {
    let view = Arc::new(InMemoryStakeView::default());
    let mut tokens = Vec::with_capacity(n);
    let key = WalletKey::generate(scheme);
    for i in 0..n {
        let stake = stake_id(i);
        view.upsert(StakeRecord {
            id: stake,
            owner: key.address(),
            cluster: CLUSTER,
            role: Role::User,
            node_name: None,
            amount_mist: 1_000_000_000,
            status: StakeStatus::Active,
            token_epoch: 0,
            granted: true,
        });
        tokens.push(token_for(&key, stake));
    }
    let mut config = AuthConfig::new(CLUSTER);
    config.cache_capacity = cache;
    // One signer mints every token: measure verification, not the per-signer budget.
    config.cold_per_signer = RateLimit::unlimited();
    config.bad_signatures_per_stake = bad_signatures;
    (SealAuthenticator::new(config, view), tokens)
}

/// Runs `f` over `tokens` round-robin for at least `budget`; returns operations per on-CPU
/// second.
fn measure(
    rt: &tokio::runtime::Runtime,
    auth: &SealAuthenticator<Arc<InMemoryStakeView>>,
    tokens: &[String],
    budget: Duration,
) -> f64 {
    rate(budget, tokens.len() as u64, || {
        for t in tokens {
            let id = rt
                .block_on(auth.authenticate_at(t, NOW + 1))
                .expect("valid token");
            black_box(id);
        }
    })
}

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

/// Like [`measure`] for forged tokens: each must be refused with one of `reasons`. Returns
/// refusals per second and the share of the first reason.
fn measure_refused(
    rt: &tokio::runtime::Runtime,
    auth: &Auth,
    tokens: &[String],
    reasons: &[&str],
    budget: Duration,
) -> (f64, f64) {
    let (mut first, mut all) = (0u64, 0u64);
    let per_s = rate(budget, tokens.len() as u64, || {
        for t in tokens {
            let err = rt
                .block_on(auth.authenticate_at(t, NOW + 1))
                .expect_err("forged token refused");
            assert!(reasons.contains(&err.reason()), "{err}");
            first += u64::from(err.reason() == reasons[0]);
            all += 1;
            black_box(err);
        }
    });
    (per_s, first as f64 / all as f64)
}

/// `token` with one signature character changed: the key intact, the signature broken.
fn corrupt_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("segments");
    let mut sig = sig.to_owned().into_bytes();
    sig[20] = if sig[20] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(sig).expect("ascii"))
}

/// The ed25519 floor on this CPU: the pieces of one `verify_strict`, measured bare (best of
/// `rounds`).
fn floor(rounds: u32, budget: Duration, sig_only: f64) {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signer, SigningKey};

    println!();
    println!(
        "ed25519 floor (curve25519-dalek 4.1; avx2 detected: {})",
        std::arch::is_x86_feature_detected!("avx2")
    );
    // Scalars like a verification's (a hash and a signature's s): full width, random digits.
    let wide = |seed: u8| {
        let mut bytes = [0u8; 64];
        let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Scalar::from_bytes_mod_order_wide(&bytes)
    };
    let (a, b) = (wide(1), wide(2));
    let point = ED25519_BASEPOINT_POINT * wide(3);
    let compressed: CompressedEdwardsY = point.compress();
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [0x42u8; 32]; // Sui signs a 32-byte BLAKE2b digest of the message
    let signature = key.sign(&message);
    let verifying = key.verifying_key();
    let rows: [(&str, f64); 5] = [
        (
            "double-scalar mul aA+bB (vartime)",
            best_rate(rounds, budget, 1, || {
                black_box(EdwardsPoint::vartime_double_scalar_mul_basepoint(
                    black_box(&a),
                    black_box(&point),
                    black_box(&b),
                ));
            }),
        ),
        (
            "point decompression",
            best_rate(rounds, budget, 1, || {
                black_box(black_box(&compressed).decompress());
            }),
        ),
        (
            "point compression",
            best_rate(rounds, budget, 1, || {
                black_box(black_box(&point).compress());
            }),
        ),
        (
            "ed25519-dalek verify_strict (key parsed)",
            best_rate(rounds, budget, 1, || {
                black_box(verifying.verify_strict(black_box(&message), black_box(&signature)))
                    .expect("valid");
            }),
        ),
        (
            "ed25519-dalek key parse + verify_strict",
            best_rate(rounds, budget, 1, || {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(black_box(verifying.as_bytes()))
                    .expect("key");
                black_box(vk.verify_strict(black_box(&message), black_box(&signature)))
                    .expect("valid");
            }),
        ),
    ];
    let mul = rows[0].1;
    for (what, per_s) in rows {
        println!(
            "  {what:<42} {per_s:>9.0}/s {:>7.1} us  {:>5.2}x the mul",
            1e6 / per_s,
            mul / per_s
        );
    }
    println!(
        "  Seal signature check (sui-crypto, above)   {sig_only:>9.0}/s {:>7.1} us  {:>5.2}x the mul",
        1e6 / sig_only,
        mul / sig_only
    );
}

/// Forged ed25519 tokens against genuine cold ones, through the authenticator.
fn forged(rt: &tokio::runtime::Runtime, budget: Duration) {
    const N: usize = 512;
    println!();
    println!("Forged ed25519 tokens, refusals/s (cache of 1, {N} records of one owner)");
    let (auth, genuine) = setup(Scheme::Ed25519, N, 1);
    let cold = measure(rt, &auth, &genuine, budget);
    let key = WalletKey::generate(Scheme::Ed25519);
    let unknown: Vec<String> = (N..2 * N).map(|i| token_for(&key, stake_id(i))).collect();
    let wrong_owner: Vec<String> = (0..N).map(|i| token_for(&key, stake_id(i))).collect();
    let bad_signature: Vec<String> = genuine.iter().map(|t| corrupt_signature(t)).collect();
    let mut rows = vec![
        ("genuine, cold (baseline)", cold),
        (
            "unknown stake",
            measure_refused(rt, &auth, &unknown, &["unknown_stake"], budget).0,
        ),
        (
            "wrong owner",
            measure_refused(rt, &auth, &wrong_owner, &["not_owner"], budget).0,
        ),
        (
            "bad signature, right owner, unmetered",
            measure_refused(rt, &auth, &bad_signature, &["bad_signature"], budget).0,
        ),
    ];
    // With a per-stake budget (off by default; 5/s, burst 20 here): spend it first, then
    // measure the refusals.
    let limit = nautilus_master::RateLimit::new(5.0, 20.0);
    let (metered, genuine) = setup_with(Scheme::Ed25519, N, 1, limit);
    let bad_signature: Vec<String> = genuine.iter().map(|t| corrupt_signature(t)).collect();
    for _ in 0..limit.burst as usize {
        for t in &bad_signature {
            black_box(rt.block_on(metered.authenticate_at(t, NOW + 1))).expect_err("forged");
        }
    }
    let (spent, throttled) = measure_refused(
        rt,
        &metered,
        &bad_signature,
        &["throttled", "bad_signature"],
        budget,
    );
    rows.push(("bad signature, right owner, budget spent", spent));
    for (what, per_s) in rows {
        println!(
            "  {what:<42} {per_s:>10.0}/s {:>7.2} us  {:>7.1}x genuine cold",
            1e6 / per_s,
            per_s / cold
        );
    }
    println!(
        "  (budget spent: {:.1}% refused before the signature; it refills at {}/s per stake, so {N} \
         stakes still let {:.0} forged verifications/s through)",
        100.0 * throttled,
        limit.per_second,
        N as f64 * limit.per_second
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    if std::env::args().any(|a| a == "--cold-only") {
        // For `perf record`: the ed25519 cold path alone (docs/performance.md, profile table).
        let (auth, tokens) = setup(Scheme::Ed25519, 512, 1);
        let cold = measure(&rt, &auth, &tokens, budget * 3);
        println!("ed25519 cold: {cold:.0} tokens/s");
        return;
    }
    println!("Seal authentication, one core (current-thread runtime), in-memory StakeView");
    println!("(rates per second of this thread's on-CPU time: other load does not count)");
    println!(
        "{:<10} {:>16} {:>18} {:>14} {:>14}",
        "scheme", "cold tokens/s", "cached tokens/s", "cold/10k", "cached/10k"
    );
    let mut ed25519_sig_only = f64::NAN;
    for scheme in [Scheme::Ed25519, Scheme::Secp256k1, Scheme::Secp256r1] {
        // Cold: every token is distinct and the cache holds one entry, so each call misses.
        let (auth, tokens) = setup(scheme, 512, 1);
        let cold = measure(&rt, &auth, &tokens, budget);
        // Cached: the same tokens, all resident.
        let (auth, tokens) = setup(scheme, 512, 1024);
        for t in &tokens {
            rt.block_on(auth.authenticate_at(t, NOW)).expect("warm");
        }
        let cached = measure(&rt, &auth, &tokens, budget);
        assert_eq!(auth.cache_stats().entries, 512);
        println!(
            "{:<10} {:>16.0} {:>18.0} {:>13.2}x {:>13.1}x",
            scheme.as_str(),
            cold,
            cached,
            cold / PROTOTYPE_CLAIM,
            cached / PROTOTYPE_CLAIM
        );
        // Floor: parse + signature verification alone, no authenticator (the crypto cost).
        let parsed: Vec<_> = tokens
            .iter()
            .map(|t| daas_seal::SealToken::parse(t).expect("parse"))
            .collect();
        let sig_only = rate(budget, parsed.len() as u64, || {
            for p in &parsed {
                black_box(p.verify_signature()).expect("valid");
            }
        });
        println!(
            "{:<10} signature verification alone: {:.0}/s (authenticator cold path = {:.0}% of it)",
            "",
            sig_only,
            100.0 * cold / sig_only
        );
        if scheme == Scheme::Ed25519 {
            ed25519_sig_only = sig_only;
            println!(
                "{:<10} goal ratios: cold {:.2} of 50,000/s, cached {:.2} of 2,000,000/s; cached/cold {:.1}x",
                "",
                cold / 50_000.0,
                cached / 2_000_000.0,
                cached / cold
            );
        }
    }
    floor(if quick { 1 } else { 3 }, budget, ed25519_sig_only);
    forged(&rt, budget);
    println!();
    println!("Batch verification: cargo bench -p daas-seal --bench ed25519_batch");
}
