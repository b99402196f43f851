//! The shipped key-policy template (deploy-ec2/kms-key-policy.json) keeps its promises: no
//! statement lets anything release the key without the attestation conditions, explicit
//! negated-condition Denies back the Allow, and administrators cannot use the key.

use serde_json::Value;

const POLICY: &str = include_str!("../../../deploy-ec2/kms-key-policy.json");

/// Condition keys the release must be bound to (PCR0 is spelled ImageSha384).
const ATTESTATION_KEYS: [&str; 3] = [
    "kms:RecipientAttestation:ImageSha384",
    "kms:RecipientAttestation:PCR1",
    "kms:RecipientAttestation:PCR2",
];

/// Operations that hand out key material or plaintext.
const RELEASING: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// Operations nobody may be allowed: each could wrap a known key, re-wrap under another key,
/// or delegate use of the key past the policy.
const FORBIDDEN: [&str; 6] = [
    "kms:Encrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
    "kms:GenerateDataKeyPair",
    "kms:DeriveSharedSecret",
];

fn policy() -> Value {
    serde_json::from_str(POLICY).expect("the template is valid JSON")
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list")
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("string").to_owned())
            .collect(),
        Value::Null => vec![],
        other => panic!("not a string or list: {other}"),
    }
}

/// IAM action matching: case-insensitive, `*` and `?` wildcards.
fn matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

fn covers(statement: &Value, action: &str) -> bool {
    assert!(
        statement.get("NotAction").is_none(),
        "NotAction is not used: {statement}"
    );
    list(&statement["Action"])
        .iter()
        .any(|p| matches(p, action))
}

fn is_allow(s: &Value) -> bool {
    s["Effect"] == "Allow"
}

#[test]
fn the_template_is_a_key_policy_with_known_placeholders() {
    let p = policy();
    assert_eq!(p["Version"], "2012-10-17");
    let mut rest = POLICY;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("closed placeholder") + start;
        let name = &rest[start + 2..end];
        assert!(
            [
                "ACCOUNT_ID",
                "KEY_ADMIN_ROLE",
                "INSTANCE_ROLE",
                "PCR0",
                "PCR1",
                "PCR2"
            ]
            .contains(&name),
            "unknown placeholder {name}"
        );
        rest = &rest[end..];
    }
    for s in statements(&p) {
        assert!(s["Sid"].is_string(), "every statement is named: {s}");
        assert!(
            s.get("NotPrincipal").is_none() && s.get("NotResource").is_none(),
            "no Not* escape hatches: {s}"
        );
    }
}

#[test]
fn nothing_releases_the_key_without_the_attestation_conditions() {
    let p = policy();
    let mut releasing_allows = 0;
    for s in statements(&p).iter().filter(|s| is_allow(s)) {
        for action in RELEASING {
            if !covers(s, action) {
                continue;
            }
            releasing_allows += 1;
            let cond = &s["Condition"]["StringEqualsIgnoreCase"];
            for key in ATTESTATION_KEYS {
                let value = cond[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{} allows {action} without {key}", s["Sid"]));
                assert!(value.starts_with("${PCR"), "{key} holds a PCR placeholder");
            }
            let conditions = s["Condition"].as_object().expect("conditions");
            assert_eq!(
                conditions.len(),
                1,
                "no IfExists or other operator weakens it: {s}"
            );
            let principal = list(&s["Principal"]["AWS"]);
            assert_eq!(
                principal,
                ["arn:aws:iam::${ACCOUNT_ID}:role/${INSTANCE_ROLE}"],
                "only the instance role"
            );
        }
    }
    assert!(
        releasing_allows > 0,
        "the enclave is allowed to release the key at all"
    );
}

#[test]
fn the_enclave_may_both_provision_and_release() {
    // Provisioning is GenerateDataKey + Recipient, release is Decrypt + Recipient: each needs
    // its own Allow (under the conditions the test above checks), or the enclave cannot start.
    let p = policy();
    for action in RELEASING {
        assert!(
            statements(&p)
                .iter()
                .any(|s| is_allow(s) && covers(s, action)),
            "no statement allows {action}"
        );
    }
}

#[test]
fn explicit_negated_denies_back_each_condition() {
    let p = policy();
    for key in ATTESTATION_KEYS {
        let deny = statements(&p)
            .iter()
            .filter(|s| s["Effect"] == "Deny" && s["Principal"] == "*")
            .find(|s| {
                let cond = s["Condition"].as_object();
                // One operator with exactly one key: conditions inside a statement are ANDed,
                // so a Deny naming three keys would only fire when all three mismatch.
                cond.is_some_and(|c| {
                    c.len() == 1
                        && c.get("StringNotEqualsIgnoreCase")
                            .and_then(Value::as_object)
                            .is_some_and(|keys| keys.len() == 1 && keys.contains_key(key))
                })
            })
            .unwrap_or_else(|| panic!("no single-key negated Deny for {key}"));
        for action in RELEASING {
            assert!(covers(deny, action), "the Deny for {key} covers {action}");
        }
    }
}

#[test]
fn forbidden_operations_are_never_allowed_and_always_denied() {
    let p = policy();
    for action in FORBIDDEN {
        for s in statements(&p).iter().filter(|s| is_allow(s)) {
            assert!(!covers(s, action), "{} allows {action}", s["Sid"]);
        }
        assert!(
            statements(&p).iter().any(|s| s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && s.get("Condition").is_none()
                && covers(s, action)),
            "{action} is denied to everyone"
        );
    }
}

#[test]
fn administrators_and_root_cannot_use_the_key() {
    let p = policy();
    for s in statements(&p).iter().filter(|s| is_allow(s)) {
        let principals = list(&s["Principal"]["AWS"]);
        if principals
            .iter()
            .any(|p| p.ends_with(":root") || p.contains("${KEY_ADMIN_ROLE}"))
        {
            for pattern in list(&s["Action"]) {
                assert!(
                    !pattern.contains('*'),
                    "{}: no wildcard actions ({pattern})",
                    s["Sid"]
                );
            }
            for action in RELEASING.iter().chain(FORBIDDEN.iter()) {
                assert!(!covers(s, action), "{} allows {action}", s["Sid"]);
            }
            assert!(s.get("Condition").is_none());
        }
    }
}

#[test]
fn wildcard_matching_is_iam_like() {
    assert!(matches("kms:*", "kms:Decrypt"));
    assert!(matches("kms:ReEncrypt*", "kms:ReEncryptFrom"));
    assert!(matches("KMS:decrypt", "kms:Decrypt"));
    assert!(matches("*", "kms:Decrypt"));
    assert!(!matches("kms:Describe*", "kms:Decrypt"));
    assert!(matches("kms:Generate?ataKey", "kms:GenerateDataKey"));
}
