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

#[test]
fn generate_data_key_bodies() {
    let recipient = Recipient::from_document(vec![1, 2, 3]);
    let body = |number_of_bytes| {
        generate_data_key_body(&GenerateDataKeyRequest {
            key_id: "alias/k3s-daas",
            number_of_bytes,
            recipient: &recipient,
        })
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("JSON"))
    };
    let expected_recipient = serde_json::json!({
        "AttestationDocument": "AQID",
        "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
    });
    assert_eq!(
        body(32).expect("valid"),
        serde_json::json!({
            "KeyId": "alias/k3s-daas",
            "KeySpec": "AES_256",
            "Recipient": expected_recipient,
        })
    );
    assert_eq!(body(16).expect("valid")["KeySpec"], "AES_128");
    let odd = body(48).expect("valid");
    assert_eq!(odd["NumberOfBytes"], 48);
    assert!(odd.get("KeySpec").is_none());
    for bad in [0, 1025] {
        assert!(
            matches!(body(bad), Err(KmsError::BadRequest(_))),
            "{bad} bytes"
        );
    }
    let empty = generate_data_key_body(&GenerateDataKeyRequest {
        key_id: "",
        number_of_bytes: 32,
        recipient: &recipient,
    });
    assert!(matches!(empty, Err(KmsError::BadRequest(_))));
}

#[test]
fn generate_data_key_replies() {
    let check = |body: &str, expected: Result<(&[u8], &[u8]), &str>| match (
        parse_generate_reply(StatusCode::OK, body.as_bytes()),
        expected,
    ) {
        (Ok(reply), Ok((blob, cms))) => {
            assert_eq!(reply.ciphertext_blob, blob, "{body}");
            assert_eq!(reply.ciphertext_for_recipient, cms, "{body}");
        }
        (Err(KmsError::PlaintextWithRecipient), Err("plaintext")) => {}
        (Err(KmsError::BadResponse { reason, .. }), Err(expected)) => {
            assert_eq!(reason, expected, "{body}")
        }
        (other, _) => panic!("{body}: {other:?}"),
    };
    check(
        r#"{"KeyId":"arn:aws:kms:eu-west-1:1:key/k","CiphertextBlob":"BAU=","CiphertextForRecipient":"AQID"}"#,
        Ok((&[4, 5], &[1, 2, 3])),
    );
    check(
        r#"{"CiphertextBlob":"BAU=","CiphertextForRecipient":"AQID","Plaintext":null}"#,
        Ok((&[4, 5], &[1, 2, 3])),
    );
    check(
        r#"{"CiphertextBlob":"BAU=","CiphertextForRecipient":"AQID","Plaintext":"AAAA"}"#,
        Err("plaintext"),
    );
    check(
        r#"{"CiphertextBlob":"BAU=","Plaintext":"AAAA"}"#,
        Err("plaintext"),
    );
    check(
        r#"{"CiphertextForRecipient":"AQID"}"#,
        Err("CiphertextBlob is missing"),
    );
    check(
        r#"{"CiphertextBlob":"BAU=","CiphertextForRecipient":"AQ"}"#,
        Err("CiphertextForRecipient is not standard base64"),
    );
    check(
        r#"{"CiphertextBlob":"%%","CiphertextForRecipient":"AQID"}"#,
        Err("CiphertextBlob is not standard base64"),
    );
    check(
        r#"{"CiphertextBlob":"","CiphertextForRecipient":"AQID"}"#,
        Err("CiphertextBlob is empty or longer than 6144 bytes"),
    );
    let huge = format!(
        r#"{{"CiphertextBlob":"{}","CiphertextForRecipient":"AQID"}}"#,
        Base64::encode_string(&[0u8; MAX_CIPHERTEXT_BLOB + 1])
    );
    check(
        &huge,
        Err("CiphertextBlob is empty or longer than 6144 bytes"),
    );
    // Both fields missing: the Recipient part is checked first (shared with Decrypt).
    check(r#"{"KeyId":"k"}"#, Err("CiphertextForRecipient is missing"));
    check("[]", Err("the body is not a GenerateDataKey reply object"));
}
