//! A minimal KMS client: `Decrypt` and `GenerateDataKey` with an attested `Recipient`, JSON 1.1
//! over HTTPS.
//!
//! One request per TLS connection (HTTP/1.1 via hyper), SigV4-signed. The TCP connection can be
//! sent to another address than the endpoint's (inside the enclave: the local bridge forwarder
//! `127.0.0.1:port`) while TLS still verifies the real host name (`kms.<region>.amazonaws.com`)
//! against the configured CA roots, so whatever carries the bytes sees only ciphertext. This
//! client never asks for plaintext: every `Decrypt` and `GenerateDataKey` carries a Recipient,
//! and a reply with `Plaintext` is refused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::KmsError;
use crate::recipient::Recipient;
use crate::sigv4::{self, AmzDate, Credentials, SigningRequest};

/// The system CA bundle (Debian's ca-certificates), the default trust roots.
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Default time for one request (connect, TLS, request and reply).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest reply body accepted.
pub(crate) const MAX_RESPONSE: usize = 256 * 1024;
/// Largest `CiphertextBlob` KMS accepts (bytes).
pub(crate) const MAX_CIPHERTEXT_BLOB: usize = 6144;
/// Longest KMS error message kept.
const MAX_MESSAGE: usize = 512;
/// `X-Amz-Target` of Decrypt.
pub const DECRYPT_TARGET: &str = "TrentService.Decrypt";
/// `X-Amz-Target` of GenerateDataKey.
pub const GENERATE_DATA_KEY_TARGET: &str = "TrentService.GenerateDataKey";
/// Most bytes KMS generates in one `GenerateDataKey` (`NumberOfBytes` is 1 to 1024).
pub(crate) const MAX_DATA_KEY_BYTES: u16 = 1024;
/// `Content-Type` of the KMS JSON protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How to reach KMS.
#[derive(Debug, Clone)]
pub struct KmsClientConfig {
    /// The AWS region, e.g. `eu-west-1` (SigV4 scope and default host).
    pub region: String,
    /// `https://host[:port]`; default `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Where to open the TCP connection instead of the endpoint's host (the bridge forwarder
    /// inside the enclave). TLS still verifies the endpoint's host name.
    pub connect_to: Option<SocketAddr>,
    /// PEM bundle of trusted CA certificates.
    pub ca_bundle: PathBuf,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl KmsClientConfig {
    /// Defaults for `region`: the public regional endpoint, the system CA bundle, 15 s.
    pub fn new(region: impl Into<String>) -> Self {
        KmsClientConfig {
            region: region.into(),
            endpoint: None,
            connect_to: None,
            ca_bundle: PathBuf::from(DEFAULT_CA_BUNDLE),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The parameters of one `Decrypt`.
#[derive(Debug, Clone)]
pub struct DecryptRequest<'a> {
    /// The ciphertext from KMS `Encrypt`/`GenerateDataKey`.
    pub ciphertext_blob: &'a [u8],
    /// The KMS key (ARN, id or alias) that must have made it.
    pub key_id: Option<&'a str>,
    /// `SYMMETRIC_DEFAULT` for symmetric keys.
    pub encryption_algorithm: Option<&'a str>,
    /// The attested recipient.
    pub recipient: &'a Recipient,
}

/// KMS's answer to a `Decrypt` with a Recipient.
#[derive(Debug, Clone)]
pub struct RecipientCiphertext {
    /// The ARN of the KMS key that decrypted, as KMS reports it.
    pub key_id: Option<String>,
    /// BER CMS EnvelopedData, encrypted to the recipient's public key.
    pub ciphertext_for_recipient: Vec<u8>,
}

/// The parameters of one `GenerateDataKey`.
#[derive(Debug, Clone)]
pub struct GenerateDataKeyRequest<'a> {
    /// The KMS key (ARN, id or alias) that wraps the new data key.
    pub key_id: &'a str,
    /// Length of the data key: 1 to 1024 bytes. 32 and 16 are sent as `KeySpec` `AES_256` and
    /// `AES_128` (as AWS recommends), other lengths as `NumberOfBytes`.
    pub number_of_bytes: u16,
    /// The attested recipient the data key is encrypted to.
    pub recipient: &'a Recipient,
}

/// KMS's answer to a `GenerateDataKey` with a Recipient.
#[derive(Debug, Clone)]
pub struct GeneratedDataKey {
    /// The ARN of the KMS key that wrapped the data key, as KMS reports it.
    pub key_id: Option<String>,
    /// The data key under the KMS key: what a later `Decrypt` takes (public; 1..=6144 bytes).
    pub ciphertext_blob: Vec<u8>,
    /// BER CMS EnvelopedData of the data key, encrypted to the recipient's public key.
    pub ciphertext_for_recipient: Vec<u8>,
}

/// A KMS client. Cheap to share; each request opens its own connection.
#[derive(Clone)]
pub struct KmsClient {
    region: String,
    host: String,
    port: u16,
    connect_to: Option<SocketAddr>,
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("region", &self.region)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("connect_to", &self.connect_to)
            .finish_non_exhaustive()
    }
}

impl KmsClient {
    /// A client from `config`; reads the CA bundle.
    pub fn new(config: KmsClientConfig) -> Result<KmsClient, KmsError> {
        let url = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", config.region));
        let (host, port) = parse_endpoint(&url)?;
        let roots = load_roots(&config.ca_bundle)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(KmsError::TlsConfig)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KmsClient {
            region: config.region,
            host,
            port,
            connect_to: config.connect_to,
            tls: TlsConnector::from(Arc::new(tls)),
            timeout: config.timeout,
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The TLS host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// KMS `Decrypt` with a Recipient: the data key comes back encrypted to the recipient.
    pub async fn decrypt(
        &self,
        request: &DecryptRequest<'_>,
        credentials: &Credentials,
    ) -> Result<RecipientCiphertext, KmsError> {
        tokio::time::timeout(self.timeout, self.decrypt_inner(request, credentials))
            .await
            .map_err(|_| KmsError::Timeout(self.timeout))?
    }

    async fn decrypt_inner(
        &self,
        request: &DecryptRequest<'_>,
        credentials: &Credentials,
    ) -> Result<RecipientCiphertext, KmsError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "CiphertextBlob")]
            ciphertext_blob: String,
            #[serde(rename = "KeyId", skip_serializing_if = "Option::is_none")]
            key_id: Option<&'a str>,
            #[serde(
                rename = "EncryptionAlgorithm",
                skip_serializing_if = "Option::is_none"
            )]
            encryption_algorithm: Option<&'a str>,
            #[serde(rename = "Recipient")]
            recipient: &'a Recipient,
        }
        let body = serde_json::to_vec(&Body {
            ciphertext_blob: Base64::encode_string(request.ciphertext_blob),
            key_id: request.key_id,
            encryption_algorithm: request.encryption_algorithm,
            recipient: request.recipient,
        })
        .expect("a JSON object of strings always serialises");
        tracing::debug!(
            host = %self.host,
            key_id = request.key_id.unwrap_or("-"),
            "KMS Decrypt with an attested recipient"
        );
        let (status, reply) = self.post(DECRYPT_TARGET, body, credentials).await?;
        if !status.is_success() {
            return Err(refusal(status, &reply));
        }
        parse_decrypt_reply(status, &reply)
    }

    /// KMS `GenerateDataKey` with a Recipient: a fresh data key, returned wrapped under the
    /// KMS key (`CiphertextBlob`) and encrypted to the recipient (`CiphertextForRecipient`),
    /// never in plaintext.
    pub async fn generate_data_key(
        &self,
        request: &GenerateDataKeyRequest<'_>,
        credentials: &Credentials,
    ) -> Result<GeneratedDataKey, KmsError> {
        let body = generate_data_key_body(request)?;
        tracing::debug!(
            host = %self.host,
            key_id = request.key_id,
            bytes = request.number_of_bytes,
            "KMS GenerateDataKey with an attested recipient"
        );
        let call = async {
            let (status, reply) = self
                .post(GENERATE_DATA_KEY_TARGET, body, credentials)
                .await?;
            if !status.is_success() {
                return Err(refusal(status, &reply));
            }
            parse_generate_reply(status, &reply)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| KmsError::Timeout(self.timeout))?
    }

    /// Signs and sends one JSON 1.1 POST, returning the status and the (bounded) body.
    async fn post(
        &self,
        target: &str,
        body: Vec<u8>,
        credentials: &Credentials,
    ) -> Result<(StatusCode, Bytes), KmsError> {
        let host_header = if self.port == 443 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let date = AmzDate::now();
        let signed = sigv4::sign(
            &SigningRequest {
                method: "POST",
                host: &host_header,
                path: "/",
                query: "",
                headers: &[("content-type", CONTENT_TYPE), ("x-amz-target", target)],
                payload: &body,
                region: &self.region,
                service: "kms",
                date: &date,
            },
            credentials,
        );
        let mut builder = Request::post(Uri::from_static("/"))
            .header(http::header::HOST, &host_header)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", target)
            .header("x-amz-date", &signed.amz_date)
            .header(http::header::AUTHORIZATION, &signed.authorization);
        if let Some(token) = &signed.security_token {
            builder = builder.header("x-amz-security-token", token);
        }
        let request =
            builder
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| KmsError::BadEndpoint {
                    url: self.host.clone(),
                    reason: "the host or a credential is not a valid HTTP header value",
                })?;

        let tcp = match self.connect_to {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        }
        .map_err(|source| KmsError::Connect {
            addr: self
                .connect_to
                .map_or_else(|| format!("{}:{}", self.host, self.port), |a| a.to_string()),
            host: self.host.clone(),
            source,
        })?;
        let name = ServerName::try_from(self.host.clone()).map_err(|_| KmsError::BadEndpoint {
            url: self.host.clone(),
            reason: "not a valid TLS server name",
        })?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| KmsError::Tls {
                host: self.host.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(KmsError::Http)?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "KMS connection closed with an error");
            }
        });
        let response = sender.send_request(request).await.map_err(KmsError::Http)?;
        let status = response.status();
        let collected = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|error| match error.downcast::<hyper::Error>() {
                Ok(error) => KmsError::Http(*error),
                Err(_) => KmsError::ResponseTooLarge { max: MAX_RESPONSE },
            })?;
        connection.abort();
        Ok((status, collected.to_bytes()))
    }
}

/// The JSON body of a `GenerateDataKey`, after checking the request.
fn generate_data_key_body(request: &GenerateDataKeyRequest<'_>) -> Result<Vec<u8>, KmsError> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "KeyId")]
        key_id: &'a str,
        #[serde(rename = "KeySpec", skip_serializing_if = "Option::is_none")]
        key_spec: Option<&'static str>,
        #[serde(rename = "NumberOfBytes", skip_serializing_if = "Option::is_none")]
        number_of_bytes: Option<u16>,
        #[serde(rename = "Recipient")]
        recipient: &'a Recipient,
    }
    if request.key_id.trim().is_empty() {
        return Err(KmsError::BadRequest("GenerateDataKey needs a KMS key id"));
    }
    if !(1..=MAX_DATA_KEY_BYTES).contains(&request.number_of_bytes) {
        return Err(KmsError::BadRequest(
            "GenerateDataKey makes 1 to 1024 bytes (NumberOfBytes)",
        ));
    }
    let (key_spec, number_of_bytes) = match request.number_of_bytes {
        32 => (Some("AES_256"), None),
        16 => (Some("AES_128"), None),
        n => (None, Some(n)),
    };
    Ok(serde_json::to_vec(&Body {
        key_id: request.key_id,
        key_spec,
        number_of_bytes,
        recipient: request.recipient,
    })
    .expect("a JSON object of strings and a number always serialises"))
}

/// Parses `https://host[:port][/]`.
fn parse_endpoint(url: &str) -> Result<(String, u16), KmsError> {
    let bad = |reason| KmsError::BadEndpoint {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("the scheme must be https"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("a KMS endpoint has no path or query"));
    }
    let authority = uri.authority().ok_or(bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), authority.port_u16().unwrap_or(443)))
}

/// The CA certificates of a PEM bundle.
fn load_roots(path: &std::path::Path) -> Result<RootCertStore, KmsError> {
    let pem = std::fs::read(path).map_err(|source| KmsError::CaBundle {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    // Bundles carry the odd certificate rustls cannot use; skip those, as webpki does.
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(KmsError::NoCaCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// A non-2xx reply as KMS's JSON error, or a generic one.
fn refusal(status: StatusCode, body: &[u8]) -> KmsError {
    #[derive(Deserialize)]
    struct Error {
        #[serde(rename = "__type")]
        error_type: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    match serde_json::from_slice::<Error>(body) {
        Ok(Error {
            error_type: Some(error_type),
            message,
        }) => {
            // `__type` may carry a namespace: `com.amazonaws.kms#AccessDeniedException`.
            let error_type = error_type.rsplit('#').next().unwrap_or_default();
            let mut message = message.unwrap_or_default();
            if message.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push('…');
            }
            KmsError::Refused {
                status: status.as_u16(),
                error_type: error_type
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect(),
                message,
            }
        }
        _ => KmsError::BadResponse {
            status: status.as_u16(),
            reason: "an error status without a KMS JSON error",
        },
    }
}

/// The fields a reply to a request with a Recipient carries (Decrypt and GenerateDataKey).
struct RecipientReply {
    key_id: Option<String>,
    ciphertext_blob: Option<String>,
    ciphertext_for_recipient: Vec<u8>,
}

/// A successful reply to `operation` sent with a Recipient: `CiphertextForRecipient` is
/// required and a `Plaintext` is refused (KMS never sends one with a Recipient).
fn parse_recipient_reply(
    status: StatusCode,
    body: &[u8],
    not_a_reply: &'static str,
) -> Result<RecipientReply, KmsError> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(rename = "KeyId")]
        key_id: Option<String>,
        #[serde(rename = "CiphertextBlob")]
        ciphertext_blob: Option<String>,
        #[serde(rename = "CiphertextForRecipient")]
        ciphertext_for_recipient: Option<String>,
        // Never kept: its presence alone is the error.
        #[serde(rename = "Plaintext")]
        plaintext: Option<serde::de::IgnoredAny>,
    }
    let bad = |reason| KmsError::BadResponse {
        status: status.as_u16(),
        reason,
    };
    let reply: Reply = serde_json::from_slice(body).map_err(|_| bad(not_a_reply))?;
    if reply.plaintext.is_some() {
        return Err(KmsError::PlaintextWithRecipient);
    }
    let encoded = reply
        .ciphertext_for_recipient
        .ok_or(bad("CiphertextForRecipient is missing"))?;
    let ciphertext_for_recipient = Base64::decode_vec(&encoded)
        .map_err(|_| bad("CiphertextForRecipient is not standard base64"))?;
    Ok(RecipientReply {
        key_id: reply.key_id,
        ciphertext_blob: reply.ciphertext_blob,
        ciphertext_for_recipient,
    })
}

/// A successful `Decrypt` reply, given that a Recipient was sent.
fn parse_decrypt_reply(status: StatusCode, body: &[u8]) -> Result<RecipientCiphertext, KmsError> {
    let reply = parse_recipient_reply(status, body, "the body is not a Decrypt reply object")?;
    Ok(RecipientCiphertext {
        key_id: reply.key_id,
        ciphertext_for_recipient: reply.ciphertext_for_recipient,
    })
}

/// A successful `GenerateDataKey` reply, given that a Recipient was sent.
fn parse_generate_reply(status: StatusCode, body: &[u8]) -> Result<GeneratedDataKey, KmsError> {
    let bad = |reason| KmsError::BadResponse {
        status: status.as_u16(),
        reason,
    };
    let reply = parse_recipient_reply(
        status,
        body,
        "the body is not a GenerateDataKey reply object",
    )?;
    let blob = reply
        .ciphertext_blob
        .ok_or(bad("CiphertextBlob is missing"))?;
    let ciphertext_blob =
        Base64::decode_vec(&blob).map_err(|_| bad("CiphertextBlob is not standard base64"))?;
    if ciphertext_blob.is_empty() || ciphertext_blob.len() > MAX_CIPHERTEXT_BLOB {
        return Err(bad("CiphertextBlob is empty or longer than 6144 bytes"));
    }
    Ok(GeneratedDataKey {
        key_id: reply.key_id,
        ciphertext_blob,
        ciphertext_for_recipient: reply.ciphertext_for_recipient,
    })
}

#[cfg(test)]
mod tests;
