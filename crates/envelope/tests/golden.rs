//! Golden vectors: fixed key, etcd key, plaintext and salt → fixed envelope bytes. They freeze
//! envelope v1: if this test fails, the format or the derivation changed, and every value
//! already stored in etcd would stop decrypting. The vectors were checked independently (Python
//! `cryptography`: HKDF-SHA256 + AES-256-GCM). Regenerate only for a deliberate new envelope
//! version, with `DAAS_BLESS=1 cargo test -p daas-envelope --test golden`.

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
    salt_hex: String,
    envelope_hex: String,
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/vectors.json");

fn key_bytes(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_add(i as u8))
}

/// name, key seed, etcd key, plaintext, salt seed.
type Case = (&'static str, u8, &'static [u8], &'static [u8], u8);

fn vectors() -> Vec<Vector> {
    let cases: [Case; 4] = [
        (
            "empty-value",
            0x00,
            b"/registry/namespaces/default",
            b"",
            0x10,
        ),
        (
            "secret",
            0x40,
            b"/registry/secrets/kube-system/k3s-serving",
            b"k8s\0\n\x0c\n\x02v1\x12\x06Secret{\"tls.key\":\"...\"}",
            0x20,
        ),
        (
            "empty-etcd-key",
            0x80,
            b"",
            b"value under the empty key",
            0x30,
        ),
        (
            "two-blocks-plus",
            0xc0,
            b"/registry/configmaps/default/cm",
            b"0123456789abcdef0123456789abcdef!",
            0xf0,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, key_seed, etcd_key, plaintext, salt_seed)| {
            let key = key_bytes(key_seed);
            let salt: [u8; 24] = std::array::from_fn(|i| salt_seed.wrapping_add(i as u8));
            let ring = KeyRing::new(DataKey::from_bytes(key), []).expect("ring");
            Vector {
                name: name.into(),
                key_hex: hex::encode(key),
                key_id: ring.active_id().to_string(),
                etcd_key_hex: hex::encode(etcd_key),
                plaintext_hex: hex::encode(plaintext),
                salt_hex: hex::encode(salt),
                envelope_hex: hex::encode(ring.encrypt_with_salt(etcd_key, plaintext, salt)),
            }
        })
        .collect()
}

fn frozen() -> Vec<Vector> {
    serde_json::from_str(&std::fs::read_to_string(PATH).expect("vectors file")).expect("json")
}

#[test]
fn golden_vectors_are_stable() {
    let now = vectors();
    if std::env::var_os("DAAS_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
        std::fs::write(PATH, text).expect("write vectors file");
        return;
    }
    assert_eq!(now, frozen());
}

#[test]
fn golden_envelopes_decrypt() {
    let vectors = frozen();
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let key: [u8; 32] = hex::decode(&v.key_hex)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let ring = KeyRing::new(DataKey::from_bytes(key), []).expect("ring");
        assert_eq!(ring.active_id().to_string(), v.key_id, "{}", v.name);
        let envelope = hex::decode(&v.envelope_hex).expect("hex");
        let etcd_key = hex::decode(&v.etcd_key_hex).expect("hex");
        assert_eq!(
            KeyRing::key_id_of(&envelope).expect("header").to_string(),
            v.key_id
        );
        assert_eq!(hex::encode(&envelope[8..32]), v.salt_hex, "{}", v.name);
        let out = ring.decrypt(&etcd_key, &envelope).expect("golden decrypts");
        assert_eq!(hex::encode(out.plaintext), v.plaintext_hex, "{}", v.name);
    }
}
