//! The Kubernetes identity a verified Seal token maps to.

use std::collections::BTreeMap;

use daas_seal::{Address, Claims, Role};

/// Group every authenticated Kubernetes user carries.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// `Extra` key carrying the stake record id (lowercase, valid as `Impersonate-Extra-<key>`).
pub const EXTRA_STAKE: &str = "k3s-daas.io/stake-id";

/// Who a request is from, as Kubernetes sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `sui:<0x address>`.
    pub username: String,
    /// The stake record id: stable for the life of the stake.
    pub uid: String,
    /// `k3s-daas:<role>` and `system:authenticated`.
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub address: Address,
    pub role: Role,
    /// The stake record and token epoch the credential was checked against; `None` for
    /// identities that are not Seal credentials (the master's own).
    pub stake: Option<StakeBinding>,
}

/// What a Seal identity was bound to on chain when its token was checked: enough to check it
/// again later (for sessions that outlive the request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakeBinding {
    pub id: Address,
    pub token_epoch: u64,
    /// Workers only.
    pub node_name: Option<String>,
}

impl Identity {
    pub(crate) fn for_claims(claims: &Claims) -> Self {
        Identity {
            username: format!("sui:{}", claims.signer),
            uid: claims.stake.to_string(),
            groups: vec![role_group(claims.role), GROUP_AUTHENTICATED.to_owned()],
            extra: BTreeMap::from([(EXTRA_STAKE.to_owned(), vec![claims.stake.to_string()])]),
            address: claims.signer,
            role: claims.role,
            stake: Some(StakeBinding {
                id: claims.stake,
                token_epoch: claims.token_epoch,
                node_name: claims.node_name.as_ref().map(|n| n.as_str().to_owned()),
            }),
        }
    }
}

/// The RBAC group of a role: `k3s-daas:worker|user|admin`.
pub fn role_group(role: Role) -> String {
    format!("k3s-daas:{role}")
}
