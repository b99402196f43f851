//! Events of the package. Notification only: readers verify object state.

use serde::{Deserialize, Serialize};
use sui_sdk_types::{Address, StructTag};

use crate::package::{MODULE_CLUSTER, MODULE_ENCLAVE, MODULE_STAKING, Package};

/// `staking::Staked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staked {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub role: u8,
    pub node_name: String,
    pub amount: u64,
    pub staked_at_ms: u64,
}

/// `staking::StakeAdded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeAdded {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub amount: u64,
    pub new_total: u64,
}

/// `staking::UnstakeRequested`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnstakeRequested {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub token_epoch: u64,
    pub requested_at_ms: u64,
    pub withdrawable_at_ms: u64,
}

/// `staking::Withdrawn`: the record was deleted; `amount` is what the owner received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub amount: u64,
    pub slashed: bool,
}

/// `staking::TokensRevoked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensRevoked {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub token_epoch: u64,
}

/// `staking::SlashSettled`: a slashed record's balance moved to the treasury.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashSettled {
    pub cluster_id: Address,
    pub record_id: Address,
    pub owner: Address,
    pub amount: u64,
}

/// `cluster::ClusterCreated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCreated {
    pub cluster_id: Address,
    pub admin_cap_id: Address,
    pub admin: Address,
}

/// `cluster::Slashed`: the admin marked a record as slashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slashed {
    pub cluster_id: Address,
    pub record_id: Address,
}

/// `cluster::RoleMinimumChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMinimumChanged {
    pub cluster_id: Address,
    pub role: u8,
    pub old_min_mist: u64,
    pub new_min_mist: u64,
}

/// `cluster::UnbondingPeriodChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbondingPeriodChanged {
    pub cluster_id: Address,
    pub old_period_ms: u64,
    pub new_period_ms: u64,
}

/// `cluster::PcrsChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrsChanged {
    pub cluster_id: Address,
    pub pcr0: Vec<u8>,
    pub pcr1: Vec<u8>,
    pub pcr2: Vec<u8>,
    pub enclave_cleared: bool,
}

/// `cluster::EnclaveOperatorChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnclaveOperatorChanged {
    pub cluster_id: Address,
    pub old_operator: Address,
    pub new_operator: Address,
}

/// `cluster::TreasuryWithdrawn`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreasuryWithdrawn {
    pub cluster_id: Address,
    pub amount: u64,
    pub recipient: Address,
}

/// `cluster::ClusterRenamed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRenamed {
    pub cluster_id: Address,
    pub name: String,
}

/// `cluster::ClusterMigrated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMigrated {
    pub cluster_id: Address,
    pub from_version: u64,
    pub to_version: u64,
}

/// `cluster::RoleGranted`: the admin allowed `account` to stake for the privileged `role`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGranted {
    pub cluster_id: Address,
    pub account: Address,
    pub role: u8,
}

/// `cluster::RoleRevoked`: the admin withdrew `account`'s grant for `role`. The account's records
/// of that role stay on chain; the control plane must refuse them from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRevoked {
    pub cluster_id: Address,
    pub account: Address,
    pub role: u8,
}

/// `enclave::EnclaveRegistered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnclaveRegistered {
    pub cluster_id: Address,
    pub public_key: Vec<u8>,
    pub endpoint: String,
    /// SHA-256 of the enclave CA certificate's DER (32 bytes), from user_data.
    pub ca_sha256: Vec<u8>,
    pub attested_at_ms: u64,
    pub registered_at_ms: u64,
}

/// Any event of the package, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackageEvent {
    Staked(Staked),
    StakeAdded(StakeAdded),
    UnstakeRequested(UnstakeRequested),
    Withdrawn(Withdrawn),
    TokensRevoked(TokensRevoked),
    SlashSettled(SlashSettled),
    ClusterCreated(ClusterCreated),
    Slashed(Slashed),
    RoleMinimumChanged(RoleMinimumChanged),
    UnbondingPeriodChanged(UnbondingPeriodChanged),
    PcrsChanged(PcrsChanged),
    EnclaveOperatorChanged(EnclaveOperatorChanged),
    TreasuryWithdrawn(TreasuryWithdrawn),
    ClusterRenamed(ClusterRenamed),
    ClusterMigrated(ClusterMigrated),
    RoleGranted(RoleGranted),
    RoleRevoked(RoleRevoked),
    EnclaveRegistered(EnclaveRegistered),
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    #[error("event type {0} is not an event of this package")]
    NotOurs(String),
    #[error("event {name}: contents do not match the Move layout: {source}")]
    Layout {
        name: &'static str,
        #[source]
        source: bcs::Error,
    },
}

impl PackageEvent {
    /// Decodes an event of type `ty` with BCS `contents`. Events of other packages (or of an
    /// unknown name in ours) are [`EventDecodeError::NotOurs`]; callers usually skip those.
    pub fn decode(
        package: &Package,
        ty: &StructTag,
        contents: &[u8],
    ) -> Result<PackageEvent, EventDecodeError> {
        if *ty.address() != package.id || !ty.type_params().is_empty() {
            return Err(EventDecodeError::NotOurs(ty.to_string()));
        }
        let module = ty.module().as_str();
        let name = ty.name().as_str();
        macro_rules! decode {
            ($variant:ident) => {
                bcs::from_bytes(contents)
                    .map(PackageEvent::$variant)
                    .map_err(|source| EventDecodeError::Layout {
                        name: stringify!($variant),
                        source,
                    })
            };
        }
        match (module, name) {
            (MODULE_STAKING, "Staked") => decode!(Staked),
            (MODULE_STAKING, "StakeAdded") => decode!(StakeAdded),
            (MODULE_STAKING, "UnstakeRequested") => decode!(UnstakeRequested),
            (MODULE_STAKING, "Withdrawn") => decode!(Withdrawn),
            (MODULE_STAKING, "TokensRevoked") => decode!(TokensRevoked),
            (MODULE_STAKING, "SlashSettled") => decode!(SlashSettled),
            (MODULE_CLUSTER, "ClusterCreated") => decode!(ClusterCreated),
            (MODULE_CLUSTER, "Slashed") => decode!(Slashed),
            (MODULE_CLUSTER, "RoleMinimumChanged") => decode!(RoleMinimumChanged),
            (MODULE_CLUSTER, "UnbondingPeriodChanged") => decode!(UnbondingPeriodChanged),
            (MODULE_CLUSTER, "PcrsChanged") => decode!(PcrsChanged),
            (MODULE_CLUSTER, "EnclaveOperatorChanged") => decode!(EnclaveOperatorChanged),
            (MODULE_CLUSTER, "TreasuryWithdrawn") => decode!(TreasuryWithdrawn),
            (MODULE_CLUSTER, "ClusterRenamed") => decode!(ClusterRenamed),
            (MODULE_CLUSTER, "ClusterMigrated") => decode!(ClusterMigrated),
            (MODULE_CLUSTER, "RoleGranted") => decode!(RoleGranted),
            (MODULE_CLUSTER, "RoleRevoked") => decode!(RoleRevoked),
            (MODULE_ENCLAVE, "EnclaveRegistered") => decode!(EnclaveRegistered),
            _ => Err(EventDecodeError::NotOurs(ty.to_string())),
        }
    }

    /// `(module, struct name)` of the event's Move type.
    pub fn type_name(&self) -> (&'static str, &'static str) {
        match self {
            PackageEvent::Staked(_) => (MODULE_STAKING, "Staked"),
            PackageEvent::StakeAdded(_) => (MODULE_STAKING, "StakeAdded"),
            PackageEvent::UnstakeRequested(_) => (MODULE_STAKING, "UnstakeRequested"),
            PackageEvent::Withdrawn(_) => (MODULE_STAKING, "Withdrawn"),
            PackageEvent::TokensRevoked(_) => (MODULE_STAKING, "TokensRevoked"),
            PackageEvent::SlashSettled(_) => (MODULE_STAKING, "SlashSettled"),
            PackageEvent::ClusterCreated(_) => (MODULE_CLUSTER, "ClusterCreated"),
            PackageEvent::Slashed(_) => (MODULE_CLUSTER, "Slashed"),
            PackageEvent::RoleMinimumChanged(_) => (MODULE_CLUSTER, "RoleMinimumChanged"),
            PackageEvent::UnbondingPeriodChanged(_) => (MODULE_CLUSTER, "UnbondingPeriodChanged"),
            PackageEvent::PcrsChanged(_) => (MODULE_CLUSTER, "PcrsChanged"),
            PackageEvent::EnclaveOperatorChanged(_) => (MODULE_CLUSTER, "EnclaveOperatorChanged"),
            PackageEvent::TreasuryWithdrawn(_) => (MODULE_CLUSTER, "TreasuryWithdrawn"),
            PackageEvent::ClusterRenamed(_) => (MODULE_CLUSTER, "ClusterRenamed"),
            PackageEvent::ClusterMigrated(_) => (MODULE_CLUSTER, "ClusterMigrated"),
            PackageEvent::RoleGranted(_) => (MODULE_CLUSTER, "RoleGranted"),
            PackageEvent::RoleRevoked(_) => (MODULE_CLUSTER, "RoleRevoked"),
            PackageEvent::EnclaveRegistered(_) => (MODULE_ENCLAVE, "EnclaveRegistered"),
        }
    }

    /// The event's Move struct tag under `package`.
    pub fn struct_tag(&self, package: &Package) -> StructTag {
        let (module, name) = self.type_name();
        package.struct_tag(module, name)
    }

    /// BCS contents of the event.
    pub fn contents(&self) -> Result<Vec<u8>, bcs::Error> {
        match self {
            PackageEvent::Staked(e) => bcs::to_bytes(e),
            PackageEvent::StakeAdded(e) => bcs::to_bytes(e),
            PackageEvent::UnstakeRequested(e) => bcs::to_bytes(e),
            PackageEvent::Withdrawn(e) => bcs::to_bytes(e),
            PackageEvent::TokensRevoked(e) => bcs::to_bytes(e),
            PackageEvent::SlashSettled(e) => bcs::to_bytes(e),
            PackageEvent::ClusterCreated(e) => bcs::to_bytes(e),
            PackageEvent::Slashed(e) => bcs::to_bytes(e),
            PackageEvent::RoleMinimumChanged(e) => bcs::to_bytes(e),
            PackageEvent::UnbondingPeriodChanged(e) => bcs::to_bytes(e),
            PackageEvent::PcrsChanged(e) => bcs::to_bytes(e),
            PackageEvent::EnclaveOperatorChanged(e) => bcs::to_bytes(e),
            PackageEvent::TreasuryWithdrawn(e) => bcs::to_bytes(e),
            PackageEvent::ClusterRenamed(e) => bcs::to_bytes(e),
            PackageEvent::ClusterMigrated(e) => bcs::to_bytes(e),
            PackageEvent::RoleGranted(e) => bcs::to_bytes(e),
            PackageEvent::RoleRevoked(e) => bcs::to_bytes(e),
            PackageEvent::EnclaveRegistered(e) => bcs::to_bytes(e),
        }
    }

    /// The stake record the event is about, if any (what a follower must re-read or evict).
    pub fn record_id(&self) -> Option<Address> {
        match self {
            PackageEvent::Staked(e) => Some(e.record_id),
            PackageEvent::StakeAdded(e) => Some(e.record_id),
            PackageEvent::UnstakeRequested(e) => Some(e.record_id),
            PackageEvent::Withdrawn(e) => Some(e.record_id),
            PackageEvent::TokensRevoked(e) => Some(e.record_id),
            PackageEvent::SlashSettled(e) => Some(e.record_id),
            PackageEvent::Slashed(e) => Some(e.record_id),
            _ => None,
        }
    }

    /// The account whose role grant the event changes, if any (a grant event names an account,
    /// not a record: a follower must re-check every worker or admin record that account owns).
    pub fn account(&self) -> Option<Address> {
        match self {
            PackageEvent::RoleGranted(e) => Some(e.account),
            PackageEvent::RoleRevoked(e) => Some(e.account),
            _ => None,
        }
    }

    /// The cluster the event is about.
    pub fn cluster_id(&self) -> Address {
        match self {
            PackageEvent::Staked(e) => e.cluster_id,
            PackageEvent::StakeAdded(e) => e.cluster_id,
            PackageEvent::UnstakeRequested(e) => e.cluster_id,
            PackageEvent::Withdrawn(e) => e.cluster_id,
            PackageEvent::TokensRevoked(e) => e.cluster_id,
            PackageEvent::SlashSettled(e) => e.cluster_id,
            PackageEvent::ClusterCreated(e) => e.cluster_id,
            PackageEvent::Slashed(e) => e.cluster_id,
            PackageEvent::RoleMinimumChanged(e) => e.cluster_id,
            PackageEvent::UnbondingPeriodChanged(e) => e.cluster_id,
            PackageEvent::PcrsChanged(e) => e.cluster_id,
            PackageEvent::EnclaveOperatorChanged(e) => e.cluster_id,
            PackageEvent::TreasuryWithdrawn(e) => e.cluster_id,
            PackageEvent::ClusterRenamed(e) => e.cluster_id,
            PackageEvent::ClusterMigrated(e) => e.cluster_id,
            PackageEvent::RoleGranted(e) => e.cluster_id,
            PackageEvent::RoleRevoked(e) => e.cluster_id,
            PackageEvent::EnclaveRegistered(e) => e.cluster_id,
        }
    }
}
