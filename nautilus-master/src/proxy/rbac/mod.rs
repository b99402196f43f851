//! The master's own API access: role-group bindings, per-user namespaces, upstream readiness.
//!
//! Requests go through the same verified TLS connection as proxied traffic, as the identity
//! `k3s-daas:nautilus-master` in `system:masters` (request-header authentication). Cluster-wide
//! objects are written with server-side apply under the field manager `k3s-daas` (repeating it
//! is harmless); per-user objects are created only when absent, so an operator's edits stand.
//!
//! Defaults (see `docs/proxy.md`):
//! - group `k3s-daas:admin` → ClusterRole `cluster-admin` (ClusterRoleBinding `k3s-daas:admin`);
//! - each `k3s-daas:user` identity gets a namespace of its own (`u-` + the first 40 hex digits
//!   of its address), annotated with its owner, labelled Pod Security `baseline`, and a RoleBinding
//!   `k3s-daas:owner` there to ClusterRole `k3s-daas:namespace-owner` — workloads, config,
//!   secrets, services, jobs, exec/logs/port-forward, but no RBAC, quotas or namespaces; nothing
//!   cluster-wide. The rules are spelled out here rather than borrowed from the aggregated
//!   `edit` role, whose rules depend on a controller having run;
//! - `k3s-daas:worker` gets nothing through the proxy (nodes use K3s's own node credentials).

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use lru::LruCache;
use thiserror::Error;
use tracing::info;

use super::headers::add_identity;
use super::tls::{ALPN_H2, ALPN_HTTP11, TlsError};
use super::upstream::{BoxError, TlsConnect, UpstreamConfig, client};
use crate::auth::Identity;
use daas_seal::{Address, Role};

/// Username the master uses for its own API calls.
pub const MASTER_USER: &str = "k3s-daas:nautilus-master";
const FIELD_MANAGER: &str = "k3s-daas";
/// Annotation naming the Sui address that owns a user namespace.
pub const OWNER_ANNOTATION: &str = "k3s-daas.io/owner";

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
}

/// Longest a user's first-request setup may take.
const ENSURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `Ok` for a create that succeeded or found the object already there.
fn create_if_absent<T>(result: Result<T, kube::Error>) -> Result<(), RbacError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The namespace a `user`-role identity owns.
pub fn user_namespace(address: &Address) -> String {
    let hex = address.to_string();
    let hex = hex.trim_start_matches("0x");
    format!("u-{}", &hex[..hex.len().min(40)])
}

/// The master's API client and the set of users whose namespace already exists.
pub struct Rbac {
    client: kube::Client,
    ensured: Mutex<LruCache<String, ()>>,
    first_time: tokio::sync::Mutex<()>,
}

impl Rbac {
    pub(crate) fn new(config: &UpstreamConfig) -> Result<Self, TlsError> {
        let connect = TlsConnect::new(config, &[ALPN_H2, ALPN_HTTP11])?;
        let service = MasterService {
            base: config.url.clone(),
            inner: client(connect, true),
            identity: master_identity(),
        };
        Ok(Rbac {
            client: kube::Client::new(service, "default"),
            ensured: Mutex::new(LruCache::new(
                NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN),
            )),
            first_time: tokio::sync::Mutex::new(()),
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
        let Some(cm) = api.get_opt("extension-apiserver-authentication").await? else {
            return Ok(());
        };
        let data = cm.data.unwrap_or_default();
        let unsafe_names = unsafe_request_headers(&data);
        if unsafe_names.is_empty() {
            Ok(())
        } else {
            Err(RbacError::UnsafeRequestHeaders(unsafe_names))
        }
    }

    /// Applies the cluster-wide binding of the admin group and the namespace-owner role.
    pub async fn bootstrap(&self) -> Result<(), RbacError> {
        let roles: Api<ClusterRole> = Api::all(self.client.clone());
        roles
            .patch(OWNER_ROLE, &apply(), &Patch::Apply(&namespace_owner_role()))
            .await?;
        let binding = ClusterRoleBinding {
            metadata: meta("k3s-daas:admin", None),
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
        };
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        api.patch("k3s-daas:admin", &apply(), &Patch::Apply(&binding))
            .await?;
        info!("RBAC bootstrap: group k3s-daas:admin bound to cluster-admin; {OWNER_ROLE} applied");
        Ok(())
    }

    /// Makes sure a `user` identity's namespace and owner binding exist (checked once per
    /// process per user). They are created only when absent: an operator's later change (a
    /// stricter Pod Security level, a removed subject to suspend a user) is never reverted.
    /// First-time setups run one at a time, so concurrent first requests do the work once.
    /// Other roles: nothing to do.
    pub async fn ensure_user(&self, identity: &Identity) -> Result<(), RbacError> {
        if identity.role != Role::User {
            return Ok(());
        }
        if self.lock().get(&identity.username).is_some() {
            return Ok(());
        }
        let _one_at_a_time = self.first_time.lock().await;
        if self.lock().get(&identity.username).is_some() {
            return Ok(());
        }
        tokio::time::timeout(ENSURE_TIMEOUT, self.create_user_namespace(identity))
            .await
            .map_err(|_| RbacError::Timeout)??;
        self.lock().put(identity.username.clone(), ());
        Ok(())
    }

    async fn create_user_namespace(&self, identity: &Identity) -> Result<(), RbacError> {
        let ns = user_namespace(&identity.address);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                // Label values stop at 63 bytes: the full address is an annotation.
                annotations: Some(BTreeMap::from([(
                    OWNER_ANNOTATION.to_owned(),
                    identity.address.to_string(),
                )])),
                labels: Some(BTreeMap::from([
                    (
                        "pod-security.kubernetes.io/enforce".to_owned(),
                        "baseline".to_owned(),
                    ),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "k3s-daas".to_owned(),
                    ),
                ])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        create_if_absent(namespaces.create(&PostParams::default(), &namespace).await)?;
        let binding = RoleBinding {
            metadata: meta("k3s-daas:owner", Some(&ns)),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: OWNER_ROLE.into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: identity.username.clone(),
                namespace: None,
            }]),
        };
        let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), &ns);
        create_if_absent(bindings.create(&PostParams::default(), &binding).await)?;
        self.wait_effective(identity, &ns).await?;
        info!(user = %identity.username, namespace = %ns, "user namespace ready");
        Ok(())
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
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let answer = api.create(&PostParams::default(), &review).await?;
            if answer.status.is_some_and(|s| s.allowed) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(namespace = %ns, "binding not yet effective after 5 s; continuing");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, ()>> {
        match self.ensured.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
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

/// ClusterRole bound (per namespace) to each user in their own namespace.
pub const OWNER_ROLE: &str = "k3s-daas:namespace-owner";

fn namespace_owner_role() -> ClusterRole {
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
            rule("", &["pods/log", "pods/status", "events"], &read),
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
            rule("networking.k8s.io", &["ingresses", "networkpolicies"], &all),
            rule("policy", &["poddisruptionbudgets"], &all),
            rule("discovery.k8s.io", &["endpointslices"], &read),
            rule("events.k8s.io", &["events"], &read),
        ]),
        aggregation_rule: None,
    }
}

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "k3s-daas".to_owned(),
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
    use super::*;

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
