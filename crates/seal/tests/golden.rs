//! Golden vectors: fixed keys and claims → fixed token text. These freeze the wire format: if
//! this test fails, the format changed, and every deployed verifier would reject new tokens (or
//! accept different bytes). Regenerate only for a deliberate new payload version, with
//! `DAAS_BLESS=1 cargo test -p daas-seal --test golden`.

use daas_seal::{Address, Claims, NodeName, Role, SealToken, TimeRules, mint};
use serde::{Deserialize, Serialize};
use sui_crypto::ed25519::Ed25519PrivateKey;
use sui_crypto::secp256k1::Secp256k1PrivateKey;
use sui_crypto::secp256r1::Secp256r1PrivateKey;
use sui_crypto::simple::SimpleKeypair;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Vector {
    name: String,
    /// Public test key (seed bytes), never a real wallet.
    scheme: String,
    seed_hex: String,
    address: String,
    payload_hex: String,
    token: String,
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden.json");

fn vectors() -> Vec<Vector> {
    let cluster = Address::new([0xc1; 32]);
    let stake = Address::new([0x5e; 32]);
    let cases: [(&str, &str, SimpleKeypair, Role); 4] = [
        (
            "ed25519-admin",
            "ed25519",
            Ed25519PrivateKey::new([1; 32]).into(),
            Role::Admin,
        ),
        (
            "ed25519-worker",
            "ed25519",
            Ed25519PrivateKey::new([1; 32]).into(),
            Role::Worker,
        ),
        (
            "secp256k1-user",
            "secp256k1",
            Secp256k1PrivateKey::new([2; 32])
                .expect("valid scalar")
                .into(),
            Role::User,
        ),
        (
            "secp256r1-user",
            "secp256r1",
            Secp256r1PrivateKey::new([3; 32]).into(),
            Role::User,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, scheme, kp, role)| {
            let signer = kp.verifying_key().derive_address();
            let mut b = Claims::builder(cluster, signer, stake, role)
                .lifetime(1_790_000_000_000, 3_600_000)
                .token_epoch(7)
                .nonce(*b"0123456789abcdef");
            if role == Role::Worker {
                b = b.node_name(NodeName::new("worker-1").expect("valid"));
            }
            let token = mint(&kp, b.build().expect("claims")).expect("mint");
            let parsed = SealToken::parse(token.as_str()).expect("parse");
            Vector {
                name: name.into(),
                scheme: scheme.into(),
                seed_hex: hex::encode(match scheme {
                    "ed25519" => [1u8; 32],
                    "secp256k1" => [2u8; 32],
                    _ => [3u8; 32],
                }),
                address: signer.to_string(),
                payload_hex: hex::encode(parsed.payload()),
                token: token.into_string(),
            }
        })
        .collect()
}

#[test]
fn golden_vectors_are_stable() {
    let now = vectors();
    if std::env::var_os("DAAS_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
        std::fs::write(PATH, text).expect("write golden file");
        return;
    }
    let frozen: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("golden file")).expect("json");
    assert_eq!(now, frozen);
}

#[test]
fn golden_tokens_verify() {
    let frozen: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("golden file")).expect("json");
    assert_eq!(frozen.len(), 4);
    for v in frozen {
        let u = SealToken::parse(&v.token).expect("golden parses");
        u.verify_signature().expect("golden signature");
        assert_eq!(u.claims().signer.to_string(), v.address);
        assert_eq!(hex::encode(u.payload()), v.payload_hex);
        u.verify(
            1_790_000_000_001,
            &Address::new([0xc1; 32]),
            &TimeRules::default(),
        )
        .expect("valid at issue time");
    }
}

#[test]
fn known_answer_address() {
    // The published Sui known-answer vector (ed25519, seed 32 × 0x01).
    let kp: SimpleKeypair = Ed25519PrivateKey::new([1; 32]).into();
    assert_eq!(
        kp.verifying_key().derive_address().to_string(),
        "0x29dfbf688abce7ab43bb8e70cae158ae961196e721440f515482f8ba1684390f"
    );
}
