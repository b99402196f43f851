//! `sui.rpc.v2.TransactionExecutionService.ExecuteTransaction`.

use sui_rpc::merge::Merge;
use sui_rpc::proto::sui::rpc::v2 as proto;
use tonic::{Request, Response, Status};

use super::{Rpc, convert, read_mask};

const EXECUTED_DEFAULT_MASK: &str = "effects.status,checkpoint";

#[tonic::async_trait]
impl proto::transaction_execution_service_server::TransactionExecutionService for Rpc {
    async fn execute_transaction(
        &self,
        request: Request<proto::ExecuteTransactionRequest>,
    ) -> Result<Response<proto::ExecuteTransactionResponse>, Status> {
        let request = request.into_inner();
        let mask = read_mask::<proto::ExecutedTransaction>(
            request.read_mask.as_ref(),
            EXECUTED_DEFAULT_MASK,
        )?;
        let transaction = request
            .transaction
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("missing transaction"))?;
        let transaction = sui_sdk_types::Transaction::try_from(transaction)
            .map_err(|e| Status::invalid_argument(format!("invalid transaction: {e}")))?;
        let signatures = request
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                sui_sdk_types::UserSignature::try_from(s)
                    .map_err(|e| Status::invalid_argument(format!("invalid signature #{i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let digest = self
            .node
            .execute(transaction, signatures)
            .await
            .map_err(|r| Status::new(r.code, r.message))?;

        let ledger = self.node.read();
        let record = ledger
            .transaction(&digest)
            .ok_or_else(|| Status::internal("executed transaction not found"))?;
        let full =
            convert::executed_transaction(record, convert::transaction_index(&ledger, record));
        let mut response = proto::ExecuteTransactionResponse::default();
        response.transaction = Some(proto::ExecutedTransaction::merge_from(&full, &mask));
        Ok(self.respond(&ledger, response))
    }
}
