//! Native models of the Move functions a PTB may call on the devnet.
//!
//! The devnet does not run Move. Each modelled function is Rust code that follows the Move source
//! (`move-contracts/sources/*.move`) line by line: the same checks in the same order, the same
//! abort codes raised from the same module and function, the same events and object changes.
//! Layouts and constants come from `daas_chain_types`.
//!
//! Modelled: `k3s_daas::staking::{stake, add_stake, request_unstake, withdraw, revoke_tokens,
//! settle_slash}`, `k3s_daas::cluster::{set_role_minimum, set_unbonding_period,
//! set_expected_pcrs, set_enclave_operator, set_name, withdraw_treasury, slash, grant_role,
//! revoke_role, migrate}`, `k3s_daas::enclave::register_enclave`, `0x2::coin::destroy_zero`,
//! `0x2::transfer::public_transfer` and `0x2::nitro_attestation::load_nitro_attestation`.
//!
//! `load_nitro_attestation` verifies the document with `daas_attestation::verify` at the
//! transaction's clock time, against the roots the node trusts (the AWS Nitro root G1 always; a
//! DEV root only when the devnet was started with one), and aborts with Sui's codes (1 parse,
//! 2 verify, 3 invalid PCRs) from `0x2::nitro_attestation`. Its result is a
//! `NitroAttestationDocument` value (`drop` only) that lives within the PTB and feeds
//! `enclave::register_enclave`.
//!
//! Abort locations carry the module and function name of the Move function that aborts; the
//! function index is the declaration order in the source and the instruction offset is 0 (there
//! is no bytecode to point into).

mod cluster;
mod enclave;
mod framework;
mod staking;

use sui_sdk_types::{Address, Event, ExecutionError, Identifier, MoveLocation, StructTag};

use daas_chain_types::{Package, PackageEvent};

use crate::exec::Failure;
use crate::exec::runtime::{ObjVal, Runtime, StructVal, Value};
use daas_attestation::TrustAnchor;

/// Object types the model knows, with their Move abilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `0x2::coin::Coin<0x2::sui::SUI>` (key, store).
    SuiCoin,
    /// `0x2::coin::Coin<T>` for any `T` (key, store); only for generic framework functions.
    AnyCoin,
    /// `k3s_daas::staking::StakeRecord` (key).
    StakeRecord,
    /// `k3s_daas::cluster::AdminCap` (key, store).
    AdminCap,
    /// `k3s_daas::cluster::Cluster` (key).
    Cluster,
    /// `0x2::clock::Clock` (key).
    Clock,
    /// `0x2::nitro_attestation::NitroAttestationDocument` (drop, not an object): only ever a
    /// result of `load_nitro_attestation` within one PTB.
    NitroDocument,
    /// Any object with `key + store` (for `public_transfer<T>`).
    AnyStore,
}

impl Kind {
    pub(crate) fn matches(self, package: &Package, tag: &StructTag) -> bool {
        match self {
            Kind::SuiCoin => *tag == StructTag::gas_coin(),
            Kind::AnyCoin => tag.is_coin().is_some(),
            Kind::StakeRecord => *tag == package.stake_record_type(),
            Kind::AdminCap => *tag == package.admin_cap_type(),
            Kind::Cluster => *tag == package.cluster_type(),
            Kind::Clock => *tag == daas_chain_types::package::clock_type(),
            Kind::NitroDocument => {
                *tag == daas_chain_types::package::nitro_attestation_document_type()
            }
            Kind::AnyStore => has_store(package, tag),
        }
    }
}

/// Whether objects of type `tag` have the `store` ability (may be transferred by anyone).
pub(crate) fn has_store(package: &Package, tag: &StructTag) -> bool {
    tag.is_coin().is_some() || *tag == package.admin_cap_type()
}

/// A parameter of a modelled function (`&mut TxContext` / `&TxContext` are implicit).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param {
    U8,
    U64,
    String,
    /// `0x2::object::ID`.
    Id,
    Address,
    /// `vector<u8>`.
    Bytes,
    /// `&T`.
    Ref(Kind),
    /// `&mut T`.
    Mut(Kind),
    /// `T` by value.
    Val(Kind),
}

/// A resolved argument.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    U8(u8),
    U64(u64),
    String(String),
    Address(Address),
    Bytes(Vec<u8>),
    Obj(ObjVal),
    /// A non-object struct value (a `NitroAttestationDocument`).
    Struct(StructVal),
}

/// The resolved arguments of one call.
pub(crate) struct Args(pub(crate) Vec<Arg>);

impl Args {
    fn get(&self, i: usize) -> Result<&Arg, Failure> {
        self.0
            .get(i)
            .ok_or_else(|| Failure::invariant(format!("missing argument {i}")))
    }

    pub(crate) fn u8(&self, i: usize) -> Result<u8, Failure> {
        match self.get(i)? {
            Arg::U8(v) => Ok(*v),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not u8"
            ))),
        }
    }

    pub(crate) fn u64(&self, i: usize) -> Result<u64, Failure> {
        match self.get(i)? {
            Arg::U64(v) => Ok(*v),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not u64"
            ))),
        }
    }

    pub(crate) fn string(&self, i: usize) -> Result<String, Failure> {
        match self.get(i)? {
            Arg::String(v) => Ok(v.clone()),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not String"
            ))),
        }
    }

    pub(crate) fn address(&self, i: usize) -> Result<Address, Failure> {
        match self.get(i)? {
            Arg::Address(v) => Ok(*v),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not an address"
            ))),
        }
    }

    pub(crate) fn bytes(&self, i: usize) -> Result<Vec<u8>, Failure> {
        match self.get(i)? {
            Arg::Bytes(v) => Ok(v.clone()),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not vector<u8>"
            ))),
        }
    }

    pub(crate) fn obj(&self, i: usize) -> Result<&ObjVal, Failure> {
        match self.get(i)? {
            Arg::Obj(v) => Ok(v),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not an object"
            ))),
        }
    }

    /// Decodes the non-object struct argument `i` as `T`.
    pub(crate) fn decode_struct<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
    ) -> Result<T, Failure> {
        match self.get(i)? {
            Arg::Struct(v) => v.decode(),
            other => Err(Failure::invariant(format!(
                "argument {i} is {other:?}, not a struct value"
            ))),
        }
    }

    /// Decodes object argument `i` as `T`.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, Failure> {
        self.obj(i)?.decode()
    }

    /// Writes `value` into the (by-`&mut`) object argument `i`.
    pub(crate) fn store<T: serde::Serialize>(
        &mut self,
        i: usize,
        value: &T,
    ) -> Result<(), Failure> {
        match self.0.get_mut(i) {
            Some(Arg::Obj(v)) => v.store(value),
            _ => Err(Failure::invariant(format!("argument {i} is not an object"))),
        }
    }
}

/// The context of one Move call: the transaction's sender and clock, the called function (for
/// event attribution) and the transaction's runtime.
pub(crate) struct CallCtx<'a, 'l> {
    pub(crate) sender: Address,
    /// The devnet's clock: wall time in ms when the transaction executes.
    pub(crate) now_ms: u64,
    /// The roots `load_nitro_attestation` trusts.
    pub(crate) anchors: &'a [TrustAnchor],
    /// The `k3s_daas` package.
    pub(crate) package: Package,
    /// Package and module of the PTB's `MoveCall` (events are attributed to them).
    pub(crate) call_package: Address,
    pub(crate) call_module: Identifier,
    pub(crate) type_arguments: Vec<sui_sdk_types::TypeTag>,
    pub(crate) rt: &'a mut Runtime<'l>,
}

impl CallCtx<'_, '_> {
    /// `event::emit` of a package event.
    pub(crate) fn emit(&mut self, event: PackageEvent) -> Result<(), Failure> {
        let contents = event
            .contents()
            .map_err(|e| Failure::invariant(format!("encode event: {e}")))?;
        self.rt.emit(Event {
            package_id: self.call_package,
            module: self.call_module.clone(),
            sender: self.sender,
            type_: event.struct_tag(&self.package),
            contents,
        });
        Ok(())
    }
}

/// A Move function's location, for aborts raised in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    /// `None`: the `k3s_daas` package; `Some`: a framework address.
    pub(crate) framework: Option<Address>,
    pub(crate) module: &'static str,
    pub(crate) function: &'static str,
    /// Declaration order of the function in its module.
    pub(crate) index: u16,
}

impl Loc {
    pub(crate) const fn pkg(module: &'static str, function: &'static str, index: u16) -> Loc {
        Loc {
            framework: None,
            module,
            function,
            index,
        }
    }

    pub(crate) const fn framework(
        address: Address,
        module: &'static str,
        function: &'static str,
        index: u16,
    ) -> Loc {
        Loc {
            framework: Some(address),
            module,
            function,
            index,
        }
    }

    fn location(self, package: &Package) -> MoveLocation {
        MoveLocation {
            package: self.framework.unwrap_or(package.id),
            module: daas_chain_types::package::identifier(self.module),
            function: self.index,
            instruction: 0,
            function_name: Some(daas_chain_types::package::identifier(self.function)),
        }
    }

    /// `abort code` raised in this function.
    pub(crate) fn abort(self, package: &Package, code: u64) -> Failure {
        Failure::new(ExecutionError::MoveAbort {
            location: self.location(package),
            code,
        })
    }

    /// An arithmetic error (overflow) in this function.
    pub(crate) fn arithmetic(self, package: &Package) -> Failure {
        Failure::new(ExecutionError::MovePrimitiveRuntimeError {
            location: Some(self.location(package)),
        })
    }
}

/// The native body of a modelled function: resolved arguments in, return values out. `&mut`
/// object arguments are written back by the interpreter after the call.
pub(crate) type Handler = fn(&mut CallCtx<'_, '_>, &mut Args) -> Result<Vec<Value>, Failure>;

/// A modelled function's signature and body.
pub(crate) struct Function {
    pub(crate) params: &'static [Param],
    pub(crate) type_params: usize,
    pub(crate) handler: Handler,
}

/// The modelled function `package::module::function`, if any.
pub(crate) fn lookup(
    k3s: &Package,
    package: &Address,
    module: &str,
    function: &str,
) -> Option<&'static Function> {
    if *package == k3s.id {
        match module {
            daas_chain_types::package::MODULE_STAKING => staking::function(function),
            daas_chain_types::package::MODULE_CLUSTER => cluster::function(function),
            daas_chain_types::package::MODULE_ENCLAVE => enclave::function(function),
            _ => None,
        }
    } else if *package == Address::TWO {
        framework::function(module, function)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
