//! Wires a `daas_chain` checkpoint follower to the chain-backed view, the token cache and the
//! live sessions.
//!
//! Per checkpoint: every changed record is evicted (view and tokens) and its live sessions are
//! re-checked; a `Slashed` event makes the record sticky-slashed in the view; a cluster write
//! drops only the cluster snapshot (anyone can write the cluster for gas), while a rule change
//! (role minimums, a migration) or an undecodable event drops every verdict and re-checks every
//! session. A (re)connect drops everything and re-checks every session; a lost stream starts
//! the sessions' grace period.

use std::future::Future;
use std::sync::Arc;

use daas_chain::follow::{FollowEvent, Follower, FollowerStatus};
use daas_chain::{Chain, ChainError, GrpcChain};
use daas_chain_types::PackageEvent;
use daas_seal::Address;

use super::ChainStakeView;
use crate::auth::{AuthConfig, Scope, SealAuthenticator};

/// The authenticator production and `dev` use: Seal tokens against the chain-backed view.
pub type ChainAuthenticator = SealAuthenticator<Arc<ChainStakeView<GrpcChain>>>;

/// Checks that `chain` is an endpoint the control plane may trust (its configuration pins the
/// chain id and uses TLS unless the endpoint is local; see
/// [`daas_chain::ChainConfig::check_for_control_plane`]), that it serves that chain, and says at
/// start which endpoint and chain it trusts.
pub async fn trust(chain: &GrpcChain) -> Result<(), ChainError> {
    chain.config().check_for_control_plane()?;
    let info = chain.check_chain().await?;
    tracing::info!(
        rpc = %chain.config().rpc,
        chain = %info.chain,
        chain_id = %info.chain_id,
        package = %chain.config().package,
        cluster = %chain.config().cluster,
        checkpoint = info.checkpoint_height,
        "trusting this chain endpoint for stake records (chain id pinned; every answer is checked against it)"
    );
    Ok(())
}

/// Checks that `chain` may be trusted ([`trust`]), then builds the chain-backed view and
/// authenticator for its cluster (`config`'s cluster id is replaced by the chain
/// configuration's), and the follower that keeps them current (`stale_after` of silence counts
/// as a lost stream). Spawn the returned future: until it streams, the view reads straight from
/// the chain and reports itself not fresh.
pub async fn following(
    chain: GrpcChain,
    config: AuthConfig,
    stale_after: std::time::Duration,
) -> Result<
    (
        Arc<ChainAuthenticator>,
        Arc<FollowerStatus>,
        impl Future<Output = Result<(), ChainError>> + Send + 'static,
    ),
    ChainError,
> {
    trust(&chain).await?;
    let cluster = chain.config().cluster;
    let follower =
        Follower::new(chain.rpc_client(), *chain.package()).with_stale_after(stale_after);
    let status = follower.status();
    let view = Arc::new(ChainStakeView::new(chain, cluster, Some(status.clone())));
    let auth = Arc::new(SealAuthenticator::new(
        AuthConfig { cluster, ..config },
        view.clone(),
    ));
    let task = run(follower, cluster, view, auth.clone());
    Ok((auth, status, task))
}

/// Runs `follower` until it fails, evicting from `view` and `auth` what each checkpoint
/// changes and re-checking the live sessions it concerns. `cluster` is the cluster object id.
pub async fn run<C: Chain + 'static>(
    follower: Follower,
    cluster: Address,
    view: Arc<ChainStakeView<C>>,
    auth: Arc<SealAuthenticator<Arc<ChainStakeView<C>>>>,
) -> Result<(), ChainError> {
    follower
        .run(move |event| {
            match event {
                FollowEvent::Connected => {
                    view.evict_all();
                    auth.evict_all();
                    auth.chain_regained();
                    view.notify_changed();
                }
                FollowEvent::Disconnected(_) => {
                    view.evict_all();
                    auth.evict_all();
                    auth.chain_lost();
                }
                FollowEvent::Checkpoint(changes) => {
                    let ours = |e: &&PackageEvent| e.cluster_id() == cluster;
                    for event in changes.events.iter().filter(ours) {
                        match event {
                            PackageEvent::Slashed(s) => view.mark_slashed(s.record_id),
                            PackageEvent::Withdrawn(w) => view.forget_record(&w.record_id),
                            // A grant concerns every record of its account: the view keeps no
                            // index by owner, so it forgets its records (admin-only, rare);
                            // tokens and sessions are found by owner.
                            PackageEvent::RoleGranted(g) => {
                                view.evict_records();
                                auth.evict_owner(&g.account);
                            }
                            PackageEvent::RoleRevoked(r) => {
                                view.evict_records();
                                if auth.evict_owner(&r.account) > 0 {
                                    tracing::info!(target: "audit", account = %r.account, role = r.role, checkpoint = changes.sequence, "role grant withdrawn on chain; the account's cached tokens evicted");
                                }
                                auth.revalidate(Scope::Owner(r.account));
                            }
                            _ => {}
                        }
                    }
                    if changes.objects.contains(&cluster) {
                        // Any `&mut Cluster` transaction writes it (even one that aborts):
                        // re-read the snapshot (role minimums, tables) — cheap, and nothing
                        // else cached depends on it.
                        view.evict_cluster();
                    }
                    let rules_changed = changes.undecodable > 0
                        || changes.events.iter().filter(ours).any(|e| {
                            matches!(
                                e,
                                PackageEvent::RoleMinimumChanged(_)
                                    | PackageEvent::ClusterMigrated(_)
                            )
                        });
                    if rules_changed {
                        view.evict_all();
                        auth.evict_all();
                        auth.revalidate(Scope::All);
                        tracing::info!(target: "audit", checkpoint = changes.sequence, undecodable = changes.undecodable, "cluster rules changed on chain (or an event could not be read); every cached token evicted, every live session re-checked");
                    }
                    for id in &changes.objects {
                        // Records the version floor of the cluster too (its snapshot is
                        // version-checked like records).
                        view.evict_at(id, changes.versions.get(id).copied());
                        if *id == cluster {
                            continue;
                        }
                        if auth.evict_stake(id) > 0 {
                            tracing::info!(target: "audit", stake = %id, checkpoint = changes.sequence, "stake record changed on chain; cached tokens evicted");
                        }
                        if !rules_changed {
                            auth.revalidate(Scope::Stake(*id));
                        }
                    }
                    if !changes.objects.is_empty() || rules_changed {
                        view.notify_changed();
                    }
                }
            }
            Ok(())
        })
        .await
}
