//! The public real attestation documents: accepted exactly where Sui accepts them.

mod common;

use common::{NOW_2026_12_01_MS, VECTORS, aws, vector};
use daas_attestation::{AttestationError, CertName, RootKind, TrustAnchor, parse, verify};

#[test]
fn every_vector_verifies_at_its_own_timestamp() {
    for v in &VECTORS {
        let verified = verify(&v.bytes(), &aws(), v.timestamp_ms)
            .unwrap_or_else(|e| panic!("{}: {e}", v.file));
        assert_eq!(verified.root, RootKind::Aws);
        let doc = &verified.document;
        assert_eq!(doc.timestamp_ms, v.timestamp_ms, "{}", v.file);
        assert_eq!(doc.digest, "SHA384");
        assert!(doc.module_id.starts_with("i-"), "{}", v.file);
        assert_eq!(doc.pcrs.len(), v.pcr_count, "{}", v.file);
        assert!(doc.pcrs.values().all(|p| p.len() == 48));
        assert_eq!(doc.is_debug(), v.debug, "{}", v.file);
        assert_eq!(hex::encode(doc.pcr(0).expect("PCR0")), v.pcr0);
        assert_eq!(doc.cabundle.len(), 4);
        assert_eq!(parse(&v.bytes()).expect("parse"), *doc);
    }
}

#[test]
fn aws_root_fingerprint_is_pinned() {
    let root = TrustAnchor::aws_nitro_root_g1();
    assert_eq!(
        hex::encode(root.fingerprint()),
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );
    assert_eq!(
        root.fingerprint(),
        daas_attestation::AWS_NITRO_ROOT_G1_SHA256
    );
    assert_eq!(root.kind(), RootKind::Aws);
    // The bundled root of every real document is byte-identical to the pinned one.
    for v in &VECTORS {
        let doc = parse(&v.bytes()).expect("parse");
        assert_eq!(doc.cabundle[0], root.der(), "{}", v.file);
    }
    // The shared copy of the PEM gives the same anchor.
    let pem = std::fs::read_to_string(common::vectors_dir().join("aws-nitro-root-g1.pem"))
        .expect("read root PEM");
    let shared = TrustAnchor::from_pem(&pem, RootKind::Aws).expect("PEM");
    assert_eq!(shared.der(), root.der());
}

#[test]
fn every_vector_fails_now_with_an_expiry() {
    for v in &VECTORS {
        let err = verify(&v.bytes(), &aws(), NOW_2026_12_01_MS).expect_err(v.file);
        assert!(
            matches!(err, AttestationError::Expired { .. }),
            "{}: {err}",
            v.file
        );
        assert_eq!(err.sui_abort_code(), 2);
        assert_eq!(err.check(), "chain.expired");
    }
}

#[test]
fn every_vector_fails_three_hours_off() {
    const THREE_H: u64 = 3 * 3600 * 1000;
    for v in &VECTORS {
        // The leaf lives exactly 3 h from about the document time, and the bounds are inclusive
        // to the second: fastcrypto-pcr16 is still valid at timestamp + 3 h (20:20:10.812 is
        // floored to its notAfter 20:20:10), so "late" is one second more.
        let late = verify(&v.bytes(), &aws(), v.timestamp_ms + THREE_H + 1000).is_err_and(|e| {
            matches!(
                e,
                AttestationError::Expired {
                    cert: CertName::Leaf,
                    ..
                }
            )
        });
        assert!(late, "{} verifies 3 h after its timestamp", v.file);
        let early = verify(&v.bytes(), &aws(), v.timestamp_ms - THREE_H).is_err_and(|e| {
            matches!(
                e,
                AttestationError::NotYetValid {
                    cert: CertName::Leaf,
                    ..
                }
            )
        });
        assert!(early, "{} verifies 3 h before its timestamp", v.file);
    }
}

#[test]
fn validity_window_is_inclusive_to_the_second() {
    for v in &VECTORS {
        let bytes = v.bytes();
        let ms = |s: i64| u64::try_from(s).expect("positive") * 1000;
        // Both bounds are inside; the whole last second counts (ms are floored to seconds).
        verify(&bytes, &aws(), ms(v.valid_from)).unwrap_or_else(|e| panic!("{}: {e}", v.file));
        verify(&bytes, &aws(), ms(v.valid_until) + 999)
            .unwrap_or_else(|e| panic!("{}: {e}", v.file));
        let before = verify(&bytes, &aws(), ms(v.valid_from) - 1).expect_err(v.file);
        assert!(
            matches!(before, AttestationError::NotYetValid { .. }),
            "{before}"
        );
        let after = verify(&bytes, &aws(), ms(v.valid_until + 1)).expect_err(v.file);
        assert!(matches!(after, AttestationError::Expired { .. }), "{after}");
    }
}

#[test]
fn sui_and_fastcrypto_test_times_verify() {
    // The instants Sui's and fastcrypto's own tests use.
    verify(
        &vector("sui-debug-2024-11-14.cose").bytes(),
        &aws(),
        1_731_627_987_382,
    )
    .expect("sui test time");
    verify(
        &vector("fastcrypto-pcr16-2025-11-10.cose").bytes(),
        &aws(),
        1_762_795_380_000,
    )
    .expect("fastcrypto test time");
}

/// Re-encode a document with its payload map rewritten by `edit` (the signature no longer
/// matches, which is fine for parse-level tests).
fn with_payload(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    // The vectors are `84 44 a1013822 a0 59 <len16> payload 58 60 sig`.
    assert_eq!(&bytes[..7], &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0]);
    assert_eq!(bytes[7], 0x59);
    let len = usize::from(u16::from_be_bytes([bytes[8], bytes[9]]));
    let mut payload = bytes[10..10 + len].to_vec();
    let sig = &bytes[10 + len..];
    edit(&mut payload);
    let mut out = vec![0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59];
    out.extend_from_slice(&u16::try_from(payload.len()).expect("fits").to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(sig);
    out
}

#[test]
fn tag_18_is_accepted_and_other_tags_refused() {
    for v in &VECTORS {
        let mut tagged = vec![0xd2];
        tagged.extend_from_slice(&v.bytes());
        verify(&tagged, &aws(), v.timestamp_ms).unwrap_or_else(|e| panic!("{}: {e}", v.file));
        for tag in [&[0xd1][..], &[0xd3], &[0xc0], &[0xd8, 0x62], &[0xd2, 0xd2]] {
            let mut other = tag.to_vec();
            other.extend_from_slice(&v.bytes());
            let err = parse(&other).expect_err("other tag");
            assert!(matches!(err, AttestationError::UnsupportedTag(_)), "{err}");
            assert_eq!(err.sui_abort_code(), 1);
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let v = vector("evervault-prod-2022-10-13.cose");
    for tail in [&[0x00][..], &[0xf6], &[0x84, 0x40, 0xa0, 0x40, 0x40]] {
        let mut bytes = v.bytes();
        bytes.extend_from_slice(tail);
        let err = verify(&bytes, &aws(), v.timestamp_ms).expect_err("trailing");
        assert!(
            matches!(
                err,
                AttestationError::TrailingBytes {
                    context: "document",
                    ..
                }
            ),
            "{err}"
        );
    }
    // After the payload map, inside the signed payload.
    let bytes = with_payload(&v.bytes(), |p| p.push(0x00));
    let err = parse(&bytes).expect_err("trailing in payload");
    assert!(
        matches!(
            err,
            AttestationError::TrailingBytes {
                context: "payload",
                len: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn fastcrypto_pcr16_parses_its_indefinite_map() {
    let v = vector("fastcrypto-pcr16-2025-11-10.cose");
    let bytes = v.bytes();
    // `84 44 a1013822 a0 59 xxxx bf`: the payload map is indefinite-length.
    assert_eq!(bytes[10], 0xbf);
    let doc = parse(&bytes).expect("parse");
    assert_eq!(
        hex::encode(doc.pcr(16).expect("PCR16")),
        "28827566f8b004a75ccd77ffab1813059cfc384b3b23f926728263fecb03e97d4928fbef613791fcb233d7b16ad74b94"
    );
    assert_eq!(doc.user_data.as_deref(), Some(&[][..]));
    assert_eq!(doc.nonce, None);
    assert_eq!(doc.public_key.as_ref().map(Vec::len), Some(32));
    // Without its break code the map is truncated.
    let cut = with_payload(&bytes, |p| {
        assert_eq!(p.pop(), Some(0xff));
    });
    assert!(matches!(parse(&cut), Err(AttestationError::Cbor { .. })));
}

#[test]
fn duplicate_keys_are_refused() {
    let v = vector("sui-debug-2024-11-14.cose");
    // Append a second `nonce: null` to the definite map (a9 -> aa).
    let dup = with_payload(&v.bytes(), |p| {
        assert_eq!(p[0], 0xa9);
        p[0] = 0xaa;
        p.extend_from_slice(&[0x65, b'n', b'o', b'n', b'c', b'e', 0xf6]);
    });
    let err = parse(&dup).expect_err("duplicate");
    assert!(
        matches!(&err, AttestationError::DuplicateKey(k) if k == "nonce"),
        "{err}"
    );
    assert_eq!(err.sui_abort_code(), 1);
    // An unknown tenth key.
    let extra = with_payload(&v.bytes(), |p| {
        p[0] = 0xaa;
        p.extend_from_slice(&[0x63, b'f', b'o', b'o', 0xf6]);
    });
    assert!(matches!(parse(&extra), Err(AttestationError::UnknownKey(k)) if k == "foo"));
}

#[test]
fn byte_flips_anywhere_are_refused() {
    for v in &VECTORS {
        let bytes = v.bytes();
        let len = bytes.len();
        // The envelope header, every 53rd byte of the payload (certificates included), and
        // every 8th byte of the signature (few enough for an unoptimised build), flipping the
        // low and the high bit in turn.
        let positions = (0..12)
            .chain((12..len - 96).step_by(53))
            .chain((len - 96..len).step_by(8));
        for (n, i) in positions.enumerate() {
            let mask = if n % 2 == 0 { 0x01u8 } else { 0x80 };
            let mut m = bytes.clone();
            m[i] ^= mask;
            assert!(
                verify(&m, &aws(), v.timestamp_ms).is_err(),
                "{}: flip {mask:#04x} at {i} accepted",
                v.file
            );
        }
    }
}

#[test]
fn signature_flip_is_a_signature_failure() {
    let v = vector("evervault-debug-2023-09-18.cose");
    let mut bytes = v.bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = verify(&bytes, &aws(), v.timestamp_ms).expect_err("flip");
    assert!(matches!(err, AttestationError::BadSignature), "{err}");
    assert_eq!(err.check(), "cose.signature");
    assert_eq!(err.sui_abort_code(), 2);
}

/// The four cabundle entries of a vector and the offsets of the array in the payload.
fn cabundle_edit(bytes: &[u8], edit: impl Fn(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    with_payload(bytes, |p| {
        let key = b"\x68cabundle";
        let at = p
            .windows(key.len())
            .position(|w| w == key)
            .expect("cabundle key")
            + key.len();
        assert_eq!(p[at], 0x84);
        let mut pos = at + 1;
        let mut certs = Vec::new();
        for _ in 0..4 {
            assert_eq!(p[pos], 0x59);
            let n = usize::from(u16::from_be_bytes([p[pos + 1], p[pos + 2]]));
            certs.push(p[pos + 3..pos + 3 + n].to_vec());
            pos += 3 + n;
        }
        edit(&mut certs);
        let mut arr = vec![0x80 | u8::try_from(certs.len()).expect("small")];
        for c in &certs {
            arr.push(0x59);
            arr.extend_from_slice(&u16::try_from(c.len()).expect("fits").to_be_bytes());
            arr.extend_from_slice(c);
        }
        p.splice(at..pos, arr);
    })
}

#[test]
fn missing_or_reordered_cabundle_entries_are_refused() {
    let v = vector("evervault-prod-2022-10-13.cose");
    let bytes = v.bytes();
    // Sanity: the helper round-trips the payload.
    assert_eq!(cabundle_edit(&bytes, |_| {}), bytes);
    for i in 0..4 {
        let edited = cabundle_edit(&bytes, |c| {
            c.remove(i);
        });
        // The payload changed, so the COSE signature fails first, as in Sui.
        assert!(
            verify(&edited, &aws(), v.timestamp_ms).is_err(),
            "without cabundle[{i}]"
        );
    }
    let swapped = cabundle_edit(&bytes, |c| c.swap(1, 2));
    assert!(verify(&swapped, &aws(), v.timestamp_ms).is_err());
}

#[test]
fn another_root_is_refused() {
    let dev = daas_attestation::dev::DevRoot::generate().expect("dev root");
    for v in &VECTORS {
        let err = verify(&v.bytes(), &[dev.trust_anchor()], v.timestamp_ms).expect_err(v.file);
        assert!(
            matches!(err, AttestationError::UntrustedRoot { anchors: 1 }),
            "{err}"
        );
        assert_eq!(err.check(), "chain.untrusted_root");
        let err = verify(&v.bytes(), &[], v.timestamp_ms).expect_err(v.file);
        assert!(
            matches!(err, AttestationError::UntrustedRoot { anchors: 0 }),
            "{err}"
        );
    }
    // Both anchors configured: real documents still chain to AWS.
    let v = vector("sui-debug-2024-11-14.cose");
    let both = [dev.trust_anchor(), TrustAnchor::aws_nitro_root_g1()];
    let ok = verify(&v.bytes(), &both, v.timestamp_ms).expect("AWS among anchors");
    assert_eq!(ok.root, RootKind::Aws);
}
