//! The Service exposure policy: a `ValidatingAdmissionPolicy` (admissionregistration.k8s.io/v1,
//! GA in Kubernetes 1.30) and its binding. No I/O.
//!
//! For everyone but cluster admins (groups `system:masters` and `k3s-daas:admin`):
//! - no new `spec.externalIPs` on a Service (CVE-2020-8554: a Service with an external IP
//!   captures that address's traffic on every node). Addresses an existing Service already
//!   has may stay, as with the `DenyServiceExternalIPs` admission plugin, which `k3s server`
//!   also runs (`k3s::server_args`); this policy covers any other API server behind the proxy.
//!
//! For tenants (group `k3s-daas:user`) also:
//! - no `type: LoadBalancer` (there is no load balancer, and a tenant must not claim one when
//!   there is) and no `type: NodePort` (it opens a port on every worker, other stakers' hosts).
//!   The namespace quota (`services.loadbalancers`, `services.nodeports` = 0) says the same.

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation,
};

use super::meta;

/// Name of the policy and of its binding (cluster-scoped; a DNS subdomain, so no colon).
pub const SERVICE_POLICY: &str = "k3s-daas-service-exposure";

/// CEL: the request is not a cluster admin's.
const NOT_AN_ADMIN: &str = "!('system:masters' in request.userInfo.groups) && !('k3s-daas:admin' in request.userInfo.groups)";

/// CEL: every external IP was already on the Service before this request.
const NO_NEW_EXTERNAL_IPS: &str = "!has(object.spec.externalIPs) || \
     object.spec.externalIPs.all(ip, request.operation == 'UPDATE' && \
     has(oldObject.spec.externalIPs) && ip in oldObject.spec.externalIPs)";

/// CEL: tenants create neither LoadBalancer nor NodePort Services.
const TENANT_SERVICE_TYPE: &str = "!('k3s-daas:user' in request.userInfo.groups) || \
     !has(object.spec.type) || !(object.spec.type in ['LoadBalancer', 'NodePort'])";

pub(super) fn service_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: meta(SERVICE_POLICY, None),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![String::new()]),
                    api_versions: Some(vec!["v1".into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    resources: Some(vec!["services".into()]),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            match_conditions: Some(vec![MatchCondition {
                name: "not-a-cluster-admin".into(),
                expression: NOT_AN_ADMIN.into(),
            }]),
            validations: Some(vec![
                Validation {
                    expression: NO_NEW_EXTERNAL_IPS.into(),
                    message: Some(
                        "spec.externalIPs is not allowed: a Service with external IPs captures \
                         traffic to those addresses on every node (CVE-2020-8554); only a \
                         cluster admin may set them"
                            .into(),
                    ),
                    reason: Some("Forbidden".into()),
                    ..Validation::default()
                },
                Validation {
                    expression: TENANT_SERVICE_TYPE.into(),
                    message: Some(
                        "Services of type LoadBalancer or NodePort are not available in user \
                         namespaces; use ClusterIP (and kubectl port-forward)"
                            .into(),
                    ),
                    reason: Some("Forbidden".into()),
                    ..Validation::default()
                },
            ]),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        status: None,
    }
}

pub(super) fn service_policy_binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(SERVICE_POLICY, None),
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: SERVICE_POLICY.into(),
            validation_actions: vec!["Deny".into()],
            ..ValidatingAdmissionPolicyBindingSpec::default()
        },
    }
}

/// Whether `current` still says what [`service_policy`] says (the API server fills in
/// defaults, so only the fields the master sets are compared).
pub(super) fn same_policy(current: &ValidatingAdmissionPolicy) -> bool {
    let (Some(cur), Some(want)) = (&current.spec, service_policy().spec) else {
        return false;
    };
    let exprs = |v: &Option<Vec<Validation>>| -> Vec<String> {
        v.iter().flatten().map(|x| x.expression.clone()).collect()
    };
    let conds = |v: &Option<Vec<MatchCondition>>| -> Vec<String> {
        v.iter().flatten().map(|x| x.expression.clone()).collect()
    };
    let rules = |m: &Option<MatchResources>| {
        m.as_ref()
            .and_then(|m| m.resource_rules.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.api_groups, r.api_versions, r.operations, r.resources))
            .collect::<Vec<_>>()
    };
    exprs(&cur.validations) == exprs(&want.validations)
        && conds(&cur.match_conditions) == conds(&want.match_conditions)
        && cur.failure_policy == want.failure_policy
        && rules(&cur.match_constraints) == rules(&want.match_constraints)
}

/// Whether `current` still binds the policy with `Deny` and no narrower match.
pub(super) fn same_binding(current: &ValidatingAdmissionPolicyBinding) -> bool {
    let want = service_policy_binding().spec;
    let narrowed = current.spec.match_resources.as_ref().is_some_and(|m| {
        m.resource_rules.is_some()
            || m.exclude_resource_rules.is_some()
            || m.namespace_selector
                .as_ref()
                .is_some_and(|s| s.match_labels.is_some() || s.match_expressions.is_some())
            || m.object_selector
                .as_ref()
                .is_some_and(|s| s.match_labels.is_some() || s.match_expressions.is_some())
    });
    current.spec.policy_name == want.policy_name
        && current.spec.validation_actions == want.validation_actions
        && !narrowed
}
