//! The gRPC services (sui-rpc's generated tonic server traits), one file per service, plus
//! the shared pieces: read masks, response headers and proto conversions.

mod convert;
mod execution;
mod ledger;
mod list;
mod state_service;
mod subscription;

use std::sync::Arc;

use prost_types::FieldMask;
use sui_rpc::field::{FieldMaskTree, FieldMaskUtil, MessageFields};
use sui_rpc::proto::sui::rpc::v2 as proto;
use tonic::metadata::MetadataValue;
use tonic::{Response, Status};

use crate::node::Node;
use crate::state::Ledger;

pub(crate) use proto::ledger_service_server::LedgerServiceServer;
pub(crate) use proto::state_service_server::StateServiceServer;
pub(crate) use proto::subscription_service_server::SubscriptionServiceServer;
pub(crate) use proto::transaction_execution_service_server::TransactionExecutionServiceServer;

/// Name reported as `GetServiceInfo.chain` and `x-sui-chain`.
pub const CHAIN_NAME: &str = "k3s-daas-devnet";

/// Implements every service on one shared node.
#[derive(Clone)]
pub(crate) struct Rpc {
    node: Arc<Node>,
}

impl Rpc {
    pub(crate) fn new(node: Arc<Node>) -> Rpc {
        Rpc { node }
    }

    /// Wraps `message` in a response carrying the `x-sui-*` chain headers, as Sui nodes send.
    fn respond<T>(&self, ledger: &Ledger, message: T) -> Response<T> {
        let mut response = Response::new(message);
        add_chain_headers(ledger, response.metadata_mut());
        response
    }

    /// `status` with the same `x-sui-*` headers: a Sui node adds them to every answer, errors
    /// included, so a client can tell how current a `NotFound` is.
    fn fail(&self, ledger: &Ledger, mut status: Status) -> Status {
        add_chain_headers(ledger, status.metadata_mut());
        status
    }
}

fn add_chain_headers(ledger: &Ledger, metadata: &mut tonic::metadata::MetadataMap) {
    let tip = ledger.latest_checkpoint();
    let mut put = |key: &'static str, value: String| {
        if let Ok(v) = MetadataValue::try_from(value.as_str()) {
            metadata.insert(key, v);
        }
    };
    put(
        sui_rpc::headers::X_SUI_CHAIN_ID,
        ledger.chain_id().to_owned(),
    );
    put(sui_rpc::headers::X_SUI_CHAIN, CHAIN_NAME.to_owned());
    put(sui_rpc::headers::X_SUI_EPOCH, "0".to_owned());
    put(
        sui_rpc::headers::X_SUI_CHECKPOINT_HEIGHT,
        tip.summary.sequence_number.to_string(),
    );
    put(
        sui_rpc::headers::X_SUI_TIMESTAMP_MS,
        tip.summary.timestamp_ms.to_string(),
    );
    put(
        sui_rpc::headers::X_SUI_LOWEST_AVAILABLE_CHECKPOINT,
        "0".to_owned(),
    );
    put(
        sui_rpc::headers::X_SUI_LOWEST_AVAILABLE_CHECKPOINT_OBJECTS,
        "0".to_owned(),
    );
}

/// The request's read mask (or `default` when absent or empty), validated against `M`.
fn read_mask<M: MessageFields>(
    mask: Option<&FieldMask>,
    default: &str,
) -> Result<FieldMaskTree, Status> {
    let mask = match mask {
        Some(m) if !m.paths.is_empty() => m.clone(),
        _ => FieldMask::from_str(default),
    };
    mask.validate::<M>()
        .map_err(|path| Status::invalid_argument(format!("invalid read_mask path {path:?}")))?;
    Ok(FieldMaskTree::from_field_mask(&mask))
}

fn parse_address(field: &str, value: Option<&str>) -> Result<sui_sdk_types::Address, Status> {
    let value = value.ok_or_else(|| Status::invalid_argument(format!("missing {field}")))?;
    value
        .parse()
        .map_err(|_| Status::invalid_argument(format!("{field} {value:?} is not a Sui address")))
}

fn parse_digest(field: &str, value: Option<&str>) -> Result<sui_sdk_types::Digest, Status> {
    let value = value.ok_or_else(|| Status::invalid_argument(format!("missing {field}")))?;
    value
        .parse()
        .map_err(|_| Status::invalid_argument(format!("{field} {value:?} is not a base58 digest")))
}

/// A `google.rpc.Status` for per-item errors of batch calls.
fn rpc_status(status: &Status) -> sui_rpc::proto::google::rpc::Status {
    sui_rpc::proto::google::rpc::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        ..Default::default()
    }
}
