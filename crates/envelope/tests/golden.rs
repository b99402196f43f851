//! Golden vectors: fixed key, etcd key, plaintext, sequence number and salt → fixed envelope
//! bytes. They freeze the envelope formats: if this test fails, the format or the derivation
//! changed, and every value already stored would stop decrypting.
//!
//! - `testdata/vectors-v3.json`: envelope v3, the format written (fixed DEK and DEK id through
//!   the `test-hooks` constructor). Regenerate only for a deliberate format change, with
//!   `DAAS_BLESS=1 cargo test -p daas-envelope --test golden`.
//! - `testdata/vectors-v2.json`: envelope v2, written until v3, frozen: the v2 writer survives
//!   only as a test hook, and its output must still match byte for byte.
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
                        ring.encrypt_v2_with_salt(etcd_key, plaintext, sequence, salt),
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
    assert_eq!(v2_vectors(), frozen(V2));
}

/// An envelope v3 vector: the DEK, its id and the nonce counter are inputs.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct V3Vector {
    name: String,
    /// Public test key, never a real one.
    key_hex: String,
    key_id: String,
    /// Public test DEK.
    dek_hex: String,
    dek_id_hex: String,
    /// The nonce counter the value was sealed with.
    counter: u64,
    etcd_key_hex: String,
    plaintext_hex: String,
    sequence: u64,
    envelope_hex: String,
}

const V3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/vectors-v3.json");

fn v3_vectors() -> Vec<V3Vector> {
    // name, key seed, DEK seed, counter, etcd key, plaintext, sequence number.
    type V3Case = (&'static str, u8, u8, u64, &'static [u8], &'static [u8], u64);
    let cases: [V3Case; 5] = [
        (
            "empty-value",
            0x00,
            0x90,
            0,
            b"/registry/namespaces/default",
            b"",
            1,
        ),
        (
            "secret",
            0x40,
            0xa0,
            1,
            b"/registry/secrets/kube-system/k3s-serving",
            b"k8s\0\n\x0c\n\x02v1\x12\x06Secret{\"tls.key\":\"...\"}",
            0x0000_0001_0000_002a,
        ),
        (
            "empty-etcd-key",
            0x80,
            0xb0,
            7,
            b"",
            b"value under the empty key",
            0,
        ),
        (
            "last-nonce",
            0xc0,
            0xc0,
            (1 << 32) - 1,
            b"/registry/configmaps/default/cm",
            b"0123456789abcdef0123456789abcdef!",
            u64::MAX,
        ),
        (
            "anchor-label",
            0x20,
            0xd0,
            0x0102_0304,
            b"\0k3s-daas/freshness-anchor",
            b"k3a\x01\0\0\0\0\0\0\0\x07\0\0\0\0\0\0\0\x05\0\0\0\0\0\0\0\x09",
            9,
        ),
    ];
    cases
        .into_iter()
        .map(
            |(name, key_seed, dek_seed, counter, etcd_key, plaintext, sequence)| {
                let key = key_bytes(key_seed);
                let dek = key_bytes(dek_seed);
                let dek_id: [u8; 16] = std::array::from_fn(|i| dek_seed ^ (i as u8));
                let ring =
                    KeyRing::with_dek(DataKey::from_bytes(key), [], dek, dek_id).expect("ring");
                ring.advance_nonce_counter(counter);
                V3Vector {
                    name: name.into(),
                    key_hex: hex::encode(key),
                    key_id: ring.active_id().to_string(),
                    dek_hex: hex::encode(dek),
                    dek_id_hex: hex::encode(dek_id),
                    counter,
                    etcd_key_hex: hex::encode(etcd_key),
                    plaintext_hex: hex::encode(plaintext),
                    sequence,
                    envelope_hex: hex::encode(ring.encrypt(etcd_key, plaintext, sequence)),
                }
            },
        )
        .collect()
}

#[test]
fn v3_golden_vectors_are_stable() {
    let now = v3_vectors();
    if std::env::var_os("DAAS_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
        std::fs::write(V3, text).expect("write vectors file");
        return;
    }
    let frozen: Vec<V3Vector> =
        serde_json::from_str(&std::fs::read_to_string(V3).expect("vectors file")).expect("json");
    assert_eq!(now, frozen);
}

#[test]
fn v3_golden_envelopes_decrypt_under_any_ring_with_the_key() {
    let frozen: Vec<V3Vector> =
        serde_json::from_str(&std::fs::read_to_string(V3).expect("vectors file")).expect("json");
    assert_eq!(frozen.len(), 5);
    for v in &frozen {
        let key: [u8; 32] = hex::decode(&v.key_hex)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        // A ring with its own random DEK: the value's DEK is unwrapped from the envelope.
        let ring = KeyRing::new(DataKey::from_bytes(key), []).expect("ring");
        let envelope = hex::decode(&v.envelope_hex).expect("hex");
        let header = KeyRing::header_of(&envelope).expect("header");
        assert_eq!(header.version, 3, "{}", v.name);
        assert_eq!(header.key_id.to_string(), v.key_id, "{}", v.name);
        assert_eq!(header.sequence, Some(v.sequence), "{}", v.name);
        assert_eq!(hex::encode(&envelope[16..32]), v.dek_id_hex, "{}", v.name);
        assert_eq!(
            envelope[80..92],
            [&[0u8; 4][..], &v.counter.to_be_bytes()].concat()[..],
            "{}",
            v.name
        );
        let out = ring
            .decrypt(&hex::decode(&v.etcd_key_hex).expect("hex"), &envelope)
            .expect("golden decrypts");
        assert_eq!(hex::encode(out.plaintext), v.plaintext_hex, "{}", v.name);
        assert!(!out.stale);
    }
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
