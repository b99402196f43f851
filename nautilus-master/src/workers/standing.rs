//! Whether a worker's stake record still entitles its node to be in the cluster.

use std::fmt;

use daas_seal::Role;

use crate::auth::{StakeRecord, StakeStatus};

/// Why a node lost (or never had) its standing. Each is a reason a node is drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapse {
    /// `request_unstake`: drained after the operator's grace period.
    Unbonding,
    /// Slashed on chain: drained at once, PodDisruptionBudgets are not honoured.
    Slashed,
    /// The record is gone (withdrawn).
    Withdrawn,
    /// The cluster admin withdrew the owner's worker grant.
    NotGranted,
    /// Below the cluster's worker minimum (the minimum was raised).
    BelowMinimum,
    /// The record is not a worker record for this node (role or node name differ, another
    /// cluster): the binding cannot be honoured.
    Mismatch,
}

impl Lapse {
    pub fn as_str(self) -> &'static str {
        match self {
            Lapse::Unbonding => "unbonding",
            Lapse::Slashed => "slashed",
            Lapse::Withdrawn => "withdrawn",
            Lapse::NotGranted => "grant-withdrawn",
            Lapse::BelowMinimum => "below-minimum",
            Lapse::Mismatch => "record-mismatch",
        }
    }

    /// Drained at once, without waiting for PodDisruptionBudgets: the node is hostile.
    pub fn is_immediate(self) -> bool {
        matches!(self, Lapse::Slashed)
    }

    pub fn parse(s: &str) -> Option<Lapse> {
        [
            Lapse::Unbonding,
            Lapse::Slashed,
            Lapse::Withdrawn,
            Lapse::NotGranted,
            Lapse::BelowMinimum,
            Lapse::Mismatch,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Lapse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on `record` (None: withdrawn) for node `node` in `cluster`, with the worker
/// minimum `minimum_mist`.
pub fn standing(
    record: Option<&StakeRecord>,
    node: &str,
    cluster: &daas_seal::Address,
    minimum_mist: u64,
) -> Result<(), Lapse> {
    let Some(r) = record else {
        return Err(Lapse::Withdrawn);
    };
    match r.status {
        StakeStatus::Slashed => return Err(Lapse::Slashed),
        StakeStatus::Unbonding => return Err(Lapse::Unbonding),
        StakeStatus::Active => {}
    }
    if r.role != Role::Worker || r.node_name.as_deref() != Some(node) || r.cluster != *cluster {
        return Err(Lapse::Mismatch);
    }
    if !r.granted {
        return Err(Lapse::NotGranted);
    }
    if r.amount_mist < minimum_mist {
        return Err(Lapse::BelowMinimum);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_seal::Address;

    fn record() -> StakeRecord {
        StakeRecord {
            id: Address::from_static("0x1"),
            owner: Address::from_static("0x2"),
            cluster: Address::from_static("0x3"),
            role: Role::Worker,
            node_name: Some("w-1".into()),
            amount_mist: 10,
            status: StakeStatus::Active,
            token_epoch: 0,
            granted: true,
        }
    }

    #[test]
    fn verdicts() {
        let cluster = Address::from_static("0x3");
        let check = |r: Option<&StakeRecord>| standing(r, "w-1", &cluster, 10);
        assert_eq!(check(Some(&record())), Ok(()));
        assert_eq!(check(None), Err(Lapse::Withdrawn));
        let with = |f: fn(&mut StakeRecord)| {
            let mut r = record();
            f(&mut r);
            r
        };
        assert_eq!(
            check(Some(&with(|r| r.status = StakeStatus::Slashed))),
            Err(Lapse::Slashed)
        );
        assert_eq!(
            check(Some(&with(|r| r.status = StakeStatus::Unbonding))),
            Err(Lapse::Unbonding)
        );
        assert_eq!(
            check(Some(&with(|r| r.granted = false))),
            Err(Lapse::NotGranted)
        );
        assert_eq!(
            check(Some(&with(|r| r.amount_mist = 9))),
            Err(Lapse::BelowMinimum)
        );
        assert_eq!(
            check(Some(&with(|r| r.node_name = Some("w-2".into())))),
            Err(Lapse::Mismatch)
        );
        assert_eq!(
            check(Some(&with(|r| r.role = Role::User))),
            Err(Lapse::Mismatch)
        );
        assert!(Lapse::Slashed.is_immediate() && !Lapse::Unbonding.is_immediate());
        for l in [Lapse::Unbonding, Lapse::Slashed, Lapse::NotGranted] {
            assert_eq!(Lapse::parse(l.as_str()), Some(l));
        }
    }
}
