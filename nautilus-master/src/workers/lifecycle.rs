//! Node lifecycle that follows stake.
//!
//! Each pass (on every chain change the follower reports, and every `resync`) looks at every
//! binding and derives what to do from the chain and the cluster alone, so a pass is
//! idempotent and a restarted master picks up where the last one stopped:
//!
//! - **bound, record stands**: delete the node's bootstrap token once its Node has registered
//!   (or once the record's token epoch moved past the token's: `revoke_tokens`).
//! - **bound, record lapsed** (unbonding, slashed, withdrawn, grant withdrawn, below minimum):
//!   the binding becomes `revoking` (the :6443 front refuses the node from here on, and its
//!   live streams were already ended by the follower's session re-check).
//! - **revoking**: delete outstanding bootstrap tokens; taint `k3s-daas.io/revoked` (a kubelet
//!   cannot remove taints); cordon; evict the node's pods through the Eviction API (mirror and
//!   DaemonSet pods skipped; grace bounded by `max_pod_grace`; 429 from a PodDisruptionBudget
//!   retried on the next pass); a slashed node's pods, and any pod once the unbonding grace is
//!   over, are deleted without waiting; an evicted pod past its grace is deleted (its kubelet
//!   can no longer confirm). When no pod is left: delete the Node and the node-password Secret,
//!   and retire the binding.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tracing::{info, warn};

use super::bindings::{Binding, BindingState};
use super::standing::Lapse;
use super::tokens::node_password_secret_name;
use super::{REVOKED_TAINT, Workers, now_ms};
use crate::auth::StakeView;

/// How soon a drain in progress is looked at again.
const DRAIN_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What one drain pass left to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DrainProgress {
    pub evicted: usize,
    pub deleted: usize,
    /// Evictions refused by a PodDisruptionBudget (429) this pass.
    pub blocked: usize,
    /// Pods still on the node.
    pub remaining: usize,
    pub node_deleted: bool,
}

impl<V: StakeView + 'static> Workers<V> {
    /// Runs passes until `shutdown`: at once, whenever [`Workers::stake_changed`] is called,
    /// and every `resync`.
    pub async fn run_lifecycle(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.pass().await;
            // A drain in progress is looked at again soon (PodDisruptionBudgets, pod grace),
            // as `kubectl drain` retries every 5 s.
            let draining = self
                .bindings
                .all()
                .iter()
                .any(|b| b.state == BindingState::Revoking);
            let next = if draining {
                self.config.resync.min(DRAIN_RETRY)
            } else {
                self.config.resync
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(next) => {}
            }
        }
    }

    /// One pass over every binding (see the module documentation).
    pub async fn pass(&self) {
        self.expire_tokens().await;
        let nodes: Api<Node> = Api::all(self.client.clone());
        for mut binding in self.bindings.all() {
            let result = match binding.state {
                BindingState::Bound => self.check_bound(&nodes, &mut binding).await,
                BindingState::Revoking => self.drain(&binding).await.map(|_| ()),
                BindingState::Retired => Ok(()),
            };
            if let Err(e) = result {
                warn!(node = %binding.node, error = %e, "node lifecycle step failed; retried on the next pass");
            }
        }
        for state in [
            BindingState::Bound,
            BindingState::Revoking,
            BindingState::Retired,
        ] {
            let n = self
                .bindings
                .all()
                .iter()
                .filter(|b| b.state == state)
                .count();
            self.metrics
                .nodes
                .get_or_create(&super::metrics::StateLabels {
                    state: state.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    async fn expire_tokens(&self) {
        let now = now_ms();
        let expired: Vec<String> = self
            .tokens_lock()
            .values()
            .filter(|o| o.expires_at_ms <= now)
            .map(|o| o.node.clone())
            .collect();
        for node in expired {
            let _ = self.delete_tokens_of(&node).await;
        }
    }

    async fn check_bound(
        &self,
        nodes: &Api<Node>,
        binding: &mut Binding,
    ) -> Result<(), kube::Error> {
        let (record, verdict) = match self.verdict(&binding.node, binding.stake).await {
            Ok(v) => v,
            Err(e) => {
                // No verdict without the chain: nothing is torn down on a read error.
                warn!(node = %binding.node, error = %e, "stake record unreadable; node left as it is");
                return Ok(());
            }
        };
        match verdict {
            Ok(()) => {
                let epoch = record.as_ref().map_or(0, |r| r.token_epoch);
                let stale_epoch = self
                    .tokens_lock()
                    .values()
                    .any(|o| o.node == binding.node && o.token_epoch < epoch);
                let has_tokens = self.tokens_lock().values().any(|o| o.node == binding.node);
                if has_tokens && (stale_epoch || nodes.get_opt(&binding.node).await?.is_some()) {
                    let n = self.delete_tokens_of(&binding.node).await?;
                    let why = if stale_epoch {
                        "tokens revoked on chain"
                    } else {
                        "node registered"
                    };
                    self.metrics.step("delete_bootstrap_token", "ok");
                    info!(target: "audit", node = %binding.node, stake = %binding.stake, tokens = n, "bootstrap token deleted: {why}");
                }
                Ok(())
            }
            Err(lapse) => {
                binding.state = BindingState::Revoking;
                binding.revoked_at_ms = Some(now_ms());
                binding.reason = Some(lapse.as_str().to_owned());
                self.bindings.update(binding).await?;
                self.metrics.step("revoke", "ok");
                info!(target: "audit", node = %binding.node, stake = %binding.stake, owner = %binding.owner, reason = %lapse, "node revoked: its stake record lost its standing; draining");
                self.drain(binding).await.map(|_| ())
            }
        }
    }

    /// One drain pass over a revoking binding (idempotent).
    pub async fn drain(&self, binding: &Binding) -> Result<DrainProgress, kube::Error> {
        let node = binding.node.as_str();
        let lapse = binding.reason.as_deref().and_then(Lapse::parse);
        let immediate = lapse.is_some_and(Lapse::is_immediate);
        let revoked_at = binding.revoked_at_ms.unwrap_or_else(now_ms);
        let grace_over = now_ms()
            >= revoked_at.saturating_add(
                u64::try_from(self.config.unbonding_grace.as_millis()).unwrap_or(u64::MAX),
            );
        let mut progress = DrainProgress::default();

        if self.delete_tokens_of(node).await? > 0 {
            self.metrics.step("delete_bootstrap_token", "ok");
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Some(n) = nodes.get_opt(node).await? {
            self.taint_and_cordon(&nodes, &n, lapse).await?;
        }
        let pods: Api<Pod> = Api::all(self.client.clone());
        let on_node = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await?;
        let now = Timestamp::now();
        let mut leftovers = Vec::new();
        for pod in &on_node.items {
            let (Some(ns), Some(name)) = (
                pod.metadata.namespace.as_deref(),
                pod.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            if is_mirror(pod) || is_daemon_set(pod) {
                // They go with the Node; deleted just before it.
                leftovers.push((api, name.to_owned()));
                continue;
            }
            progress.remaining += 1;
            if let Some(at) = &pod.metadata.deletion_timestamp {
                // Already terminating: its kubelet is cut off and cannot confirm, so once its
                // grace is over the pod is deleted for good.
                if at.0 <= now {
                    self.force_delete(&api, name, node, "grace_over").await?;
                    progress.deleted += 1;
                    progress.remaining -= 1;
                }
                continue;
            }
            if immediate || grace_over {
                self.force_delete(
                    &api,
                    name,
                    node,
                    if immediate {
                        "slashed"
                    } else {
                        "unbonding_grace_over"
                    },
                )
                .await?;
                progress.deleted += 1;
                continue;
            }
            match self.evict(&api, name, pod).await {
                Ok(()) => {
                    progress.evicted += 1;
                    self.metrics.step("evict", "ok");
                    info!(target: "audit", node, pod = %format!("{ns}/{name}"), "pod evicted from a revoked node");
                }
                Err(kube::Error::Api(e)) if e.code == 404 => progress.remaining -= 1,
                Err(kube::Error::Api(e)) if e.code == 429 => {
                    progress.blocked += 1;
                    self.metrics.step("evict", "blocked_by_pdb");
                    info!(target: "audit", node, pod = %format!("{ns}/{name}"), "eviction refused by a PodDisruptionBudget; retried on the next pass");
                }
                Err(kube::Error::Api(e)) if e.code == 500 => {
                    progress.blocked += 1;
                    self.metrics.step("evict", "misconfigured_pdb");
                    warn!(node, pod = %format!("{ns}/{name}"), message = %e.message, "eviction failed: several PodDisruptionBudgets select this pod? retried on the next pass");
                }
                Err(e) => return Err(e),
            }
        }
        if progress.remaining > 0 {
            return Ok(progress);
        }
        for (api, name) in leftovers {
            self.force_delete(&api, &name, node, "node_pod").await?;
        }
        match nodes.delete(node, &DeleteParams::default()).await {
            Ok(_) => {
                progress.node_deleted = true;
                self.metrics.step("delete_node", "ok");
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "kube-system");
        match secrets
            .delete(&node_password_secret_name(node), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        let mut retired = binding.clone();
        retired.state = BindingState::Retired;
        self.bindings.update(&retired).await?;
        let took = now_ms().saturating_sub(revoked_at);
        #[allow(clippy::cast_precision_loss)] // milliseconds: exact far beyond any drain
        self.metrics.drain_seconds.observe(took as f64 / 1000.0);
        info!(target: "audit", node, stake = %binding.stake, took_ms = took, "revoked node deleted with its credentials; the name stays retired");
        Ok(progress)
    }

    async fn taint_and_cordon(
        &self,
        nodes: &Api<Node>,
        node: &Node,
        lapse: Option<Lapse>,
    ) -> Result<(), kube::Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        let mut taints = spec.taints.unwrap_or_default();
        let tainted = taints.iter().any(|t| t.key == REVOKED_TAINT);
        if tainted && spec.unschedulable == Some(true) {
            return Ok(());
        }
        if !tainted {
            taints.push(Taint {
                key: REVOKED_TAINT.to_owned(),
                value: Some(lapse.map_or("revoked", Lapse::as_str).to_owned()),
                effect: self.config.taint_effect.as_str().to_owned(),
                time_added: None,
            });
        }
        // The resource version makes this a compare-and-swap: a concurrent change of the
        // taints (the node lifecycle controller adds its own) fails with 409 and is retried.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": node.metadata.resource_version },
            "spec": { "taints": taints, "unschedulable": true },
        });
        nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.metrics.step("taint_and_cordon", "ok");
        info!(target: "audit", node = %name, taint = REVOKED_TAINT, effect = self.config.taint_effect.as_str(), "revoked node tainted and cordoned");
        Ok(())
    }

    async fn evict(&self, api: &Api<Pod>, name: &str, pod: &Pod) -> Result<(), kube::Error> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let max = i64::try_from(self.config.max_pod_grace.as_secs()).unwrap_or(i64::MAX);
        // `EvictParams` of kube 5 writes `delete_options` (snake case), which the API server
        // ignores; the Eviction object is written here as the API defines it.
        let body = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": name, "namespace": pod.metadata.namespace },
            "deleteOptions": { "gracePeriodSeconds": own.clamp(0, max) },
        });
        api.create_subresource::<serde_json::Value, serde_json::Value>(
            "eviction",
            name,
            &PostParams::default(),
            &body,
        )
        .await
        .map(|_| ())
    }

    async fn force_delete(
        &self,
        api: &Api<Pod>,
        name: &str,
        node: &str,
        why: &'static str,
    ) -> Result<(), kube::Error> {
        match api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {
                self.metrics.step("delete_pod", why);
                info!(target: "audit", node, pod = name, reason = why, "pod deleted from a revoked node");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn is_daemon_set(pod: &Pod) -> bool {
    pod.metadata.owner_references.as_ref().is_some_and(|o| {
        o.iter()
            .any(|r| r.kind == "DaemonSet" && r.controller == Some(true))
    })
}
