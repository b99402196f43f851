//! Decoding an executed transaction: status, Move aborts, changed objects, package events.

use daas_chain_types::{Package, PackageAbort, PackageEvent};
use sui_rpc::proto::sui::rpc::v2::{self as proto, changed_object::IdOperation, execution_error};
use sui_sdk_types::{Address, Digest, StructTag};

use crate::{ChainError, ObjectRef};

/// How an executed transaction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A Move abort; `known` is set when the package defines the code.
    Aborted(PackageAbort),
    /// Any other execution failure (kind and description as the node reported them).
    Failed(String),
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectChange {
    Created,
    Mutated,
    Deleted,
}

/// One entry of `effects.changed_objects`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedObject {
    pub id: Address,
    pub change: ObjectChange,
    /// The new version and digest; `None` when deleted.
    pub output: Option<ObjectRef>,
    /// The new owner's address when address-owned.
    pub owner: Option<Address>,
    pub object_type: Option<StructTag>,
}

/// An executed transaction, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    pub digest: Digest,
    pub checkpoint: Option<u64>,
    pub status: Status,
    pub changed: Vec<ChangedObject>,
    /// Events of the configured package, in emission order (other packages' events are skipped).
    pub events: Vec<PackageEvent>,
    /// Gas paid, net of storage rebate (MIST; negative is a net rebate).
    pub net_gas_mist: i128,
}

impl Executed {
    /// `Ok(self)` if the transaction succeeded, the failure as an error otherwise.
    pub fn into_result(self) -> Result<Executed, ChainError> {
        match &self.status {
            Status::Success => Ok(self),
            Status::Aborted(a) => Err(ChainError::Aborted(a.clone())),
            Status::Failed(f) => Err(ChainError::ExecutionFailed(f.clone())),
        }
    }

    /// Objects of type `ty` this transaction created.
    pub fn created_of_type<'a>(
        &'a self,
        ty: &'a StructTag,
    ) -> impl Iterator<Item = &'a ChangedObject> + 'a {
        self.changed.iter().filter(move |c| {
            c.change == ObjectChange::Created && c.object_type.as_ref() == Some(ty)
        })
    }

    /// The new reference of object `id`, if this transaction wrote it.
    pub fn output_of(&self, id: &Address) -> Option<ObjectRef> {
        self.changed
            .iter()
            .find(|c| &c.id == id)
            .and_then(|c| c.output)
    }

    /// Decodes `tx` (read mask `digest,checkpoint,effects,events`).
    pub fn decode(
        package: &Package,
        tx: &proto::ExecutedTransaction,
    ) -> Result<Executed, ChainError> {
        let digest: Digest = tx
            .digest
            .as_deref()
            .ok_or_else(|| ChainError::decode("executed transaction", "no digest"))?
            .parse()
            .map_err(|e| ChainError::decode("transaction digest", e))?;
        let effects = tx
            .effects
            .as_ref()
            .ok_or_else(|| ChainError::decode("executed transaction", "no effects"))?;
        let status = decode_status(package, effects.status.as_ref())?;
        let changed = effects
            .changed_objects
            .iter()
            .map(decode_changed)
            .collect::<Result<Vec<_>, _>>()?;
        let mut events = Vec::new();
        for ev in tx.events.iter().flat_map(|e| e.events.iter()) {
            if let Some(decoded) = decode_event(package, ev)? {
                events.push(decoded);
            }
        }
        let net_gas_mist = effects.gas_used.as_ref().map_or(0, |g| {
            i128::from(g.computation_cost.unwrap_or(0)) + i128::from(g.storage_cost.unwrap_or(0))
                - i128::from(g.storage_rebate.unwrap_or(0))
        });
        Ok(Executed {
            digest,
            checkpoint: tx.checkpoint,
            status,
            changed,
            events,
            net_gas_mist,
        })
    }
}

fn decode_status(
    package: &Package,
    status: Option<&proto::ExecutionStatus>,
) -> Result<Status, ChainError> {
    let status = status.ok_or_else(|| ChainError::decode("effects", "no status"))?;
    if status.success == Some(true) {
        return Ok(Status::Success);
    }
    let Some(error) = status.error.as_ref() else {
        return Ok(Status::Failed("failed without an error description".into()));
    };
    if let Some(execution_error::ErrorDetails::Abort(abort)) = &error.error_details
        && let Some(location) = &abort.location
    {
        let ours = location
            .package
            .as_deref()
            .and_then(|p| p.parse::<Address>().ok())
            == Some(package.id);
        let module = location.module.as_deref().unwrap_or("?");
        let code = abort.abort_code.unwrap_or(0);
        if ours {
            return Ok(Status::Aborted(PackageAbort::from_location(
                module,
                location.function_name.as_deref(),
                code,
            )));
        }
        return Ok(Status::Failed(format!(
            "Move abort {code} in {}::{module}",
            location.package.as_deref().unwrap_or("?")
        )));
    }
    Ok(Status::Failed(format!(
        "{}: {}",
        error.kind().as_str_name(),
        error.description.as_deref().unwrap_or("no description")
    )))
}

fn parse_address(what: &str, s: Option<&str>) -> Result<Address, ChainError> {
    s.ok_or_else(|| ChainError::decode(what, "missing"))?
        .parse()
        .map_err(|e| ChainError::decode(what, e))
}

fn decode_changed(c: &proto::ChangedObject) -> Result<ChangedObject, ChainError> {
    let id = parse_address("changed object id", c.object_id.as_deref())?;
    let change = match c.id_operation() {
        IdOperation::Created => ObjectChange::Created,
        IdOperation::Deleted => ObjectChange::Deleted,
        _ => ObjectChange::Mutated,
    };
    let output = match (change, c.output_version, c.output_digest.as_deref()) {
        (ObjectChange::Deleted, _, _) | (_, None, _) | (_, _, None) => None,
        (_, Some(version), Some(digest)) => Some(ObjectRef {
            id,
            version,
            digest: digest
                .parse()
                .map_err(|e| ChainError::decode("changed object digest", e))?,
        }),
    };
    let owner = c
        .output_owner
        .as_ref()
        .filter(|o| o.kind() == proto::owner::OwnerKind::Address)
        .and_then(|o| o.address.as_deref())
        .and_then(|a| a.parse().ok());
    let object_type = c.object_type.as_deref().and_then(|t| t.parse().ok());
    Ok(ChangedObject {
        id,
        change,
        output,
        owner,
        object_type,
    })
}

/// Decodes one event if it is the package's; `Ok(None)` for other packages' events.
pub fn decode_event(
    package: &Package,
    ev: &proto::Event,
) -> Result<Option<PackageEvent>, ChainError> {
    let Some(ty) = ev.event_type.as_deref() else {
        return Err(ChainError::decode("event", "no type"));
    };
    let ty: StructTag = ty
        .parse()
        .map_err(|e| ChainError::decode("event type", e))?;
    if *ty.address() != package.id {
        return Ok(None);
    }
    let contents = ev
        .contents
        .as_ref()
        .and_then(|b| b.value.as_deref())
        .ok_or_else(|| ChainError::decode("event", "no contents"))?;
    PackageEvent::decode(package, &ty, contents)
        .map(Some)
        .map_err(|e| ChainError::decode("event", e))
}
