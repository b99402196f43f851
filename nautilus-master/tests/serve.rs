//! `nautilus-master serve --tee dev` end to end, laid out as on an EC2 host, over Unix sockets
//! standing in for vsock (this machine has no vsock loopback):
//!
//! ```text
//!  kubectl ──TLS──► parent bridge :P ══"vsock"══► enclave ingress ──► serve's proxy ──► kube-apiserver (peer)
//!                                                  serve ──egress forwarder══"vsock"══► parent ──► devnet, etcd
//! ```
//!
//! The operator registers the running enclave on the devnet through the real PTB (the devnet
//! trusts the dev root, as real Sui trusts AWS's); `verify_master` then checks the chain, the
//! document, the nonce, the registered CA and the served certificate through the bridge, and
//! kubectl works with exactly that CA pinned. A restarted enclave has a new CA: until it is
//! registered again, clients refuse it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use daas_chain::{GrpcChain, tx};
use daas_seal::Role;
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::tee::DevTee;
use support::devnet::{fund, token};
use support::procs::{spawn_etcd, start_master as start};
use support::{ApiServerOnShim, free_port, peer, run_ok};

const SUI: u64 = 1_000_000_000;

struct Setup {
    chain: GrpcChain,
    tee: DevTee,
    tee_dir: PathBuf,
}

impl Setup {
    /// The check a user runs before pinning, through the bridge, with the dev root trusted.
    async fn verify(
        &self,
        url: &str,
    ) -> Result<daas_verify_master::VerifiedMaster, daas_verify_master::VerifyMasterError> {
        let check = daas_verify_master::MasterCheck {
            endpoint: Some(url.to_owned()),
            anchors: daas_verify_master::trust_anchors(Some(
                &self.tee_dir.join(nautilus_master::tee::DEV_ROOT_CERT),
            ))?,
            ..daas_verify_master::MasterCheck::new(nautilus_master::auth::unix_ms_now())
        };
        daas_verify_master::verify_master(&self.chain, &check).await
    }

    /// The operator's registration: a fresh document from the master, one PTB.
    async fn register(&self, operator: &WalletKey, url: &str) {
        use base64ct::Encoding;
        let endpoint = daas_verify_master::Endpoint::parse(url).expect("endpoint");
        let (answer, _) = daas_verify_master::fetch_attestation(&endpoint, &[1; 32])
            .await
            .expect("fetch through the bridge");
        let document = base64ct::Base64::decode_vec(&answer.document).expect("base64");
        let gas = self
            .chain
            .gas_for(operator.address(), 0)
            .await
            .expect("gas");
        let t = tx::register_enclave(self.chain.config(), &gas, &document, url).expect("tx");
        self.chain
            .sign_and_execute(operator.keypair(), t)
            .await
            .expect("registration accepted by the chain");
    }
}

#[test]
fn serve_tee_dev_behind_the_bridge_registers_is_verified_and_serves_kubectl() {
    let Some(k8s) = peer("DAAS_K8S_PEER_DIR", "kube-apiserver-peer-dir-unset") else {
        return;
    };
    let Some(kubectl) = peer("KUBECTL", "kubectl") else {
        return;
    };
    // Debian's etcd-server (ETCD_BIN overrides), as spawn_etcd runs it.
    if peer("ETCD_BIN", "etcd").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_rt = rt.enter();

    // The chain, trusting the operator's dev root (real Sui trusts only AWS's).
    let tee_dir = tmp.path().join("tee");
    let tee = DevTee::load_or_create(&tee_dir).expect("dev root");
    let devnet = daas_devnet::process::DevnetProcess::start_with(
        &daas_devnet::process::binary().expect("devnet binary"),
        &tmp.path().join("chain"),
        500,
        Some(&tee_dir.join(nautilus_master::tee::DEV_ROOT_CERT)),
    )
    .expect("devnet");
    let config = daas_chain::ChainConfig::load(&devnet.client_config_path()).expect("config");
    let chain = GrpcChain::new(config.clone()).expect("chain");
    let admin = daas_wallet::Keystore::load(config.admin_keystore.as_ref().expect("admin ks"))
        .expect("keystore")
        .keys()[0]
        .clone();
    let setup = Setup {
        chain,
        tee,
        tee_dir: tee_dir.clone(),
    };
    let devnet_port: u16 = config
        .rpc
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("devnet port");
    // The admin publishes the dev image's PCRs; bob (granted) stakes as a cluster admin.
    let bob = WalletKey::generate(Scheme::Ed25519);
    let bob_stake = rt.block_on(async {
        let c = &setup.chain;
        let pcrs = setup.tee.pcrs();
        let cap = c
            .object_ref(config.admin_cap.expect("cap"))
            .await
            .expect("cap");
        let gas = c.gas_for(admin.address(), 0).await.expect("gas");
        let t = tx::set_expected_pcrs(c.config(), &gas, cap, [&pcrs[0], &pcrs[1], &pcrs[2]])
            .expect("tx");
        c.sign_and_execute(admin.keypair(), t).await.expect("pcrs");
        let cap = c
            .object_ref(config.admin_cap.expect("cap"))
            .await
            .expect("cap");
        let gas = c.gas_for(admin.address(), 0).await.expect("gas");
        let t =
            tx::grant_role(c.config(), &gas, cap, bob.address(), Role::Admin.code()).expect("tx");
        c.sign_and_execute(admin.keypair(), t).await.expect("grant");
        fund(c, &admin, bob.address(), 20 * SUI).await;
        let gas = c.gas_for(bob.address(), 10 * SUI).await.expect("gas");
        let t = tx::stake(c.config(), &gas, 10 * SUI, Role::Admin.code(), "").expect("tx");
        let done = c.sign_and_execute(bob.keypair(), t).await.expect("stake");
        done.events
            .iter()
            .find_map(|e| match e {
                daas_chain_types::PackageEvent::Staked(s) => Some(s.record_id),
                _ => None,
            })
            .expect("Staked")
    });

    // Outside the enclave: etcd (the datastore, ciphertext only) and the API server.
    let (_etcd, etcd_port) = spawn_etcd(&tmp.path().join("etcd"));
    let api = ApiServerOnShim::start(&k8s, &tmp.path().join("api"), &[]);
    let pki = api.pki();

    // The parent bridge: ingress :P → enclave vsock 8080; egress to the devnet and etcd only.
    let vsock = tmp.path().join("vsock");
    let public_port = free_port();
    let (_bridge, _) = start(
        &[
            "bridge".into(),
            "--enclave-cid".into(),
            "16".into(),
            "--unix-vsock-dir".into(),
            vsock.display().to_string(),
            "--ingress".into(),
            format!("127.0.0.1:{public_port}=8080"),
            "--egress-port".into(),
            "7000".into(),
            "--allow".into(),
            format!("127.0.0.1:{devnet_port}"),
            "--allow".into(),
            format!("127.0.0.1:{etcd_port}"),
        ],
        "bridge",
    );

    // The enclave: serve, reaching the chain and etcd only through its egress forwarders.
    let (chain_fwd, etcd_fwd, proxy_port) = (free_port(), free_port(), free_port());
    let url = format!("https://127.0.0.1:{public_port}");
    let keyring = tmp.path().join("keys");
    support::init_keyring(&keyring);
    let serve_config = tmp.path().join("serve.toml");
    std::fs::write(
        &serve_config,
        format!(
            r#"data_dir = "{data}"
public_endpoint = "{url}"

[listen]
proxy = "127.0.0.1:{proxy_port}"
webhook = "127.0.0.1:{webhook}"
admin = "127.0.0.1:{admin}"

[chain]
rpc = "http://127.0.0.1:{chain_fwd}"
chain_id = "{chain_id}"
package = "{package}"
cluster = "{cluster}"
stale_after = "6s"

[etcd]
endpoints = ["http://127.0.0.1:{etcd_fwd}"]

[keys]
file = "{keyring}"

[workers]
listen = "127.0.0.1:0"

[upstream.external]
url = "{api}"
ca = "{ca}"
client_cert = "{cert}"
client_key = "{key}"

[bridge]
egress_port = 7000
allow = ["127.0.0.1:{devnet_port}", "127.0.0.1:{etcd_port}"]
egress = [
  {{ target = "127.0.0.1:{devnet_port}", listen = "127.0.0.1:{chain_fwd}" }},
  {{ target = "127.0.0.1:{etcd_port}", listen = "127.0.0.1:{etcd_fwd}" }},
]
ingress = [{{ vsock_port = 8080, connect = "127.0.0.1:{proxy_port}" }}]
"#,
            data = tmp.path().join("enclave").display(),
            webhook = free_port(),
            admin = free_port(),
            chain_id = config.chain_id.clone().expect("chain id"),
            package = config.package,
            cluster = config.cluster,
            keyring = keyring.display(),
            api = api.url(),
            ca = pki.join("ca.crt").display(),
            cert = pki.join("front-proxy-client.crt").display(),
            key = pki.join("front-proxy-client.key").display(),
        ),
    )
    .expect("write config");
    let serve_args = vec![
        "serve".to_owned(),
        "--config".into(),
        serve_config.display().to_string(),
        "--tee".into(),
        "dev".into(),
        "--dev-root-dir".into(),
        tee_dir.display().to_string(),
        "--unix-vsock-dir".into(),
        vsock.display().to_string(),
    ];
    let (serve, banner) = start(&serve_args, "serving");
    assert!(banner.iter().any(|l| l.contains(&url)), "{banner:?}");

    // Before registration: no enclave on chain, so nothing is pinned.
    let err = rt
        .block_on(setup.verify(&url))
        .expect_err("not registered yet");
    assert!(
        matches!(
            err,
            daas_verify_master::VerifyMasterError::NotRegistered { .. }
        ),
        "{err}"
    );
    // The operator registers it; then every check passes through the bridge.
    rt.block_on(setup.register(&admin, &url));
    let verified = rt.block_on(setup.verify(&url)).expect("the master passes");
    assert_eq!(verified.endpoint, url);

    // kubectl with exactly the verified CA pinned, through the bridge, to the real apiserver:
    // the kubeconfig comes from `kubeconfig generate --attested` (built beside this binary by
    // `cargo test --workspace`), which runs the same checks before writing anything.
    let token = token(&bob, config.cluster, bob_stake, Role::Admin, None, 0);
    let kubeconfig = tmp.path().join("bob.kubeconfig");
    let generator = Path::new(support::bin()).with_file_name("kubeconfig");
    if generator.is_file() {
        let mut child = Command::new(&generator)
            .args(["generate", "--attested", "--token-stdin", "--server", &url])
            .arg("--chain-config")
            .arg(devnet.client_config_path())
            .arg("--cluster")
            .arg(config.cluster.to_string())
            .arg("--dev-root")
            .arg(tee_dir.join(nautilus_master::tee::DEV_ROOT_CERT))
            .arg("-o")
            .arg(&kubeconfig)
            .stdin(Stdio::piped())
            .spawn()
            .expect("kubeconfig generate");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), token.as_bytes())
            .expect("token");
        assert!(child.wait().expect("wait").success(), "generate --attested");
        let written = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
        assert!(written.contains(&support::proxy::base64_std(verified.ca_pem.as_bytes())));
    } else {
        assert!(
            std::env::var("DAAS_REQUIRE_PEERS").as_deref() != Ok("1"),
            "{} not built (run the workspace's tests)",
            generator.display()
        );
        eprintln!(
            "note: {} not built; writing the kubeconfig from the verified CA directly",
            generator.display()
        );
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: d\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: d, user: u}}\ncurrent-context: c\n",
                support::proxy::base64_std(verified.ca_pem.as_bytes())
            ),
        )
        .expect("kubeconfig");
    }
    let namespaces = run_ok(
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--request-timeout=30s", "get", "namespaces", "-o", "name"]),
    );
    assert!(namespaces.contains("namespace/default"), "{namespaces}");

    // A restarted enclave has a new CA: refused until the operator registers it again.
    drop(serve);
    let (_serve, _) = start(&serve_args, "serving");
    let err = rt.block_on(setup.verify(&url)).expect_err("restarted");
    assert!(
        matches!(
            err,
            daas_verify_master::VerifyMasterError::CaNotRegistered { .. }
        ),
        "{err}"
    );
    rt.block_on(setup.register(&admin, &url));
    let again = rt.block_on(setup.verify(&url)).expect("registered again");
    assert_ne!(again.ca_sha256, verified.ca_sha256);
}

/// Outside a Nitro Enclave, `serve` without `--tee dev` refuses to start and says why; a key
/// file is refused for a real enclave before anything is opened.
#[test]
fn serve_refuses_to_run_without_an_attester_or_with_a_key_file() {
    if Path::new("/dev/nsm").exists() {
        eprintln!("skipped: /dev/nsm exists (inside a Nitro Enclave)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = format!(
        "data_dir = \"{}\"\npublic_endpoint = \"https://203.0.113.7:8080\"\n[chain]\nrpc = \"https://fullnode.testnet.sui.io:443\"\nchain_id = \"4c78adac\"\npackage = \"0x1\"\ncluster = \"0x2\"\n[etcd]\nendpoints = [\"https://10.0.0.5:2379\"]\n",
        tmp.path().join("d").display()
    );
    for (keys, want) in [
        (
            "[keys.kms]\nwrapped_keys = \"/nonexistent/wrapped-keys.json\"\n",
            "cannot open /dev/nsm",
        ),
        ("[keys]\nfile = \"/nonexistent/keys\"\n", "--tee dev only"),
    ] {
        let config = tmp.path().join("serve.toml");
        std::fs::write(&config, format!("{base}{keys}")).expect("config");
        let out = Command::new(support::bin())
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}
