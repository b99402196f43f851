//! Seal authentication throughput on one core: cold (parse + claims + signature + StakeView
//! lookup + cache insert) and cached (SHA-256 + LRU hit), per signature scheme.
//!
//! Run: `cargo bench -p nautilus-master --bench authn` (add `-- --quick` for a short run).
//! Prints tokens/s and the ratio to the earlier prototype's claimed 10,000 verifications/s and
//! to this goals (50,000 cold, 2,000,000 cached). See docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::auth::{
    AuthConfig, InMemoryStakeView, SealAuthenticator, StakeRecord, StakeStatus,
};

const CLUSTER: Address = Address::new([0xc1; 32]);
const NOW: u64 = 1_790_000_000_000;
const PROTOTYPE_CLAIM: f64 = 10_000.0;

fn setup(
    scheme: Scheme,
    n: usize,
    cache: usize,
) -> (SealAuthenticator<Arc<InMemoryStakeView>>, Vec<String>) {
    let view = Arc::new(InMemoryStakeView::default());
    let mut tokens = Vec::with_capacity(n);
    let key = WalletKey::generate(scheme);
    for i in 0..n {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let stake = Address::new(id);
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
        let claims = Claims::builder(CLUSTER, key.address(), stake, Role::User)
            .lifetime(NOW, 3_600_000)
            .random_nonce()
            .build()
            .expect("claims");
        tokens.push(mint(key.keypair(), claims).expect("mint").into_string());
    }
    let mut config = AuthConfig::new(CLUSTER);
    config.cache_capacity = cache;
    // One signer mints every token: measure verification, not the per-signer budget.
    config.cold_per_signer = nautilus_master::RateLimit::unlimited();
    (SealAuthenticator::new(config, view), tokens)
}

/// Runs `f` over `tokens` round-robin for at least `budget`; returns operations per second.
fn measure(
    rt: &tokio::runtime::Runtime,
    auth: &SealAuthenticator<Arc<InMemoryStakeView>>,
    tokens: &[String],
    budget: Duration,
) -> f64 {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        for t in tokens {
            let id = rt
                .block_on(auth.authenticate_at(t, NOW + 1))
                .expect("valid token");
            black_box(id);
        }
        ops += tokens.len() as u64;
    }
    ops as f64 / start.elapsed().as_secs_f64()
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
    println!("Seal authentication, one core (current-thread runtime), in-memory StakeView");
    println!(
        "{:<10} {:>16} {:>18} {:>14} {:>14}",
        "scheme", "cold tokens/s", "cached tokens/s", "cold/10k", "cached/10k"
    );
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
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < budget {
            for p in &parsed {
                black_box(p.verify_signature()).expect("valid");
            }
            ops += parsed.len() as u64;
        }
        let sig_only = ops as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<10} signature verification alone: {:.0}/s (authenticator cold path = {:.0}% of it)",
            "",
            sig_only,
            100.0 * cold / sig_only
        );
        if scheme == Scheme::Ed25519 {
            println!(
                "{:<10} goal ratios: cold {:.2} of 50,000/s, cached {:.2} of 2,000,000/s; cached/cold {:.1}x",
                "",
                cold / 50_000.0,
                cached / 2_000_000.0,
                cached / cold
            );
        }
    }
}
