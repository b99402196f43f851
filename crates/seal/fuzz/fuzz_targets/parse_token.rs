//! Untrusted token text → parser → (if it parses) signature and claim checks. Must never panic,
//! and a token that parses must re-encode to claims that satisfy the parser's own bounds.
#![no_main]

use daas_seal::{Address, SealToken, TimeRules, MAX_TOKEN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for candidate in [text.to_owned(), format!("k3sdaas.{text}")] {
        if let Ok(token) = SealToken::parse(&candidate) {
            assert!(candidate.len() <= MAX_TOKEN_LEN);
            let _ = token.verify_signature();
            let _ = token.check_claims(0, &Address::ZERO, &TimeRules::default());
            let c = token.claims();
            assert!(c.node_name.as_ref().is_none_or(|n| n.as_str().len() <= 63));
        }
    }
});
