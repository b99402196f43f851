//! Whole transactions through validation, the PTB interpreter, gas and effects.

use sui_crypto::SuiSigner;
use sui_sdk_types::{
    Address, CommandArgumentError, ExecutionError, ExecutionStatus, IdOperation, Identifier,
    Object, ObjectIn, ObjectOut, Owner, StructTag, Transaction, TransactionEffects, UserSignature,
};
use sui_transaction_builder::{Function, ObjectInput, TransactionBuilder};

use daas_attestation::TrustAnchor;
use daas_chain_types::package::{CLOCK_ID, grant_entry_id, grant_entry_type, slashed_entry_id};
use daas_chain_types::{Cluster, StakeRecord, consts};
use daas_wallet::{Scheme, WalletKey};

use super::validate::sui_coin_balance;
use super::{Rejection, execute, gas};
use crate::genesis::{self, Account, GenesisConfig};
use crate::state::{ChainInfo, Ledger, TxRecord};

const NOW: u64 = 1_700_000_000_000;
const SUI: u64 = consts::MIST_PER_SUI;
const BUDGET: u64 = 50_000_000;

struct Chain {
    ledger: Ledger,
    admin: WalletKey,
    user: WalletKey,
    info: ChainInfo,
    /// The roots `load_nitro_attestation` trusts (the AWS root only, unless a test adds one).
    anchors: Vec<TrustAnchor>,
    /// The clock time of the next transaction.
    now: u64,
}

impl Chain {
    fn new() -> Chain {
        let admin = WalletKey::generate(Scheme::Ed25519);
        let user = WalletKey::generate(Scheme::Ed25519);
        let config = GenesisConfig {
            admin: admin.address(),
            accounts: vec![
                Account {
                    address: admin.address(),
                    mist: 500 * SUI,
                    coins: 5,
                },
                Account {
                    address: user.address(),
                    mist: 500 * SUI,
                    coins: 5,
                },
            ],
            faucet: None,
            cluster: Default::default(),
        };
        let ledger = genesis::build(&config, None, NOW).expect("genesis");
        let info = ledger.info().clone();
        let mut chain = Chain {
            ledger,
            admin,
            user,
            info,
            anchors: vec![TrustAnchor::aws_nitro_root_g1()],
            now: NOW,
        };
        // The user may stake as a worker (`stake`), by the admin's grant.
        let user = chain.user.address();
        let granted = chain
            .grants("grant_role", user, consts::ROLE_WORKER)
            .expect("grant_role");
        assert_eq!(effects(&granted).status, ExecutionStatus::Success);
        chain
    }

    /// `cluster::{function}(cap, cluster, account, role)` (`grant_role` or `revoke_role`) by the
    /// admin.
    fn grants(
        &mut self,
        function: &str,
        account: Address,
        role: u8,
    ) -> Result<TxRecord, Rejection> {
        let call = self.call("cluster", function);
        let cap = self.object(self.info.admin_cap);
        let gas = self.coins(self.admin.address())[0].clone();
        let cluster = self.cluster_input(true);
        let (tx, sig) = self.sign(
            &self.admin,
            |b| {
                let cap = b.object(owned(&cap));
                let c = b.object(cluster);
                let a = b.pure(&account);
                let r = b.pure(&role);
                b.move_call(call, vec![cap, c, a, r]);
            },
            &gas,
        );
        self.run(tx, sig)
    }

    fn cluster(&self) -> Cluster {
        bcs::from_bytes(
            self.object(self.info.cluster)
                .as_struct()
                .expect("struct")
                .contents(),
        )
        .expect("layout")
    }

    fn coins(&self, owner: Address) -> Vec<Object> {
        self.ledger
            .owned_by(&owner)
            .filter(|o| sui_coin_balance(o).is_some())
            .cloned()
            .collect()
    }

    fn object(&self, id: Address) -> Object {
        self.ledger.object(&id).expect("live object").clone()
    }

    fn sign(
        &self,
        key: &WalletKey,
        build: impl FnOnce(&mut TransactionBuilder),
        gas: &Object,
    ) -> (Transaction, UserSignature) {
        let mut b = TransactionBuilder::new();
        build(&mut b);
        b.set_sender(key.address());
        b.set_gas_budget(BUDGET);
        b.set_gas_price(gas::REFERENCE_GAS_PRICE);
        b.add_gas_objects([owned(gas)]);
        let tx = b.try_build().expect("build");
        let sig = key.keypair().sign_transaction(&tx).expect("sign");
        (tx, sig)
    }

    fn run(&mut self, tx: Transaction, sig: UserSignature) -> Result<TxRecord, Rejection> {
        let record = execute(&self.ledger, tx, vec![sig], self.now, &self.anchors)?;
        let digest = record.digest();
        self.ledger.commit(record, self.now);
        Ok(self.ledger.transaction(&digest).expect("committed").clone())
    }

    fn cluster_input(&self, mutable: bool) -> ObjectInput {
        ObjectInput::shared(
            self.info.cluster,
            self.info.cluster_initial_shared_version,
            mutable,
        )
    }

    fn call(&self, module: &str, function: &str) -> Function {
        Function::new(
            self.info.package,
            Identifier::new(module).expect("identifier"),
            Identifier::new(function).expect("identifier"),
        )
    }

    /// A worker stake of `amount` by the user, split from a coin other than the gas coin.
    fn stake(&mut self, amount: u64) -> Result<TxRecord, Rejection> {
        let coins = self.coins(self.user.address());
        let (gas, funding) = (coins[0].clone(), coins[1].clone());
        let stake = self.call("staking", "stake");
        let cluster = self.cluster_input(false);
        let (tx, sig) = self.sign(
            &self.user,
            |b| {
                let source = b.object(owned(&funding));
                let a = b.pure(&amount);
                let split = b.split_coins(source, vec![a]);
                let cluster = b.object(cluster);
                let role = b.pure(&consts::ROLE_WORKER);
                let name = b.pure(&"worker-1".to_owned());
                let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
                b.move_call(stake, vec![cluster, split[0], role, name, clock]);
            },
            &gas,
        );
        self.run(tx, sig)
    }
}

fn owned(o: &Object) -> ObjectInput {
    ObjectInput::owned(o.object_id(), o.version(), o.digest())
}

fn effects(record: &TxRecord) -> &sui_sdk_types::TransactionEffectsV2 {
    match &record.effects {
        TransactionEffects::V2(e) => e,
        TransactionEffects::V1(_) => panic!("devnet effects are V2"),
    }
}

fn balance(o: &Object) -> u64 {
    sui_coin_balance(o).expect("a SUI coin")
}

#[test]
fn split_and_transfer_charges_gas_and_versions_every_output() {
    let mut chain = Chain::new();
    let user = chain.user.address();
    let gas = chain.coins(chain.admin.address())[0].clone();
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let g = b.gas();
            let a = b.pure(&(5 * SUI));
            let split = b.split_coins(g, vec![a]);
            let to = b.pure(&user);
            b.transfer_objects(split, to);
        },
        &gas,
    );
    let record = chain.run(tx, sig).expect("executes");
    let fx = effects(&record);
    assert_eq!(fx.status, ExecutionStatus::Success);
    assert_eq!(fx.lamport_version, gas.version() + 1);
    assert_eq!(fx.changed_objects.len(), 2);
    assert!(
        fx.changed_objects
            .windows(2)
            .all(|w| w[0].object_id < w[1].object_id)
    );
    let gas_index = fx.gas_object_index.expect("gas index") as usize;
    assert_eq!(fx.changed_objects[gas_index].object_id, gas.object_id());

    let created = fx
        .changed_objects
        .iter()
        .find(|c| c.id_operation == IdOperation::Created)
        .expect("a new coin");
    assert_eq!(created.object_id, Address::derive_id(record.digest(), 0));
    assert!(matches!(created.input_state, ObjectIn::NotExist));
    assert!(
        matches!(&created.output_state, ObjectOut::ObjectWrite { owner, .. } if *owner == Owner::Address(user))
    );
    let coin = chain.object(created.object_id);
    assert_eq!(
        (balance(&coin), coin.version(), coin.previous_transaction()),
        (5 * SUI, fx.lamport_version, record.digest())
    );
    assert_eq!(coin.storage_rebate(), gas::storage_cost(&coin));

    let charged =
        fx.gas_used.computation_cost + fx.gas_used.storage_cost - fx.gas_used.storage_rebate;
    assert_eq!(
        fx.gas_used.computation_cost,
        gas::REFERENCE_GAS_PRICE * gas::COMPUTATION_UNITS
    );
    assert_eq!(fx.gas_used.storage_rebate, gas.storage_rebate());
    let gas_after = chain.object(gas.object_id());
    assert_eq!(balance(&gas_after), balance(&gas) - 5 * SUI - charged);
    assert_eq!(gas_after.version(), fx.lamport_version);
    // Balance changes: the admin paid the coin and the gas, the user received the coin.
    let net: Vec<(Address, i128)> = record
        .balance_changes
        .iter()
        .map(|c| (c.address, c.amount))
        .collect();
    assert!(net.contains(&(user, i128::from(5 * SUI))));
    assert!(net.contains(&(chain.admin.address(), -i128::from(5 * SUI + charged))));
}

#[test]
fn stale_or_foreign_references_are_rejected_before_execution() {
    let mut chain = Chain::new();
    let gas = chain.coins(chain.admin.address())[0].clone();
    let transfer = |b: &mut TransactionBuilder| {
        let g = b.gas();
        let a = b.pure(&SUI);
        let split = b.split_coins(g, vec![a]);
        let to = b.pure(&Address::from_static("0x77"));
        b.transfer_objects(split, to);
    };
    let (tx, sig) = chain.sign(&chain.admin, transfer, &gas);
    chain
        .run(tx.clone(), sig.clone())
        .expect("first use of the gas ref");
    let tip = chain.ledger.tip();
    // The same ref again (a different transaction) is stale now.
    let (tx2, sig2) = chain.sign(
        &chain.admin,
        |b| {
            transfer(b);
            let _ = b.pure(&1u8);
        },
        &gas,
    );
    let rejection = chain.run(tx2, sig2).expect_err("stale gas");
    assert_eq!(rejection.code, tonic::Code::FailedPrecondition);
    assert!(
        rejection.message.contains("not available for consumption"),
        "{}",
        rejection.message
    );
    assert_eq!(chain.ledger.tip(), tip, "a rejection leaves no checkpoint");

    // The user's coin as the admin's gas: not the sender's.
    let foreign = chain.coins(chain.user.address())[0].clone();
    let (tx, sig) = chain.sign(&chain.admin, transfer, &foreign);
    assert_eq!(
        chain.run(tx, sig).expect_err("foreign gas").code,
        tonic::Code::FailedPrecondition
    );

    // A signature by someone else than the sender.
    let gas = chain.coins(chain.admin.address())[1].clone();
    let (tx, _) = chain.sign(&chain.admin, transfer, &gas);
    let other = chain.user.keypair().sign_transaction(&tx).expect("sign");
    let rejection = chain.run(tx, other).expect_err("wrong signer");
    assert_eq!(rejection.code, tonic::Code::InvalidArgument);

    // Gas price below the reference price.
    let mut b = TransactionBuilder::new();
    transfer(&mut b);
    b.set_sender(chain.admin.address());
    b.set_gas_budget(BUDGET);
    b.set_gas_price(gas::REFERENCE_GAS_PRICE - 1);
    b.add_gas_objects([owned(&gas)]);
    let tx = b.try_build().expect("build");
    let sig = chain.admin.keypair().sign_transaction(&tx).expect("sign");
    let rejection = chain.run(tx, sig).expect_err("cheap gas");
    assert!(
        rejection.message.contains("reference gas price"),
        "{}",
        rejection.message
    );
}

#[test]
fn shared_input_rules_are_enforced() {
    let mut chain = Chain::new();
    let gas = chain.coins(chain.admin.address())[0].clone();
    let stake = chain.call("staking", "stake");
    let wrong_isv = ObjectInput::shared(chain.info.cluster, 2, false);
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let c = b.object(wrong_isv);
            let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
            b.move_call(stake, vec![c, clock]);
        },
        &gas,
    );
    assert!(
        chain
            .run(tx, sig)
            .expect_err("wrong isv")
            .message
            .contains("initial shared version")
    );
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let _clock = b.object(ObjectInput::shared(CLOCK_ID, 1, true));
        },
        &gas,
    );
    assert!(
        chain
            .run(tx, sig)
            .expect_err("mutable clock")
            .message
            .contains("Clock")
    );
}

#[test]
fn move_abort_gives_failed_effects_charges_gas_and_changes_nothing_else() {
    let mut chain = Chain::new();
    let user = chain.user.address();
    let before: Vec<Object> = chain.coins(user);
    let cluster_before = chain.object(chain.info.cluster);
    let record = chain.stake(SUI - 1).expect("executed, not rejected");
    let fx = effects(&record);
    match &fx.status {
        ExecutionStatus::Failure {
            error: ExecutionError::MoveAbort { location, code },
            command,
        } => {
            assert_eq!(*code, 20);
            assert_eq!(*command, Some(1));
            assert_eq!(location.package, chain.info.package);
            assert_eq!(location.module.as_str(), "staking");
            assert_eq!(
                location.function_name.as_ref().map(|f| f.as_str()),
                Some("stake")
            );
        }
        other => panic!("expected a MoveAbort, got {other:?}"),
    }
    assert!(record.events.is_none());
    assert!(
        record
            .error_description
            .as_deref()
            .is_some_and(|d| d.contains("MoveAbort"))
    );
    // Only the gas coin and the owned funding coin changed: new versions, same funding balance.
    assert_eq!(fx.changed_objects.len(), 2);
    assert!(
        fx.changed_objects
            .iter()
            .all(|c| c.id_operation == IdOperation::None)
    );
    let (gas, funding) = (&before[0], &before[1]);
    let funding_after = chain.object(funding.object_id());
    assert_eq!(balance(&funding_after), balance(funding));
    assert_eq!(funding_after.version(), fx.lamport_version);
    let charged =
        fx.gas_used.computation_cost + fx.gas_used.storage_cost - fx.gas_used.storage_rebate;
    assert!(charged > 0);
    assert_eq!(
        balance(&chain.object(gas.object_id())),
        balance(gas) - charged
    );
    // The cluster was read-only: untouched, reported as an unchanged consensus object.
    assert_eq!(chain.object(chain.info.cluster), cluster_before);
    assert_eq!(fx.unchanged_consensus_objects.len(), 2, "cluster and clock");
    assert_eq!(chain.coins(user).len(), before.len(), "no coin was created");
}

#[test]
fn successful_stake_creates_an_owned_record_and_emits_staked() {
    let mut chain = Chain::new();
    let record = chain.stake(2 * SUI).expect("executes");
    assert_eq!(effects(&record).status, ExecutionStatus::Success);
    let package = daas_chain_types::Package::new(chain.info.package);
    let records: Vec<Object> = chain
        .ledger
        .owned_by(&chain.user.address())
        .filter(|o| {
            o.as_struct()
                .is_some_and(|s| *s.object_type() == package.stake_record_type())
        })
        .cloned()
        .collect();
    assert_eq!(records.len(), 1);
    let stake: StakeRecord =
        bcs::from_bytes(records[0].as_struct().expect("struct").contents()).expect("layout");
    assert_eq!(
        (stake.balance, stake.owner, stake.staked_at_ms),
        (2 * SUI, chain.user.address(), NOW)
    );
    let events = record.events.as_ref().expect("events");
    assert_eq!(events.0.len(), 1);
    assert_eq!(events.0[0].type_, package.struct_tag("staking", "Staked"));
    assert_eq!(events.0[0].module.as_str(), "staking");
    // The split coin was created and consumed in the same transaction: not in the effects.
    assert!(
        effects(&record)
            .changed_objects
            .iter()
            .all(|c| c.object_id != Address::derive_id(record.digest(), 0))
    );
}

#[test]
fn an_unused_coin_result_fails_with_unused_value_without_drop() {
    let mut chain = Chain::new();
    let gas = chain.coins(chain.admin.address())[0].clone();
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let g = b.gas();
            let a = b.pure(&SUI);
            let _ = b.split_coins(g, vec![a]);
        },
        &gas,
    );
    let record = chain.run(tx, sig).expect("executed");
    assert!(matches!(
        effects(&record).status,
        ExecutionStatus::Failure {
            error: ExecutionError::UnusedValueWithoutDrop {
                result: 0,
                subresult: 0
            },
            ..
        }
    ));
}

#[test]
fn ptb_argument_rules() {
    let mut chain = Chain::new();
    let admin = chain.admin.address();
    let coins = chain.coins(admin);
    let cap = chain.object(chain.info.admin_cap);

    // Merging the gas coin into another coin is not allowed.
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let c = b.object(owned(&coins[1]));
            let g = b.gas();
            b.merge_coins(c, vec![g]);
        },
        &coins[0],
    );
    let record = chain.run(tx, sig).expect("executed");
    assert!(matches!(
        effects(&record).status,
        ExecutionStatus::Failure {
            error: ExecutionError::CommandArgumentError {
                argument: 1,
                kind: CommandArgumentError::InvalidGasCoinUsage
            },
            command: Some(0)
        }
    ));

    // A u8 where a u64 is expected.
    let coins = chain.coins(admin);
    let set_min = chain.call("cluster", "set_role_minimum");
    let cluster = chain.cluster_input(true);
    let cap_now = chain.object(chain.info.admin_cap);
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let cap = b.object(owned(&cap_now));
            let cl = b.object(cluster);
            let role = b.pure(&0u8);
            let min = b.pure(&5u8);
            b.move_call(set_min, vec![cap, cl, role, min]);
        },
        &coins[0],
    );
    let record = chain.run(tx, sig).expect("executed");
    assert!(matches!(
        effects(&record).status,
        ExecutionStatus::Failure {
            error: ExecutionError::CommandArgumentError {
                argument: 3,
                kind: CommandArgumentError::InvalidBcsBytes
            },
            ..
        }
    ));
    assert!(
        chain.object(chain.info.admin_cap).version() > cap.version(),
        "failed effects bump mutable inputs"
    );

    // An unknown function.
    let coins = chain.coins(admin);
    let nope = chain.call("staking", "mint_free_stake");
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            b.move_call(nope, vec![]);
        },
        &coins[0],
    );
    let record = chain.run(tx, sig).expect("executed");
    assert!(matches!(
        effects(&record).status,
        ExecutionStatus::Failure {
            error: ExecutionError::FunctionNotFound,
            ..
        }
    ));

    // Stake records have no `store`: TransferObjects refuses them.
    chain.stake(2 * SUI).expect("stake");
    let user = chain.user.address();
    let package = daas_chain_types::Package::new(chain.info.package);
    let stake_record = chain
        .ledger
        .owned_by(&user)
        .find(|o| {
            o.as_struct()
                .is_some_and(|s| *s.object_type() == package.stake_record_type())
        })
        .cloned()
        .expect("record");
    let gas = chain.coins(user)[0].clone();
    let (tx, sig) = chain.sign(
        &chain.user,
        |b| {
            let r = b.object(owned(&stake_record));
            let to = b.pure(&admin);
            b.transfer_objects(vec![r], to);
        },
        &gas,
    );
    let record = chain.run(tx, sig).expect("executed");
    assert!(matches!(
        effects(&record).status,
        ExecutionStatus::Failure {
            error: ExecutionError::CommandArgumentError {
                argument: 0,
                kind: CommandArgumentError::InvalidTransferObject
            },
            ..
        }
    ));
}

#[test]
fn grants_are_table_entry_objects_created_changed_and_deleted() {
    let mut chain = Chain::new();
    let admin = chain.admin.address();
    let table = chain.cluster().grants.id;
    let entry = grant_entry_id(table, admin);
    let id_operation = |record: &TxRecord| {
        effects(record)
            .changed_objects
            .iter()
            .find(|c| c.object_id == entry)
            .map(|c| c.id_operation)
    };
    let mask = |chain: &Chain| {
        chain.ledger.object(&entry).map(|o| {
            assert_eq!(*o.owner(), Owner::Object(table));
            let s = o.as_struct().expect("struct");
            assert_eq!(*s.object_type(), grant_entry_type());
            let field: daas_chain_types::Field<Address, u8> =
                bcs::from_bytes(s.contents()).expect("Field<address, u8>");
            assert_eq!((field.id, field.name), (entry, admin));
            field.value
        })
    };
    // Genesis granted the user the worker role; the admin account holds no grant.
    assert_eq!((mask(&chain), chain.cluster().grants.size), (None, 1));

    let r = chain
        .grants("grant_role", admin, consts::ROLE_ADMIN)
        .expect("executes");
    assert_eq!(effects(&r).status, ExecutionStatus::Success);
    assert_eq!(id_operation(&r), Some(IdOperation::Created));
    assert_eq!(
        (mask(&chain), chain.cluster().grants.size),
        (Some(0b100), 2)
    );
    let r = chain
        .grants("grant_role", admin, consts::ROLE_WORKER)
        .expect("executes");
    assert_eq!(
        id_operation(&r),
        Some(IdOperation::None),
        "the entry is changed"
    );
    assert_eq!(
        (mask(&chain), chain.cluster().grants.size),
        (Some(0b101), 2)
    );

    // A failed grant is a Move abort in `cluster::grant_role` and changes no entry.
    let r = chain
        .grants("grant_role", admin, consts::ROLE_USER)
        .expect("executes");
    match &effects(&r).status {
        ExecutionStatus::Failure {
            error: ExecutionError::MoveAbort { location, code },
            ..
        } => {
            assert_eq!(*code, 12);
            assert_eq!(location.module.as_str(), "cluster");
            assert_eq!(location.function, 9, "grant_role's index in cluster.move");
            assert_eq!(
                location.function_name.as_ref().map(|f| f.as_str()),
                Some("grant_role")
            );
        }
        other => panic!("expected a MoveAbort, got {other:?}"),
    }
    assert_eq!(id_operation(&r), None);

    chain
        .grants("revoke_role", admin, consts::ROLE_ADMIN)
        .expect("executes");
    assert_eq!(mask(&chain), Some(0b001));
    let r = chain
        .grants("revoke_role", admin, consts::ROLE_WORKER)
        .expect("executes");
    assert_eq!(id_operation(&r), Some(IdOperation::Deleted));
    assert_eq!((mask(&chain), chain.cluster().grants.size), (None, 1));
    let r = chain
        .grants("revoke_role", admin, consts::ROLE_WORKER)
        .expect("executes");
    assert!(matches!(
        &effects(&r).status,
        ExecutionStatus::Failure { error: ExecutionError::MoveAbort { code: 14, location }, .. }
            if location.function == 10
    ));
}

#[test]
fn a_worker_stake_without_the_grant_aborts_with_no_grant() {
    let mut chain = Chain::new();
    chain
        .grants("revoke_role", chain.user.address(), consts::ROLE_WORKER)
        .expect("executes");
    let record = chain.stake(2 * SUI).expect("executed, not rejected");
    assert!(matches!(
        &effects(&record).status,
        ExecutionStatus::Failure { error: ExecutionError::MoveAbort { code: 32, location }, .. }
            if location.module.as_str() == "staking" && location.function == 0
    ));
}

#[test]
fn slash_and_withdraw_create_and_delete_the_table_entry_object() {
    let mut chain = Chain::new();
    chain.stake(3 * SUI).expect("stake");
    let user = chain.user.address();
    let package = daas_chain_types::Package::new(chain.info.package);
    let record_obj = chain
        .ledger
        .owned_by(&user)
        .find(|o| {
            o.as_struct()
                .is_some_and(|s| *s.object_type() == package.stake_record_type())
        })
        .cloned()
        .expect("record");
    let cluster: Cluster = bcs::from_bytes(
        chain
            .object(chain.info.cluster)
            .as_struct()
            .expect("struct")
            .contents(),
    )
    .expect("layout");
    let entry = slashed_entry_id(cluster.slashed.id, record_obj.object_id());
    assert!(chain.ledger.object(&entry).is_none());

    let slash = chain.call("cluster", "slash");
    let cap = chain.object(chain.info.admin_cap);
    let gas = chain.coins(chain.admin.address())[0].clone();
    let cl = chain.cluster_input(true);
    let rid = record_obj.object_id();
    let (tx, sig) = chain.sign(
        &chain.admin,
        |b| {
            let cap = b.object(owned(&cap));
            let c = b.object(cl);
            let id = b.pure(&rid);
            b.move_call(slash, vec![cap, c, id]);
        },
        &gas,
    );
    let record = chain.run(tx, sig).expect("slash");
    assert_eq!(effects(&record).status, ExecutionStatus::Success);
    let field = chain.object(entry);
    assert_eq!(*field.owner(), Owner::Object(cluster.slashed.id));
    assert!(
        effects(&record)
            .changed_objects
            .iter()
            .any(|c| c.object_id == entry && c.id_operation == IdOperation::Created)
    );

    // The owner withdraws: the stake goes to the treasury, the coin is empty, the entry is deleted.
    let withdraw = chain.call("staking", "withdraw");
    let destroy = Function::new(
        Address::TWO,
        Identifier::new("coin").expect("id"),
        Identifier::new("destroy_zero").expect("id"),
    )
    .with_type_args(vec![StructTag::sui().into()]);
    let gas = chain.coins(user)[0].clone();
    let record_obj = chain.object(record_obj.object_id());
    let cl = chain.cluster_input(true);
    let (tx, sig) = chain.sign(
        &chain.user,
        |b| {
            let c = b.object(cl);
            let r = b.object(owned(&record_obj));
            let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
            let coin = b.move_call(withdraw, vec![c, r, clock]);
            b.move_call(destroy, vec![coin]);
        },
        &gas,
    );
    let record = chain.run(tx, sig).expect("withdraw");
    assert_eq!(
        effects(&record).status,
        ExecutionStatus::Success,
        "{:?}",
        record.error_description
    );
    assert!(chain.ledger.object(&entry).is_none());
    assert!(chain.ledger.object(&record_obj.object_id()).is_none());
    let cluster: Cluster = bcs::from_bytes(
        chain
            .object(chain.info.cluster)
            .as_struct()
            .expect("struct")
            .contents(),
    )
    .expect("layout");
    assert_eq!((cluster.treasury, cluster.slashed.size), (3 * SUI, 0));
    let deleted: Vec<Address> = effects(&record)
        .changed_objects
        .iter()
        .filter(|c| c.id_operation == IdOperation::Deleted)
        .map(|c| c.object_id)
        .collect();
    assert!(deleted.contains(&entry) && deleted.contains(&record_obj.object_id()));
    // Deleting objects refunds their storage.
    assert!(
        effects(&record).gas_used.storage_rebate
            >= record_obj.storage_rebate() + field.storage_rebate()
    );
}
