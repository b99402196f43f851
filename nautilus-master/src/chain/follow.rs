//! Wires a `daas_chain` checkpoint follower to the chain-backed view and the token cache.

use std::sync::Arc;

use daas_chain::follow::{FollowEvent, Follower};
use daas_chain::{Chain, ChainError};
use daas_seal::Address;

use super::ChainStakeView;
use crate::auth::SealAuthenticator;

/// Runs `follower` until it fails, evicting from `view` and `auth` what each checkpoint
/// changes. `cluster` is the cluster object id: a change to it drops every cached verdict
/// (role minimums may have risen).
pub async fn run<C: Chain>(
    follower: Follower,
    cluster: Address,
    view: Arc<ChainStakeView<C>>,
    auth: Arc<SealAuthenticator<Arc<ChainStakeView<C>>>>,
) -> Result<(), ChainError> {
    follower
        .run(move |event| {
            match event {
                FollowEvent::Connected | FollowEvent::Disconnected(_) => {
                    view.evict_all();
                    auth.evict_all();
                }
                FollowEvent::Checkpoint(changes) => {
                    if changes.objects.contains(&cluster) {
                        view.evict_cluster();
                        auth.evict_all();
                    }
                    for id in &changes.objects {
                        view.evict(id);
                        if auth.evict_stake(id) > 0 {
                            tracing::info!(target: "audit", stake = %id, checkpoint = changes.sequence, "stake record changed on chain; cached tokens evicted");
                        }
                    }
                }
            }
            Ok(())
        })
        .await
}
