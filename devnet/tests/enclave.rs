//! Enclave registration through the gRPC API, as clients do it: an in-process devnet trusting a
//! dev attestation root (`DevnetOptions::trust_dev_attestation_root`), the `daas_chain`
//! transaction builders (`set_expected_pcrs`, `register_enclave`: `load_nitro_attestation`
//! feeding `enclave::register_enclave` in one PTB) and the typed read of the registered enclave.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use daas_attestation::binding::Binding;
use daas_attestation::dev::{DevAttester, DevRoot};
use daas_attestation::{AttestationRequest, Attester};
use daas_chain::{ChainConfig, ChainError, GrpcChain, registered_enclave, tx};
use daas_chain_types::AbortCode;
use daas_devnet::{CLIENT_CONFIG_FILE, DevnetOptions, LocalDevnet};
use daas_wallet::Keystore;

const ENDPOINT: &str = "https://enclave.example:6443";
const CA: [u8; 32] = [0xca; 32];

#[tokio::test(flavor = "multi_thread")]
async fn a_dev_enclave_registers_through_grpc_and_reads_back_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = DevRoot::generate().expect("dev root");
    let options = DevnetOptions {
        trust_dev_attestation_root: Some(root.trust_anchor()),
    };
    let pcrs: BTreeMap<u8, [u8; 48]> = [(0, [0x11; 48]), (1, [0x22; 48]), (2, [0x33; 48])].into();
    let attester = DevAttester::new(root, pcrs).expect("dev attester");
    let data_dir = dir.path().join("chain");
    let net = LocalDevnet::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &data_dir,
        None,
        None,
        &options,
    )
    .await
    .expect("devnet starts");
    let config = ChainConfig::load(&data_dir.join(CLIENT_CONFIG_FILE)).expect("client.json");
    let admin = Keystore::load(net.config.admin_keystore.as_ref().expect("admin keystore"))
        .expect("keystore")
        .keys()[0]
        .clone();
    let chain = GrpcChain::new(config.clone()).expect("client");
    assert_eq!(registered_enclave(&chain).await.expect("read").value, None);

    let cap = chain
        .admin_cap(config.admin_cap.expect("admin cap"))
        .await
        .expect("cap");
    let gas = chain.gas_for(admin.address(), 0).await.expect("gas");
    let set = tx::set_expected_pcrs(
        &config,
        &gas,
        cap.object,
        [&[0x11; 48], &[0x22; 48], &[0x33; 48]],
    )
    .expect("build");
    chain
        .sign_and_execute(admin.keypair(), set)
        .await
        .expect("set_expected_pcrs");

    let document = |endpoint: &str| {
        let binding = Binding {
            cluster_id: config.cluster.into_inner(),
            ca_sha256: CA,
            endpoint: endpoint.to_owned(),
        };
        attester
            .attest(&AttestationRequest {
                user_data: Some(binding.encode()),
                nonce: None,
                public_key: Some(vec![0x30, 0x59]),
            })
            .expect("attest")
    };

    // A document bound to another endpoint: the package's abort, mapped by the client.
    let gas = chain.gas_for(admin.address(), 0).await.expect("gas");
    let wrong = tx::register_enclave(&config, &gas, &document("https://other:6443"), ENDPOINT)
        .expect("build");
    match chain.sign_and_execute(admin.keypair(), wrong).await {
        Err(ChainError::Aborted(abort)) => {
            assert_eq!(
                abort.known,
                Some(AbortCode::UserDataEndpointMismatch),
                "{abort}"
            );
            assert_eq!(abort.function.as_deref(), Some("check_user_data"));
        }
        other => panic!("expected EUserDataEndpointMismatch, got {other:?}"),
    }

    let gas = chain.gas_for(admin.address(), 0).await.expect("gas");
    let register =
        tx::register_enclave(&config, &gas, &document(ENDPOINT), ENDPOINT).expect("build");
    let executed = chain
        .sign_and_execute(admin.keypair(), register)
        .await
        .expect("register_enclave");
    assert!(executed.events.iter().any(|e| matches!(
        e,
        daas_chain_types::PackageEvent::EnclaveRegistered(r) if r.ca_sha256 == CA.to_vec()
    )));
    let read = registered_enclave(&chain).await.expect("read");
    let enclave = read.value.expect("registered");
    assert_eq!(enclave.ca_sha256, CA);
    assert_eq!(enclave.endpoint, ENDPOINT);
    assert_eq!(
        enclave.pcrs,
        [vec![0x11; 48], vec![0x22; 48], vec![0x33; 48]]
    );
    assert_eq!(enclave.public_key, vec![0x30, 0x59]);
    assert!(read.checkpoint >= executed.checkpoint);
    net.shutdown().await.expect("shutdown");
}
