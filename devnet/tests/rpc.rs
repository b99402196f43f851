//! The devnet served on 127.0.0.1:0 and driven by the real `sui_rpc::Client`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use prost_types::FieldMask;
use sui_crypto::SuiSigner;
use sui_rpc::Client;
use sui_rpc::client::{
    CheckpointStreamRequest, CheckpointStreamStart, ExecuteAndWaitError, ResponseExt,
};
use sui_rpc::field::FieldMaskUtil;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::{Address, Digest, Identifier, Object, StructTag, Transaction, UserSignature};
use sui_transaction_builder::{Function, ObjectInput, TransactionBuilder};

use daas_chain_types::package::{CLOCK_ID, grant_entry_id, slashed_entry_id};
use daas_chain_types::{Cluster, consts};
use daas_devnet::{CHAIN_NAME, LocalDevnet, REFERENCE_GAS_PRICE};
use daas_wallet::{Keystore, Scheme, WalletKey};

const SUI: u64 = consts::MIST_PER_SUI;
const BUDGET: u64 = 50_000_000;
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    _dir: tempfile::TempDir,
    net: LocalDevnet,
    client: Client,
    admin: WalletKey,
    faucet: WalletKey,
}

async fn env_with_heartbeat(heartbeat: Option<Duration>) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = LocalDevnet::start(&dir.path().join("chain"), None, heartbeat)
        .await
        .expect("devnet starts");
    let load = |path: &Option<std::path::PathBuf>| {
        let path = path.as_ref().expect("generated keystore");
        Keystore::load(path).expect("keystore").keys()[0].clone()
    };
    let admin = load(&net.config.admin_keystore);
    let faucet = load(&net.config.faucet_keystore);
    let client = Client::new(net.url()).expect("client");
    Env {
        _dir: dir,
        net,
        client,
        admin,
        faucet,
    }
}

async fn env() -> Env {
    env_with_heartbeat(None).await
}

fn coin_mask() -> FieldMask {
    FieldMask::from_paths(["object_id", "version", "digest", "balance", "object_type"])
}

async fn coins(client: &Client, owner: Address) -> Vec<proto::Object> {
    let request = proto::ListOwnedObjectsRequest::default()
        .with_owner(owner.to_string())
        .with_object_type(StructTag::gas_coin().to_string())
        .with_read_mask(coin_mask());
    client
        .list_owned_objects(request)
        .map(|o| o.expect("list_owned_objects"))
        .collect()
        .await
}

fn input(o: &proto::Object) -> ObjectInput {
    ObjectInput::owned(
        o.object_id().parse().expect("object id"),
        o.version(),
        o.digest().parse().expect("digest"),
    )
}

fn sign(
    key: &WalletKey,
    gas: &proto::Object,
    build: impl FnOnce(&mut TransactionBuilder),
) -> (Transaction, UserSignature) {
    let mut b = TransactionBuilder::new();
    build(&mut b);
    b.set_sender(key.address());
    b.set_gas_budget(BUDGET);
    b.set_gas_price(REFERENCE_GAS_PRICE);
    b.add_gas_objects([input(gas)]);
    let tx = b.try_build().expect("offline build");
    let sig = key.keypair().sign_transaction(&tx).expect("sign");
    (tx, sig)
}

fn transfer(to: Address, amount: u64) -> impl FnOnce(&mut TransactionBuilder) {
    move |b| {
        let g = b.gas();
        let a = b.pure(&amount);
        let split = b.split_coins(g, vec![a]);
        let to = b.pure(&to);
        b.transfer_objects(split, to);
    }
}

fn request(
    tx: Transaction,
    sig: UserSignature,
    paths: &[&str],
) -> proto::ExecuteTransactionRequest {
    proto::ExecuteTransactionRequest::new(tx.into())
        .with_signatures(vec![sig.into()])
        .with_read_mask(FieldMask::from_paths(paths.iter().copied()))
}

async fn execute_and_wait(
    client: &mut Client,
    tx: Transaction,
    sig: UserSignature,
) -> proto::ExecutedTransaction {
    client
        .execute_transaction_and_wait_for_checkpoint(
            request(tx, sig, &["digest", "effects", "events", "checkpoint"]),
            WAIT,
        )
        .await
        .map_err(|e| e.to_string())
        .expect("execute and wait")
        .into_inner()
        .transaction
        .expect("transaction")
}

fn new_address() -> Address {
    WalletKey::generate(Scheme::Ed25519).address()
}

fn function(package: Address, module: &str, name: &str) -> Function {
    Function::new(
        package,
        Identifier::new(module).expect("identifier"),
        Identifier::new(name).expect("identifier"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn service_info_epoch_and_headers() {
    let mut e = env().await;
    let response = e
        .client
        .ledger_client()
        .get_service_info(proto::GetServiceInfoRequest::default())
        .await
        .expect("GetServiceInfo");
    assert_eq!(
        response.chain_id(),
        Some(Digest::from_base58(&e.net.config.chain_id).expect("base58"))
    );
    assert_eq!(response.chain(), Some(CHAIN_NAME));
    let info = response.into_inner();
    assert_eq!(info.chain_id(), e.net.config.chain_id);
    assert_eq!(info.chain(), CHAIN_NAME);
    assert_eq!(info.epoch(), 0);
    assert_eq!(info.checkpoint_height(), 0, "only genesis so far");
    assert_eq!(info.lowest_available_checkpoint(), 0);
    assert!(info.timestamp.is_some());
    assert_eq!(
        e.client.get_reference_gas_price().await.expect("GetEpoch"),
        1000
    );

    // Chain id = base58 digest of checkpoint 0.
    let genesis = e
        .client
        .ledger_client()
        .get_checkpoint(proto::GetCheckpointRequest::by_sequence_number(0))
        .await
        .expect("GetCheckpoint")
        .into_inner();
    assert_eq!(genesis.checkpoint().digest(), e.net.config.chain_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn owned_objects_filter_by_parsed_type_and_paginate() {
    let e = env().await;
    let admin = e.admin.address();
    let all = coins(&e.client, admin).await;
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|c| c.balance() == 1_000 * SUI));
    assert!(
        all.iter()
            .all(|c| c.object_type().parse::<StructTag>().ok() == Some(StructTag::gas_coin()))
    );

    let list = |object_type: &str, page_size: u32| {
        let request = proto::ListOwnedObjectsRequest::default()
            .with_owner(admin.to_string())
            .with_object_type(object_type.to_owned())
            .with_page_size(page_size)
            .with_read_mask(FieldMask::from_paths(["object_id"]));
        e.client
            .list_owned_objects(request)
            .map(|o| o.expect("list"))
            .collect::<Vec<_>>()
    };
    // Short and long address forms, and no type parameters, name the same type.
    assert_eq!(list("0x2::coin::Coin<0x2::sui::SUI>", 3).await.len(), 10);
    assert_eq!(list("0x2::coin::Coin", 4).await.len(), 10);
    let caps = list(&format!("{}::cluster::AdminCap", e.net.config.package), 50).await;
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].object_id(), e.net.config.admin_cap.to_string());
    assert!(list("0x2::coin::Coin<0x2::sui::NOT>", 50).await.is_empty());
    // Pages of 3 return every object exactly once.
    let ids: BTreeSet<String> = list("", 3)
        .await
        .into_iter()
        .map(|o| o.object_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 11, "10 coins and the AdminCap");

    let err = e
        .client
        .clone()
        .state_client()
        .list_owned_objects(
            proto::ListOwnedObjectsRequest::default()
                .with_owner(admin.to_string())
                .with_object_type("not a type".to_owned()),
        )
        .await
        .expect_err("bad type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let balance = e
        .client
        .clone()
        .state_client()
        .get_balance(proto::GetBalanceRequest::default().with_owner(admin.to_string()))
        .await
        .expect("GetBalance")
        .into_inner();
    assert_eq!(balance.balance().balance(), 10_000 * SUI);
    let selected = e
        .client
        .select_coins(&admin, &StructTag::sui().into(), 1_500 * SUI, &[])
        .await
        .expect("select_coins");
    assert_eq!(selected.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_built_offline_executes_and_waits_for_its_checkpoint() {
    let mut e = env().await;
    let recipient = new_address();
    let gas = coins(&e.client, e.admin.address()).await.remove(0);
    let (tx, sig) = sign(&e.admin, &gas, transfer(recipient, 7 * SUI));
    let digest = tx.digest().to_string();
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert_eq!(executed.digest(), digest);
    assert!(executed.effects().status().success());
    assert_eq!(executed.checkpoint(), 1);
    assert!(executed.timestamp.is_some());

    let received = coins(&e.client, recipient).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].balance(), 7 * SUI);
    let created = executed
        .effects()
        .changed_objects
        .iter()
        .find(|c| c.id_operation() == proto::changed_object::IdOperation::Created)
        .expect("created coin");
    assert_eq!(created.object_id(), received[0].object_id());
    assert_eq!(created.output_owner().address(), recipient.to_string());
    assert_eq!(
        created.object_type().parse::<StructTag>().ok(),
        Some(StructTag::gas_coin())
    );

    // GetObject honours the read mask and serves the whole object as BCS.
    let object = e
        .client
        .ledger_client()
        .get_object(
            proto::GetObjectRequest::new(&received[0].object_id().parse().expect("id"))
                .with_read_mask(FieldMask::from_paths([
                    "bcs", "digest", "owner", "balance", "contents",
                ])),
        )
        .await
        .expect("GetObject")
        .into_inner()
        .object
        .expect("object");
    assert!(
        object.object_type.is_none() && object.version.is_none(),
        "masked out"
    );
    assert_eq!(object.balance(), 7 * SUI);
    assert_eq!(object.owner().address(), recipient.to_string());
    let decoded: Object = object.bcs().deserialize().expect("Object BCS");
    assert_eq!(decoded.digest().to_string(), object.digest());
    let coin: daas_chain_types::Coin = object.contents().deserialize().expect("Coin layout");
    assert_eq!(coin.balance, 7 * SUI);

    // The transaction is readable afterwards.
    let fetched = e
        .client
        .ledger_client()
        .get_transaction(
            proto::GetTransactionRequest::default()
                .with_digest(digest.clone())
                .with_read_mask(FieldMask::from_paths([
                    "digest",
                    "checkpoint",
                    "effects.status",
                    "balance_changes",
                ])),
        )
        .await
        .expect("GetTransaction")
        .into_inner();
    assert_eq!(fetched.transaction().checkpoint(), 1);
    assert_eq!(fetched.transaction().balance_changes.len(), 2);
    let missing = e
        .client
        .ledger_client()
        .get_object(proto::GetObjectRequest::new(&new_address()))
        .await
        .expect_err("unknown object");
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_gas_and_bad_signatures_are_rejected_and_duplicates_execute_once() {
    let mut e = env().await;
    let gas = coins(&e.client, e.admin.address()).await.remove(0);
    let (tx, sig) = sign(&e.admin, &gas, transfer(new_address(), SUI));

    // A signature over another transaction.
    let (other_tx, _) = sign(&e.admin, &gas, transfer(new_address(), 2 * SUI));
    let wrong = e.admin.keypair().sign_transaction(&other_tx).expect("sign");
    let err = e
        .client
        .execution_client()
        .execute_transaction(request(tx.clone(), wrong, &["digest"]))
        .await
        .expect_err("bad signature");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("signature"), "{}", err.message());
    // A signature by a key that is not the sender's.
    let stranger = WalletKey::generate(Scheme::Ed25519)
        .keypair()
        .sign_transaction(&tx)
        .expect("sign");
    let err = e
        .client
        .execution_client()
        .execute_transaction(request(tx.clone(), stranger, &["digest"]))
        .await
        .expect_err("not the sender");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The genuine transaction, twice: executed once, same answer.
    let first = e
        .client
        .execution_client()
        .execute_transaction(request(
            tx.clone(),
            sig.clone(),
            &["digest", "effects", "checkpoint"],
        ))
        .await
        .expect("execute")
        .into_inner();
    let second = e
        .client
        .execution_client()
        .execute_transaction(request(
            tx.clone(),
            sig.clone(),
            &["digest", "effects", "checkpoint"],
        ))
        .await
        .expect("re-execute")
        .into_inner();
    assert_eq!(first, second);
    let again = execute_and_wait(&mut e.client, tx, sig).await;
    assert_eq!(again.digest(), first.transaction().digest());
    let height = e
        .client
        .ledger_client()
        .get_service_info(proto::GetServiceInfoRequest::default())
        .await
        .expect("info")
        .into_inner()
        .checkpoint_height();
    assert_eq!(height, 1, "executed exactly once");

    // Another transaction with the now-stale gas reference.
    let (stale, stale_sig) = sign(&e.admin, &gas, transfer(new_address(), SUI));
    let err = e
        .client
        .execute_transaction_and_wait_for_checkpoint(request(stale, stale_sig, &["digest"]), WAIT)
        .await
        .expect_err("stale gas");
    let ExecuteAndWaitError::RpcError(status) = err else {
        panic!("expected an RPC error, got {err}");
    };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("not available for consumption"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stake_below_minimum_and_unused_results_are_failed_effects() {
    let mut e = env().await;
    let user = WalletKey::generate(Scheme::Ed25519);
    let mut faucet_client = e.client.clone();
    daas_devnet::faucet::fund(&mut faucet_client, &e.faucet, user.address(), 10 * SUI)
        .await
        .expect("faucet");
    let package = e.net.config.package;
    let cluster = ObjectInput::shared(
        e.net.config.cluster,
        e.net.config.cluster_initial_shared_version,
        false,
    );
    let gas = coins(&e.client, user.address()).await.remove(0);
    let (tx, sig) = sign(&user, &gas, |b| {
        let g = b.gas();
        let a = b.pure(&(SUI / 4));
        let split = b.split_coins(g, vec![a]);
        let c = b.object(cluster);
        let role = b.pure(&consts::ROLE_USER);
        let name = b.pure(&String::new());
        let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
        b.move_call(
            function(package, "staking", "stake"),
            vec![c, split[0], role, name, clock],
        );
    });
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    let status = executed.effects().status();
    assert!(!status.success());
    let error = status.error();
    assert_eq!(
        error.kind(),
        proto::execution_error::ExecutionErrorKind::MoveAbort
    );
    assert_eq!(error.command(), 1);
    assert_eq!(error.abort().abort_code(), 20);
    let location = error.abort().location();
    assert_eq!(location.package(), package.to_string());
    assert_eq!(location.module(), "staking");
    assert_eq!(location.function_name(), "stake");
    assert!(error.description().contains("MoveAbort"));
    assert!(
        executed
            .events
            .as_ref()
            .is_none_or(|ev| ev.events.is_empty())
    );
    let gas_used = executed.effects().gas_used();
    assert!(gas_used.computation_cost() > 0);
    assert_eq!(
        coins(&e.client, user.address()).await[0].balance(),
        10 * SUI - gas_used.computation_cost() - gas_used.storage_cost()
            + gas_used.storage_rebate()
    );

    // A split coin that is never transferred.
    let gas = coins(&e.client, user.address()).await.remove(0);
    let (tx, sig) = sign(&user, &gas, |b| {
        let g = b.gas();
        let a = b.pure(&SUI);
        let _ = b.split_coins(g, vec![a]);
    });
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert_eq!(
        executed.effects().status().error().kind(),
        proto::execution_error::ExecutionErrorKind::UnusedValueWithoutDrop
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slashing_is_readable_as_a_derived_dynamic_field_object() {
    let mut e = env().await;
    let config = e.net.config.clone();
    let record = new_address();
    let cluster_object = e
        .client
        .ledger_client()
        .get_object(
            proto::GetObjectRequest::new(&config.cluster)
                .with_read_mask(FieldMask::from_paths(["contents", "owner"])),
        )
        .await
        .expect("cluster")
        .into_inner();
    assert_eq!(
        cluster_object.object().owner().version(),
        1,
        "initial shared version"
    );
    let cluster: Cluster = cluster_object
        .object()
        .contents()
        .deserialize()
        .expect("Cluster layout");
    let entry = slashed_entry_id(cluster.slashed.id, record);
    let get_entry = |mut client: Client| async move {
        client
            .ledger_client()
            .get_object(
                proto::GetObjectRequest::new(&entry)
                    .with_read_mask(FieldMask::from_paths(["owner", "object_type"])),
            )
            .await
    };
    assert_eq!(
        get_entry(e.client.clone())
            .await
            .expect_err("not slashed")
            .code(),
        tonic::Code::NotFound
    );

    let cap = e
        .client
        .ledger_client()
        .get_object(
            proto::GetObjectRequest::new(&config.admin_cap)
                .with_read_mask(FieldMask::from_paths(["object_id", "version", "digest"])),
        )
        .await
        .expect("cap")
        .into_inner();
    let gas = coins(&e.client, e.admin.address()).await.remove(0);
    let shared = ObjectInput::shared(config.cluster, 1, true);
    let (tx, sig) = sign(&e.admin, &gas, |b| {
        let cap = b.object(input(cap.object()));
        let c = b.object(shared);
        let id = b.pure(&record);
        b.move_call(
            function(config.package, "cluster", "slash"),
            vec![cap, c, id],
        );
    });
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert!(executed.effects().status().success());
    let events = executed.events().events.clone();
    assert_eq!(events.len(), 1);
    let slashed: daas_chain_types::events::Slashed =
        events[0].contents().deserialize().expect("Slashed layout");
    assert_eq!(slashed.record_id, record);
    assert_eq!(
        events[0].event_type().parse::<StructTag>().ok(),
        Some(daas_chain_types::Package::new(config.package).struct_tag("cluster", "Slashed"))
    );

    let found = get_entry(e.client.clone())
        .await
        .expect("slashed")
        .into_inner();
    assert_eq!(
        found.object().owner().address(),
        cluster.slashed.id.to_string()
    );
    assert_eq!(
        found.object().object_type().parse::<StructTag>().ok(),
        Some(daas_chain_types::package::slashed_entry_type())
    );
    let fields = e
        .client
        .state_client()
        .list_dynamic_fields(
            proto::ListDynamicFieldsRequest::default()
                .with_parent(cluster.slashed.id.to_string())
                .with_read_mask(FieldMask::from_paths(["field_id", "name", "value"])),
        )
        .await
        .expect("ListDynamicFields")
        .into_inner();
    assert_eq!(fields.dynamic_fields.len(), 1);
    assert_eq!(fields.dynamic_fields[0].name().value(), record.as_bytes());
    assert_eq!(fields.dynamic_fields[0].value().value(), [1u8].as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn role_grants_are_readable_as_derived_dynamic_field_objects_and_gate_stake() {
    let mut e = env().await;
    let config = e.net.config.clone();
    let user = WalletKey::generate(Scheme::Ed25519);
    let mut faucet_client = e.client.clone();
    daas_devnet::faucet::fund(&mut faucet_client, &e.faucet, user.address(), 20 * SUI)
        .await
        .expect("faucet");
    let cluster: Cluster = e
        .client
        .ledger_client()
        .get_object(
            proto::GetObjectRequest::new(&config.cluster)
                .with_read_mask(FieldMask::from_paths(["contents"])),
        )
        .await
        .expect("cluster")
        .into_inner()
        .object()
        .contents()
        .deserialize()
        .expect("Cluster layout");
    let entry = grant_entry_id(cluster.grants.id, user.address());
    let get_entry = |mut client: Client| async move {
        client
            .ledger_client()
            .get_object(
                proto::GetObjectRequest::new(&entry)
                    .with_read_mask(FieldMask::from_paths(["owner", "object_type"])),
            )
            .await
    };
    let stake_admin = |gas: proto::Object| {
        let shared = ObjectInput::shared(config.cluster, 1, false);
        sign(&user, &gas, |b| {
            let g = b.gas();
            let a = b.pure(&(10 * SUI));
            let split = b.split_coins(g, vec![a]);
            let c = b.object(shared);
            let role = b.pure(&consts::ROLE_ADMIN);
            let name = b.pure(&String::new());
            let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
            b.move_call(
                function(config.package, "staking", "stake"),
                vec![c, split[0], role, name, clock],
            );
        })
    };
    let admin_call = |gas: proto::Object, cap: proto::Object, name: &'static str| {
        let shared = ObjectInput::shared(config.cluster, 1, true);
        let account = user.address();
        sign(&e.admin, &gas, move |b| {
            let cap = b.object(input(&cap));
            let c = b.object(shared);
            let a = b.pure(&account);
            let r = b.pure(&consts::ROLE_ADMIN);
            b.move_call(
                function(config.package, "cluster", name),
                vec![cap, c, a, r],
            );
        })
    };
    let cap = |client: Client| async move {
        client
            .clone()
            .ledger_client()
            .get_object(
                proto::GetObjectRequest::new(&config.admin_cap)
                    .with_read_mask(FieldMask::from_paths(["object_id", "version", "digest"])),
            )
            .await
            .expect("cap")
            .into_inner()
            .object()
            .clone()
    };

    // No grant: no entry, and an admin stake aborts with staking::ENoGrant.
    assert_eq!(
        get_entry(e.client.clone())
            .await
            .expect_err("no grant")
            .code(),
        tonic::Code::NotFound
    );
    let (tx, sig) = stake_admin(coins(&e.client, user.address()).await.remove(0));
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    let error = executed.effects().status().error();
    assert_eq!(error.abort().abort_code(), 32, "{error:?}");
    assert_eq!(error.abort().location().function_name(), "stake");

    let gas = coins(&e.client, e.admin.address()).await.remove(0);
    let (tx, sig) = admin_call(gas, cap(e.client.clone()).await, "grant_role");
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert!(executed.effects().status().success());
    let granted: daas_chain_types::events::RoleGranted = executed.events().events[0]
        .contents()
        .deserialize()
        .expect("RoleGranted layout");
    assert_eq!(
        (granted.account, granted.role),
        (user.address(), consts::ROLE_ADMIN)
    );
    let found = get_entry(e.client.clone())
        .await
        .expect("granted")
        .into_inner();
    assert_eq!(
        found.object().owner().address(),
        cluster.grants.id.to_string()
    );
    assert_eq!(
        found.object().object_type().parse::<StructTag>().ok(),
        Some(daas_chain_types::package::grant_entry_type())
    );
    let fields = e
        .client
        .state_client()
        .list_dynamic_fields(
            proto::ListDynamicFieldsRequest::default()
                .with_parent(cluster.grants.id.to_string())
                .with_read_mask(FieldMask::from_paths(["name", "value"])),
        )
        .await
        .expect("ListDynamicFields")
        .into_inner();
    assert_eq!(fields.dynamic_fields.len(), 1);
    assert_eq!(
        fields.dynamic_fields[0].name().value(),
        user.address().as_bytes()
    );
    assert_eq!(
        fields.dynamic_fields[0].value().value(),
        [0b100u8].as_slice()
    );

    let (tx, sig) = stake_admin(coins(&e.client, user.address()).await.remove(0));
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert!(
        executed.effects().status().success(),
        "granted admin stakes"
    );

    let gas = coins(&e.client, e.admin.address()).await.remove(0);
    let (tx, sig) = admin_call(gas, cap(e.client.clone()).await, "revoke_role");
    let executed = execute_and_wait(&mut e.client, tx, sig).await;
    assert!(executed.effects().status().success());
    assert_eq!(
        get_entry(e.client.clone())
            .await
            .expect_err("revoked")
            .code(),
        tonic::Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_stream_checkpoints_deliver_every_checkpoint_once() {
    let mut e = env_with_heartbeat(Some(Duration::from_millis(300))).await;
    for _ in 0..3 {
        let gas = coins(&e.client, e.admin.address()).await.remove(0);
        let (tx, sig) = sign(&e.admin, &gas, transfer(new_address(), SUI));
        execute_and_wait(&mut e.client, tx, sig).await;
    }
    // Paginated history: pages of 2.
    let mut listed = Vec::new();
    let mut pages = Box::pin(
        e.client.list_checkpoints(
            proto::ListCheckpointsRequest::default()
                .with_read_mask(FieldMask::from_paths([
                    "sequence_number",
                    "transactions.digest",
                ]))
                .with_options(proto::QueryOptions::default().with_limit(2)),
        ),
    );
    while let Some(page) = pages.next().await {
        if let Some(c) = page.expect("ListCheckpoints").checkpoint {
            listed.push(c.sequence_number());
        }
    }
    let tip = *listed.last().expect("some checkpoints");
    assert!(tip >= 3);
    assert_eq!(listed, (0..=tip).collect::<Vec<_>>());

    // Replay from a cursor, then the live tail: new transactions and heartbeat checkpoints.
    let mut stream = Box::pin(
        e.client.stream_checkpoints(
            CheckpointStreamRequest::new()
                .with_read_mask(FieldMask::from_paths([
                    "sequence_number",
                    "transactions.digest",
                    "summary.timestamp",
                ]))
                .with_start(CheckpointStreamStart::Checkpoint(1)),
        ),
    );
    let mut seen = Vec::new();
    let mut digests = BTreeSet::new();
    let mut sent = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, stream.next()).await {
        let frame = frame.expect("stream frame");
        let Some(checkpoint) = frame.checkpoint else {
            continue;
        };
        assert_eq!(checkpoint.sequence_number(), frame.cursor);
        seen.push(checkpoint.sequence_number());
        digests.extend(
            checkpoint
                .transactions
                .iter()
                .map(|t| t.digest().to_owned()),
        );
        if sent.is_none() && checkpoint.sequence_number() >= tip {
            // Now live: submit one more transaction from another task.
            let gas = coins(&e.client, e.admin.address()).await.remove(0);
            let (tx, sig) = sign(&e.admin, &gas, transfer(new_address(), SUI));
            sent = Some(tx.digest().to_string());
            let mut client = e.client.clone();
            tokio::spawn(async move { execute_and_wait(&mut client, tx, sig).await });
        }
        if let Some(d) = &sent
            && digests.contains(d)
            && seen.len() as u64 > tip + 2
        {
            break;
        }
    }
    let sent = sent.expect("reached the tip");
    assert!(digests.contains(&sent), "the live transaction arrived");
    let first = seen[0];
    assert_eq!(first, 1, "replay starts at the cursor");
    assert_eq!(
        seen,
        (first..first + seen.len() as u64).collect::<Vec<_>>(),
        "every checkpoint once, in order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_over_http1_answers_on_the_same_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env().await;
    let mut socket = tokio::net::TcpStream::connect(e.net.addr)
        .await
        .expect("connect");
    // One gRPC-Web frame: flag 0, length 0 (an empty GetServiceInfoRequest).
    let body = [0u8, 0, 0, 0, 0];
    let head = format!(
        "POST /sui.rpc.v2.LedgerService/GetServiceInfo HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        e.net.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.expect("write head");
    socket.write_all(&body).await.expect("write body");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/grpc-web"),
        "{text}"
    );
    assert!(
        text.contains(CHAIN_NAME),
        "the message carries the chain name: {text}"
    );
    assert!(text.contains(&e.net.config.chain_id), "{text}");
    assert!(text.contains("grpc-status:0"), "trailers frame: {text}");
}
