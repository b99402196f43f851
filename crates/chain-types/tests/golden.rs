//! Golden BCS vectors: the exact bytes Move's `std::bcs::to_bytes` gives for every event of the
//! `k3s_daas` package and for the objects the Rust side reads. The twin of
//! `move-contracts/tests/golden_tests.move`, which asserts the same hex literals against values
//! built by the Move code (run with `move-test move-contracts`). Here each vector is decoded into
//! the Rust mirror, compared with the same fixed field values, and re-encoded to the same bytes,
//! so a layout change on either side fails that side's test. Change a vector only together with
//! its twin.

#![allow(clippy::unwrap_used)]

use std::fmt::Debug;

use daas_chain_types::events::{
    ClusterCreated, ClusterMigrated, ClusterRenamed, EnclaveOperatorChanged, EnclaveRegistered,
    PcrsChanged, RoleGranted, RoleMinimumChanged, RoleRevoked, SlashSettled, Slashed, StakeAdded,
    Staked, TokensRevoked, TreasuryWithdrawn, UnbondingPeriodChanged, UnstakeRequested, Withdrawn,
};
use daas_chain_types::{
    Address, AdminCap, Cluster, Enclave, Package, PackageEvent, StakeRecord, Table, consts,
    from_bcs, to_bcs,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The vectors, hex of the BCS bytes. Twins: `move-contracts/tests/golden_tests.move` (same
/// names, same hex).
mod vectors {
    pub(crate) const STAKED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0000e776f726b65722d6e6f64652d343211223344556677887b68e5cf8b010000";
    pub(crate) const STAKE_ADDED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f008070605040302011032547698badcfe";
    pub(crate) const UNSTAKE_REQUESTED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f00100000000000080c869e5cf8b010000feffffffffffffff";
    pub(crate) const WITHDRAWN: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f00df0fecaefbeadde01";
    pub(crate) const TOKENS_REVOKED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0ff00ff00ff00ff00";
    pub(crate) const SLASH_SETTLED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f05a5a5a5aa5a5a5a5";
    pub(crate) const CLUSTER_CREATED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcab0cab1cab2cab3cab4cab5cab6cab7cab8cab9cabacabbcabccabdcabecabf00000000000000000000000000000000000000000000000000000000000000ad";
    pub(crate) const SLASHED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    pub(crate) const ROLE_MINIMUM_CHANGED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0200e40b5402000000eeffc00000eeffc0";
    pub(crate) const UNBONDING_PERIOD_CHANGED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f005c26050000000000c87e9a00000000";
    pub(crate) const PCRS_CHANGED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f01";
    pub(crate) const ENCLAVE_OPERATOR_CHANGED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000000000000000000000000000000000000000000000000000000000000ad7e57000000000000000000000000000000000000000000000000000000000001";
    pub(crate) const TREASURY_WITHDRAWN: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fffffffffffffff7fd00dfeed00000000000000000000000000000000000000000000000000000042";
    pub(crate) const CLUSTER_RENAMED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0e70726f642d65752d776573742d31";
    pub(crate) const ROLE_GRANTED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f002";
    pub(crate) const ROLE_REVOKED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fd00dfeed0000000000000000000000000000000000000000000000000000004200";
    pub(crate) const CLUSTER_MIGRATED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f01000000000000000200000000000080";
    pub(crate) const ENCLAVE_REGISTERED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f8501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf156be5cf8b010000efcdab8967452301";
    pub(crate) const ENCLAVE: &str = "8501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f156be5cf8b010000e86be5cf8b010000";
    pub(crate) const STAKE_RECORD: &str = "034401905bebdf8c04f3cd5f04f442a39372c8dc321c29edfb4f9cb30b23ab96000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0000e776f726b65722d6e6f64652d343211223344556677880101000000000000807b68e5cf8b010000c869e5cf8b010000";
    pub(crate) const CLUSTER_OBJECT: &str = "a4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b01000000000000000e70726f642d65752d776573742d3101000000000000100200000000000020030000000000003000c87e9a0000000030000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f7e57000000000000000000000000000000000000000000000000000000000001018501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f156be5cf8b010000e86be5cf8b0100001032547698badcfe5ef2fcf809fb9535ea0aeaea421f683026f06c34569aafc42bcde652ef6dd2700100000000000000a058cccb1180e0c063232bed5fcf330614d57c74f056f8b3db0317812e129eb20200000000000000";
    pub(crate) const ADMIN_CAP_OBJECT: &str = "06d553b842f768751ef60436013fd9a563de7986dc8991a2b3a8edb7037fc8eda4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b";
}

// ------------------------------------------------------------------------------------------------
// Fixed values, as in golden_tests.move.

const CLUSTER: Address =
    Address::from_static("0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
const RECORD: Address =
    Address::from_static("0xa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
const OWNER: Address =
    Address::from_static("0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0");
const ADMIN_CAP: Address =
    Address::from_static("0xcab0cab1cab2cab3cab4cab5cab6cab7cab8cab9cabacabbcabccabdcabecabf");
/// Short address: BCS pads it to 32 bytes with leading zeros.
const ADMIN: Address = Address::from_static("0xad");
const OPERATOR: Address =
    Address::from_static("0x7e57000000000000000000000000000000000000000000000000000000000001");
const RECIPIENT: Address =
    Address::from_static("0xd00dfeed00000000000000000000000000000000000000000000000000000042");

/// 14 bytes: one-byte ULEB length.
const NODE_NAME: &str = "worker-node-42";
const CLUSTER_NAME: &str = "prod-eu-west-1";
/// 144 bytes: two-byte ULEB length (0x90 0x01).
const ENDPOINT: &str = "https://enclave-0.control-plane.prod-eu-west-1.k3s-daas.example.com:6443/attested/v1/c1a5-0001-0002-0003-0004-0005-0006-0007-0008-0009-000a-000b";

const T_STAKED: u64 = 1_700_000_000_123;
const T_UNBOND: u64 = 1_700_000_000_456;
const T_ATTESTED: u64 = 1_700_000_000_789;
const T_REGISTERED: u64 = 1_700_000_001_000;

/// Object ids `test_scenario` derives in the Move test (blake2b-256 of `0xf1 ‖ tx hash ‖
/// creation number`, tx hash = the scenario's transaction number padded to 32 bytes): the
/// record is object 0 of transaction 0; `init` creates the `Publisher` (0), the `Cluster` (1),
/// its `slashed` table (2), its `grants` table (3) and the `AdminCap` (4).
const STAKE_RECORD_ID: Address =
    Address::from_static("0x034401905bebdf8c04f3cd5f04f442a39372c8dc321c29edfb4f9cb30b23ab96");
const CLUSTER_OBJECT_ID: Address =
    Address::from_static("0xa4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b");
const TABLE_ID: Address =
    Address::from_static("0x5ef2fcf809fb9535ea0aeaea421f683026f06c34569aafc42bcde652ef6dd270");
const GRANTS_TABLE_ID: Address =
    Address::from_static("0xa058cccb1180e0c063232bed5fcf330614d57c74f056f8b3db0317812e129eb2");
const ADMIN_CAP_OBJECT_ID: Address =
    Address::from_static("0x06d553b842f768751ef60436013fd9a563de7986dc8991a2b3a8edb7037fc8ed");

/// Any package id: event decoding only compares it with the event type's address.
const PACKAGE: Address = Address::from_static("0x5a5a");

/// `count` bytes `start, start + 1, ...` (mod 256), like `seq` in golden_tests.move.
fn seq(start: u8, count: usize) -> Vec<u8> {
    (0..count).map(|i| start.wrapping_add(i as u8)).collect()
}

fn pcr0() -> Vec<u8> {
    seq(0x00, 48)
}

fn pcr1() -> Vec<u8> {
    seq(0x30, 48)
}

fn pcr2() -> Vec<u8> {
    seq(0x60, 48)
}

/// 133 bytes: two-byte ULEB length (0x85 0x01).
fn public_key() -> Vec<u8> {
    seq(0x80, 133)
}

/// SHA-256 of the enclave's CA certificate: 32 bytes, one-byte ULEB length.
fn ca_sha256() -> Vec<u8> {
    seq(0xc0, 32)
}

fn enclave() -> Enclave {
    Enclave {
        public_key: public_key(),
        endpoint: ENDPOINT.to_owned(),
        ca_sha256: ca_sha256(),
        pcr0: pcr0(),
        pcr1: pcr1(),
        pcr2: pcr2(),
        attested_at_ms: T_ATTESTED,
        registered_at_ms: T_REGISTERED,
    }
}

// ------------------------------------------------------------------------------------------------
// Checks.

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

/// Decodes the vector as `T`, compares it with `expected` (every field), re-encodes it to the
/// same bytes; returns the bytes.
fn golden<T: DeserializeOwned + Serialize + PartialEq + Debug>(hex: &str, expected: &T) -> Vec<u8> {
    let bytes = bytes(hex);
    let decoded: T = from_bcs(&bytes).unwrap();
    assert_eq!(&decoded, expected);
    assert_eq!(to_bcs(&decoded).unwrap(), bytes);
    assert_eq!(bcs::to_bytes(expected).unwrap(), bytes);
    bytes
}

/// [`golden`], then the event path of the chain client: decoding by Move type tag into
/// [`PackageEvent`], its type name, contents, record id and cluster id.
fn golden_event<T: DeserializeOwned + Serialize + PartialEq + Debug>(
    (module, name): (&str, &str),
    hex: &str,
    expected: T,
    wrap: fn(T) -> PackageEvent,
    record_id: Option<Address>,
    account: Option<Address>,
) {
    let bytes = golden(hex, &expected);
    let package = Package::new(PACKAGE);
    let tag = package.struct_tag(module, name);
    let event = PackageEvent::decode(&package, &tag, &bytes).unwrap();
    assert_eq!(event, wrap(expected));
    assert_eq!(event.type_name(), (module, name));
    assert_eq!(event.struct_tag(&package), tag);
    assert_eq!(event.contents().unwrap(), bytes);
    assert_eq!(event.record_id(), record_id);
    assert_eq!(event.account(), account);
    assert_eq!(event.cluster_id(), CLUSTER);
}

// ------------------------------------------------------------------------------------------------
// staking events

#[test]
fn staked() {
    golden_event(
        ("staking", "Staked"),
        vectors::STAKED,
        Staked {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            role: consts::ROLE_WORKER,
            node_name: NODE_NAME.to_owned(),
            amount: 0x8877665544332211,
            staked_at_ms: T_STAKED,
        },
        PackageEvent::Staked,
        Some(RECORD),
        None,
    );
}

#[test]
fn stake_added() {
    golden_event(
        ("staking", "StakeAdded"),
        vectors::STAKE_ADDED,
        StakeAdded {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            amount: 0x0102030405060708,
            new_total: 0xfedcba9876543210,
        },
        PackageEvent::StakeAdded,
        Some(RECORD),
        None,
    );
}

#[test]
fn unstake_requested() {
    golden_event(
        ("staking", "UnstakeRequested"),
        vectors::UNSTAKE_REQUESTED,
        UnstakeRequested {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            token_epoch: 0x8000000000000001,
            requested_at_ms: T_UNBOND,
            withdrawable_at_ms: 0xfffffffffffffffe,
        },
        PackageEvent::UnstakeRequested,
        Some(RECORD),
        None,
    );
}

#[test]
fn withdrawn() {
    golden_event(
        ("staking", "Withdrawn"),
        vectors::WITHDRAWN,
        Withdrawn {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            amount: 0xdeadbeefcafef00d,
            slashed: true,
        },
        PackageEvent::Withdrawn,
        Some(RECORD),
        None,
    );
}

#[test]
fn tokens_revoked() {
    golden_event(
        ("staking", "TokensRevoked"),
        vectors::TOKENS_REVOKED,
        TokensRevoked {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            token_epoch: 0x00ff00ff00ff00ff,
        },
        PackageEvent::TokensRevoked,
        Some(RECORD),
        None,
    );
}

#[test]
fn slash_settled() {
    golden_event(
        ("staking", "SlashSettled"),
        vectors::SLASH_SETTLED,
        SlashSettled {
            cluster_id: CLUSTER,
            record_id: RECORD,
            owner: OWNER,
            amount: 0xa5a5a5a55a5a5a5a,
        },
        PackageEvent::SlashSettled,
        Some(RECORD),
        None,
    );
}

// ------------------------------------------------------------------------------------------------
// cluster events

#[test]
fn cluster_created() {
    golden_event(
        ("cluster", "ClusterCreated"),
        vectors::CLUSTER_CREATED,
        ClusterCreated {
            cluster_id: CLUSTER,
            admin_cap_id: ADMIN_CAP,
            admin: ADMIN,
        },
        PackageEvent::ClusterCreated,
        None,
        None,
    );
}

#[test]
fn slashed() {
    golden_event(
        ("cluster", "Slashed"),
        vectors::SLASHED,
        Slashed {
            cluster_id: CLUSTER,
            record_id: RECORD,
        },
        PackageEvent::Slashed,
        Some(RECORD),
        None,
    );
}

#[test]
fn role_minimum_changed() {
    golden_event(
        ("cluster", "RoleMinimumChanged"),
        vectors::ROLE_MINIMUM_CHANGED,
        RoleMinimumChanged {
            cluster_id: CLUSTER,
            role: consts::ROLE_ADMIN,
            old_min_mist: 10_000_000_000,
            new_min_mist: 0xc0ffee0000c0ffee,
        },
        PackageEvent::RoleMinimumChanged,
        None,
        None,
    );
}

#[test]
fn unbonding_period_changed() {
    golden_event(
        ("cluster", "UnbondingPeriodChanged"),
        vectors::UNBONDING_PERIOD_CHANGED,
        UnbondingPeriodChanged {
            cluster_id: CLUSTER,
            old_period_ms: 86_400_000,
            new_period_ms: 2_592_000_000,
        },
        PackageEvent::UnbondingPeriodChanged,
        None,
        None,
    );
}

#[test]
fn pcrs_changed() {
    golden_event(
        ("cluster", "PcrsChanged"),
        vectors::PCRS_CHANGED,
        PcrsChanged {
            cluster_id: CLUSTER,
            pcr0: pcr0(),
            pcr1: pcr1(),
            pcr2: pcr2(),
            enclave_cleared: true,
        },
        PackageEvent::PcrsChanged,
        None,
        None,
    );
}

#[test]
fn enclave_operator_changed() {
    golden_event(
        ("cluster", "EnclaveOperatorChanged"),
        vectors::ENCLAVE_OPERATOR_CHANGED,
        EnclaveOperatorChanged {
            cluster_id: CLUSTER,
            old_operator: ADMIN,
            new_operator: OPERATOR,
        },
        PackageEvent::EnclaveOperatorChanged,
        None,
        None,
    );
}

#[test]
fn treasury_withdrawn() {
    golden_event(
        ("cluster", "TreasuryWithdrawn"),
        vectors::TREASURY_WITHDRAWN,
        TreasuryWithdrawn {
            cluster_id: CLUSTER,
            amount: 0x7fffffffffffffff,
            recipient: RECIPIENT,
        },
        PackageEvent::TreasuryWithdrawn,
        None,
        None,
    );
}

#[test]
fn cluster_renamed() {
    golden_event(
        ("cluster", "ClusterRenamed"),
        vectors::CLUSTER_RENAMED,
        ClusterRenamed {
            cluster_id: CLUSTER,
            name: CLUSTER_NAME.to_owned(),
        },
        PackageEvent::ClusterRenamed,
        None,
        None,
    );
}

#[test]
fn role_granted() {
    golden_event(
        ("cluster", "RoleGranted"),
        vectors::ROLE_GRANTED,
        RoleGranted {
            cluster_id: CLUSTER,
            account: OWNER,
            role: consts::ROLE_ADMIN,
        },
        PackageEvent::RoleGranted,
        None,
        Some(OWNER),
    );
}

#[test]
fn role_revoked() {
    golden_event(
        ("cluster", "RoleRevoked"),
        vectors::ROLE_REVOKED,
        RoleRevoked {
            cluster_id: CLUSTER,
            account: RECIPIENT,
            role: consts::ROLE_WORKER,
        },
        PackageEvent::RoleRevoked,
        None,
        Some(RECIPIENT),
    );
}

#[test]
fn cluster_migrated() {
    golden_event(
        ("cluster", "ClusterMigrated"),
        vectors::CLUSTER_MIGRATED,
        ClusterMigrated {
            cluster_id: CLUSTER,
            from_version: 1,
            to_version: 0x8000000000000002,
        },
        PackageEvent::ClusterMigrated,
        None,
        None,
    );
}

// ------------------------------------------------------------------------------------------------
// enclave events

#[test]
fn enclave_registered() {
    golden_event(
        ("enclave", "EnclaveRegistered"),
        vectors::ENCLAVE_REGISTERED,
        EnclaveRegistered {
            cluster_id: CLUSTER,
            public_key: public_key(),
            endpoint: ENDPOINT.to_owned(),
            ca_sha256: ca_sha256(),
            attested_at_ms: T_ATTESTED,
            registered_at_ms: 0x0123456789abcdef,
        },
        PackageEvent::EnclaveRegistered,
        None,
        None,
    );
}

// ------------------------------------------------------------------------------------------------
// objects

#[test]
fn enclave_value() {
    golden(vectors::ENCLAVE, &enclave());
}

#[test]
fn stake_record() {
    golden(
        vectors::STAKE_RECORD,
        &StakeRecord {
            id: STAKE_RECORD_ID,
            cluster_id: CLUSTER,
            owner: OWNER,
            role: consts::ROLE_WORKER,
            node_name: NODE_NAME.to_owned(),
            balance: 0x8877665544332211,
            status: consts::STATUS_UNBONDING,
            token_epoch: 0x8000000000000001,
            staked_at_ms: T_STAKED,
            unbond_requested_at_ms: T_UNBOND,
        },
    );
}

#[test]
fn cluster_object() {
    golden(
        vectors::CLUSTER_OBJECT,
        &Cluster {
            id: CLUSTER_OBJECT_ID,
            version: consts::VERSION,
            name: CLUSTER_NAME.to_owned(),
            min_stake_worker: 0x1000000000000001,
            min_stake_user: 0x2000000000000002,
            min_stake_admin: 0x3000000000000003,
            unbonding_period_ms: 2_592_000_000,
            expected_pcr0: pcr0(),
            expected_pcr1: pcr1(),
            expected_pcr2: pcr2(),
            enclave_operator: OPERATOR,
            enclave: Some(enclave()),
            treasury: 0xfedcba9876543210,
            slashed: Table {
                id: TABLE_ID,
                size: 1,
            },
            grants: Table {
                id: GRANTS_TABLE_ID,
                size: 2,
            },
        },
    );
}

#[test]
fn admin_cap_object() {
    golden(
        vectors::ADMIN_CAP_OBJECT,
        &AdminCap {
            id: ADMIN_CAP_OBJECT_ID,
            cluster_id: CLUSTER_OBJECT_ID,
        },
    );
}

// ------------------------------------------------------------------------------------------------
// negative

fn decodes<T: DeserializeOwned>(bytes: &[u8]) -> bool {
    from_bcs::<T>(bytes).is_ok()
}

/// Every vector with the type it decodes as and, for events, its Move type.
#[allow(clippy::type_complexity)]
fn all_vectors() -> Vec<(
    &'static str,
    fn(&[u8]) -> bool,
    Option<(&'static str, &'static str)>,
)> {
    vec![
        (
            vectors::STAKED,
            decodes::<Staked>,
            Some(("staking", "Staked")),
        ),
        (
            vectors::STAKE_ADDED,
            decodes::<StakeAdded>,
            Some(("staking", "StakeAdded")),
        ),
        (
            vectors::UNSTAKE_REQUESTED,
            decodes::<UnstakeRequested>,
            Some(("staking", "UnstakeRequested")),
        ),
        (
            vectors::WITHDRAWN,
            decodes::<Withdrawn>,
            Some(("staking", "Withdrawn")),
        ),
        (
            vectors::TOKENS_REVOKED,
            decodes::<TokensRevoked>,
            Some(("staking", "TokensRevoked")),
        ),
        (
            vectors::SLASH_SETTLED,
            decodes::<SlashSettled>,
            Some(("staking", "SlashSettled")),
        ),
        (
            vectors::CLUSTER_CREATED,
            decodes::<ClusterCreated>,
            Some(("cluster", "ClusterCreated")),
        ),
        (
            vectors::SLASHED,
            decodes::<Slashed>,
            Some(("cluster", "Slashed")),
        ),
        (
            vectors::ROLE_MINIMUM_CHANGED,
            decodes::<RoleMinimumChanged>,
            Some(("cluster", "RoleMinimumChanged")),
        ),
        (
            vectors::UNBONDING_PERIOD_CHANGED,
            decodes::<UnbondingPeriodChanged>,
            Some(("cluster", "UnbondingPeriodChanged")),
        ),
        (
            vectors::PCRS_CHANGED,
            decodes::<PcrsChanged>,
            Some(("cluster", "PcrsChanged")),
        ),
        (
            vectors::ENCLAVE_OPERATOR_CHANGED,
            decodes::<EnclaveOperatorChanged>,
            Some(("cluster", "EnclaveOperatorChanged")),
        ),
        (
            vectors::TREASURY_WITHDRAWN,
            decodes::<TreasuryWithdrawn>,
            Some(("cluster", "TreasuryWithdrawn")),
        ),
        (
            vectors::CLUSTER_RENAMED,
            decodes::<ClusterRenamed>,
            Some(("cluster", "ClusterRenamed")),
        ),
        (
            vectors::ROLE_GRANTED,
            decodes::<RoleGranted>,
            Some(("cluster", "RoleGranted")),
        ),
        (
            vectors::ROLE_REVOKED,
            decodes::<RoleRevoked>,
            Some(("cluster", "RoleRevoked")),
        ),
        (
            vectors::CLUSTER_MIGRATED,
            decodes::<ClusterMigrated>,
            Some(("cluster", "ClusterMigrated")),
        ),
        (
            vectors::ENCLAVE_REGISTERED,
            decodes::<EnclaveRegistered>,
            Some(("enclave", "EnclaveRegistered")),
        ),
        (vectors::ENCLAVE, decodes::<Enclave>, None),
        (vectors::STAKE_RECORD, decodes::<StakeRecord>, None),
        (vectors::CLUSTER_OBJECT, decodes::<Cluster>, None),
        (vectors::ADMIN_CAP_OBJECT, decodes::<AdminCap>, None),
    ]
}

/// Every strict prefix of a vector (truncation at any byte) and the vector plus one trailing
/// byte fail to decode, both as the plain type and through [`PackageEvent::decode`].
#[test]
fn truncated_or_extended_vectors_do_not_decode() {
    let package = Package::new(PACKAGE);
    for (hex, decodes, event) in all_vectors() {
        let bytes = bytes(hex);
        assert!(decodes(&bytes), "{event:?}: the vector itself decodes");
        let mut extended = bytes.clone();
        extended.push(0x00);
        let mut variants: Vec<&[u8]> = (0..bytes.len()).map(|n| &bytes[..n]).collect();
        variants.push(&extended);
        for variant in variants {
            assert!(
                !decodes(variant),
                "{event:?}: {} of {} bytes decoded",
                variant.len(),
                bytes.len()
            );
            if let Some((module, name)) = event {
                let tag = package.struct_tag(module, name);
                assert!(
                    PackageEvent::decode(&package, &tag, variant).is_err(),
                    "{module}::{name}: {} of {} bytes decoded as an event",
                    variant.len(),
                    bytes.len()
                );
            }
        }
    }
}
