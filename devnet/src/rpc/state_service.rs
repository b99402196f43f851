//! `sui.rpc.v2.StateService`: owned objects, balances and dynamic fields.

use std::collections::BTreeMap;

use sui_rpc::field::FieldMaskTree;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::{Address, Object, StructTag, TypeTag};
use tonic::{Request, Response, Status};

use super::{Rpc, convert, parse_address, read_mask};
use crate::exec::validate::coin_value;

const OWNED_DEFAULT_MASK: &str = "object_id,version,object_type";
const DYNAMIC_FIELD_DEFAULT_MASK: &str = "parent,field_id";
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1_000;

fn page_size(requested: Option<u32>) -> usize {
    let size = match requested {
        None | Some(0) => DEFAULT_PAGE_SIZE,
        Some(n) => n.min(MAX_PAGE_SIZE),
    };
    size as usize
}

/// Page tokens are the last returned object id: the next page starts after it.
fn page_start(token: Option<&[u8]>) -> Result<Option<Address>, Status> {
    token
        .map(|t| Address::from_bytes(t).map_err(|_| Status::invalid_argument("invalid page_token")))
        .transpose()
}

/// Does `tag` match the `object_type` filter? Without type parameters the filter matches every
/// instantiation (`0x2::coin::Coin` matches all coins), as on Sui.
fn type_matches(filter: &StructTag, tag: &StructTag) -> bool {
    if filter.type_params().is_empty() {
        filter.address() == tag.address()
            && filter.module() == tag.module()
            && filter.name() == tag.name()
    } else {
        filter == tag
    }
}

/// Paginates `objects` (in id order) after `start`.
fn paginate<'a>(
    objects: impl Iterator<Item = &'a Object>,
    start: Option<Address>,
    size: usize,
) -> (Vec<&'a Object>, Option<prost::bytes::Bytes>) {
    let mut page: Vec<&Object> = objects
        .filter(|o| start.is_none_or(|s| o.object_id() > s))
        .take(size + 1)
        .collect();
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|o| prost::bytes::Bytes::copy_from_slice(o.object_id().as_bytes()))
    } else {
        None
    };
    (page, next)
}

fn coin_type_of(object: &Object) -> Option<(&TypeTag, u64)> {
    let s = object.as_struct()?;
    Some((s.object_type().is_coin()?, coin_value(s.contents())?))
}

fn balance(coin_type: &TypeTag, total: u64) -> proto::Balance {
    let mut b = proto::Balance::default();
    b.coin_type = Some(coin_type.to_string());
    b.balance = Some(total);
    b.coin_balance = Some(total);
    b.address_balance = Some(0);
    b
}

/// Splits `Field<K, V>` contents into the BCS of the name and of the value, for fixed-size
/// name types (the devnet's tables are keyed by `ID` or `address`).
fn split_field(tag: &StructTag, contents: &[u8]) -> Option<(TypeTag, Vec<u8>, TypeTag, Vec<u8>)> {
    let [key, value] = tag.type_params() else {
        return None;
    };
    let key_len = match key {
        TypeTag::Address => 32,
        TypeTag::Bool | TypeTag::U8 => 1,
        TypeTag::U64 => 8,
        TypeTag::Struct(s)
            if s.address() == &Address::TWO && s.module() == "object" && s.name() == "ID" =>
        {
            32
        }
        _ => return None,
    };
    let rest = contents.get(32..)?;
    let name = rest.get(..key_len)?.to_vec();
    let value_bytes = rest.get(key_len..)?.to_vec();
    Some((key.clone(), name, value.clone(), value_bytes))
}

fn dynamic_field(object: &Object, parent: Address, mask: &FieldMaskTree) -> proto::DynamicField {
    let mut field = proto::DynamicField::default();
    field.set_kind(proto::dynamic_field::DynamicFieldKind::Field);
    if mask.contains("parent") {
        field.parent = Some(parent.to_string());
    }
    if mask.contains("field_id") {
        field.field_id = Some(object.object_id().to_string());
    }
    if let Some(submask) = mask.subtree("field_object") {
        field.field_object = Some(convert::object_masked(object, &submask));
    }
    if let Some(s) = object.as_struct()
        && let Some((key_type, name, value_type, value)) =
            split_field(s.object_type(), s.contents())
    {
        if mask.contains("name") {
            let mut bcs = proto::Bcs::from(name);
            bcs.name = Some(key_type.to_string());
            field.name = Some(bcs);
        }
        if mask.contains("value") {
            let mut bcs = proto::Bcs::from(value);
            bcs.name = Some(value_type.to_string());
            field.value = Some(bcs);
        }
        if mask.contains("value_type") {
            field.value_type = Some(value_type.to_string());
        }
    }
    field
}

#[tonic::async_trait]
impl proto::state_service_server::StateService for Rpc {
    async fn list_owned_objects(
        &self,
        request: Request<proto::ListOwnedObjectsRequest>,
    ) -> Result<Response<proto::ListOwnedObjectsResponse>, Status> {
        let request = request.into_inner();
        let owner = parse_address("owner", request.owner.as_deref())?;
        let mask = read_mask::<proto::Object>(request.read_mask.as_ref(), OWNED_DEFAULT_MASK)?;
        let filter = request
            .object_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<StructTag>().map_err(|_| {
                    Status::invalid_argument(format!("object_type {t:?} is not a Move struct type"))
                })
            })
            .transpose()?;
        let start = page_start(request.page_token.as_deref())?;
        let ledger = self.node.read();
        let owned = ledger
            .owned_by(&owner)
            .filter(|o| match (&filter, o.as_struct()) {
                (None, _) => true,
                (Some(f), Some(s)) => type_matches(f, s.object_type()),
                (Some(_), None) => false,
            });
        let (page, next) = paginate(owned, start, page_size(request.page_size));
        let mut response = proto::ListOwnedObjectsResponse::default();
        response.objects = page
            .into_iter()
            .map(|o| convert::object_masked(o, &mask))
            .collect();
        response.next_page_token = next;
        Ok(self.respond(&ledger, response))
    }

    async fn get_balance(
        &self,
        request: Request<proto::GetBalanceRequest>,
    ) -> Result<Response<proto::GetBalanceResponse>, Status> {
        let request = request.into_inner();
        let owner = parse_address("owner", request.owner.as_deref())?;
        let coin_type: TypeTag = match request.coin_type.as_deref().filter(|t| !t.is_empty()) {
            None => TypeTag::Struct(Box::new(StructTag::sui())),
            Some(t) => t.parse().map_err(|_| {
                Status::invalid_argument(format!("coin_type {t:?} is not a Move type"))
            })?,
        };
        let ledger = self.node.read();
        let total = ledger
            .owned_by(&owner)
            .filter_map(coin_type_of)
            .filter(|(t, _)| **t == coin_type)
            .fold(0u64, |acc, (_, v)| acc.saturating_add(v));
        let mut response = proto::GetBalanceResponse::default();
        response.balance = Some(balance(&coin_type, total));
        Ok(self.respond(&ledger, response))
    }

    async fn list_balances(
        &self,
        request: Request<proto::ListBalancesRequest>,
    ) -> Result<Response<proto::ListBalancesResponse>, Status> {
        let request = request.into_inner();
        let owner = parse_address("owner", request.owner.as_deref())?;
        let ledger = self.node.read();
        let mut totals: BTreeMap<String, (TypeTag, u64)> = BTreeMap::new();
        for (t, v) in ledger.owned_by(&owner).filter_map(coin_type_of) {
            let entry = totals.entry(t.to_string()).or_insert((t.clone(), 0));
            entry.1 = entry.1.saturating_add(v);
        }
        let skip = match request.page_token.as_deref() {
            None => 0,
            Some(t) => {
                let bytes: [u8; 8] = t
                    .try_into()
                    .map_err(|_| Status::invalid_argument("invalid page_token"))?;
                usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX)
            }
        };
        let size = page_size(request.page_size);
        let mut response = proto::ListBalancesResponse::default();
        response.balances = totals
            .values()
            .skip(skip)
            .take(size)
            .map(|(t, v)| balance(t, *v))
            .collect();
        if skip + size < totals.len() {
            response.next_page_token = Some(prost::bytes::Bytes::copy_from_slice(
                &((skip + size) as u64).to_be_bytes(),
            ));
        }
        Ok(self.respond(&ledger, response))
    }

    async fn list_dynamic_fields(
        &self,
        request: Request<proto::ListDynamicFieldsRequest>,
    ) -> Result<Response<proto::ListDynamicFieldsResponse>, Status> {
        let request = request.into_inner();
        let parent = parse_address("parent", request.parent.as_deref())?;
        let mask = read_mask::<proto::DynamicField>(
            request.read_mask.as_ref(),
            DYNAMIC_FIELD_DEFAULT_MASK,
        )?;
        let start = page_start(request.page_token.as_deref())?;
        let ledger = self.node.read();
        let (page, next) = paginate(
            ledger.children_of(&parent),
            start,
            page_size(request.page_size),
        );
        let mut response = proto::ListDynamicFieldsResponse::default();
        response.dynamic_fields = page
            .into_iter()
            .map(|o| dynamic_field(o, parent, &mask))
            .collect();
        response.next_page_token = next;
        Ok(self.respond(&ledger, response))
    }
}
