//! AWS Signature Version 4 (header form), enough for KMS's JSON 1.1 API.
//!
//! ```text
//! CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
//!                    (lowercase(name) ":" trim(value) \n)* sorted by name \n
//!                    SignedHeaders \n hex(SHA-256(payload))
//! StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n hex(SHA-256(CanonicalRequest))
//! Scope            = YYYYMMDD "/" region "/" service "/aws4_request"
//! kSigning         = HMAC(HMAC(HMAC(HMAC("AWS4" secret, YYYYMMDD), region), service), "aws4_request")
//! Signature        = hex(HMAC(kSigning, StringToSign))
//! ```
//!
//! The caller passes an already-canonical URI and query (KMS uses `/` and no query); header
//! values are trimmed and runs of spaces collapsed. Every header given is signed, and `host`
//! and `x-amz-date` are always added (and `x-amz-security-token` with temporary
//! credentials, signed like the AWS SDKs do). Nothing here logs: the secret, the derived keys
//! and the strings that are signed never reach a log or an error.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The signing algorithm name.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS credentials: an access key id, its secret and, for temporary credentials (an instance
/// role's), a session token. `Debug` shows the access key id only.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token: session_token.map(Zeroizing::new),
        }
    }

    /// The access key id (public: it appears in every request's `Authorization`).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// A request time in SigV4's basic ISO 8601 form, `YYYYMMDD'T'HHMMSS'Z'` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmzDate(String);

impl AmzDate {
    /// The current time.
    pub fn now() -> AmzDate {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        AmzDate::from_unix(secs)
    }

    /// The time `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: u64) -> AmzDate {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        AmzDate(format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ))
    }

    /// Parses `YYYYMMDDTHHMMSSZ`; `None` for anything else.
    pub fn parse(text: &str) -> Option<AmzDate> {
        let b = text.as_bytes();
        let shape = b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        shape.then(|| AmzDate(text.to_owned()))
    }

    /// Seconds since the Unix epoch, `None` for impossible dates.
    pub fn to_unix(&self) -> Option<u64> {
        let n = |r: std::ops::Range<usize>| self.0[r].parse::<u64>().ok();
        let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
        let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        let days = days_from_civil(y, m, d)?;
        if civil_from_days(days) != (y, m, d) {
            return None;
        }
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
    }

    /// The full stamp.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `YYYYMMDD` part.
    pub fn date(&self) -> &str {
        &self.0[..8]
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The inverse of [`civil_from_days`] for years from 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// What is signed.
#[derive(Debug, Clone)]
pub struct SigningRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The `Host` header value, e.g. `kms.eu-west-1.amazonaws.com`.
    pub host: &'a str,
    /// The canonical URI (already URI-encoded), `/` for KMS.
    pub path: &'a str,
    /// The canonical query string (sorted, encoded), empty for KMS.
    pub query: &'a str,
    /// Further headers to sign (name, value), in any order and case. Must not include `host`,
    /// `x-amz-date`, `x-amz-security-token` or `authorization`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub payload: &'a [u8],
    /// The region, e.g. `eu-west-1`.
    pub region: &'a str,
    /// The service, `kms`.
    pub service: &'a str,
    /// The request time.
    pub date: &'a AmzDate,
}

/// The result of signing: the headers to send besides the caller's own.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, with temporary credentials.
    pub security_token: Option<String>,
    /// `Authorization`.
    pub authorization: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("amz_date", &self.amz_date)
            .finish_non_exhaustive()
    }
}

/// Signs `request` with `credentials`.
pub fn sign(request: &SigningRequest<'_>, credentials: &Credentials) -> Signed {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value)))
        .collect();
    headers.push(("host".into(), canonical_value(request.host)));
    headers.push(("x-amz-date".into(), request.date.as_str().to_owned()));
    if let Some(token) = credentials.session_token() {
        headers.push(("x-amz-security-token".into(), canonical_value(token)));
    }
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let mut canonical = Zeroizing::new(String::new());
    for part in [
        request.method,
        "\n",
        request.path,
        "\n",
        request.query,
        "\n",
    ] {
        canonical.push_str(part);
    }
    for (name, value) in &headers {
        for part in [name.as_str(), ":", value.as_str(), "\n"] {
            canonical.push_str(part);
        }
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(request.payload)));

    let scope = format!(
        "{}/{}/{}/aws4_request",
        request.date.date(),
        request.region,
        request.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        request.date.as_str(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        credentials,
        request.date.date(),
        request.region,
        request.service,
    );
    let signature = hex::encode(hmac(&key[..], string_to_sign.as_bytes()));
    Signed {
        amz_date: request.date.as_str().to_owned(),
        security_token: credentials.session_token().map(str::to_owned),
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    }
}

/// kSigning for a day, region and service.
fn signing_key(
    credentials: &Credentials,
    date: &str,
    region: &str,
    service: &str,
) -> Zeroizing<[u8; 32]> {
    let mut secret = Zeroizing::new(String::with_capacity(
        4 + credentials.secret_access_key.len(),
    ));
    secret.push_str("AWS4");
    secret.push_str(&credentials.secret_access_key);
    let k_date = Zeroizing::new(hmac(secret.as_bytes(), date.as_bytes()));
    let k_region = Zeroizing::new(hmac(&k_date[..], region.as_bytes()));
    let k_service = Zeroizing::new(hmac(&k_region[..], service.as_bytes()));
    Zeroizing::new(hmac(&k_service[..], b"aws4_request"))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Trims a header value and collapses runs of spaces to one (SigV4's canonical form).
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
