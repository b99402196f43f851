//! Checks a validator makes before executing: signatures, gas payment and input object refs.
//! A transaction failing any of them is rejected with a gRPC error and leaves no trace.

use std::collections::BTreeSet;

use sui_crypto::{SuiVerifier, UserSignatureVerifier};
use sui_sdk_types::{
    Address, Input, Mutability, Object, ObjectReference, Owner, ProgrammableTransaction, StructTag,
    Transaction, TransactionExpiration, TransactionKind, UserSignature,
};

use crate::exec::gas;
use crate::exec::{Access, Rejection};
use crate::state::Ledger;

/// An input object as loaded for execution.
#[derive(Clone, Debug)]
pub(crate) struct LoadedObject {
    pub(crate) object: Object,
    pub(crate) access: Access,
}

/// One PTB input after validation.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a PTB has a handful of inputs; boxing would only add indirection"
)]
pub(crate) enum LoadedInput {
    Pure(Vec<u8>),
    Object(LoadedObject),
}

/// A transaction that passed every pre-execution check.
pub(crate) struct Validated<'t> {
    pub(crate) ptb: &'t ProgrammableTransaction,
    pub(crate) inputs: Vec<LoadedInput>,
    /// The gas coins, primary first.
    pub(crate) gas: Vec<Object>,
}

/// Runs every pre-execution check.
pub(crate) fn validate<'t>(
    ledger: &Ledger,
    tx: &'t Transaction,
    signatures: &[UserSignature],
    now_ms: u64,
) -> Result<Validated<'t>, Rejection> {
    let TransactionKind::ProgrammableTransaction(ptb) = &tx.kind else {
        return Err(Rejection::invalid(
            "only programmable transactions can be submitted",
        ));
    };
    check_expiration(&tx.expiration, now_ms)?;
    check_signatures(tx, signatures)?;
    let gas = check_gas(ledger, tx)?;
    let inputs = load_inputs(ledger, tx, ptb)?;
    Ok(Validated { ptb, inputs, gas })
}

fn check_expiration(expiration: &TransactionExpiration, now_ms: u64) -> Result<(), Rejection> {
    // The devnet has a single epoch, 0.
    match expiration {
        TransactionExpiration::None | TransactionExpiration::Epoch(_) => Ok(()),
        TransactionExpiration::ValidDuring {
            min_epoch,
            min_timestamp,
            max_timestamp,
            ..
        } => {
            // Epoch 0 is within any window whose lower bound is 0 (or unset).
            let epoch_ok = min_epoch.is_none_or(|e| e == 0);
            let time_ok = min_timestamp.is_none_or(|t| t <= now_ms)
                && max_timestamp.is_none_or(|t| now_ms <= t);
            if epoch_ok && time_ok {
                Ok(())
            } else {
                Err(Rejection::precondition(
                    "the transaction is outside its ValidDuring window",
                ))
            }
        }
        _ => Err(Rejection::invalid("unsupported transaction expiration")),
    }
}

fn check_signatures(tx: &Transaction, signatures: &[UserSignature]) -> Result<(), Rejection> {
    if tx.gas_payment.owner != tx.sender {
        return Err(Rejection::invalid(format!(
            "the gas owner {} is not the sender {}: sponsored transactions are not supported by the devnet",
            tx.gas_payment.owner, tx.sender
        )));
    }
    if signatures.is_empty() {
        return Err(Rejection::invalid("the transaction carries no signature"));
    }
    let verifier = UserSignatureVerifier::new();
    let mut sender_signed = false;
    for (i, signature) in signatures.iter().enumerate() {
        verifier
            .verify_transaction(tx, signature)
            .map_err(|e| Rejection::invalid(format!("signature #{i} is invalid: {e}")))?;
        let signs_for_sender = signature.derive_addresses().any(|a| a == tx.sender);
        if !signs_for_sender {
            return Err(Rejection::invalid(format!(
                "signature #{i} is by {}, which is not a required signer (the sender is {})",
                signature.derive_address(),
                tx.sender
            )));
        }
        if sender_signed {
            return Err(Rejection::invalid("the sender signed more than once"));
        }
        sender_signed = true;
    }
    Ok(())
}

fn check_gas(ledger: &Ledger, tx: &Transaction) -> Result<Vec<Object>, Rejection> {
    let payment = &tx.gas_payment;
    let rgp = ledger.info().reference_gas_price;
    if payment.price < rgp {
        return Err(Rejection::invalid(format!(
            "gas price {} is below the reference gas price {rgp}",
            payment.price
        )));
    }
    if payment.price > gas::MAX_GAS_PRICE {
        return Err(Rejection::invalid(format!(
            "gas price {} is above the maximum {}",
            payment.price,
            gas::MAX_GAS_PRICE
        )));
    }
    let min_budget = gas::computation_cost(payment.price);
    if payment.budget < min_budget {
        return Err(Rejection::invalid(format!(
            "gas budget {} is below the minimum {min_budget} for gas price {}",
            payment.budget, payment.price
        )));
    }
    if payment.budget > gas::MAX_GAS_BUDGET {
        return Err(Rejection::invalid(format!(
            "gas budget {} is above the maximum {}",
            payment.budget,
            gas::MAX_GAS_BUDGET
        )));
    }
    if payment.objects.is_empty() {
        return Err(Rejection::invalid("the transaction has no gas coin"));
    }
    let mut seen = BTreeSet::new();
    let mut coins = Vec::with_capacity(payment.objects.len());
    let mut total: u64 = 0;
    for reference in &payment.objects {
        if !seen.insert(*reference.object_id()) {
            return Err(Rejection::invalid(format!(
                "gas coin {} is listed twice",
                reference.object_id()
            )));
        }
        let object = current_version(ledger, reference)?;
        if !matches!(object.owner(), Owner::Address(a) if *a == tx.sender) {
            return Err(Rejection::precondition(format!(
                "gas coin {} is not owned by the sender {}",
                reference.object_id(),
                tx.sender
            )));
        }
        let balance = sui_coin_balance(object).ok_or_else(|| {
            Rejection::invalid(format!(
                "gas object {} is not a 0x2::coin::Coin<0x2::sui::SUI>",
                reference.object_id()
            ))
        })?;
        total = total.saturating_add(balance);
        coins.push(object.clone());
    }
    if total < payment.budget {
        return Err(Rejection::precondition(format!(
            "gas balance {total} is below the gas budget {}",
            payment.budget
        )));
    }
    Ok(coins)
}

fn load_inputs(
    ledger: &Ledger,
    tx: &Transaction,
    ptb: &ProgrammableTransaction,
) -> Result<Vec<LoadedInput>, Rejection> {
    let mut seen: BTreeSet<Address> = tx
        .gas_payment
        .objects
        .iter()
        .map(|r| *r.object_id())
        .collect();
    let mut loaded = Vec::with_capacity(ptb.inputs.len());
    for (i, input) in ptb.inputs.iter().enumerate() {
        let item = match input {
            Input::Pure(bytes) => LoadedInput::Pure(bytes.clone()),
            Input::ImmutableOrOwned(reference) => {
                let object = current_version(ledger, reference)?;
                let access = match object.owner() {
                    Owner::Address(a) if *a == tx.sender => Access::Owned,
                    Owner::Immutable => Access::Immutable,
                    Owner::Address(a) => {
                        return Err(Rejection::precondition(format!(
                            "input #{i}: object {} is owned by {a}, not by the sender {}",
                            reference.object_id(),
                            tx.sender
                        )));
                    }
                    Owner::Object(parent) => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: object {} is owned by the object {parent} and cannot be a transaction input",
                            reference.object_id()
                        )));
                    }
                    _ => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: object {} is shared; pass it as a shared input",
                            reference.object_id()
                        )));
                    }
                };
                LoadedInput::Object(LoadedObject {
                    object: object.clone(),
                    access,
                })
            }
            Input::Shared(shared) => {
                let id = shared.object_id();
                let object = ledger.object(&id).ok_or_else(|| {
                    Rejection::precondition(format!(
                        "input #{i}: shared object {id} does not exist"
                    ))
                })?;
                match object.owner() {
                    Owner::Shared(isv) if *isv == shared.version() => {}
                    Owner::Shared(isv) => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: shared object {id} has initial shared version {isv}, not {}",
                            shared.version()
                        )));
                    }
                    _ => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: object {id} is not shared"
                        )));
                    }
                }
                let access = match shared.mutability() {
                    Mutability::Immutable => Access::SharedImm,
                    Mutability::Mutable if is_clock(object) => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: the Clock {id} can only be passed as an immutable shared input"
                        )));
                    }
                    Mutability::Mutable => Access::SharedMut,
                    Mutability::NonExclusiveWrite => {
                        return Err(Rejection::invalid(format!(
                            "input #{i}: non-exclusive-write shared inputs are reserved for system transactions"
                        )));
                    }
                };
                LoadedInput::Object(LoadedObject {
                    object: object.clone(),
                    access,
                })
            }
            Input::Receiving(_) => {
                return Err(Rejection::invalid(format!(
                    "input #{i}: Receiving inputs are not supported by the devnet"
                )));
            }
            _ => {
                return Err(Rejection::invalid(format!(
                    "input #{i}: this input kind (funds withdrawal) is not supported by the devnet"
                )));
            }
        };
        if let LoadedInput::Object(o) = &item
            && !seen.insert(o.object.object_id())
        {
            return Err(Rejection::invalid(format!(
                "object {} is used more than once as an input (or also as gas)",
                o.object.object_id()
            )));
        }
        loaded.push(item);
    }
    Ok(loaded)
}

/// The live object behind `reference`, which must name its current version and digest.
fn current_version<'l>(
    ledger: &'l Ledger,
    reference: &ObjectReference,
) -> Result<&'l Object, Rejection> {
    let id = reference.object_id();
    let object = ledger.object(id).ok_or_else(|| {
        Rejection::precondition(format!(
            "object {id} (version {}) does not exist or was deleted",
            reference.version()
        ))
    })?;
    let digest = object.digest();
    if object.version() != reference.version() || digest != *reference.digest() {
        return Err(Rejection::precondition(format!(
            "object {id} version {} (digest {}) is not available for consumption; its current version is {} (digest {digest})",
            reference.version(),
            reference.digest(),
            object.version()
        )));
    }
    Ok(object)
}

/// The balance of a `Coin<0x2::sui::SUI>`, or `None` for any other object.
pub(crate) fn sui_coin_balance(object: &Object) -> Option<u64> {
    let s = object.as_struct()?;
    if *s.object_type() != StructTag::gas_coin() {
        return None;
    }
    coin_value(s.contents())
}

/// The `balance` of `Coin<T>` contents (`id: UID, balance: Balance<T>`).
pub(crate) fn coin_value(contents: &[u8]) -> Option<u64> {
    let coin: daas_chain_types::Coin = bcs::from_bytes(contents).ok()?;
    Some(coin.balance)
}

fn is_clock(object: &Object) -> bool {
    object
        .as_struct()
        .is_some_and(|s| *s.object_type() == daas_chain_types::package::clock_type())
}
