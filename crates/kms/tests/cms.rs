//! Opening CMS EnvelopedData: the KMS shape, its DER twin, and every refused variant.

#[path = "common/cms_builder.rs"]
mod cms_builder;

use std::sync::OnceLock;

use cms_builder::{Oaep256, Shape, envelop};
use daas_kms::{BerError, CmsError, open_enveloped_data};
use rand_core::OsRng;
use rsa::RsaPrivateKey;

/// One key per test binary: RSA key generation is slow in debug builds.
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("keygen"))
}

fn open(shape: &Shape, plaintext: &[u8]) -> Result<Vec<u8>, CmsError> {
    let ber = envelop(plaintext, &key().to_public_key(), shape);
    open_enveloped_data(&ber, key()).map(|p| p.to_vec())
}

#[test]
fn opens_kms_shaped_ber_and_der_twins() {
    let data: Vec<u8> = (0u8..32).collect();
    for shape in [
        Shape::default(),
        Shape {
            indefinite: false,
            ..Shape::default()
        },
        Shape {
            chunks: 0,
            ..Shape::default()
        },
        Shape {
            chunks: 1,
            ..Shape::default()
        },
        Shape {
            oaep: Oaep256::GoodNoNullWithLabel,
            ..Shape::default()
        },
    ] {
        assert_eq!(open(&shape, &data).expect("opens"), data, "{shape:?}");
    }
    // Sizes around the block boundary, and empty content.
    for len in [0usize, 1, 15, 16, 17, 4096] {
        let data = vec![0xa5; len];
        assert_eq!(
            open(&Shape::default(), &data).expect("opens"),
            data,
            "len {len}"
        );
    }
}

#[test]
fn oaep_parameters_are_checked() {
    for (oaep, why) in [
        (
            Oaep256::NoParams,
            "RSAES-OAEP parameters are missing (the default is SHA-1)",
        ),
        (Oaep256::Sha1Hash, "hashAlgorithm is not SHA-256"),
        (Oaep256::Sha1Mgf, "the MGF1 hash is not SHA-256"),
        (
            Oaep256::NoHash,
            "hashAlgorithm is absent (the default is SHA-1)",
        ),
        (Oaep256::Label, "the OAEP label is not empty"),
        (Oaep256::RsaV15, "the algorithm is not RSAES-OAEP"),
    ] {
        let shape = Shape {
            oaep,
            ..Shape::default()
        };
        assert_eq!(
            open(&shape, b"k"),
            Err(CmsError::KeyEncryption(why)),
            "{oaep:?}"
        );
    }
}

#[test]
fn content_and_structure_checks() {
    let check = |shape: Shape, expected: CmsError| {
        assert_eq!(open(&shape, &[7; 32]), Err(expected.clone()), "{expected}");
    };
    check(
        Shape {
            recipients: 2,
            ..Shape::default()
        },
        CmsError::RecipientCount(2),
    );
    check(
        Shape {
            recipients: 0,
            ..Shape::default()
        },
        CmsError::RecipientCount(0),
    );
    check(
        Shape {
            content_type: cms_builder::OID_SIGNED_DATA,
            ..Shape::default()
        },
        CmsError::NotEnvelopedData,
    );
    check(
        Shape {
            content_alg: cms_builder::OID_AES128_CBC,
            ..Shape::default()
        },
        CmsError::ContentEncryption("the algorithm is not AES-256-CBC"),
    );
    check(
        Shape {
            iv_len: 8,
            ..Shape::default()
        },
        CmsError::ContentEncryption("the IV is not 16 bytes"),
    );
    check(
        Shape {
            content_key_len: 16,
            ..Shape::default()
        },
        CmsError::ContentKeyLength { len: 16 },
    );
    check(
        Shape {
            cut_ciphertext: 5,
            ..Shape::default()
        },
        CmsError::ContentLength { len: 43 },
    );
    check(
        Shape {
            no_content: true,
            ..Shape::default()
        },
        CmsError::ContentLength { len: 0 },
    );
    for bad in [0u8, 17, 0xff, 3] {
        check(
            Shape {
                bad_pad_byte: Some(bad),
                ..Shape::default()
            },
            CmsError::Padding,
        );
    }
}

#[test]
fn another_key_cannot_open_it() {
    let other = RsaPrivateKey::new(&mut OsRng, 2048).expect("keygen");
    let ber = envelop(b"secret", &other.to_public_key(), &Shape::default());
    let err = open_enveloped_data(&ber, key()).expect_err("not for this key");
    assert_eq!(err, CmsError::KeyUnwrap);
    assert!(err.to_string().contains("another public key"), "{err}");
}

#[test]
fn truncated_and_oversized_are_refused() {
    let ber = envelop(&[1; 32], &key().to_public_key(), &Shape::default());
    for cut in 0..ber.len() {
        let err = open_enveloped_data(&ber[..cut], key()).expect_err("truncated");
        assert!(matches!(err, CmsError::Ber(_)), "cut at {cut}: {err:?}");
    }
    let mut extra = ber.clone();
    extra.push(0);
    assert!(matches!(
        open_enveloped_data(&extra, key()),
        Err(CmsError::Ber(BerError::TrailingBytes { extra: 1 }))
    ));
    let big = envelop(
        &vec![0; 70 * 1024],
        &key().to_public_key(),
        &Shape::default(),
    );
    assert!(matches!(
        open_enveloped_data(&big, key()),
        Err(CmsError::Ber(BerError::TooLarge { .. }))
    ));
}
