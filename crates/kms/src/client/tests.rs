use super::*;

#[test]
fn endpoints() {
    let ok = |url: &str| parse_endpoint(url).expect(url);
    assert_eq!(
        ok("https://kms.eu-west-1.amazonaws.com"),
        ("kms.eu-west-1.amazonaws.com".into(), 443)
    );
    assert_eq!(
        ok("https://kms.eu-west-1.amazonaws.com/"),
        ("kms.eu-west-1.amazonaws.com".into(), 443)
    );
    assert_eq!(ok("https://localhost:8443"), ("localhost".into(), 8443));
    for bad in [
        "http://kms.eu-west-1.amazonaws.com",
        "https://kms.eu-west-1.amazonaws.com/x",
        "https://kms.eu-west-1.amazonaws.com/?a=b",
        "https://user@kms.eu-west-1.amazonaws.com",
        "kms.eu-west-1.amazonaws.com",
        "",
    ] {
        assert!(
            matches!(parse_endpoint(bad), Err(KmsError::BadEndpoint { .. })),
            "{bad}"
        );
    }
}

#[test]
fn kms_errors_are_named() {
    let err = refusal(
        StatusCode::BAD_REQUEST,
        br#"{"__type":"com.amazonaws.kms#AccessDeniedException","message":"nope"}"#,
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "KMS refused: the key policy does not allow this enclave's attestation (check PCR \
             conditions)"
        ),
        "{text}"
    );
    assert!(
        text.contains("AccessDeniedException") && text.contains("nope"),
        "{text}"
    );
    let err = refusal(
        StatusCode::BAD_REQUEST,
        br#"{"__type":"ThrottlingException","Message":"slow"}"#,
    );
    assert_eq!(
        err.to_string(),
        "KMS error ThrottlingException (HTTP 400): slow"
    );
    let err = refusal(StatusCode::BAD_GATEWAY, b"<html>");
    assert!(matches!(err, KmsError::BadResponse { status: 502, .. }));
    let long = format!(r#"{{"__type":"X","message":"{}"}}"#, "a".repeat(5000));
    let KmsError::Refused { message, .. } = refusal(StatusCode::BAD_REQUEST, long.as_bytes())
    else {
        panic!("refused")
    };
    assert!(message.len() <= MAX_MESSAGE + 3);
}

#[test]
fn decrypt_replies() {
    let ok = parse_decrypt_reply(
        StatusCode::OK,
        br#"{"KeyId":"arn:aws:kms:eu-west-1:1:key/k","CiphertextForRecipient":"AQID","Plaintext":null}"#,
    )
    .expect("valid");
    assert_eq!(ok.ciphertext_for_recipient, vec![1, 2, 3]);
    assert_eq!(ok.key_id.as_deref(), Some("arn:aws:kms:eu-west-1:1:key/k"));
    assert!(matches!(
        parse_decrypt_reply(
            StatusCode::OK,
            br#"{"CiphertextForRecipient":"AQID","Plaintext":"AAAA"}"#
        ),
        Err(KmsError::PlaintextWithRecipient)
    ));
    assert!(matches!(
        parse_decrypt_reply(StatusCode::OK, br#"{"Plaintext":"AAAA"}"#),
        Err(KmsError::PlaintextWithRecipient)
    ));
    assert!(matches!(
        parse_decrypt_reply(StatusCode::OK, br#"{"KeyId":"k"}"#),
        Err(KmsError::BadResponse {
            reason: "CiphertextForRecipient is missing",
            ..
        })
    ));
    assert!(matches!(
        parse_decrypt_reply(StatusCode::OK, br#"{"CiphertextForRecipient":"!!"}"#),
        Err(KmsError::BadResponse {
            reason: "CiphertextForRecipient is not standard base64",
            ..
        })
    ));
    assert!(matches!(
        parse_decrypt_reply(StatusCode::OK, b"[]"),
        Err(KmsError::BadResponse { .. })
    ));
}
