//! Which stake record each node name belongs to.
//!
//! Node names are not unique on chain (`StakeRecord.node_name`), so the master binds a name to
//! the first stake record that joins with it, and a name stays bound to that record for good:
//! after the record is revoked the binding is kept as `retired` (a tombstone), so a later stake
//! can never inherit a name whose old kubelet certificate is still unexpired. The :6443 front
//! accepts `system:node:<name>` only while the name's binding is `bound` and its record is
//! active.
//!
//! Bindings live in the cluster's own (encrypted) datastore, as ConfigMaps
//! `k3s-daas-system/node-<name>` that only the master writes (nodes and tenants have no access
//! to that namespace): the enclave has no disk of its own, and the state must survive a
//! master restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use daas_seal::Address;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use thiserror::Error;

/// Namespace of the master's own records.
pub const SYSTEM_NAMESPACE: &str = "k3s-daas-system";
/// Label on binding ConfigMaps.
const BINDING_LABEL: &str = "k3s-daas.io/binding";

/// Where a binding is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingState {
    /// The node may join and talk to :6443 while its record is active.
    Bound,
    /// The record lost its standing; the node is being drained and deleted.
    Revoking,
    /// Done: Node and credentials deleted. The name stays reserved for the record.
    Retired,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Bound => "bound",
            BindingState::Revoking => "revoking",
            BindingState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bound" => BindingState::Bound,
            "revoking" => BindingState::Revoking,
            "retired" => BindingState::Retired,
            _ => return None,
        })
    }
}

/// One node name's binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub node: String,
    pub stake: Address,
    pub owner: Address,
    pub state: BindingState,
    pub bound_at_ms: u64,
    /// When the master found the record without standing (start of the drain).
    pub revoked_at_ms: Option<u64>,
    /// Why (`unbonding`, `slashed`, `withdrawn`, …).
    pub reason: Option<String>,
    /// `issued_at` of the Seal token of the last accepted join: a join token must be newer
    /// (replays and stale tokens are refused, across master restarts).
    pub last_join_issued_at_ms: Option<u64>,
}

#[derive(Debug, Error)]
pub enum BindError {
    #[error("node name {node} is bound to stake record {stake}; stake with another node name")]
    Taken { node: String, stake: Address },
    #[error("node name {node} was retired with stake record {stake}; node names are not reused")]
    Retired { node: String, stake: Address },
    #[error("the binding of node name {0} in the cluster is unreadable")]
    Unreadable(String),
    #[error("the cluster datastore: {0}")]
    Kube(#[from] kube::Error),
}

/// The bindings, cached in memory and written through to the cluster.
pub struct Bindings {
    api: Api<ConfigMap>,
    namespaces: Api<Namespace>,
    map: RwLock<HashMap<String, Binding>>,
}

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings").finish_non_exhaustive()
    }
}

impl Bindings {
    /// Empty; [`Bindings::load`] reads what the cluster holds.
    pub fn new(client: kube::Client) -> Self {
        Bindings {
            api: Api::namespaced(client.clone(), SYSTEM_NAMESPACE),
            namespaces: Api::all(client),
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Creates the namespace if needed and reads every binding (replacing the cache).
    /// ConfigMaps that do not parse are logged and skipped.
    pub async fn load(&self) -> Result<usize, kube::Error> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(SYSTEM_NAMESPACE.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "k3s-daas".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match self.namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        let list = self
            .api
            .list(&ListParams::default().labels(BINDING_LABEL))
            .await?;
        let mut map = HashMap::new();
        for cm in list.items {
            match from_config_map(&cm) {
                Some(b) => {
                    map.insert(b.node.clone(), b);
                }
                None => tracing::warn!(
                    name = cm.metadata.name.as_deref().unwrap_or("-"),
                    "unreadable node binding ConfigMap skipped"
                ),
            }
        }
        let n = map.len();
        *self.write() = map;
        Ok(n)
    }

    pub fn get(&self, node: &str) -> Option<Binding> {
        self.read().get(node).cloned()
    }

    pub fn all(&self) -> Vec<Binding> {
        let mut all: Vec<Binding> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }

    /// The bindings of `stake` (normally one).
    pub fn of_stake(&self, stake: &Address) -> Vec<Binding> {
        self.read()
            .values()
            .filter(|b| b.stake == *stake)
            .cloned()
            .collect()
    }

    /// Binds `node` to `stake` (or returns the existing binding of the same record). A name
    /// bound or retired with another record is refused. Safe against a concurrent bind of the
    /// same name: the cluster's create is the arbiter.
    pub async fn bind(
        &self,
        node: &str,
        stake: Address,
        owner: Address,
        now_ms: u64,
    ) -> Result<Binding, BindError> {
        if let Some(existing) = self.get(node) {
            return check_same(existing, stake);
        }
        let binding = Binding {
            node: node.to_owned(),
            stake,
            owner,
            state: BindingState::Bound,
            bound_at_ms: now_ms,
            revoked_at_ms: None,
            reason: None,
            last_join_issued_at_ms: None,
        };
        match self
            .api
            .create(&PostParams::default(), &to_config_map(&binding))
            .await
        {
            Ok(_) => {
                self.write().insert(node.to_owned(), binding.clone());
                Ok(binding)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Someone (another join, or a restart's leftovers) got there first.
                let cm = self.api.get(&config_map_name(node)).await?;
                let existing =
                    from_config_map(&cm).ok_or_else(|| BindError::Unreadable(node.to_owned()))?;
                self.write().insert(node.to_owned(), existing.clone());
                check_same(existing, stake)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a changed binding (state transitions) through to the cluster.
    pub async fn update(&self, binding: &Binding) -> Result<(), kube::Error> {
        let cm = to_config_map(binding);
        self.api
            .patch(
                &config_map_name(&binding.node),
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "data": cm.data })),
            )
            .await?;
        self.write().insert(binding.node.clone(), binding.clone());
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Binding>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Binding>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn check_same(existing: Binding, stake: Address) -> Result<Binding, BindError> {
    if existing.stake != stake {
        return Err(BindError::Taken {
            node: existing.node,
            stake: existing.stake,
        });
    }
    if existing.state == BindingState::Retired {
        return Err(BindError::Retired {
            node: existing.node,
            stake: existing.stake,
        });
    }
    Ok(existing)
}

fn config_map_name(node: &str) -> String {
    format!("node-{node}")
}

fn to_config_map(b: &Binding) -> ConfigMap {
    let mut data = BTreeMap::from([
        ("node".to_owned(), b.node.clone()),
        ("stake".to_owned(), b.stake.to_string()),
        ("owner".to_owned(), b.owner.to_string()),
        ("state".to_owned(), b.state.as_str().to_owned()),
        ("bound-at-ms".to_owned(), b.bound_at_ms.to_string()),
    ]);
    if let Some(at) = b.revoked_at_ms {
        data.insert("revoked-at-ms".to_owned(), at.to_string());
    }
    if let Some(reason) = &b.reason {
        data.insert("reason".to_owned(), reason.clone());
    }
    if let Some(at) = b.last_join_issued_at_ms {
        data.insert("last-join-issued-at-ms".to_owned(), at.to_string());
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&b.node)),
            namespace: Some(SYSTEM_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([
                (BINDING_LABEL.to_owned(), "node".to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "k3s-daas".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

fn from_config_map(cm: &ConfigMap) -> Option<Binding> {
    let data = cm.data.as_ref()?;
    let get = |k: &str| data.get(k).map(String::as_str);
    Some(Binding {
        node: get("node")?.to_owned(),
        stake: get("stake")?.parse().ok()?,
        owner: get("owner")?.parse().ok()?,
        state: BindingState::parse(get("state")?)?,
        bound_at_ms: get("bound-at-ms")?.parse().ok()?,
        revoked_at_ms: get("revoked-at-ms").and_then(|v| v.parse().ok()),
        reason: get("reason").map(str::to_owned),
        last_join_issued_at_ms: get("last-join-issued-at-ms").and_then(|v| v.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bindings_round_trip_through_config_maps() {
        let b = Binding {
            node: "w-1".into(),
            stake: Address::from_static("0x12"),
            owner: Address::from_static("0x34"),
            state: BindingState::Revoking,
            bound_at_ms: 5,
            revoked_at_ms: Some(9),
            reason: Some("unbonding".into()),
            last_join_issued_at_ms: Some(7),
        };
        let cm = to_config_map(&b);
        assert_eq!(cm.metadata.name.as_deref(), Some("node-w-1"));
        assert_eq!(from_config_map(&cm), Some(b.clone()));
        let mut broken = cm.clone();
        broken
            .data
            .as_mut()
            .unwrap()
            .insert("state".into(), "weird".into());
        assert_eq!(from_config_map(&broken), None);
        let bound = Binding {
            state: BindingState::Bound,
            revoked_at_ms: None,
            reason: None,
            ..b
        };
        assert_eq!(from_config_map(&to_config_map(&bound)), Some(bound));
    }

    #[test]
    fn a_name_stays_with_its_first_record() {
        let b = Binding {
            node: "w-1".into(),
            stake: Address::from_static("0x12"),
            owner: Address::from_static("0x34"),
            state: BindingState::Bound,
            bound_at_ms: 5,
            revoked_at_ms: None,
            reason: None,
            last_join_issued_at_ms: None,
        };
        assert!(check_same(b.clone(), Address::from_static("0x12")).is_ok());
        assert!(matches!(
            check_same(b.clone(), Address::from_static("0x13")),
            Err(BindError::Taken { .. })
        ));
        let retired = Binding {
            state: BindingState::Retired,
            ..b
        };
        assert!(matches!(
            check_same(retired, Address::from_static("0x12")),
            Err(BindError::Retired { .. })
        ));
    }
}
