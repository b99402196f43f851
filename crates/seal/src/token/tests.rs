use super::*;
use crate::claims::{Claims, TimeRules};
use sui_crypto::ed25519::Ed25519PrivateKey;
use sui_crypto::secp256k1::Secp256k1PrivateKey;
use sui_crypto::secp256r1::Secp256r1PrivateKey;

const CLUSTER: Address = Address::new([0xc1; 32]);
const STAKE: Address = Address::new([0x5e; 32]);
const NOW: u64 = 1_790_000_000_000;

fn ed25519(seed: u8) -> SimpleKeypair {
    SimpleKeypair::from(Ed25519PrivateKey::new([seed; 32]))
}

fn claims_for(kp: &SimpleKeypair, role: Role) -> Claims {
    let mut b = Claims::builder(CLUSTER, kp.verifying_key().derive_address(), STAKE, role)
        .lifetime(NOW, 3_600_000)
        .token_epoch(3)
        .nonce([7; 16]);
    if role == Role::Worker {
        b = b.node_name(NodeName::new("worker-1").expect("valid"));
    }
    b.build().expect("valid claims")
}

fn token(kp: &SimpleKeypair) -> SealToken {
    mint(kp, claims_for(kp, Role::User)).expect("mint")
}

fn segments(t: &str) -> (String, Vec<u8>, Vec<u8>) {
    let mut it = t.split('.');
    let p = it.next().expect("prefix").to_owned();
    let a = Base64UrlUnpadded::decode_vec(it.next().expect("payload")).expect("b64");
    let b = Base64UrlUnpadded::decode_vec(it.next().expect("sig")).expect("b64");
    (p, a, b)
}

fn assemble(prefix: &str, payload: &[u8], sig: &[u8]) -> String {
    format!(
        "{prefix}.{}.{}",
        Base64UrlUnpadded::encode_string(payload),
        Base64UrlUnpadded::encode_string(sig)
    )
}

#[test]
fn round_trip_all_schemes() {
    let keys = [
        ed25519(1),
        SimpleKeypair::from(Secp256k1PrivateKey::new([2; 32]).expect("k1 key")),
        SimpleKeypair::from(Secp256r1PrivateKey::new([3; 32])),
    ];
    for kp in keys {
        for role in Role::ALL {
            let t = mint(&kp, claims_for(&kp, role)).expect("mint");
            let u = SealToken::parse(t.as_str()).expect("parse");
            assert_eq!(u.claims(), t.claims());
            u.verify_signature().expect("signature");
            let v = u
                .verify(NOW + 1, &CLUSTER, &TimeRules::default())
                .expect("verify");
            assert_eq!(v.claims(), t.claims());
        }
    }
}

fn check_parse(input: &str, expected: ParseError) {
    assert_eq!(
        SealToken::parse(input).map(|_| ()),
        Err(expected),
        "input {input:.60}"
    );
}

#[test]
fn parse_rejections() {
    let kp = ed25519(1);
    let good = token(&kp);
    let (_, payload, sig) = segments(good.as_str());

    check_parse(
        &"k".repeat(MAX_TOKEN_LEN + 1),
        ParseError::TooLong {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN,
        },
    );
    check_parse("", ParseError::WrongPrefix);
    check_parse(&assemble("seal", &payload, &sig), ParseError::WrongPrefix);
    check_parse(
        &assemble("K3SDAAS", &payload, &sig),
        ParseError::WrongPrefix,
    );
    check_parse("k3sdaas", ParseError::WrongSegmentCount);
    check_parse("k3sdaas.abc", ParseError::WrongSegmentCount);
    check_parse(
        &format!("{}.extra", good.as_str()),
        ParseError::WrongSegmentCount,
    );
    // padding, standard alphabet, whitespace: all non-canonical
    let padded = format!(
        "k3sdaas.{}=.{}",
        Base64UrlUnpadded::encode_string(&payload),
        Base64UrlUnpadded::encode_string(&sig)
    );
    check_parse(&padded, ParseError::BadBase64 { segment: "payload" });
    check_parse(
        &good.as_str().replacen('.', ".+/", 1),
        ParseError::BadBase64 { segment: "payload" },
    );
    let bad_sig = format!("{}!", good.as_str());
    check_parse(
        &bad_sig,
        ParseError::BadBase64 {
            segment: "signature",
        },
    );

    // truncated: drop the last byte of payload / signature
    check_parse(
        &assemble(PREFIX, &payload[..payload.len() - 1], &sig),
        ParseError::MalformedPayload,
    );
    check_parse(
        &assemble(PREFIX, &payload, &sig[..sig.len() - 1]),
        ParseError::MalformedSignature,
    );
    check_parse(&assemble(PREFIX, &payload[..5], &sig), ParseError::BadMagic);
    // trailing byte after a valid payload
    let mut longer = payload.clone();
    longer.push(0);
    check_parse(
        &assemble(PREFIX, &longer, &sig),
        ParseError::MalformedPayload,
    );

    let mut wrong_magic = payload.clone();
    wrong_magic[0] ^= 0x20;
    check_parse(&assemble(PREFIX, &wrong_magic, &sig), ParseError::BadMagic);
    let mut v2 = payload.clone();
    v2[PAYLOAD_MAGIC.len()] = 2;
    check_parse(
        &assemble(PREFIX, &v2, &sig),
        ParseError::UnsupportedVersion(2),
    );

    // role byte sits after magic, version and three addresses
    let role_at = PAYLOAD_MAGIC.len() + 1 + 3 * 32;
    let mut role = payload.clone();
    role[role_at] = 9;
    check_parse(&assemble(PREFIX, &role, &sig), ParseError::UnknownRole(9));

    let mut multisig = sig.clone();
    multisig[0] = 0x03;
    check_parse(
        &assemble(PREFIX, &payload, &multisig),
        ParseError::UnsupportedScheme("multisig"),
    );
    let mut zk = sig.clone();
    zk[0] = 0x05;
    check_parse(
        &assemble(PREFIX, &payload, &zk),
        ParseError::UnsupportedScheme("zklogin"),
    );
    check_parse(
        &assemble(PREFIX, &payload, &[0xff]),
        ParseError::MalformedSignature,
    );
    check_parse(
        &assemble(PREFIX, &payload, &[]),
        ParseError::MalformedSignature,
    );
}

#[test]
fn invalid_node_name_in_payload_is_rejected() {
    let kp = ed25519(1);
    let t = mint(&kp, claims_for(&kp, Role::Worker)).expect("mint");
    let (_, mut payload, sig) = segments(t.as_str());
    // "worker-1" → "Worker-1": uppercase is not a DNS label
    let pos = payload
        .windows(8)
        .position(|w| w == b"worker-1")
        .expect("name in payload");
    payload[pos] = b'W';
    check_parse(
        &assemble(PREFIX, &payload, &sig),
        ParseError::InvalidNodeName,
    );
}

#[test]
fn signature_rejections() {
    let kp = ed25519(1);
    let good = token(&kp);
    let (_, payload, sig) = segments(good.as_str());

    // tampered payload byte (the nonce, which keeps the payload well-formed)
    let mut tampered = payload.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let u = SealToken::parse(&assemble(PREFIX, &tampered, &sig)).expect("parses");
    assert_eq!(u.verify_signature(), Err(SignatureError::BadSignature));

    // forged: signature bytes flipped
    let mut forged = sig.clone();
    forged[10] ^= 0x55;
    let u = SealToken::parse(&assemble(PREFIX, &payload, &forged)).expect("parses");
    assert_eq!(u.verify_signature(), Err(SignatureError::BadSignature));

    // a different key signs claims that name the first key's address as signer
    let other = ed25519(2);
    let signature = other
        .sign_personal_message(&PersonalMessage(Cow::Borrowed(&payload)))
        .expect("sign");
    let u = SealToken::parse(&assemble(PREFIX, &payload, &signature.to_bytes())).expect("parses");
    assert_eq!(u.verify_signature(), Err(SignatureError::SignerMismatch));
    assert_eq!(
        u.signature_address(),
        other.verifying_key().derive_address()
    );
}

/// A token whose key does not hash to its `signer` is refused as such before any curve
/// arithmetic: even with signature bytes that could never verify, the answer is SignerMismatch.
#[test]
fn a_foreign_key_is_refused_before_the_signature() {
    let kp = ed25519(1);
    let (_, payload, _) = segments(token(&kp).as_str());
    let other = ed25519(2);
    let mut sig = other
        .sign_personal_message(&PersonalMessage(Cow::Borrowed(&payload)))
        .expect("sign")
        .to_bytes();
    sig[10] ^= 0x55; // no longer a signature of anything
    let u = SealToken::parse(&assemble(PREFIX, &payload, &sig)).expect("parses");
    assert_eq!(u.check_signer(), Err(SignatureError::SignerMismatch));
    assert_eq!(u.verify_signature(), Err(SignatureError::SignerMismatch));
    // The genuine token passes both.
    let u = SealToken::parse(token(&kp).as_str()).expect("parses");
    assert_eq!(u.check_signer(), Ok(()));
    assert_eq!(u.verify_signature(), Ok(()));
}

#[test]
fn mint_refuses_foreign_signer() {
    let kp = ed25519(1);
    let claims = claims_for(&ed25519(2), Role::User);
    assert!(matches!(mint(&kp, claims), Err(MintError::SignerMismatch)));
}

fn check_claims(claims: Claims, now: u64, audience: Address, expected: Result<(), ClaimsError>) {
    assert_eq!(
        claims.check(now, &audience, &TimeRules::default()),
        expected
    );
}

#[test]
fn claim_rules() {
    let kp = ed25519(1);
    let c = claims_for(&kp, Role::User);
    let rules = TimeRules::default();
    check_claims(c.clone(), NOW, CLUSTER, Ok(()));
    check_claims(
        c.clone(),
        NOW,
        Address::new([9; 32]),
        Err(ClaimsError::WrongAudience),
    );
    // expiry, with skew
    let exp = c.expires_at_ms;
    check_claims(c.clone(), exp + rules.clock_skew_ms - 1, CLUSTER, Ok(()));
    check_claims(
        c.clone(),
        exp + rules.clock_skew_ms,
        CLUSTER,
        Err(ClaimsError::Expired),
    );
    // not yet valid, with skew
    check_claims(c.clone(), NOW - rules.clock_skew_ms, CLUSTER, Ok(()));
    check_claims(
        c.clone(),
        NOW - rules.clock_skew_ms - 1,
        CLUSTER,
        Err(ClaimsError::NotYetValid),
    );
    // lifetime
    let mut long = c.clone();
    long.expires_at_ms = long.issued_at_ms + rules.max_lifetime_ms + 1;
    check_claims(
        long,
        NOW,
        CLUSTER,
        Err(ClaimsError::LifetimeTooLong {
            lifetime_ms: rules.max_lifetime_ms + 1,
            max_ms: rules.max_lifetime_ms,
        }),
    );
    let mut empty = c.clone();
    empty.expires_at_ms = empty.issued_at_ms;
    check_claims(empty, NOW, CLUSTER, Err(ClaimsError::EmptyLifetime));
    // shape
    let mut worker = c.clone();
    worker.role = Role::Worker;
    check_claims(worker, NOW, CLUSTER, Err(ClaimsError::MissingNodeName));
    let mut admin = claims_for(&kp, Role::Worker);
    admin.role = Role::Admin;
    check_claims(admin, NOW, CLUSTER, Err(ClaimsError::UnexpectedNodeName));
}

#[test]
fn builder_requires_nonce_and_valid_names() {
    let b = Claims::builder(CLUSTER, CLUSTER, STAKE, Role::User).lifetime(NOW, 1000);
    assert_eq!(b.build(), Err(ClaimsError::MissingNonce));
    for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
        assert_eq!(
            NodeName::new(bad),
            Err(ClaimsError::InvalidNodeName),
            "{bad}"
        );
    }
    for good in ["a", "worker-1", &"a".repeat(63)] {
        assert!(NodeName::new(good).is_ok(), "{good}");
    }
    assert!("operator".parse::<Role>().is_err());
    assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
}

#[test]
fn random_nonces_differ() {
    let a = Claims::builder(CLUSTER, CLUSTER, STAKE, Role::User)
        .lifetime(NOW, 1000)
        .random_nonce()
        .build()
        .expect("claims");
    let b = Claims::builder(CLUSTER, CLUSTER, STAKE, Role::User)
        .lifetime(NOW, 1000)
        .random_nonce()
        .build()
        .expect("claims");
    assert_ne!(a.nonce, b.nonce);
}

#[test]
fn debug_never_prints_the_token() {
    let t = token(&ed25519(1));
    let (_, _, sig) = segments(t.as_str());
    let dbg = format!("{t:?}");
    assert!(!dbg.contains(&Base64UrlUnpadded::encode_string(&sig)));
    assert!(!dbg.contains(t.as_str()));
}

#[test]
fn secp256r1_is_low_s_only() {
    use p256::elliptic_curve::scalar::IsHigh;
    for seed in 1..=40u8 {
        let kp = SimpleKeypair::from(Secp256r1PrivateKey::new([seed; 32]));
        let t = mint(&kp, claims_for(&kp, Role::User)).expect("mint");
        let (_, payload, sig) = segments(t.as_str());
        let ecdsa = p256::ecdsa::Signature::from_slice(&sig[1..65]).expect("r||s");
        assert!(
            !bool::from(ecdsa.s().is_high()),
            "seed {seed}: minted high s"
        );
        SealToken::parse(t.as_str())
            .expect("parse")
            .verify_signature()
            .expect("verifies");

        // The same signature with s' = n - s is mathematically valid ECDSA but non-canonical.
        let high =
            p256::ecdsa::Signature::from_scalars(ecdsa.r().to_bytes(), (-*ecdsa.s()).to_bytes())
                .expect("scalars");
        let mut forged = sig.clone();
        forged[1..65].copy_from_slice(&high.to_bytes());
        let u = SealToken::parse(&assemble(PREFIX, &payload, &forged)).expect("parses");
        assert_eq!(u.verify_signature(), Err(SignatureError::NonCanonical));
    }
}

#[test]
fn secp256k1_high_s_is_refused() {
    use k256::elliptic_curve::scalar::IsHigh;
    let kp = SimpleKeypair::from(Secp256k1PrivateKey::new([2; 32]).expect("k1 key"));
    let t = mint(&kp, claims_for(&kp, Role::User)).expect("mint");
    let (_, payload, sig) = segments(t.as_str());
    let ecdsa = k256::ecdsa::Signature::from_slice(&sig[1..65]).expect("r||s");
    assert!(!bool::from(ecdsa.s().is_high()), "k256 signs low-s");
    let high = k256::ecdsa::Signature::from_scalars(ecdsa.r().to_bytes(), (-*ecdsa.s()).to_bytes())
        .expect("scalars");
    let mut forged = sig.clone();
    forged[1..65].copy_from_slice(&high.to_bytes());
    let u = SealToken::parse(&assemble(PREFIX, &payload, &forged)).expect("parses");
    assert_eq!(u.verify_signature(), Err(SignatureError::BadSignature));
}

#[test]
fn secp256r1_out_of_range_scalars_are_bad_signatures() {
    let kp = SimpleKeypair::from(Secp256r1PrivateKey::new([3; 32]));
    let t = mint(&kp, claims_for(&kp, Role::User)).expect("mint");
    let (_, payload, mut sig) = segments(t.as_str());
    sig[1..33].copy_from_slice(&[0xff; 32]); // r ≥ n
    let u = SealToken::parse(&assemble(PREFIX, &payload, &sig)).expect("parses");
    assert_eq!(u.verify_signature(), Err(SignatureError::BadSignature));
}
