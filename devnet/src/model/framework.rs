//! The few Sui framework (`0x2`) functions a K3s-DaaS PTB calls.

use sui_sdk_types::{Address, CommandArgumentError, ExecutionError, Owner, TypeTag};

use daas_chain_types::Coin;

use super::{Args, CallCtx, Function, Kind, Loc, Param};
use crate::exec::Failure;
use crate::exec::runtime::Value;

/// `0x2::balance::destroy_zero` aborts with `ENonZero` (0) for a non-zero balance.
const BALANCE_DESTROY_ZERO: Loc = Loc::framework(Address::TWO, "balance", "destroy_zero", 0);
/// `0x2::nitro_attestation::load_nitro_attestation` aborts with `ENotSupportedError` (0).
const LOAD_NITRO_ATTESTATION: Loc = Loc::framework(
    Address::TWO,
    "nitro_attestation",
    "load_nitro_attestation",
    0,
);
/// `nitro_attestation::ENotSupportedError`.
pub(crate) const E_NOT_SUPPORTED: u64 = 0;
/// `balance::ENonZero`.
const E_NON_ZERO: u64 = 0;

pub(super) fn function(module: &str, name: &str) -> Option<&'static Function> {
    static DESTROY_ZERO_FN: Function = Function {
        params: &[Param::Val(Kind::AnyCoin)],
        type_params: 1,
        handler: destroy_zero,
    };
    static PUBLIC_TRANSFER_FN: Function = Function {
        params: &[Param::Val(Kind::AnyStore), Param::Address],
        type_params: 1,
        handler: public_transfer,
    };
    static LOAD_NITRO_ATTESTATION_FN: Function = Function {
        params: &[Param::Bytes, Param::Ref(Kind::Clock)],
        type_params: 0,
        handler: load_nitro_attestation,
    };
    Some(match (module, name) {
        ("coin", "destroy_zero") => &DESTROY_ZERO_FN,
        ("transfer", "public_transfer") => &PUBLIC_TRANSFER_FN,
        ("nitro_attestation", "load_nitro_attestation") => &LOAD_NITRO_ATTESTATION_FN,
        _ => return None,
    })
}

/// Fails unless the object argument `arg` has exactly the type the type argument `T` names.
fn check_type_argument(
    ctx: &CallCtx<'_, '_>,
    args: &Args,
    arg: usize,
    expected: impl Fn(&TypeTag) -> TypeTag,
) -> Result<(), Failure> {
    let object = args.obj(arg)?;
    let Some(t) = ctx.type_arguments.first() else {
        return Err(Failure::new(ExecutionError::TypeArityMismatch));
    };
    if TypeTag::Struct(Box::new(object.type_.clone())) != expected(t) {
        return Err(Failure::arg(arg as u16, CommandArgumentError::TypeMismatch));
    }
    Ok(())
}

/// `coin::destroy_zero<T>(c: Coin<T>)`.
fn destroy_zero(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    check_type_argument(ctx, args, 0, |t| {
        TypeTag::Struct(Box::new(sui_sdk_types::StructTag::coin(t.clone())))
    })?;
    let coin: Coin = args.decode(0)?;
    if coin.balance != 0 {
        return Err(BALANCE_DESTROY_ZERO.abort(&ctx.package, E_NON_ZERO));
    }
    ctx.rt.delete(coin.id);
    Ok(Vec::new())
}

/// `transfer::public_transfer<T: key + store>(obj: T, recipient: address)`.
fn public_transfer(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    check_type_argument(ctx, args, 0, Clone::clone)?;
    let object = args.obj(0)?.clone();
    let recipient = args.address(1)?;
    ctx.rt.transfer(object, Owner::Address(recipient));
    Ok(Vec::new())
}

/// `nitro_attestation::load_nitro_attestation(attestation: vector<u8>, clock: &Clock)`: the
/// devnet behaves like a network without the Nitro attestation native.
fn load_nitro_attestation(ctx: &mut CallCtx<'_, '_>, _: &mut Args) -> Result<Vec<Value>, Failure> {
    Err(LOAD_NITRO_ATTESTATION.abort(&ctx.package, E_NOT_SUPPORTED))
}
