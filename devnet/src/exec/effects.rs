//! From the objects a transaction leaves behind to Sui `TransactionEffectsV2`: versions,
//! storage charges, changed objects, balance changes.

use std::collections::{BTreeMap, BTreeSet};

use sui_sdk_types::{
    Address, BalanceChange, ChangedObject, Digest, Event, ExecutionError, ExecutionStatus,
    GasCostSummary, IdOperation, MoveStruct, Object, ObjectData, ObjectIn, ObjectOut, Owner,
    Transaction, TransactionEffects, TransactionEffectsV2, TransactionEvents, TypeTag,
    UnchangedConsensusKind, UnchangedConsensusObject, UserSignature,
};

use daas_chain_types::Package;

use crate::exec::gas::{Charge, computation_cost, storage_cost};
use crate::exec::runtime::ObjVal;
use crate::exec::{Access, Failure, set_coin_balance};
use crate::model;
use crate::state::{Ledger, TxRecord};

/// Objects a transaction writes, by id, with their final owner.
pub(crate) type Writes = BTreeMap<Address, (ObjVal, Owner)>;

/// What the executor knows about the transaction being finished.
pub(crate) struct Context<'a> {
    pub(crate) ledger: &'a Ledger,
    pub(crate) package: &'a Package,
    pub(crate) tx: &'a Transaction,
    pub(crate) digest: Digest,
    pub(crate) lamport: u64,
    pub(crate) loaded: &'a BTreeMap<Address, (Object, Access)>,
    pub(crate) gas_id: Address,
}

/// A finished execution, successful or not.
pub(crate) struct Outcome {
    status: ExecutionStatus,
    description: Option<String>,
    gas_used: GasCostSummary,
    changed: Vec<ChangedObject>,
    /// Input states of the changed objects that existed before.
    changed_inputs: Vec<Object>,
    outputs: Vec<Object>,
    events: Vec<Event>,
}

/// Finishes a successful execution. Fails with `InsufficientGas` if computation plus storage
/// exceed the budget (the caller then takes the failure path).
pub(crate) fn settle(
    context: &Context<'_>,
    writes: Writes,
    deleted: BTreeSet<Address>,
    events: Vec<Event>,
    budget: u64,
) -> Result<Outcome, Failure> {
    let storage = storage_of(context, &writes)?;
    let computation = computation_cost(context.tx.gas_payment.price);
    if computation.saturating_add(storage) > budget {
        return Err(
            Failure::new(ExecutionError::InsufficientGas).describe(format!(
                "computation {computation} + storage {storage} MIST exceed the gas budget {budget}"
            )),
        );
    }
    finish(
        context,
        writes,
        deleted,
        events,
        // The unused budget returns to the gas coin before the charge.
        budget,
        ExecutionStatus::Success,
        None,
    )
}

/// Finishes a failed execution (mutable inputs rewritten unchanged, gas charged).
pub(crate) fn settle_failure(
    context: &Context<'_>,
    writes: Writes,
    deleted: BTreeSet<Address>,
    failure: Failure,
) -> Outcome {
    let status = ExecutionStatus::Failure {
        error: (*failure.error).clone(),
        command: failure.command,
    };
    let description = Some(describe(&failure));
    match finish(
        context,
        writes,
        deleted,
        Vec::new(),
        0,
        status,
        description.clone(),
    ) {
        Ok(outcome) => outcome,
        Err(f) => {
            // Only reachable through a model bug; keep the chain consistent: charge nothing.
            tracing::error!(error = ?f.error, "cannot finish a failed transaction");
            Outcome {
                status: ExecutionStatus::Failure {
                    error: ExecutionError::InvariantViolation,
                    command: None,
                },
                description,
                gas_used: GasCostSummary::default(),
                changed: Vec::new(),
                changed_inputs: Vec::new(),
                outputs: Vec::new(),
                events: Vec::new(),
            }
        }
    }
}

fn describe(failure: &Failure) -> String {
    let mut text = format!("{:?}", failure.error);
    if let Some(command) = failure.command {
        text.push_str(&format!(" in command {command}"));
    }
    if let Some(detail) = &failure.description {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

/// The object `value` becomes at the end of the transaction, with the given rebate.
fn to_object(
    context: &Context<'_>,
    value: &ObjVal,
    owner: Owner,
    rebate: u64,
) -> Result<Object, Failure> {
    let has_public_transfer = model::has_store(context.package, &value.type_);
    let data = MoveStruct::new(
        value.type_.clone(),
        has_public_transfer,
        context.lamport,
        value.contents.clone(),
    )
    .ok_or_else(|| Failure::invariant(format!("object {} has no id", value.id)))?;
    Ok(Object::new(
        ObjectData::Struct(data),
        owner,
        context.digest,
        rebate,
    ))
}

fn storage_of(context: &Context<'_>, writes: &Writes) -> Result<u64, Failure> {
    let mut total: u64 = 0;
    for (value, owner) in writes.values() {
        total = total.saturating_add(storage_cost(&to_object(context, value, *owner, 0)?));
    }
    Ok(total)
}

/// The state of `id` before the transaction, if it existed.
fn input_state<'a>(context: &Context<'a>, id: &Address) -> Option<&'a Object> {
    context
        .loaded
        .get(id)
        .map(|(o, _)| o)
        .or_else(|| context.ledger.object(id))
}

fn finish(
    context: &Context<'_>,
    mut writes: Writes,
    deleted: BTreeSet<Address>,
    events: Vec<Event>,
    refund: u64,
    status: ExecutionStatus,
    description: Option<String>,
) -> Result<Outcome, Failure> {
    let storage = storage_of(context, &writes)?;
    let ids: BTreeSet<Address> = writes.keys().chain(deleted.iter()).copied().collect();
    let rebate: u64 = ids
        .iter()
        .filter_map(|id| input_state(context, id))
        .map(Object::storage_rebate)
        .fold(0, u64::saturating_add);
    let budget = context.tx.gas_payment.budget;
    let charge = Charge::new(
        computation_cost(context.tx.gas_payment.price),
        storage,
        rebate,
        budget,
    );

    if let Some((gas, _)) = writes.get_mut(&context.gas_id) {
        let coin: daas_chain_types::Coin = gas.decode()?;
        let balance = i128::from(coin.balance) + i128::from(refund) - charge.net();
        let balance = u64::try_from(balance.max(0)).unwrap_or(u64::MAX);
        set_coin_balance(gas, balance)?;
    }

    let mut outputs = BTreeMap::new();
    for (id, (value, owner)) in &writes {
        let cost = storage_cost(&to_object(context, value, *owner, 0)?);
        outputs.insert(*id, to_object(context, value, *owner, cost)?);
    }

    let mut changed = Vec::new();
    let mut changed_inputs = Vec::new();
    for id in &ids {
        let input = input_state(context, id);
        let output = outputs.get(id);
        let input_state = match input {
            Some(o) => {
                changed_inputs.push(o.clone());
                ObjectIn::Exist {
                    version: o.version(),
                    digest: o.digest(),
                    owner: *o.owner(),
                }
            }
            None if output.is_none() => continue, // created and deleted within the transaction
            None => ObjectIn::NotExist,
        };
        let output_state = match output {
            Some(o) => ObjectOut::ObjectWrite {
                digest: o.digest(),
                owner: *o.owner(),
            },
            None => ObjectOut::NotExist,
        };
        let id_operation = match (input, output) {
            (None, _) => IdOperation::Created,
            (Some(_), None) => IdOperation::Deleted,
            (Some(_), Some(_)) => IdOperation::None,
        };
        changed.push(ChangedObject {
            object_id: *id,
            input_state,
            output_state,
            id_operation,
        });
    }

    Ok(Outcome {
        status,
        description,
        gas_used: charge.summary,
        changed,
        changed_inputs,
        outputs: outputs.into_values().collect(),
        events,
    })
}

/// Assembles the transaction record (effects, events, objects, balance changes).
pub(crate) fn record(
    context: &Context<'_>,
    outcome: Outcome,
    signatures: Vec<UserSignature>,
) -> TxRecord {
    let Outcome {
        status,
        description,
        gas_used,
        changed,
        changed_inputs,
        outputs,
        events,
    } = outcome;
    let gas_object_index = changed
        .iter()
        .position(|c| c.object_id == context.gas_id)
        .map(|i| i as u32);
    let events = (!events.is_empty()).then(|| TransactionEvents(events));

    let mut dependencies: BTreeSet<Digest> = context
        .loaded
        .values()
        .map(|(o, _)| o.previous_transaction())
        .chain(changed_inputs.iter().map(Object::previous_transaction))
        .collect();
    dependencies.remove(&context.digest);

    let unchanged_consensus_objects = context
        .loaded
        .values()
        .filter(|(_, access)| *access == Access::SharedImm)
        .map(|(o, _)| UnchangedConsensusObject {
            object_id: o.object_id(),
            kind: UnchangedConsensusKind::ReadOnlyRoot {
                version: o.version(),
                digest: o.digest(),
            },
        })
        .collect();

    let effects = TransactionEffects::V2(Box::new(TransactionEffectsV2 {
        status,
        epoch: 0,
        gas_used,
        transaction_digest: context.digest,
        gas_object_index,
        events_digest: events.as_ref().map(TransactionEvents::digest),
        dependencies: dependencies.into_iter().collect(),
        lamport_version: context.lamport,
        changed_objects: changed,
        unchanged_consensus_objects,
        auxiliary_data_digest: None,
    }));

    let balance_changes = balance_changes(&changed_inputs, &outputs);
    let mut input_objects: Vec<Object> = context.loaded.values().map(|(o, _)| o.clone()).collect();
    for o in changed_inputs {
        if !context.loaded.contains_key(&o.object_id()) {
            input_objects.push(o);
        }
    }

    TxRecord {
        transaction: context.tx.clone(),
        signatures,
        effects,
        events,
        input_objects,
        output_objects: outputs,
        balance_changes,
        error_description: description,
        checkpoint: 0,
        timestamp_ms: 0,
    }
}

/// Net coin balance changes per (address owner, coin type), as Sui computes them.
pub(crate) fn balance_changes(inputs: &[Object], outputs: &[Object]) -> Vec<BalanceChange> {
    let mut net: BTreeMap<(Address, TypeTag), i128> = BTreeMap::new();
    let mut add = |object: &Object, sign: i128| {
        let Owner::Address(owner) = object.owner() else {
            return;
        };
        let Some(s) = object.as_struct() else {
            return;
        };
        let Some(coin_type) = s.object_type().is_coin() else {
            return;
        };
        let Some(value) = crate::exec::validate::coin_value(s.contents()) else {
            return;
        };
        *net.entry((*owner, coin_type.clone())).or_default() += sign * i128::from(value);
    };
    for o in inputs {
        add(o, -1);
    }
    for o in outputs {
        add(o, 1);
    }
    net.into_iter()
        .filter(|(_, amount)| *amount != 0)
        .map(|((address, coin_type), amount)| BalanceChange {
            address,
            coin_type,
            amount,
        })
        .collect()
}
