//! Every way a token can be refused, through one `check` helper, plus the cache rules.

use std::sync::Arc;

use daas_seal::{Claims, NodeName, Role, mint};
use daas_wallet::{Scheme, WalletKey};

use super::*;

const CLUSTER: Address = Address::new([0xc1; 32]);
const OTHER_CLUSTER: Address = Address::new([0xc2; 32]);
const NOW: u64 = 1_790_000_000_000;
const HOUR: u64 = 3_600_000;

struct Fixture {
    auth: SealAuthenticator<Arc<InMemoryStakeView>>,
    view: Arc<InMemoryStakeView>,
    key: WalletKey,
    stake: Address,
}

fn fixture_with_role(role: Role) -> Fixture {
    let view = Arc::new(InMemoryStakeView::default());
    let key = WalletKey::generate(Scheme::Ed25519);
    let stake = Address::new([0x5e; 32]);
    view.upsert(StakeRecord {
        id: stake,
        owner: key.address(),
        cluster: CLUSTER,
        role,
        node_name: (role == Role::Worker).then(|| "worker-1".to_owned()),
        amount_mist: 20_000_000_000,
        status: StakeStatus::Active,
        token_epoch: 2,
        granted: true,
    });
    Fixture {
        auth: SealAuthenticator::new(AuthConfig::new(CLUSTER), view.clone()),
        view,
        key,
        stake,
    }
}

fn fixture() -> Fixture {
    fixture_with_role(Role::User)
}

impl Fixture {
    fn claims(&self) -> daas_seal::ClaimsBuilder {
        Claims::builder(CLUSTER, self.key.address(), self.stake, Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce()
    }

    fn token(&self, b: daas_seal::ClaimsBuilder) -> String {
        mint(self.key.keypair(), b.build().expect("claims"))
            .expect("mint")
            .into_string()
    }

    fn good(&self) -> String {
        self.token(self.claims())
    }
}

/// Replaces the signature of `token` with `signer`'s signature over the same payload.
fn spliced_by(token: &str, signer: &WalletKey) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use sui_crypto::SuiSigner;
    let payload = SealToken::parse(token).expect("parse").payload().to_vec();
    let sig = signer
        .keypair()
        .sign_personal_message(&sui_sdk_types::PersonalMessage(std::borrow::Cow::Borrowed(
            &payload,
        )))
        .expect("sign");
    format!(
        "k3sdaas.{}.{}",
        Base64UrlUnpadded::encode_string(&payload),
        Base64UrlUnpadded::encode_string(&sig.to_bytes())
    )
}

fn tamper_last_payload_byte(token: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let mut parts = token.split('.');
    let (_, payload, sig) = (
        parts.next(),
        parts.next().expect("payload"),
        parts.next().expect("sig"),
    );
    let mut bytes = Base64UrlUnpadded::decode_vec(payload).expect("b64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    format!("k3sdaas.{}.{sig}", Base64UrlUnpadded::encode_string(&bytes))
}

async fn check(f: &Fixture, token: &str, now: u64, expected: Result<(), AuthError>) {
    let got = f.auth.authenticate_at(token, now).await.map(|_| ());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn accepts_and_maps_identity() {
    let f = fixture();
    let id = f
        .auth
        .authenticate_at(&f.good(), NOW + 1)
        .await
        .expect("valid");
    assert_eq!(id.username, format!("sui:{}", f.key.address()));
    assert_eq!(
        id.groups,
        vec![
            "k3s-daas:user".to_owned(),
            "system:authenticated".to_owned()
        ]
    );
    assert_eq!(id.uid, f.stake.to_string());
    assert_eq!(id.extra[EXTRA_STAKE], vec![f.stake.to_string()]);
    assert_eq!(id.role, Role::User);
}

#[tokio::test]
async fn offline_rejections() {
    let f = fixture();
    let good = f.good();
    let rules = TimeRules::default();
    // expired / not yet valid
    check(
        &f,
        &good,
        NOW + HOUR + rules.clock_skew_ms,
        Err(ClaimsError::Expired.into()),
    )
    .await;
    check(
        &f,
        &good,
        NOW - rules.clock_skew_ms - 1,
        Err(ClaimsError::NotYetValid.into()),
    )
    .await;
    // wrong audience
    let foreign = f.token(
        Claims::builder(OTHER_CLUSTER, f.key.address(), f.stake, Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    check(&f, &foreign, NOW, Err(ClaimsError::WrongAudience.into())).await;
    // lifetime beyond the maximum
    let long = f.token(f.claims().lifetime(NOW, 25 * HOUR));
    check(
        &f,
        &long,
        NOW,
        Err(ClaimsError::LifetimeTooLong {
            lifetime_ms: 25 * HOUR,
            max_ms: 24 * HOUR,
        }
        .into()),
    )
    .await;
    // forged signature: flip a character inside the signature segment
    let (head, sig) = good.rsplit_once('.').expect("segments");
    let mut sig = sig.to_owned().into_bytes();
    sig[20] = if sig[20] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(sig).expect("ascii"));
    check(&f, &forged, NOW, Err(SignatureError::BadSignature.into())).await;
    // signed by a different key than the claimed signer (a valid signature over this payload)
    check(
        &f,
        &spliced_by(&good, &WalletKey::generate(Scheme::Ed25519)),
        NOW,
        Err(SignatureError::SignerMismatch.into()),
    )
    .await;
    // another key's signature over another payload: refused on the key, before the signature
    let other = WalletKey::generate(Scheme::Ed25519);
    let theirs = mint(
        other.keypair(),
        Claims::builder(CLUSTER, other.address(), f.stake, Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce()
            .build()
            .expect("claims"),
    )
    .expect("mint");
    let spliced = format!(
        "{}.{}",
        good.rsplit_once('.').expect("segments").0,
        theirs.as_str().rsplit_once('.').expect("segments").1
    );
    check(
        &f,
        &spliced,
        NOW,
        Err(SignatureError::SignerMismatch.into()),
    )
    .await;
    // tampered payload byte: the last nonce byte, so the payload still decodes and only the
    // signature can catch it
    check(
        &f,
        &tamper_last_payload_byte(&good),
        NOW,
        Err(SignatureError::BadSignature.into()),
    )
    .await;
    // truncated, oversized, wrong prefix, wrong version
    check(
        &f,
        &good[..good.len() - 10],
        NOW,
        Err(ParseError::MalformedSignature.into()),
    )
    .await;
    check(
        &f,
        &good[..60],
        NOW,
        Err(ParseError::WrongSegmentCount.into()),
    )
    .await;
    let huge = "k".repeat(5000);
    check(
        &f,
        &huge,
        NOW,
        Err(ParseError::TooLong {
            len: 5000,
            max: 4096,
        }
        .into()),
    )
    .await;
    check(
        &f,
        &good.replacen("k3sdaas", "seal", 1),
        NOW,
        Err(ParseError::WrongPrefix.into()),
    )
    .await;
    // version byte 1 → 2: byte 7 of the payload is in base64 chars 9..12 ("azNzZGFhcwH…")
    let v2 = good.replacen("k3sdaas.azNzZGFhcwH", "k3sdaas.azNzZGFhcwL", 1);
    check(&f, &v2, NOW, Err(ParseError::UnsupportedVersion(2).into())).await;
    check(&f, "", NOW, Err(ParseError::WrongPrefix.into())).await;
    check(&f, "Bearer", NOW, Err(ParseError::WrongPrefix.into())).await;
    assert_eq!(f.auth.cache_stats().entries, 0, "failures are never cached");
}

#[tokio::test]
async fn on_chain_rejections() {
    let f = fixture();
    // unknown stake
    let unknown = f.token(
        Claims::builder(CLUSTER, f.key.address(), Address::new([9; 32]), Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    check(&f, &unknown, NOW, Err(AuthError::UnknownStake)).await;
    // role mismatch: record is user, token says admin
    let admin = f.token(
        Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Admin)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    check(&f, &admin, NOW, Err(AuthError::RoleMismatch)).await;
    // revoked epoch (token older than the record) and a future epoch
    check(
        &f,
        &f.token(f.claims().token_epoch(1)),
        NOW,
        Err(AuthError::Revoked {
            token: 1,
            record: 2,
        }),
    )
    .await;
    check(
        &f,
        &f.token(f.claims().token_epoch(3)),
        NOW,
        Err(AuthError::Revoked {
            token: 3,
            record: 2,
        }),
    )
    .await;
    // below role minimum
    f.view.set_minimum(Role::User, 30_000_000_000);
    check(
        &f,
        &f.good(),
        NOW,
        Err(AuthError::BelowMinimum {
            amount_mist: 20_000_000_000,
            minimum_mist: 30_000_000_000,
        }),
    )
    .await;
    f.view.set_minimum(Role::User, 500_000_000);
    // record in another cluster
    f.view.update(&f.stake, |r| r.cluster = OTHER_CLUSTER);
    check(&f, &f.good(), NOW, Err(AuthError::WrongCluster)).await;
    f.view.update(&f.stake, |r| r.cluster = CLUSTER);
    // record owned by somebody else
    f.view.update(&f.stake, |r| r.owner = Address::new([1; 32]));
    check(&f, &f.good(), NOW, Err(AuthError::NotStakeOwner)).await;
    f.view.update(&f.stake, |r| r.owner = f.key.address());
    // unbonding / slashed
    for status in [StakeStatus::Unbonding, StakeStatus::Slashed] {
        f.view.update(&f.stake, |r| r.status = status);
        check(&f, &f.good(), NOW, Err(AuthError::StakeInactive(status))).await;
    }
    f.view.update(&f.stake, |r| r.status = StakeStatus::Active);
    check(&f, &f.good(), NOW, Ok(())).await;
}

/// `token` with one signature byte flipped: the key (and so the signer check) intact, the
/// signature unable to verify.
fn corrupt_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("segments");
    let mut sig = sig.to_owned().into_bytes();
    sig[20] = if sig[20] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(sig).expect("ascii"))
}

/// Every refusal made before the signature is checked: the same token with a signature that
/// cannot verify gets the same answer as with its genuine one, so the signature was not what
/// decided it. Nothing is looked up, nothing charged to the stake's failure budget.
#[tokio::test]
async fn tokens_that_cannot_match_are_refused_before_their_signature() {
    let f = fixture();
    let refused_early = |token: String, expected: AuthError| {
        let f = &f;
        async move {
            let lookups = f.view.lookups();
            check(f, &token, NOW, Err(expected.clone())).await;
            check(f, &corrupt_signature(&token), NOW, Err(expected)).await;
            assert_eq!(f.view.lookups(), lookups, "refused without a lookup");
        }
    };
    // unknown stake (the in-memory view is authoritative)
    refused_early(
        f.token(
            Claims::builder(CLUSTER, f.key.address(), Address::new([9; 32]), Role::User)
                .lifetime(NOW, HOUR)
                .token_epoch(2)
                .random_nonce(),
        ),
        AuthError::UnknownStake,
    )
    .await;
    // wrong owner: a key of its own, naming someone else's record
    let stranger = WalletKey::generate(Scheme::Ed25519);
    let foreign = mint(
        stranger.keypair(),
        Claims::builder(CLUSTER, stranger.address(), f.stake, Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce()
            .build()
            .expect("claims"),
    )
    .expect("mint")
    .into_string();
    refused_early(foreign, AuthError::NotStakeOwner).await;
    // role the record does not hold
    refused_early(
        f.token(
            Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Admin)
                .lifetime(NOW, HOUR)
                .token_epoch(2)
                .random_nonce(),
        ),
        AuthError::RoleMismatch,
    )
    .await;
    // record in another cluster, inactive, without the cluster's grant
    f.view.update(&f.stake, |r| r.cluster = OTHER_CLUSTER);
    refused_early(f.good(), AuthError::WrongCluster).await;
    f.view.update(&f.stake, |r| r.cluster = CLUSTER);
    f.view.update(&f.stake, |r| r.status = StakeStatus::Slashed);
    refused_early(f.good(), AuthError::StakeInactive(StakeStatus::Slashed)).await;
    f.view.update(&f.stake, |r| r.status = StakeStatus::Active);
    f.view.update(&f.stake, |r| r.granted = false);
    refused_early(f.good(), AuthError::NotGranted).await;
    f.view.update(&f.stake, |r| r.granted = true);
    // a key that does not hash to the signer, whatever the signature
    refused_early(
        spliced_by(&f.good(), &WalletKey::generate(Scheme::Ed25519)),
        SignatureError::SignerMismatch.into(),
    )
    .await;

    // None of these spent the stake's failure budget, and the genuine token still passes.
    assert_eq!(
        f.auth.bad_signatures.check(&f.stake, Instant::now()),
        Ok(())
    );
    check(&f, &f.good(), NOW, Ok(())).await;
}

#[tokio::test]
async fn worker_node_names_and_admin_pins_are_refused_before_the_signature() {
    let f = fixture_with_role(Role::Worker);
    let worker = f.token(
        Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Worker)
            .node_name(NodeName::new("worker-2").expect("label"))
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    check(&f, &worker, NOW, Err(AuthError::NodeNameMismatch)).await;
    check(
        &f,
        &corrupt_signature(&worker),
        NOW,
        Err(AuthError::NodeNameMismatch),
    )
    .await;

    let f = fixture_with_role(Role::Admin);
    let auth = SealAuthenticator::new(
        AuthConfig {
            admin_allowlist: Some([Address::new([7; 32])].into_iter().collect()),
            ..AuthConfig::new(CLUSTER)
        },
        f.view.clone(),
    );
    let admin = f.token(
        Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Admin)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    for token in [admin.clone(), corrupt_signature(&admin)] {
        assert_eq!(
            auth.authenticate_at(&token, NOW).await.unwrap_err(),
            AuthError::AdminNotAllowed
        );
    }
}

/// A forged token that copies everything public about a record still fails its signature;
/// each failure is charged to the stake it names, and a spent budget refuses further tokens
/// naming that stake before their signature is checked. Other stakes are untouched, and a
/// verdict already cached keeps working.
#[tokio::test]
async fn failed_signatures_are_metered_per_claimed_stake() {
    let f = fixture();
    let auth = SealAuthenticator::new(
        AuthConfig {
            // Refills one failure per 1000 s: nothing refills during the test.
            bad_signatures_per_stake: RateLimit::new(0.001, 3.0),
            ..AuthConfig::new(CLUSTER)
        },
        f.view.clone(),
    );
    let cached = f.good();
    auth.authenticate_at(&cached, NOW).await.expect("genuine");
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate_at(&corrupt_signature(&f.good()), NOW)
                .await
                .unwrap_err(),
            SignatureError::BadSignature.into()
        );
    }
    // Spent: forged and genuine new tokens naming this stake wait; nothing was looked up.
    let lookups = f.view.lookups();
    for token in [corrupt_signature(&f.good()), f.good()] {
        let err = auth.authenticate_at(&token, NOW).await.unwrap_err();
        assert_eq!(err.reason(), "throttled");
        assert!(err.retry_after().is_some_and(|d| d.as_secs() >= 1));
    }
    assert_eq!(f.view.lookups(), lookups);
    auth.authenticate_at(&cached, NOW + 1)
        .await
        .expect("a cached verdict is not metered");

    // Another stake of the same owner is not affected.
    let second = Address::new([0x5f; 32]);
    f.view.upsert(StakeRecord {
        id: second,
        owner: f.key.address(),
        cluster: CLUSTER,
        role: Role::User,
        node_name: None,
        amount_mist: 20_000_000_000,
        status: StakeStatus::Active,
        token_epoch: 2,
        granted: true,
    });
    let other = f.token(
        Claims::builder(CLUSTER, f.key.address(), second, Role::User)
            .lifetime(NOW, HOUR)
            .token_epoch(2)
            .random_nonce(),
    );
    auth.authenticate_at(&other, NOW)
        .await
        .expect("other stake");
}

/// A view that holds no record without I/O (no `known_record`): the checks wait for the
/// signature, as before.
#[tokio::test]
async fn without_a_known_record_the_signature_comes_first() {
    struct Remote(Arc<InMemoryStakeView>);
    impl StakeView for Remote {
        async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
            self.0.stake_record(id).await
        }
        async fn minimum_stake(&self, role: Role) -> Result<u64, StakeViewError> {
            self.0.minimum_stake(role).await
        }
    }
    let f = fixture();
    f.view.update(&f.stake, |r| r.owner = Address::new([1; 32]));
    let auth = SealAuthenticator::new(AuthConfig::new(CLUSTER), Remote(f.view.clone()));
    let token = f.good();
    assert_eq!(
        auth.authenticate_at(&corrupt_signature(&token), NOW)
            .await
            .unwrap_err(),
        SignatureError::BadSignature.into()
    );
    assert_eq!(
        auth.authenticate_at(&token, NOW).await.unwrap_err(),
        AuthError::NotStakeOwner
    );
}

/// L5, C1: an admin token lives at most an hour, and an operator's allow-list binds the admin
/// role to named addresses whatever the chain says.
#[tokio::test]
async fn admin_tokens_are_short_and_may_be_pinned_to_addresses() {
    let f = fixture_with_role(Role::Admin);
    let admin = |ttl| {
        f.token(
            Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Admin)
                .lifetime(NOW, ttl)
                .token_epoch(2)
                .random_nonce(),
        )
    };
    check(&f, &admin(HOUR), NOW, Ok(())).await;
    check(
        &f,
        &admin(HOUR + 1),
        NOW,
        Err(AuthError::AdminLifetime { max_ms: HOUR }),
    )
    .await;

    let pinned = |allowed: Vec<Address>| {
        SealAuthenticator::new(
            AuthConfig {
                admin_allowlist: Some(allowed.into_iter().collect()),
                ..AuthConfig::new(CLUSTER)
            },
            f.view.clone(),
        )
    };
    let token = admin(HOUR);
    let other = pinned(vec![Address::new([7; 32])]);
    assert_eq!(
        other.authenticate_at(&token, NOW).await.unwrap_err(),
        AuthError::AdminNotAllowed
    );
    let listed = pinned(vec![f.key.address()]);
    assert!(listed.authenticate_at(&token, NOW).await.is_ok());
    // The pin concerns the admin role only.
    let user = fixture();
    let users = SealAuthenticator::new(
        AuthConfig {
            admin_allowlist: Some(Default::default()),
            ..AuthConfig::new(CLUSTER)
        },
        user.view.clone(),
    );
    assert!(users.authenticate_at(&user.good(), NOW).await.is_ok());
}

#[tokio::test]
async fn worker_node_name_must_match_record() {
    let f = fixture_with_role(Role::Worker);
    let worker = |name: &str| {
        f.token(
            Claims::builder(CLUSTER, f.key.address(), f.stake, Role::Worker)
                .node_name(NodeName::new(name).expect("label"))
                .lifetime(NOW, HOUR)
                .token_epoch(2)
                .random_nonce(),
        )
    };
    check(&f, &worker("worker-1"), NOW, Ok(())).await;
    check(
        &f,
        &worker("worker-2"),
        NOW,
        Err(AuthError::NodeNameMismatch),
    )
    .await;
}

#[tokio::test]
async fn cache_hit_expiry_and_eviction_by_stake() {
    let f = fixture();
    let token = f.good();
    f.auth.authenticate_at(&token, NOW).await.expect("cold");
    assert_eq!(
        f.auth.cache_stats(),
        CacheStats {
            hits: 0,
            misses: 1,
            entries: 1
        }
    );
    f.auth
        .authenticate_at(&token, NOW + 1)
        .await
        .expect("cached");
    assert_eq!(f.auth.cache_stats().hits, 1);

    // The cache answers without the view: remove the record, still accepted until evicted.
    let record = f.view.remove(&f.stake).expect("record");
    f.auth
        .authenticate_at(&token, NOW + 2)
        .await
        .expect("served from cache");
    // Revocation: the chain follower evicts by stake id; the next lookup goes to the view.
    assert_eq!(f.auth.evict_stake(&f.stake), 1);
    assert_eq!(f.auth.evict_stake(&f.stake), 0);
    check(&f, &token, NOW + 3, Err(AuthError::UnknownStake)).await;
    // Revoke tokens by epoch bump: old token refused after eviction, new-epoch token accepted.
    f.view.upsert(StakeRecord {
        token_epoch: 3,
        granted: true,
        ..record
    });
    f.auth.evict_stake(&f.stake);
    check(
        &f,
        &token,
        NOW + 4,
        Err(AuthError::Revoked {
            token: 2,
            record: 3,
        }),
    )
    .await;
    check(&f, &f.token(f.claims().token_epoch(3)), NOW + 5, Ok(())).await;

    // Expiry: a cached entry never outlives its token.
    let expired_at = NOW + HOUR + TimeRules::default().clock_skew_ms;
    let fresh = f.token(f.claims().token_epoch(3));
    f.auth.authenticate_at(&fresh, NOW).await.expect("cold");
    let before = f.auth.cache_stats().entries;
    check(&f, &fresh, expired_at, Err(ClaimsError::Expired.into())).await;
    assert_eq!(
        f.auth.cache_stats().entries,
        before - 1,
        "expired entry dropped"
    );
}

#[tokio::test]
async fn cache_is_bounded_and_eviction_is_per_stake() {
    let view = Arc::new(InMemoryStakeView::default());
    let mut config = AuthConfig::new(CLUSTER);
    config.cache_capacity = 4;
    let auth = SealAuthenticator::new(config, view.clone());
    let mut tokens = Vec::new();
    for i in 0..6u8 {
        let key = WalletKey::generate(Scheme::Ed25519);
        let stake = Address::new([i; 32]);
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
        let t = mint(
            key.keypair(),
            Claims::builder(CLUSTER, key.address(), stake, Role::User)
                .lifetime(NOW, HOUR)
                .random_nonce()
                .build()
                .expect("claims"),
        )
        .expect("mint");
        auth.authenticate_at(t.as_str(), NOW).await.expect("valid");
        tokens.push((stake, t));
    }
    assert_eq!(auth.cache_stats().entries, 4);
    // the two oldest were evicted by LRU; evicting one of the newest removes exactly one
    assert_eq!(auth.evict_stake(&tokens[0].0), 0);
    assert_eq!(auth.evict_stake(&tokens[5].0), 1);
    assert_eq!(auth.cache_stats().entries, 3);
}

/// Stands in for a chain view whose RPC endpoint is down.
struct Unreachable;

impl StakeView for Unreachable {
    async fn stake_record(&self, _: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        Err(StakeViewError("connection refused".into()))
    }
    async fn minimum_stake(&self, _: Role) -> Result<u64, StakeViewError> {
        Err(StakeViewError("connection refused".into()))
    }
}

#[tokio::test]
async fn unavailable_view_is_not_a_credential_failure() {
    let f = fixture();
    let auth = SealAuthenticator::new(AuthConfig::new(CLUSTER), Unreachable);
    let err = auth
        .authenticate_at(&f.good(), NOW)
        .await
        .expect_err("view down");
    assert!(err.is_unavailable());
    assert_eq!(err.reason(), "stake_view_unavailable");
    assert_eq!(auth.cache_stats().entries, 0);
}

#[tokio::test]
async fn errors_never_contain_the_token() {
    let f = fixture();
    let good = f.good();
    let signature = good
        .rsplit('.')
        .next()
        .expect("signature segment")
        .to_owned();
    let payload = good.split('.').nth(1).expect("payload segment").to_owned();
    let cases = [
        (good.clone(), NOW + 100 * HOUR),          // expired
        (tamper_last_payload_byte(&good), NOW),    // bad signature
        (f.token(f.claims().token_epoch(9)), NOW), // revoked
        (format!("{good}.x"), NOW),                // malformed
    ];
    for (token, now) in cases {
        let err = f
            .auth
            .authenticate_at(&token, now)
            .await
            .expect_err("refused");
        let text = format!("{err} {err:?} {}", err.reason());
        assert!(!text.contains(&signature[..24]), "{text}");
        assert!(!text.contains(&payload[20..60]), "{text}");
    }
}

#[tokio::test]
async fn raising_a_role_minimum_takes_effect_after_evict_all() {
    let f = fixture();
    let token = f.good();
    check(&f, &token, NOW, Ok(())).await;
    f.view.set_minimum(Role::User, 50_000_000_000);
    check(&f, &token, NOW, Ok(())).await; // still cached
    assert_eq!(f.auth.evict_all(), 1);
    check(
        &f,
        &token,
        NOW,
        Err(AuthError::BelowMinimum {
            amount_mist: 20_000_000_000,
            minimum_mist: 50_000_000_000,
        }),
    )
    .await;
}

/// A view whose freshness the test switches (a chain view whose follower drops out).
struct Switchable(Arc<InMemoryStakeView>, std::sync::atomic::AtomicBool);

impl StakeView for Switchable {
    async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        self.0.stake_record(id).await
    }
    async fn minimum_stake(&self, role: Role) -> Result<u64, StakeViewError> {
        self.0.minimum_stake(role).await
    }
    fn is_fresh(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn cached_verdicts_are_neither_used_nor_added_while_the_view_is_not_fresh() {
    use std::sync::atomic::Ordering;
    let f = fixture();
    let view = Arc::new(Switchable(f.view.clone(), true.into()));
    let auth = SealAuthenticator::new(AuthConfig::new(CLUSTER), view.clone());
    let token = f.good();
    auth.authenticate_at(&token, NOW).await.expect("accepted");
    assert_eq!(auth.cache_stats().entries, 1, "fresh: cached");

    // The follower drops out, and meanwhile the chain revokes: the cached verdict must not
    // be used — the very next request sees the chain.
    view.1.store(false, Ordering::SeqCst);
    f.view.update(&f.stake, |r| r.token_epoch = 3);
    assert_eq!(
        auth.authenticate_at(&token, NOW).await.map(|_| ()),
        Err(AuthError::Revoked {
            token: 2,
            record: 3
        })
    );
    let fresh_token = f.token(f.claims().token_epoch(3));
    let hits = auth.cache_stats().hits;
    auth.authenticate_at(&fresh_token, NOW)
        .await
        .expect("accepted");
    auth.authenticate_at(&fresh_token, NOW)
        .await
        .expect("accepted");
    assert_eq!(
        auth.cache_stats().hits,
        hits,
        "no cache hits while not fresh"
    );
    assert_eq!(
        auth.cache_stats().entries,
        1,
        "nothing added while not fresh"
    );
}

// ------------------------------------------------------------------------------------------------
// Live sessions: re-checks, retries and the grace after losing the chain (time paused).

/// A view that answers from `inner` or, while `down`, is unavailable.
struct Flaky {
    inner: Arc<InMemoryStakeView>,
    down: std::sync::atomic::AtomicBool,
}

impl StakeView for Flaky {
    async fn stake_record(&self, id: Address) -> Result<Option<StakeRecord>, StakeViewError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StakeViewError("chain endpoint unreachable".into()));
        }
        self.inner.stake_record(id).await
    }
    async fn minimum_stake(&self, role: Role) -> Result<u64, StakeViewError> {
        self.inner.minimum_stake(role).await
    }
}

fn flaky() -> (Arc<SealAuthenticator<Arc<Flaky>>>, Arc<Flaky>, Fixture) {
    let f = fixture();
    let view = Arc::new(Flaky {
        inner: f.view.clone(),
        down: false.into(),
    });
    let auth = Arc::new(SealAuthenticator::new(
        AuthConfig::new(CLUSTER),
        view.clone(),
    ));
    (auth, view, f)
}

async fn session_of(auth: &Arc<SealAuthenticator<Arc<Flaky>>>, f: &Fixture) -> Session {
    let identity = auth.authenticate_at(&f.good(), NOW).await.expect("valid");
    auth.sessions()
        .open(identity)
        .expect("a stake-bound identity")
}

/// Losing the chain ends every live session after the grace, and no new one may start until the
/// chain is back; regaining it within the grace keeps them.
#[tokio::test(start_paused = true)]
async fn sessions_end_after_the_grace_when_the_chain_is_lost() {
    let (auth, _, f) = flaky();
    let grace = auth.config().session_grace;
    let kept = session_of(&auth, &f).await;
    auth.chain_lost();
    tokio::time::sleep(grace / 2).await;
    auth.chain_lost(); // a reconnect attempt failing again does not move the deadline
    auth.chain_regained();
    tokio::time::sleep(grace * 2).await;
    assert!(!kept.is_cancelled(), "regained within the grace");
    assert!(auth.sessions_allowed());

    auth.chain_lost();
    tokio::time::sleep(grace / 2).await;
    auth.chain_lost();
    tokio::time::sleep(grace / 2 + Duration::from_millis(10)).await;
    assert!(kept.is_cancelled(), "the grace counts from the first loss");
    assert!(!auth.sessions_allowed());
    auth.chain_regained();
    assert!(auth.sessions_allowed());
}

/// A re-check that cannot reach the chain is retried for a few seconds, then ends the session; a
/// re-check that reaches it keeps a valid session and ends a revoked one.
#[tokio::test(start_paused = true)]
async fn a_recheck_that_cannot_reach_the_chain_ends_the_session() {
    let (auth, view, f) = flaky();
    let session = session_of(&auth, &f).await;
    auth.revalidate(Scope::All);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!session.is_cancelled(), "still valid");

    view.down.store(true, std::sync::atomic::Ordering::SeqCst);
    auth.revalidate(Scope::Stake(f.stake));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!session.is_cancelled(), "still retrying");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(session.is_cancelled(), "nobody could vouch for it");

    view.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let session = session_of(&auth, &f).await;
    f.view.update(&f.stake, |r| r.token_epoch += 1);
    auth.revalidate(Scope::Owner(f.key.address()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(session.is_cancelled(), "revoked");
}
