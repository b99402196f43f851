//! Workers: how a staker's machine joins the cluster and how it leaves.
//!
//! - [`join`]: `POST /join` on :8080. A fresh worker Seal token (checked like any other, plus:
//!   at most 10 minutes long, issued after the last accepted join of its record) buys a
//!   per-node, short-lived bootstrap token bound to the record and node name, and the node
//!   password K3s binds the name with. Never the K3s server or agent token.
//! - [`front`]: the :6443 front for agents and kubelets. TLS under the enclave's attested CA,
//!   node client certificates checked against the cluster's client CA, then every request is
//!   judged against the chain: a node identity (`system:node:<name>`) or bootstrap token whose
//!   record has lost its standing is refused, and its live streams end.
//! - [`approver`]: kubelet client and serving CSRs approved only for the node name bound to
//!   the requester.
//! - [`lifecycle`]: when a record lapses (unbonding, slashed, withdrawn, grant withdrawn), the
//!   node is tainted, cordoned, drained through the Eviction API, and deleted with its
//!   credentials. Level-triggered: every pass derives what to do from the chain and the
//!   cluster, so it is idempotent and resumes after a restart.
//!
//! Which record a node name belongs to is [`bindings`]; the credentials' formats are
//! [`tokens`]; the verdict on a record is [`standing`].

pub mod approver;
pub mod bindings;
pub mod front;
pub mod join;
pub mod lifecycle;
mod metrics;
pub mod standing;
pub mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daas_seal::{Address, Role};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};
use tracing::{info, warn};

use crate::auth::{Identity, SealAuthenticator, StakeBinding, StakeView};
use bindings::{BindingState, Bindings};
use standing::Lapse;
use tokens::{BootstrapToken, NODE_LABEL, STAKE_ANNOTATION, WORKER_BOOTSTRAP_GROUP};

pub use metrics::WorkerMetrics;

/// The taint a revoked node gets first (a kubelet cannot remove taints: NodeRestriction).
pub const REVOKED_TAINT: &str = "k3s-daas.io/revoked";

/// What the master does with a node whose record lapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaintEffect {
    /// New pods stay off the node; running pods are evicted by the drain.
    NoSchedule,
    /// Also makes Kubernetes evict every pod that does not tolerate the taint at once.
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// Settings of the worker path.
#[derive(Clone, Debug)]
pub struct WorkersConfig {
    /// The :6443 URL agents are told to use (`https://host:port`).
    pub server_url: String,
    /// Lifetime of a bootstrap token (it is also deleted once its node registered).
    pub token_ttl: Duration,
    /// Effect of the revoked taint.
    pub taint_effect: TaintEffect,
    /// How long an unbonding node's drain honours PodDisruptionBudgets before pods are
    /// deleted anyway. Slashed nodes get none.
    pub unbonding_grace: Duration,
    /// Longest termination grace an evicted pod gets.
    pub max_pod_grace: Duration,
    /// Full reconciliation period (besides the chain follower's wake-ups).
    pub resync: Duration,
}

impl WorkersConfig {
    pub fn new(server_url: String) -> Self {
        WorkersConfig {
            server_url,
            token_ttl: Duration::from_secs(10 * 60),
            taint_effect: TaintEffect::NoSchedule,
            unbonding_grace: Duration::from_secs(10 * 60),
            max_pod_grace: Duration::from_secs(30),
            resync: Duration::from_secs(15),
        }
    }
}

/// An outstanding bootstrap token.
#[derive(Clone, Debug)]
pub(crate) struct Outstanding {
    pub(crate) token: BootstrapToken,
    pub(crate) node: String,
    pub(crate) stake: Address,
    pub(crate) expires_at_ms: u64,
    /// The record's token epoch when it was issued (`revoke_tokens` makes it stale).
    pub(crate) token_epoch: u64,
}

/// Why the front refused a node credential.
#[derive(Debug, thiserror::Error)]
pub enum NodeRefusal {
    #[error("node {0} is not bound to any stake record; join first")]
    Unbound(String),
    #[error("node {node} has been revoked ({state}): stake record {stake}")]
    Revoked {
        node: String,
        stake: Address,
        state: &'static str,
    },
    #[error("node {node} lost its standing: stake record {stake} is {lapse}")]
    Lapsed {
        node: String,
        stake: Address,
        lapse: Lapse,
    },
    #[error("unknown, expired or already used bootstrap token")]
    UnknownToken,
    #[error("bootstrap token {id} was issued for node {bound}, not {claimed}")]
    WrongNode {
        id: String,
        bound: String,
        claimed: String,
    },
    #[error("the chain cannot be read right now: {0}")]
    Unavailable(String),
}

impl NodeRefusal {
    /// A short label for metrics and audit lines.
    pub fn reason(&self) -> &'static str {
        match self {
            NodeRefusal::Unbound(_) => "unbound",
            NodeRefusal::Revoked { .. } => "revoked",
            NodeRefusal::Lapsed { .. } => "lapsed",
            NodeRefusal::UnknownToken => "unknown_token",
            NodeRefusal::WrongNode { .. } => "wrong_node",
            NodeRefusal::Unavailable(_) => "unavailable",
        }
    }
}

/// The worker path's state, shared by the join endpoint, the front, the approver and the
/// lifecycle controller.
pub struct Workers<V> {
    pub(crate) config: WorkersConfig,
    pub(crate) client: kube::Client,
    pub(crate) auth: Arc<SealAuthenticator<V>>,
    pub(crate) bindings: Bindings,
    pub(crate) tokens: Mutex<HashMap<String, Outstanding>>,
    /// The CA agents pin (PEM, exactly as `/cacerts` serves it) and its `K10…` hash.
    pub(crate) ca_pem: String,
    pub(crate) ca_hash: String,
    /// The cluster's client CA (PEM): what kubelets verify the API server's calls with.
    pub(crate) client_ca_pem: String,
    pub(crate) metrics: WorkerMetrics,
    /// Wakes the lifecycle controller (the chain follower saw stake records change).
    pub(crate) wake: tokio::sync::Notify,
    /// Serialises joins (one bootstrap token per node at a time).
    pub(crate) join_lock: tokio::sync::Mutex<()>,
    /// Whether [`Workers::load`] has succeeded: until then joins and node credentials get 503
    /// (an empty binding table would wrongly refuse every node).
    pub(crate) loaded: std::sync::atomic::AtomicBool,
}

impl<V> std::fmt::Debug for Workers<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("server_url", &self.config.server_url)
            .field("ca_hash", &self.ca_hash)
            .finish_non_exhaustive()
    }
}

/// `K10` + SHA-256 (hex) of the CA PEM's bytes: K3s's pin for a single-certificate bundle.
pub fn k3s_ca_hash(ca_pem: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("K10{}", hex::encode(Sha256::digest(ca_pem.as_bytes())))
}

pub(crate) fn now_ms() -> u64 {
    crate::auth::unix_ms_now()
}

impl<V: StakeView + 'static> Workers<V> {
    /// The worker path over the master's API access `client` (see
    /// [`crate::proxy::rbac::Rbac::client`]); `ca_pem` is what agents pin, `client_ca_pem`
    /// the cluster's client CA (it signs kubelet certificates and the API server's own).
    pub fn new(
        config: WorkersConfig,
        client: kube::Client,
        auth: Arc<SealAuthenticator<V>>,
        ca_pem: String,
        client_ca_pem: String,
    ) -> Arc<Self> {
        Arc::new(Workers {
            client_ca_pem,
            ca_hash: k3s_ca_hash(&ca_pem),
            ca_pem,
            bindings: Bindings::new(client.clone()),
            tokens: Mutex::new(HashMap::new()),
            metrics: WorkerMetrics::default(),
            wake: tokio::sync::Notify::new(),
            join_lock: tokio::sync::Mutex::new(()),
            loaded: std::sync::atomic::AtomicBool::new(false),
            config,
            client,
            auth,
        })
    }

    pub fn config(&self) -> &WorkersConfig {
        &self.config
    }

    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Reads the bindings and outstanding bootstrap tokens back from the cluster (after a
    /// restart) and creates what the worker path needs there (namespace, RBAC).
    pub async fn load(&self) -> Result<(), kube::Error> {
        let bindings = self.bindings.load().await?;
        approver::ensure_rbac(&self.client).await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "kube-system");
        let list = secrets
            .list(&ListParams::default().labels(NODE_LABEL))
            .await?;
        let now = now_ms();
        let mut restored = 0;
        for s in list.items {
            if s.type_.as_deref() != Some(tokens::BOOTSTRAP_TOKEN_TYPE) {
                continue;
            }
            let meta = &s.metadata;
            let node = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(NODE_LABEL))
                .cloned();
            let stake = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(STAKE_ANNOTATION))
                .and_then(|v| v.parse::<Address>().ok());
            let expires = s
                .data
                .as_ref()
                .and_then(|d| d.get("expiration"))
                .and_then(|v| std::str::from_utf8(&v.0).ok())
                .and_then(|v| humantime::parse_rfc3339(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            match (BootstrapToken::from_secret(&s), node, stake, expires) {
                (Some(token), Some(node), Some(stake), Some(expires_at_ms))
                    if expires_at_ms > now =>
                {
                    self.tokens_lock().insert(
                        token.id().to_owned(),
                        Outstanding {
                            token,
                            node,
                            stake,
                            expires_at_ms,
                            token_epoch: meta
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(tokens::EPOCH_ANNOTATION))
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0),
                        },
                    );
                    restored += 1;
                }
                _ => {
                    // Expired or unreadable: nobody may use it.
                    if let Some(name) = meta.name.as_deref() {
                        let _ = secrets.delete(name, &DeleteParams::default()).await;
                    }
                }
            }
        }
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        info!(
            bindings,
            tokens = restored,
            "worker path loaded from the cluster"
        );
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// [`Workers::load`], retried every 2 s until it succeeds (the API server may still be
    /// starting), then the CSR approver and the lifecycle controller until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            match self.load().await {
                Ok(()) => break,
                Err(e) => {
                    warn!(error = %e, "worker path: reading bindings from the cluster failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let approver = self.clone().run_approver(stopped(stop_rx.clone()));
        let lifecycle = self.clone().run_lifecycle(stopped(stop_rx));
        tokio::select! {
            () = &mut shutdown => {}
            () = async { tokio::join!(approver, lifecycle); } => {}
        }
        let _ = stop_tx.send(true);
    }

    pub(crate) fn tokens_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outstanding>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the lifecycle controller that stake records changed on chain.
    pub fn stake_changed(&self) {
        self.wake.notify_one();
    }

    /// The record behind a binding (`None`: withdrawn) and its verdict, read once, now. `Err`
    /// only when the chain cannot answer.
    pub(crate) async fn verdict(
        &self,
        node: &str,
        stake: Address,
    ) -> Result<(Option<crate::auth::StakeRecord>, Result<(), Lapse>), String> {
        let view = self.auth.view();
        let record = view.stake_record(stake).await.map_err(|e| e.0)?;
        let minimum = view.minimum_stake(Role::Worker).await.map_err(|e| e.0)?;
        let verdict =
            standing::standing(record.as_ref(), node, &self.auth.config().cluster, minimum);
        Ok((record, verdict))
    }

    /// The identity of a kubelet presenting a `system:node:<node>` certificate, if its binding
    /// and record still stand.
    pub async fn node_identity(&self, node: &str) -> Result<Arc<Identity>, NodeRefusal> {
        if !self.is_loaded() {
            return Err(NodeRefusal::Unavailable(
                "the node bindings are not loaded yet".into(),
            ));
        }
        let binding = self
            .bindings
            .get(node)
            .ok_or_else(|| NodeRefusal::Unbound(node.to_owned()))?;
        if binding.state != BindingState::Bound {
            return Err(NodeRefusal::Revoked {
                node: node.to_owned(),
                stake: binding.stake,
                state: binding.state.as_str(),
            });
        }
        let epoch = self.standing_epoch(node, binding.stake).await?;
        Ok(Arc::new(Identity {
            username: format!("system:node:{node}"),
            uid: binding.stake.to_string(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
            address: binding.owner,
            role: Role::Worker,
            stake: Some(StakeBinding {
                id: binding.stake,
                token_epoch: epoch,
                node_name: Some(node.to_owned()),
            }),
        }))
    }

    /// The identity of a bootstrap-token holder (`system:bootstrap:<id>`), if the token is
    /// outstanding and unexpired, names `claimed_node` when one is claimed, and its record
    /// still stands.
    pub async fn bootstrap_identity(
        &self,
        presented: &BootstrapToken,
        claimed_node: Option<&str>,
    ) -> Result<Arc<Identity>, NodeRefusal> {
        if !self.is_loaded() {
            return Err(NodeRefusal::Unavailable(
                "the node bindings are not loaded yet".into(),
            ));
        }
        let outstanding = {
            let tokens = self.tokens_lock();
            tokens
                .get(presented.id())
                .filter(|o| o.token.matches(presented) && o.expires_at_ms > now_ms())
                .cloned()
        };
        let o = outstanding.ok_or(NodeRefusal::UnknownToken)?;
        if let Some(claimed) = claimed_node
            && !claimed.eq_ignore_ascii_case(&o.node)
        {
            return Err(NodeRefusal::WrongNode {
                id: o.token.id().to_owned(),
                bound: o.node,
                claimed: claimed.to_owned(),
            });
        }
        let binding = self
            .bindings
            .get(&o.node)
            .filter(|b| b.stake == o.stake)
            .ok_or_else(|| NodeRefusal::Unbound(o.node.clone()))?;
        if binding.state != BindingState::Bound {
            return Err(NodeRefusal::Revoked {
                node: o.node,
                stake: binding.stake,
                state: binding.state.as_str(),
            });
        }
        let epoch = self.standing_epoch(&o.node, o.stake).await?;
        Ok(Arc::new(Identity {
            username: format!("system:bootstrap:{}", o.token.id()),
            uid: o.stake.to_string(),
            groups: vec![
                "system:bootstrappers".into(),
                WORKER_BOOTSTRAP_GROUP.into(),
                "system:authenticated".into(),
            ],
            extra: BTreeMap::new(),
            address: binding.owner,
            role: Role::Worker,
            stake: Some(StakeBinding {
                id: o.stake,
                token_epoch: epoch,
                node_name: Some(o.node),
            }),
        }))
    }

    /// The node name a bootstrap token id was issued for (CSR approval).
    pub(crate) fn token_node(&self, id: &str) -> Option<(String, Address)> {
        self.tokens_lock()
            .get(id)
            .filter(|o| o.expires_at_ms > now_ms())
            .map(|o| (o.node.clone(), o.stake))
    }

    /// Checks the record's standing and returns its current token epoch.
    async fn standing_epoch(&self, node: &str, stake: Address) -> Result<u64, NodeRefusal> {
        let (record, verdict) = self
            .verdict(node, stake)
            .await
            .map_err(NodeRefusal::Unavailable)?;
        verdict.map_err(|lapse| NodeRefusal::Lapsed {
            node: node.to_owned(),
            stake,
            lapse,
        })?;
        Ok(record.map_or(0, |r| r.token_epoch))
    }

    /// Deletes the outstanding bootstrap tokens of `node` (their Secrets and our record).
    /// Returns how many were deleted.
    pub(crate) async fn delete_tokens_of(&self, node: &str) -> Result<usize, kube::Error> {
        let ids: Vec<String> = self
            .tokens_lock()
            .values()
            .filter(|o| o.node == node)
            .map(|o| o.token.id().to_owned())
            .collect();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), "kube-system");
        for id in &ids {
            // Forget it first: from here on the front refuses it, whatever the API says.
            self.tokens_lock().remove(id);
            match secrets
                .delete(&tokens::secret_name(id), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    warn!(node, token_id = %id, error = %e, "deleting a bootstrap token Secret failed; retried on the next pass");
                    return Err(e);
                }
            }
        }
        Ok(ids.len())
    }
}
