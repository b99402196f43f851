//! What one transaction's execution has done so far: new object ids, transfers, deletions,
//! dynamic-field writes and events. Discarded as a whole when execution fails.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sui_sdk_types::{Address, Digest, Event, Object, Owner, StructTag};

use crate::exec::Failure;
use crate::state::Ledger;

/// A Move object value inside the interpreter: its id, type and BCS contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjVal {
    pub(crate) id: Address,
    pub(crate) type_: StructTag,
    pub(crate) contents: Vec<u8>,
}

impl ObjVal {
    /// Encodes `value` (whose first field must be the id) as an object of type `type_`.
    pub(crate) fn new<T: Serialize>(
        id: Address,
        type_: StructTag,
        value: &T,
    ) -> Result<ObjVal, Failure> {
        let contents =
            bcs::to_bytes(value).map_err(|e| Failure::invariant(format!("encode {type_}: {e}")))?;
        Ok(ObjVal {
            id,
            type_,
            contents,
        })
    }

    /// The struct value of a stored object (packages have none).
    pub(crate) fn from_object(object: &Object) -> Option<ObjVal> {
        object.as_struct().map(|s| ObjVal {
            id: object.object_id(),
            type_: s.object_type().clone(),
            contents: s.contents().to_vec(),
        })
    }

    /// Decodes the contents as `T` (a layout from `daas_chain_types`).
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        bcs::from_bytes(&self.contents)
            .map_err(|e| Failure::invariant(format!("decode {}: {e}", self.type_)))
    }

    /// Replaces the contents with `value`.
    pub(crate) fn store<T: Serialize>(&mut self, value: &T) -> Result<(), Failure> {
        self.contents = bcs::to_bytes(value)
            .map_err(|e| Failure::invariant(format!("encode {}: {e}", self.type_)))?;
        Ok(())
    }
}

/// A struct value that is not an object (no `key`), with `drop`: its type and BCS contents.
/// Only `0x2::nitro_attestation::NitroAttestationDocument` on the devnet; it lives within one
/// PTB and may stay unused at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StructVal {
    pub(crate) type_: StructTag,
    pub(crate) contents: Vec<u8>,
}

impl StructVal {
    /// Encodes `value` as a struct of type `type_`.
    pub(crate) fn new<T: Serialize>(type_: StructTag, value: &T) -> Result<StructVal, Failure> {
        let contents =
            bcs::to_bytes(value).map_err(|e| Failure::invariant(format!("encode {type_}: {e}")))?;
        Ok(StructVal { type_, contents })
    }

    /// Decodes the contents as `T`.
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        bcs::from_bytes(&self.contents)
            .map_err(|e| Failure::invariant(format!("decode {}: {e}", self.type_)))
    }
}

/// A value held by the PTB interpreter: pure BCS bytes (typed at use), an object, or a
/// droppable non-object struct.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Pure(Vec<u8>),
    Object(ObjVal),
    Struct(StructVal),
}

/// Side effects of one transaction, applied only if it succeeds.
pub(crate) struct Runtime<'l> {
    ledger: &'l Ledger,
    tx_digest: Digest,
    ids_created: u64,
    /// Objects that end the transaction with a (possibly new) owner, by id.
    pub(crate) transferred: BTreeMap<Address, (ObjVal, Owner)>,
    /// Objects whose UID was deleted.
    pub(crate) deleted: BTreeSet<Address>,
    /// Dynamic-field objects written (`Some`) or removed (`None`), by id.
    pub(crate) children: BTreeMap<Address, Option<(ObjVal, Address)>>,
    pub(crate) events: Vec<Event>,
}

impl<'l> Runtime<'l> {
    pub(crate) fn new(ledger: &'l Ledger, tx_digest: Digest) -> Runtime<'l> {
        Runtime {
            ledger,
            tx_digest,
            ids_created: 0,
            transferred: BTreeMap::new(),
            deleted: BTreeSet::new(),
            children: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// `object::new(ctx)`: the next id derived from the transaction digest.
    pub(crate) fn fresh_id(&mut self) -> Address {
        let id = Address::derive_id(self.tx_digest, self.ids_created);
        self.ids_created += 1;
        id
    }

    /// `transfer::transfer` / `public_transfer`: the object ends the transaction owned by `owner`.
    pub(crate) fn transfer(&mut self, object: ObjVal, owner: Owner) {
        self.transferred.insert(object.id, (object, owner));
    }

    /// `object::delete`: the object's UID is deleted (coins consumed into balances, records
    /// destroyed, merged coins).
    pub(crate) fn delete(&mut self, id: Address) {
        self.transferred.remove(&id);
        self.deleted.insert(id);
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Whether the dynamic-field object `id` exists, seen from inside this transaction.
    pub(crate) fn child_exists(&self, id: &Address) -> bool {
        match self.children.get(id) {
            Some(entry) => entry.is_some(),
            None => self.ledger.object(id).is_some(),
        }
    }

    /// The dynamic-field object `id` as seen from inside this transaction, if it exists.
    pub(crate) fn child(&self, id: &Address) -> Option<ObjVal> {
        match self.children.get(id) {
            Some(entry) => entry.as_ref().map(|(object, _)| object.clone()),
            None => self.ledger.object(id).and_then(ObjVal::from_object),
        }
    }

    /// Adds (or replaces) the dynamic-field object `child`, owned by the object `parent`.
    pub(crate) fn write_child(&mut self, parent: Address, child: ObjVal) {
        self.children.insert(child.id, Some((child, parent)));
    }

    /// Removes the dynamic-field object `id`.
    pub(crate) fn remove_child(&mut self, id: Address) {
        self.children.insert(id, None);
    }
}
