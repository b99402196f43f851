//! Building the kubeconfig that points kubectl at the K3s-DaaS proxy.
//!
//! The result has exactly one cluster, one user and one context, all named
//! [`GenerateSpec::name`], and selects that context. The cluster is the proxy's `https://` URL
//! with its certificate pinned in `certificate-authority-data`; `insecure-skip-tls-verify` is
//! never written. The user is a static bearer token or an exec credential plugin entry that
//! runs this crate's binary (`kubeconfig credential …`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use daas_seal::{Address, NodeName, Role};
use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{PemObject, SectionKind};
use secrecy::{ExposeSecret, SecretString};

use crate::credential::EXEC_API_VERSION;

#[cfg(test)]
mod tests;

/// The longest token lifetime an exec entry may ask for; the plugin enforces the same bound.
pub const MAX_EXEC_TTL: Duration = Duration::from_secs(3600);

/// Why a kubeconfig could not be built. No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "the server URL uses http://: kubectl would send the bearer token in cleartext; \
         use the proxy's https:// address"
    )]
    PlaintextServer,
    /// The reason is fixed text: the URL itself is not repeated, since it may hold credentials.
    #[error("invalid server URL: {0}")]
    InvalidServer(&'static str),
    #[error("the CA file is not valid PEM")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    #[error("the CA file holds no PEM CERTIFICATE block")]
    CaNoCertificate,
    #[error("the CA file holds a private key; pass the proxy's certificate only")]
    CaPrivateKey,
    #[error("CA certificate #{index} is not a usable X.509 certificate")]
    CaCertificate {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    #[error("invalid namespace {0:?}: must be an RFC 1123 label (a-z, 0-9, '-', at most 63)")]
    InvalidNamespace(String),
    #[error("the token is empty")]
    EmptyToken,
    #[error("the token holds whitespace, control or non-ASCII characters")]
    InvalidToken,
    #[error(
        "the {what} path must be absolute and UTF-8: kubectl runs the plugin from any directory"
    )]
    PluginPath { what: &'static str },
    #[error("invalid key selector: an address or alias, not starting with '-'")]
    InvalidKeySelector,
    #[error("a worker stake's token needs a node name")]
    MissingNodeName,
    #[error("only worker stakes' tokens carry a node name")]
    UnexpectedNodeName,
    #[error("the token lifetime must be between 1s and 1h: exec credentials are short-lived")]
    Ttl,
}

/// An `https://` server URL without credentials, query or fragment, e.g.
/// `https://203.0.113.7:8080`. `http://` is refused: kubectl would send the token in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn parse(s: &str) -> Result<Self, GenerateError> {
        use GenerateError::{InvalidServer, PlaintextServer};
        if s.contains('#') {
            return Err(InvalidServer("a fragment is not allowed"));
        }
        let uri: http::Uri = s.parse().map_err(|_| InvalidServer("not a URL"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == http::uri::Scheme::HTTPS => {}
            Some(scheme) if *scheme == http::uri::Scheme::HTTP => return Err(PlaintextServer),
            Some(_) => return Err(InvalidServer("the scheme must be https://")),
            None => return Err(InvalidServer("missing the https:// scheme")),
        }
        let authority = uri.authority().ok_or(InvalidServer("missing the host"))?;
        if authority.as_str().contains('@') {
            return Err(InvalidServer("credentials do not belong in the URL"));
        }
        if authority.host().is_empty() {
            return Err(InvalidServer("missing the host"));
        }
        if uri.query().is_some() {
            return Err(InvalidServer("a query string is not allowed"));
        }
        let path = uri.path().trim_end_matches('/');
        Ok(ServerUrl(format!("https://{authority}{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServerUrl {
    type Err = GenerateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServerUrl::parse(s)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One or more X.509 certificates to pin as the cluster's certificate authority.
///
/// Parsed from PEM; only the `CERTIFICATE` blocks are kept and re-encoded, so nothing else in
/// the input file reaches the kubeconfig. A file that contains a private key is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    certs: Vec<CertificateDer<'static>>,
}

impl CaBundle {
    pub fn from_pem(pem: &[u8]) -> Result<Self, GenerateError> {
        if contains(pem, b"PRIVATE KEY-----") {
            return Err(GenerateError::CaPrivateKey);
        }
        let mut certs = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            let (kind, der) = section.map_err(GenerateError::CaPem)?;
            if kind == SectionKind::Certificate {
                certs.push(CertificateDer::from(der));
            }
        }
        if certs.is_empty() {
            return Err(GenerateError::CaNoCertificate);
        }
        // The same parse rustls does for a trust anchor: proves each block is an X.509
        // certificate a TLS client can pin, not just base64 between PEM markers.
        let mut roots = rustls::RootCertStore::empty();
        for (index, cert) in certs.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|source| GenerateError::CaCertificate {
                    index: index + 1,
                    source,
                })?;
        }
        Ok(CaBundle { certs })
    }

    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The certificates as PEM, 64 columns, one block each.
    pub fn to_pem(&self) -> String {
        let mut out = String::new();
        for cert in &self.certs {
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            let b64 = Base64::encode_string(cert.as_ref());
            let mut rest = b64.as_str();
            while !rest.is_empty() {
                // Base64 is ASCII, so every index is a char boundary.
                let (line, tail) = rest.split_at(rest.len().min(64));
                out.push_str(line);
                out.push('\n');
                rest = tail;
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How kubectl authenticates to the proxy.
#[derive(Debug, Clone)]
pub enum UserCredential {
    /// A bearer token stored in the kubeconfig (`users[].user.token`).
    Token(SecretString),
    /// An exec credential plugin entry that mints a fresh Seal token when the last expires.
    Exec(ExecPlugin),
}

/// The `kubeconfig credential …` invocation an exec entry records.
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    /// Absolute path of the `kubeconfig` binary (usually `std::env::current_exe()`).
    pub command: PathBuf,
    /// Sui keystore; `None` means the plugin's default (the Sui CLI's). Must be absolute.
    pub keystore: Option<PathBuf>,
    /// Key address or alias (never the private key).
    pub key: Option<String>,
    pub cluster: Address,
    pub stake: Address,
    pub role: Role,
    /// Worker stakes only.
    pub node_name: Option<NodeName>,
    pub token_epoch: u64,
    pub ttl: Duration,
}

impl ExecPlugin {
    fn args(&self) -> Result<Vec<String>, GenerateError> {
        match (self.role, &self.node_name) {
            (Role::Worker, None) => return Err(GenerateError::MissingNodeName),
            (Role::User | Role::Admin, Some(_)) => return Err(GenerateError::UnexpectedNodeName),
            _ => {}
        }
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_EXEC_TTL {
            return Err(GenerateError::Ttl);
        }
        let mut args = vec![
            "credential".to_owned(),
            "--cluster".to_owned(),
            self.cluster.to_string(),
            "--stake".to_owned(),
            self.stake.to_string(),
            "--role".to_owned(),
            self.role.to_string(),
        ];
        if let Some(name) = &self.node_name {
            args.extend(["--node-name".to_owned(), name.to_string()]);
        }
        if let Some(keystore) = &self.keystore {
            let keystore = absolute_utf8(keystore, "keystore")?;
            args.extend(["--keystore".to_owned(), keystore.to_owned()]);
        }
        if let Some(key) = &self.key {
            if key.is_empty() || key.starts_with('-') || key.chars().any(char::is_control) {
                return Err(GenerateError::InvalidKeySelector);
            }
            args.extend(["--key".to_owned(), key.clone()]);
        }
        args.extend([
            "--epoch".to_owned(),
            self.token_epoch.to_string(),
            "--ttl".to_owned(),
            humantime::format_duration(self.ttl).to_string(),
        ]);
        Ok(args)
    }
}

fn absolute_utf8<'a>(path: &'a Path, what: &'static str) -> Result<&'a str, GenerateError> {
    match path.to_str() {
        Some(s) if path.is_absolute() => Ok(s),
        _ => Err(GenerateError::PluginPath { what }),
    }
}

/// Everything a kubeconfig for one K3s-DaaS cluster needs.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    /// Name of the cluster, user and context entries (e.g. `k3s-daas`).
    pub name: String,
    pub server: ServerUrl,
    pub ca: CaBundle,
    /// Default namespace of the context.
    pub namespace: Option<String>,
    pub credential: UserCredential,
}

/// Builds the kubeconfig: one cluster, user and context named `spec.name`, selected as the
/// current context.
pub fn generate(spec: &GenerateSpec) -> Result<Kubeconfig, GenerateError> {
    let name = &spec.name;
    if name.is_empty() {
        return Err(GenerateError::InvalidName("empty"));
    }
    if name.len() > 253 {
        return Err(GenerateError::InvalidName("longer than 253 bytes"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(GenerateError::InvalidName(
            "whitespace and control characters are not allowed",
        ));
    }
    if let Some(ns) = &spec.namespace
        && !is_dns_label(ns)
    {
        return Err(GenerateError::InvalidNamespace(ns.clone()));
    }
    let auth_info = match &spec.credential {
        UserCredential::Token(token) => {
            let t = token.expose_secret();
            if t.is_empty() {
                return Err(GenerateError::EmptyToken);
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(GenerateError::InvalidToken);
            }
            AuthInfo {
                token: Some(token.clone()),
                ..AuthInfo::default()
            }
        }
        UserCredential::Exec(plugin) => AuthInfo {
            exec: Some(ExecConfig {
                api_version: Some(EXEC_API_VERSION.to_owned()),
                command: Some(absolute_utf8(&plugin.command, "plugin command")?.to_owned()),
                args: Some(plugin.args()?),
                install_hint: Some(
                    "The K3s-DaaS `kubeconfig` binary is not at this path any more; install it \
                     and run `kubeconfig generate --exec` again."
                        .to_owned(),
                ),
                interactive_mode: Some(ExecInteractiveMode::Never),
                provide_cluster_info: false,
                ..ExecConfig::default()
            }),
            ..AuthInfo::default()
        },
    };
    Ok(Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(spec.server.to_string()),
                certificate_authority_data: Some(Base64::encode_string(
                    spec.ca.to_pem().as_bytes(),
                )),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(auth_info),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                namespace: spec.namespace.clone(),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(name.clone()),
        ..Kubeconfig::default()
    })
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}
