//! The programmable-transaction interpreter: inputs, results and nested results, the native
//! commands (SplitCoins, MergeCoins, TransferObjects, MakeMoveVec) and modelled MoveCalls.
//! Results are pure values, objects, or droppable non-object structs (the
//! `NitroAttestationDocument` that `load_nitro_attestation` returns).

use std::collections::BTreeMap;

use sui_sdk_types::{
    Address, Argument, Command, CommandArgumentError, ExecutionError, MoveCall, Owner, StructTag,
    TypeTag,
};

use daas_attestation::TrustAnchor;
use daas_chain_types::{Coin, Package};

use crate::exec::runtime::{ObjVal, Runtime, Value};
use crate::exec::validate::LoadedInput;
use crate::exec::{Access, Failure};
use crate::model::{self, Arg, Args, CallCtx, Kind, Param};

/// A PTB input slot.
#[expect(
    clippy::large_enum_variant,
    reason = "a PTB has a handful of inputs; boxing would only add indirection"
)]
enum Slot {
    Pure(Vec<u8>),
    Object {
        value: Option<ObjVal>,
        access: Access,
        owner: Owner,
    },
}

/// Where an argument lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Gas,
    Input(usize),
    Result(usize, usize),
}

/// How a command uses an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Usage {
    Ref,
    Mut,
    Val,
}

/// The objects left in storage by a successful PTB: what the inputs hold at the end.
pub(crate) struct Leftovers {
    /// Input objects (and the gas coin) still in their slots, with their owner.
    pub(crate) written_back: BTreeMap<Address, (ObjVal, Owner)>,
}

pub(crate) struct Interpreter<'r, 'l> {
    rt: &'r mut Runtime<'l>,
    package: Package,
    sender: Address,
    now_ms: u64,
    anchors: &'r [TrustAnchor],
    inputs: Vec<Slot>,
    gas: Option<ObjVal>,
    gas_owner: Owner,
    results: Vec<Vec<Option<Value>>>,
}

impl<'r, 'l> Interpreter<'r, 'l> {
    pub(crate) fn new(
        rt: &'r mut Runtime<'l>,
        package: Package,
        sender: Address,
        now_ms: u64,
        anchors: &'r [TrustAnchor],
        inputs: &[LoadedInput],
        gas: ObjVal,
    ) -> Result<Interpreter<'r, 'l>, Failure> {
        let mut slots = Vec::with_capacity(inputs.len());
        for input in inputs {
            slots.push(match input {
                LoadedInput::Pure(bytes) => Slot::Pure(bytes.clone()),
                LoadedInput::Object(o) => Slot::Object {
                    value: Some(ObjVal::from_object(&o.object).ok_or_else(|| {
                        Failure::new(ExecutionError::FeatureNotYetSupported)
                            .describe("packages cannot be PTB inputs on the devnet")
                    })?),
                    access: o.access,
                    owner: *o.object.owner(),
                },
            });
        }
        Ok(Interpreter {
            rt,
            package,
            sender,
            now_ms,
            anchors,
            inputs: slots,
            gas: Some(gas),
            gas_owner: Owner::Address(sender),
            results: Vec::new(),
        })
    }

    /// Runs every command; on success returns what the input slots hold at the end.
    pub(crate) fn run(mut self, commands: &[Command]) -> Result<Leftovers, Failure> {
        for (i, command) in commands.iter().enumerate() {
            let results = self.command(command).map_err(|f| f.at(i))?;
            self.results.push(results.into_iter().map(Some).collect());
        }
        for (i, results) in self.results.iter().enumerate() {
            for (j, value) in results.iter().enumerate() {
                if let Some(Value::Object(_)) = value {
                    return Err(Failure::new(ExecutionError::UnusedValueWithoutDrop {
                        result: i as u16,
                        subresult: j as u16,
                    }));
                }
            }
        }
        let mut written_back = BTreeMap::new();
        for slot in self.inputs {
            if let Slot::Object {
                value: Some(object),
                access: Access::Owned | Access::SharedMut,
                owner,
            } = slot
            {
                written_back.insert(object.id, (object, owner));
            }
        }
        if let Some(gas) = self.gas {
            written_back.insert(gas.id, (gas, self.gas_owner));
        }
        Ok(Leftovers { written_back })
    }

    fn command(&mut self, command: &Command) -> Result<Vec<Value>, Failure> {
        match command {
            Command::MoveCall(call) => self.move_call(call),
            Command::TransferObjects(t) => self.transfer_objects(&t.objects, &t.address),
            Command::SplitCoins(s) => self.split_coins(&s.coin, &s.amounts),
            Command::MergeCoins(m) => self.merge_coins(&m.coin, &m.coins_to_merge),
            Command::MakeMoveVector(v) => self.make_move_vec(v.type_.as_ref(), &v.elements),
            _ => Err(Failure::new(ExecutionError::FeatureNotYetSupported)
                .describe("the devnet does not run Move: Publish and Upgrade are not supported")),
        }
    }

    // ------------------------------------------------------------------------ argument access

    fn place(&self, argument: &Argument, index: u16) -> Result<Place, Failure> {
        match *argument {
            Argument::Gas => Ok(Place::Gas),
            Argument::Input(i) => {
                if usize::from(i) < self.inputs.len() {
                    Ok(Place::Input(usize::from(i)))
                } else {
                    Err(Failure::arg(
                        index,
                        CommandArgumentError::IndexOutOfBounds { index: i },
                    ))
                }
            }
            Argument::Result(r) => {
                let results = self.results.get(usize::from(r)).ok_or_else(|| {
                    Failure::arg(index, CommandArgumentError::IndexOutOfBounds { index: r })
                })?;
                if results.len() != 1 {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::InvalidResultArity { result: r },
                    ));
                }
                Ok(Place::Result(usize::from(r), 0))
            }
            Argument::NestedResult(r, s) => {
                let results = self.results.get(usize::from(r)).ok_or_else(|| {
                    Failure::arg(index, CommandArgumentError::IndexOutOfBounds { index: r })
                })?;
                if usize::from(s) >= results.len() {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::SecondaryIndexOutOfBounds {
                            result: r,
                            subresult: s,
                        },
                    ));
                }
                Ok(Place::Result(usize::from(r), usize::from(s)))
            }
        }
    }

    /// The value at `place`, for reading.
    fn peek(&self, place: Place, index: u16) -> Result<Value, Failure> {
        let missing = || Failure::arg(index, CommandArgumentError::ArgumentWithoutValue);
        match place {
            Place::Gas => self.gas.clone().map(Value::Object).ok_or_else(missing),
            Place::Input(i) => match &self.inputs[i] {
                Slot::Pure(bytes) => Ok(Value::Pure(bytes.clone())),
                Slot::Object { value, .. } => value.clone().map(Value::Object).ok_or_else(missing),
            },
            Place::Result(r, s) => self.results[r][s].clone().ok_or_else(missing),
        }
    }

    /// Checks that `place` may be used as `usage` (mutability, by-value rules).
    fn check_usage(&self, place: Place, usage: Usage, index: u16) -> Result<(), Failure> {
        let access = match place {
            Place::Input(i) => match &self.inputs[i] {
                Slot::Object { access, .. } => Some(*access),
                Slot::Pure(_) => None,
            },
            _ => None,
        };
        match (usage, access) {
            (Usage::Mut, Some(Access::Immutable | Access::SharedImm)) => Err(Failure::arg(
                index,
                CommandArgumentError::InvalidObjectByMutRef,
            )),
            (Usage::Val, Some(Access::Immutable | Access::SharedImm | Access::SharedMut)) => Err(
                Failure::arg(index, CommandArgumentError::InvalidObjectByValue),
            ),
            _ => Ok(()),
        }
    }

    /// Moves the value out of `place` (pure values are copied).
    fn take(&mut self, place: Place, index: u16) -> Result<Value, Failure> {
        let missing = || Failure::arg(index, CommandArgumentError::ArgumentWithoutValue);
        match place {
            Place::Gas => self.gas.take().map(Value::Object).ok_or_else(missing),
            Place::Input(i) => match &mut self.inputs[i] {
                Slot::Pure(bytes) => Ok(Value::Pure(bytes.clone())),
                Slot::Object { value, .. } => value.take().map(Value::Object).ok_or_else(missing),
            },
            Place::Result(r, s) => match &mut self.results[r][s] {
                Some(Value::Pure(bytes)) => Ok(Value::Pure(bytes.clone())),
                slot => slot.take().ok_or_else(missing),
            },
        }
    }

    /// Writes an object back to `place` after a `&mut` use.
    fn put(&mut self, place: Place, object: ObjVal) {
        match place {
            Place::Gas => self.gas = Some(object),
            Place::Input(i) => {
                if let Slot::Object { value, .. } = &mut self.inputs[i] {
                    *value = Some(object);
                }
            }
            Place::Result(r, s) => self.results[r][s] = Some(Value::Object(object)),
        }
    }

    /// A pure argument decoded as `T`.
    fn pure<T: serde::de::DeserializeOwned>(
        &self,
        argument: &Argument,
        index: u16,
    ) -> Result<T, Failure> {
        let place = self.place(argument, index)?;
        match self.peek(place, index)? {
            Value::Pure(bytes) => bcs::from_bytes(&bytes)
                .map_err(|_| Failure::arg(index, CommandArgumentError::InvalidBcsBytes)),
            Value::Object(_) | Value::Struct(_) => {
                Err(Failure::arg(index, CommandArgumentError::TypeMismatch))
            }
        }
    }

    /// A `Coin<T>` borrowed mutably: its place, value and coin type.
    fn coin_mut(
        &self,
        argument: &Argument,
        index: u16,
    ) -> Result<(Place, ObjVal, TypeTag), Failure> {
        let place = self.place(argument, index)?;
        self.check_usage(place, Usage::Mut, index)?;
        match self.peek(place, index)? {
            Value::Object(object) => match object.type_.is_coin() {
                Some(t) => {
                    let t = t.clone();
                    Ok((place, object, t))
                }
                None => Err(Failure::arg(index, CommandArgumentError::TypeMismatch)),
            },
            Value::Pure(_) | Value::Struct(_) => {
                Err(Failure::arg(index, CommandArgumentError::TypeMismatch))
            }
        }
    }

    // ------------------------------------------------------------------------ native commands

    fn split_coins(
        &mut self,
        coin: &Argument,
        amounts: &[Argument],
    ) -> Result<Vec<Value>, Failure> {
        let (place, mut object, coin_type) = self.coin_mut(coin, 0)?;
        let mut value: Coin = object.decode()?;
        let mut split = Vec::with_capacity(amounts.len());
        for (i, amount) in amounts.iter().enumerate() {
            let amount: u64 = self.pure(amount, (i + 1) as u16)?;
            if amount > value.balance {
                return Err(Failure::new(ExecutionError::InsufficientCoinBalance));
            }
            value.balance -= amount;
            split.push(amount);
        }
        object.store(&value)?;
        self.put(place, object);
        let tag = StructTag::coin(coin_type);
        let mut results = Vec::with_capacity(split.len());
        for amount in split {
            let id = self.rt.fresh_id();
            results.push(Value::Object(ObjVal::new(
                id,
                tag.clone(),
                &Coin {
                    id,
                    balance: amount,
                },
            )?));
        }
        Ok(results)
    }

    fn merge_coins(
        &mut self,
        target: &Argument,
        sources: &[Argument],
    ) -> Result<Vec<Value>, Failure> {
        let (place, mut object, coin_type) = self.coin_mut(target, 0)?;
        let mut value: Coin = object.decode()?;
        for (i, source) in sources.iter().enumerate() {
            let index = (i + 1) as u16;
            let source_place = self.place(source, index)?;
            if source_place == Place::Gas {
                return Err(Failure::arg(
                    index,
                    CommandArgumentError::InvalidGasCoinUsage,
                ));
            }
            if source_place == place {
                return Err(Failure::arg(index, CommandArgumentError::InvalidValueUsage));
            }
            self.check_usage(source_place, Usage::Val, index)?;
            let Value::Object(coin) = self.peek(source_place, index)? else {
                return Err(Failure::arg(index, CommandArgumentError::TypeMismatch));
            };
            if coin.type_.is_coin() != Some(&coin_type) {
                return Err(Failure::arg(index, CommandArgumentError::TypeMismatch));
            }
            self.take(source_place, index)?;
            let merged: Coin = coin.decode()?;
            value.balance = value
                .balance
                .checked_add(merged.balance)
                .ok_or_else(|| Failure::new(ExecutionError::CoinBalanceOverflow))?;
            self.rt.delete(coin.id);
        }
        object.store(&value)?;
        self.put(place, object);
        Ok(Vec::new())
    }

    fn transfer_objects(
        &mut self,
        objects: &[Argument],
        address: &Argument,
    ) -> Result<Vec<Value>, Failure> {
        let address_index = objects.len() as u16;
        let recipient: Address = self.pure(address, address_index)?;
        let mut places = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            let index = i as u16;
            let place = self.place(object, index)?;
            if places.contains(&place) {
                return Err(Failure::arg(index, CommandArgumentError::InvalidValueUsage));
            }
            self.check_usage(place, Usage::Val, index)?;
            match self.peek(place, index)? {
                Value::Object(o) if model::has_store(&self.package, &o.type_) => {}
                Value::Object(_) => {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::InvalidTransferObject,
                    ));
                }
                Value::Pure(_) | Value::Struct(_) => {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::InvalidTransferObject,
                    ));
                }
            }
            places.push(place);
        }
        for (i, place) in places.into_iter().enumerate() {
            if let Value::Object(object) = self.take(place, i as u16)? {
                if place == Place::Gas {
                    // The gas coin keeps paying for the transaction from its new owner's hands.
                    self.gas_owner = Owner::Address(recipient);
                    self.gas = Some(object);
                    continue;
                }
                self.rt.transfer(object, Owner::Address(recipient));
            }
        }
        Ok(Vec::new())
    }

    fn make_move_vec(
        &mut self,
        type_: Option<&TypeTag>,
        elements: &[Argument],
    ) -> Result<Vec<Value>, Failure> {
        let width = match type_ {
            Some(TypeTag::U8 | TypeTag::Bool) => 1,
            Some(TypeTag::U16) => 2,
            Some(TypeTag::U32) => 4,
            Some(TypeTag::U64) => 8,
            Some(TypeTag::U128) => 16,
            Some(TypeTag::U256 | TypeTag::Address) => 32,
            _ => {
                return Err(Failure::new(ExecutionError::FeatureNotYetSupported).describe(
                    "the devnet's MakeMoveVec supports vectors of primitive values with an explicit type only",
                ));
            }
        };
        let mut bytes = uleb128(elements.len());
        for (i, element) in elements.iter().enumerate() {
            let index = i as u16;
            let place = self.place(element, index)?;
            match self.peek(place, index)? {
                Value::Pure(b) if b.len() == width => bytes.extend_from_slice(&b),
                Value::Pure(_) => {
                    return Err(Failure::arg(index, CommandArgumentError::InvalidBcsBytes));
                }
                Value::Object(_) | Value::Struct(_) => {
                    return Err(Failure::arg(index, CommandArgumentError::TypeMismatch));
                }
            }
        }
        Ok(vec![Value::Pure(bytes)])
    }

    // ------------------------------------------------------------------------ Move calls

    fn move_call(&mut self, call: &MoveCall) -> Result<Vec<Value>, Failure> {
        let function = model::lookup(
            &self.package,
            &call.package,
            call.module.as_str(),
            call.function.as_str(),
        )
        .ok_or_else(|| {
            Failure::new(ExecutionError::FunctionNotFound).describe(format!(
                "{}::{}::{} is not modelled by the devnet",
                call.package, call.module, call.function
            ))
        })?;
        if call.type_arguments.len() != function.type_params {
            return Err(Failure::new(ExecutionError::TypeArityMismatch));
        }
        if call.arguments.len() != function.params.len() {
            return Err(Failure::new(ExecutionError::ArityMismatch));
        }
        // Resolve every argument first (type and usage checks), then move by-value ones out.
        let mut resolved = Vec::with_capacity(call.arguments.len());
        let mut places: Vec<(Place, Usage)> = Vec::new();
        for (i, (argument, param)) in call.arguments.iter().zip(function.params).enumerate() {
            let index = i as u16;
            let place = self.place(argument, index)?;
            let (arg, usage) = self.resolve(place, *param, index)?;
            if let Some(usage) = usage {
                let conflict = places
                    .iter()
                    .any(|(p, u)| *p == place && (*u != Usage::Ref || usage != Usage::Ref));
                if conflict {
                    return Err(Failure::arg(index, CommandArgumentError::InvalidValueUsage));
                }
                places.push((place, usage));
            }
            resolved.push((place, usage, arg));
        }
        for (i, (place, usage, _)) in resolved.iter().enumerate() {
            if *usage == Some(Usage::Val) {
                self.take(*place, i as u16)?;
            }
        }
        let mut args = Args(resolved.iter().map(|(_, _, a)| a.clone()).collect());
        let mut ctx = CallCtx {
            sender: self.sender,
            now_ms: self.now_ms,
            anchors: self.anchors,
            package: self.package,
            call_package: call.package,
            call_module: call.module.clone(),
            type_arguments: call.type_arguments.clone(),
            rt: self.rt,
        };
        let results = (function.handler)(&mut ctx, &mut args)?;
        for ((place, usage, _), arg) in resolved.into_iter().zip(args.0) {
            if usage == Some(Usage::Mut)
                && let Arg::Obj(object) = arg
            {
                self.put(place, object);
            }
        }
        Ok(results)
    }

    /// Resolves one argument against its parameter type; object arguments report their usage.
    fn resolve(
        &self,
        place: Place,
        param: Param,
        index: u16,
    ) -> Result<(Arg, Option<Usage>), Failure> {
        let value = self.peek(place, index)?;
        let pure = |value: &Value| -> Result<Vec<u8>, Failure> {
            match value {
                Value::Pure(bytes) => Ok(bytes.clone()),
                Value::Object(_) | Value::Struct(_) => {
                    Err(Failure::arg(index, CommandArgumentError::TypeMismatch))
                }
            }
        };
        let bad_bcs = |_| Failure::arg(index, CommandArgumentError::InvalidBcsBytes);
        let arg = match param {
            Param::U8 => Arg::U8(bcs::from_bytes(&pure(&value)?).map_err(bad_bcs)?),
            Param::U64 => Arg::U64(bcs::from_bytes(&pure(&value)?).map_err(bad_bcs)?),
            Param::String => Arg::String(bcs::from_bytes(&pure(&value)?).map_err(bad_bcs)?),
            Param::Id | Param::Address => {
                Arg::Address(bcs::from_bytes(&pure(&value)?).map_err(bad_bcs)?)
            }
            Param::Bytes => Arg::Bytes(bcs::from_bytes(&pure(&value)?).map_err(bad_bcs)?),
            Param::Ref(kind) | Param::Mut(kind) | Param::Val(kind) => {
                let usage = match param {
                    Param::Ref(_) => Usage::Ref,
                    Param::Mut(_) => Usage::Mut,
                    _ => Usage::Val,
                };
                let (arg, type_) = match value {
                    Value::Object(object) => {
                        let type_ = object.type_.clone();
                        (Arg::Obj(object), type_)
                    }
                    Value::Struct(value) => {
                        let type_ = value.type_.clone();
                        (Arg::Struct(value), type_)
                    }
                    Value::Pure(_) => {
                        return Err(Failure::arg(index, CommandArgumentError::TypeMismatch));
                    }
                };
                if !kind.matches(&self.package, &type_) {
                    return Err(Failure::arg(index, CommandArgumentError::TypeMismatch));
                }
                if place == Place::Gas && usage == Usage::Val {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::InvalidGasCoinUsage,
                    ));
                }
                if kind == Kind::Clock && usage != Usage::Ref {
                    return Err(Failure::arg(
                        index,
                        CommandArgumentError::InvalidObjectByMutRef,
                    ));
                }
                self.check_usage(place, usage, index)?;
                return Ok((arg, Some(usage)));
            }
        };
        Ok((arg, None))
    }
}

fn uleb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
