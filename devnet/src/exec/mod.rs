//! Transaction execution: pre-execution checks (rejections are gRPC errors), the PTB
//! interpreter, gas, and the effects of success or failure.
//!
//! Like a Sui validator, the devnet either rejects a transaction before execution (bad
//! signature, stale or unknown object reference, insufficient gas balance, ...) or executes it.
//! An executed transaction always produces effects and a checkpoint: a Move abort or any other
//! execution error gives failed effects (`status.success = false`), gas is charged and the
//! mutable inputs get new versions, but nothing else changes.

mod effects;
mod gas;
mod ptb;
pub(crate) mod runtime;
pub(crate) mod validate;

use std::collections::BTreeMap;

use sui_sdk_types::{
    Address, CommandArgumentError, ExecutionError, Object, Owner, Transaction, UserSignature,
};

use daas_attestation::TrustAnchor;
use daas_chain_types::Package;

pub(crate) use effects::balance_changes as effects_balance_changes;
pub use gas::REFERENCE_GAS_PRICE;
pub(crate) use gas::storage_cost;

use crate::state::{Ledger, TxRecord};
use effects::{Outcome, Writes};
use runtime::{ObjVal, Runtime};
use validate::LoadedInput;

/// How a transaction may use an input object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Address-owned by the sender: mutable, may be moved.
    Owned,
    /// `Owner::Immutable`: read-only.
    Immutable,
    /// Shared, passed mutably.
    SharedMut,
    /// Shared, passed immutably.
    SharedImm,
}

/// A transaction rejected before execution: it leaves no trace on the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: tonic::Code,
    pub(crate) message: String,
}

impl Rejection {
    /// Malformed or unsupported transaction (`InvalidArgument`).
    pub(crate) fn invalid(message: impl Into<String>) -> Rejection {
        Rejection {
            code: tonic::Code::InvalidArgument,
            message: message.into(),
        }
    }

    /// Well-formed but not executable against the current state (`FailedPrecondition`):
    /// stale or unknown object refs, objects owned by someone else, too little gas.
    pub(crate) fn precondition(message: impl Into<String>) -> Rejection {
        Rejection {
            code: tonic::Code::FailedPrecondition,
            message: message.into(),
        }
    }
}

/// An execution error: the transaction gets failed effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Boxed: `ExecutionError` is large and failures travel through every `Result`.
    pub(crate) error: Box<ExecutionError>,
    /// Index of the command that failed, if any.
    pub(crate) command: Option<u64>,
    /// Human-readable detail for `ExecutionError.description`.
    pub(crate) description: Option<String>,
}

impl Failure {
    pub(crate) fn new(error: ExecutionError) -> Failure {
        Failure {
            error: Box::new(error),
            command: None,
            description: None,
        }
    }

    /// An error with argument `argument` of the current command.
    pub(crate) fn arg(argument: u16, kind: CommandArgumentError) -> Failure {
        Failure::new(ExecutionError::CommandArgumentError { argument, kind })
    }

    /// A bug or a state the model cannot represent (never a user error).
    pub(crate) fn invariant(detail: impl Into<String>) -> Failure {
        let detail = detail.into();
        tracing::error!(%detail, "devnet invariant violation during execution");
        Failure::new(ExecutionError::InvariantViolation).describe(detail)
    }

    pub(crate) fn describe(mut self, description: impl Into<String>) -> Failure {
        self.description = Some(description.into());
        self
    }

    /// Attributes the failure to command `index` (unless already attributed).
    pub(crate) fn at(mut self, index: usize) -> Failure {
        if self.command.is_none() {
            self.command = Some(index as u64);
        }
        self
    }
}

/// Executes `tx` against `ledger` at wall time `now_ms` (the `Clock` time Move code sees), with
/// `anchors` as the roots `load_nitro_attestation` trusts. Does not modify the ledger: the
/// returned record is committed (and sealed into a checkpoint) by the caller.
pub(crate) fn execute(
    ledger: &Ledger,
    tx: Transaction,
    signatures: Vec<UserSignature>,
    now_ms: u64,
    anchors: &[TrustAnchor],
) -> Result<TxRecord, Rejection> {
    let digest = tx.digest();
    let validated = validate::validate(ledger, &tx, &signatures, now_ms)?;
    let package = Package::new(ledger.info().package);
    let budget = tx.gas_payment.budget;

    // Every object the transaction reads, by id.
    let mut loaded: BTreeMap<Address, (Object, Access)> = BTreeMap::new();
    for coin in &validated.gas {
        loaded.insert(coin.object_id(), (coin.clone(), Access::Owned));
    }
    for input in &validated.inputs {
        if let LoadedInput::Object(o) = input {
            loaded.insert(o.object.object_id(), (o.object.clone(), o.access));
        }
    }
    let lamport = loaded
        .values()
        .map(|(o, _)| o.version())
        .max()
        .unwrap_or(0)
        .saturating_add(1);

    // Gas smashing: every gas coin's balance moves into the first one, the others are deleted.
    let gas_id = validated.gas[0].object_id();
    let smashed: u64 = validated
        .gas
        .iter()
        .filter_map(validate::sui_coin_balance)
        .fold(0u64, u64::saturating_add);
    let secondary_gas: Vec<Address> = validated.gas[1..].iter().map(Object::object_id).collect();
    let mut gas_coin = ObjVal::from_object(&validated.gas[0])
        .ok_or_else(|| Rejection::invalid("the gas object is not a coin"))?;
    // Move code sees the balance minus the budget; the unused budget returns afterwards.
    set_coin_balance(&mut gas_coin, smashed - budget)
        .map_err(|f| Rejection::invalid(format!("gas coin: {:?}", f.error)))?;

    let mut rt = Runtime::new(ledger, digest);
    let run = ptb::Interpreter::new(
        &mut rt,
        package,
        tx.sender,
        now_ms,
        anchors,
        &validated.inputs,
        gas_coin,
    )
    .and_then(|interpreter| interpreter.run(&validated.ptb.commands));

    let context = effects::Context {
        ledger,
        package: &package,
        tx: &tx,
        digest,
        lamport,
        loaded: &loaded,
        gas_id,
    };
    let outcome = match run {
        Ok(leftovers) => {
            let mut writes: Writes = leftovers.written_back;
            let mut deleted = rt.deleted.clone();
            for (id, (object, owner)) in std::mem::take(&mut rt.transferred) {
                writes.insert(id, (object, owner));
            }
            for (id, child) in std::mem::take(&mut rt.children) {
                match child {
                    Some((object, parent)) => {
                        writes.insert(id, (object, Owner::Object(parent)));
                    }
                    None => {
                        deleted.insert(id);
                    }
                }
            }
            deleted.extend(secondary_gas.iter().copied());
            let events = std::mem::take(&mut rt.events);
            // Unused budget returns to the gas coin before the charge.
            match effects::settle(&context, writes, deleted, events, budget) {
                Ok(outcome) => outcome,
                Err(failure) => failed(&context, smashed, &secondary_gas, failure),
            }
        }
        Err(failure) => failed(&context, smashed, &secondary_gas, failure),
    };
    Ok(effects::record(&context, outcome, signatures))
}

/// The failure path: only mutable inputs (with bumped versions) and the charged gas coin change.
fn failed(
    context: &effects::Context<'_>,
    smashed: u64,
    secondary_gas: &[Address],
    failure: Failure,
) -> Outcome {
    let mut writes: Writes = BTreeMap::new();
    for (id, (object, access)) in context.loaded {
        if matches!(access, Access::Owned | Access::SharedMut)
            && !secondary_gas.contains(id)
            && let Some(value) = ObjVal::from_object(object)
        {
            writes.insert(*id, (value, *object.owner()));
        }
    }
    if let Some((gas, _)) = writes.get_mut(&context.gas_id)
        && let Err(f) = set_coin_balance(gas, smashed)
    {
        tracing::error!(error = ?f.error, "cannot reset the gas coin");
    }
    let deleted = secondary_gas.iter().copied().collect();
    effects::settle_failure(context, writes, deleted, failure)
}

fn set_coin_balance(coin: &mut ObjVal, balance: u64) -> Result<(), Failure> {
    let mut value: daas_chain_types::Coin = coin.decode()?;
    value.balance = balance;
    coin.store(&value)
}

#[cfg(test)]
mod tests;
