//! A **stand-in for AWS KMS**, test code only: an HTTPS server on 127.0.0.1 with a certificate
//! for `kms.us-east-1.amazonaws.com` from a fresh test CA (a client connects to 127.0.0.1 through
//! its connect override and verifies that name, as the enclave does through the bridge
//! forwarder). It checks what KMS checks for `Decrypt` and `GenerateDataKey` with a Recipient:
//! - the SigV4 signature with the test credentials, and `X-Amz-Target:
//!   TrentService.Decrypt` or `TrentService.GenerateDataKey`;
//! - the Recipient's attestation document with `daas_attestation::verify` against the
//!   configured root at the current time (signature, chain, validity);
//! - key-policy conditions as KMS evaluates them: `kms:RecipientAttestation:ImageSha384` =
//!   PCR0, and `PCR1`, `PCR2`, with StringEqualsIgnoreCase on hex (AccessDeniedException
//!   otherwise, like the template's Allow plus negated Denies);
//! - the document's `public_key` is an RSA-2048 SPKI;
//!
//! and answers with a real CMS EnvelopedData (BER, indefinite lengths like KMS, RSAES-OAEP-SHA256
//! to the attested key, AES-256-CBC content). Its "KMS key" is a table from ciphertext blob to
//! data key; `GenerateDataKey` adds a random key under a fresh blob to it, so a later `Decrypt`
//! of that blob releases the same key. Differences from KMS are listed in docs/kms.md.
//!
//! Shared by `crates/kms/tests/kms_standin.rs` and `nautilus-master/tests/serve_kms.rs` (which
//! includes this file by path), each using a part of it.
#![allow(dead_code)]

#[path = "cms_builder.rs"]
pub(crate) mod cms_builder;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use daas_attestation::TrustAnchor;
use daas_kms::sigv4::{AmzDate, Credentials, SigningRequest, sign};
use daas_kms::{KmsClient, KmsClientConfig};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand_core::{OsRng, RngCore};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The region the stand-in serves (its certificate's host and the SigV4 scope).
pub(crate) const REGION: &str = "us-east-1";
/// The name on its certificate.
pub(crate) const HOST: &str = "kms.us-east-1.amazonaws.com";
/// The one "KMS key" the stand-in has.
pub(crate) const KEY_ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
/// An alias of KEY_ARN the stand-in resolves (as KMS does) in GenerateDataKey.
pub(crate) const KEY_ALIAS: &str = "alias/k3s-daas-storage";
/// The credentials it accepts (SigV4).
pub(crate) const ACCESS_KEY: &str = "ASIAEXAMPLEENCLAVE";
pub(crate) const SECRET: &str = "stand-in-secret-key-not-a-real-one";
pub(crate) const TOKEN: &str = "stand-in-session-token";
/// What the stand-in does besides answering correctly.
#[derive(Clone, Default)]
pub(crate) enum Quirk {
    #[default]
    None,
    /// Adds a `Plaintext` field to the reply (what real KMS never does with a Recipient).
    Plaintext,
    /// Rewrites the CMS bytes before base64.
    Cms(fn(Vec<u8>) -> Vec<u8>),
    /// Replies with a body of this many bytes.
    HugeBody(usize),
    /// GenerateDataKey makes a key of this many bytes, whatever was asked.
    KeyLen(usize),
}

/// What the stand-in trusts and holds. `State { anchors, pcrs, ..State::default() }` for an
/// empty "KMS key".
#[derive(Default)]
pub(crate) struct State {
    /// The attestation roots it trusts (a dev root; real KMS trusts only AWS's).
    pub(crate) anchors: Vec<TrustAnchor>,
    /// The key policy's PCR0, PCR1, PCR2 (hex, any case).
    pub(crate) pcrs: [String; 3],
    /// ciphertext blob → data key: the stand-in's "KMS key". GenerateDataKey adds to it.
    pub(crate) blobs: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    pub(crate) quirk: Mutex<Quirk>,
    /// Requests received per operation (counted once the target header is recognised).
    pub(crate) calls: Calls,
}

/// How many requests of each operation the stand-in received.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) decrypt: AtomicUsize,
    pub(crate) generate_data_key: AtomicUsize,
}

/// A running stand-in.
pub(crate) struct StandIn {
    /// Where it listens (127.0.0.1, port 0).
    pub(crate) addr: SocketAddr,
    /// Its test CA (PEM), for a client's `ca_bundle`.
    pub(crate) ca_file: tempfile::NamedTempFile,
    pub(crate) state: Arc<State>,
}

/// Standard HTTPS on 127.0.0.1:0 with a certificate for HOST from a fresh CA.
pub(crate) async fn start(state: State) -> StandIn {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "KMS stand-in test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec![HOST.to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf cert");
    let mut ca_file = tempfile::NamedTempFile::new().expect("CA file");
    ca_file
        .write_all(ca_cert.pem().as_bytes())
        .expect("write CA");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(state);
    let served = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let state = served.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    StandIn {
        addr,
        ca_file,
        state,
    }
}

impl StandIn {
    /// A client that reaches this stand-in (and trusts its CA).
    pub(crate) fn client(&self) -> KmsClient {
        KmsClient::new(KmsClientConfig {
            connect_to: Some(self.addr),
            ca_bundle: self.ca_file.path().to_path_buf(),
            timeout: Duration::from_secs(30),
            ..KmsClientConfig::new(REGION)
        })
        .expect("client")
    }

    /// The stand-in's blob table now.
    pub(crate) fn blobs(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.state.blobs.lock().expect("blobs").clone()
    }

    /// Requests received so far: (Decrypt, GenerateDataKey).
    pub(crate) fn calls(&self) -> (usize, usize) {
        let calls = &self.state.calls;
        (
            calls.decrypt.load(Ordering::SeqCst),
            calls.generate_data_key.load(Ordering::SeqCst),
        )
    }
}

fn kms_error(kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "__type": kind, "message": message }).to_string();
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return kms_error("SerializationException", "unreadable body");
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if parts.method != http::Method::POST || parts.uri.path() != "/" {
        return kms_error("UnknownOperationException", "POST / only");
    }
    let action = match header("x-amz-target") {
        Some("TrentService.Decrypt") => {
            state.calls.decrypt.fetch_add(1, Ordering::SeqCst);
            "kms:Decrypt"
        }
        Some("TrentService.GenerateDataKey") => {
            state.calls.generate_data_key.fetch_add(1, Ordering::SeqCst);
            "kms:GenerateDataKey"
        }
        _ => {
            return kms_error(
                "UnknownOperationException",
                "only TrentService.Decrypt and TrentService.GenerateDataKey",
            );
        }
    };
    if header("content-type") != Some("application/x-amz-json-1.1") {
        return kms_error("SerializationException", "content type");
    }
    if let Err(why) = check_sigv4(&parts, &body) {
        return kms_error("InvalidSignatureException", why);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return kms_error("SerializationException", "not JSON");
    };
    let result = match action {
        "kms:Decrypt" => decrypt(state, &request),
        _ => generate_data_key(state, &request),
    };
    let (data_key, mut reply) = match result {
        Ok(answer) => answer,
        Err((kind, message)) => return kms_error(kind, &message),
    };
    let quirk = state.quirk.lock().expect("quirk").clone();
    match quirk {
        Quirk::Plaintext => reply["Plaintext"] = json!(Base64::encode_string(&data_key)),
        Quirk::HugeBody(len) => reply["Padding"] = json!("x".repeat(len)),
        _ => {}
    }
    Response::builder()
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(reply.to_string())))
        .expect("response")
}

/// A KMS error: `__type` and message.
type Refusal = (&'static str, String);
type Answer = Result<(Vec<u8>, Value), Refusal>;

fn refuse(kind: &'static str, message: &str) -> Refusal {
    (kind, message.to_owned())
}

/// Decrypt: the blob's key, to the attested recipient.
fn decrypt(state: &State, request: &Value) -> Answer {
    let Some(blob) = request["CiphertextBlob"]
        .as_str()
        .and_then(|b| Base64::decode_vec(b).ok())
    else {
        return Err(refuse("ValidationException", "CiphertextBlob"));
    };
    if request["KeyId"].as_str().is_some_and(|k| k != KEY_ARN) {
        return Err(refuse(
            "IncorrectKeyException",
            "the ciphertext was not made under that key",
        ));
    }
    let Some(data_key) = state.blobs.lock().expect("blobs").get(&blob).cloned() else {
        return Err(refuse("InvalidCiphertextException", ""));
    };
    let public_key = attested_recipient(state, request, "kms:Decrypt")?;
    let cms = envelop(state, &data_key, &public_key);
    let reply = json!({
        "KeyId": KEY_ARN,
        "CiphertextForRecipient": Base64::encode_string(&cms),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    });
    Ok((data_key, reply))
}

/// GenerateDataKey: a fresh random key under a fresh blob (remembered only once every check
/// passed), to the attested recipient.
fn generate_data_key(state: &State, request: &Value) -> Answer {
    match request["KeyId"].as_str() {
        Some(KEY_ARN | KEY_ALIAS) => {}
        Some(_) => return Err(refuse("NotFoundException", "no such key")),
        None => return Err(refuse("ValidationException", "KeyId is required")),
    }
    let len = match (&request["KeySpec"], &request["NumberOfBytes"]) {
        (Value::String(spec), Value::Null) if spec == "AES_256" => 32,
        (Value::String(spec), Value::Null) if spec == "AES_128" => 16,
        (Value::Null, Value::Number(n)) => match n.as_u64() {
            Some(n @ 1..=1024) => n as usize,
            _ => return Err(refuse("ValidationException", "NumberOfBytes")),
        },
        _ => {
            return Err(refuse(
                "ValidationException",
                "exactly one of KeySpec and NumberOfBytes",
            ));
        }
    };
    let public_key = attested_recipient(state, request, "kms:GenerateDataKey")?;
    let len = match *state.quirk.lock().expect("quirk") {
        Quirk::KeyLen(forced) => forced,
        _ => len,
    };
    let mut data_key = vec![0u8; len];
    OsRng.fill_bytes(&mut data_key);
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let blob = [b"stand-in generated blob ".as_slice(), &nonce].concat();
    state
        .blobs
        .lock()
        .expect("blobs")
        .insert(blob.clone(), data_key.clone());
    let cms = envelop(state, &data_key, &public_key);
    let reply = json!({
        "KeyId": KEY_ARN,
        "CiphertextBlob": Base64::encode_string(&blob),
        "CiphertextForRecipient": Base64::encode_string(&cms),
    });
    Ok((data_key, reply))
}

/// The Recipient's checks: algorithm, document (verified against the dev root now), the key
/// policy's PCR conditions, an RSA-2048 public key.
fn attested_recipient(
    state: &State,
    request: &Value,
    action: &str,
) -> Result<RsaPublicKey, Refusal> {
    let recipient = &request["Recipient"];
    if recipient["KeyEncryptionAlgorithm"] != "RSAES_OAEP_SHA_256" {
        return Err(refuse("ValidationException", "KeyEncryptionAlgorithm"));
    }
    let Some(document) = recipient["AttestationDocument"]
        .as_str()
        .and_then(|d| Base64::decode_vec(d).ok())
    else {
        return Err(refuse("ValidationException", "AttestationDocument"));
    };
    let verified = match daas_attestation::verify(&document, &state.anchors, now_ms()) {
        Ok(v) => v,
        Err(e) => {
            return Err(refuse(
                "ValidationException",
                &format!("attestation document: {e}"),
            ));
        }
    };
    // Key-policy conditions: StringEqualsIgnoreCase on the hex PCRs (absent = no match).
    for (index, expected) in state.pcrs.iter().enumerate() {
        let actual = verified.document.pcr(index as u8).map(hex::encode);
        if !actual.is_some_and(|a| a.eq_ignore_ascii_case(expected)) {
            return Err(refuse(
                "AccessDeniedException",
                &format!("User is not authorized to perform {action} because of the key policy"),
            ));
        }
    }
    verified
        .document
        .public_key
        .as_deref()
        .and_then(|k| RsaPublicKey::from_public_key_der(k).ok())
        .filter(|k| k.size() == 256)
        .ok_or_else(|| refuse("ValidationException", "public_key is not an RSA-2048 SPKI"))
}

/// The CMS reply, rewritten if the quirk says so.
fn envelop(state: &State, data_key: &[u8], to: &RsaPublicKey) -> Vec<u8> {
    let cms = cms_builder::envelop(data_key, to, &cms_builder::Shape::default());
    match *state.quirk.lock().expect("quirk") {
        Quirk::Cms(rewrite) => rewrite(cms),
        _ => cms,
    }
}

/// Recomputes the signature over the headers the request says it signed.
fn check_sigv4(parts: &http::request::Parts, body: &[u8]) -> Result<(), &'static str> {
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("algorithm")?;
    let mut credential = None;
    let mut signed_headers = None;
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        }
    }
    let scope: Vec<&str> = credential.ok_or("Credential")?.split('/').collect();
    let [access_key, _, region, service, "aws4_request"] = scope[..] else {
        return Err("credential scope");
    };
    if access_key != ACCESS_KEY || region != REGION || service != "kms" {
        return Err("credential scope");
    }
    let signed: Vec<&str> = signed_headers.ok_or("SignedHeaders")?.split(';').collect();
    for required in [
        "content-type",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-target",
    ] {
        if !signed.contains(&required) {
            return Err("a required header is not signed");
        }
    }
    let get = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or("a signed header is missing")
    };
    let date = AmzDate::parse(get("x-amz-date")?).ok_or("x-amz-date")?;
    let skew = date
        .to_unix()
        .ok_or("x-amz-date")?
        .abs_diff(now_ms() / 1000);
    if skew > 15 * 60 {
        return Err("request time too skewed");
    }
    let mut others = Vec::new();
    for name in &signed {
        if !["host", "x-amz-date", "x-amz-security-token"].contains(name) {
            others.push((*name, get(name)?));
        }
    }
    let token = get("x-amz-security-token")?;
    let expected = sign(
        &SigningRequest {
            method: parts.method.as_str(),
            host: get("host")?,
            path: "/",
            query: "",
            headers: &others,
            payload: body,
            region: REGION,
            service: "kms",
            date: &date,
        },
        &Credentials::new(ACCESS_KEY, SECRET, Some(token.to_owned())),
    );
    if token != TOKEN || !bool::from(expected.authorization.as_bytes().ct_eq(auth.as_bytes())) {
        return Err(
            "The request signature we calculated does not match the signature you provided",
        );
    }
    Ok(())
}
