//! `nautilus-master serve --tee dev` with its storage keys released by KMS and kept wrapped in
//! etcd (`[keys.kms] wrapped_keys = "etcd"`), end to end, laid out as on an EC2 host over Unix
//! sockets standing in for vsock:
//!
//! ```text
//!  serve ──egress forwarders══"vsock"══► parent bridge ──► devnet, etcd, the KMS stand-in
//!  serve ──credentials relay══"vsock"══► parent bridge ──► the IMDSv2 stand-in
//!  etcdctl ──► 127.0.0.1:R ──► serve's etcd shim socket (<data_dir>/etcd.sock)
//! ```
//!
//! The KMS stand-in is `crates/kms/tests/common/standin.rs` (HTTPS, SigV4, the attestation
//! document verified against the dev root, the key policy's PCR conditions with the PCRs of
//! `serve --tee dev`'s dev attester, real BER CMS replies). Cluster data is written with etcdctl
//! through serve's own etcd shim (the socket kube-apiserver would use): the simplest real path
//! through the encrypting shim, without an API server.

#[path = "../../crates/kms/tests/common/standin.rs"]
mod standin;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use daas_etcd_proto::{DeleteRangeRequest, PutRequest};
use daas_etcd_shim::backend::Backend;
use daas_etcd_shim::{EtcdBackend, EtcdConfig};
use nautilus_master::tee::DevTee;
use nautilus_master::wrapped_keys::{self, RECORD_KEY};
use standin::{ACCESS_KEY, KEY_ARN, REGION, SECRET, State, TOKEN};
use support::procs::{spawn_etcd, start_master};
use support::{free_port, peer};

/// A KMS key the enclave is not configured for.
const OTHER_ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/ffffffff-0000-4000-8000-000000000000";
/// A value written through the shim; it must never appear in etcd.
const MARKER: &str = "serve-kms-e2e plaintext 8c1d57e2";
const DATA_KEY: &str = "/registry/configmaps/default/serve-kms-e2e";
const IMDS_TOKEN: &str = "imds-stand-in-session-token";
const ROLE: &str = "k3s-daas-parent";

/// A stand-in for EC2's IMDSv2 (token PUT first, then GETs carrying it) that hands out the KMS
/// stand-in's credentials; its base URL.
async fn imds_stand_in() -> String {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};
    fn authorized(headers: &HeaderMap, body: String) -> (StatusCode, String) {
        match headers.get("x-aws-ec2-metadata-token") {
            Some(t) if t.as_bytes() == IMDS_TOKEN.as_bytes() => (StatusCode::OK, body),
            _ => (StatusCode::UNAUTHORIZED, String::new()),
        }
    }
    let credentials = serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": ACCESS_KEY,
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": "2099-01-01T00:00:00Z",
    })
    .to_string();
    let app = axum::Router::new()
        .route(
            "/latest/api/token",
            put(|headers: HeaderMap| async move {
                if headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
                    (StatusCode::OK, IMDS_TOKEN.to_owned())
                } else {
                    (StatusCode::BAD_REQUEST, String::new())
                }
            }),
        )
        .route(
            "/latest/meta-data/iam/security-credentials/",
            get(|headers: HeaderMap| async move { authorized(&headers, ROLE.to_owned()) }),
        )
        .route(
            &format!("/latest/meta-data/iam/security-credentials/{ROLE}"),
            get(move |headers: HeaderMap| async move { authorized(&headers, credentials) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind IMDS");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// 127.0.0.1:port → the Unix socket `socket` (connected per connection, so it follows serve's
/// restarts): etcdctl 3.4 cannot dial a Unix socket by path.
async fn relay_to_unix(socket: PathBuf) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    port
}

fn etcdctl(bin: &Path, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=127.0.0.1:{port}"))
        .arg("--command-timeout=10s");
    cmd
}

/// Runs `cmd`, returning stdout as bytes; panics with everything on failure.
fn output_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `nautilus-master <args>` expecting it to exit (within a generous bound that only guards
/// against a serve that wrongly starts); its status and stderr.
fn run_to_exit(args: &[String], stderr_file: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(support::bin())
        .args(args)
        .env("DAAS_LOG", "info,daas_devnet=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_file).expect("stderr file"))
        .spawn()
        .expect("spawn nautilus-master");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not exit: {}",
                std::fs::read_to_string(stderr_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (
        status,
        std::fs::read_to_string(stderr_file).expect("stderr"),
    )
}

#[test]
fn serve_generates_keeps_and_releases_its_data_keys_through_etcd_and_kms() {
    let Some(etcdctl_bin) = peer("ETCDCTL_BIN", "etcdctl") else {
        return;
    };
    // Debian's etcd-server (ETCD_BIN overrides), as spawn_etcd runs it.
    if peer("ETCD_BIN", "etcd").is_none() {
        return;
    }
    let began = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_rt = rt.enter();

    // The dev attester serve will use (same root directory, PCRs of this build): the KMS
    // stand-in's key policy names exactly its PCRs and trusts its root.
    let tee_dir = tmp.path().join("tee");
    let tee = DevTee::load_or_create(&tee_dir).expect("dev root");
    let kms = rt.block_on(standin::start(State {
        anchors: vec![tee.trust_anchor()],
        pcrs: tee.pcrs().map(hex::encode),
        ..State::default()
    }));
    let imds = rt.block_on(imds_stand_in());

    let devnet = daas_devnet::process::DevnetProcess::start_with(
        &daas_devnet::process::binary().expect("devnet binary (cargo build -p k3s-daas-devnet)"),
        &tmp.path().join("chain"),
        500,
        None,
    )
    .expect("devnet");
    let config = daas_chain::ChainConfig::load(&devnet.client_config_path()).expect("config");
    let devnet_port: u16 = config
        .rpc
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("devnet port");
    let (_etcd, etcd_port) = spawn_etcd(&tmp.path().join("etcd"));
    let kms_port = kms.addr.port();

    // The parent bridge: egress to the devnet, etcd and "KMS" only; the credentials relay
    // reads the IMDS stand-in.
    let vsock = tmp.path().join("vsock");
    let allowed = [devnet_port, etcd_port, kms_port].map(|p| format!("127.0.0.1:{p}"));
    let mut bridge_args: Vec<String> = [
        "bridge",
        "--enclave-cid",
        "16",
        "--egress-port",
        "7000",
        "--credentials-port",
        "7001",
        "--region",
        REGION,
        "--imds-url",
        &imds,
        "--unix-vsock-dir",
    ]
    .map(String::from)
    .into();
    bridge_args.push(vsock.display().to_string());
    for a in &allowed {
        bridge_args.extend(["--allow".to_owned(), a.clone()]);
    }
    let (_bridge, _) = start_master(&bridge_args, "bridge");

    // The enclave's configuration: the KMS key pinned, keys in etcd, everything through the
    // bridge; no API server (the proxy answers 503), no workers.
    let (chain_fwd, etcd_fwd, kms_fwd) = (free_port(), free_port(), free_port());
    let data_dir = tmp.path().join("enclave");
    let serve_config = tmp.path().join("serve.toml");
    std::fs::write(
        &serve_config,
        format!(
            r#"data_dir = "{data}"
public_endpoint = "https://127.0.0.1:{public}"

[listen]
proxy = "127.0.0.1:{proxy}"
webhook = "127.0.0.1:{webhook}"
admin = "127.0.0.1:{admin}"

[chain]
rpc = "http://127.0.0.1:{chain_fwd}"
chain_id = "{chain_id}"
package = "{package}"
cluster = "{cluster}"

[etcd]
endpoints = ["http://127.0.0.1:{etcd_fwd}"]

[keys.kms]
wrapped_keys = "etcd"
key_id = "{KEY_ARN}"
region = "{REGION}"
connect_to = "127.0.0.1:{kms_fwd}"
ca_bundle = "{ca_bundle}"

[upstream]
k3s_bin = "/nonexistent/k3s"

[workers]
enabled = false

[bridge]
egress_port = 7000
credentials_port = 7001
allow = ["127.0.0.1:{devnet_port}", "127.0.0.1:{etcd_port}", "127.0.0.1:{kms_port}"]
egress = [
  {{ target = "127.0.0.1:{devnet_port}", listen = "127.0.0.1:{chain_fwd}" }},
  {{ target = "127.0.0.1:{etcd_port}", listen = "127.0.0.1:{etcd_fwd}" }},
  {{ target = "127.0.0.1:{kms_port}", listen = "127.0.0.1:{kms_fwd}" }},
]
"#,
            data = data_dir.display(),
            public = free_port(),
            proxy = free_port(),
            webhook = free_port(),
            admin = free_port(),
            chain_id = config.chain_id.clone().expect("chain id"),
            package = config.package,
            cluster = config.cluster,
            ca_bundle = kms.ca_file.path().display(),
        ),
    )
    .expect("write config");
    let serve_args: Vec<String> = vec![
        "serve".into(),
        "--config".into(),
        serve_config.display().to_string(),
        "--tee".into(),
        "dev".into(),
        "--dev-root-dir".into(),
        tee_dir.display().to_string(),
        "--unix-vsock-dir".into(),
        vsock.display().to_string(),
    ];
    let etcd = rt
        .block_on(async {
            EtcdBackend::connect(&EtcdConfig {
                endpoints: vec![format!("http://127.0.0.1:{etcd_port}")],
                ..EtcdConfig::default()
            })
        })
        .expect("etcd client");
    let record = || {
        rt.block_on(wrapped_keys::load(&etcd))
            .expect("read the record")
    };
    let shim_port = rt.block_on(relay_to_unix(data_dir.join("etcd.sock")));
    let through_shim = || etcdctl(&etcdctl_bin, shim_port);
    let raw_etcd = || etcdctl(&etcdctl_bin, etcd_port);
    eprintln!("setup: {:?}", began.elapsed());

    // 1. First start on an empty etcd: one key generated for this enclave, its record
    //    written, then released with Decrypt.
    assert!(record().is_none(), "etcd starts empty");
    let t = Instant::now();
    let (serve, _) = start_master(&serve_args, "serving");
    eprintln!("first start (GenerateDataKey + Decrypt): {:?}", t.elapsed());
    let (decrypts, generated) = kms.calls();
    assert_eq!(generated, 1, "exactly one GenerateDataKey");
    assert!(decrypts >= 1, "the keys were released with Decrypt");
    let first = record().expect("the record is in etcd");
    assert_eq!(first.key_id, KEY_ARN);
    assert_eq!(first.region, REGION);
    assert_eq!(first.keys.len(), 1);
    assert_eq!(
        kms.blobs().len(),
        1,
        "the stand-in holds the one generated key"
    );

    // 2. Cluster data written through serve's shim is ciphertext in etcd.
    output_ok(through_shim().args(["put", DATA_KEY, MARKER]));
    let read = output_ok(through_shim().args(["get", DATA_KEY, "--print-value-only"]));
    assert_eq!(String::from_utf8_lossy(&read).trim_end(), MARKER);
    let stored = output_ok(raw_etcd().args(["get", DATA_KEY, "--print-value-only"]));
    assert!(stored.len() > MARKER.len(), "the value is in etcd");
    assert!(
        !stored.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "plaintext in etcd"
    );
    let listing = output_ok(raw_etcd().args(["get", "--prefix", "/registry/"]));
    assert!(
        !listing
            .windows(MARKER.len())
            .any(|w| w == MARKER.as_bytes()),
        "plaintext in etcd"
    );

    // 3. Restart: the same record, released again (no second GenerateDataKey); the data reads
    //    back.
    drop(serve);
    let t = Instant::now();
    let (serve, _) = start_master(&serve_args, "serving");
    eprintln!("restart (Decrypt only): {:?}", t.elapsed());
    let (decrypts_after, generated) = kms.calls();
    assert_eq!(generated, 1, "no second GenerateDataKey");
    assert!(decrypts_after > decrypts, "released again");
    assert_eq!(record().expect("record").to_json(), first.to_json());
    let read = output_ok(through_shim().args(["get", DATA_KEY, "--print-value-only"]));
    assert_eq!(String::from_utf8_lossy(&read).trim_end(), MARKER);
    drop(serve);

    // 4. The record deleted while etcd holds cluster data: serve refuses to start, naming the
    //    missing record, and asks KMS for nothing.
    rt.block_on(etcd.delete_range(DeleteRangeRequest {
        key: Bytes::from_static(RECORD_KEY),
        ..DeleteRangeRequest::default()
    }))
    .expect("delete the record");
    let before = kms.calls();
    let t = Instant::now();
    let (status, stderr) = run_to_exit(&serve_args, &tmp.path().join("serve-missing.log"));
    eprintln!("refusal (record missing): {:?}", t.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("k3s-daas/kms/wrapped-keys") && stderr.contains("is missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("refusing to generate a new key"),
        "{stderr}"
    );
    assert_eq!(kms.calls(), before, "nothing asked of KMS");
    assert!(record().is_none(), "nothing written");

    // 5. A record naming another KMS key: refused, naming both keys.
    let mut other = first.clone();
    other.key_id = OTHER_ARN.to_owned();
    rt.block_on(etcd.put(PutRequest {
        key: Bytes::from_static(RECORD_KEY),
        value: Bytes::from(other.to_json()),
        ..PutRequest::default()
    }))
    .expect("write the other record");
    let (status, stderr) = run_to_exit(&serve_args, &tmp.path().join("serve-other.log"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the wrapped keys are under KMS key {OTHER_ARN}, but this enclave is configured for {KEY_ARN}"
        )),
        "{stderr}"
    );
    assert_eq!(kms.calls(), before, "nothing asked of KMS");

    // 6. The record restored (as from a backup): serve starts and the data reads back.
    rt.block_on(etcd.put(PutRequest {
        key: Bytes::from_static(RECORD_KEY),
        value: Bytes::from(first.to_json()),
        ..PutRequest::default()
    }))
    .expect("restore the record");
    let (_serve, _) = start_master(&serve_args, "serving");
    let read = output_ok(through_shim().args(["get", DATA_KEY, "--print-value-only"]));
    assert_eq!(String::from_utf8_lossy(&read).trim_end(), MARKER);
    assert_eq!(kms.calls().1, 1, "still one GenerateDataKey");
    eprintln!("total: {:?}", began.elapsed());
}
