//! What crosses the proxy in headers: the bearer token in, the caller's identity out.
//!
//! Every client-supplied credential or identity header (`Authorization`,
//! `Proxy-Authorization`, `Impersonate-*`, `X-Remote-*`) is removed before the request goes
//! upstream; the proxy then sets Kubernetes request-header authentication
//! (`X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group`, `X-Remote-Extra-*`), which the API
//! server accepts only over a connection presenting the front-proxy client certificate.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::auth::Identity;

pub(crate) const REMOTE_USER: &str = "x-remote-user";
pub(crate) const REMOTE_UID: &str = "x-remote-uid";
pub(crate) const REMOTE_GROUP: &str = "x-remote-group";
pub(crate) const REMOTE_EXTRA_PREFIX: &str = "x-remote-extra-";

/// Why the `Authorization` header did not yield a bearer token. Never carries the header.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("more than one Authorization header")]
    Duplicate,
    #[error("Authorization header is not a bearer token")]
    NotBearer,
}

impl TokenError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Duplicate => "duplicate_header",
            TokenError::NotBearer => "not_bearer",
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>` (scheme case-insensitive, exactly one
/// header, token of visible ASCII without spaces).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, TokenError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(TokenError::Missing)?;
    if values.next().is_some() {
        return Err(TokenError::Duplicate);
    }
    let value = value.to_str().map_err(|_| TokenError::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::NotBearer);
    }
    Ok(token)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies also drop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those named in `Connection`. `Upgrade` is removed
/// too unless `keep_upgrade` (then `Connection: Upgrade` is restored).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade && headers.contains_key(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether a header carries a credential, an identity or a client address that only the
/// proxy may set (the API server audits `X-Forwarded-For`/`X-Real-Ip` as source IPs).
pub(crate) fn is_identity_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "authorization"
        || n == "x-forwarded-for"
        || n == "x-real-ip"
        || n.starts_with("impersonate-")
        || n.starts_with("x-remote-")
}

/// WebSocket clients may carry a bearer token as a subprotocol
/// (`base64url.bearer.authorization.k8s.io.<token>`); that entry is a credential and never
/// goes upstream. Other subprotocols (e.g. `v5.channel.k8s.io`) are kept.
fn strip_bearer_subprotocol(headers: &mut HeaderMap) {
    let name = header::SEC_WEBSOCKET_PROTOCOL;
    let kept: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization.k8s.io."))
        .map(str::to_owned)
        .collect();
    if headers.contains_key(&name) {
        headers.remove(&name);
        if let Ok(v) = HeaderValue::from_str(&kept.join(", "))
            && !kept.is_empty()
        {
            headers.insert(name, v);
        }
    }
}

/// Turns the client's headers into the upstream request's: strips credentials, identity and
/// hop-by-hop headers (and `Host`: the client sets it for the upstream), then adds `identity`
/// as request-header authentication.
pub(crate) fn prepare_upstream(
    headers: &mut HeaderMap,
    identity: &Identity,
    upgrade: bool,
    remote: std::net::IpAddr,
) {
    strip_hop_by_hop(headers, upgrade);
    strip_bearer_subprotocol(headers);
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
    headers.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(&remote.to_string()) {
        headers.insert("x-forwarded-for", v);
    }
    add_identity(headers, identity);
}

/// Prepares a request whose own bearer token the API server is to judge (service-account
/// tokens of pods, passed through the :6443 front): hop-by-hop and every identity header but
/// `Authorization` removed, no request-header identity added. With no `X-Remote-User` the API
/// server's request-header authenticator yields no user and its token authenticator decides.
pub(crate) fn prepare_passthrough(
    headers: &mut HeaderMap,
    upgrade: bool,
    remote: std::net::IpAddr,
) {
    strip_hop_by_hop(headers, upgrade);
    strip_bearer_subprotocol(headers);
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n) && *n != header::AUTHORIZATION)
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
    headers.remove(header::HOST);
    if let Ok(v) = HeaderValue::from_str(&remote.to_string()) {
        headers.insert("x-forwarded-for", v);
    }
}

/// Appends request-header authentication for `identity`.
pub(crate) fn add_identity(headers: &mut HeaderMap, identity: &Identity) {
    // Identity strings come from verified claims and role names: always valid header values.
    // A value that is not is skipped rather than panicking (and would fail authorization).
    if let Ok(v) = HeaderValue::from_str(&identity.username) {
        headers.insert(REMOTE_USER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&identity.uid) {
        headers.insert(REMOTE_UID, v);
    }
    for group in &identity.groups {
        if let Ok(v) = HeaderValue::from_str(group) {
            headers.append(REMOTE_GROUP, v);
        }
    }
    for (key, values) in &identity.extra {
        let Ok(name) = HeaderName::from_bytes(extra_header(key).as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// `X-Remote-Extra-<key>` with the key escaped as Go's `url.PathEscape` would (the API server
/// unescapes it with `url.PathUnescape`), so keys like `k3s-daas.io/stake-id` survive.
pub(crate) fn extra_header(key: &str) -> String {
    let mut out = String::with_capacity(REMOTE_EXTRA_PREFIX.len() + key.len() + 8);
    out.push_str(REMOTE_EXTRA_PREFIX);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Whether the request asks for a protocol upgrade (SPDY or WebSocket for exec, attach,
/// port-forward).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// The comma-separated tokens of every `Connection` header, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use daas_seal::{Address, Role};

    const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn identity() -> Identity {
        Identity {
            username: "sui:0xabc".into(),
            uid: "0xdef".into(),
            groups: vec!["k3s-daas:user".into(), "system:authenticated".into()],
            extra: BTreeMap::from([("k3s-daas.io/stake-id".into(), vec!["0xdef".into()])]),
            address: Address::ZERO,
            role: Role::User,
            stake: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc.def")])),
            Ok("abc.def")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")])),
            Ok("abc")
        );
        assert_eq!(bearer_token(&headers(&[])), Err(TokenError::Missing));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            Err(TokenError::Missing)
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic dXNlcjpwdw==")])),
            Err(TokenError::NotBearer)
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer a b")])),
            Err(TokenError::NotBearer)
        );
        assert_eq!(
            bearer_token(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            Err(TokenError::Duplicate)
        );
    }

    #[test]
    fn strips_client_identity_and_sets_ours() {
        let mut h = headers(&[
            ("authorization", "Bearer secret"),
            ("proxy-authorization", "Basic x"),
            ("impersonate-user", "admin"),
            ("Impersonate-Group", "system:masters"),
            ("impersonate-extra-scopes", "x"),
            ("x-remote-user", "admin"),
            ("x-remote-group", "system:masters"),
            ("x-remote-extra-foo", "bar"),
            ("x-remote-uid", "0"),
            ("host", "evil"),
            ("connection", "keep-alive, x-smuggle"),
            ("x-smuggle", "1"),
            ("transfer-encoding", "chunked"),
            ("accept", "application/json"),
            ("user-agent", "kubectl"),
            ("x-forwarded-for", "10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            (
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.c2VjcmV0, v5.channel.k8s.io",
            ),
        ]);
        prepare_upstream(&mut h, &identity(), false, LOCAL);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "accept",
                "sec-websocket-protocol",
                "user-agent",
                "x-forwarded-for",
                "x-remote-extra-k3s-daas.io%2fstake-id",
                "x-remote-group",
                "x-remote-uid",
                "x-remote-user"
            ]
        );
        assert_eq!(h[REMOTE_USER], "sui:0xabc");
        assert_eq!(h[REMOTE_UID], "0xdef");
        assert_eq!(
            h["x-forwarded-for"], "127.0.0.1",
            "the real peer, not the client's claim"
        );
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
        let groups: Vec<_> = h.get_all(REMOTE_GROUP).iter().collect();
        assert_eq!(groups, ["k3s-daas:user", "system:authenticated"]);
        assert!(h.values().all(|v| v != "Bearer secret"));
    }

    #[test]
    fn upgrade_survives_only_when_asked() {
        let base = [
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ];
        let mut h = headers(&base);
        assert!(is_upgrade(&h));
        prepare_upstream(&mut h, &identity(), true, LOCAL);
        assert_eq!(h[header::UPGRADE], "SPDY/3.1");
        assert_eq!(h[header::CONNECTION], "Upgrade");
        let mut h = headers(&base);
        prepare_upstream(&mut h, &identity(), false, LOCAL);
        assert!(!h.contains_key(header::UPGRADE));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
    }

    proptest::proptest! {
        /// Whatever headers a client sends, only the proxy's identity reaches the upstream:
        /// every identity header upstream is one the proxy set, no hop-by-hop header
        /// survives, and token parsing never panics.
        #[test]
        fn no_client_identity_survives(
            pairs in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("authorization".to_owned()),
                        proptest::strategy::Just("impersonate-user".to_owned()),
                        proptest::strategy::Just("impersonate-extra-scopes".to_owned()),
                        proptest::strategy::Just("x-remote-user".to_owned()),
                        proptest::strategy::Just("x-remote-group".to_owned()),
                        proptest::strategy::Just("X-Remote-Extra-k3s-daas.io%2fstake-id".to_owned()),
                        proptest::strategy::Just("connection".to_owned()),
                        proptest::strategy::Just("upgrade".to_owned()),
                        proptest::strategy::Just("transfer-encoding".to_owned()),
                        "[a-zA-Z][a-zA-Z0-9-]{0,20}",
                    ],
                    "[ -~]{0,40}",
                ),
                0..24,
            ),
            upgrade in proptest::bool::ANY,
        ) {
            let mut h = HeaderMap::new();
            for (k, v) in &pairs {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    h.append(k, v);
                }
            }
            let _ = bearer_token(&h);
            let id = identity();
            prepare_upstream(&mut h, &id, upgrade, LOCAL);
            proptest::prop_assert!(!h.contains_key(header::AUTHORIZATION));
            proptest::prop_assert!(!h.keys().any(|k| k.as_str().starts_with("impersonate-")));
            proptest::prop_assert!(!h.contains_key(header::TRANSFER_ENCODING));
            proptest::prop_assert_eq!(h.get_all(REMOTE_USER).iter().count(), 1);
            proptest::prop_assert_eq!(&h[REMOTE_USER], "sui:0xabc");
            let groups: Vec<_> = h.get_all(REMOTE_GROUP).iter().collect();
            proptest::prop_assert_eq!(groups, vec!["k3s-daas:user", "system:authenticated"]);
            for (name, value) in &h {
                if name.as_str().starts_with(REMOTE_EXTRA_PREFIX) {
                    proptest::prop_assert_eq!(name.as_str(), "x-remote-extra-k3s-daas.io%2fstake-id");
                    proptest::prop_assert_eq!(value, "0xdef");
                }
            }
            if !upgrade {
                proptest::prop_assert!(!h.contains_key(header::UPGRADE));
                proptest::prop_assert!(!h.contains_key(header::CONNECTION));
            }
        }
    }

    #[test]
    fn extra_keys_are_path_escaped() {
        assert_eq!(
            extra_header("k3s-daas.io/stake-id"),
            "x-remote-extra-k3s-daas.io%2fstake-id"
        );
        assert_eq!(extra_header("a b%"), "x-remote-extra-a%20b%25");
    }
}
