//! Move objects of the package and of the Sui framework, as BCS-compatible Rust structs.
//!
//! Field order is the Move declaration order. `UID`/`ID` are 32-byte addresses and
//! `Balance<T>` is its `u64` value, exactly as BCS lays them out.

use serde::{Deserialize, Serialize};
use sui_sdk_types::Address;

use crate::consts;

/// `k3s_daas::staking::StakeRecord`: one stake, owned by `owner`, holding its own balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeRecord {
    pub id: Address,
    pub cluster_id: Address,
    pub owner: Address,
    /// [`consts::ROLE_WORKER`], [`consts::ROLE_USER`] or [`consts::ROLE_ADMIN`].
    pub role: u8,
    /// Worker node name (DNS label); empty for users and admins.
    pub node_name: String,
    /// `Balance<SUI>` in MIST.
    pub balance: u64,
    /// [`consts::STATUS_ACTIVE`], [`consts::STATUS_UNBONDING`] or [`consts::STATUS_SLASHED`].
    pub status: u8,
    pub token_epoch: u64,
    pub staked_at_ms: u64,
    /// 0 unless an unstake was requested.
    pub unbond_requested_at_ms: u64,
}

impl StakeRecord {
    /// When the funds become withdrawable under `unbonding_period_ms`, if unbonding.
    pub fn withdrawable_at_ms(&self, unbonding_period_ms: u64) -> Option<u64> {
        (self.status == consts::STATUS_UNBONDING).then(|| {
            self.unbond_requested_at_ms
                .saturating_add(unbonding_period_ms)
        })
    }
}

/// `k3s_daas::cluster::Enclave`: the registered enclave (stored inside the cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclave {
    /// The attestation document's `public_key` (the enclave CA's SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// Where the enclave serves; bound into the attestation's user_data.
    pub endpoint: String,
    /// SHA-256 of the DER of the enclave's CA certificate (32 bytes), bound into the
    /// attestation's user_data (layout v1); clients pin the CA whose certificate hashes to this.
    pub ca_sha256: Vec<u8>,
    pub pcr0: Vec<u8>,
    pub pcr1: Vec<u8>,
    pub pcr2: Vec<u8>,
    pub attested_at_ms: u64,
    pub registered_at_ms: u64,
}

/// `0x2::table::Table<K, V>`: the entries are dynamic fields of `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub id: Address,
    pub size: u64,
}

/// `k3s_daas::cluster::Cluster`: the shared configuration object of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: Address,
    pub version: u64,
    pub name: String,
    pub min_stake_worker: u64,
    pub min_stake_user: u64,
    pub min_stake_admin: u64,
    pub unbonding_period_ms: u64,
    pub expected_pcr0: Vec<u8>,
    pub expected_pcr1: Vec<u8>,
    pub expected_pcr2: Vec<u8>,
    pub enclave_operator: Address,
    pub enclave: Option<Enclave>,
    /// `Balance<SUI>` in MIST.
    pub treasury: u64,
    /// `Table<ID, bool>` of slashed record ids; read an entry with [`crate::package::slashed_entry_id`].
    pub slashed: Table,
    /// `Table<address, u8>` of role grants: per account, the bitmask of the privileged roles it may
    /// stake for (bit `1 << role`, see [`consts::mask_grants`]); read an entry with
    /// [`crate::package::grant_entry_id`]. No entry means no grant.
    pub grants: Table,
}

impl Cluster {
    /// `cluster::min_stake`; `None` for an unknown role (Move aborts with `EInvalidRole`).
    pub fn min_stake(&self, role: u8) -> Option<u64> {
        match role {
            consts::ROLE_WORKER => Some(self.min_stake_worker),
            consts::ROLE_USER => Some(self.min_stake_user),
            consts::ROLE_ADMIN => Some(self.min_stake_admin),
            _ => None,
        }
    }
}

/// `k3s_daas::cluster::AdminCap`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCap {
    pub id: Address,
    pub cluster_id: Address,
}

/// `0x2::coin::Coin<T>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coin {
    pub id: Address,
    /// `Balance<T>` value.
    pub balance: u64,
}

/// `0x2::clock::Clock` (the shared object `0x6`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    pub id: Address,
    pub timestamp_ms: u64,
}

/// `0x2::dynamic_field::Field<K, V>`: one dynamic field (e.g. a `Table` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field<K, V> {
    pub id: Address,
    pub name: K,
    pub value: V,
}

/// `0x2::nitro_attestation::PCREntry`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrEntry {
    pub index: u8,
    pub value: Vec<u8>,
}

/// `0x2::nitro_attestation::NitroAttestationDocument`: what `load_nitro_attestation` returns
/// after verifying a document (`drop` only, not an object; the certificate and cabundle are not
/// exposed). `pcrs` is sorted by index; under Sui's current parsing it holds PCRs 0-4 and 8 even
/// when zero plus every other non-zero PCR, so look PCRs up by index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NitroAttestationDocument {
    /// `module_id` as UTF-8 bytes.
    pub module_id: Vec<u8>,
    /// ms since the UNIX epoch.
    pub timestamp: u64,
    /// `digest` as UTF-8 bytes (`SHA384`).
    pub digest: Vec<u8>,
    pub pcrs: Vec<PcrEntry>,
    pub public_key: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
}

impl NitroAttestationDocument {
    /// PCR `index` from the list (by index, never by position), if present.
    pub fn pcr(&self, index: u8) -> Option<&[u8]> {
        self.pcrs
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.value.as_slice())
    }
}
