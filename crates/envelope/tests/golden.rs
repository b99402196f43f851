//! Golden vectors: fixed key, etcd key, plaintext, sequence number and salt → fixed envelope
//! bytes. They freeze the envelope formats: if this test fails, the format or the derivation
//! changed, and every value already stored would stop decrypting.
//!
//! - `testdata/vectors-v2.json`: envelope v2, the format written. Regenerate only for a
//!   deliberate new envelope version, with `DAAS_BLESS=1 cargo test -p daas-envelope --test
//!   golden`.
//! - `testdata/vectors.json`: envelope v1, frozen since v1 was written. Nothing writes v1 any
//!   more, so these are only decrypted: a release must keep reading what earlier ones stored.
//!
//! Both files were checked independently with Python `cryptography` (HKDF-SHA256 +
//! AES-256-GCM): `python3 testdata/check-vectors.py`.

use daas_envelope::{DataKey, KeyRing};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Vector {
    name: String,
    /// Public test key, never a real one.
    key_hex: String,
    key_id: String,
    etcd_key_hex: String,
    plaintext_hex: String,
    /// Absent in the v1 file (v1 has no sequence number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    salt_hex: String,
    envelope_hex: String,
}

const V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/vectors.json");
const V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/vectors-v2.json");

fn key_bytes(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_add(i as u8))
}

/// name, key seed, etcd key, plaintext, sequence number, salt seed.
type Case = (&'static str, u8, &'static [u8], &'static [u8], u64, u8);

fn v2_vectors() -> Vec<Vector> {
    let cases: [Case; 5] = [
        (
            "empty-value",
            0x00,
            b"/registry/namespaces/default",
            b"",
            1,
            0x10,
        ),
        (
            "secret",
            0x40,
            b"/registry/secrets/kube-system/k3s-serving",
            b"k8s\0\n\x0c\n\x02v1\x12\x06Secret{\"tls.key\":\"...\"}",
            0x0000_0001_0000_002a,
            0x20,
        ),
        (
            "empty-etcd-key",
            0x80,
            b"",
            b"value under the empty key",
            0,
            0x30,
        ),
        (
            "two-blocks-plus",
            0xc0,
            b"/registry/configmaps/default/cm",
            b"0123456789abcdef0123456789abcdef!",
            u64::MAX,
            0xf0,
        ),
        (
            "anchor-label",
            0x20,
            b"\0k3s-daas/freshness-anchor",
            b"k3a\x01\0\0\0\0\0\0\0\x07\0\0\0\0\0\0\0\x05\0\0\0\0\0\0\0\x09",
            9,
            0x50,
        ),
    ];
    cases
        .into_iter()
        .map(
            |(name, key_seed, etcd_key, plaintext, sequence, salt_seed)| {
                let key = key_bytes(key_seed);
                let salt: [u8; 24] = std::array::from_fn(|i| salt_seed.wrapping_add(i as u8));
                let ring = KeyRing::new(DataKey::from_bytes(key), []).expect("ring");
                Vector {
                    name: name.into(),
                    key_hex: hex::encode(key),
                    key_id: ring.active_id().to_string(),
                    etcd_key_hex: hex::encode(etcd_key),
                    plaintext_hex: hex::encode(plaintext),
                    sequence: Some(sequence),
                    salt_hex: hex::encode(salt),
                    envelope_hex: hex::encode(
                        ring.encrypt_with_salt(etcd_key, plaintext, sequence, salt),
                    ),
                }
            },
        )
        .collect()
}

fn frozen(path: &str) -> Vec<Vector> {
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).expect("json")
}

#[test]
fn v2_golden_vectors_are_stable() {
    let now = v2_vectors();
    if std::env::var_os("DAAS_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
        std::fs::write(V2, text).expect("write vectors file");
        return;
    }
    assert_eq!(now, frozen(V2));
}

/// Decrypts every vector of `path` and checks the header fields; returns how many there were.
fn check_decrypts(path: &str, version: u8, salt_at: usize) -> usize {
    let vectors = frozen(path);
    for v in &vectors {
        let key: [u8; 32] = hex::decode(&v.key_hex)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let ring = KeyRing::new(DataKey::from_bytes(key), []).expect("ring");
        assert_eq!(ring.active_id().to_string(), v.key_id, "{}", v.name);
        let envelope = hex::decode(&v.envelope_hex).expect("hex");
        let etcd_key = hex::decode(&v.etcd_key_hex).expect("hex");
        let header = KeyRing::header_of(&envelope).expect("header");
        assert_eq!(header.version, version, "{}", v.name);
        assert_eq!(header.key_id.to_string(), v.key_id, "{}", v.name);
        assert_eq!(header.sequence, v.sequence, "{}", v.name);
        assert_eq!(
            hex::encode(&envelope[salt_at..salt_at + 24]),
            v.salt_hex,
            "{}",
            v.name
        );
        let out = ring.decrypt(&etcd_key, &envelope).expect("golden decrypts");
        assert_eq!(hex::encode(out.plaintext), v.plaintext_hex, "{}", v.name);
        assert_eq!(out.sequence, v.sequence, "{}", v.name);
        assert!(!out.stale);
    }
    vectors.len()
}

#[test]
fn v2_golden_envelopes_decrypt() {
    assert_eq!(check_decrypts(V2, 2, 16), 5);
}

#[test]
fn v1_golden_envelopes_still_decrypt_without_a_sequence_number() {
    assert_eq!(check_decrypts(V1, 1, 8), 4);
}

#[test]
fn a_v1_envelope_under_a_rotated_ring_is_stale_and_readable() {
    let v = frozen(V1).into_iter().next().expect("a v1 vector");
    let old: [u8; 32] = hex::decode(&v.key_hex)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let ring = KeyRing::new(DataKey::generate(), [DataKey::from_bytes(old)]).expect("ring");
    let out = ring
        .decrypt(
            &hex::decode(&v.etcd_key_hex).expect("hex"),
            &hex::decode(&v.envelope_hex).expect("hex"),
        )
        .expect("v1 under an older key");
    assert!(out.stale);
    assert_eq!(out.sequence, None);
}
