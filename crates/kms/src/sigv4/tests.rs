//! Vectors from the AWS Signature Version 4 test suite ("Signature Version 4 test suite",
//! AWS General Reference, docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html;
//! the same files ship in awslabs/aws-c-auth: tests/aws-signing-test-suite/v4/). All cases sign
//! for access key `AKIDEXAMPLE`, secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, region
//! `us-east-1`, service `service`, host `example.amazonaws.com`, at `20150830T123600Z`.

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// The suite's example session token (post-sts-token/readme.txt).
const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn check(headers: &[(&str, &str)], payload: &[u8], token: Option<&str>, expected: &str) {
    let date = AmzDate::parse("20150830T123600Z").expect("date");
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, token.map(str::to_owned));
    let signed = sign(
        &SigningRequest {
            method: "POST",
            host: "example.amazonaws.com",
            path: "/",
            query: "",
            headers,
            payload,
            region: "us-east-1",
            service: "service",
            date: &date,
        },
        &creds,
    );
    assert_eq!(signed.authorization, expected);
    assert_eq!(signed.amz_date, "20150830T123600Z");
    assert_eq!(signed.security_token.as_deref(), token);
}

#[test]
fn post_vanilla() {
    check(
        &[],
        b"",
        None,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    );
}

#[test]
fn post_header_key_sort_and_value_trim() {
    // post-header-key-sort; the value is given untrimmed (get-header-value-trim's rule).
    check(
        &[("My-Header1", "  value1  ")],
        b"",
        None,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;my-header1;x-amz-date, \
         Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    );
}

#[test]
fn post_sts_header_before() {
    check(
        &[],
        b"",
        Some(TOKEN),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-security-token, \
         Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    );
}

#[test]
fn post_x_www_form_urlencoded() {
    check(
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
        None,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    );
}

#[test]
fn dates() {
    assert_eq!(AmzDate::from_unix(0).as_str(), "19700101T000000Z");
    assert_eq!(
        AmzDate::from_unix(1_440_938_160).as_str(),
        "20150830T123600Z"
    );
    assert_eq!(AmzDate::from_unix(951_782_400).as_str(), "20000229T000000Z");
    let d = AmzDate::parse("20150830T123600Z").expect("parses");
    assert_eq!(d.to_unix(), Some(1_440_938_160));
    assert_eq!(d.date(), "20150830");
    for bad in [
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "20150830X123600Z",
        "",
    ] {
        assert_eq!(AmzDate::parse(bad), None, "{bad}");
    }
    for impossible in ["20150230T000000Z", "20151330T000000Z", "20150830T246000Z"] {
        assert_eq!(AmzDate::parse(impossible).and_then(|d| d.to_unix()), None);
    }
}

#[test]
fn debug_hides_secrets() {
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, Some(TOKEN.into()));
    let text = format!("{creds:?}");
    assert!(text.contains("AKIDEXAMPLE"));
    assert!(!text.contains(SECRET) && !text.contains(TOKEN));
}
