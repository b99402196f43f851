//! What every user namespace gets: the policy (typed, with defaults an operator can override
//! from a JSON file) and the objects built from it. No I/O.
//!
//! Per user namespace `u-<prefix>`:
//! - the Namespace itself: owner annotation, Pod Security `enforce` label;
//! - ResourceQuota [`QUOTA_NAME`]: a count for every kind the namespace owner may create, plus
//!   compute and storage totals, no NodePorts and no LoadBalancers;
//! - LimitRange [`LIMITS_NAME`]: container defaults and maxima (so the quota's compute limits are
//!   satisfiable by pods that say nothing) and a PVC size maximum;
//! - NetworkPolicy [`NETWORK_POLICY_NAME`]: ingress only from the same namespace; egress
//!   anywhere but link-local addresses (the instance metadata service).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use thiserror::Error;

use super::{MANAGED_BY, OWNER_ANNOTATION, OWNER_ROLE, meta};

/// ResourceQuota in each user namespace.
pub const QUOTA_NAME: &str = "k3s-daas-quota";
/// LimitRange in each user namespace.
pub const LIMITS_NAME: &str = "k3s-daas-limits";
/// Default NetworkPolicy in each user namespace.
pub const NETWORK_POLICY_NAME: &str = "k3s-daas-default";
/// RoleBinding of the owner in their namespace.
pub const OWNER_BINDING: &str = "k3s-daas:owner";
/// The Pod Security Admission label the namespace carries.
pub const PSA_ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// Egress never allowed from user pods: IPv4 link-local (the instance metadata service at
/// 169.254.169.254, and AWS's DNS and time addresses), IPv6 link-local, and AWS's IPv6
/// metadata address.
pub const DENIED_EGRESS_V4: &[&str] = &["169.254.0.0/16"];
/// See [`DENIED_EGRESS_V4`].
pub const DENIED_EGRESS_V6: &[&str] = &["fe80::/10", "fd00:ec2::254/128"];

/// A tenant policy override file that cannot be used.
#[derive(Debug, Error)]
pub enum TenantPolicyError {
    #[error("tenant policy: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tenant policy: expected a JSON object naming the settings to change")]
    NotAnObject,
}

/// What each user namespace gets. Every field has a default ([`TenantPolicy::default`]); an
/// override file (JSON, [`TenantPolicy::from_json`]) names only what it changes, with the
/// Kubernetes names of the quota and limit entries. Unknown names are errors.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantPolicy {
    /// Pod Security Admission level enforced in user namespaces.
    pub pod_security: PodSecurityLevel,
    /// The namespace's ResourceQuota.
    pub quota: TenantQuota,
    /// The namespace's LimitRange.
    pub limit_range: TenantLimits,
    /// Whether to create the default NetworkPolicy.
    pub network_policy: bool,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            pod_security: PodSecurityLevel::Baseline,
            quota: TenantQuota::default(),
            limit_range: TenantLimits::default(),
            network_policy: true,
        }
    }
}

impl TenantPolicy {
    /// The defaults with the overrides of `json` applied (an object naming only what changes).
    pub fn from_json(json: &str) -> Result<Self, TenantPolicyError> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        if !value.is_object() {
            return Err(TenantPolicyError::NotAnObject);
        }
        Ok(serde_json::from_value(value)?)
    }
}

/// Pod Security Standards level (`pod-security.kubernetes.io/enforce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// A Kubernetes resource quantity (`500m`, `4Gi`, `1e3`), checked against the API's grammar
/// when read. Signs are refused: no limit here is negative.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Quantity(String);

impl Quantity {
    fn of(s: &'static str) -> Self {
        debug_assert!(is_quantity(s), "{s}");
        Quantity(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn k8s(&self) -> K8sQuantity {
        K8sQuantity(self.0.clone())
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Quantity {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if is_quantity(&s) {
            Ok(Quantity(s))
        } else {
            Err(format!(
                "{s:?} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 4Gi)"
            ))
        }
    }
}

/// `<number><suffix>` as Kubernetes reads quantities, without a sign: number is `d`, `d.d`,
/// `d.` or `.d`; suffix is a binary SI suffix (`Ki`..`Ei`), a decimal one (`m`, `k`, `M`..`E`,
/// or none) or an exponent (`e`/`E` and a signed integer).
fn is_quantity(s: &str) -> bool {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let int = digits_end(s);
    let (mut rest, mut any) = (&s[int..], int > 0);
    if let Some(frac) = rest.strip_prefix('.') {
        let n = digits_end(frac);
        any |= n > 0;
        rest = &frac[n..];
    }
    if !any {
        return false;
    }
    match rest {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            true
        }
        _ => {
            let Some(exp) = rest.strip_prefix(['e', 'E']) else {
                return false;
            };
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && digits_end(exp) == exp.len() && exp.len() <= 3
        }
    }
}

/// The ResourceQuota of a user namespace: one count per kind its owner may create (so the
/// number of objects, and with it their total size, is bounded), compute and storage totals.
/// JSON names are the quota's own `hard` keys.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantQuota {
    pub pods: u32,
    pub services: u32,
    /// NodePort Services: 0, a NodePort opens a port on every worker (another staker's host).
    #[serde(rename = "services.nodeports")]
    pub node_ports: u32,
    /// LoadBalancer Services: 0, there is no load balancer to claim.
    #[serde(rename = "services.loadbalancers")]
    pub load_balancers: u32,
    #[serde(rename = "persistentvolumeclaims")]
    pub persistent_volume_claims: u32,
    #[serde(rename = "replicationcontrollers")]
    pub replication_controllers: u32,
    #[serde(rename = "count/secrets")]
    pub secrets: u32,
    #[serde(rename = "count/configmaps")]
    pub config_maps: u32,
    #[serde(rename = "count/serviceaccounts")]
    pub service_accounts: u32,
    #[serde(rename = "count/deployments.apps")]
    pub deployments: u32,
    #[serde(rename = "count/statefulsets.apps")]
    pub stateful_sets: u32,
    #[serde(rename = "count/daemonsets.apps")]
    pub daemon_sets: u32,
    #[serde(rename = "count/replicasets.apps")]
    pub replica_sets: u32,
    #[serde(rename = "count/jobs.batch")]
    pub jobs: u32,
    #[serde(rename = "count/cronjobs.batch")]
    pub cron_jobs: u32,
    #[serde(rename = "count/horizontalpodautoscalers.autoscaling")]
    pub horizontal_pod_autoscalers: u32,
    #[serde(rename = "count/ingresses.networking.k8s.io")]
    pub ingresses: u32,
    #[serde(rename = "count/poddisruptionbudgets.policy")]
    pub pod_disruption_budgets: u32,
    #[serde(rename = "requests.cpu")]
    pub requests_cpu: Quantity,
    #[serde(rename = "requests.memory")]
    pub requests_memory: Quantity,
    #[serde(rename = "limits.cpu")]
    pub limits_cpu: Quantity,
    #[serde(rename = "limits.memory")]
    pub limits_memory: Quantity,
    /// Total PVC storage requested.
    #[serde(rename = "requests.storage")]
    pub requests_storage: Quantity,
}

impl Default for TenantQuota {
    fn default() -> Self {
        TenantQuota {
            pods: 20,
            services: 10,
            node_ports: 0,
            load_balancers: 0,
            persistent_volume_claims: 5,
            replication_controllers: 2,
            secrets: 30,
            // One is taken by `kube-root-ca.crt`, which the controller manager puts in every
            // namespace.
            config_maps: 30,
            // One is taken by `default`.
            service_accounts: 5,
            deployments: 10,
            stateful_sets: 5,
            daemon_sets: 2,
            // Each Deployment keeps up to `revisionHistoryLimit` old ReplicaSets (default 10;
            // tenants should set 3 or fewer).
            replica_sets: 40,
            jobs: 10,
            cron_jobs: 5,
            horizontal_pod_autoscalers: 5,
            ingresses: 5,
            pod_disruption_budgets: 5,
            requests_cpu: Quantity::of("4"),
            requests_memory: Quantity::of("8Gi"),
            limits_cpu: Quantity::of("8"),
            limits_memory: Quantity::of("16Gi"),
            requests_storage: Quantity::of("20Gi"),
        }
    }
}

impl TenantQuota {
    /// The `hard` map of the ResourceQuota.
    pub fn hard(&self) -> BTreeMap<String, K8sQuantity> {
        let count = |n: u32| K8sQuantity(n.to_string());
        let counts = [
            ("pods", self.pods),
            ("services", self.services),
            ("services.nodeports", self.node_ports),
            ("services.loadbalancers", self.load_balancers),
            ("persistentvolumeclaims", self.persistent_volume_claims),
            ("replicationcontrollers", self.replication_controllers),
            ("count/secrets", self.secrets),
            ("count/configmaps", self.config_maps),
            ("count/serviceaccounts", self.service_accounts),
            ("count/deployments.apps", self.deployments),
            ("count/statefulsets.apps", self.stateful_sets),
            ("count/daemonsets.apps", self.daemon_sets),
            ("count/replicasets.apps", self.replica_sets),
            ("count/jobs.batch", self.jobs),
            ("count/cronjobs.batch", self.cron_jobs),
            (
                "count/horizontalpodautoscalers.autoscaling",
                self.horizontal_pod_autoscalers,
            ),
            ("count/ingresses.networking.k8s.io", self.ingresses),
            (
                "count/poddisruptionbudgets.policy",
                self.pod_disruption_budgets,
            ),
        ];
        let amounts = [
            ("requests.cpu", &self.requests_cpu),
            ("requests.memory", &self.requests_memory),
            ("limits.cpu", &self.limits_cpu),
            ("limits.memory", &self.limits_memory),
            ("requests.storage", &self.requests_storage),
        ];
        counts
            .into_iter()
            .map(|(k, n)| (k.to_owned(), count(n)))
            .chain(amounts.into_iter().map(|(k, q)| (k.to_owned(), q.k8s())))
            .collect()
    }

    /// The most objects the owner can keep in the namespace at once (every counted kind;
    /// NodePort and LoadBalancer Services are Services).
    pub fn max_objects(&self) -> u64 {
        [
            self.pods,
            self.services,
            self.persistent_volume_claims,
            self.replication_controllers,
            self.secrets,
            self.config_maps,
            self.service_accounts,
            self.deployments,
            self.stateful_sets,
            self.daemon_sets,
            self.replica_sets,
            self.jobs,
            self.cron_jobs,
            self.horizontal_pod_autoscalers,
            self.ingresses,
            self.pod_disruption_budgets,
        ]
        .iter()
        .map(|&n| u64::from(n))
        .sum()
    }
}

/// The LimitRange of a user namespace. JSON names are the LimitRange's own paths.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// CPU limit of a container that sets none.
    #[serde(rename = "container.default.cpu")]
    pub default_cpu: Quantity,
    /// Memory limit of a container that sets none.
    #[serde(rename = "container.default.memory")]
    pub default_memory: Quantity,
    /// CPU request of a container that sets none.
    #[serde(rename = "container.defaultRequest.cpu")]
    pub default_request_cpu: Quantity,
    /// Memory request of a container that sets none.
    #[serde(rename = "container.defaultRequest.memory")]
    pub default_request_memory: Quantity,
    /// Largest CPU limit of one container.
    #[serde(rename = "container.max.cpu")]
    pub max_cpu: Quantity,
    /// Largest memory limit of one container.
    #[serde(rename = "container.max.memory")]
    pub max_memory: Quantity,
    /// Largest PersistentVolumeClaim.
    #[serde(rename = "persistentVolumeClaim.max.storage")]
    pub max_pvc_storage: Quantity,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            default_cpu: Quantity::of("500m"),
            default_memory: Quantity::of("512Mi"),
            default_request_cpu: Quantity::of("100m"),
            default_request_memory: Quantity::of("128Mi"),
            max_cpu: Quantity::of("2"),
            max_memory: Quantity::of("4Gi"),
            max_pvc_storage: Quantity::of("10Gi"),
        }
    }
}

fn resources(pairs: &[(&str, &Quantity)]) -> Option<BTreeMap<String, K8sQuantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, q)| ((*k).to_owned(), q.k8s()))
            .collect(),
    )
}

/// The namespace of the user with address `owner`.
pub(super) fn namespace(name: &str, owner: &str, policy: &TenantPolicy) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            // Label values stop at 63 bytes: the full address is an annotation.
            annotations: Some(BTreeMap::from([(
                OWNER_ANNOTATION.to_owned(),
                owner.to_owned(),
            )])),
            labels: Some(BTreeMap::from([
                (
                    PSA_ENFORCE_LABEL.to_owned(),
                    policy.pod_security.as_str().to_owned(),
                ),
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The owner's RoleBinding to [`OWNER_ROLE`] in `ns`.
pub(super) fn owner_binding(ns: &str, username: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(OWNER_BINDING, Some(ns)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: OWNER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: username.to_owned(),
            namespace: None,
        }]),
    }
}

pub(super) fn resource_quota(ns: &str, quota: &TenantQuota) -> ResourceQuota {
    ResourceQuota {
        metadata: meta(QUOTA_NAME, Some(ns)),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quota.hard()),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

pub(super) fn limit_range(ns: &str, limits: &TenantLimits) -> LimitRange {
    let container = LimitRangeItem {
        type_: "Container".into(),
        default: resources(&[
            ("cpu", &limits.default_cpu),
            ("memory", &limits.default_memory),
        ]),
        default_request: resources(&[
            ("cpu", &limits.default_request_cpu),
            ("memory", &limits.default_request_memory),
        ]),
        max: resources(&[("cpu", &limits.max_cpu), ("memory", &limits.max_memory)]),
        ..LimitRangeItem::default()
    };
    let pvc = LimitRangeItem {
        type_: "PersistentVolumeClaim".into(),
        max: resources(&[("storage", &limits.max_pvc_storage)]),
        ..LimitRangeItem::default()
    };
    LimitRange {
        metadata: meta(LIMITS_NAME, Some(ns)),
        spec: Some(LimitRangeSpec {
            limits: vec![container, pvc],
        }),
    }
}

/// Ingress only from pods of the same namespace; egress to any pod and any address except
/// [`DENIED_EGRESS_V4`] and [`DENIED_EGRESS_V6`]. Enforced only by a CNI that implements
/// NetworkPolicy (K3s's embedded kube-router does).
pub(super) fn network_policy(ns: &str) -> NetworkPolicy {
    let all = || Some(LabelSelector::default());
    let block = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|c| (*c).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: meta(NETWORK_POLICY_NAME, Some(ns)),
        spec: Some(NetworkPolicySpec {
            pod_selector: all(),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: all(),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: None,
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![
                    // Pods anywhere in the cluster (their own policies decide whether they
                    // accept): ipBlock's meaning for pod IPs is up to the implementation.
                    NetworkPolicyPeer {
                        namespace_selector: all(),
                        ..NetworkPolicyPeer::default()
                    },
                    block("0.0.0.0/0", DENIED_EGRESS_V4),
                    block("::/0", DENIED_EGRESS_V6),
                ]),
                ports: None,
            }]),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "0", "1", "500m", "0.5", ".5", "5.", "4Gi", "128Mi", "1k", "2M", "1e3", "1E-2", "1e+3",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in [
            "", ".", "-1", "+1", "1.5.2", "4GB", "4gi", "1e", "e3", "m", "1 Gi", "1e1234", "Gi",
            "0x10",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let p = TenantPolicy::from_json(
            r#"{"podSecurity": "restricted",
                "quota": {"count/secrets": 3, "requests.cpu": "2"},
                "limitRange": {"container.max.memory": "2Gi"}}"#,
        )
        .unwrap();
        let d = TenantPolicy::default();
        assert_eq!(p.pod_security, PodSecurityLevel::Restricted);
        assert_eq!(p.quota.secrets, 3);
        assert_eq!(p.quota.requests_cpu.as_str(), "2");
        assert_eq!(p.quota.config_maps, d.quota.config_maps);
        assert_eq!(p.limit_range.max_memory.as_str(), "2Gi");
        assert_eq!(p.limit_range.max_cpu, d.limit_range.max_cpu);
        assert!(p.network_policy);
        assert_eq!(TenantPolicy::from_json("{}").unwrap(), d);
    }

    #[test]
    fn bad_overrides_are_refused_with_the_reason() {
        for (json, why) in [
            (r#"{"quota": {"count/secret": 3}}"#, "unknown field"),
            (r#"{"quta": {}}"#, "unknown field"),
            (
                r#"{"quota": {"requests.cpu": "two"}}"#,
                "not a Kubernetes quantity",
            ),
            (r#"{"quota": {"pods": -1}}"#, "invalid value"),
            (r#"{"podSecurity": "lax"}"#, "unknown variant"),
            ("[]", "expected a JSON object"),
            ("{", "EOF"),
        ] {
            let e = TenantPolicy::from_json(json).unwrap_err().to_string();
            assert!(e.contains(why), "{json}: {e}");
        }
    }

    /// The complete defaults in `docs/proxy.md` are the code's.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md"))
            .unwrap();
        let block = doc
            .split("<!-- tenant-policy-defaults -->\n```json\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .expect("the marked JSON block in docs/proxy.md");
        let documented: serde_json::Value = serde_json::from_str(block).unwrap();
        let quota = documented["quota"].as_object().unwrap();
        assert_eq!(quota.len(), TenantQuota::default().hard().len());
        assert_eq!(
            documented["limitRange"].as_object().unwrap().len(),
            7,
            "every limit documented"
        );
        assert_eq!(
            TenantPolicy::from_json(block).unwrap(),
            TenantPolicy::default()
        );
    }

    #[test]
    fn the_quota_names_every_kind() {
        let hard = TenantQuota::default().hard();
        assert_eq!(hard.len(), 23);
        assert_eq!(hard["services.nodeports"].0, "0");
        assert_eq!(hard["services.loadbalancers"].0, "0");
        assert_eq!(hard["count/secrets"].0, "30");
        assert_eq!(hard["limits.memory"].0, "16Gi");
        assert_eq!(TenantQuota::default().max_objects(), 189);
    }

    #[test]
    fn network_policy_keeps_other_namespaces_out_and_metadata_unreachable() {
        let np = serde_json::to_value(network_policy("u-1")).unwrap();
        let spec = &np["spec"];
        assert_eq!(spec["podSelector"], serde_json::json!({}));
        assert_eq!(
            spec["policyTypes"],
            serde_json::json!(["Ingress", "Egress"])
        );
        assert_eq!(
            spec["ingress"],
            serde_json::json!([{"from": [{"podSelector": {}}]}])
        );
        let to = &spec["egress"][0]["to"];
        assert_eq!(
            to[1]["ipBlock"]["except"],
            serde_json::json!(["169.254.0.0/16"])
        );
        assert_eq!(
            to[2]["ipBlock"]["except"],
            serde_json::json!(["fe80::/10", "fd00:ec2::254/128"])
        );
    }
}
