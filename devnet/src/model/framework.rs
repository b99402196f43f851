//! The few Sui framework (`0x2`) functions a K3s-DaaS PTB calls.

use sui_sdk_types::{Address, CommandArgumentError, ExecutionError, Owner, TypeTag};

use daas_attestation::{Document, RootKind};
use daas_chain_types::Coin;
use daas_chain_types::objects::{NitroAttestationDocument, PcrEntry};
use daas_chain_types::package::nitro_attestation_document_type;

use super::{Args, CallCtx, Function, Kind, Loc, Param};
use crate::exec::Failure;
use crate::exec::runtime::{StructVal, Value};

/// `0x2::balance::destroy_zero` aborts with `ENonZero` (0) for a non-zero balance.
const BALANCE_DESTROY_ZERO: Loc = Loc::framework(Address::TWO, "balance", "destroy_zero", 0);
/// `0x2::nitro_attestation::load_nitro_attestation` (function 0 of the module): the aborts of
/// its native `load_nitro_attestation_internal` are reported at the calling function, as the
/// Move VM does for natives.
const LOAD_NITRO_ATTESTATION: Loc = Loc::framework(
    Address::TWO,
    "nitro_attestation",
    "load_nitro_attestation",
    0,
);
/// PCRs Sui's parsing always includes, even when all zero.
const REQUIRED_PCRS: [u8; 6] = [0, 1, 2, 3, 4, 8];
/// Highest PCR index Sui's parsing keeps.
const MAX_PCR_INDEX: u8 = 31;
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

/// `nitro_attestation::load_nitro_attestation(attestation: vector<u8>, clock: &Clock)`: Sui's
/// native rules through `daas_attestation::verify` at the clock time (the transaction's time on
/// the devnet) against the roots the node trusts; aborts with the code Sui raises (1 parse,
/// 2 verify, 3 invalid PCRs). Returns the `NitroAttestationDocument` value. There is no check of
/// the document's timestamp, nonce, PCR values or debug mode here, as on Sui: that is the
/// calling module's job.
fn load_nitro_attestation(
    ctx: &mut CallCtx<'_, '_>,
    args: &mut Args,
) -> Result<Vec<Value>, Failure> {
    let attestation = args.bytes(0)?;
    let verified =
        daas_attestation::verify(&attestation, ctx.anchors, ctx.now_ms).map_err(|e| {
            LOAD_NITRO_ATTESTATION
                .abort(&ctx.package, e.sui_abort_code())
                .describe(format!("load_nitro_attestation: {e}"))
        })?;
    if verified.root == RootKind::Dev {
        tracing::warn!(
            module_id = %verified.document.module_id,
            "load_nitro_attestation accepted a document signed under the DEV attestation root: \
             not a TEE, development only"
        );
    }
    let document = sui_document(&verified.document);
    Ok(vec![Value::Struct(StructVal::new(
        nitro_attestation_document_type(),
        &document,
    )?)])
}

/// The `NitroAttestationDocument` Sui builds from a verified document under its current parsing
/// flags: PCRs sorted by index, the required PCRs 0-4 and 8 even when all zero, every other PCR
/// up to index 31 only when non-zero; certificate and cabundle are not exposed.
pub(crate) fn sui_document(doc: &Document) -> NitroAttestationDocument {
    let pcrs = doc
        .pcrs
        .iter()
        .filter(|(index, value)| {
            **index <= MAX_PCR_INDEX
                && (REQUIRED_PCRS.contains(index) || value.iter().any(|b| *b != 0))
        })
        .map(|(index, value)| PcrEntry {
            index: *index,
            value: value.clone(),
        })
        .collect();
    NitroAttestationDocument {
        module_id: doc.module_id.as_bytes().to_vec(),
        timestamp: doc.timestamp_ms,
        digest: doc.digest.as_bytes().to_vec(),
        pcrs,
        public_key: doc.public_key.clone(),
        user_data: doc.user_data.clone(),
        nonce: doc.nonce.clone(),
    }
}
