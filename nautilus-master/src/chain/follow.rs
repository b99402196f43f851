//! Wires a `daas_chain` checkpoint follower to the chain-backed view and the token cache.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use daas_chain::follow::{CursorFile, FollowEvent, Follower, FollowerStatus};
use daas_chain::{Chain, ChainError, GrpcChain};
use daas_chain_types::PackageEvent;
use daas_seal::Address;

use super::ChainStakeView;
use crate::auth::{AuthConfig, SealAuthenticator};

/// The authenticator production and `dev` use: Seal tokens against the chain-backed view.
pub type ChainAuthenticator = SealAuthenticator<Arc<ChainStakeView<GrpcChain>>>;

/// Builds the chain-backed view and authenticator for `chain`'s cluster, and the follower that
/// keeps them current (cursor persisted in `cursor`; `stale_after` of silence counts as a lost
/// stream). Spawn the returned future: until it streams, the view reads straight from the
/// chain and reports itself not fresh.
pub fn following(
    chain: GrpcChain,
    cursor: impl Into<PathBuf>,
    stale_after: std::time::Duration,
) -> (
    Arc<ChainAuthenticator>,
    Arc<FollowerStatus>,
    impl Future<Output = Result<(), ChainError>> + Send + 'static,
) {
    let cluster = chain.config().cluster;
    let follower = Follower::new(
        chain.rpc_client(),
        *chain.package(),
        CursorFile::new(cursor.into()),
    )
    .with_stale_after(stale_after);
    let status = follower.status();
    let view = Arc::new(ChainStakeView::new(chain, cluster, Some(status.clone())));
    let auth = Arc::new(SealAuthenticator::new(
        AuthConfig::new(cluster),
        view.clone(),
    ));
    let task = run(follower, cluster, view, auth.clone());
    (auth, status, task)
}

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
                        // Any `&mut Cluster` transaction writes it (even one that aborts), so
                        // re-read the snapshot and records — cheap — but drop every cached
                        // verdict only when a rule tokens depend on changed.
                        view.evict_all();
                    }
                    let rules_changed = changes.events.iter().any(|e| {
                        e.cluster_id() == cluster
                            && matches!(
                                e,
                                PackageEvent::RoleMinimumChanged(_)
                                    | PackageEvent::ClusterMigrated(_)
                            )
                    });
                    if rules_changed {
                        auth.evict_all();
                        tracing::info!(target: "audit", checkpoint = changes.sequence, "cluster rules changed on chain; every cached token evicted");
                    }
                    for id in &changes.objects {
                        view.evict_at(id, changes.versions.get(id).copied());
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
