//! Independent cross-check with the official Sui TypeScript SDK (`@mysten/sui`, pinned in
//! `tests/ts-sdk/package.json`): (a) the SDK verifies personal-message signatures of tokens our
//! code minted, and rejects tampered ones; (b) the SDK signs token payloads that our verifier
//! accepts — for every scheme we claim (ed25519, secp256k1, secp256r1).
//!
//! Needs `node` and `npm ci --prefix tests/ts-sdk`. Without them the test is skipped with a
//! printed reason, unless `DAAS_REQUIRE_PEERS=1` (set by `.ci/run`), which turns that into a failure.

use std::path::PathBuf;
use std::process::Command;

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use daas_seal::{Address, Claims, NodeName, Role, SealToken, TimeRules, mint};
use serde_json::{Value, json};
use sui_crypto::ed25519::Ed25519PrivateKey;
use sui_crypto::secp256k1::Secp256k1PrivateKey;
use sui_crypto::secp256r1::Secp256r1PrivateKey;
use sui_crypto::simple::SimpleKeypair;

fn keys() -> Vec<(&'static str, SimpleKeypair)> {
    let rng = rand_core::OsRng;
    vec![
        ("ed25519", Ed25519PrivateKey::generate(rng).into()),
        ("secp256k1", Secp256k1PrivateKey::generate(rng).into()),
        ("secp256r1", Secp256r1PrivateKey::generate(rng).into()),
    ]
}

const CLUSTER: Address = Address::new([0xc1; 32]);

fn claims(signer: Address, role: Role) -> Claims {
    let mut b = Claims::builder(CLUSTER, signer, Address::new([0x5e; 32]), role)
        .lifetime(1_790_000_000_000, 600_000)
        .random_nonce();
    if role == Role::Worker {
        b = b.node_name(NodeName::new("worker-7").expect("valid"));
    }
    b.build().expect("claims")
}

fn peer_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/ts-sdk");
    let have_sdk = dir.join("node_modules/@mysten/sui/package.json").is_file();
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_sdk && have_node {
        return Some(dir);
    }
    let reason = if have_node {
        "tests/ts-sdk/node_modules is missing (run `npm ci --prefix tests/ts-sdk`)"
    } else {
        "`node` is not on PATH"
    };
    if std::env::var("DAAS_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("DAAS_REQUIRE_PEERS=1 but the TypeScript SDK peer is unavailable: {reason}");
    }
    eprintln!("SKIPPED ts_sdk cross-check: {reason}");
    None
}

#[test]
fn typescript_sdk_agrees_with_our_signatures() {
    let Some(dir) = peer_dir() else { return };
    let mut verify = Vec::new();
    let mut sign = Vec::new();
    let mut ts_payloads = Vec::new();
    for (scheme, kp) in keys() {
        let address = kp.verifying_key().derive_address();
        for role in [Role::Worker, Role::Admin] {
            let token = mint(&kp, claims(address, role)).expect("mint");
            let parsed = SealToken::parse(token.as_str()).expect("parse");
            let sig_b64url = token
                .as_str()
                .rsplit('.')
                .next()
                .expect("signature segment");
            let sig = Base64UrlUnpadded::decode_vec(sig_b64url).expect("b64url");
            verify.push(json!({
                "name": format!("{scheme}-{role}"), "scheme": scheme, "address": address.to_string(),
                "message_b64": Base64::encode_string(parsed.payload()),
                "signature_b64": Base64::encode_string(&sig),
            }));
        }
        // (b): a fresh key exported as suiprivkey; the TS SDK signs a payload naming its address.
        let payload = {
            let t = mint(&kp, claims(address, Role::User)).expect("mint");
            SealToken::parse(t.as_str())
                .expect("parse")
                .payload()
                .to_vec()
        };
        sign.push(json!({
            "name": format!("{scheme}-ts-signed"), "scheme": scheme,
            "suiprivkey": kp.to_suiprivkey().expect("bech32"),
            "expected_address": address.to_string(),
            "message_b64": Base64::encode_string(&payload),
        }));
        ts_payloads.push(payload);
    }

    let work = tempfile::tempdir().expect("tempdir");
    let input = work.path().join("input.json");
    let output = work.path().join("output.json");
    std::fs::write(
        &input,
        json!({ "verify": verify, "sign": sign }).to_string(),
    )
    .expect("write");
    let status = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(&input)
        .arg(&output)
        .status()
        .expect("run node");
    let out: Value = serde_json::from_str(&std::fs::read_to_string(&output).expect("output json"))
        .expect("valid json");
    eprintln!("TypeScript SDK @mysten/sui {}", out["sdk_version"]);

    // (a) every Rust signature verifies in the TS SDK; tampering and a wrong address are refused
    let results = out["verify"].as_array().expect("verify results");
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["ok"], true, "TS rejected our signature: {r}");
        assert_eq!(r["tamper_rejected"], true, "{r}");
        assert_eq!(r["wrong_address_rejected"], true, "{r}");
    }

    // (b) every TS signature makes a token our verifier accepts
    let signed = out["sign"].as_array().expect("sign results");
    assert_eq!(signed.len(), 3);
    for (r, payload) in signed.iter().zip(&ts_payloads) {
        assert_eq!(
            r["address_matches"], true,
            "TS derived another address: {r}"
        );
        let sig = Base64::decode_vec(r["signature_b64"].as_str().expect("signature")).expect("b64");
        let text = format!(
            "k3sdaas.{}.{}",
            Base64UrlUnpadded::encode_string(payload),
            Base64UrlUnpadded::encode_string(&sig)
        );
        let parsed = SealToken::parse(&text).expect("TS-signed token parses");
        parsed.verify_signature().expect("TS-signed token verifies");
        parsed
            .verify(1_790_000_000_001, &CLUSTER, &TimeRules::default())
            .expect("claims valid");
    }
    assert!(status.success(), "check.mjs exited with {status}");
}
