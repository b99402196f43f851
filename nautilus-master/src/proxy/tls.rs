//! TLS material of the front door: the proxy's serving certificate and the upstream client
//! configuration (cluster CA + front-proxy client certificate).
//!
//! The serving certificate is issued by a throwaway CA generated on first start and stored
//! under the TLS directory (`ca.crt`, `tls.crt`, `tls.key`). Kubeconfigs pin `ca.crt`. The CA
//! private key is never written anywhere: re-issuing means a new CA and a new pin, which is
//! what we want when the enclave key changes (the attested enclave certificate replaces this
//! source later).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;

/// ALPN ids offered to clients and upstream.
pub(crate) const ALPN_H2: &[u8] = b"h2";
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM private key")]
    BadKey { path: PathBuf },
    #[error(
        "{path}: private key readable by group or others (mode {mode:o}); run `chmod 600` on it"
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("{what}: {source}")]
    Pem {
        what: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("generating the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA for node certificates: {0}")]
    ClientCa(String),
    #[error("upstream URL {0:?} needs an https scheme and a host")]
    BadUpstreamUrl(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The proxy's serving identity: a CA certificate to pin and a leaf chain + key to serve.
pub struct ServerCert {
    /// PEM of the issuing CA: what kubeconfigs embed as `certificate-authority-data`.
    pub ca_pem: String,
    /// Path of `ca.crt` (what `kubeconfig generate --ca-file` takes).
    pub ca_path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// Loads `ca.crt`, `tls.crt` and `tls.key` from `dir`, generating them (CA + leaf for
    /// `sans`) when absent. `dir` is created with mode 0700, the key written with mode 0600.
    /// An existing certificate is reused as is so pins stay valid across restarts.
    pub fn load_or_generate(dir: &Path, sans: &[String]) -> Result<Self, TlsError> {
        let ca_path = dir.join("ca.crt");
        let crt_path = dir.join("tls.crt");
        let key_path = dir.join("tls.key");
        if !(ca_path.is_file() && crt_path.is_file() && key_path.is_file()) {
            generate(dir, sans)?;
        }
        let ca_pem = fs::read_to_string(&ca_path).map_err(io_err(&ca_path))?;
        let chain = read_certs(&crt_path)?;
        let key = read_key(&key_path)?;
        Ok(ServerCert {
            ca_pem,
            ca_path,
            chain,
            key,
        })
    }

    /// A certificate that exists only in memory (the enclave's attested identity); `ca_path`
    /// is empty until the caller writes the CA somewhere public.
    pub(crate) fn in_memory(
        ca_pem: String,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        ServerCert {
            ca_pem,
            ca_path: PathBuf::new(),
            chain,
            key,
        }
    }

    /// Like [`ServerCert::server_config`], and asks clients for a certificate issued by one of
    /// `client_cas` (PEM). A client without one is still served (bootstrap tokens, `/cacerts`);
    /// a certificate that does not verify fails the handshake.
    pub fn server_config_with_client_cas(
        &self,
        client_cas: &[u8],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_cas) {
            let cert = cert.map_err(|e| TlsError::ClientCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::ClientCa("no PEM certificate".into()));
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    /// rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn generate(dir: &Path, sans: &[String]) -> Result<(), TlsError> {
    create_private_dir(dir)?;
    let issued = issue_ca_and_leaf("k3s-daas proxy CA", sans)?;
    // Key first: a crash between writes leaves files that fail to load, never a cert whose key
    // is missing from disk while a pin to it was already handed out.
    write_file(
        &dir.join("tls.key"),
        issued.leaf_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(
        &dir.join("tls.crt"),
        format!("{}{}", issued.leaf.pem(), issued.ca.pem()).as_bytes(),
        0o644,
    )?;
    write_file(&dir.join("ca.crt"), issued.ca.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// A new CA (named `ca_name`, path length 0) and a serving certificate it issued for `sans`.
pub(crate) struct IssuedCa {
    pub(crate) ca: rcgen::Certificate,
    pub(crate) issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub(crate) leaf: rcgen::Certificate,
    pub(crate) leaf_key: rcgen::KeyPair,
}

pub(crate) fn issue_ca_and_leaf(ca_name: &str, sans: &[String]) -> Result<IssuedCa, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(sans.to_vec())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "k3s-daas proxy");
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
    Ok(IssuedCa {
        ca,
        issuer,
        leaf,
        leaf_key,
    })
}

/// Where and how to reach the Kubernetes API server.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Cluster CA (PEM) the API server's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Front-proxy client certificate chain (PEM), CN in `--requestheader-allowed-names`.
    pub client_cert_pem: Vec<u8>,
    /// Its private key (PEM).
    pub client_key_pem: Vec<u8>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Reads the three PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(UpstreamTls {
            ca_pem: fs::read(ca).map_err(io_err(ca))?,
            client_cert_pem: fs::read(cert).map_err(io_err(cert))?,
            client_key_pem: fs::read(key).map_err(io_err(key))?,
        })
    }

    /// A rustls client configuration that verifies the upstream against the cluster CA only
    /// and presents the front-proxy client certificate. `alpn` picks the offered protocols.
    pub(crate) fn client_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|source| TlsError::Pem {
                what: "upstream CA".into(),
                source,
            })?;
            roots.add(cert)?;
            found = true;
        }
        if !found {
            return Err(TlsError::NoCertificate {
                path: "upstream CA".into(),
            });
        }
        let chain = CertificateDer::pem_slice_iter(&self.client_cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "front-proxy client certificate".into(),
                source,
            })?;
        let key = PrivateKeyDer::from_pem_slice(&self.client_key_pem).map_err(|source| {
            TlsError::Pem {
                what: "front-proxy client key".into(),
                source,
            }
        })?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The TLS server name for a URL host (an IP literal or a DNS name).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadUpstreamUrl(host.to_owned()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsError::Pem {
            what: path.display().to_string(),
            source,
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the serving key, refusing one that group or others can read: a key someone else
/// may have copied is not a key to serve with.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(io_err(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    PrivateKeyDer::from_pem_file(path).map_err(|_| TlsError::BadKey {
        path: path.to_owned(),
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    crate::private_fs::create_private_dir(dir).map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::private_fs::write_atomic(path, bytes, mode).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let first = ServerCert::load_or_generate(&tls, &sans).unwrap();
        let mode = fs::metadata(tls.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&tls).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let second = ServerCert::load_or_generate(&tls, &sans).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "restart keeps the pin");
        assert_eq!(first.chain.len(), 2, "leaf + CA");
        assert!(!first.ca_pem.contains("PRIVATE KEY"));
        assert!(
            fs::read_dir(&tls).unwrap().count() == 3,
            "no CA key on disk"
        );
        first.server_config().unwrap();
    }

    #[test]
    fn corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_owned()];
        ServerCert::load_or_generate(dir.path(), &sans).unwrap();
        fs::write(dir.path().join("tls.key"), "garbage").unwrap();
        let err = ServerCert::load_or_generate(dir.path(), &sans).unwrap_err();
        assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_owned()];
        ServerCert::load_or_generate(dir.path(), &sans).unwrap();
        let key = dir.path().join("tls.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServerCert::load_or_generate(dir.path(), &sans).unwrap_err();
        assert!(
            matches!(err, TlsError::KeyMode { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        ServerCert::load_or_generate(dir.path(), &sans).unwrap();
    }

    #[test]
    fn upstream_config_rejects_missing_ca() {
        let tls = UpstreamTls {
            ca_pem: b"not pem".to_vec(),
            client_cert_pem: Vec::new(),
            client_key_pem: Vec::new(),
        };
        assert!(tls.client_config(&[ALPN_H2]).is_err());
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("k3s.local").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
