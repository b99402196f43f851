//! # k3s-daas-devnet: the K3s-DaaS development chain
//!
//! **This is a development chain, not Sui. It does not run Move.** It models the `k3s_daas` Move
//! package (`move-contracts/`) natively in Rust and serves the subset of the Sui gRPC v2 API the
//! project uses, so that the unchanged `sui_rpc::Client` (and, through gRPC-Web on the same port,
//! the TypeScript `SuiGrpcClient`) can talk to it. Everything the project builds is tested
//! against it because no Sui node can be installed here; real networks remain the reference.
//!
//! ## What it is faithful to
//! - Objects are real `sui_sdk_types::Object`s (Move structs with the package's struct tags and
//!   BCS layouts from `daas_chain_types`), with Sui digests, Lamport versions (max input
//!   version + 1) and ids derived from the transaction digest.
//! - Transactions are real signed Sui transactions: every signature is verified, the sender must
//!   sign, owned input and gas references must name the current version and digest (stale or
//!   unknown refs are rejected with a gRPC error before execution), gas price and budget are
//!   checked, and a transaction submitted twice executes once.
//! - Execution runs the programmable transaction: `SplitCoins`, `MergeCoins`, `TransferObjects`,
//!   `MakeMoveVec` (primitive elements) and `MoveCall`s to the modelled functions (see
//!   "Modelled functions" below), with results, nested results, argument type and
//!   ownership checks, and the unused-value check. Aborts and execution errors are **failed
//!   effects** (gas charged, mutable inputs bumped, nothing else changed), never gRPC errors.
//! - Every executed transaction is sealed at once into its own checkpoint (genesis is
//!   checkpoint 0; the chain id is its base58 digest). When idle, the devnet seals an empty
//!   checkpoint every `heartbeat` so that subscriptions keep making progress.
//! - State persists in the data directory after every checkpoint: one record appended to the
//!   checkpoint log and synced, folded into an atomic snapshot every 10,000 records or 64 MiB
//!   ([`Persistence`]).
//!
//! ## Modelled functions
//! `k3s_daas::staking::{stake, add_stake, request_unstake, withdraw, revoke_tokens,
//! settle_slash}` and `k3s_daas::cluster::{set_role_minimum, set_unbonding_period,
//! set_expected_pcrs, set_enclave_operator, set_name, withdraw_treasury, slash, grant_role,
//! revoke_role, migrate}` with the Move source's checks, abort codes (module and function of the
//! aborting Move function), events and object changes; the cluster's slashed set and its role
//! grants are real `0x2::table::Table<ID, bool>` and `Table<address, u8>` whose entries are
//! dynamic-field objects (`daas_chain_types::package::{slashed_entry_id, grant_entry_id}`).
//! `k3s_daas::enclave::register_enclave` with every check of the Move source. From the
//! framework: `0x2::coin::destroy_zero`, `0x2::transfer::public_transfer`, and
//! `0x2::nitro_attestation::load_nitro_attestation` with Sui's native rules
//! (`daas_attestation::verify`: COSE, certificate chain, validity at the clock time; aborts 1
//! parse, 2 verify, 3 invalid PCRs), returning a `NitroAttestationDocument` value whose PCR list
//! follows Sui's current parsing (sorted by index; PCRs 0-4 and 8 even when zero, other PCRs
//! when non-zero). It trusts the **AWS Nitro root G1** and, only when the node is started with
//! one ([`DevnetOptions::trust_dev_attestation_root`], `--trust-dev-attestation-root FILE`), a
//! **DEV root** (logged as a warning at start and at every document it accepts). Any other
//! function fails with `FunctionNotFound` effects. Transactions see the wall clock (ms) as
//! `Clock` time.
//!
//! ## RPCs
//! LedgerService: `GetServiceInfo`, `GetEpoch`, `GetObject`, `BatchGetObjects`,
//! `GetTransaction`, `BatchGetTransactions`, `GetCheckpoint`, `ListCheckpoints`.
//! StateService: `ListOwnedObjects`, `GetBalance`, `ListBalances`, `ListDynamicFields`.
//! TransactionExecutionService: `ExecuteTransaction`. SubscriptionService:
//! `SubscribeCheckpoints`. Everything else answers `UNIMPLEMENTED`.
//!
//! ## Gas
//! Reference gas price 1000 MIST (epoch 0 forever). Computation is a flat 1000 gas units × the
//! transaction's gas price (0.001 SUI at the reference price; also the minimum budget). Storage
//! is 7600 MIST per BCS byte of every object the transaction writes (gas coin included), stored
//! as the object's `storage_rebate`; mutating or deleting an object refunds its whole rebate
//! (no non-refundable fee). The gas coin pays `computation + storage - rebate`; if
//! `computation + storage` exceeds the budget the transaction fails with `InsufficientGas`.
//! Multiple gas coins are merged into the first one. Maximum budget 50 SUI.
//!
//! ## Not modelled
//! Move bytecode and publishing/upgrades, `SimulateTransaction`, `ListTransactions`,
//! `ListEvents`, transaction and event subscriptions, list/subscription filters, sponsored
//! transactions, `Receiving` and funds-withdrawal inputs, shared-object congestion, epochs, the
//! advancing on-chain `Clock` object (transactions see wall time; the stored `0x6` keeps its
//! genesis value), validator signatures on checkpoints, and node-computed `json`/`display`.

mod client_config;
mod error;
mod exec;
pub mod faucet;
pub mod genesis;
mod journal;
mod model;
mod node;
mod persist;
pub mod process;
mod rpc;
mod server;
mod state;
mod store;
mod trust;

pub use client_config::{CLIENT_CONFIG_FILE, ClientConfig};
pub use error::DevnetError;
pub use exec::REFERENCE_GAS_PRICE;
pub use genesis::{GenesisConfig, init};
pub use node::{DEFAULT_HEARTBEAT, Devnet};
pub use persist::{LogPolicy, Persistence};
pub use rpc::CHAIN_NAME;
pub use server::LocalDevnet;
pub use state::ChainInfo;
pub use store::SNAPSHOT_FILE;
pub use trust::DevnetOptions;
