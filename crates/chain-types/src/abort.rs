//! Abort codes of the package, with what they mean to a staker or operator.
//!
//! A Move abort arrives as a failed transaction effect carrying `(module, abort_code)`. Codes are
//! per module, so a code alone is ambiguous: [`PackageAbort::from_location`] takes both.

use std::fmt;

use crate::package::{MODULE_CLUSTER, MODULE_ENCLAVE, MODULE_STAKING};

/// Every `E*` constant of the package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbortCode {
    // cluster
    WrongVersion,
    NotUpgrade,
    WrongAdminCap,
    InvalidRole,
    ZeroMinimum,
    UnbondingTooLong,
    InvalidPcrLength,
    InsufficientTreasury,
    ZeroAmount,
    AlreadySlashed,
    InvalidName,
    RoleNotGrantable,
    AlreadyGranted,
    NotGranted,
    ZeroPcr,
    // staking
    BelowMinimum,
    InvalidNodeName,
    WrongCluster,
    NotOwner,
    NotActive,
    AlreadyUnbonding,
    NotUnbonding,
    UnbondingNotElapsed,
    RecordSlashed,
    NotSlashed,
    AlreadySettled,
    ZeroStake,
    NoGrant,
    // enclave
    EnclaveNotConfigured,
    PcrMismatch,
    AttestationStale,
    AttestationFromFuture,
    MissingUserData,
    UserDataWrongCluster,
    MissingPublicKey,
    InvalidEndpoint,
    NotEnclaveOperator,
    AttestationNotNewer,
    DebugAttestation,
    UserDataTooShort,
    UserDataBadMagic,
    UserDataUnsupportedVersion,
    UserDataEndpointMismatch,
}

use AbortCode::*;

/// `(code, module, numeric code, meaning)`, in the order of the Move sources.
const TABLE: &[(AbortCode, &str, u64, &str)] = &[
    (
        WrongVersion,
        MODULE_CLUSTER,
        1,
        "the cluster is at another package version (old package after an upgrade, or not migrated)",
    ),
    (
        NotUpgrade,
        MODULE_CLUSTER,
        2,
        "the cluster is already at this package version",
    ),
    (
        WrongAdminCap,
        MODULE_CLUSTER,
        3,
        "the admin capability belongs to another cluster",
    ),
    (
        InvalidRole,
        MODULE_CLUSTER,
        4,
        "unknown role (worker, user and admin are 0, 1 and 2)",
    ),
    (
        ZeroMinimum,
        MODULE_CLUSTER,
        5,
        "a role minimum of 0 MIST is not allowed",
    ),
    (
        UnbondingTooLong,
        MODULE_CLUSTER,
        6,
        "the unbonding period may be at most 30 days",
    ),
    (
        InvalidPcrLength,
        MODULE_CLUSTER,
        7,
        "an expected PCR must be 48 bytes",
    ),
    (
        InsufficientTreasury,
        MODULE_CLUSTER,
        8,
        "the treasury holds less than the requested amount",
    ),
    (
        ZeroAmount,
        MODULE_CLUSTER,
        9,
        "a treasury withdrawal of 0 MIST is not allowed",
    ),
    (
        AlreadySlashed,
        MODULE_CLUSTER,
        10,
        "the stake record is already marked as slashed",
    ),
    (
        InvalidName,
        MODULE_CLUSTER,
        11,
        "the cluster name is not a DNS label",
    ),
    (
        RoleNotGrantable,
        MODULE_CLUSTER,
        12,
        "only the worker and admin roles are granted (users need no grant)",
    ),
    (
        AlreadyGranted,
        MODULE_CLUSTER,
        13,
        "the account already holds a grant for this role",
    ),
    (
        NotGranted,
        MODULE_CLUSTER,
        14,
        "the account holds no grant for this role",
    ),
    (
        ZeroPcr,
        MODULE_CLUSTER,
        15,
        "an expected PCR is all zero (a debug-mode enclave's value)",
    ),
    (
        BelowMinimum,
        MODULE_STAKING,
        20,
        "the stake is below the cluster's minimum for the role",
    ),
    (
        InvalidNodeName,
        MODULE_STAKING,
        21,
        "a worker needs a DNS-label node name; users and admins must not give one",
    ),
    (
        WrongCluster,
        MODULE_STAKING,
        22,
        "the stake record belongs to another cluster",
    ),
    (
        NotOwner,
        MODULE_STAKING,
        23,
        "only the record's owner may do this",
    ),
    (
        NotActive,
        MODULE_STAKING,
        24,
        "stake can only be added to an active record",
    ),
    (
        AlreadyUnbonding,
        MODULE_STAKING,
        25,
        "an unstake was already requested for this record",
    ),
    (
        NotUnbonding,
        MODULE_STAKING,
        26,
        "request an unstake before withdrawing",
    ),
    (
        UnbondingNotElapsed,
        MODULE_STAKING,
        27,
        "the unbonding period has not elapsed yet",
    ),
    (
        RecordSlashed,
        MODULE_STAKING,
        28,
        "the stake record was slashed",
    ),
    (
        NotSlashed,
        MODULE_STAKING,
        29,
        "the stake record is not slashed",
    ),
    (
        AlreadySettled,
        MODULE_STAKING,
        30,
        "the slash of this record is already settled",
    ),
    (
        ZeroStake,
        MODULE_STAKING,
        31,
        "cannot add a zero-value coin",
    ),
    (
        NoGrant,
        MODULE_STAKING,
        32,
        "staking as worker or admin needs the cluster admin's grant for that role",
    ),
    (
        EnclaveNotConfigured,
        MODULE_ENCLAVE,
        40,
        "the cluster has no expected PCRs yet",
    ),
    (
        PcrMismatch,
        MODULE_ENCLAVE,
        41,
        "the attested PCRs differ from the cluster's expected PCRs",
    ),
    (
        AttestationStale,
        MODULE_ENCLAVE,
        42,
        "the attestation is more than 5 minutes old",
    ),
    (
        AttestationFromFuture,
        MODULE_ENCLAVE,
        43,
        "the attestation is more than 1 minute ahead of the chain clock",
    ),
    (
        MissingUserData,
        MODULE_ENCLAVE,
        44,
        "the attestation has no user_data",
    ),
    (
        UserDataWrongCluster,
        MODULE_ENCLAVE,
        45,
        "the attestation's user_data names another cluster",
    ),
    (
        MissingPublicKey,
        MODULE_ENCLAVE,
        46,
        "the attestation has no public key",
    ),
    (
        InvalidEndpoint,
        MODULE_ENCLAVE,
        47,
        "the endpoint must be 1 to 256 bytes",
    ),
    (
        NotEnclaveOperator,
        MODULE_ENCLAVE,
        48,
        "only the cluster's enclave operator may register the enclave",
    ),
    (
        AttestationNotNewer,
        MODULE_ENCLAVE,
        49,
        "the attestation is not newer than the registered one",
    ),
    (
        DebugAttestation,
        MODULE_ENCLAVE,
        50,
        "the attestation comes from a debug-mode enclave (PCR0, PCR1 or PCR2 all zero)",
    ),
    (
        UserDataTooShort,
        MODULE_ENCLAVE,
        51,
        "the attestation's user_data is shorter than the 72-byte header of layout v1",
    ),
    (
        UserDataBadMagic,
        MODULE_ENCLAVE,
        52,
        "the attestation's user_data does not start with the K3SDAAS magic",
    ),
    (
        UserDataUnsupportedVersion,
        MODULE_ENCLAVE,
        53,
        "the attestation's user_data has a layout version other than 1",
    ),
    (
        UserDataEndpointMismatch,
        MODULE_ENCLAVE,
        54,
        "the endpoint in the attestation's user_data differs from the registered endpoint",
    ),
];

impl AbortCode {
    fn entry(self) -> &'static (AbortCode, &'static str, u64, &'static str) {
        TABLE
            .iter()
            .find(|e| e.0 == self)
            .unwrap_or_else(|| unreachable!("every AbortCode is in TABLE"))
    }

    /// The Move module that defines the constant.
    pub fn module(self) -> &'static str {
        self.entry().1
    }

    /// The numeric abort code.
    pub fn code(self) -> u64 {
        self.entry().2
    }

    /// What it means, for error messages.
    pub fn meaning(self) -> &'static str {
        self.entry().3
    }

    /// Looks up `(module, code)`.
    pub fn from_location(module: &str, code: u64) -> Option<AbortCode> {
        TABLE
            .iter()
            .find(|e| e.1 == module && e.2 == code)
            .map(|e| e.0)
    }

    /// Every code, in source order.
    pub fn all() -> impl Iterator<Item = AbortCode> {
        TABLE.iter().map(|e| e.0)
    }
}

impl fmt::Display for AbortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}::E{:?} ({}): {}",
            self.module(),
            self,
            self.code(),
            self.meaning()
        )
    }
}

/// A Move abort raised by this package: where, the raw code, and its meaning when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageAbort {
    pub module: String,
    pub function: Option<String>,
    pub code: u64,
    pub known: Option<AbortCode>,
}

impl PackageAbort {
    pub fn from_location(module: &str, function: Option<&str>, code: u64) -> PackageAbort {
        PackageAbort {
            module: module.to_owned(),
            function: function.map(str::to_owned),
            code,
            known: AbortCode::from_location(module, code),
        }
    }
}

impl fmt::Display for PackageAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.known, &self.function) {
            (Some(k), _) => write!(f, "{}", k.meaning())?,
            (None, _) => write!(f, "aborted with code {}", self.code)?,
        }
        write!(f, " [{}", self.module)?;
        if let Some(func) = &self.function {
            write!(f, "::{func}")?;
        }
        write!(f, ", abort code {}]", self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_per_module_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in AbortCode::all() {
            assert!(seen.insert((c.module(), c.code())), "duplicate {c}");
            assert_eq!(AbortCode::from_location(c.module(), c.code()), Some(c));
        }
        assert_eq!(seen.len(), 43);
    }

    #[test]
    fn codes_are_per_module() {
        assert_eq!(
            AbortCode::from_location(MODULE_STAKING, 20),
            Some(BelowMinimum)
        );
        assert_eq!(AbortCode::from_location(MODULE_CLUSTER, 20), None);
        assert_eq!(AbortCode::from_location(MODULE_STAKING, 999), None);
        let a = PackageAbort::from_location(MODULE_STAKING, Some("withdraw"), 27);
        assert_eq!(a.known, Some(UnbondingNotElapsed));
        assert_eq!(
            a.to_string(),
            "the unbonding period has not elapsed yet [staking::withdraw, abort code 27]"
        );
    }

    /// The table mirrors the Move sources: every `const E…: u64 = N;` appears with that number.
    #[test]
    fn table_matches_the_move_sources() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../move-contracts/sources");
        let mut from_move = Vec::new();
        for module in [MODULE_CLUSTER, MODULE_STAKING, MODULE_ENCLAVE] {
            let src = std::fs::read_to_string(format!("{root}/{module}.move")).expect("source");
            for line in src.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("const E")
                    && let Some((name, value)) = rest.split_once(": u64 = ")
                {
                    let n: u64 = value.trim_end_matches(';').parse().expect("number");
                    from_move.push((module, name.to_owned(), n));
                }
            }
        }
        assert_eq!(from_move.len(), TABLE.len());
        for (module, name, n) in from_move {
            let code = AbortCode::from_location(module, n)
                .unwrap_or_else(|| panic!("{module}::E{name} = {n} missing"));
            assert_eq!(format!("{code:?}"), name, "{module} code {n}");
        }
    }
}
