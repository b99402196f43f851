//! Attested key release end to end against a **KMS stand-in written in this test**.
//!
//! The stand-in is not AWS KMS. It stands in for it: an HTTPS server on 127.0.0.1 with a
//! certificate for `kms.us-east-1.amazonaws.com` from a test CA (the client connects to
//! 127.0.0.1 through its connect override and verifies that name, as the enclave does through
//! the bridge forwarder). It checks what KMS checks for `Decrypt` and `GenerateDataKey` with a
//! Recipient:
//! - the SigV4 signature with the test credentials, and `X-Amz-Target:
//!   TrentService.Decrypt` or `TrentService.GenerateDataKey`;
//! - the Recipient's attestation document with `daas_attestation::verify` against the
//!   configured dev root at the current time (signature, chain, validity);
//! - key-policy conditions as KMS evaluates them: `kms:RecipientAttestation:ImageSha384` =
//!   PCR0, and `PCR1`, `PCR2`, with StringEqualsIgnoreCase on hex (AccessDeniedException
//!   otherwise, like the template's Allow plus negated Denies);
//! - the document's `public_key` is an RSA-2048 SPKI;
//!
//! and answers with a real CMS EnvelopedData (BER, indefinite lengths like KMS, RSAES-OAEP-SHA256
//! to the attested key, AES-256-CBC content). Its "KMS key" is a table from ciphertext blob to
//! data key; `GenerateDataKey` adds a random key under a fresh blob to it, so a later `Decrypt`
//! of that blob releases the same key. Differences from KMS are listed in docs/kms.md.

#[path = "common/cms_builder.rs"]
mod cms_builder;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};
use daas_attestation::{AttestationRequest, Attester, AttesterError, RootKind, TrustAnchor};
use daas_envelope::{DataKey, KeyProvider};
use daas_kms::sigv4::{AmzDate, Credentials, SigningRequest, sign};
use daas_kms::{
    CmsError, DecryptRequest, GenerateDataKeyRequest, KmsClient, KmsClientConfig, KmsError,
    KmsKeyProvider, ProvisionedKey, Recipient, RecipientKey, StaticCredentials, WrappedKeys,
    WriteMode, provision_wrapped_key,
};
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

const REGION: &str = "us-east-1";
const HOST: &str = "kms.us-east-1.amazonaws.com";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
/// An alias of KEY_ARN the stand-in resolves (as KMS does) in GenerateDataKey.
const KEY_ALIAS: &str = "alias/k3s-daas-storage";
const ACCESS_KEY: &str = "ASIAEXAMPLEENCLAVE";
const SECRET: &str = "stand-in-secret-key-not-a-real-one";
const TOKEN: &str = "stand-in-session-token";
const ENCLAVE_IMAGE: &[u8] = b"k3s-daas enclave image, test build";

/// What the stand-in does besides answering correctly.
#[derive(Clone, Default)]
enum Quirk {
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

struct State {
    anchors: Vec<TrustAnchor>,
    pcrs: [String; 3],
    /// ciphertext blob → data key: the stand-in's "KMS key". GenerateDataKey adds to it.
    blobs: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    quirk: Mutex<Quirk>,
}

struct StandIn {
    addr: SocketAddr,
    ca_file: tempfile::NamedTempFile,
    state: Arc<State>,
}

/// Standard HTTPS on 127.0.0.1:0 with a certificate for HOST from a fresh CA.
async fn start(state: State) -> StandIn {
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
    fn client(&self) -> KmsClient {
        KmsClient::new(KmsClientConfig {
            connect_to: Some(self.addr),
            ca_bundle: self.ca_file.path().to_path_buf(),
            timeout: Duration::from_secs(30),
            ..KmsClientConfig::new(REGION)
        })
        .expect("client")
    }

    /// The stand-in's blob table now.
    fn blobs(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.state.blobs.lock().expect("blobs").clone()
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

fn now_ms() -> u64 {
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
        Some("TrentService.Decrypt") => "kms:Decrypt",
        Some("TrentService.GenerateDataKey") => "kms:GenerateDataKey",
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

/// The test world: a dev root, the enclave's PCRs, data keys wrapped by the stand-in.
struct World {
    standin: StandIn,
    root_attester: Arc<DevAttester>,
    keys: Vec<[u8; 32]>,
    file: WrappedKeys,
}

fn pcrs_hex(pcrs: &BTreeMap<u8, [u8; 48]>) -> [String; 3] {
    [0u8, 1, 2].map(|i| hex::encode_upper(pcrs.get(&i).expect("PCR")))
}

async fn world() -> World {
    let pcrs = dev_pcrs(ENCLAVE_IMAGE);
    let attester = DevAttester::new(DevRoot::generate().expect("dev root"), pcrs.clone())
        .expect("dev attester");
    let keys: Vec<[u8; 32]> = (1u8..=2).map(|i| [i; 32]).collect();
    let blobs: HashMap<Vec<u8>, Vec<u8>> = keys
        .iter()
        .map(|k| (format!("stand-in blob {}", k[0]).into_bytes(), k.to_vec()))
        .collect();
    let id = |k: &[u8; 32]| DataKey::from_bytes(*k).id().to_string();
    let file = WrappedKeys::from_json(
        &json!({
            "active": id(&keys[1]),
            "keys": keys.iter().map(|k| json!({
                "id": id(k),
                "ciphertext_blob": Base64::encode_string(format!("stand-in blob {}", k[0]).as_bytes()),
            })).collect::<Vec<_>>(),
            "key_id": KEY_ARN,
            "region": REGION,
        })
        .to_string(),
    )
    .expect("wrapped keys file");
    let standin = start(State {
        anchors: vec![attester.trust_anchor()],
        pcrs: pcrs_hex(&pcrs),
        blobs: Mutex::new(blobs),
        quirk: Mutex::new(Quirk::None),
    })
    .await;
    World {
        standin,
        root_attester: Arc::new(attester),
        keys,
        file,
    }
}

impl World {
    fn client(&self) -> KmsClient {
        self.standin.client()
    }

    fn credentials(&self) -> StaticCredentials {
        StaticCredentials::new(Credentials::new(ACCESS_KEY, SECRET, Some(TOKEN.into())))
    }

    fn provider(&self, attester: Arc<dyn Attester>) -> KmsKeyProvider<StaticCredentials> {
        KmsKeyProvider::new(
            self.file.clone(),
            self.client(),
            attester,
            self.credentials(),
        )
        .expect("provider")
    }

    fn quirk(&self, quirk: Quirk) {
        *self.standin.state.quirk.lock().expect("quirk") = quirk;
    }
}

/// An attester that rewrites what the real one produces.
struct Rewriting<F> {
    inner: Arc<DevAttester>,
    rewrite: F,
}

impl<F> Attester for Rewriting<F>
where
    F: Fn(&DevAttester, &AttestationRequest) -> Result<Vec<u8>, AttesterError> + Send + Sync,
{
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        (self.rewrite)(&self.inner, request)
    }
    fn describe(&self) -> String {
        "rewriting test attester".into()
    }
    fn root_kind(&self) -> RootKind {
        RootKind::Dev
    }
}

fn rewriting<F>(w: &World, rewrite: F) -> Arc<dyn Attester>
where
    F: Fn(&DevAttester, &AttestationRequest) -> Result<Vec<u8>, AttesterError>
        + Send
        + Sync
        + 'static,
{
    Arc::new(Rewriting {
        inner: w.root_attester.clone(),
        rewrite,
    })
}

fn expect_refused(result: Result<impl std::fmt::Debug, KmsError>, kind: &str) -> KmsError {
    let err = result.expect_err("refused");
    match &err {
        KmsError::Refused { error_type, .. } if error_type == kind => err,
        other => panic!("expected {kind}, got {other:?} ({other})"),
    }
}

#[tokio::test]
async fn key_is_released_to_the_enclave_with_matching_pcrs() {
    let w = world().await;
    let provider = w.provider(w.root_attester.clone());
    let released = provider.release_keys().await.expect("released");
    let ring = released.load().expect("ring");
    let ids: Vec<_> = w
        .keys
        .iter()
        .map(|k| DataKey::from_bytes(*k).id())
        .collect();
    assert_eq!(ring.active_id(), ids[1]);
    assert!(ids.iter().all(|id| ring.contains(*id)));
    // The released ring really is those keys: a value sealed under the reference ring opens.
    let reference =
        daas_envelope::KeyRing::new(DataKey::from_bytes(w.keys[1]), []).expect("reference ring");
    let sealed = reference.encrypt(b"/registry/secrets/x", b"value", 1);
    let opened = ring
        .decrypt(b"/registry/secrets/x", &sealed)
        .expect("opens");
    assert_eq!(opened.plaintext, b"value");
    // KeyProvider::load is repeatable.
    assert_eq!(released.load().expect("again").active_id(), ids[1]);
    assert!(released.describe().contains(KEY_ARN));
    // release() gives the same ring.
    assert_eq!(provider.release().await.expect("ring").active_id(), ids[1]);
}

#[tokio::test]
async fn a_document_with_other_pcrs_gets_no_key() {
    let w = world().await;
    // A dev root signs for one attester only, so the mismatch is set up from the policy side:
    // a stand-in whose key policy names another image's PCRs gets this enclave's document.
    let mismatched = start(State {
        anchors: vec![w.root_attester.trust_anchor()],
        pcrs: pcrs_hex(&dev_pcrs(b"another image")),
        blobs: Mutex::new(w.standin.blobs()),
        quirk: Mutex::new(Quirk::None),
    })
    .await;
    let client = KmsClient::new(KmsClientConfig {
        connect_to: Some(mismatched.addr),
        ca_bundle: mismatched.ca_file.path().to_path_buf(),
        ..KmsClientConfig::new(REGION)
    })
    .expect("client");
    let provider = KmsKeyProvider::new(
        w.file.clone(),
        client,
        w.root_attester.clone(),
        w.credentials(),
    )
    .expect("provider");
    let err = expect_refused(provider.release().await, "AccessDeniedException");
    assert!(
        err.to_string().starts_with(
            "KMS refused: the key policy does not allow this enclave's attestation (check PCR \
             conditions)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_debug_document_gets_no_key() {
    let w = world().await;
    // The same image in debug mode: PCR0/1/2 read as zeros.
    let debug = DevAttester::new(DevRoot::generate().expect("root"), BTreeMap::new())
        .expect("debug attester");
    let standin = start(State {
        anchors: vec![debug.trust_anchor()],
        pcrs: w.standin.state.pcrs.clone(),
        blobs: Mutex::new(w.standin.blobs()),
        quirk: Mutex::new(Quirk::None),
    })
    .await;
    let client = KmsClient::new(KmsClientConfig {
        connect_to: Some(standin.addr),
        ca_bundle: standin.ca_file.path().to_path_buf(),
        ..KmsClientConfig::new(REGION)
    })
    .expect("client");
    let provider = KmsKeyProvider::new(w.file.clone(), client, Arc::new(debug), w.credentials())
        .expect("provider");
    expect_refused(provider.release().await, "AccessDeniedException");
}

#[tokio::test]
async fn a_document_for_another_public_key_cannot_be_opened() {
    let w = world().await;
    let stranger = RecipientKey::generate().expect("key");
    let stranger_spki = stranger.spki_der().to_vec();
    let attester = rewriting(&w, move |inner, request| {
        let mut request = request.clone();
        request.public_key = Some(stranger_spki.clone());
        inner.attest(&request)
    });
    let err = w
        .provider(attester)
        .release()
        .await
        .expect_err("cannot open");
    assert!(matches!(err, KmsError::Cms(CmsError::KeyUnwrap)), "{err:?}");
}

#[tokio::test]
async fn a_replayed_document_releases_nothing_the_replayer_can_open() {
    let w = world().await;
    // The parent captures a genuine document the enclave sent (its recipient key inside) ...
    let enclave_key = RecipientKey::generate().expect("key");
    let captured = enclave_key
        .recipient(w.root_attester.as_ref())
        .expect("document");
    // ... and replays it in its own request. KMS answers, to the enclave's key.
    let reply = w
        .client()
        .decrypt(
            &DecryptRequest {
                ciphertext_blob: b"stand-in blob 1",
                key_id: Some(KEY_ARN),
                encryption_algorithm: Some("SYMMETRIC_DEFAULT"),
                recipient: &Recipient::from_document(captured.document().to_vec()),
            },
            &Credentials::new(ACCESS_KEY, SECRET, Some(TOKEN.into())),
        )
        .await
        .expect("KMS answers a replay");
    let own_key = RecipientKey::generate().expect("key");
    assert_eq!(
        own_key
            .open(&reply.ciphertext_for_recipient)
            .expect_err("not the replayer's"),
        CmsError::KeyUnwrap
    );
    // Only the enclave's ephemeral key, gone after its request, could open it.
    assert_eq!(
        enclave_key
            .open(&reply.ciphertext_for_recipient)
            .expect("the enclave's")
            .as_slice(),
        &[1u8; 32]
    );
}

#[tokio::test]
async fn stale_and_forged_documents_are_refused() {
    let w = world().await;
    // Four hours old: its 3-hour leaf certificate has expired.
    let stale = rewriting(&w, |inner, request| {
        inner.attest_at(request, now_ms() - 4 * 3600 * 1000)
    });
    let err = expect_refused(w.provider(stale).release().await, "ValidationException");
    assert!(err.to_string().contains("attestation document"), "{err}");
    // One flipped byte in the signature.
    let forged = rewriting(&w, |inner, request| {
        let mut document = inner.attest(request)?;
        let last = document.len() - 1;
        document[last] ^= 1;
        Ok(document)
    });
    expect_refused(w.provider(forged).release().await, "ValidationException");
    // A document signed under another (untrusted) root.
    let foreign = DevAttester::new(DevRoot::generate().expect("root"), dev_pcrs(ENCLAVE_IMAGE))
        .expect("attester");
    expect_refused(
        w.provider(Arc::new(foreign)).release().await,
        "ValidationException",
    );
}

#[tokio::test]
async fn a_reply_with_plaintext_is_refused() {
    let w = world().await;
    w.quirk(Quirk::Plaintext);
    let err = w
        .provider(w.root_attester.clone())
        .release()
        .await
        .expect_err("refused");
    assert!(matches!(err, KmsError::PlaintextWithRecipient), "{err:?}");
    assert!(
        err.to_string().contains("real KMS never does this"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_truncated_and_oversized_cms_are_refused() {
    let w = world().await;
    let provider = w.provider(w.root_attester.clone());
    let check = |quirk: Quirk, expected: fn(&KmsError) -> bool| {
        w.quirk(quirk);
        let provider = &provider;
        async move {
            let err = provider.release().await.expect_err("refused");
            assert!(expected(&err), "{err:?}: {err}");
        }
    };
    check(
        Quirk::Cms(|mut c| {
            c.truncate(c.len() / 2);
            c
        }),
        |e| {
            matches!(
                e,
                KmsError::Cms(CmsError::Ber(daas_kms::BerError::Truncated { .. }))
            )
        },
    )
    .await;
    check(Quirk::Cms(|_| b"not a CMS message".to_vec()), |e| {
        matches!(e, KmsError::Cms(_))
    })
    .await;
    check(
        Quirk::Cms(|mut c| {
            c.resize(70 * 1024, 0);
            c
        }),
        |e| {
            matches!(
                e,
                KmsError::Cms(CmsError::Ber(daas_kms::BerError::TooLarge { .. }))
            )
        },
    )
    .await;
    check(
        Quirk::Cms(|c| {
            // The reply ends with five end-of-contents markers (10 bytes); before them is the
            // last ciphertext block (16 bytes, the third chunk) behind its `04 10` header.
            // Flipping the last byte of the block before it flips the last plaintext byte,
            // the PKCS#7 padding byte (16 for a 32-byte key).
            let mut c = c;
            let at = c.len() - 10 - 16 - 2 - 1;
            c[at] ^= 0x55;
            c
        }),
        |e| matches!(e, KmsError::Cms(CmsError::Padding)),
    )
    .await;
    check(Quirk::HugeBody(300 * 1024), |e| {
        matches!(e, KmsError::ResponseTooLarge { .. })
    })
    .await;
}

#[tokio::test]
async fn wrong_signature_credentials_are_refused() {
    let w = world().await;
    let wrong = StaticCredentials::new(Credentials::new(
        ACCESS_KEY,
        "wrong secret",
        Some(TOKEN.into()),
    ));
    let provider = KmsKeyProvider::new(w.file.clone(), w.client(), w.root_attester.clone(), wrong)
        .expect("provider");
    let err = expect_refused(provider.release().await, "InvalidSignatureException");
    assert!(!err.to_string().contains("wrong secret"));
}

#[tokio::test]
async fn a_blob_under_the_wrong_entry_is_refused() {
    let w = world().await;
    let mut file = w.file.clone();
    let (a, b) = (
        file.keys[0].ciphertext_blob.clone(),
        file.keys[1].ciphertext_blob.clone(),
    );
    file.keys[0].ciphertext_blob = b;
    file.keys[1].ciphertext_blob = a;
    let provider = KmsKeyProvider::new(file, w.client(), w.root_attester.clone(), w.credentials())
        .expect("provider");
    let err = provider.release().await.expect_err("swapped");
    assert!(matches!(err, KmsError::KeyIdMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn tls_verifies_the_kms_host_name_and_roots() {
    let w = world().await;
    // The system roots do not trust the stand-in's CA.
    let client = KmsClient::new(KmsClientConfig {
        connect_to: Some(w.standin.addr),
        ..KmsClientConfig::new(REGION)
    });
    if let Ok(client) = client {
        let provider = KmsKeyProvider::new(
            w.file.clone(),
            client,
            w.root_attester.clone(),
            w.credentials(),
        )
        .expect("provider");
        let err = provider.release().await.expect_err("untrusted");
        assert!(matches!(err, KmsError::Tls { .. }), "{err:?}");
    }
    // Another host name than the certificate's.
    let client = KmsClient::new(KmsClientConfig {
        endpoint: Some("https://kms.eu-west-1.amazonaws.com".into()),
        connect_to: Some(w.standin.addr),
        ca_bundle: w.standin.ca_file.path().to_path_buf(),
        ..KmsClientConfig::new(REGION)
    })
    .expect("client");
    let provider = KmsKeyProvider::new(
        w.file.clone(),
        client,
        w.root_attester.clone(),
        w.credentials(),
    )
    .expect("provider");
    assert!(matches!(
        provider.release().await,
        Err(KmsError::Tls { .. })
    ));
}

async fn provision(
    w: &World,
    client: &KmsClient,
    attester: &dyn Attester,
) -> Result<ProvisionedKey, KmsError> {
    provision_wrapped_key(client, KEY_ALIAS, attester, &w.credentials()).await
}

#[tokio::test]
async fn a_provisioned_key_round_trips_through_the_file_and_release() {
    let w = world().await;
    let client = w.client();
    let provisioned = provision(&w, &client, w.root_attester.as_ref())
        .await
        .expect("provisioned");
    let id = provisioned.key.id();
    assert_eq!(provisioned.entry.id, id.to_string());
    // The alias asked for is stored as the key ARN KMS reported.
    assert_eq!(provisioned.kms_key, KEY_ARN);
    // The stand-in remembered that key under the blob; Debug shows no key bytes.
    let blob = Base64::decode_vec(&provisioned.entry.ciphertext_blob).expect("base64");
    let remembered = w.standin.blobs().remove(&blob).expect("remembered");
    let remembered: [u8; 32] = remembered.try_into().expect("32 bytes");
    assert_eq!(DataKey::from_bytes(remembered).id(), id);
    assert!(!format!("{provisioned:?}").contains(&hex::encode(remembered)));

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("wrapped-keys.json");
    let file = WrappedKeys::new_single(
        provisioned.entry.clone(),
        &provisioned.kms_key,
        client.region(),
    )
    .expect("file");
    file.write(&path, WriteMode::CreateNew).expect("written");
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&path).expect("meta"));
    assert_eq!(mode & 0o777, 0o600);

    // A later start releases the same key from the file.
    let provider = KmsKeyProvider::new(
        WrappedKeys::from_file(&path).expect("read back"),
        w.client(),
        w.root_attester.clone(),
        w.credentials(),
    )
    .expect("provider");
    let ring = provider.release().await.expect("released");
    assert_eq!(ring.ids().collect::<Vec<_>>(), vec![id]);
    let reference = daas_envelope::KeyRing::new(provisioned.key, []).expect("reference ring");
    let sealed = reference.encrypt(b"/registry/secrets/x", b"value", 1);
    assert_eq!(
        ring.decrypt(b"/registry/secrets/x", &sealed)
            .expect("opens")
            .plaintext,
        b"value"
    );

    // Rotation: a second key, appended and made active; the file is replaced only when asked.
    let second = provider.provision().await.expect("second key");
    let mut rotated = WrappedKeys::from_file(&path).expect("read back");
    rotated.push(second.entry.clone()).expect("push");
    rotated.set_active(second.key.id()).expect("activate");
    assert!(matches!(
        rotated.write(&path, WriteMode::CreateNew),
        Err(KmsError::KeysFileExists { .. })
    ));
    assert_eq!(WrappedKeys::from_file(&path).expect("unchanged"), file);
    rotated.write(&path, WriteMode::Replace).expect("replaced");
    let ring = KmsKeyProvider::new(
        WrappedKeys::from_file(&path).expect("read back"),
        w.client(),
        w.root_attester.clone(),
        w.credentials(),
    )
    .expect("provider")
    .release()
    .await
    .expect("released");
    assert_eq!(ring.active_id(), second.key.id());
    assert!(ring.contains(id));
    assert_eq!(
        ring.decrypt(b"/registry/secrets/x", &sealed)
            .expect("old value")
            .plaintext,
        b"value"
    );
}

#[tokio::test]
async fn provisioning_is_refused_for_other_pcrs_debug_and_foreign_documents() {
    let w = world().await;
    // The key policy names another image.
    let mismatched = start(State {
        anchors: vec![w.root_attester.trust_anchor()],
        pcrs: pcrs_hex(&dev_pcrs(b"another image")),
        blobs: Mutex::new(HashMap::new()),
        quirk: Mutex::new(Quirk::None),
    })
    .await;
    let err = expect_refused(
        provision(&w, &mismatched.client(), w.root_attester.as_ref()).await,
        "AccessDeniedException",
    );
    assert!(err.to_string().contains("kms:GenerateDataKey"), "{err}");
    assert!(mismatched.blobs().is_empty(), "nothing generated");
    // A debug-mode document (PCRs zero).
    let debug = DevAttester::new(DevRoot::generate().expect("root"), BTreeMap::new())
        .expect("debug attester");
    let standin = start(State {
        anchors: vec![debug.trust_anchor()],
        pcrs: w.standin.state.pcrs.clone(),
        blobs: Mutex::new(HashMap::new()),
        quirk: Mutex::new(Quirk::None),
    })
    .await;
    expect_refused(
        provision(&w, &standin.client(), &debug).await,
        "AccessDeniedException",
    );
    assert!(standin.blobs().is_empty(), "nothing generated");
    // A document under an untrusted root, and no document for another KMS key.
    let foreign = DevAttester::new(DevRoot::generate().expect("root"), dev_pcrs(ENCLAVE_IMAGE))
        .expect("attester");
    let before = w.standin.blobs().len();
    expect_refused(
        provision(&w, &w.client(), &foreign).await,
        "ValidationException",
    );
    expect_refused(
        provision_wrapped_key(
            &w.client(),
            "arn:aws:kms:us-east-1:111122223333:key/another",
            w.root_attester.as_ref(),
            &w.credentials(),
        )
        .await,
        "NotFoundException",
    );
    assert_eq!(w.standin.blobs().len(), before, "nothing generated");
}

#[tokio::test]
async fn a_generate_reply_with_plaintext_is_refused() {
    let w = world().await;
    w.quirk(Quirk::Plaintext);
    let err = provision(&w, &w.client(), w.root_attester.as_ref())
        .await
        .expect_err("refused");
    assert!(matches!(err, KmsError::PlaintextWithRecipient), "{err:?}");
    // The same at the client level.
    let key = RecipientKey::generate().expect("key");
    let recipient = key.recipient(w.root_attester.as_ref()).expect("recipient");
    let err = w
        .client()
        .generate_data_key(
            &GenerateDataKeyRequest {
                key_id: KEY_ARN,
                number_of_bytes: 32,
                recipient: &recipient,
            },
            &Credentials::new(ACCESS_KEY, SECRET, Some(TOKEN.into())),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, KmsError::PlaintextWithRecipient), "{err:?}");
}

#[tokio::test]
async fn a_generated_key_of_another_length_or_unopenable_cms_is_refused() {
    let w = world().await;
    w.quirk(Quirk::KeyLen(16));
    let err = provision(&w, &w.client(), w.root_attester.as_ref())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, KmsError::GeneratedKeyLength { len: 16 }),
        "{err:?}"
    );
    w.quirk(Quirk::Cms(|_| b"not a CMS message".to_vec()));
    let err = provision(&w, &w.client(), w.root_attester.as_ref())
        .await
        .expect_err("refused");
    assert!(matches!(err, KmsError::Cms(_)), "{err:?}");
    // A document carrying another public key: KMS answers, the enclave cannot open it.
    w.quirk(Quirk::None);
    let stranger = RecipientKey::generate().expect("key").spki_der().to_vec();
    let attester = rewriting(&w, move |inner, request| {
        let mut request = request.clone();
        request.public_key = Some(stranger.clone());
        inner.attest(&request)
    });
    let err = provision(&w, &w.client(), attester.as_ref())
        .await
        .expect_err("cannot open");
    assert!(matches!(err, KmsError::Cms(CmsError::KeyUnwrap)), "{err:?}");
}
