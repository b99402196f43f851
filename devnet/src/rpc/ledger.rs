//! `sui.rpc.v2.LedgerService`: service info, epochs, objects, transactions, checkpoints.

use sui_rpc::field::FieldMaskTree;
use sui_rpc::merge::Merge;
use sui_rpc::proto::sui::rpc::v2 as proto;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::{CHAIN_NAME, Rpc, parse_address, parse_digest, read_mask, rpc_status};
use crate::state::Ledger;

const OBJECT_DEFAULT_MASK: &str = "object_id,version,digest";
const TRANSACTION_DEFAULT_MASK: &str = "digest";
const CHECKPOINT_DEFAULT_MASK: &str = "sequence_number,digest";
/// A real node's default for GetEpoch (`sui-rpc-api` `get_epoch.rs`); SDKs that send no mask
/// (e.g. `@mysten/sui` 1.45 `core.getReferenceGasPrice`) rely on `reference_gas_price` in it.
const EPOCH_DEFAULT_MASK: &str = "epoch,first_checkpoint,last_checkpoint,start,end,reference_gas_price,protocol_config.protocol_version";

fn get_object(
    ledger: &Ledger,
    request: &proto::GetObjectRequest,
    mask: &FieldMaskTree,
) -> Result<proto::Object, Status> {
    let id = parse_address("object_id", request.object_id.as_deref())?;
    let object = match request.version {
        Some(version) => ledger.object_at(&id, version).ok_or_else(|| {
            Status::not_found(format!("object {id} at version {version} not found"))
        })?,
        None => ledger
            .object(&id)
            .ok_or_else(|| Status::not_found(format!("object {id} not found")))?,
    };
    Ok(convert::object_masked(object, mask))
}

fn get_transaction(
    ledger: &Ledger,
    digest: Option<&str>,
    mask: &FieldMaskTree,
) -> Result<proto::ExecutedTransaction, Status> {
    let digest = parse_digest("digest", digest)?;
    let record = ledger
        .transaction(&digest)
        .ok_or_else(|| Status::not_found(format!("transaction {digest} not found")))?;
    let full = convert::executed_transaction(record, convert::transaction_index(ledger, record));
    Ok(proto::ExecutedTransaction::merge_from(&full, mask))
}

#[tonic::async_trait]
impl proto::ledger_service_server::LedgerService for Rpc {
    async fn get_service_info(
        &self,
        _request: Request<proto::GetServiceInfoRequest>,
    ) -> Result<Response<proto::GetServiceInfoResponse>, Status> {
        let ledger = self.node.read();
        let tip = ledger.latest_checkpoint();
        let mut info = proto::GetServiceInfoResponse::default();
        info.chain_id = Some(ledger.chain_id().to_owned());
        info.chain = Some(CHAIN_NAME.to_owned());
        info.epoch = Some(0);
        info.checkpoint_height = Some(tip.summary.sequence_number);
        info.timestamp = Some(convert::timestamp(tip.summary.timestamp_ms));
        info.lowest_available_checkpoint = Some(0);
        info.lowest_available_checkpoint_objects = Some(0);
        info.server = Some(format!("k3s-daas-devnet/{}", env!("CARGO_PKG_VERSION")));
        Ok(self.respond(&ledger, info))
    }

    async fn get_object(
        &self,
        request: Request<proto::GetObjectRequest>,
    ) -> Result<Response<proto::GetObjectResponse>, Status> {
        let request = request.into_inner();
        let mask = read_mask::<proto::Object>(request.read_mask.as_ref(), OBJECT_DEFAULT_MASK)?;
        let ledger = self.node.read();
        let mut response = proto::GetObjectResponse::default();
        response.object =
            Some(get_object(&ledger, &request, &mask).map_err(|s| self.fail(&ledger, s))?);
        Ok(self.respond(&ledger, response))
    }

    async fn batch_get_objects(
        &self,
        request: Request<proto::BatchGetObjectsRequest>,
    ) -> Result<Response<proto::BatchGetObjectsResponse>, Status> {
        let request = request.into_inner();
        let mask = read_mask::<proto::Object>(request.read_mask.as_ref(), OBJECT_DEFAULT_MASK)?;
        let ledger = self.node.read();
        let mut response = proto::BatchGetObjectsResponse::default();
        for item in &request.requests {
            let mut result = proto::GetObjectResult::default();
            result.result = Some(match get_object(&ledger, item, &mask) {
                Ok(object) => proto::get_object_result::Result::Object(object),
                Err(status) => proto::get_object_result::Result::Error(rpc_status(&status)),
            });
            response.objects.push(result);
        }
        Ok(self.respond(&ledger, response))
    }

    async fn get_transaction(
        &self,
        request: Request<proto::GetTransactionRequest>,
    ) -> Result<Response<proto::GetTransactionResponse>, Status> {
        let request = request.into_inner();
        let mask = read_mask::<proto::ExecutedTransaction>(
            request.read_mask.as_ref(),
            TRANSACTION_DEFAULT_MASK,
        )?;
        let ledger = self.node.read();
        let mut response = proto::GetTransactionResponse::default();
        response.transaction = Some(get_transaction(&ledger, request.digest.as_deref(), &mask)?);
        Ok(self.respond(&ledger, response))
    }

    async fn batch_get_transactions(
        &self,
        request: Request<proto::BatchGetTransactionsRequest>,
    ) -> Result<Response<proto::BatchGetTransactionsResponse>, Status> {
        let request = request.into_inner();
        let mask = read_mask::<proto::ExecutedTransaction>(
            request.read_mask.as_ref(),
            TRANSACTION_DEFAULT_MASK,
        )?;
        let ledger = self.node.read();
        let mut response = proto::BatchGetTransactionsResponse::default();
        for digest in &request.digests {
            let mut result = proto::GetTransactionResult::default();
            result.result = Some(match get_transaction(&ledger, Some(digest), &mask) {
                Ok(t) => proto::get_transaction_result::Result::Transaction(t),
                Err(status) => proto::get_transaction_result::Result::Error(rpc_status(&status)),
            });
            response.transactions.push(result);
        }
        Ok(self.respond(&ledger, response))
    }

    async fn get_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::GetCheckpointResponse>, Status> {
        let request = request.into_inner();
        let mask =
            read_mask::<proto::Checkpoint>(request.read_mask.as_ref(), CHECKPOINT_DEFAULT_MASK)?;
        let ledger = self.node.read();
        let record = match &request.checkpoint_id {
            None => ledger.latest_checkpoint(),
            Some(proto::get_checkpoint_request::CheckpointId::SequenceNumber(seq)) => ledger
                .checkpoint(*seq)
                .ok_or_else(|| Status::not_found(format!("checkpoint {seq} not found")))?,
            Some(proto::get_checkpoint_request::CheckpointId::Digest(digest)) => {
                let digest = parse_digest("digest", Some(digest))?;
                ledger
                    .checkpoint_by_digest(&digest)
                    .ok_or_else(|| Status::not_found(format!("checkpoint {digest} not found")))?
            }
            Some(_) => return Err(Status::invalid_argument("unknown checkpoint_id")),
        };
        let mut response = proto::GetCheckpointResponse::default();
        response.checkpoint = Some(convert::checkpoint_masked(&ledger, record, &mask));
        Ok(self.respond(&ledger, response))
    }

    async fn get_epoch(
        &self,
        request: Request<proto::GetEpochRequest>,
    ) -> Result<Response<proto::GetEpochResponse>, Status> {
        let request = request.into_inner();
        if let Some(epoch) = request.epoch
            && epoch != 0
        {
            return Err(Status::not_found(format!(
                "epoch {epoch} not found: the devnet stays in epoch 0"
            )));
        }
        let mask = read_mask::<proto::Epoch>(request.read_mask.as_ref(), EPOCH_DEFAULT_MASK)?;
        let ledger = self.node.read();
        let mut epoch = proto::Epoch::default();
        epoch.epoch = Some(0);
        epoch.first_checkpoint = Some(0);
        epoch.start = Some(convert::timestamp(ledger.genesis_timestamp_ms()));
        epoch.reference_gas_price = Some(ledger.info().reference_gas_price);
        let mut response = proto::GetEpochResponse::default();
        response.epoch = Some(proto::Epoch::merge_from(&epoch, &mask));
        Ok(self.respond(&ledger, response))
    }

    async fn list_checkpoints(
        &self,
        request: Request<proto::ListCheckpointsRequest>,
    ) -> Result<Response<BoxStream<proto::ListCheckpointsResponse>>, Status> {
        let request = request.into_inner();
        if request.filter.is_some() {
            return Err(Status::unimplemented(
                "checkpoint filters are not supported by the devnet",
            ));
        }
        let mask =
            read_mask::<proto::Checkpoint>(request.read_mask.as_ref(), CHECKPOINT_DEFAULT_MASK)?;
        let ledger = self.node.read();
        let frames = super::list::list_checkpoints(&ledger, &request, &mask)?;
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok));
        Ok(self.respond(&ledger, Box::pin(stream) as BoxStream<_>))
    }
}
