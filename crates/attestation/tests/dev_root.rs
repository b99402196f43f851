//! A dev root saved and loaded again signs documents that verify under the saved certificate;
//! a key that is not the certificate's, or not P-384, is refused.

use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};
use daas_attestation::{AttestationRequest, verify};

const AT: u64 = 1_765_000_000_000;

#[test]
fn a_saved_dev_root_loads_and_signs_under_the_same_anchor() {
    let root = DevRoot::generate().expect("root");
    let (cert, key) = (root.certificate_pem(), root.key_pem());
    let anchor = root.trust_anchor();
    let loaded = DevRoot::from_pem(&cert, &key).expect("load");
    assert_eq!(loaded.certificate_der(), root.certificate_der());
    let attester = DevAttester::new(loaded, dev_pcrs(b"image")).expect("attester");
    let doc = attester
        .attest_at(&AttestationRequest::default(), AT)
        .expect("attest");
    verify(&doc, &[anchor], AT).expect("verifies under the saved certificate");

    let other = DevRoot::generate().expect("root");
    let err = DevRoot::from_pem(&cert, &other.key_pem()).expect_err("foreign key");
    assert!(err.to_string().contains("does not belong"), "{err}");
    let p256 = rcgen::KeyPair::generate().expect("p256").serialize_pem();
    let err = DevRoot::from_pem(&cert, &p256).expect_err("p256 key");
    assert!(err.to_string().contains("P-384"), "{err}");
    assert!(DevRoot::from_pem("not pem", &key).is_err());
}
