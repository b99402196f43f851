//! The per-node join credential: a Kubernetes bootstrap token (`<id>.<secret>`, stored as the
//! Secret `kube-system/bootstrap-token-<id>` in the upstream format) and the K3s node password
//! that binds the node name (`kube-system/<name>.node-password.k3s`, scrypt hash).
//!
//! Formats: `k8s.io/cluster-bootstrap/token/api` (token Secret keys), K3s
//! `pkg/nodepassword` and `pkg/authenticator/hash/scrypt.go` (`$1:<salt hex>:15:8:1:<base64>`).
//! See `notes/worker-join.md` §1.3 and §1.5.

use std::collections::BTreeMap;
use std::fmt;

use base64ct::Encoding;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Extra group every K3s-DaaS bootstrap token carries (must start with `system:bootstrappers:`).
pub const WORKER_BOOTSTRAP_GROUP: &str = "system:bootstrappers:k3s-daas:worker";
/// Label on the Secrets the master creates for a node: its node name.
pub const NODE_LABEL: &str = "k3s-daas.io/node";
/// Annotation on those Secrets: the stake record they were issued for.
pub const STAKE_ANNOTATION: &str = "k3s-daas.io/stake";
/// Annotation on bootstrap token Secrets: the record's token epoch when it was issued.
pub const EPOCH_ANNOTATION: &str = "k3s-daas.io/token-epoch";
/// Secret type of bootstrap tokens.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Secret type of K3s node passwords (newer K3s; older ones are untyped and migrated).
pub const NODE_PASSWORD_TYPE: &str = "k3s.cattle.io/node-password";

const TOKEN_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// scrypt parameters of K3s's node-password hash: N = 2^15, r = 8, p = 1, 64-byte key.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SCRYPT_KEY_LEN: usize = 64;

/// A bootstrap token: `[a-z0-9]{6}.[a-z0-9]{16}`. The secret half is zeroized on drop and
/// never printed.
#[derive(Clone)]
pub struct BootstrapToken {
    id: String,
    secret: Zeroizing<String>,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl BootstrapToken {
    /// A fresh token from the operating system's randomness (rejection sampling: no bias).
    pub fn generate() -> Self {
        BootstrapToken {
            id: random_chars(6),
            secret: Zeroizing::new(random_chars(16)),
        }
    }

    /// Parses `<id>.<secret>`; `None` for anything else (a Seal token, garbage).
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.split_once('.')?;
        let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| TOKEN_ALPHABET.contains(&b));
        (ok(id, 6) && ok(secret, 16)).then(|| BootstrapToken {
            id: id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole token, for the join answer only.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret.as_str())
    }

    /// Constant-time comparison of the secret halves (ids are public).
    pub fn matches(&self, other: &BootstrapToken) -> bool {
        self.id == other.id && bool::from(self.secret.as_bytes().ct_eq(other.secret.as_bytes()))
    }

    /// Name of its Secret in `kube-system`.
    pub fn secret_name(&self) -> String {
        secret_name(&self.id)
    }

    /// The Secret in the upstream format: authentication only (no signing usage), the worker
    /// group, an expiry, and the node name and stake record it was issued for.
    pub fn to_secret(&self, node: &str, stake: &str, expires_at: &str, token_epoch: u64) -> Secret {
        let data = [
            ("token-id", self.id.as_str()),
            ("token-secret", self.secret.as_str()),
            ("expiration", expires_at),
            ("usage-bootstrap-authentication", "true"),
            ("auth-extra-groups", WORKER_BOOTSTRAP_GROUP),
            (
                "description",
                &format!("k3s-daas join of node {node} for stake {stake}"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
        let mut metadata = managed_meta(self.secret_name(), node, stake);
        if let Some(a) = metadata.annotations.as_mut() {
            a.insert(EPOCH_ANNOTATION.to_owned(), token_epoch.to_string());
        }
        Secret {
            metadata,
            type_: Some(BOOTSTRAP_TOKEN_TYPE.to_owned()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// Reads a token back from its Secret (as the master wrote it); `None` if it is not one.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let get = |k: &str| data.get(k).and_then(|v| std::str::from_utf8(&v.0).ok());
        Self::parse(&format!("{}.{}", get("token-id")?, get("token-secret")?))
    }
}

/// `bootstrap-token-<id>`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// `<lower(name)>.node-password.k3s`.
pub fn node_password_secret_name(node: &str) -> String {
    format!("{}.node-password.k3s", node.to_ascii_lowercase())
}

/// A node password: 16 random bytes in hex, as K3s agents generate them.
pub fn generate_node_password() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 16]);
    OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(hex::encode(bytes.as_ref()))
}

/// K3s's node-password hash: `$1:<salt hex>:15:8:1:<base64, no padding>` over scrypt with an
/// 8-byte random salt.
pub fn hash_node_password(password: &str) -> String {
    let mut salt = [0u8; 8];
    OsRng.fill_bytes(&mut salt);
    hash_with_salt(password, &salt)
}

fn hash_with_salt(password: &str, salt: &[u8]) -> String {
    let mut key = Zeroizing::new([0u8; SCRYPT_KEY_LEN]);
    // The parameters are constants within scrypt's limits and the output length is fixed and
    // valid: neither call can fail.
    if let Ok(params) = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY_LEN) {
        let _ = scrypt::scrypt(password.as_bytes(), salt, &params, key.as_mut());
    }
    format!(
        "$1:{}:{SCRYPT_LOG_N}:{SCRYPT_R}:{SCRYPT_P}:{}",
        hex::encode(salt),
        base64ct::Base64Unpadded::encode_string(key.as_ref())
    )
}

/// Checks `password` against a hash in K3s's format (constant-time on the key).
pub fn verify_node_password(password: &str, hash: &str) -> bool {
    let parts: Vec<&str> = hash.split(':').collect();
    let [version, salt, n, r, p, key] = parts.as_slice() else {
        return false;
    };
    if *version != "$1" || *n != "15" || *r != "8" || *p != "1" {
        return false;
    }
    let Ok(salt) = hex::decode(salt) else {
        return false;
    };
    let Ok(expected) = base64ct::Base64Unpadded::decode_vec(key) else {
        return false;
    };
    let ours = hash_with_salt(password, &salt);
    let Some(ours) = ours.rsplit(':').next() else {
        return false;
    };
    let Ok(ours) = base64ct::Base64Unpadded::decode_vec(ours) else {
        return false;
    };
    bool::from(ours.ct_eq(&expected))
}

/// The node-password Secret: immutable, K3s's type, the hash under `data.hash`.
pub fn node_password_secret(node: &str, stake: &str, hash: &str) -> Secret {
    Secret {
        metadata: managed_meta(node_password_secret_name(node), node, stake),
        type_: Some(NODE_PASSWORD_TYPE.to_owned()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            "hash".to_owned(),
            ByteString(hash.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn managed_meta(name: String, node: &str, stake: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some("kube-system".to_owned()),
        labels: Some(BTreeMap::from([
            (NODE_LABEL.to_owned(), node.to_owned()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "k3s-daas".to_owned(),
            ),
        ])),
        annotations: Some(BTreeMap::from([(
            STAKE_ANNOTATION.to_owned(),
            stake.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// `n` characters of [`TOKEN_ALPHABET`], uniformly (bytes ≥ 252 are drawn again).
fn random_chars(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        OsRng.fill_bytes(&mut buf);
        for b in buf {
            if out.len() == n {
                break;
            }
            if b < 252 {
                out.push(char::from(TOKEN_ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_tokens_have_the_bootstrap_format() {
        for _ in 0..64 {
            let t = BootstrapToken::generate();
            let parsed = BootstrapToken::parse(&t.expose()).unwrap();
            assert!(parsed.matches(&t));
            assert_eq!(t.id().len(), 6);
        }
        assert_ne!(
            BootstrapToken::generate().expose(),
            BootstrapToken::generate().expose()
        );
    }

    #[test]
    fn parse_refuses_other_shapes() {
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcdeF",
            "abcdef.0123456789abcdef0",
            "abcdef:0123456789abcdef",
            "k3sdaas1.eyJ.sig",
        ] {
            assert!(BootstrapToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_different_secret_does_not_match() {
        let a = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let b = BootstrapToken::parse("abcdef.0123456789abcdeg").unwrap();
        let c = BootstrapToken::parse("abcdeg.0123456789abcdef").unwrap();
        assert!(a.matches(&a.clone()));
        assert!(!a.matches(&b));
        assert!(!a.matches(&c));
        assert!(!format!("{a:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn the_secret_has_the_upstream_keys_and_no_signing_usage() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let s = t.to_secret("w-1", "0x12", "2026-12-07T06:00:00Z", 3);
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some(BOOTSTRAP_TOKEN_TYPE));
        let data = s.data.as_ref().unwrap();
        let get = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        assert_eq!(get("token-id"), "abcdef");
        assert_eq!(get("token-secret"), "0123456789abcdef");
        assert_eq!(get("usage-bootstrap-authentication"), "true");
        assert!(!data.contains_key("usage-bootstrap-signing"));
        assert_eq!(get("auth-extra-groups"), WORKER_BOOTSTRAP_GROUP);
        assert_eq!(get("expiration"), "2026-12-07T06:00:00Z");
        assert!(BootstrapToken::from_secret(&s).unwrap().matches(&t));
    }

    #[test]
    fn node_password_hash_has_k3s_format_and_verifies() {
        let hash = hash_with_salt(
            "0123456789abcdef0123456789abcdef",
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        let parts: Vec<&str> = hash.split(':').collect();
        assert_eq!(&parts[..5], ["$1", "0102030405060708", "15", "8", "1"]);
        assert_eq!(
            base64ct::Base64Unpadded::decode_vec(parts[5])
                .unwrap()
                .len(),
            64
        );
        assert!(!parts[5].ends_with('='));
        assert!(verify_node_password(
            "0123456789abcdef0123456789abcdef",
            &hash
        ));
        assert!(!verify_node_password(
            "0123456789abcdef0123456789abcdee",
            &hash
        ));
        assert!(!verify_node_password("x", "$1:zz:15:8:1:AAAA"));
        assert!(!verify_node_password("x", "$2:0102:15:8:1:AAAA"));
        let secret = node_password_secret("W-1", "0x1", &hash);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("w-1.node-password.k3s")
        );
        assert_eq!(secret.immutable, Some(true));
        assert_eq!(generate_node_password().len(), 32);
    }
}
