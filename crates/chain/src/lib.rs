//! The K3s-DaaS chain client: everything the project does with Sui, over gRPC v2 (`sui-rpc`).
//!
//! - [`Chain`] is the small seam the rest of the code uses (reads, gas price, execute);
//!   [`GrpcChain`] implements it on `sui_rpc::Client` — the same client runs against Sui full
//!   nodes and against the local development chain (`k3s-daas-devnet`).
//! - [`tx`] builds `k3s_daas` transactions offline with `sui-transaction-builder` (`try_build`,
//!   explicit gas coins and gas price), so nothing is simulated or selected by a server.
//! - [`effects`] decodes an executed transaction: status, Move aborts mapped to the package's
//!   abort codes, changed objects, package events.
//! - [`follow`] follows checkpoints from the chain tip (at every connect), handing each
//!   checkpoint's changes to a handler in order and reporting whether it is caught up.
//! - [`enclave`] reads the cluster's registered enclave (`Cluster.enclave`) as a typed value.
//! - Reads return [`AtCheckpoint`]: the answer plus the checkpoint height the endpoint reported
//!   for it, so a reader can refuse answers older than what it has already seen.
//!
//! Layouts of the package's objects and events live in `daas-chain-types`.

pub mod config;
pub mod effects;
pub mod enclave;
pub mod error;
pub mod follow;
mod grpc;
pub mod tx;

pub use config::{ChainConfig, Deployment, Network};
pub use effects::{ChangedObject, Executed, ObjectChange};
pub use enclave::{RegisteredEnclave, registered_enclave};
pub use error::ChainError;
pub use grpc::GrpcChain;

use std::future::Future;

use daas_chain_types::{AdminCap, Cluster, StakeRecord};
use sui_sdk_types::{Address, Digest, Transaction, UserSignature};

/// A chain answer together with the checkpoint height the endpoint reported with it
/// (`x-sui-checkpoint-height`): the answer reflects every checkpoint up to that height. `None`
/// when the endpoint sent no height; treat that as older than anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtCheckpoint<T> {
    pub value: T,
    pub checkpoint: Option<u64>,
}

impl<T> AtCheckpoint<T> {
    pub fn new(value: T, checkpoint: Option<u64>) -> Self {
        AtCheckpoint { value, checkpoint }
    }

    /// Whether the answer reflects checkpoint `height` (and every one before it).
    pub fn reflects(&self, height: u64) -> bool {
        self.checkpoint.is_some_and(|c| c >= height)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> AtCheckpoint<U> {
        AtCheckpoint {
            value: f(self.value),
            checkpoint: self.checkpoint,
        }
    }
}

/// A reference to an owned object at one version (what a transaction input needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub id: Address,
    pub version: u64,
    pub digest: Digest,
}

/// A SUI coin owned by an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiCoin {
    pub object: ObjectRef,
    pub balance: u64,
}

/// A stake record as read from the chain: its object reference and decoded fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordObject {
    pub object: ObjectRef,
    pub record: StakeRecord,
}

/// A cluster's `AdminCap` as read from the chain: its reference, the address owning it, and
/// its fields (the cluster it administers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCapObject {
    pub object: ObjectRef,
    pub owner: Address,
    pub cap: AdminCap,
}

/// The cluster object at some version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterObject {
    pub version: u64,
    pub cluster: Cluster,
}

/// What a chain endpoint says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// Base58 digest of the genesis checkpoint.
    pub chain_id: String,
    /// Human name ("mainnet", "testnet", "k3s-daas-devnet", …).
    pub chain: String,
    pub epoch: u64,
    pub checkpoint_height: u64,
}

/// The chain, as the rest of K3s-DaaS needs it. Implemented by [`GrpcChain`]; a GraphQL
/// backend could implement it too.
pub trait Chain: Send + Sync {
    /// Chain id and height of the endpoint.
    fn info(&self) -> impl Future<Output = Result<ChainInfo, ChainError>> + Send;

    /// Reference gas price of the current epoch (MIST per gas unit).
    fn reference_gas_price(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    /// The stake record `id` of the configured package, `None` if it does not exist (or was
    /// deleted). An object of any other type or owner is an error, never a record.
    fn stake_record(
        &self,
        id: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<Option<RecordObject>>, ChainError>> + Send;

    /// The configured cluster object.
    fn cluster(
        &self,
    ) -> impl Future<Output = Result<AtCheckpoint<ClusterObject>, ChainError>> + Send;

    /// Whether `record` is in the cluster's slashed table `slashed_table`.
    fn is_slashed(
        &self,
        slashed_table: Address,
        record: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<bool>, ChainError>> + Send;

    /// The roles `account` holds the cluster admin's grant for, as the bitmask of its entry in
    /// the cluster's grants table `grants_table` (`Cluster.grants`; bit `1 << role`, see
    /// `daas_chain_types::consts::mask_grants`); 0 when it has no entry. Worker and admin stakes
    /// need the grant, and a record whose owner has lost it must be refused.
    fn role_grants(
        &self,
        grants_table: Address,
        account: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<u8>, ChainError>> + Send;

    /// Every SUI coin `owner` owns.
    fn sui_coins(
        &self,
        owner: Address,
    ) -> impl Future<Output = Result<Vec<SuiCoin>, ChainError>> + Send;

    /// Every stake record of the configured package that `owner` owns.
    fn stake_records_of(
        &self,
        owner: Address,
    ) -> impl Future<Output = Result<Vec<RecordObject>, ChainError>> + Send;

    /// Executes a signed transaction and waits until it is in a checkpoint. A transaction that
    /// executed but failed (e.g. a Move abort) is `Ok` with a failed [`Executed::status`].
    fn execute(
        &self,
        transaction: Transaction,
        signatures: Vec<UserSignature>,
    ) -> impl Future<Output = Result<Executed, ChainError>> + Send;
}

impl<T: Chain> Chain for std::sync::Arc<T> {
    fn info(&self) -> impl Future<Output = Result<ChainInfo, ChainError>> + Send {
        (**self).info()
    }
    fn reference_gas_price(&self) -> impl Future<Output = Result<u64, ChainError>> + Send {
        (**self).reference_gas_price()
    }
    fn stake_record(
        &self,
        id: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<Option<RecordObject>>, ChainError>> + Send {
        (**self).stake_record(id)
    }
    fn cluster(
        &self,
    ) -> impl Future<Output = Result<AtCheckpoint<ClusterObject>, ChainError>> + Send {
        (**self).cluster()
    }
    fn is_slashed(
        &self,
        slashed_table: Address,
        record: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<bool>, ChainError>> + Send {
        (**self).is_slashed(slashed_table, record)
    }
    fn role_grants(
        &self,
        grants_table: Address,
        account: Address,
    ) -> impl Future<Output = Result<AtCheckpoint<u8>, ChainError>> + Send {
        (**self).role_grants(grants_table, account)
    }
    fn sui_coins(
        &self,
        owner: Address,
    ) -> impl Future<Output = Result<Vec<SuiCoin>, ChainError>> + Send {
        (**self).sui_coins(owner)
    }
    fn stake_records_of(
        &self,
        owner: Address,
    ) -> impl Future<Output = Result<Vec<RecordObject>, ChainError>> + Send {
        (**self).stake_records_of(owner)
    }
    fn execute(
        &self,
        transaction: Transaction,
        signatures: Vec<UserSignature>,
    ) -> impl Future<Output = Result<Executed, ChainError>> + Send {
        (**self).execute(transaction, signatures)
    }
}
