//! The cluster-wide defaults: ClusterRole `k3s-daas:namespace-owner` and ClusterRoleBinding
//! `k3s-daas:admin`. No I/O.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

use super::{OWNER_ROLE, meta};
use daas_seal::Role;

/// ClusterRoleBinding of group `k3s-daas:admin` to `cluster-admin`.
pub const ADMIN_BINDING: &str = "k3s-daas:admin";

pub(super) fn admin_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(ADMIN_BINDING, None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: crate::auth::role_group(Role::Admin),
            namespace: None,
        }]),
    }
}

pub(super) fn same_binding(current: &ClusterRoleBinding) -> bool {
    let want = admin_binding();
    current.role_ref == want.role_ref && current.subjects == want.subjects
}

pub(super) fn same_role(current: &ClusterRole) -> bool {
    let want = namespace_owner_role();
    current.rules == want.rules && current.aggregation_rule.is_none()
}

/// What each user may do in their own namespace (bound there by RoleBinding
/// `k3s-daas:owner`): workloads, config, secrets, services, jobs, exec/logs/port-forward; no
/// RBAC, quotas, limit ranges, network policies (read only: the default one is the tenant
/// boundary and keeps the metadata service out of reach, and policies only ever add allowed
/// traffic) or namespaces. Spelled out rather than borrowed from the aggregated `edit` role,
/// whose rules exist only once a controller has run.
pub(super) fn namespace_owner_role() -> ClusterRole {
    let all = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    let read = ["get", "list", "watch"];
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    };
    ClusterRole {
        metadata: meta(OWNER_ROLE, None),
        rules: Some(vec![
            rule(
                "",
                &[
                    "pods",
                    "services",
                    "configmaps",
                    "secrets",
                    "persistentvolumeclaims",
                    "serviceaccounts",
                    "replicationcontrollers",
                ],
                &all,
            ),
            // Read-only: writable Endpoints let a tenant point a Service anywhere
            // (CVE-2021-25740; upstream dropped it from `edit` in 1.22).
            rule("", &["endpoints"], &read),
            rule(
                "",
                &[
                    "pods/exec",
                    "pods/attach",
                    "pods/portforward",
                    "pods/eviction",
                ],
                &["get", "create"],
            ),
            rule(
                "",
                &[
                    "pods/log",
                    "pods/status",
                    "events",
                    "resourcequotas",
                    "limitranges",
                ],
                &read,
            ),
            rule(
                "apps",
                &[
                    "deployments",
                    "statefulsets",
                    "daemonsets",
                    "replicasets",
                    "deployments/scale",
                    "statefulsets/scale",
                    "replicasets/scale",
                ],
                &all,
            ),
            rule("batch", &["jobs", "cronjobs"], &all),
            rule("autoscaling", &["horizontalpodautoscalers"], &all),
            rule("networking.k8s.io", &["ingresses"], &all),
            rule("networking.k8s.io", &["networkpolicies"], &read),
            rule("policy", &["poddisruptionbudgets"], &all),
            rule("discovery.k8s.io", &["endpointslices"], &read),
            rule("events.k8s.io", &["events"], &read),
        ]),
        aggregation_rule: None,
    }
}
