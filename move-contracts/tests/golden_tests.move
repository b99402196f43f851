/// Golden BCS vectors: the exact bytes `std::bcs::to_bytes` gives for every event of the package and for the
/// objects the Rust side reads (`StakeRecord`, `Cluster`, `AdminCap`, `Enclave`). The same hex literals are
/// decoded field by field and re-encoded by crates/chain-types/tests/golden.rs (crate `daas-chain-types`), so a
/// change of a struct's layout on either side fails a test on that side. Change a vector only together with its
/// twin there (and the Rust mirror in crates/chain-types/src/{events,objects}.rs).
#[test_only]
module k3s_daas::golden_tests;

use k3s_daas::cluster::{Self, Cluster, AdminCap, Enclave};
use k3s_daas::enclave;
use k3s_daas::staking;
use std::bcs;
use std::unit_test::{Self, assert_eq};
use sui::balance;
use sui::sui::SUI;
use sui::test_scenario as ts;

// ------------------------------------------------------------------------------------------------ vectors

// Twins: crates/chain-types/tests/golden.rs (same names, same hex).

const STAKED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0000e776f726b65722d6e6f64652d343211223344556677887b68e5cf8b010000";
const STAKE_ADDED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f008070605040302011032547698badcfe";
const UNSTAKE_REQUESTED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f00100000000000080c869e5cf8b010000feffffffffffffff";
const WITHDRAWN: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f00df0fecaefbeadde01";
const TOKENS_REVOKED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0ff00ff00ff00ff00";
const SLASH_SETTLED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f05a5a5a5aa5a5a5a5";
const CLUSTER_CREATED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcab0cab1cab2cab3cab4cab5cab6cab7cab8cab9cabacabbcabccabdcabecabf00000000000000000000000000000000000000000000000000000000000000ad";
const SLASHED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const ROLE_MINIMUM_CHANGED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0200e40b5402000000eeffc00000eeffc0";
const UNBONDING_PERIOD_CHANGED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f005c26050000000000c87e9a00000000";
const PCRS_CHANGED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f01";
const ENCLAVE_OPERATOR_CHANGED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000000000000000000000000000000000000000000000000000000000000ad7e57000000000000000000000000000000000000000000000000000000000001";
const TREASURY_WITHDRAWN: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fffffffffffffff7fd00dfeed00000000000000000000000000000000000000000000000000000042";
const CLUSTER_RENAMED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0e70726f642d65752d776573742d31";
const ROLE_GRANTED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f002";
const ROLE_REVOKED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fd00dfeed0000000000000000000000000000000000000000000000000000004200";
const CLUSTER_MIGRATED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f01000000000000000200000000000080";
const ENCLAVE_REGISTERED: vector<u8> = x"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f8501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf156be5cf8b010000efcdab8967452301";
const ENCLAVE: vector<u8> = x"8501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f156be5cf8b010000e86be5cf8b010000";
const STAKE_RECORD: vector<u8> = x"034401905bebdf8c04f3cd5f04f442a39372c8dc321c29edfb4f9cb30b23ab96000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0000e776f726b65722d6e6f64652d343211223344556677880101000000000000807b68e5cf8b010000c869e5cf8b010000";
const CLUSTER_OBJECT: vector<u8> = x"a4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b01000000000000000e70726f642d65752d776573742d3101000000000000100200000000000020030000000000003000c87e9a0000000030000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f7e57000000000000000000000000000000000000000000000000000000000001018501808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304900168747470733a2f2f656e636c6176652d302e636f6e74726f6c2d706c616e652e70726f642d65752d776573742d312e6b33732d646161732e6578616d706c652e636f6d3a363434332f61747465737465642f76312f633161352d303030312d303030322d303030332d303030342d303030352d303030362d303030372d303030382d303030392d303030612d3030306220c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf30000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f30606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f156be5cf8b010000e86be5cf8b0100001032547698badcfe5ef2fcf809fb9535ea0aeaea421f683026f06c34569aafc42bcde652ef6dd2700100000000000000a058cccb1180e0c063232bed5fcf330614d57c74f056f8b3db0317812e129eb20200000000000000";
const ADMIN_CAP_OBJECT: vector<u8> = x"06d553b842f768751ef60436013fd9a563de7986dc8991a2b3a8edb7037fc8eda4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b";

/// Object ids that `test_scenario` derives, which appear in the object vectors above. Sui's `derive_id`:
/// blake2b-256(0xf1 || tx hash || creation number as u64 LE), where the scenario's tx hash is its transaction
/// number (BCS u64) padded with zeros to 32 bytes; recomputed outside Move, so they do not depend on this test
/// runner. The record is object 0 of transaction 0; `init` creates the `Publisher` (0), the `Cluster` (1), its
/// `slashed` table (2, in CLUSTER_OBJECT after the treasury; `TABLE_ID` in golden.rs), its `grants` table (3,
/// last in CLUSTER_OBJECT; `GRANTS_TABLE_ID` in golden.rs) and the `AdminCap` (4).
const STAKE_RECORD_ID: address = @0x034401905bebdf8c04f3cd5f04f442a39372c8dc321c29edfb4f9cb30b23ab96;
const CLUSTER_OBJECT_ID: address = @0xa4137e2ed945e7f4e8c307001c32e97472fb3eebb8f7b4ab7534b447d22da89b;
const ADMIN_CAP_OBJECT_ID: address = @0x06d553b842f768751ef60436013fd9a563de7986dc8991a2b3a8edb7037fc8ed;

// ------------------------------------------------------------------------------------------------ fixed values

// Mirrored as constants in crates/chain-types/tests/golden.rs; keep the two lists identical.

const CLUSTER: address = @0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f;
const RECORD: address = @0xa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf;
const OWNER: address = @0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0f1e2d3c4b5a69788796a5b4c3d2e1f0;
const ADMIN_CAP: address = @0xcab0cab1cab2cab3cab4cab5cab6cab7cab8cab9cabacabbcabccabdcabecabf;
/// Short address: BCS pads it to 32 bytes with leading zeros (test_common's ADMIN).
const ADMIN: address = @0xAD;
const OPERATOR: address = @0x7e57000000000000000000000000000000000000000000000000000000000001;
const RECIPIENT: address = @0xd00dfeed00000000000000000000000000000000000000000000000000000042;

/// 14 bytes: one-byte ULEB length.
const NODE_NAME: vector<u8> = b"worker-node-42";
/// 14 bytes (a DNS label, accepted by `set_name`).
const CLUSTER_NAME: vector<u8> = b"prod-eu-west-1";
/// 144 bytes: two-byte ULEB length (0x90 0x01).
const ENDPOINT: vector<u8> =
    b"https://enclave-0.control-plane.prod-eu-west-1.k3s-daas.example.com:6443/attested/v1/c1a5-0001-0002-0003-0004-0005-0006-0007-0008-0009-000a-000b";

const T_STAKED: u64 = 1_700_000_000_123;
const T_UNBOND: u64 = 1_700_000_000_456;
const T_ATTESTED: u64 = 1_700_000_000_789;
const T_REGISTERED: u64 = 1_700_000_001_000;

/// `count` bytes `start, start + 1, ...` (mod 256). PCR0/1/2 = seq(0x00/0x30/0x60, 48); public key = seq(0x80, 133);
/// CA hash = seq(0xc0, 32).
fun seq(start: u64, count: u64): vector<u8> {
    let mut v = vector[];
    let mut i = 0;
    while (i < count) {
        v.push_back(((start + i) % 256) as u8);
        i = i + 1;
    };
    v
}

fun pcr0(): vector<u8> { seq(0x00, 48) }

fun pcr1(): vector<u8> { seq(0x30, 48) }

fun pcr2(): vector<u8> { seq(0x60, 48) }

/// 133 bytes (the size of an uncompressed P-521 key): two-byte ULEB length (0x85 0x01).
fun public_key(): vector<u8> { seq(0x80, 133) }

/// SHA-256 of the enclave's CA certificate: seq(0xc0, 32).
fun ca_sha256(): vector<u8> { seq(0xc0, 32) }

fun id(a: address): ID { object::id_from_address(a) }

/// The enclave of the `ENCLAVE` vector (also stored in the cluster of the `CLUSTER_OBJECT` vector).
fun enclave(): Enclave {
    cluster::new_enclave(
        public_key(),
        ENDPOINT.to_string(),
        ca_sha256(),
        pcr0(),
        pcr1(),
        pcr2(),
        T_ATTESTED,
        T_REGISTERED,
    )
}

// ------------------------------------------------------------------------------------------------ staking events

#[test]
fun staked() {
    let e = staking::staked_for_testing(
        id(CLUSTER),
        id(RECORD),
        OWNER,
        cluster::role_worker(),
        NODE_NAME.to_string(),
        0x8877665544332211,
        T_STAKED,
    );
    assert_eq!(bcs::to_bytes(&e), STAKED);
}

#[test]
fun stake_added() {
    let e = staking::stake_added_for_testing(
        id(CLUSTER),
        id(RECORD),
        OWNER,
        0x0102030405060708,
        0xfedcba9876543210,
    );
    assert_eq!(bcs::to_bytes(&e), STAKE_ADDED);
}

#[test]
fun unstake_requested() {
    let e = staking::unstake_requested_for_testing(
        id(CLUSTER),
        id(RECORD),
        OWNER,
        0x8000000000000001,
        T_UNBOND,
        0xfffffffffffffffe,
    );
    assert_eq!(bcs::to_bytes(&e), UNSTAKE_REQUESTED);
}

#[test]
fun withdrawn() {
    let e = staking::withdrawn_for_testing(id(CLUSTER), id(RECORD), OWNER, 0xdeadbeefcafef00d, true);
    assert_eq!(bcs::to_bytes(&e), WITHDRAWN);
}

#[test]
fun tokens_revoked() {
    let e = staking::tokens_revoked_for_testing(id(CLUSTER), id(RECORD), OWNER, 0x00ff00ff00ff00ff);
    assert_eq!(bcs::to_bytes(&e), TOKENS_REVOKED);
}

#[test]
fun slash_settled() {
    let e = staking::slash_settled_for_testing(id(CLUSTER), id(RECORD), OWNER, 0xa5a5a5a55a5a5a5a);
    assert_eq!(bcs::to_bytes(&e), SLASH_SETTLED);
}

// ------------------------------------------------------------------------------------------------ cluster events

#[test]
fun cluster_created() {
    let e = cluster::cluster_created_for_testing(id(CLUSTER), id(ADMIN_CAP), ADMIN);
    assert_eq!(bcs::to_bytes(&e), CLUSTER_CREATED);
}

#[test]
fun slashed() {
    let e = cluster::slashed_for_testing(id(CLUSTER), id(RECORD));
    assert_eq!(bcs::to_bytes(&e), SLASHED);
}

#[test]
fun role_minimum_changed() {
    let e = cluster::role_minimum_changed_for_testing(
        id(CLUSTER),
        cluster::role_admin(),
        10_000_000_000,
        0xc0ffee0000c0ffee,
    );
    assert_eq!(bcs::to_bytes(&e), ROLE_MINIMUM_CHANGED);
}

#[test]
fun unbonding_period_changed() {
    let e = cluster::unbonding_period_changed_for_testing(id(CLUSTER), 86_400_000, 2_592_000_000);
    assert_eq!(bcs::to_bytes(&e), UNBONDING_PERIOD_CHANGED);
}

#[test]
fun pcrs_changed() {
    let e = cluster::pcrs_changed_for_testing(id(CLUSTER), pcr0(), pcr1(), pcr2(), true);
    assert_eq!(bcs::to_bytes(&e), PCRS_CHANGED);
}

#[test]
fun enclave_operator_changed() {
    let e = cluster::enclave_operator_changed_for_testing(id(CLUSTER), ADMIN, OPERATOR);
    assert_eq!(bcs::to_bytes(&e), ENCLAVE_OPERATOR_CHANGED);
}

#[test]
fun treasury_withdrawn() {
    let e = cluster::treasury_withdrawn_for_testing(id(CLUSTER), 0x7fffffffffffffff, RECIPIENT);
    assert_eq!(bcs::to_bytes(&e), TREASURY_WITHDRAWN);
}

#[test]
fun cluster_renamed() {
    let e = cluster::cluster_renamed_for_testing(id(CLUSTER), CLUSTER_NAME.to_string());
    assert_eq!(bcs::to_bytes(&e), CLUSTER_RENAMED);
}

#[test]
fun role_granted() {
    let e = cluster::role_granted_for_testing(id(CLUSTER), OWNER, cluster::role_admin());
    assert_eq!(bcs::to_bytes(&e), ROLE_GRANTED);
}

#[test]
fun role_revoked() {
    let e = cluster::role_revoked_for_testing(id(CLUSTER), RECIPIENT, cluster::role_worker());
    assert_eq!(bcs::to_bytes(&e), ROLE_REVOKED);
}

#[test]
fun cluster_migrated() {
    let e = cluster::cluster_migrated_for_testing(id(CLUSTER), 1, 0x8000000000000002);
    assert_eq!(bcs::to_bytes(&e), CLUSTER_MIGRATED);
}

// ------------------------------------------------------------------------------------------------ enclave events

#[test]
fun enclave_registered() {
    let e = enclave::enclave_registered_for_testing(
        id(CLUSTER),
        public_key(),
        ENDPOINT.to_string(),
        ca_sha256(),
        T_ATTESTED,
        0x0123456789abcdef,
    );
    assert_eq!(bcs::to_bytes(&e), ENCLAVE_REGISTERED);
}

// ------------------------------------------------------------------------------------------------ objects

#[test]
fun enclave_value() {
    assert_eq!(bcs::to_bytes(&enclave()), ENCLAVE);
}

#[test]
fun stake_record() {
    let mut s = ts::begin(ADMIN);
    let record = staking::stake_record_for_testing(
        id(CLUSTER),
        OWNER,
        cluster::role_worker(),
        NODE_NAME.to_string(),
        balance::create_for_testing<SUI>(0x8877665544332211),
        staking::status_unbonding(),
        0x8000000000000001,
        T_STAKED,
        T_UNBOND,
        s.ctx(),
    );
    assert_eq!(object::id(&record).to_address(), STAKE_RECORD_ID);
    assert_eq!(bcs::to_bytes(&record), STAKE_RECORD);
    unit_test::destroy(record);
    s.end();
}

/// The cluster `init` creates, with every field moved off its default through the package's own functions.
#[test]
fun cluster_object() {
    let mut s = ts::begin(ADMIN);
    cluster::init_for_testing(s.ctx());
    s.next_tx(ADMIN);
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    assert_eq!(object::id(&cluster).to_address(), CLUSTER_OBJECT_ID);
    assert_eq!(object::id(&cap).to_address(), ADMIN_CAP_OBJECT_ID);

    cluster::set_name(&cap, &mut cluster, CLUSTER_NAME.to_string());
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_worker(), 0x1000000000000001);
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_user(), 0x2000000000000002);
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_admin(), 0x3000000000000003);
    cluster::set_unbonding_period(&cap, &mut cluster, 2_592_000_000);
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr0(), pcr1(), pcr2());
    cluster::set_enclave_operator(&cap, &mut cluster, OPERATOR);
    cluster.set_enclave(enclave());
    cluster.deposit_to_treasury(balance::create_for_testing<SUI>(0xfedcba9876543210));
    cluster::slash(&cap, &mut cluster, id(RECORD));
    // Two accounts with grants (OWNER: admin and worker in one entry; RECIPIENT: worker); OPERATOR's entry is
    // removed again when its only grant is revoked.
    cluster::grant_role(&cap, &mut cluster, OWNER, cluster::role_admin());
    cluster::grant_role(&cap, &mut cluster, OWNER, cluster::role_worker());
    cluster::grant_role(&cap, &mut cluster, RECIPIENT, cluster::role_worker());
    cluster::grant_role(&cap, &mut cluster, OPERATOR, cluster::role_admin());
    cluster::revoke_role(&cap, &mut cluster, OPERATOR, cluster::role_admin());
    assert_eq!(bcs::to_bytes(&cluster), CLUSTER_OBJECT);

    assert_eq!(bcs::to_bytes(&cap), ADMIN_CAP_OBJECT);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}
