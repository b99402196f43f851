//! The application policy on real documents, and the parser's limits and abort codes.

mod common;

use common::{VECTORS, aws, vector};
use daas_attestation::policy::{self, ExpectedBinding, ExpectedPcrs, Policy, PolicyError};
use daas_attestation::{AttestationError, Verified, parse, verify};

fn policy_for(v: &common::Vector) -> Policy {
    Policy {
        expected_pcrs: v.expected_pcrs(),
        allow_debug: false,
        now: v.timestamp_ms + 1000,
        max_age_ms: 300_000,
        max_future_skew_ms: 60_000,
        nonce: None,
        binding: None,
    }
}

fn verified(v: &common::Vector) -> Verified {
    verify(&v.bytes(), &aws(), v.timestamp_ms).expect("verify")
}

fn prod_pcrs() -> ExpectedPcrs {
    vector("evervault-prod-2022-10-13.cose").expected_pcrs()
}

#[test]
fn debug_vectors_fail_and_prod_vectors_pass_with_their_pcrs() {
    for v in &VECTORS {
        let ok = verified(v);
        if v.debug {
            // Own (zero) PCRs are refused as a policy; real PCRs meet a debug document.
            let own = policy::check(&ok, &policy_for(v));
            assert_eq!(
                own,
                Err(PolicyError::ZeroExpectedPcr { index: 0 }),
                "{}",
                v.file
            );
            let mut p = policy_for(v);
            p.expected_pcrs = prod_pcrs();
            assert_eq!(
                policy::check(&ok, &p),
                Err(PolicyError::DebugDocument),
                "{}",
                v.file
            );
            assert_eq!(PolicyError::DebugDocument.check(), "policy.debug");
            // Explicitly allowed (dev/test only): accepted, PCRs not compared.
            p.allow_debug = true;
            assert_eq!(policy::check(&ok, &p), Ok(None), "{}", v.file);
        } else {
            assert_eq!(policy::check(&ok, &policy_for(v)), Ok(None), "{}", v.file);
        }
    }
}

#[test]
fn other_pcrs_do_not_match() {
    let v = vector("fastcrypto-pcr16-2025-11-10.cose");
    let ok = verified(v);
    let mut p = policy_for(v);
    p.expected_pcrs = prod_pcrs();
    assert_eq!(
        policy::check(&ok, &p),
        Err(PolicyError::PcrMismatch { index: 0 })
    );
    let mut p = policy_for(v);
    p.expected_pcrs.pcr2[47] ^= 1;
    assert_eq!(
        policy::check(&ok, &p),
        Err(PolicyError::PcrMismatch { index: 2 })
    );
}

#[test]
fn expected_pcrs_must_be_real_measurements() {
    let v = vector("evervault-prod-2022-10-13.cose");
    let ok = verified(v);
    for index in 0..3u8 {
        let mut p = policy_for(v);
        let slot = match index {
            0 => &mut p.expected_pcrs.pcr0,
            1 => &mut p.expected_pcrs.pcr1,
            _ => &mut p.expected_pcrs.pcr2,
        };
        *slot = vec![0; 48];
        assert_eq!(
            policy::check(&ok, &p),
            Err(PolicyError::ZeroExpectedPcr { index })
        );
        let mut p = policy_for(v);
        p.expected_pcrs.pcr1 = vec![1; 32];
        assert_eq!(
            policy::check(&ok, &p),
            Err(PolicyError::ExpectedPcrLength { index: 1, len: 32 })
        );
    }
    // allow_debug does not lift the zero-PCR refusal.
    let mut p = policy_for(v);
    p.allow_debug = true;
    p.expected_pcrs.pcr0 = vec![0; 48];
    assert_eq!(
        policy::check(&ok, &p),
        Err(PolicyError::ZeroExpectedPcr { index: 0 })
    );
}

#[test]
fn freshness_bounds() {
    let v = vector("evervault-prod-2022-10-13.cose");
    let ok = verified(v);
    let ts = v.timestamp_ms;
    let with_now = |now| Policy {
        now,
        ..policy_for(v)
    };
    assert_eq!(policy::check(&ok, &with_now(ts)), Ok(None));
    assert_eq!(policy::check(&ok, &with_now(ts + 300_000)), Ok(None));
    assert_eq!(
        policy::check(&ok, &with_now(ts + 300_001)),
        Err(PolicyError::Stale {
            age_ms: 300_001,
            max_age_ms: 300_000
        })
    );
    assert_eq!(policy::check(&ok, &with_now(ts - 60_000)), Ok(None));
    assert_eq!(
        policy::check(&ok, &with_now(ts - 60_001)),
        Err(PolicyError::FromFuture {
            ahead_ms: 60_001,
            max_skew_ms: 60_000
        })
    );
}

#[test]
fn nonce_checks() {
    let v = vector("evervault-prod-2022-10-13.cose");
    let ok = verified(v);
    let nonce = ok.document.nonce.clone().expect("256-byte nonce");
    assert_eq!(nonce.len(), 256);
    let mut p = policy_for(v);
    p.nonce = Some(nonce.clone());
    assert_eq!(policy::check(&ok, &p), Ok(None));
    let mut wrong = nonce.clone();
    wrong[255] ^= 1;
    p.nonce = Some(wrong);
    assert_eq!(policy::check(&ok, &p), Err(PolicyError::NonceMismatch));
    p.nonce = Some(nonce[..255].to_vec());
    assert_eq!(policy::check(&ok, &p), Err(PolicyError::NonceMismatch));
    // A document without a nonce.
    let v = vector("fastcrypto-pcr16-2025-11-10.cose");
    let ok = verified(v);
    let mut p = policy_for(v);
    p.nonce = Some(vec![1; 32]);
    assert_eq!(policy::check(&ok, &p), Err(PolicyError::MissingNonce));
}

#[test]
fn binding_checks_on_real_documents() {
    let expected = Some(ExpectedBinding {
        cluster_id: [1; 32],
        ca_sha256: None,
    });
    // null user_data.
    let v = vector("evervault-prod-2022-10-13.cose");
    let p = Policy {
        binding: expected.clone(),
        ..policy_for(v)
    };
    assert_eq!(
        policy::check(&verified(v), &p),
        Err(PolicyError::BindingMissing)
    );
    // Empty user_data: present, but not a binding.
    let v = vector("fastcrypto-pcr16-2025-11-10.cose");
    let p = Policy {
        binding: expected,
        ..policy_for(v)
    };
    assert!(matches!(
        policy::check(&verified(v), &p),
        Err(PolicyError::Binding(_))
    ));
}

#[test]
fn binding_mismatches_are_named() {
    use daas_attestation::binding::Binding;
    let v = vector("evervault-prod-2022-10-13.cose");
    let mut ok = verified(v);
    let b = Binding {
        cluster_id: [1; 32],
        ca_sha256: [2; 32],
        endpoint: "e".into(),
    };
    ok.document.user_data = Some(b.encode());
    let check = |cluster_id, ca_sha256| {
        let p = Policy {
            binding: Some(ExpectedBinding {
                cluster_id,
                ca_sha256,
            }),
            ..policy_for(v)
        };
        policy::check(&ok, &p)
    };
    assert_eq!(check([1; 32], None), Ok(Some(b.clone())));
    assert_eq!(check([1; 32], Some([2; 32])), Ok(Some(b)));
    assert_eq!(
        check([9; 32], None),
        Err(PolicyError::BindingMismatch {
            field: "cluster_id"
        })
    );
    assert_eq!(
        check([1; 32], Some([9; 32])),
        Err(PolicyError::BindingMismatch { field: "ca_sha256" })
    );
}

/// A payload with one field replaced, wrapped in a (non-verifying) COSE envelope.
fn doc_with(field: &str, value_cbor: &[u8]) -> Vec<u8> {
    let v = vector("sui-debug-2024-11-14.cose");
    let bytes = v.bytes();
    let len = usize::from(u16::from_be_bytes([bytes[8], bytes[9]]));
    let mut payload = bytes[10..10 + len].to_vec();
    let mut key = vec![0x60 | u8::try_from(field.len()).expect("short")];
    key.extend_from_slice(field.as_bytes());
    let at = payload
        .windows(key.len())
        .position(|w| w == key)
        .expect("key")
        + key.len();
    // The three optionals of this vector: public_key null, user_data 32 bytes, nonce null.
    let old_len = match field {
        "user_data" => 2 + 32,
        _ => 1,
    };
    payload.splice(at..at + old_len, value_cbor.iter().copied());
    let mut out = vec![0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59];
    out.extend_from_slice(&u16::try_from(payload.len()).expect("fits").to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&bytes[10 + len..]);
    out
}

fn bstr(len: usize) -> Vec<u8> {
    let mut v = vec![0x59];
    v.extend_from_slice(&u16::try_from(len).expect("fits").to_be_bytes());
    v.extend(std::iter::repeat_n(0xab, len));
    v
}

#[test]
fn oversized_fields_are_refused_by_the_parser() {
    for (field, max) in [("user_data", 512), ("nonce", 512), ("public_key", 1024)] {
        parse(&doc_with(field, &bstr(max))).unwrap_or_else(|e| panic!("{field} at max: {e}"));
        let err = parse(&doc_with(field, &bstr(max + 1))).expect_err(field);
        assert!(
            matches!(err, AttestationError::FieldSize { field: f, len, .. } if f == field && len == max + 1),
            "{field}: {err}"
        );
        assert_eq!(err.sui_abort_code(), 1);
        assert_eq!(err.check(), "payload.field_size");
        // Not bytes and not null.
        let err = parse(&doc_with(field, &[0x01])).expect_err(field);
        assert!(
            matches!(err, AttestationError::InvalidField { .. }),
            "{err}"
        );
    }
}

#[test]
fn sui_abort_codes() {
    let v = vector("sui-debug-2024-11-14.cose");
    let bytes = v.bytes();
    // 1: parse.
    let mut short_sig = bytes.clone();
    short_sig.truncate(bytes.len() - 1);
    assert_eq!(parse(&short_sig).expect_err("short").sui_abort_code(), 1);
    assert_eq!(parse(&[]).expect_err("empty").sui_abort_code(), 1);
    let mut header = bytes.clone();
    header[5] = 0x23; // {1: -36}
    let err = parse(&header).expect_err("alg");
    assert!(matches!(err, AttestationError::ProtectedHeader));
    assert_eq!(err.sui_abort_code(), 1);
    let mut unprot = bytes.clone();
    unprot[6] = 0xa1; // a non-empty unprotected map
    assert_eq!(parse(&unprot).expect_err("unprotected").sui_abort_code(), 1);
    assert_eq!(
        parse(&doc_with("digest", b"\x66SHA256"))
            .expect_err("digest")
            .sui_abort_code(),
        1
    );
    // 2: verify (signature, chain, validity, root).
    let mut sig = bytes.clone();
    let n = sig.len();
    sig[n - 1] ^= 1;
    assert_eq!(
        verify(&sig, &aws(), v.timestamp_ms)
            .expect_err("sig")
            .sui_abort_code(),
        2
    );
    assert_eq!(
        verify(&bytes, &aws(), common::NOW_2026_12_01_MS)
            .expect_err("expired")
            .sui_abort_code(),
        2
    );
    assert_eq!(
        verify(&bytes, &[], v.timestamp_ms)
            .expect_err("root")
            .sui_abort_code(),
        2
    );
    // 3: required PCRs.
    assert_eq!(AttestationError::MissingPcr(8).sui_abort_code(), 3);
}

#[test]
fn json_is_hex() {
    let v = vector("sui-debug-2024-11-14.cose");
    let doc = parse(&v.bytes()).expect("parse");
    let json = serde_json::to_value(&doc).expect("json");
    assert_eq!(json["timestamp_ms"], 1_731_627_989_450u64);
    assert_eq!(json["pcrs"]["0"], "0".repeat(96));
    assert_eq!(json["public_key"], serde_json::Value::Null);
    assert_eq!(
        json["user_data"],
        "5a264748a62368075d34b9494634a3e096e0e48f6647f965b81d2a653de684f2"
    );
    assert_eq!(json["cabundle"].as_array().map(Vec::len), Some(4));
}
