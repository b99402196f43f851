//! Full proto messages built from the ledger's records; handlers then project them through the
//! request's read mask with `sui_rpc::merge::Merge`.

use std::collections::BTreeMap;

use sui_rpc::field::FieldMaskTree;
use sui_rpc::merge::Merge;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::{Address, Object};

use crate::exec::validate::coin_value;
use crate::state::{CheckpointRecord, Ledger, TxRecord};

pub(crate) fn timestamp(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

/// Every field of `object`, including the node-computed `balance` of coins.
pub(crate) fn object(object: &Object) -> proto::Object {
    let mut message = proto::Object::from(object.clone());
    if let Some(s) = object.as_struct()
        && s.object_type().is_coin().is_some()
    {
        message.balance = coin_value(s.contents());
    }
    message
}

/// `object` projected through `mask`.
pub(crate) fn object_masked(o: &Object, mask: &FieldMaskTree) -> proto::Object {
    proto::Object::merge_from(&object(o), mask)
}

/// Every field of an executed transaction (`transaction_index` within its checkpoint).
pub(crate) fn executed_transaction(
    record: &TxRecord,
    transaction_index: u64,
) -> proto::ExecutedTransaction {
    let types: BTreeMap<Address, String> = record
        .input_objects
        .iter()
        .chain(&record.output_objects)
        .map(|o| {
            let ty = match o.as_struct() {
                Some(s) => s.object_type().to_string(),
                None => "package".to_owned(),
            };
            (o.object_id(), ty)
        })
        .collect();

    let mut effects = proto::TransactionEffects::from(record.effects.clone());
    for changed in effects
        .changed_objects
        .iter_mut()
        .chain(effects.gas_object.iter_mut())
    {
        changed.object_type = changed
            .object_id
            .as_deref()
            .and_then(|id| id.parse::<Address>().ok())
            .and_then(|id| types.get(&id).cloned());
    }
    if let (Some(description), Some(status)) = (&record.error_description, effects.status.as_mut())
        && let Some(error) = status.error.as_mut()
    {
        error.description = Some(description.clone());
    }

    let mut objects: Vec<&Object> = record
        .input_objects
        .iter()
        .chain(&record.output_objects)
        .collect();
    objects.sort_by_key(|o| (o.object_id(), o.version()));
    objects.dedup_by_key(|o| (o.object_id(), o.version()));
    let mut object_set = proto::ObjectSet::default();
    object_set.objects = objects.into_iter().map(object).collect();

    let mut message = proto::ExecutedTransaction::default();
    message.digest = Some(record.digest().to_string());
    message.transaction = Some(record.transaction.clone().into());
    message.signatures = record.signatures.iter().cloned().map(Into::into).collect();
    message.effects = Some(effects);
    message.events = record.events.clone().map(Into::into);
    message.checkpoint = Some(record.checkpoint);
    message.timestamp = Some(timestamp(record.timestamp_ms));
    message.balance_changes = record
        .balance_changes
        .iter()
        .cloned()
        .map(Into::into)
        .collect();
    message.objects = Some(object_set);
    message.transaction_index = Some(transaction_index);
    message
}

/// Position of a transaction inside its checkpoint.
pub(crate) fn transaction_index(ledger: &Ledger, record: &TxRecord) -> u64 {
    let digest = record.digest();
    ledger
        .checkpoint(record.checkpoint)
        .and_then(|c| {
            c.contents
                .transactions()
                .iter()
                .position(|t| *t.transaction() == digest)
        })
        .unwrap_or(0) as u64
}

/// Every field of a checkpoint (the devnet has no validators: no signature).
pub(crate) fn checkpoint(ledger: &Ledger, record: &CheckpointRecord) -> proto::Checkpoint {
    let wildcard = FieldMaskTree::new_wildcard();
    let mut message = proto::Checkpoint::default();
    message.merge(&record.summary, &wildcard);
    message.merge(record.contents.clone(), &wildcard);
    let transactions: Vec<&TxRecord> = ledger.checkpoint_transactions(record).collect();
    let mut objects: Vec<&Object> = transactions
        .iter()
        .flat_map(|t| t.input_objects.iter().chain(&t.output_objects))
        .collect();
    objects.sort_by_key(|o| (o.object_id(), o.version()));
    objects.dedup_by_key(|o| (o.object_id(), o.version()));
    let mut object_set = proto::ObjectSet::default();
    object_set.objects = objects.into_iter().map(object).collect();
    message.transactions = transactions
        .into_iter()
        .enumerate()
        .map(|(i, t)| executed_transaction(t, i as u64))
        .collect();
    message.objects = Some(object_set);
    message
}

/// `checkpoint` projected through `mask` (only the parts the mask asks for are built).
pub(crate) fn checkpoint_masked(
    ledger: &Ledger,
    record: &CheckpointRecord,
    mask: &FieldMaskTree,
) -> proto::Checkpoint {
    let heavy = mask.subtree("transactions").is_some() || mask.subtree("objects").is_some();
    if heavy {
        return proto::Checkpoint::merge_from(&checkpoint(ledger, record), mask);
    }
    let mut message = proto::Checkpoint::default();
    message.merge(&record.summary, mask);
    message.merge(record.contents.clone(), mask);
    message
}
