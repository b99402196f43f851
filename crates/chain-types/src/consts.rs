//! Constants of the Move package (`cluster.move`, `staking.move`, `enclave.move`).

/// `cluster::VERSION`: the package version a `Cluster` must be at.
pub const VERSION: u64 = 1;

/// `cluster::ROLE_*`.
pub const ROLE_WORKER: u8 = 0;
pub const ROLE_USER: u8 = 1;
pub const ROLE_ADMIN: u8 = 2;

/// `cluster::role_requires_grant`: staking for worker or admin needs the cluster admin's grant
/// (`cluster::grant_role`); a user stake does not. False for anything that is not a role.
pub fn role_requires_grant(role: u8) -> bool {
    role == ROLE_WORKER || role == ROLE_ADMIN
}

/// The bit of `role` in a grant mask (the value of a `Cluster.grants` entry): `1 << role`, or
/// `None` for a role that cannot be granted.
pub fn grant_bit(role: u8) -> Option<u8> {
    role_requires_grant(role).then(|| 1 << role)
}

/// `cluster::is_granted` over an account's grant `mask` (0 when the account has no entry).
pub fn mask_grants(mask: u8, role: u8) -> bool {
    grant_bit(role).is_some_and(|bit| mask & bit != 0)
}

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

/// `cluster::is_zero_pcr`: non-empty and all zero bytes, the PCR0/1/2 of a debug-mode enclave.
/// `set_expected_pcrs` refuses such a value (`EZeroPcr`) and `register_enclave` refuses a
/// document with one (`EDebugAttestation`).
pub fn is_zero_pcr(pcr: &[u8]) -> bool {
    !pcr.is_empty() && pcr.iter().all(|&b| b == 0)
}

/// `enclave` user_data layout v1: `USER_DATA_MAGIC` (magic `K3SDAAS` and version byte 1) ‖
/// cluster id (32) ‖ SHA-256 of the enclave CA certificate DER (32) ‖ endpoint (UTF-8, to the end).
pub const USER_DATA_MAGIC: [u8; 8] = *b"K3SDAAS\x01";
/// Offsets in user_data layout v1; `USER_DATA_ENDPOINT_OFFSET` is also the fixed header's length.
pub const USER_DATA_CLUSTER_OFFSET: usize = 8;
pub const USER_DATA_CA_OFFSET: usize = 40;
pub const USER_DATA_ENDPOINT_OFFSET: usize = 72;

/// `enclave::encode_user_data`: user_data layout v1 for `cluster_id`, the CA hash and `endpoint`.
pub fn encode_user_data(
    cluster_id: sui_sdk_types::Address,
    ca_sha256: &[u8; 32],
    endpoint: &str,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(USER_DATA_ENDPOINT_OFFSET + endpoint.len());
    bytes.extend_from_slice(&USER_DATA_MAGIC);
    bytes.extend_from_slice(cluster_id.as_bytes());
    bytes.extend_from_slice(ca_sha256);
    bytes.extend_from_slice(endpoint.as_bytes());
    bytes
}

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
    fn grants_follow_the_move_rule() {
        assert!(role_requires_grant(ROLE_WORKER) && role_requires_grant(ROLE_ADMIN));
        assert!(!role_requires_grant(ROLE_USER) && !role_requires_grant(3));
        assert_eq!(
            [0, 1, 2, 3, 255].map(grant_bit),
            [Some(1), None, Some(4), None, None]
        );
        assert!(mask_grants(0b101, ROLE_WORKER) && mask_grants(0b101, ROLE_ADMIN));
        assert!(!mask_grants(0b001, ROLE_ADMIN) && !mask_grants(0b100, ROLE_WORKER));
        // A user needs no grant and never holds one, whatever the mask says.
        assert!(!mask_grants(0xff, ROLE_USER) && !mask_grants(0xff, 9));
        assert!(!mask_grants(0, ROLE_ADMIN));
    }

    #[test]
    fn zero_pcrs_follow_the_move_rule() {
        assert!(is_zero_pcr(&[0; PCR_LENGTH]));
        assert!(!is_zero_pcr(&[]));
        let mut last = [0; PCR_LENGTH];
        last[PCR_LENGTH - 1] = 1;
        assert!(!is_zero_pcr(&last));
    }

    /// The bytes `enclave_tests::user_data_v1_layout` asserts in Move.
    #[test]
    fn user_data_layout_v1() {
        let mut id = [0; 32];
        id[31] = 0x42;
        let ca = [0xca; 32];
        let ud = encode_user_data(sui_sdk_types::Address::new(id), &ca, "h:1");
        assert_eq!(ud.len(), 75);
        assert_eq!(&ud[..8], b"K3SDAAS\x01");
        assert_eq!(&ud[USER_DATA_CLUSTER_OFFSET..USER_DATA_CA_OFFSET], &id);
        assert_eq!(&ud[USER_DATA_CA_OFFSET..USER_DATA_ENDPOINT_OFFSET], &ca);
        assert_eq!(&ud[USER_DATA_ENDPOINT_OFFSET..], b"h:1");
    }

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
