//! Untrusted document bytes → `parse` and `verify` (AWS root, and at the document's own time so
//! the chain code runs too). Must never panic; `verify` must never accept what `parse` refuses,
//! and whatever parses must be within the parser's own limits.
#![no_main]

use daas_attestation::{TrustAnchor, parse, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let anchors = [TrustAnchor::aws_nitro_root_g1()];
    match parse(data) {
        Ok(doc) => {
            assert!(doc.user_data.as_ref().is_none_or(|v| v.len() <= 512));
            assert!(doc.nonce.as_ref().is_none_or(|v| v.len() <= 512));
            assert!(doc.public_key.as_ref().is_none_or(|v| v.len() <= 1024));
            assert!((1..=10).contains(&doc.cabundle.len()));
            assert!(doc.pcrs.len() <= 32);
            let _ = verify(data, &anchors, doc.timestamp_ms);
        }
        Err(_) => assert!(verify(data, &anchors, 0).is_err()),
    }
});
