//! The master's own API access: cluster-wide defaults, per-user namespaces, upstream readiness.
//!
//! Requests go through the same verified TLS connection as proxied traffic, as the identity
//! `k3s-daas:nautilus-master` in `system:masters` (request-header authentication). Every object
//! the master writes is created only when absent and never updated afterwards, so an operator's
//! edits stand across restarts; a cluster-wide object that differs from the default is logged
//! at start (info) and left as it is.
//!
//! Defaults (see `docs/proxy.md`, "RBAC and tenants"):
//! - group `k3s-daas:admin` → ClusterRole `cluster-admin` (ClusterRoleBinding `k3s-daas:admin`),
//!   unless [`RbacPolicy::admin_binding`] is off;
//! - the Service exposure policy (`admission`): no `externalIPs` except for cluster admins, no
//!   LoadBalancer or NodePort Services for tenants;
//! - each `k3s-daas:user` identity gets a namespace of its own (`u-` + the first 40 hex digits
//!   of its address), annotated with its owner and labelled with a Pod Security level, holding
//!   a ResourceQuota, a LimitRange, a default NetworkPolicy ([`tenant`]) and a RoleBinding
//!   `k3s-daas:owner` to ClusterRole `k3s-daas:namespace-owner` (`cluster`). A namespace of
//!   that name that names another owner is never adopted. Setup runs once per user, never
//!   behind another user's (`onboarding`);
//! - `k3s-daas:worker` gets nothing through the proxy (nodes use K3s's own node credentials).
//!
//! Modules: `cluster` (the owner role and admin binding), `admission` (the Service policy),
//! [`tenant`] (the per-namespace policy and objects), `onboarding` (per-user setup, backoff).

mod admission;
mod cluster;
mod onboarding;
pub mod tenant;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tracing::{debug, info, warn};

use super::headers::add_identity;
use super::tls::{ALPN_H2, ALPN_HTTP11, TlsError};
use super::upstream::{BoxError, TlsConnect, UpstreamConfig, client};
use super::{ProxyBody, status};
use crate::auth::Identity;
use daas_seal::{Address, Role};

pub use admission::SERVICE_POLICY;
pub use cluster::ADMIN_BINDING;
pub use tenant::{TenantPolicy, TenantPolicyError};

/// Username the master uses for its own API calls.
pub const MASTER_USER: &str = "k3s-daas:nautilus-master";
/// Annotation naming the Sui address that owns a user namespace.
pub const OWNER_ANNOTATION: &str = "k3s-daas.io/owner";
/// ClusterRole bound (in their namespace) to each user.
pub const OWNER_ROLE: &str = "k3s-daas:namespace-owner";
/// Label on everything the master creates.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "k3s-daas");

/// What the master creates for RBAC and tenancy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacPolicy {
    /// Create ClusterRoleBinding `k3s-daas:admin` (group `k3s-daas:admin` → `cluster-admin`)
    /// when absent. Off: admin-role tokens authenticate but the master grants them nothing.
    pub admin_binding: bool,
    /// What each user namespace gets.
    pub tenant: TenantPolicy,
}

impl Default for RbacPolicy {
    fn default() -> Self {
        RbacPolicy {
            admin_binding: true,
            tenant: TenantPolicy::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum RbacError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Kubernetes API did not answer in time")]
    Timeout,
    #[error(
        "the API server takes request-header identity from {0:?}, outside the X-Remote-* names \
         this proxy strips from clients; a client could set them. Configure it with \
         X-Remote-User/X-Remote-Group/X-Remote-Extra-/X-Remote-Uid only"
    )]
    UnsafeRequestHeaders(Vec<String>),
    /// The API server publishes no request-header settings (yet): whether it would read
    /// identity from client headers is unknown.
    #[error(
        "the API server publishes no kube-system/extension-apiserver-authentication ConfigMap, so \
         its request-header settings cannot be checked"
    )]
    RequestHeaderSettingsUnknown,
    /// The API server refused an object the tenant policy describes (checked at start with a
    /// dry run).
    #[error("the API server refuses the tenant policy's {kind}: {source}")]
    TenantPolicyRejected {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    /// The user's namespace exists but its owner annotation names someone else (or nobody).
    #[error("namespace {namespace} exists and is not owned by this user")]
    NamespaceOwnedByOther { namespace: String },
    #[error("namespace {namespace} is being deleted")]
    NamespaceTerminating { namespace: String },
    /// A setup attempt failed (the cause is remembered for the backoff).
    #[error("setting up the user's namespace failed: {0}")]
    Failed(#[source] Arc<RbacError>),
    /// The last attempt failed less than its backoff ago.
    #[error("setting up the user's namespace failed recently (retry in {retry_in:?}): {last}")]
    Backoff {
        retry_in: Duration,
        #[source]
        last: Arc<RbacError>,
    },
}

impl RbacError {
    /// The cause, through [`RbacError::Failed`] and [`RbacError::Backoff`].
    fn cause(&self) -> &RbacError {
        match self {
            RbacError::Failed(last) | RbacError::Backoff { last, .. } => last.cause(),
            other => other,
        }
    }

    /// The answer to a user whose namespace could not be prepared: 403 when it belongs to
    /// someone else (retrying will not help), otherwise 503 with `Retry-After`.
    pub(crate) fn response(&self) -> Response<ProxyBody> {
        let retry = match self {
            RbacError::Backoff { retry_in, .. } => retry_in.as_millis().div_ceil(1000),
            _ => onboarding::FIRST_BACKOFF.as_millis().div_ceil(1000),
        };
        let retry = u64::try_from(retry).unwrap_or(u64::MAX).max(1);
        match self.cause() {
            RbacError::NamespaceOwnedByOther { namespace } => status::response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "namespace {namespace} already exists and is not yours (its \
                     {OWNER_ANNOTATION} annotation names another owner); a cluster operator \
                     must delete it or correct the annotation"
                ),
            ),
            RbacError::NamespaceTerminating { namespace } => status::response_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &format!("your namespace {namespace} is being deleted; retry once it is gone"),
                Some(retry),
            ),
            _ => status::response_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "could not prepare your namespace; retry shortly",
                Some(retry),
            ),
        }
    }
}

/// Longest a user's first-request setup may take.
const ENSURE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the setup waits for the new binding to take effect, and for the quota controller
/// to count the new namespace.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// `Ok` for a create that succeeded or found the object already there.
fn create_if_absent<T>(result: Result<T, kube::Error>) -> Result<(), RbacError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates a cluster-wide default unless an object of that name exists. An existing one is
/// left as it is (logged at info when `same` says it differs from the default).
async fn create_or_keep<K>(
    api: &Api<K>,
    desired: &K,
    same: impl Fn(&K) -> bool,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let kind = K::kind(&());
    let name = desired.meta().name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), desired).await {
        Ok(_) => {
            info!(%kind, %name, "created the default");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let current = api.get(&name).await?;
            if same(&current) {
                debug!(%kind, %name, "present, as the default");
            } else {
                info!(
                    %kind,
                    %name,
                    "present and different from the default: left as it is (delete it to get \
                     the default back at the next start)"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The namespace a `user`-role identity owns.
pub fn user_namespace(address: &Address) -> String {
    let hex = address.to_string();
    let hex = hex.trim_start_matches("0x");
    format!("u-{}", &hex[..hex.len().min(40)])
}

/// The master's API client, its policy, and the users' first-time setups.
pub struct Rbac {
    client: kube::Client,
    policy: RbacPolicy,
    onboarding: onboarding::Onboarding,
}

impl Rbac {
    pub(crate) fn new(config: &UpstreamConfig, policy: RbacPolicy) -> Result<Self, TlsError> {
        let connect = TlsConnect::new(config, &[ALPN_H2, ALPN_HTTP11])?;
        let service = MasterService {
            base: config.url.clone(),
            inner: client(connect, true),
            identity: master_identity(),
        };
        Ok(Rbac {
            client: kube::Client::new(service, "default"),
            policy,
            onboarding: onboarding::Onboarding::new(ENSURE_TIMEOUT),
        })
    }

    /// The master's typed client (for other components, e.g. readiness and node management).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Whether the API server answers `/readyz` with 200.
    pub async fn upstream_ready(&self) -> bool {
        let Ok(req) = Request::get("/readyz").body(Vec::new()) else {
            return false;
        };
        self.client.request_text(req).await.is_ok()
    }

    /// Checks that the API server reads request-header identity only from `X-Remote-*` headers
    /// (the ones the proxy strips from clients). It publishes its settings in ConfigMap
    /// `kube-system/extension-apiserver-authentication`. An API server that also read, say,
    /// `X-Forwarded-Groups` would take a client's own header as identity.
    pub async fn check_request_headers(&self) -> Result<(), RbacError> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        // Absent is unknown, not safe: an API server publishes it as it starts.
        let Some(cm) = api.get_opt("extension-apiserver-authentication").await? else {
            return Err(RbacError::RequestHeaderSettingsUnknown);
        };
        let data = cm.data.unwrap_or_default();
        let unsafe_names = unsafe_request_headers(&data);
        if unsafe_names.is_empty() {
            Ok(())
        } else {
            Err(RbacError::UnsafeRequestHeaders(unsafe_names))
        }
    }

    /// Creates the cluster-wide defaults that are absent (the namespace-owner role, the admin
    /// binding, the Service exposure policy), and has the API server check the tenant policy's
    /// objects with a dry run, so a bad override fails here rather than at each user's first
    /// request.
    pub async fn bootstrap(&self) -> Result<(), RbacError> {
        let roles: Api<ClusterRole> = Api::all(self.client.clone());
        create_or_keep(&roles, &cluster::namespace_owner_role(), cluster::same_role).await?;
        let bindings: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        if self.policy.admin_binding {
            create_or_keep(&bindings, &cluster::admin_binding(), cluster::same_binding).await?;
        } else if bindings.get_opt(ADMIN_BINDING).await?.is_some() {
            warn!(
                name = ADMIN_BINDING,
                "the admin binding is not to be created, but one exists: admin-role tokens keep \
                 whatever it grants until an operator deletes it"
            );
        }
        self.bootstrap_admission().await?;
        self.dry_run_tenant_objects().await?;
        info!(
            admin_binding = self.policy.admin_binding,
            "RBAC bootstrap done"
        );
        Ok(())
    }

    async fn bootstrap_admission(&self) -> Result<(), RbacError> {
        let policies: Api<ValidatingAdmissionPolicy> = Api::all(self.client.clone());
        match create_or_keep(
            &policies,
            &admission::service_policy(),
            admission::same_policy,
        )
        .await
        {
            Ok(()) => {}
            // Not served (Kubernetes < 1.30, or the API turned off): nothing to create.
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                warn!(
                    policy = SERVICE_POLICY,
                    "this API server has no admissionregistration.k8s.io/v1 \
                     ValidatingAdmissionPolicy: Service externalIPs are refused only if it runs \
                     the DenyServiceExternalIPs admission plugin (docs/proxy.md)"
                );
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(self.client.clone());
        create_or_keep(
            &bindings,
            &admission::service_policy_binding(),
            admission::same_binding,
        )
        .await?;
        Ok(())
    }

    async fn dry_run_tenant_objects(&self) -> Result<(), RbacError> {
        let ns = "default";
        let tenant = &self.policy.tenant;
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        // Only a refusal of the objects themselves is the policy's fault; anything else (an
        // unreachable or overloaded API server) is an ordinary API error.
        let rejected = |kind| {
            move |source: kube::Error| match &source {
                kube::Error::Api(s) if s.is_invalid() || s.code == 400 => {
                    RbacError::TenantPolicyRejected { kind, source }
                }
                _ => RbacError::Kube(source),
            }
        };
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
        api.create(&dry, &tenant::resource_quota(ns, &tenant.quota))
            .await
            .map_err(rejected("ResourceQuota"))?;
        let api: Api<LimitRange> = Api::namespaced(self.client.clone(), ns);
        api.create(&dry, &tenant::limit_range(ns, &tenant.limit_range))
            .await
            .map_err(rejected("LimitRange"))?;
        if tenant.network_policy {
            let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), ns);
            api.create(&dry, &tenant::network_policy(ns))
                .await
                .map_err(rejected("NetworkPolicy"))?;
        }
        Ok(())
    }

    /// Makes sure a `user` identity's namespace and its objects exist (once per process per
    /// user; see `onboarding` for concurrency and backoff). Objects are created only when
    /// absent: an operator's later change (a stricter Pod Security level, a larger quota, a
    /// removed subject to suspend a user) is never reverted. Other roles: nothing to do.
    pub async fn ensure_user(&self, identity: &Identity) -> Result<(), RbacError> {
        if identity.role != Role::User {
            return Ok(());
        }
        let result = self
            .onboarding
            .ensure(&identity.username, || self.set_up_user(identity))
            .await;
        match &result {
            Err(RbacError::Failed(cause)) => {
                warn!(user = %identity.username, error = %cause, "could not prepare the user's namespace");
            }
            Err(e @ RbacError::Backoff { .. }) => {
                debug!(user = %identity.username, error = %e, "user setup backing off");
            }
            _ => {}
        }
        result
    }

    async fn set_up_user(&self, identity: &Identity) -> Result<(), RbacError> {
        let ns = user_namespace(&identity.address);
        let tenant = &self.policy.tenant;
        self.ensure_namespace(&ns, &identity.address.to_string())
            .await?;
        // Limits before rights: the owner's binding comes last.
        let quotas: Api<ResourceQuota> = Api::namespaced(self.client.clone(), &ns);
        let quota = tenant::resource_quota(&ns, &tenant.quota);
        create_if_absent(quotas.create(&PostParams::default(), &quota).await)?;
        let limits: Api<LimitRange> = Api::namespaced(self.client.clone(), &ns);
        let limit_range = tenant::limit_range(&ns, &tenant.limit_range);
        create_if_absent(limits.create(&PostParams::default(), &limit_range).await)?;
        if tenant.network_policy {
            let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), &ns);
            let policy = tenant::network_policy(&ns);
            create_if_absent(policies.create(&PostParams::default(), &policy).await)?;
        }
        let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), &ns);
        let binding = tenant::owner_binding(&ns, &identity.username);
        create_if_absent(bindings.create(&PostParams::default(), &binding).await)?;
        self.wait_quota_counted(&ns).await?;
        self.wait_effective(identity, &ns).await?;
        info!(user = %identity.username, namespace = %ns, "user namespace ready");
        Ok(())
    }

    /// Creates the namespace, or adopts an existing one only if its owner annotation is
    /// `owner`. An adopted namespace without a Pod Security `enforce` label gets the policy's;
    /// one with a label keeps it (an operator's choice, even `privileged`).
    async fn ensure_namespace(&self, ns: &str, owner: &str) -> Result<(), RbacError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let desired = tenant::namespace(ns, owner, &self.policy.tenant);
        match namespaces.create(&PostParams::default(), &desired).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
        let existing = namespaces.get(ns).await?;
        let annotated = existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION));
        if annotated.map(String::as_str) != Some(owner) {
            warn!(
                target: "audit",
                namespace = %ns,
                owner = %owner,
                annotated_owner = annotated.map_or("-", String::as_str),
                "refusing to adopt an existing namespace that names another owner"
            );
            return Err(RbacError::NamespaceOwnedByOther {
                namespace: ns.to_owned(),
            });
        }
        let terminating = existing.metadata.deletion_timestamp.is_some()
            || existing.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            return Err(RbacError::NamespaceTerminating {
                namespace: ns.to_owned(),
            });
        }
        let want = self.policy.tenant.pod_security.as_str();
        match existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(tenant::PSA_ENFORCE_LABEL))
        {
            None => {
                warn!(namespace = %ns, level = want, "adopted namespace had no Pod Security level; adding it");
                let patch = serde_json::json!({
                    "metadata": {"labels": {tenant::PSA_ENFORCE_LABEL: want}}
                });
                namespaces
                    .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Some(level) if level != want => {
                info!(namespace = %ns, %level, "namespace keeps its own Pod Security level");
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Waits (up to 5 s) until the quota controller has counted the namespace's usage: until
    /// then the API server refuses every create the quota covers ("status unknown for quota").
    async fn wait_quota_counted(&self, ns: &str) -> Result<(), RbacError> {
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let Some(quota) = api.get_opt(tenant::QUOTA_NAME).await? else {
                return Ok(());
            };
            let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
            let used = quota.status.and_then(|s| s.used).unwrap_or_default();
            if hard.keys().all(|k| used.contains_key(k)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(namespace = %ns, "quota usage not counted after 5 s (is the controller manager running?); continuing");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 5 s) until the API server's authorizer sees the new binding, so the user's
    /// very first request is not refused while RBAC caches catch up.
    async fn wait_effective(&self, identity: &Identity, ns: &str) -> Result<(), RbacError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(identity.username.clone()),
                groups: Some(identity.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_owned()),
                    verb: Some("create".into()),
                    resource: Some("configmaps".into()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let answer = api.create(&PostParams::default(), &review).await?;
            if answer.status.is_some_and(|s| s.allowed) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(namespace = %ns, "binding not yet effective after 5 s; continuing");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Request-header names (and the extra prefix) configured in `data` that the proxy would not
/// strip from clients.
fn unsafe_request_headers(data: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for key in [
        "requestheader-username-headers",
        "requestheader-group-headers",
        "requestheader-uid-headers",
        "requestheader-extra-headers-prefix",
    ] {
        let Some(raw) = data.get(key) else {
            continue;
        };
        let names: Vec<String> = serde_json::from_str(raw).unwrap_or_else(|_| vec![raw.clone()]);
        for name in names {
            if !name.to_ascii_lowercase().starts_with("x-remote-") {
                out.push(name);
            }
        }
    }
    out
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.0.to_owned(),
            MANAGED_BY.1.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn master_identity() -> Identity {
    Identity {
        username: MASTER_USER.to_owned(),
        uid: MASTER_USER.to_owned(),
        groups: vec![
            "system:masters".into(),
            crate::auth::GROUP_AUTHENTICATED.into(),
        ],
        extra: BTreeMap::new(),
        address: Address::ZERO,
        role: Role::Admin,
        stake: None,
    }
}

/// Adds the base URI and the master's request-header identity to kube's relative requests.
#[derive(Clone)]
struct MasterService {
    base: http::Uri,
    inner: Client<TlsConnect, kube::client::Body>,
    identity: Identity,
}

impl tower_service::Service<Request<kube::client::Body>> for MasterService {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let mut base = self.base.clone().into_parts();
        base.path_and_query = parts.uri.path_and_query().cloned();
        let inner = self.inner.clone();
        let uri = http::Uri::from_parts(base);
        parts.headers.remove(http::header::AUTHORIZATION);
        add_identity(&mut parts.headers, &self.identity);
        parts.headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("k3s-daas-master"),
        );
        Box::pin(async move {
            parts.uri = uri?;
            let resp = inner.request(Request::from_parts(parts, body)).await?;
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http_body_util::BodyExt;
    use k8s_openapi::api::rbac::v1::ClusterRole;

    use super::*;

    /// Kinds the namespace owner may create, as `(API group, resource)`: each one needs a count in
    /// the namespace quota (`tenant::TenantQuota`), or the owner could fill the datastore.
    fn creatable(role: &ClusterRole) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for rule in role.rules.iter().flatten() {
            let creates = rule.verbs.iter().any(|v| v == "create" || v == "*");
            if !creates {
                continue;
            }
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    out.push((group.clone(), resource.clone()));
                }
            }
        }
        out
    }

    /// Architecture invariant: every kind a tenant may create is counted by the namespace
    /// quota, so what a tenant can store is bounded.
    #[test]
    fn every_kind_the_owner_may_create_is_counted_by_the_quota() {
        let hard = tenant::TenantQuota::default().hard();
        let kinds = creatable(&cluster::namespace_owner_role());
        assert!(kinds.len() > 10, "{kinds:?}");
        for (group, resource) in kinds {
            if resource.contains('/') {
                continue; // subresources: exec, attach, scale… create no object
            }
            let counted = if group.is_empty() {
                hard.contains_key(&resource) || hard.contains_key(&format!("count/{resource}"))
            } else {
                hard.contains_key(&format!("count/{resource}.{group}"))
            };
            assert!(
                counted,
                "{group}/{resource} is creatable but not in the quota"
            );
        }
    }

    async fn answer(e: RbacError) -> (u16, Option<String>, serde_json::Value) {
        let resp = e.response();
        let code = resp.status().as_u16();
        let retry = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (code, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn setup_failures_answer_as_kubernetes_status() {
        let conflict = Arc::new(RbacError::NamespaceOwnedByOther {
            namespace: "u-ab".into(),
        });
        for e in [
            RbacError::Failed(conflict.clone()),
            RbacError::Backoff {
                retry_in: Duration::from_secs(30),
                last: conflict,
            },
        ] {
            let (code, retry, body) = answer(e).await;
            assert_eq!((code, retry), (403, None));
            assert_eq!(body["reason"], "Forbidden");
            let msg = body["message"].as_str().unwrap();
            assert!(msg.contains("u-ab") && msg.contains("not yours"), "{msg}");
        }
        let (code, retry, body) = answer(RbacError::Backoff {
            retry_in: Duration::from_millis(2500),
            last: Arc::new(RbacError::NamespaceTerminating {
                namespace: "u-cd".into(),
            }),
        })
        .await;
        assert_eq!((code, retry.as_deref()), (503, Some("3")));
        assert!(body["message"].as_str().unwrap().contains("being deleted"));
        let (code, retry, _) = answer(RbacError::Failed(Arc::new(RbacError::Timeout))).await;
        assert_eq!((code, retry.as_deref()), (503, Some("1")));
    }

    #[test]
    fn default_objects_compare_equal_to_themselves() {
        assert!(cluster::same_role(&cluster::namespace_owner_role()));
        assert!(cluster::same_binding(&cluster::admin_binding()));
        assert!(admission::same_policy(&admission::service_policy()));
        assert!(admission::same_binding(&admission::service_policy_binding()));
        let mut edited = cluster::admin_binding();
        edited.subjects = None;
        assert!(!cluster::same_binding(&edited));
        let mut edited = ClusterRole {
            rules: cluster::namespace_owner_role().rules,
            ..ClusterRole::default()
        };
        edited.rules.as_mut().unwrap().remove(0);
        assert!(!cluster::same_role(&edited));
    }

    #[test]
    fn request_header_settings_outside_x_remote_are_flagged() {
        let data = |groups: &str| {
            BTreeMap::from([
                (
                    "requestheader-username-headers".to_owned(),
                    r#"["X-Remote-User"]"#.to_owned(),
                ),
                ("requestheader-group-headers".to_owned(), groups.to_owned()),
                (
                    "requestheader-extra-headers-prefix".to_owned(),
                    r#"["X-Remote-Extra-"]"#.to_owned(),
                ),
            ])
        };
        assert!(unsafe_request_headers(&data(r#"["X-Remote-Group"]"#)).is_empty());
        assert_eq!(
            unsafe_request_headers(&data(r#"["X-Remote-Group","X-Forwarded-Groups"]"#)),
            ["X-Forwarded-Groups"]
        );
        assert_eq!(unsafe_request_headers(&data("garbage")), ["garbage"]);
    }

    #[test]
    fn namespace_names_are_valid_dns_labels() {
        let addr: Address = "0x00000000000000000000000000000000000000000000000000000000000000ab"
            .parse()
            .unwrap_or(Address::ZERO);
        let ns = user_namespace(&addr);
        assert_eq!(ns.len(), 42);
        assert!(ns.len() <= 63);
        assert!(ns.starts_with("u-0000"));
        assert!(
            ns.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        let other: Address = "0xab00000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap_or(Address::ZERO);
        assert_ne!(user_namespace(&other), ns);
    }
}
