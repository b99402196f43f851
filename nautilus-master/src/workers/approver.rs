//! The kubelet CSR approver.
//!
//! Kubernetes' own approver ties nothing to a bootstrap token: any bootstrapper with
//! `nodeclient` may get `system:node:<anything>`. This one approves a CSR only when the
//! requester is bound to the node the certificate names, and that node's record stands:
//!
//! - `kubernetes.io/kube-apiserver-client-kubelet`: subject exactly `CN=system:node:<n>`,
//!   `O=system:nodes`; requested by `system:bootstrap:<id>` whose token was issued for `<n>`,
//!   or by `system:node:<n>` itself (renewal); usages client auth (+ digital signature, key
//!   encipherment).
//! - `kubernetes.io/kubelet-serving`: requested by `system:node:<n>`, same subject, DNS names
//!   only `<n>`, IP addresses only those on the Node's status; usages server auth (+ the two).
//!
//! Everything else with those signers is denied with the reason; other signers are left alone.
//! The RBAC the master creates grants bootstrappers `system:node-bootstrapper` (create CSRs)
//! and nothing that would let kube-controller-manager approve them first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use tracing::{info, warn};

use super::Workers;
use super::bindings::BindingState;
use super::tokens::WORKER_BOOTSTRAP_GROUP;
use crate::auth::StakeView;

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// ClusterRoleBinding: the worker bootstrap group may create CSRs (and nothing more).
const BOOTSTRAP_BINDING: &str = "k3s-daas:worker-bootstrap";

/// Creates the ClusterRoleBinding `k3s-daas:worker-bootstrap` (group
/// `system:bootstrappers:k3s-daas:worker` → `system:node-bootstrapper`) when absent.
pub(crate) async fn ensure_rbac(client: &kube::Client) -> Result<(), kube::Error> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(BOOTSTRAP_BINDING.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "k3s-daas".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "system:node-bootstrapper".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: WORKER_BOOTSTRAP_GROUP.into(),
            namespace: None,
        }]),
    };
    match api.create(&PostParams::default(), &binding).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a CSR asks for, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CsrFacts {
    pub(crate) common_name: Vec<String>,
    pub(crate) organizations: Vec<String>,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addresses: Vec<std::net::IpAddr>,
    /// Any SAN other than DNS names and IP addresses (email, URI, …).
    pub(crate) other_sans: bool,
}

/// Parses the PEM PKCS#10 request of a CSR.
pub(crate) fn parse_request(pem_bytes: &[u8]) -> Result<CsrFacts, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_bytes)
        .map_err(|_| "spec.request is not PEM".to_owned())?;
    let (_, csr) = <x509_parser::certification_request::X509CertificationRequest<'_> as x509_parser::prelude::FromDer<'_, x509_parser::error::X509Error>>::from_der(&pem.contents)
    .map_err(|_| "spec.request is not a PKCS#10 request".to_owned())?;
    csr.verify_signature()
        .map_err(|_| "the request's signature does not verify".to_owned())?;
    let info = &csr.certification_request_info;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let mut facts = CsrFacts {
        common_name: strings(&mut info.subject.iter_common_name()),
        organizations: strings(&mut info.subject.iter_organization()),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        other_sans: false,
    };
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            facts.dns_names.push((*d).to_owned());
                        }
                        x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                            match ip_from_bytes(bytes) {
                                Some(ip) => facts.ip_addresses.push(ip),
                                None => facts.other_sans = true,
                            }
                        }
                        _ => facts.other_sans = true,
                    }
                }
            }
        }
    }
    Ok(facts)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The decision on one pending CSR.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve(String),
    Deny(String),
    /// Not ours to decide (another signer).
    Skip,
}

/// Who asked, as far as the approver is concerned.
#[derive(Debug)]
pub(crate) enum Requester {
    /// `system:bootstrap:<id>` whose token was issued for this node.
    Bootstrap {
        node: Option<String>,
    },
    /// `system:node:<n>`.
    Node(String),
    Other(String),
}

/// Decides on a CSR from its facts, given who asked, whether the named node's binding and
/// record stand (`stands`), and the node's addresses (serving certificates).
pub(crate) fn decide(
    signer: &str,
    requester: &Requester,
    usages: &[String],
    facts: &CsrFacts,
    stands: impl Fn(&str) -> Result<(), String>,
    node_addresses: &[std::net::IpAddr],
) -> Decision {
    let serving = match signer {
        CLIENT_SIGNER => false,
        SERVING_SIGNER => true,
        _ => return Decision::Skip,
    };
    let node = match facts.common_name.as_slice() {
        [cn] => match cn.strip_prefix("system:node:") {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => return Decision::Deny(format!("subject CN {cn} is not system:node:<name>")),
        },
        _ => return Decision::Deny("the subject must have exactly one CN".into()),
    };
    if facts.organizations != ["system:nodes"] {
        return Decision::Deny("the subject's O must be exactly system:nodes".into());
    }
    match (requester, serving) {
        (Requester::Node(n), _) if *n == node => {}
        (Requester::Bootstrap { node: Some(bound) }, false) if *bound == node => {}
        (Requester::Bootstrap { node: Some(bound) }, false) => {
            return Decision::Deny(format!(
                "the requester's bootstrap token was issued for node {bound}, not {node}"
            ));
        }
        (Requester::Bootstrap { node: None }, _) => {
            return Decision::Deny("the requester's bootstrap token is unknown or expired".into());
        }
        (Requester::Node(n), _) => {
            return Decision::Deny(format!(
                "node {n} may not ask for node {node}'s certificate"
            ));
        }
        (Requester::Bootstrap { .. }, true) => {
            return Decision::Deny("serving certificates are asked for by the node itself".into());
        }
        (Requester::Other(who), _) => {
            return Decision::Deny(format!("{who} may not ask for node certificates"));
        }
    }
    let required = if serving {
        "server auth"
    } else {
        "client auth"
    };
    let allowed = ["digital signature", "key encipherment", required];
    if !usages.iter().any(|u| u == required)
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Decision::Deny(format!(
            "usages must be {required} (+ digital signature, key encipherment)"
        ));
    }
    if serving {
        if facts.other_sans {
            return Decision::Deny("only DNS and IP subject alternative names are allowed".into());
        }
        if let Some(d) = facts.dns_names.iter().find(|d| **d != node) {
            return Decision::Deny(format!("DNS name {d} is not the node's name"));
        }
        if let Some(ip) = facts
            .ip_addresses
            .iter()
            .find(|ip| !node_addresses.contains(ip))
        {
            return Decision::Deny(format!("IP address {ip} is not on Node {node}'s status"));
        }
    } else if !facts.dns_names.is_empty() || !facts.ip_addresses.is_empty() || facts.other_sans {
        return Decision::Deny("a client certificate has no subject alternative names".into());
    }
    if let Err(why) = stands(&node) {
        return Decision::Deny(why);
    }
    Decision::Approve(format!("node {node} is bound to an active stake record"))
}

impl<V: StakeView + 'static> Workers<V> {
    /// Watches CSRs until `shutdown`, deciding on each pending kubelet CSR. Re-lists after
    /// every watch ends (and on errors, with a pause).
    pub async fn run_approver(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        loop {
            let pass = async {
                let list = api.list(&ListParams::default()).await?;
                for csr in &list.items {
                    self.consider(&api, csr).await;
                }
                let version = list.metadata.resource_version.unwrap_or_default();
                let mut events = api
                    .watch(&WatchParams::default().timeout(290), &version)
                    .await?
                    .boxed();
                while let Some(event) = events.next().await {
                    match event? {
                        WatchEvent::Added(csr) | WatchEvent::Modified(csr) => {
                            self.consider(&api, &csr).await;
                        }
                        WatchEvent::Error(e) => {
                            return Err(kube::Error::Api(e));
                        }
                        _ => {}
                    }
                }
                Ok::<(), kube::Error>(())
            };
            tokio::select! {
                () = &mut shutdown => return,
                result = pass => {
                    if let Err(e) = result {
                        warn!(error = %e, "CSR watch failed; re-listing shortly");
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        }
                    }
                }
            }
        }
    }

    async fn consider(
        &self,
        api: &Api<CertificateSigningRequest>,
        csr: &CertificateSigningRequest,
    ) {
        let decided = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Approved" || c.type_ == "Denied")
            });
        if decided {
            return;
        }
        let name = csr.metadata.name.clone().unwrap_or_default();
        let spec = &csr.spec;
        let signer = spec.signer_name.as_str();
        if signer != CLIENT_SIGNER && signer != SERVING_SIGNER {
            return;
        }
        let username = spec.username.clone().unwrap_or_default();
        let requester = if let Some(id) = username.strip_prefix("system:bootstrap:") {
            Requester::Bootstrap {
                node: self.token_node(id).map(|(node, _)| node),
            }
        } else if let Some(n) = username.strip_prefix("system:node:") {
            Requester::Node(n.to_owned())
        } else {
            Requester::Other(username.clone())
        };
        let facts = match parse_request(&spec.request.0) {
            Ok(f) => f,
            Err(why) => {
                self.record(api, &name, &username, Decision::Deny(why))
                    .await;
                return;
            }
        };
        // The node's standing, judged before the pure decision.
        let node = facts
            .common_name
            .first()
            .and_then(|cn| cn.strip_prefix("system:node:"))
            .unwrap_or_default()
            .to_owned();
        let standing = match self.bindings.get(&node) {
            Some(b) if b.state == BindingState::Bound => match self.verdict(&node, b.stake).await {
                Ok((_, Ok(()))) => Ok(()),
                Ok((_, Err(lapse))) => {
                    Err(format!("node {node}'s stake record {} is {lapse}", b.stake))
                }
                Err(e) => {
                    // Undecided: the next event or re-list tries again.
                    warn!(csr = %name, error = %e, "CSR left pending: the chain cannot be read");
                    return;
                }
            },
            Some(b) => Err(format!("node {node} is {}", b.state.as_str())),
            None => Err(format!("node {node} is not bound to any stake record")),
        };
        let addresses = if signer == SERVING_SIGNER {
            node_addresses(&self.client, &node).await
        } else {
            Vec::new()
        };
        let usages = spec.usages.clone().unwrap_or_default();
        let decision = decide(
            signer,
            &requester,
            &usages,
            &facts,
            |_| standing.clone(),
            &addresses,
        );
        self.record(api, &name, &username, decision).await;
    }

    async fn record(
        &self,
        api: &Api<CertificateSigningRequest>,
        name: &str,
        requester: &str,
        decision: Decision,
    ) {
        let (type_, reason, message, result) = match &decision {
            Decision::Approve(m) => ("Approved", "K3sDaasNodeBound", m.clone(), "approved"),
            Decision::Deny(m) => ("Denied", "K3sDaasNodeNotBound", m.clone(), "denied"),
            Decision::Skip => return,
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: type_.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.clone()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            }]),
            certificate: None,
        };
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_approval(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.metrics.csr(
                    result,
                    if result == "approved" {
                        "bound"
                    } else {
                        "refused"
                    },
                );
                info!(target: "audit", csr = name, requester, result, "CSR {result}: {message}");
            }
            Err(e) => {
                warn!(csr = name, error = %e, "recording the CSR decision failed; retried on the next event")
            }
        }
    }
}

async fn node_addresses(client: &kube::Client, node: &str) -> Vec<std::net::IpAddr> {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_opt(node).await {
        Ok(Some(n)) => n
            .status
            .and_then(|s| s.addresses)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.address.parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn csr_pem(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
                .unwrap();
        for ip in ips {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn usages(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| (*s).to_owned()).collect()
    }

    const CLIENT_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];

    #[test]
    fn parses_a_kubelet_client_request() {
        let facts =
            parse_request(&csr_pem("system:node:w-1", &["system:nodes"], &[], &[])).unwrap();
        assert_eq!(facts.common_name, ["system:node:w-1"]);
        assert_eq!(facts.organizations, ["system:nodes"]);
        assert!(facts.dns_names.is_empty() && !facts.other_sans);
        assert!(parse_request(b"not pem").is_err());
    }

    #[test]
    fn a_bootstrap_token_gets_only_its_own_node() {
        let facts =
            parse_request(&csr_pem("system:node:w-1", &["system:nodes"], &[], &[])).unwrap();
        let ok = |_: &str| Ok(());
        let bootstrap = |n: &str| Requester::Bootstrap {
            node: Some(n.into()),
        };
        assert!(matches!(
            decide(
                CLIENT_SIGNER,
                &bootstrap("w-1"),
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Approve(_)
        ));
        assert!(matches!(
            decide(CLIENT_SIGNER, &bootstrap("w-2"), &usages(CLIENT_USAGES), &facts, ok, &[]),
            Decision::Deny(m) if m.contains("issued for node w-2")
        ));
        assert!(matches!(
            decide(
                CLIENT_SIGNER,
                &Requester::Bootstrap { node: None },
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Deny(_)
        ));
        // Renewal by the node itself; another node may not.
        assert!(matches!(
            decide(
                CLIENT_SIGNER,
                &Requester::Node("w-1".into()),
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Approve(_)
        ));
        assert!(matches!(
            decide(
                CLIENT_SIGNER,
                &Requester::Node("w-2".into()),
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Deny(_)
        ));
        assert!(matches!(
            decide(
                CLIENT_SIGNER,
                &Requester::Other("sui:0x1".into()),
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Deny(_)
        ));
        // A lapsed record: denied with the reason.
        assert_eq!(
            decide(
                CLIENT_SIGNER,
                &bootstrap("w-1"),
                &usages(CLIENT_USAGES),
                &facts,
                |_| Err("slashed".into()),
                &[]
            ),
            Decision::Deny("slashed".into())
        );
        // Other signers are not ours.
        assert_eq!(
            decide(
                "example.com/x",
                &bootstrap("w-1"),
                &usages(CLIENT_USAGES),
                &facts,
                ok,
                &[]
            ),
            Decision::Skip
        );
    }

    #[test]
    fn subjects_usages_and_sans_are_checked() {
        let ok = |_: &str| Ok(());
        let me = Requester::Node("w-1".into());
        let deny = |facts: &CsrFacts, u: &[&str], signer: &str| {
            matches!(
                decide(
                    signer,
                    &me,
                    &usages(u),
                    facts,
                    ok,
                    &["10.0.0.2".parse().unwrap()]
                ),
                Decision::Deny(_)
            )
        };
        let masters =
            parse_request(&csr_pem("system:node:w-1", &["system:masters"], &[], &[])).unwrap();
        assert!(deny(&masters, CLIENT_USAGES, CLIENT_SIGNER));
        let two_orgs = parse_request(&csr_pem(
            "system:node:w-1",
            &["system:nodes", "system:masters"],
            &[],
            &[],
        ))
        .unwrap();
        assert!(deny(&two_orgs, CLIENT_USAGES, CLIENT_SIGNER));
        let plain =
            parse_request(&csr_pem("system:node:w-1", &["system:nodes"], &[], &[])).unwrap();
        assert!(deny(&plain, &["client auth", "server auth"], CLIENT_SIGNER));
        assert!(deny(&plain, &["digital signature"], CLIENT_SIGNER));
        let with_san = parse_request(&csr_pem(
            "system:node:w-1",
            &["system:nodes"],
            &["w-1"],
            &[],
        ))
        .unwrap();
        assert!(deny(&with_san, CLIENT_USAGES, CLIENT_SIGNER));
        // Serving: own name and own addresses only.
        let serving_usages = &["digital signature", "key encipherment", "server auth"];
        let good = parse_request(&csr_pem(
            "system:node:w-1",
            &["system:nodes"],
            &["w-1"],
            &["10.0.0.2"],
        ))
        .unwrap();
        assert!(!deny(&good, serving_usages, SERVING_SIGNER));
        let other_ip = parse_request(&csr_pem(
            "system:node:w-1",
            &["system:nodes"],
            &["w-1"],
            &["10.0.0.3"],
        ))
        .unwrap();
        assert!(deny(&other_ip, serving_usages, SERVING_SIGNER));
        let other_dns = parse_request(&csr_pem(
            "system:node:w-1",
            &["system:nodes"],
            &["kubernetes.default"],
            &[],
        ))
        .unwrap();
        assert!(deny(&other_dns, serving_usages, SERVING_SIGNER));
        assert!(matches!(
            decide(
                SERVING_SIGNER,
                &Requester::Bootstrap {
                    node: Some("w-1".into())
                },
                &usages(serving_usages),
                &good,
                ok,
                &["10.0.0.2".parse().unwrap()]
            ),
            Decision::Deny(_)
        ));
    }
}
