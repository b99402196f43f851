//! The credentials relay from the EKS sources, end to end: the parent bridge fetches from a
//! stand-in (STS over HTTPS for IRSA, the Pod Identity agent over HTTP) and the enclave's
//! `CredentialsClient` receives the credentials over the stand-in vsock.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use daas_bridge::{
    AwsCredentials, Bridge, BridgeConfig, BridgeError, ContainerConfig, CredentialsConfig,
    CredentialsError, CredentialsSource, Limits, SourceError, WebIdentityConfig,
};
use support::eks::*;
use support::*;

/// A token file in its own temporary directory.
struct TokenFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TokenFile {
    fn new(token: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).expect("write token");
        Self { _dir: dir, path }
    }

    /// Replaces the token as the kubelet does: a new file renamed over the old one.
    fn rotate(&self, token: &str) {
        let next = self.path.with_extension("next");
        std::fs::write(&next, token).expect("write rotated token");
        std::fs::rename(&next, &self.path).expect("rename rotated token");
    }
}

fn web_identity(sts: &StsStandIn, token_file: &Path) -> CredentialsSource {
    CredentialsSource::WebIdentity(WebIdentityConfig {
        role_arn: ROLE_ARN.to_owned(),
        token_file: token_file.to_path_buf(),
        session_name: SESSION_NAME.to_owned(),
        duration_seconds: None,
        endpoint: Some(sts.url.clone()),
        extra_ca: Some(sts.ca_file.path().to_path_buf()),
    })
}

async fn relay(source: CredentialsSource) -> Pair {
    Setup {
        credentials: Some((source, Some(REGION.to_owned()))),
        ..Setup::default()
    }
    .start()
    .await
}

async fn fetch(pair: &Pair) -> Result<AwsCredentials, CredentialsError> {
    pair.enclave
        .credentials()
        .expect("the relay is configured")
        .fetch()
        .await
}

/// The parent's error as the enclave sees it.
async fn refusal(pair: &Pair) -> String {
    match fetch(pair).await {
        Err(CredentialsError::Parent(why)) => why,
        other => panic!("expected the parent's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn web_identity_credentials_reach_the_enclave_and_are_cached() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let token = TokenFile::new(WEB_TOKEN);
    let pair = relay(web_identity(&sts, &token.path)).await;

    let creds = fetch(&pair).await.expect("credentials relayed");
    assert_eq!(creds.access_key_id.expose(), STS_ACCESS_KEY_ID);
    assert_eq!(creds.secret_access_key.expose(), STS_SECRET_ACCESS_KEY);
    assert_eq!(creds.session_token.expose(), STS_SESSION_TOKEN);
    assert_eq!(creds.region, REGION);
    assert_eq!(
        creds.expiration,
        Some(humantime::parse_rfc3339("2099-12-06T16:00:00Z").expect("time"))
    );
    // Far from expiry: the second request is served from the cache.
    fetch(&pair).await.expect("cached credentials");
    assert_eq!(sts.state.tokens(), vec![WEB_TOKEN.to_owned()]);
    assert_eq!(sts.state.bad_requests.load(Ordering::SeqCst), 0);
    assert_eq!(*sts.state.duration.lock().expect("duration"), None);
    pair.shutdown().await;
}

#[tokio::test]
async fn a_rotated_token_file_is_read_at_the_next_refresh() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Soon).await;
    let token = TokenFile::new(WEB_TOKEN);
    let pair = relay(web_identity(&sts, &token.path)).await;

    fetch(&pair).await.expect("first credentials");
    token.rotate(WEB_TOKEN_ROTATED);
    // Expiring within the refresh margin: not cached, so this asks STS again.
    fetch(&pair).await.expect("credentials after rotation");
    assert_eq!(
        sts.state.tokens(),
        vec![WEB_TOKEN.to_owned(), WEB_TOKEN_ROTATED.to_owned()]
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn duration_seconds_is_sent_when_configured() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let token = TokenFile::new(WEB_TOKEN);
    let CredentialsSource::WebIdentity(config) = web_identity(&sts, &token.path) else {
        unreachable!("web_identity builds a WebIdentity source");
    };
    let pair = relay(CredentialsSource::WebIdentity(WebIdentityConfig {
        duration_seconds: Some(7200),
        ..config
    }))
    .await;
    fetch(&pair).await.expect("credentials");
    assert_eq!(
        sts.state.duration.lock().expect("duration").as_deref(),
        Some("7200")
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn sts_refusals_reach_the_enclave_with_their_code() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let token = TokenFile::new(EXPIRED_WEB_TOKEN);
    let pair = relay(web_identity(&sts, &token.path)).await;

    let why = refusal(&pair).await;
    assert!(why.contains("web identity"), "{why}");
    assert!(why.contains("ExpiredTokenException"), "{why}");
    assert!(why.contains("Token expired"), "{why}");
    assert!(!why.contains(EXPIRED_WEB_TOKEN), "{why}");

    // Errors are not cached: a fixed token works at the next request.
    token.rotate(WEB_TOKEN);
    fetch(&pair).await.expect("credentials with a valid token");

    token.rotate("not-a-token-sts-knows");
    // Still cached from the success above.
    fetch(&pair).await.expect("still cached");
    pair.shutdown().await;

    let token = TokenFile::new("not-a-token-sts-knows");
    let pair = relay(web_identity(&sts, &token.path)).await;
    let why = refusal(&pair).await;
    assert!(why.contains("InvalidIdentityToken"), "{why}");
    pair.shutdown().await;
}

#[tokio::test]
async fn a_malformed_sts_reply_is_refused_without_echoing_it() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    sts.state.set_reply(StsReply::Garbage);
    let token = TokenFile::new(WEB_TOKEN);
    let pair = relay(web_identity(&sts, &token.path)).await;
    let why = refusal(&pair).await;
    assert!(why.contains("malformed"), "{why}");
    assert!(!why.contains(GARBAGE_SECRET), "{why}");
    pair.shutdown().await;
}

#[tokio::test]
async fn sts_tls_is_verified() {
    let token = TokenFile::new(WEB_TOKEN);

    // A certificate for another name than the endpoint's host.
    let sts = sts_stand_in(&["sts.eu-west-1.amazonaws.com"], Expiry::Far).await;
    let pair = relay(web_identity(&sts, &token.path)).await;
    let why = refusal(&pair).await;
    assert!(why.contains("TLS"), "{why}");
    pair.shutdown().await;

    // The right name, but a CA nobody trusts (no extra CA configured).
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let CredentialsSource::WebIdentity(config) = web_identity(&sts, &token.path) else {
        unreachable!("web_identity builds a WebIdentity source");
    };
    let pair = relay(CredentialsSource::WebIdentity(WebIdentityConfig {
        extra_ca: None,
        ..config
    }))
    .await;
    let why = refusal(&pair).await;
    assert!(why.contains("TLS"), "{why}");
    assert!(sts.state.tokens().is_empty(), "no token was sent");
    pair.shutdown().await;
}

#[tokio::test]
async fn a_missing_token_file_is_named() {
    let sts = sts_stand_in(&["127.0.0.1"], Expiry::Far).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-token");
    let pair = relay(web_identity(&sts, &missing)).await;
    let why = refusal(&pair).await;
    assert!(why.contains("no-such-token"), "{why}");
    assert!(why.contains("token file"), "{why}");
    pair.shutdown().await;
}

fn container(uri: &str, token_file: &Path) -> CredentialsSource {
    CredentialsSource::Container(ContainerConfig {
        full_uri: uri.to_owned(),
        token_file: token_file.to_path_buf(),
    })
}

#[tokio::test]
async fn pod_identity_credentials_reach_the_enclave_and_are_cached() {
    let (uri, agent) = pod_identity_stand_in(Expiry::Far).await;
    let token = TokenFile::new(POD_TOKEN);
    let pair = relay(container(&uri, &token.path)).await;

    let creds = fetch(&pair).await.expect("credentials relayed");
    assert_eq!(creds.access_key_id.expose(), POD_ACCESS_KEY_ID);
    assert_eq!(creds.secret_access_key.expose(), POD_SECRET_ACCESS_KEY);
    assert_eq!(creds.session_token.expose(), POD_SESSION_TOKEN);
    assert_eq!(creds.region, REGION);
    fetch(&pair).await.expect("cached credentials");
    assert_eq!(
        *agent.seen.lock().expect("seen"),
        vec![POD_TOKEN.to_owned()]
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn pod_identity_token_rotation_and_refusal() {
    let (uri, agent) = pod_identity_stand_in(Expiry::Soon).await;
    let token = TokenFile::new(POD_TOKEN);
    let pair = relay(container(&uri, &token.path)).await;
    fetch(&pair).await.expect("first credentials");

    // The agent now wants the rotated token; the file still holds the old one: 401.
    *agent.accepted.lock().expect("accepted") = POD_TOKEN_ROTATED.to_owned();
    let why = refusal(&pair).await;
    assert!(why.contains("Pod Identity"), "{why}");
    assert!(why.contains("401"), "{why}");
    assert!(!why.contains(POD_TOKEN), "{why}");
    assert_eq!(agent.refused.load(Ordering::SeqCst), 1);

    token.rotate(POD_TOKEN_ROTATED);
    fetch(&pair)
        .await
        .expect("credentials with the rotated token");
    assert_eq!(
        *agent.seen.lock().expect("seen"),
        vec![POD_TOKEN.to_owned(), POD_TOKEN_ROTATED.to_owned()]
    );

    agent.garbage.store(true, Ordering::SeqCst);
    let why = refusal(&pair).await;
    assert!(why.contains("malformed"), "{why}");
    assert!(!why.contains(GARBAGE_SECRET), "{why}");
    pair.shutdown().await;
}

/// Misconfigurations stop the bridge at start, before anything is served.
#[tokio::test]
async fn bad_source_configurations_fail_at_start() {
    let token = TokenFile::new(POD_TOKEN);
    let vs = vsock();
    let start = |source: CredentialsSource, region: Option<&'static str>| {
        let transport = vs.parent.clone();
        async move {
            Bridge::start(
                BridgeConfig {
                    enclave_cid: ENCLAVE_CID,
                    ingress: vec![],
                    egress: None,
                    credentials: Some(CredentialsConfig {
                        vsock_port: CREDENTIALS_PORT,
                        source,
                        region: region.map(str::to_owned),
                    }),
                    limits: Limits::default(),
                },
                transport,
            )
            .await
        }
    };
    let cases: Vec<(CredentialsSource, Option<&'static str>, &str)> = vec![
        (
            container("http://10.1.2.3/v1/credentials", &token.path),
            Some(REGION),
            "only allowed to the Pod Identity agent",
        ),
        (
            container(daas_bridge::EKS_POD_IDENTITY_URI, &token.path),
            None,
            "needs a region",
        ),
        (
            CredentialsSource::WebIdentity(WebIdentityConfig {
                role_arn: ROLE_ARN.to_owned(),
                token_file: token.path.clone(),
                session_name: "bad session name".to_owned(),
                duration_seconds: None,
                endpoint: None,
                extra_ca: None,
            }),
            Some(REGION),
            "role session name",
        ),
    ];
    for (source, region, why) in cases {
        let name = source.name();
        match start(source, region).await {
            Err(e @ BridgeError::Credentials(_)) => {
                let shown = e.to_string();
                assert!(shown.contains(why), "{name}: {shown}");
            }
            Err(e) => panic!("{name}: expected a credentials error, got {e}"),
            Ok(_) => panic!("{name}: a bad configuration started"),
        }
    }
    // The error type can be matched on.
    let e = start(
        container(daas_bridge::EKS_POD_IDENTITY_URI, &token.path),
        None,
    )
    .await
    .err()
    .expect("no region");
    assert!(matches!(
        e,
        BridgeError::Credentials(SourceError::NoRegion("container"))
    ));
}
