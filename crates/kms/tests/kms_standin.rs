//! Attested key release end to end against the **KMS stand-in** (`common/standin.rs`: an HTTPS
//! server standing in for AWS KMS, test code only; what it checks and how it differs from KMS
//! are in its module docs and docs/kms.md).

#[path = "common/standin.rs"]
mod standin;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64ct::{Base64, Encoding};
use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};
use daas_attestation::{AttestationRequest, Attester, AttesterError, RootKind};
use daas_envelope::{DataKey, KeyProvider};
use daas_kms::sigv4::Credentials;
use daas_kms::{
    CmsError, DecryptRequest, GenerateDataKeyRequest, KmsClient, KmsClientConfig, KmsError,
    KmsKeyProvider, ProvisionedKey, Recipient, RecipientKey, StaticCredentials, WrappedKeys,
    WriteMode, provision_wrapped_key,
};
use serde_json::json;
use standin::{
    ACCESS_KEY, KEY_ALIAS, KEY_ARN, Quirk, REGION, SECRET, StandIn, State, TOKEN, now_ms, start,
};

const ENCLAVE_IMAGE: &[u8] = b"k3s-daas enclave image, test build";

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
        ..State::default()
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
        ..State::default()
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
        ..State::default()
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
        ..State::default()
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
        ..State::default()
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
