//! The dev attester: NSM-shaped documents that verify only under the dev root.

mod common;

use std::collections::BTreeMap;

use common::aws;
use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};
use daas_attestation::policy::{self, ExpectedBinding, Policy};
use daas_attestation::{
    AttestationError, AttestationRequest, Attester, AttesterError, RootKind, parse, verify,
};

const AT: u64 = 1_796_083_200_123; // 2026-12-01T00:00:00.123Z

fn attester() -> DevAttester {
    let root = DevRoot::generate().expect("dev root");
    DevAttester::new(root, dev_pcrs(b"dev image")).expect("dev attester")
}

fn request() -> AttestationRequest {
    AttestationRequest {
        user_data: Some(b"hello".to_vec()),
        nonce: None,
        public_key: Some(vec![7; 32]),
    }
}

#[test]
fn dev_documents_verify_only_under_the_dev_root() {
    let a = attester();
    let doc = a.attest_at(&request(), AT).expect("attest");
    let ok = verify(&doc, &[a.trust_anchor()], AT).expect("dev root");
    assert_eq!(ok.root, RootKind::Dev);
    let d = &ok.document;
    assert!(d.module_id.starts_with("dev-i-"), "{}", d.module_id);
    assert_eq!(d.module_id, a.module_id());
    assert_eq!(d.timestamp_ms, AT);
    assert_eq!(d.user_data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(d.public_key.as_deref(), Some(&[7u8; 32][..]));
    assert_eq!(d.nonce, None);
    assert!(!d.is_debug());

    let err = verify(&doc, &aws(), AT).expect_err("AWS root only");
    assert!(
        matches!(err, AttestationError::UntrustedRoot { anchors: 1 }),
        "{err}"
    );
    // With both anchors it is still a dev document.
    let mut both = aws();
    both.push(a.trust_anchor());
    assert_eq!(verify(&doc, &both, AT).expect("both").root, RootKind::Dev);
    // Another dev root is not this one.
    let other = DevRoot::generate().expect("other root");
    assert!(verify(&doc, &[other.trust_anchor()], AT).is_err());
}

#[test]
fn dev_documents_have_the_nsm_shape() {
    let a = attester();
    let doc = a
        .attest_at(&AttestationRequest::default(), AT)
        .expect("attest");
    // Untagged COSE_Sign1, protected {1:-35}, empty unprotected, 2-byte payload length.
    assert_eq!(&doc[..8], &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59]);
    let payload_start = 10;
    // A definite map of the nine keys in the NSM's order.
    assert_eq!(doc[payload_start], 0xa9);
    let keys = [
        "module_id",
        "digest",
        "timestamp",
        "pcrs",
        "certificate",
        "cabundle",
        "public_key",
        "user_data",
        "nonce",
    ];
    let mut last = 0;
    for k in keys {
        let pos = doc
            .windows(k.len())
            .position(|w| w == k.as_bytes())
            .unwrap_or_else(|| panic!("key {k}"));
        assert!(pos > last, "{k} out of order");
        last = pos;
    }
    // The three optionals are null.
    assert!(doc.windows(12).any(|w| w == b"\x6apublic_key\xf6"));
    assert!(doc.windows(11).any(|w| w == b"\x69user_data\xf6"));
    assert!(doc.windows(7).any(|w| w == b"\x65nonce\xf6"));
    // 96-byte signature at the end, not zero.
    assert_eq!(&doc[doc.len() - 98..doc.len() - 96], &[0x58, 0x60]);
    assert!(doc[doc.len() - 96..].iter().any(|&b| b != 0));

    let d = parse(&doc).expect("parse");
    assert_eq!(d.pcrs.len(), 16);
    assert!(d.pcrs.values().all(|v| v.len() == 48));
    assert_eq!(d.cabundle.len(), 4);
    assert_eq!(d.cabundle[0], a.root().certificate_der());
    assert_eq!(d.pcr(0), Some(&a.pcrs().pcr0[..]));
    assert_eq!(d.pcr(0), d.pcr(1));
    assert!(d.pcr(3).is_some_and(|v| v.iter().all(|&b| b == 0)));
}

#[test]
fn dev_leaf_lives_three_hours() {
    let a = attester();
    let doc = a.attest_at(&request(), AT).expect("attest");
    let anchors = [a.trust_anchor()];
    let secs = AT / 1000;
    verify(&doc, &anchors, (secs - 3) * 1000).expect("notBefore");
    verify(&doc, &anchors, (secs + 3 * 3600) * 1000 + 999).expect("notAfter");
    assert!(matches!(
        verify(&doc, &anchors, (secs - 4) * 1000 + 999),
        Err(AttestationError::NotYetValid { .. })
    ));
    assert!(matches!(
        verify(&doc, &anchors, (secs + 3 * 3600 + 1) * 1000),
        Err(AttestationError::Expired { .. })
    ));
}

#[test]
fn oversized_fields_are_refused_by_the_attester() {
    let a = attester();
    let cases = [
        (
            "user_data",
            AttestationRequest {
                user_data: Some(vec![0; 513]),
                ..Default::default()
            },
            512,
        ),
        (
            "nonce",
            AttestationRequest {
                nonce: Some(vec![0; 513]),
                ..Default::default()
            },
            512,
        ),
        (
            "public_key",
            AttestationRequest {
                public_key: Some(vec![0; 1025]),
                ..Default::default()
            },
            1024,
        ),
    ];
    for (name, req, max) in cases {
        match a.attest_at(&req, AT) {
            Err(AttesterError::TooLarge { field, max: m, .. }) => {
                assert_eq!((field, m), (name, max));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // At the limits it works and verifies.
    let full = AttestationRequest {
        user_data: Some(vec![1; 512]),
        nonce: Some(vec![2; 512]),
        public_key: Some(vec![3; 1024]),
    };
    let doc = a.attest_at(&full, AT).expect("at the limits");
    verify(&doc, &[a.trust_anchor()], AT).expect("verifies");
}

#[test]
fn attester_trait_and_pcr_config() {
    let a = attester();
    assert_eq!(a.root_kind(), RootKind::Dev);
    assert!(a.describe().contains("DEV"));
    // The trait impl stamps the current time; verify at that document's own time.
    let doc = a.attest(&request()).expect("attest");
    let ts = parse(&doc).expect("parse").timestamp_ms;
    verify(&doc, &[a.trust_anchor()], ts).expect("verifies");

    let root = DevRoot::generate().expect("root");
    let bad = BTreeMap::from([(32u8, [1u8; 48])]);
    assert!(matches!(
        DevAttester::new(root, bad),
        Err(AttesterError::Config(_))
    ));
    let root = DevRoot::generate().expect("root");
    let pcr16 = BTreeMap::from([(0u8, [1u8; 48]), (16, [2u8; 48])]);
    let a = DevAttester::new(root, pcr16).expect("PCR16");
    let doc = a.attest_at(&request(), AT).expect("attest");
    let d = verify(&doc, &[a.trust_anchor()], AT)
        .expect("verify")
        .document;
    assert_eq!(d.pcrs.len(), 17);
    assert_eq!(d.pcr(16), Some(&[2u8; 48][..]));
}

#[test]
fn dev_root_exports_pem_that_anchors() {
    let root = DevRoot::generate().expect("root");
    let pem = root.certificate_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let anchor = daas_attestation::TrustAnchor::from_pem(&pem, RootKind::Dev).expect("PEM");
    assert_eq!(anchor.der(), root.certificate_der());
    assert_eq!(anchor.fingerprint(), root.trust_anchor().fingerprint());
    let a = DevAttester::new(root, dev_pcrs(b"img")).expect("attester");
    let doc = a.attest_at(&request(), AT).expect("attest");
    verify(&doc, &[anchor], AT).expect("PEM anchor");
}

#[test]
fn dev_documents_pass_the_policy_with_binding_and_nonce() {
    let a = attester();
    let binding = daas_attestation::binding::Binding {
        cluster_id: [0x11; 32],
        ca_sha256: [0x22; 32],
        endpoint: "https://k3s.example:6443".into(),
    };
    let req = AttestationRequest {
        user_data: Some(binding.encode()),
        nonce: Some(vec![0x5a; 32]),
        public_key: None,
    };
    let doc = a.attest_at(&req, AT).expect("attest");
    let verified = verify(&doc, &[a.trust_anchor()], AT).expect("verify");
    let policy = Policy {
        expected_pcrs: a.pcrs(),
        allow_debug: false,
        now: AT + 1000,
        max_age_ms: 300_000,
        max_future_skew_ms: 60_000,
        nonce: Some(vec![0x5a; 32]),
        binding: Some(ExpectedBinding {
            cluster_id: [0x11; 32],
            ca_sha256: Some([0x22; 32]),
        }),
    };
    assert_eq!(policy::check(&verified, &policy), Ok(Some(binding)));
}
