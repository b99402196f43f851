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

// ---------------------------------------------------------------------------------- enclave

/// Enclave registration through whole PTBs (`load_nitro_attestation` feeding
/// `register_enclave`), with documents from the dev attester and the public AWS vectors.
mod enclave {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use daas_attestation::binding::Binding;
    use daas_attestation::dev::{DevAttester, DevRoot};
    use daas_attestation::{AttestationRequest, TrustAnchor};
    use daas_chain_types::package::{
        FN_LOAD_NITRO_ATTESTATION, MODULE_NITRO_ATTESTATION, identifier,
    };
    use daas_chain_types::{AbortCode, PackageEvent};

    use super::*;

    const ENDPOINT: &str = "https://enclave.example:6443";
    const CA: [u8; 32] = [0xca; 32];
    /// What the enclave puts in public_key: its CA's SubjectPublicKeyInfo DER (any bytes here).
    const SPKI: [u8; 4] = [0x30, 0x59, 0x30, 0x13];

    fn pcrs(fill: [u8; 3]) -> BTreeMap<u8, [u8; 48]> {
        (0u8..3).map(|i| (i, [fill[usize::from(i)]; 48])).collect()
    }

    /// A chain whose cluster expects PCRs 1/2/3 and a dev attester reporting `reported`; the
    /// chain trusts the attester's dev root when `trust_dev`.
    fn setup(trust_dev: bool, reported: [u8; 3]) -> (Chain, DevAttester, TrustAnchor) {
        let root = DevRoot::generate().expect("dev root");
        let anchor = root.trust_anchor();
        let attester = DevAttester::new(root, pcrs(reported)).expect("dev attester");
        let mut chain = Chain::new();
        if trust_dev {
            chain.anchors.push(anchor.clone());
        }
        let record = chain.set_pcrs([[1; 48], [2; 48], [3; 48]]);
        assert_eq!(effects(&record).status, ExecutionStatus::Success);
        (chain, attester, anchor)
    }

    /// A dev document stamped `at`, bound to `cluster` and `endpoint`.
    fn document(attester: &DevAttester, cluster: Address, endpoint: &str, at: u64) -> Vec<u8> {
        let binding = Binding {
            cluster_id: cluster.into_inner(),
            ca_sha256: CA,
            endpoint: endpoint.to_owned(),
        };
        let request = AttestationRequest {
            user_data: Some(binding.encode()),
            nonce: None,
            public_key: Some(SPKI.to_vec()),
        };
        attester.attest_at(&request, at).expect("attest")
    }

    impl Chain {
        fn set_pcrs(&mut self, pcrs: [[u8; 48]; 3]) -> TxRecord {
            let call = self.call("cluster", "set_expected_pcrs");
            let cap = self.object(self.info.admin_cap);
            let gas = self.coins(self.admin.address())[0].clone();
            let cluster = self.cluster_input(true);
            let (tx, sig) = self.sign(
                &self.admin,
                |b| {
                    let cap = b.object(owned(&cap));
                    let c = b.object(cluster);
                    let p: Vec<_> = pcrs.iter().map(|p| b.pure(&p.to_vec())).collect();
                    b.move_call(call, vec![cap, c, p[0], p[1], p[2]]);
                },
                &gas,
            );
            self.run(tx, sig).expect("executed")
        }

        /// `load_nitro_attestation(document, 0x6)` and, with `endpoint`, `register_enclave`
        /// on its result; sent by the admin (the enclave operator) or the user.
        fn register(&mut self, document: &[u8], endpoint: Option<&str>, by_user: bool) -> TxRecord {
            let register = self.call("enclave", "register_enclave");
            let load = Function::new(
                Address::TWO,
                identifier(MODULE_NITRO_ATTESTATION),
                identifier(FN_LOAD_NITRO_ATTESTATION),
            );
            let key = if by_user { &self.user } else { &self.admin };
            let gas = self.coins(key.address())[0].clone();
            let cluster = self.cluster_input(true);
            let (tx, sig) = self.sign(
                key,
                |b| {
                    let bytes = b.pure(&document.to_vec());
                    let clock = b.object(ObjectInput::shared(CLOCK_ID, 1, false));
                    let doc = b.move_call(load, vec![bytes, clock]);
                    if let Some(endpoint) = endpoint {
                        let c = b.object(cluster);
                        let e = b.pure(&endpoint.to_owned());
                        b.move_call(register, vec![c, doc, e, clock]);
                    }
                },
                &gas,
            );
            self.run(tx, sig).expect("executed, not rejected")
        }
    }

    /// Asserts failed effects with a Move abort of `code` in `module::function` of `package`.
    fn assert_aborted(
        record: &TxRecord,
        package: Address,
        module: &str,
        function: &str,
        code: u64,
    ) {
        match &effects(record).status {
            ExecutionStatus::Failure {
                error:
                    ExecutionError::MoveAbort {
                        location,
                        code: got,
                    },
                ..
            } => {
                assert_eq!(
                    (location.package, location.module.as_str(), *got),
                    (package, module, code),
                    "{:?}",
                    record.error_description
                );
                assert_eq!(
                    location.function_name.as_ref().map(|f| f.as_str()),
                    Some(function)
                );
            }
            other => panic!("expected {module}::{function} to abort with {code}, got {other:?}"),
        }
    }

    fn assert_enclave_abort(chain: &Chain, record: &TxRecord, function: &str, code: AbortCode) {
        assert_aborted(
            record,
            chain.info.package,
            code.module(),
            function,
            code.code(),
        );
        assert!(
            chain.cluster().enclave.is_none(),
            "{code:?}: nothing registered"
        );
    }

    fn assert_nitro_abort(record: &TxRecord, code: u64) {
        assert_aborted(
            record,
            Address::TWO,
            MODULE_NITRO_ATTESTATION,
            FN_LOAD_NITRO_ATTESTATION,
            code,
        );
    }

    #[test]
    fn a_dev_document_registers_end_to_end_when_the_dev_root_is_trusted() {
        let (mut chain, attester, _) = setup(true, [1, 2, 3]);
        let cluster = chain.info.cluster;
        let doc = document(&attester, cluster, ENDPOINT, NOW - 2_000);
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_eq!(
            effects(&record).status,
            ExecutionStatus::Success,
            "{:?}",
            record.error_description
        );
        let e = chain.cluster().enclave.expect("registered");
        assert_eq!(e.ca_sha256, CA.to_vec());
        assert_eq!(
            (e.endpoint.as_str(), e.public_key.as_slice()),
            (ENDPOINT, &SPKI[..])
        );
        assert_eq!(
            (e.pcr0, e.pcr1, e.pcr2),
            (vec![1; 48], vec![2; 48], vec![3; 48])
        );
        assert_eq!((e.attested_at_ms, e.registered_at_ms), (NOW - 2_000, NOW));
        let package = daas_chain_types::Package::new(chain.info.package);
        let events = record.events.as_ref().expect("events");
        let decoded: Vec<PackageEvent> = events
            .0
            .iter()
            .map(|ev| PackageEvent::decode(&package, &ev.type_, &ev.contents).expect("event"))
            .collect();
        match decoded.as_slice() {
            [PackageEvent::EnclaveRegistered(ev)] => {
                assert_eq!((ev.cluster_id, ev.ca_sha256.as_slice()), (cluster, &CA[..]));
                assert_eq!(ev.endpoint, ENDPOINT);
            }
            other => panic!("expected EnclaveRegistered, got {other:?}"),
        }
        assert_eq!(events.0[0].module.as_str(), "enclave");

        // Replay of an older document (still fresh, still valid under its chain) is refused.
        let older = document(&attester, cluster, ENDPOINT, NOW - 3_000);
        chain.now = NOW + 1_000;
        let record = chain.register(&older, Some(ENDPOINT), false);
        assert_aborted(
            &record,
            chain.info.package,
            "enclave",
            "check_newer",
            AbortCode::AttestationNotNewer.code(),
        );
        assert_eq!(
            chain.cluster().enclave.expect("kept").attested_at_ms,
            NOW - 2_000
        );
        // A newer one replaces it.
        let newer = document(&attester, cluster, ENDPOINT, NOW + 500);
        let record = chain.register(&newer, Some(ENDPOINT), false);
        assert_eq!(effects(&record).status, ExecutionStatus::Success);
        assert_eq!(
            chain.cluster().enclave.expect("replaced").attested_at_ms,
            NOW + 500
        );
    }

    #[test]
    fn the_same_document_fails_verification_when_the_dev_root_is_not_trusted() {
        let (mut chain, attester, _) = setup(false, [1, 2, 3]);
        let doc = document(&attester, chain.info.cluster, ENDPOINT, NOW - 2_000);
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_nitro_abort(&record, 2);
        assert!(chain.cluster().enclave.is_none());
        assert!(
            record
                .error_description
                .as_deref()
                .is_some_and(|d| d.contains("load_nitro_attestation")),
            "{:?}",
            record.error_description
        );
    }

    #[test]
    fn documents_the_move_code_refuses_abort_with_its_codes() {
        // Debug-mode PCRs (zero PCR0/1/2): verified under the dev root, refused by enclave.move.
        let (mut chain, debug, _) = setup(true, [0, 0, 0]);
        let doc = document(&debug, chain.info.cluster, ENDPOINT, NOW);
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_enclave_abort(
            &chain,
            &record,
            "check_not_debug",
            AbortCode::DebugAttestation,
        );

        // Another image.
        let (mut chain, other, _) = setup(true, [1, 2, 9]);
        let doc = document(&other, chain.info.cluster, ENDPOINT, NOW);
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_enclave_abort(&chain, &record, "check_pcrs", AbortCode::PcrMismatch);

        let (mut chain, attester, _) = setup(true, [1, 2, 3]);
        let cluster = chain.info.cluster;
        let cases: Vec<(Vec<u8>, &str, bool, &str, AbortCode)> = vec![
            (
                document(&attester, Address::from_static("0xc1"), ENDPOINT, NOW),
                ENDPOINT,
                false,
                "check_user_data",
                AbortCode::UserDataWrongCluster,
            ),
            (
                document(&attester, cluster, "https://elsewhere.example:6443", NOW),
                ENDPOINT,
                false,
                "check_user_data",
                AbortCode::UserDataEndpointMismatch,
            ),
            (
                // Valid for 3 h under its certificate chain, but older than 5 minutes.
                document(&attester, cluster, ENDPOINT, NOW - 300_001),
                ENDPOINT,
                false,
                "check_freshness",
                AbortCode::AttestationStale,
            ),
            (
                document(&attester, cluster, ENDPOINT, NOW),
                ENDPOINT,
                true,
                "register_checked",
                AbortCode::NotEnclaveOperator,
            ),
        ];
        for (doc, endpoint, by_user, function, code) in cases {
            let record = chain.register(&doc, Some(endpoint), by_user);
            assert_enclave_abort(&chain, &record, function, code);
        }
    }

    /// A document from more than a minute in the future: its leaf certificate (valid from 3 s
    /// before the document, as on AWS) is not valid yet at the chain's clock, so
    /// `load_nitro_attestation` refuses it before `enclave::check_freshness` could (that check
    /// is covered with a document value in the model tests).
    #[test]
    fn a_document_from_the_future_fails_at_the_chain_clock() {
        let (mut chain, attester, _) = setup(true, [1, 2, 3]);
        let doc = document(&attester, chain.info.cluster, ENDPOINT, NOW + 60_001);
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_nitro_abort(&record, 2);
        assert!(chain.cluster().enclave.is_none());
    }

    fn vectors_dir() -> PathBuf {
        std::env::var_os("DAAS_VECTORS_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
            PathBuf::from,
        )
    }

    fn vector(name: &str) -> Vec<u8> {
        let path = vectors_dir().join("nitro").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Real AWS documents verify under the AWS root at their own timestamp and fail at any
    /// later time (their chains have expired).
    #[test]
    fn real_aws_documents_load_at_their_timestamp_and_fail_now() {
        for (name, timestamp) in [
            ("evervault-prod-2022-10-13.cose", 1_665_651_482_136),
            ("fastcrypto-pcr16-2025-11-10.cose", 1_762_795_210_812),
        ] {
            let doc = vector(name);
            let mut chain = Chain::new();
            chain.now = timestamp;
            let record = chain.register(&doc, None, false);
            assert_eq!(
                effects(&record).status,
                ExecutionStatus::Success,
                "{name}: {:?}",
                record.error_description
            );
            chain.now = crate::node::now_ms();
            let record = chain.register(&doc, None, false);
            assert_nitro_abort(&record, 2);
        }
    }

    /// A real debug-mode document passes `load_nitro_attestation` (validly signed by AWS) and
    /// is refused by `register_enclave` as debug, before any PCR comparison.
    #[test]
    fn a_real_debug_document_is_refused_as_debug() {
        let doc = vector("sui-debug-2024-11-14.cose");
        let mut chain = Chain::new();
        let record = chain.set_pcrs([[1; 48], [2; 48], [3; 48]]);
        assert_eq!(effects(&record).status, ExecutionStatus::Success);
        chain.now = 1_731_627_989_450;
        let record = chain.register(&doc, Some(ENDPOINT), false);
        assert_enclave_abort(
            &chain,
            &record,
            "check_not_debug",
            AbortCode::DebugAttestation,
        );
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let mut chain = Chain::new();
        let record = chain.register(&[0x84, 0x44, 0xa1], None, false);
        assert_nitro_abort(&record, 1);
    }
}
