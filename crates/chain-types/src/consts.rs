//! Constants of the Move package (`cluster.move`, `staking.move`, `enclave.move`).

/// `cluster::VERSION`: the package version a `Cluster` must be at.
pub const VERSION: u64 = 1;

/// `cluster::ROLE_*`.
pub const ROLE_WORKER: u8 = 0;
pub const ROLE_USER: u8 = 1;
pub const ROLE_ADMIN: u8 = 2;

/// `staking::STATUS_*`.
pub const STATUS_ACTIVE: u8 = 0;
pub const STATUS_UNBONDING: u8 = 1;
pub const STATUS_SLASHED: u8 = 2;

/// 1 SUI in MIST.
pub const MIST_PER_SUI: u64 = 1_000_000_000;

/// `cluster::DEFAULT_MIN_STAKE_*` (MIST).
pub const DEFAULT_MIN_STAKE_WORKER: u64 = 1_000_000_000;
pub const DEFAULT_MIN_STAKE_USER: u64 = 500_000_000;
pub const DEFAULT_MIN_STAKE_ADMIN: u64 = 10_000_000_000;

/// `cluster::DEFAULT_UNBONDING_PERIOD_MS` (24 h) and `MAX_UNBONDING_PERIOD_MS` (30 days).
pub const DEFAULT_UNBONDING_PERIOD_MS: u64 = 86_400_000;
pub const MAX_UNBONDING_PERIOD_MS: u64 = 2_592_000_000;

/// `cluster::PCR_LENGTH` and `MAX_DNS_LABEL_LENGTH`.
pub const PCR_LENGTH: usize = 48;
pub const MAX_DNS_LABEL_LENGTH: usize = 63;

/// `enclave::MAX_ATTESTATION_AGE_MS`, `MAX_CLOCK_SKEW_MS`, `MAX_ENDPOINT_LENGTH`.
pub const MAX_ATTESTATION_AGE_MS: u64 = 300_000;
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;
pub const MAX_ENDPOINT_LENGTH: usize = 256;

/// `cluster::is_valid_dns_label`: 1..=63 bytes of `a-z`, `0-9`, `-`, no leading or trailing `-`.
pub fn is_valid_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    if n == 0 || n > MAX_DNS_LABEL_LENGTH {
        return false;
    }
    b.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || (c == b'-' && i != 0 && i != n - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_the_move_rule() {
        for ok in ["a", "worker-1", "0", &"a".repeat(63)] {
            assert!(is_valid_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_valid_dns_label(bad), "{bad}");
        }
    }
}
