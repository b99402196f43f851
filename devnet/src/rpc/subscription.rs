//! `sui.rpc.v2.SubscriptionService.SubscribeCheckpoints`: the latest checkpoint first, then
//! every new checkpoint in order and without gaps (`cursor` = sequence number).

use std::sync::Arc;

use sui_rpc::field::FieldMaskTree;
use sui_rpc::proto::sui::rpc::v2 as proto;
use tokio::sync::watch;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::{Rpc, convert, read_mask};
use crate::node::Node;

const CHECKPOINT_DEFAULT_MASK: &str = "sequence_number,digest";

struct Subscriber {
    node: Arc<Node>,
    mask: FieldMaskTree,
    next: u64,
    tip: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
}

impl Subscriber {
    /// The next frame, waiting for a new checkpoint if needed; `None` when the server stops.
    async fn next_frame(&mut self) -> Option<proto::SubscribeCheckpointsResponse> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            let tip = *self.tip.borrow_and_update();
            if self.next <= tip {
                let seq = self.next;
                let checkpoint = {
                    let ledger = self.node.read();
                    let record = ledger.checkpoint(seq)?;
                    convert::checkpoint_masked(&ledger, record, &self.mask)
                };
                self.next += 1;
                let mut frame = proto::SubscribeCheckpointsResponse::default();
                frame.cursor = Some(seq);
                frame.checkpoint = Some(checkpoint);
                return Some(frame);
            }
            tokio::select! {
                changed = self.tip.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.stopping.changed() => return None,
            }
        }
    }
}

#[tonic::async_trait]
impl proto::subscription_service_server::SubscriptionService for Rpc {
    async fn subscribe_checkpoints(
        &self,
        request: Request<proto::SubscribeCheckpointsRequest>,
    ) -> Result<Response<BoxStream<proto::SubscribeCheckpointsResponse>>, Status> {
        let request = request.into_inner();
        if request.filter.is_some() {
            return Err(Status::unimplemented(
                "checkpoint filters are not supported by the devnet",
            ));
        }
        let mask =
            read_mask::<proto::Checkpoint>(request.read_mask.as_ref(), CHECKPOINT_DEFAULT_MASK)?;
        let mut tip = self.node.subscribe_tip();
        // A subscription begins at the latest executed checkpoint.
        let start = *tip.borrow_and_update();
        let subscriber = Subscriber {
            node: self.node.clone(),
            mask,
            next: start,
            tip,
            stopping: self.node.subscribe_stopping(),
        };
        let stream = futures_util::stream::unfold(subscriber, |mut s| async move {
            s.next_frame().await.map(|frame| (Ok(frame), s))
        });
        let ledger = self.node.read();
        Ok(self.respond(&ledger, Box::pin(stream) as BoxStream<_>))
    }
}
