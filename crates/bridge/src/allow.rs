//! Egress targets (`host:port`) and allow-lists of them.
//!
//! A target is an exact DNS name or IP address and an exact port; there are no wildcards,
//! ranges or CIDR blocks, so a list can be read and audited line by line. Names compare
//! case-insensitively (they are stored lowercase); IP addresses compare as addresses, so
//! `[0:0::1]:443` and `[::1]:443` are the same target.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The longest DNS name (RFC 1035), which also bounds the egress header.
pub(crate) const MAX_HOST_LEN: usize = 253;

/// Why a `host:port` did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Nothing was given.
    #[error("empty target (expected host:port)")]
    Empty,
    /// No `:port` part.
    #[error("`{0}` has no port (expected host:port, IPv6 as [addr]:port)")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("`{0}` has an invalid port (expected 1-65535)")]
    BadPort(String),
    /// A `*` or other pattern: only exact names are allowed.
    #[error("`{0}`: wildcards are not allowed, list each host exactly")]
    Wildcard(String),
    /// The host is neither an IP address nor a valid DNS name.
    #[error("`{0}` is not a valid host name or IP address")]
    BadHost(String),
}

/// Why an allow-list did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowListError {
    /// One entry is malformed.
    #[error("allow-list line {line}: {source}")]
    Entry {
        /// 1-based line (or position, for lists given as arguments).
        line: usize,
        /// What is wrong with it.
        #[source]
        source: TargetError,
    },
}

/// A host: an IP address or a lowercase DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
}

impl Host {
    /// Parses a bare host (no port, no brackets).
    pub fn parse(s: &str) -> Result<Self, TargetError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if s.contains('*') {
            return Err(TargetError::Wildcard(s.to_owned()));
        }
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if !valid_dns_name(&name) {
            return Err(TargetError::BadHost(s.to_owned()));
        }
        Ok(Host::Name(name))
    }
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // All-numeric names are IPv4 look-alikes (`1.2.3`, `010.0.0.1`); refuse them.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// One egress target: an exact host and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The host.
    pub host: Host,
    /// The port (never 0).
    pub port: u16,
}

impl Target {
    /// The host as the header carries it and as TCP connects to it (IPv6 without brackets).
    pub fn host_str(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::BadHost(s.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| TargetError::MissingPort(s.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(TargetError::BadHost(s.to_owned()));
            }
            (host, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| TargetError::MissingPort(s.to_owned()))?;
            if host.contains(':') {
                // A bare IPv6 address: the port is ambiguous without brackets.
                return Err(TargetError::MissingPort(s.to_owned()));
            }
            (host, port)
        };
        if port.contains('*') || host.contains('*') {
            return Err(TargetError::Wildcard(s.to_owned()));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(TargetError::BadPort(s.to_owned())),
        };
        Ok(Target {
            host: Host::parse(host)?,
            port,
        })
    }
}

impl TryFrom<String> for Target {
    type Error = TargetError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Target> for String {
    fn from(t: Target) -> Self {
        t.to_string()
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A set of exact egress targets. Empty means nothing is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct AllowList {
    targets: BTreeSet<Target>,
}

impl AllowList {
    /// A list of exactly these targets.
    pub fn new(targets: impl IntoIterator<Item = Target>) -> Self {
        Self {
            targets: targets.into_iter().collect(),
        }
    }

    /// Parses entries given one per argument (e.g. repeated `--allow`).
    pub fn from_entries<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<Self, AllowListError> {
        let mut targets = BTreeSet::new();
        for (i, e) in entries.into_iter().enumerate() {
            let t = e.as_ref().parse().map_err(|source| AllowListError::Entry {
                line: i + 1,
                source,
            })?;
            targets.insert(t);
        }
        Ok(Self { targets })
    }

    /// Parses a file's text: one `host:port` a line; blank lines and `#` comments ignored.
    pub fn parse_text(text: &str) -> Result<Self, AllowListError> {
        let mut targets = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let t = line.parse().map_err(|source| AllowListError::Entry {
                line: i + 1,
                source,
            })?;
            targets.insert(t);
        }
        Ok(Self { targets })
    }

    /// Whether `target` is on the list.
    pub fn allows(&self, target: &Target) -> bool {
        self.targets.contains(target)
    }

    /// Adds the entries of `other`.
    pub fn extend(&mut self, other: AllowList) {
        self.targets.extend(other.targets);
    }

    /// The targets, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter()
    }

    /// How many targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, TargetError>) {
        let got = input.parse::<Target>().map(|t| t.to_string());
        assert_eq!(got, expected.map(str::to_owned), "input {input:?}");
    }

    #[test]
    fn targets_parse_exactly() {
        check(
            "kms.eu-west-1.amazonaws.com:443",
            Ok("kms.eu-west-1.amazonaws.com:443"),
        );
        check(
            "KMS.EU-West-1.amazonaws.com.:443",
            Ok("kms.eu-west-1.amazonaws.com:443"),
        );
        check("10.0.0.5:2379", Ok("10.0.0.5:2379"));
        check("[0:0::1]:443", Ok("[::1]:443"));
        check(
            " fullnode.mainnet.sui.io:443 ",
            Ok("fullnode.mainnet.sui.io:443"),
        );
        check("", Err(TargetError::Empty));
        check(
            "example.com",
            Err(TargetError::MissingPort("example.com".into())),
        );
        check("::1:443", Err(TargetError::MissingPort("::1:443".into())));
        check(
            "example.com:0",
            Err(TargetError::BadPort("example.com:0".into())),
        );
        check(
            "example.com:65536",
            Err(TargetError::BadPort("example.com:65536".into())),
        );
        check(
            "example.com:+44",
            Err(TargetError::BadPort("example.com:+44".into())),
        );
        check(
            "*.amazonaws.com:443",
            Err(TargetError::Wildcard("*.amazonaws.com:443".into())),
        );
        check(
            "example.com:*",
            Err(TargetError::Wildcard("example.com:*".into())),
        );
        check(
            "exa mple.com:443",
            Err(TargetError::BadHost("exa mple.com".into())),
        );
        check("-bad.com:443", Err(TargetError::BadHost("-bad.com".into())));
        check("a..b:443", Err(TargetError::BadHost("a..b".into())));
        check(
            "010.0.0.1:443",
            Err(TargetError::BadHost("010.0.0.1".into())),
        );
        check("[nope]:443", Err(TargetError::BadHost("[nope]:443".into())));
        check(
            &format!("{}:443", "a".repeat(64)),
            Err(TargetError::BadHost("a".repeat(64))),
        );
    }

    #[test]
    fn allow_list_file_names_the_bad_line() {
        let list = AllowList::parse_text(
            "# egress\nkms.eu-west-1.amazonaws.com:443\n\n10.0.0.5:2379 # etcd\n",
        )
        .expect("valid list");
        assert_eq!(list.len(), 2);
        assert!(list.allows(&"10.0.0.5:2379".parse().expect("target")));
        assert!(!list.allows(&"10.0.0.5:2380".parse().expect("target")));
        assert!(!list.allows(&"kms.eu-west-2.amazonaws.com:443".parse().expect("target")));
        let err = AllowList::parse_text("a.com:1\nb.com\n").expect_err("line 2 has no port");
        assert_eq!(
            err.to_string(),
            "allow-list line 2: `b.com` has no port (expected host:port, IPv6 as [addr]:port)"
        );
    }

    #[test]
    fn allow_list_deserializes_from_strings() {
        let list: AllowList =
            serde_json::from_str(r#"["a.example:443", "[::1]:80"]"#).expect("valid json list");
        assert_eq!(list.len(), 2);
        let err = serde_json::from_str::<AllowList>(r#"["*.example:443"]"#).expect_err("wildcard");
        assert!(
            err.to_string().contains("wildcards are not allowed"),
            "{err}"
        );
    }
}
