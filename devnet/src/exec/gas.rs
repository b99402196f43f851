//! The devnet's gas cost model: simple, documented, and in the same units as Sui (MIST).
//!
//! - **Computation**: a flat [`COMPUTATION_UNITS`] gas units per transaction, times the
//!   transaction's gas price (at the reference price of 1000: 1_000_000 MIST = 0.001 SUI).
//! - **Storage**: every object the transaction writes (created or mutated, the gas coin
//!   included) costs `bcs_size(object) ×` [`STORAGE_PRICE_PER_BYTE`] MIST; that amount is also
//!   stored in the object's `storage_rebate`.
//! - **Rebate**: every mutated or deleted input object refunds its whole `storage_rebate`
//!   (Sui keeps 1% as a non-refundable fee; the devnet keeps nothing, so
//!   `non_refundable_storage_fee` is always 0).
//! - The gas coin pays `computation + storage - rebate` (which can be negative: deleting
//!   objects earns MIST). `computation + storage` must fit in the budget, otherwise execution
//!   fails with `InsufficientGas` and only the failure charge applies.
//! - A failed transaction pays computation plus the storage of the objects it still writes
//!   (its mutable inputs with bumped versions, and the gas coin), minus their rebates.

use sui_sdk_types::{GasCostSummary, Object};

/// Gas units charged per transaction.
pub(crate) const COMPUTATION_UNITS: u64 = 1_000;
/// MIST per byte of written object (Sui: 76 storage units × 100 MIST per byte-unit).
pub(crate) const STORAGE_PRICE_PER_BYTE: u64 = 7_600;
/// Reference gas price (MIST per unit) of the devnet's only epoch.
pub const REFERENCE_GAS_PRICE: u64 = 1_000;
/// Highest gas price accepted (as on Sui).
pub(crate) const MAX_GAS_PRICE: u64 = 100_000_000_000;
/// Highest gas budget accepted: 50 SUI (as on Sui).
pub(crate) const MAX_GAS_BUDGET: u64 = 50_000_000_000;

/// Computation cost of one transaction at `gas_price` (also the minimum budget).
pub(crate) fn computation_cost(gas_price: u64) -> u64 {
    gas_price.saturating_mul(COMPUTATION_UNITS)
}

/// Storage cost of keeping `object` (its BCS size, independent of its rebate field's value).
pub(crate) fn storage_cost(object: &Object) -> u64 {
    let size = bcs::serialized_size(object).unwrap_or(0) as u64;
    size.saturating_mul(STORAGE_PRICE_PER_BYTE)
}

/// The charge of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Charge {
    pub(crate) summary: GasCostSummary,
}

impl Charge {
    /// `computation + storage`, capped at `budget` (computation is reduced first, as Sui does
    /// when a transaction runs out of gas).
    pub(crate) fn new(computation: u64, storage: u64, rebate: u64, budget: u64) -> Charge {
        let storage = storage.min(budget);
        let computation = computation.min(budget - storage);
        Charge {
            summary: GasCostSummary::new(computation, storage, rebate, 0),
        }
    }

    /// Net MIST taken from the gas coin (negative: credited).
    pub(crate) fn net(&self) -> i128 {
        i128::from(self.summary.computation_cost) + i128::from(self.summary.storage_cost)
            - i128::from(self.summary.storage_rebate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_caps_at_the_budget_and_nets_the_rebate() {
        let c = Charge::new(1_000_000, 500_000, 200_000, 10_000_000);
        assert_eq!(c.net(), 1_300_000);
        let capped = Charge::new(1_000_000, 500_000, 0, 1_200_000);
        assert_eq!(capped.summary.storage_cost, 500_000);
        assert_eq!(capped.summary.computation_cost, 700_000);
        assert_eq!(capped.net(), 1_200_000);
        let credit = Charge::new(1_000, 0, 5_000, 10_000);
        assert_eq!(credit.net(), -4_000);
    }
}
