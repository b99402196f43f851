//! Rust mirrors of the `k3s_daas` Move package (`move-contracts/`).
//!
//! Every Move struct the Rust side reads or the devnet writes, and every event the package emits,
//! has a serde type here whose field order is the Move declaration order, so `bcs` encodes it to
//! the same bytes as Move's `std::bcs::to_bytes`. Golden vectors (`tests/golden.rs`, asserted on
//! the Move side by `move-contracts/tests/golden_tests.move`) keep the two from drifting.
//!
//! Also here: the package's constants ([`consts`]), its abort codes with their meaning
//! ([`abort`]), and the type tags and function names of the package ([`package`]).
//!
//! No I/O; shared by the chain client (`daas-chain`) and the development chain (`k3s-daas-devnet`).

pub mod abort;
pub mod consts;
pub mod events;
pub mod objects;
pub mod package;

pub use abort::{AbortCode, PackageAbort};
pub use events::PackageEvent;
pub use objects::{AdminCap, Cluster, Coin, Enclave, Field, StakeRecord, Table};
pub use package::Package;
pub use sui_sdk_types::Address;

/// Decodes BCS bytes into `T`, requiring every byte to be consumed.
pub fn from_bcs<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bcs::Error> {
    bcs::from_bytes(bytes)
}

/// Encodes `value` as BCS.
pub fn to_bcs<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, bcs::Error> {
    bcs::to_bytes(value)
}
