//! The `GET /attestation?nonce=<hex>` exchange between a client and the master (public data
//! only; the master serves it without authentication).

use serde::{Deserialize, Serialize};

/// Path of the attestation endpoint on the master's :8080.
pub const PATH: &str = "/attestation";
/// Shortest nonce a client may send (bytes): enough that a document can not be pre-computed.
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce (bytes): the NSM and Sui's verifier accept at most 512.
pub const MAX_NONCE_LEN: usize = 64;
/// Largest response body a client reads: a document is about 4.5 KiB, a CA certificate < 2 KiB.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// Value of [`AttestationResponse::format`].
pub const FORMAT_V1: &str = "k3s-daas-attestation/v1";

/// The master's answer: a fresh document for the caller's nonce and the CA it attests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationResponse {
    /// Always [`FORMAT_V1`].
    pub format: String,
    /// The attestation document (COSE_Sign1 bytes as the NSM returned them), standard base64.
    pub document: String,
    /// The enclave's CA certificate (PEM). Its DER's SHA-256 is in the document's `user_data`
    /// (layout v1, `daas_attestation::binding`) and its public key in `public_key`.
    pub ca_certificate: String,
}

/// Parses the `nonce` query parameter: lowercase or uppercase hex of
/// [`MIN_NONCE_LEN`]`..=`[`MAX_NONCE_LEN`] bytes.
pub fn parse_nonce_query(query: Option<&str>) -> Result<Vec<u8>, String> {
    let Some(query) = query else {
        return Err("missing ?nonce=<hex>".into());
    };
    let mut nonce = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("nonce", value)) if nonce.is_none() => nonce = Some(value),
            Some(("nonce", _)) => return Err("nonce given twice".into()),
            _ => return Err(format!("unknown query parameter {:?}", truncate(pair))),
        }
    }
    let value = nonce.ok_or("missing ?nonce=<hex>")?;
    if value.len() > 2 * MAX_NONCE_LEN {
        return Err(format!("nonce longer than {MAX_NONCE_LEN} bytes"));
    }
    let bytes = hex::decode(value).map_err(|_| "nonce is not hex".to_owned())?;
    if bytes.len() < MIN_NONCE_LEN {
        return Err(format!("nonce shorter than {MIN_NONCE_LEN} bytes"));
    }
    Ok(bytes)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_query_is_strict() {
        let ok = "00".repeat(32);
        assert_eq!(
            parse_nonce_query(Some(&format!("nonce={ok}"))),
            Ok(vec![0; 32])
        );
        for (query, why) in [
            (None, "missing"),
            (Some("nonce=abc"), "not hex"),
            (Some("nonce=0011"), "shorter"),
            (Some(&*format!("nonce={}", "ab".repeat(65))), "longer"),
            (Some(&*format!("nonce={ok}&nonce={ok}")), "twice"),
            (Some(&*format!("nonce={ok}&x=1")), "unknown"),
        ] {
            let err = parse_nonce_query(query).expect_err(why);
            assert!(err.contains(why), "{err} should mention {why}");
        }
    }
}
