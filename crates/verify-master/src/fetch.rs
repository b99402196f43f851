//! Fetching `GET /attestation` from a master whose certificate is not trusted yet.
//!
//! The TLS handshake checks that the server holds the private key of the certificate it
//! presents (the handshake signature is verified), but not who issued that certificate: nothing
//! is trusted yet. The presented chain is recorded and, once the document has been verified,
//! [`check_served_chain`] requires it to chain to the attested CA. Nothing secret is sent on
//! this connection (only the nonce), and nothing it returns is used before that check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::VerifyMasterError;
use crate::wire::{self, AttestationResponse};

/// How long the whole fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// The certificate chain a server presented, as received.
#[derive(Clone, Debug, Default)]
pub struct ServedChain {
    pub end_entity: Option<CertificateDer<'static>>,
    pub intermediates: Vec<CertificateDer<'static>>,
}

/// A parsed `https://host[:port]` master endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `https://host[:port]` (default port 8080, no path). Plain `http` is refused.
    pub fn parse(url: &str) -> Result<Endpoint, VerifyMasterError> {
        let bad = |why: &str| VerifyMasterError::Endpoint {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the master is reached over https only"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give the master's base URL, without a path"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint {
            host,
            port: uri.port_u16().unwrap_or(8080),
        })
    }

    pub fn server_name(&self) -> Result<ServerName<'static>, VerifyMasterError> {
        ServerName::try_from(self.host.clone()).map_err(|_| VerifyMasterError::Endpoint {
            url: self.host.clone(),
            why: "not a valid DNS name or IP address".into(),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

/// Records the presented chain; verifies handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct Recorder {
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<ServedChain>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| rustls::Error::General("recorder poisoned".into()))?;
        *seen = ServedChain {
            end_entity: Some(end_entity.clone().into_owned()),
            intermediates: intermediates
                .iter()
                .map(|c| c.clone().into_owned())
                .collect(),
        };
        // Not trusted here: `check_served_chain` decides once the attestation is verified.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `GET /attestation?nonce=<hex>` on `endpoint`; returns the answer and the served chain.
pub async fn fetch_attestation(
    endpoint: &Endpoint,
    nonce: &[u8],
) -> Result<(AttestationResponse, ServedChain), VerifyMasterError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(endpoint, nonce))
        .await
        .map_err(|_| VerifyMasterError::Fetch {
            endpoint: endpoint.to_string(),
            why: format!("no answer within {}s", FETCH_TIMEOUT.as_secs()),
        })?
}

async fn fetch_inner(
    endpoint: &Endpoint,
    nonce: &[u8],
) -> Result<(AttestationResponse, ServedChain), VerifyMasterError> {
    let fail = |why: String| VerifyMasterError::Fetch {
        endpoint: endpoint.to_string(),
        why,
    };
    let provider = provider();
    let recorder = Arc::new(Recorder {
        algorithms: provider.signature_verification_algorithms,
        seen: Mutex::new(ServedChain::default()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let (mut sender, driver) = http1_over_tls(endpoint, config, "TLS handshake")
        .await
        .map_err(|e| match e {
            Http1Error::Endpoint(e) => e,
            Http1Error::Io(why) => fail(why),
        })?;
    let request = http::Request::get(format!("{}?nonce={}", wire::PATH, hex::encode(nonce)))
        .header(http::header::HOST, endpoint.host.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(format!("HTTP: {e}")))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), wire::MAX_RESPONSE_LEN)
        .collect()
        .await
        .map_err(|e| fail(format!("reading the answer: {e}")))?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        return Err(fail(format!("HTTP {status}: {text}")));
    }
    let answer: AttestationResponse = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("not an attestation answer: {e}")))?;
    if answer.format != wire::FORMAT_V1 {
        return Err(fail(format!("unknown answer format {:?}", answer.format)));
    }
    let seen = recorder
        .seen
        .lock()
        .map_err(|_| fail("recorder poisoned".into()))?
        .clone();
    Ok((answer, seen))
}

/// Why [`http1_over_tls`] failed.
pub(crate) enum Http1Error {
    /// The endpoint cannot name a TLS server.
    Endpoint(VerifyMasterError),
    /// Connecting, the handshake (`what` in the text) or HTTP/1.1 setup.
    Io(String),
}

/// An HTTP/1.1 connection to `endpoint` over TLS with `config` (ALPN set to `http/1.1` here),
/// and the task driving it (abort it when done). `what` names the handshake in errors.
pub(crate) async fn http1_over_tls<B>(
    endpoint: &Endpoint,
    mut config: rustls::ClientConfig,
    what: &str,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<B>,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    ),
    Http1Error,
>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = endpoint.server_name().map_err(Http1Error::Endpoint)?;
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| Http1Error::Io(format!("connecting: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| Http1Error::Io(format!("{what}: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| Http1Error::Io(format!("HTTP: {e}")))?;
    Ok((sender, tokio::spawn(conn)))
}

/// Requires the chain a server presented to be valid for `endpoint` and issued by `ca_der`
/// (the attested CA) alone, at `now`.
pub fn check_served_chain(
    served: &ServedChain,
    ca_der: &[u8],
    endpoint: &Endpoint,
    now: UnixTime,
) -> Result<(), VerifyMasterError> {
    let wrong = |why: String| VerifyMasterError::ServedCertificate { why };
    let end_entity = served
        .end_entity
        .as_ref()
        .ok_or_else(|| wrong("the server presented no certificate".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| wrong(format!("the attested CA is not a usable root: {e}")))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| wrong(e.to_string()))?;
    verifier
        .verify_server_cert(
            end_entity,
            &served.intermediates,
            &endpoint.server_name()?,
            &[],
            now,
        )
        .map_err(|e| wrong(format!("not issued by the attested CA for {endpoint}: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_base_urls() {
        assert_eq!(
            Endpoint::parse("https://127.0.0.1:8080").expect("ok"),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(
            Endpoint::parse("https://master.example").expect("ok").port,
            8080
        );
        for bad in [
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            "https://h/x",
            "https://h:1?x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
