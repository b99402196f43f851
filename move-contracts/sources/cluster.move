/// Shared cluster configuration of one K3s-DaaS cluster, and its admin capability.
///
/// `init` creates exactly one shared `Cluster` and one `AdminCap` (sent to the publisher). The cluster holds
/// the parameters that stakers and the enclave registration are checked against (per-role minimum stake,
/// unbonding period, expected enclave PCRs, who may register the enclave), the treasury that receives slashed
/// stake, the set of slashed stake-record ids, and the role grants: which accounts the admin has allowed to
/// stake for the privileged roles (worker, admin). Stake itself lives in per-staker owned `StakeRecord`s
/// (module `k3s_daas::staking`), so staking does not write to this shared object.
///
/// Trust model: every function that changes parameters takes `&AdminCap` and checks that the cap belongs to
/// this cluster. Staking functions take the cluster by `&` except where funds move into the treasury.
/// Privileged roles are granted, not bought: `staking::stake` for worker or admin requires the sender to hold
/// the admin's grant for that role (`grant_role`); a user stake needs none. Revoking a grant (`revoke_role`)
/// does not touch records already staked (owned objects cannot be touched by the admin): the control plane
/// refuses a worker or admin record whose owner no longer holds the grant, and the owner can still unstake
/// and withdraw it.
/// Upgrade guard: every public state-changing function of the package asserts `version == VERSION`;
/// after a package upgrade the admin calls `migrate`, which disables the old package's functions.
module k3s_daas::cluster;

use std::string::String;
use sui::balance::{Self, Balance};
use sui::coin;
use sui::event;
use sui::package;
use sui::sui::SUI;
use sui::table::{Self, Table};

// ------------------------------------------------------------------------------------------------ constants

/// Version of the package code that may operate on a `Cluster`. Bump on an upgrade that must fence off
/// the previous code, then call `migrate`.
const VERSION: u64 = 1;

/// Stake roles. A worker runs a node; a user gets namespaced kubectl access; an admin gets cluster-admin access.
/// Worker and admin stakes need the admin's grant (`grant_role`, `role_requires_grant`); user stakes do not.
const ROLE_WORKER: u8 = 0;
const ROLE_USER: u8 = 1;
const ROLE_ADMIN: u8 = 2;

/// 1 SUI = 1_000_000_000 MIST.
/// Default minimum stake of a worker: 1_000_000_000 MIST = 1 SUI.
const DEFAULT_MIN_STAKE_WORKER: u64 = 1_000_000_000;
/// Default minimum stake of a user: 500_000_000 MIST = 0.5 SUI.
const DEFAULT_MIN_STAKE_USER: u64 = 500_000_000;
/// Default minimum stake of an admin: 10_000_000_000 MIST = 10 SUI.
const DEFAULT_MIN_STAKE_ADMIN: u64 = 10_000_000_000;

/// Default unbonding period: 86_400_000 ms = 24 hours.
const DEFAULT_UNBONDING_PERIOD_MS: u64 = 86_400_000;
/// Upper bound of the unbonding period the admin may set: 2_592_000_000 ms = 30 days
/// (so the admin cannot lock stakers' funds indefinitely).
const MAX_UNBONDING_PERIOD_MS: u64 = 2_592_000_000;

/// Length of a Nitro PCR value (SHA-384 digest).
const PCR_LENGTH: u64 = 48;
/// Maximum length of a DNS label (RFC 1123), used for node names and the cluster name.
const MAX_DNS_LABEL_LENGTH: u64 = 63;

// ------------------------------------------------------------------------------------------------ abort codes

/// The cluster's `version` differs from this package's `VERSION` (old package after an upgrade, or not migrated).
const EWrongVersion: u64 = 1;
/// `migrate` called although the cluster is already at this package's `VERSION`.
const ENotUpgrade: u64 = 2;
/// The `AdminCap` belongs to a different cluster.
const EWrongAdminCap: u64 = 3;
/// Role is not one of worker (0), user (1), admin (2).
const EInvalidRole: u64 = 4;
/// A role minimum of 0 MIST was requested (free stake records could be squatted).
const EZeroMinimum: u64 = 5;
/// Unbonding period above `MAX_UNBONDING_PERIOD_MS` (30 days).
const EUnbondingTooLong: u64 = 6;
/// An expected PCR is not 48 bytes long.
const EInvalidPcrLength: u64 = 7;
/// Treasury withdrawal larger than the treasury balance.
const EInsufficientTreasury: u64 = 8;
/// Treasury withdrawal of 0 MIST.
const EZeroAmount: u64 = 9;
/// The record id is already marked as slashed.
const EAlreadySlashed: u64 = 10;
/// Cluster name is not a DNS label (1..=63 bytes of `a-z`, `0-9`, `-`, not starting or ending with `-`).
const EInvalidName: u64 = 11;
/// `grant_role` / `revoke_role` for a role that needs no grant (user) or is not a role at all.
const ERoleNotGrantable: u64 = 12;
/// `grant_role` for a role the account already holds a grant for.
const EAlreadyGranted: u64 = 13;
/// `revoke_role` for a role the account holds no grant for.
const ENotGranted: u64 = 14;
/// An expected PCR is all zero: the value of a debug-mode enclave, which must never be approved.
const EZeroPcr: u64 = 15;

// ------------------------------------------------------------------------------------------------ objects

/// One-time witness of this module.
public struct CLUSTER has drop {}

/// Capability for the admin functions of one cluster. `store`, so it can be moved to a multisig or
/// wrapped; whoever holds it is the cluster admin.
public struct AdminCap has key, store {
    id: UID,
    /// The cluster this cap administers.
    cluster_id: ID,
}

/// The enclave (TEE control plane) currently registered for the cluster; see `k3s_daas::enclave`.
public struct Enclave has copy, drop, store {
    /// Public key from the attestation document (`public_key` field), as the enclave put it there.
    public_key: vector<u8>,
    /// Endpoint (URL or host:port) where the enclave serves; bound into the attestation's user_data.
    endpoint: String,
    /// SHA-256 (32 bytes) of the DER of the enclave's CA certificate, bound into the attestation's
    /// user_data: clients pin the CA whose certificate hashes to this value.
    ca_sha256: vector<u8>,
    /// PCR0/1/2 of the attested enclave (equal to the cluster's expected PCRs at registration time).
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
    /// Timestamp of the attestation document (ms since the UNIX epoch).
    attested_at_ms: u64,
    /// Clock time of the registration transaction (ms).
    registered_at_ms: u64,
}

/// Shared configuration object of one cluster. Field order is the BCS layout (mirrored in Rust).
public struct Cluster has key {
    id: UID,
    /// Code version allowed to operate on this object (see `VERSION`).
    version: u64,
    /// Human-readable cluster name (DNS label).
    name: String,
    /// Minimum stake in MIST per role.
    min_stake_worker: u64,
    min_stake_user: u64,
    min_stake_admin: u64,
    /// Time between `request_unstake` and the earliest `withdraw`, in ms.
    unbonding_period_ms: u64,
    /// Expected enclave PCR0/1/2 (48 bytes each); empty until the admin sets them, and while empty no
    /// enclave can register.
    expected_pcr0: vector<u8>,
    expected_pcr1: vector<u8>,
    expected_pcr2: vector<u8>,
    /// The only address allowed to submit `register_enclave` (initially the publisher).
    enclave_operator: address,
    /// The registered enclave, if any. Cleared when the expected PCRs change.
    enclave: Option<Enclave>,
    /// Slashed stake collected from settled records.
    treasury: Balance<SUI>,
    /// Ids of stake records the admin has slashed (value always `true`).
    slashed: Table<ID, bool>,
    /// Role grants: per account, the bitmask of privileged roles (bit `1 << role`) the admin has allowed it
    /// to stake for. An account without an entry holds no grant; an entry whose mask becomes 0 is removed.
    grants: Table<address, u8>,
}

// ------------------------------------------------------------------------------------------------ events

/// Emitted once by `init`.
public struct ClusterCreated has copy, drop {
    cluster_id: ID,
    admin_cap_id: ID,
    admin: address,
}

/// The admin marked a stake record as slashed.
public struct Slashed has copy, drop {
    cluster_id: ID,
    record_id: ID,
}

public struct RoleMinimumChanged has copy, drop {
    cluster_id: ID,
    role: u8,
    old_min_mist: u64,
    new_min_mist: u64,
}

public struct UnbondingPeriodChanged has copy, drop {
    cluster_id: ID,
    old_period_ms: u64,
    new_period_ms: u64,
}

/// New expected PCRs; `enclave_cleared` is true when a registered enclave was removed by the change.
public struct PcrsChanged has copy, drop {
    cluster_id: ID,
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
    enclave_cleared: bool,
}

public struct EnclaveOperatorChanged has copy, drop {
    cluster_id: ID,
    old_operator: address,
    new_operator: address,
}

public struct TreasuryWithdrawn has copy, drop {
    cluster_id: ID,
    amount: u64,
    recipient: address,
}

public struct ClusterRenamed has copy, drop {
    cluster_id: ID,
    name: String,
}

public struct ClusterMigrated has copy, drop {
    cluster_id: ID,
    from_version: u64,
    to_version: u64,
}

/// The admin allowed `account` to stake for the privileged `role` (worker 0 or admin 2).
public struct RoleGranted has copy, drop {
    cluster_id: ID,
    account: address,
    role: u8,
}

/// The admin withdrew `account`'s grant for `role`. Records already staked stay on chain; the control plane
/// must refuse them from now on.
public struct RoleRevoked has copy, drop {
    cluster_id: ID,
    account: address,
    role: u8,
}

// ------------------------------------------------------------------------------------------------ init

/// Creates the shared `Cluster` with default parameters, sends the `AdminCap` (and the package `Publisher`,
/// for a later `Display`) to the publisher.
fun init(otw: CLUSTER, ctx: &mut TxContext) {
    package::claim_and_keep(otw, ctx);
    let (cluster, cap) = new_cluster(ctx);
    transfer::share_object(cluster);
    transfer::public_transfer(cap, ctx.sender());
}

fun new_cluster(ctx: &mut TxContext): (Cluster, AdminCap) {
    let cluster = Cluster {
        id: object::new(ctx),
        version: VERSION,
        name: b"k3s-daas".to_string(),
        min_stake_worker: DEFAULT_MIN_STAKE_WORKER,
        min_stake_user: DEFAULT_MIN_STAKE_USER,
        min_stake_admin: DEFAULT_MIN_STAKE_ADMIN,
        unbonding_period_ms: DEFAULT_UNBONDING_PERIOD_MS,
        expected_pcr0: vector[],
        expected_pcr1: vector[],
        expected_pcr2: vector[],
        enclave_operator: ctx.sender(),
        enclave: option::none(),
        treasury: balance::zero(),
        slashed: table::new(ctx),
        grants: table::new(ctx),
    };
    let cap = AdminCap { id: object::new(ctx), cluster_id: object::id(&cluster) };
    event::emit(ClusterCreated {
        cluster_id: object::id(&cluster),
        admin_cap_id: object::id(&cap),
        admin: ctx.sender(),
    });
    (cluster, cap)
}

// ------------------------------------------------------------------------------------------------ admin

/// Sets the minimum stake (MIST) of `role`. Applies to new stakes only.
public fun set_role_minimum(cap: &AdminCap, cluster: &mut Cluster, role: u8, min_mist: u64) {
    cluster.assert_admin(cap);
    assert!(min_mist > 0, EZeroMinimum);
    let old_min_mist = cluster.min_stake(role);
    if (role == ROLE_WORKER) cluster.min_stake_worker = min_mist
    else if (role == ROLE_USER) cluster.min_stake_user = min_mist
    else cluster.min_stake_admin = min_mist;
    event::emit(RoleMinimumChanged {
        cluster_id: object::id(cluster),
        role,
        old_min_mist,
        new_min_mist: min_mist,
    });
}

/// Sets the unbonding period (ms, at most 30 days). Applies to every pending withdrawal.
public fun set_unbonding_period(cap: &AdminCap, cluster: &mut Cluster, period_ms: u64) {
    cluster.assert_admin(cap);
    assert!(period_ms <= MAX_UNBONDING_PERIOD_MS, EUnbondingTooLong);
    let old_period_ms = cluster.unbonding_period_ms;
    cluster.unbonding_period_ms = period_ms;
    event::emit(UnbondingPeriodChanged {
        cluster_id: object::id(cluster),
        old_period_ms,
        new_period_ms: period_ms,
    });
}

/// Sets the expected enclave PCR0/1/2 (48 bytes each, none all zero: that is a debug-mode enclave) and
/// removes the registered enclave, which was attested against the previous values and must register again.
public fun set_expected_pcrs(
    cap: &AdminCap,
    cluster: &mut Cluster,
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
) {
    cluster.assert_admin(cap);
    assert!(
        pcr0.length() == PCR_LENGTH && pcr1.length() == PCR_LENGTH && pcr2.length() == PCR_LENGTH,
        EInvalidPcrLength,
    );
    assert!(!is_zero_pcr(&pcr0) && !is_zero_pcr(&pcr1) && !is_zero_pcr(&pcr2), EZeroPcr);
    let enclave_cleared = cluster.enclave.is_some();
    cluster.enclave = option::none();
    cluster.expected_pcr0 = pcr0;
    cluster.expected_pcr1 = pcr1;
    cluster.expected_pcr2 = pcr2;
    event::emit(PcrsChanged { cluster_id: object::id(cluster), pcr0, pcr1, pcr2, enclave_cleared });
}

/// Sets the address allowed to register the enclave (e.g. a hot key on the enclave host, so that the
/// host does not need the `AdminCap`).
public fun set_enclave_operator(cap: &AdminCap, cluster: &mut Cluster, operator: address) {
    cluster.assert_admin(cap);
    let old_operator = cluster.enclave_operator;
    cluster.enclave_operator = operator;
    event::emit(EnclaveOperatorChanged {
        cluster_id: object::id(cluster),
        old_operator,
        new_operator: operator,
    });
}

/// Renames the cluster (DNS label).
public fun set_name(cap: &AdminCap, cluster: &mut Cluster, name: String) {
    cluster.assert_admin(cap);
    assert!(is_valid_dns_label(&name), EInvalidName);
    cluster.name = name;
    event::emit(ClusterRenamed { cluster_id: object::id(cluster), name });
}

/// Sends `amount` MIST of slashed funds from the treasury to the caller (the cap holder). Transfers rather
/// than returns the coin so that treasury funds can only ever land at the admin's address.
#[allow(lint(self_transfer))]
public fun withdraw_treasury(cap: &AdminCap, cluster: &mut Cluster, amount: u64, ctx: &mut TxContext) {
    cluster.assert_admin(cap);
    assert!(amount > 0, EZeroAmount);
    assert!(amount <= cluster.treasury.value(), EInsufficientTreasury);
    let coin = coin::take(&mut cluster.treasury, amount, ctx);
    transfer::public_transfer(coin, ctx.sender());
    event::emit(TreasuryWithdrawn { cluster_id: object::id(cluster), amount, recipient: ctx.sender() });
}

/// Marks the stake record `record_id` as slashed. From now on the record cannot add stake or unbond, the
/// control plane must treat it as slashed, and its funds go to the treasury as soon as its owner calls
/// `staking::settle_slash` or `staking::withdraw` (owned records cannot be touched by the admin directly;
/// until then the funds stay locked in the record). Works for ACTIVE and UNBONDING records alike, which
/// is what the unbonding period is for. The admin cannot check on chain that the id is a real record
/// of this cluster; marking an unrelated id only costs storage.
public fun slash(cap: &AdminCap, cluster: &mut Cluster, record_id: ID) {
    cluster.assert_admin(cap);
    assert!(!cluster.slashed.contains(record_id), EAlreadySlashed);
    cluster.slashed.add(record_id, true);
    event::emit(Slashed { cluster_id: object::id(cluster), record_id });
}

/// Allows `account` to stake for the privileged `role` (worker 0 or admin 2) in this cluster; aborts with
/// `ERoleNotGrantable` for the user role (which needs no grant) or an unknown role, and with
/// `EAlreadyGranted` if the account already holds this grant. A grant does not stake anything: the account
/// still stakes, at the role's minimum, with `staking::stake`.
public fun grant_role(cap: &AdminCap, cluster: &mut Cluster, account: address, role: u8) {
    cluster.assert_admin(cap);
    assert!(role_requires_grant(role), ERoleNotGrantable);
    let bit: u8 = 1 << role;
    let mask = cluster.granted_roles(account);
    assert!((mask & bit) == 0, EAlreadyGranted);
    if (mask == 0) {
        cluster.grants.add(account, bit);
    } else {
        *cluster.grants.borrow_mut(account) = mask | bit;
    };
    event::emit(RoleGranted { cluster_id: object::id(cluster), account, role });
}

/// Withdraws `account`'s grant for `role`; aborts with `ERoleNotGrantable` as `grant_role` does and with
/// `ENotGranted` if the account holds no such grant. From now on the account cannot stake for the role.
/// Records it has already staked are owned objects the admin cannot touch: they stay ACTIVE on chain, the
/// control plane refuses them (their owner lacks the grant), and the owner can still `request_unstake` and
/// `withdraw` them as usual. To take the stake as well, `slash` the records.
public fun revoke_role(cap: &AdminCap, cluster: &mut Cluster, account: address, role: u8) {
    cluster.assert_admin(cap);
    assert!(role_requires_grant(role), ERoleNotGrantable);
    let bit: u8 = 1 << role;
    let mask = cluster.granted_roles(account);
    assert!((mask & bit) != 0, ENotGranted);
    let remaining = mask ^ bit;
    if (remaining == 0) {
        cluster.grants.remove(account);
    } else {
        *cluster.grants.borrow_mut(account) = remaining;
    };
    event::emit(RoleRevoked { cluster_id: object::id(cluster), account, role });
}

/// After a package upgrade that bumped `VERSION`: moves the cluster to the new version, which disables
/// the functions of the previous package version.
public fun migrate(cap: &AdminCap, cluster: &mut Cluster) {
    assert!(cap.cluster_id == object::id(cluster), EWrongAdminCap);
    assert!(cluster.version < VERSION, ENotUpgrade);
    let from_version = cluster.version;
    cluster.version = VERSION;
    event::emit(ClusterMigrated { cluster_id: object::id(cluster), from_version, to_version: VERSION });
}

// ------------------------------------------------------------------------------------------------ reads

public fun version(cluster: &Cluster): u64 { cluster.version }

public fun name(cluster: &Cluster): &String { &cluster.name }

/// Minimum stake in MIST of `role`; aborts with `EInvalidRole` for an unknown role.
public fun min_stake(cluster: &Cluster, role: u8): u64 {
    assert!(is_valid_role(role), EInvalidRole);
    if (role == ROLE_WORKER) cluster.min_stake_worker
    else if (role == ROLE_USER) cluster.min_stake_user
    else cluster.min_stake_admin
}

public fun unbonding_period_ms(cluster: &Cluster): u64 { cluster.unbonding_period_ms }

public fun expected_pcr0(cluster: &Cluster): &vector<u8> { &cluster.expected_pcr0 }

public fun expected_pcr1(cluster: &Cluster): &vector<u8> { &cluster.expected_pcr1 }

public fun expected_pcr2(cluster: &Cluster): &vector<u8> { &cluster.expected_pcr2 }

public fun enclave_operator(cluster: &Cluster): address { cluster.enclave_operator }

public fun enclave(cluster: &Cluster): &Option<Enclave> { &cluster.enclave }

public fun treasury_value(cluster: &Cluster): u64 { cluster.treasury.value() }

/// Whether the admin has marked `record_id` as slashed (and the record has not been withdrawn since).
public fun is_slashed(cluster: &Cluster, record_id: ID): bool { cluster.slashed.contains(record_id) }

/// Bitmask of the privileged roles `account` holds a grant for (bit `1 << role`); 0 for none.
public fun granted_roles(cluster: &Cluster, account: address): u8 {
    if (cluster.grants.contains(account)) *cluster.grants.borrow(account) else 0
}

/// Whether `account` holds the admin's grant for `role`. Always false for a role that needs no grant.
public fun is_granted(cluster: &Cluster, account: address, role: u8): bool {
    role_requires_grant(role) && (cluster.granted_roles(account) & (1 << role)) != 0
}

public fun admin_cap_cluster_id(cap: &AdminCap): ID { cap.cluster_id }

public fun enclave_public_key(e: &Enclave): &vector<u8> { &e.public_key }

public fun enclave_endpoint(e: &Enclave): &String { &e.endpoint }

public fun enclave_ca_sha256(e: &Enclave): &vector<u8> { &e.ca_sha256 }

public fun enclave_attested_at_ms(e: &Enclave): u64 { e.attested_at_ms }

public fun enclave_registered_at_ms(e: &Enclave): u64 { e.registered_at_ms }

public fun role_worker(): u8 { ROLE_WORKER }

public fun role_user(): u8 { ROLE_USER }

public fun role_admin(): u8 { ROLE_ADMIN }

public fun is_valid_role(role: u8): bool { role <= ROLE_ADMIN }

/// Whether staking for `role` needs the admin's grant: true for worker (0) and admin (2), false for user (1)
/// and for anything that is not a role.
public fun role_requires_grant(role: u8): bool { role == ROLE_WORKER || role == ROLE_ADMIN }

/// RFC 1123 DNS label: 1..=63 bytes of `a-z`, `0-9` and `-`, not starting or ending with `-`.
/// Used for worker node names (they become Kubernetes node names) and the cluster name; rules out
/// upper case, dots, spaces, control bytes and a leading `-` (which could be read as a flag).
public fun is_valid_dns_label(s: &String): bool {
    let b = s.as_bytes();
    let n = b.length();
    if (n == 0 || n > MAX_DNS_LABEL_LENGTH) return false;
    let mut i = 0;
    while (i < n) {
        let c = b[i];
        let alnum = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39); // a-z, 0-9
        let inner_dash = c == 0x2d && i != 0 && i != n - 1; // '-'
        if (!alnum && !inner_dash) return false;
        i = i + 1;
    };
    true
}

/// Whether `pcr` is non-empty and all zero bytes. Debug-mode enclaves report PCR0, PCR1 and PCR2 as zeros
/// (PCR3 and PCR4 stay populated), so such a value is never approved nor accepted.
public fun is_zero_pcr(pcr: &vector<u8>): bool {
    let n = pcr.length();
    if (n == 0) return false;
    let mut i = 0;
    while (i < n) {
        if (pcr[i] != 0) return false;
        i = i + 1;
    };
    true
}

// ------------------------------------------------------------------------------------------------ package-internal

/// Upgrade guard, called first by every state-changing function of the package.
public(package) fun assert_version(cluster: &Cluster) {
    assert!(cluster.version == VERSION, EWrongVersion);
}

/// Version guard plus: the cap administers this cluster.
fun assert_admin(cluster: &Cluster, cap: &AdminCap) {
    cluster.assert_version();
    assert!(cap.cluster_id == object::id(cluster), EWrongAdminCap);
}

/// Moves slashed funds into the treasury.
public(package) fun deposit_to_treasury(cluster: &mut Cluster, funds: Balance<SUI>) {
    cluster.treasury.join(funds);
}

/// Drops the slashed mark of a record that is being deleted (frees the table entry's storage).
public(package) fun clear_slashed(cluster: &mut Cluster, record_id: ID) {
    if (cluster.slashed.contains(record_id)) {
        cluster.slashed.remove(record_id);
    }
}

public(package) fun new_enclave(
    public_key: vector<u8>,
    endpoint: String,
    ca_sha256: vector<u8>,
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
    attested_at_ms: u64,
    registered_at_ms: u64,
): Enclave {
    Enclave { public_key, endpoint, ca_sha256, pcr0, pcr1, pcr2, attested_at_ms, registered_at_ms }
}

/// Replaces the registered enclave.
public(package) fun set_enclave(cluster: &mut Cluster, e: Enclave) {
    cluster.enclave = option::some(e);
}

// ------------------------------------------------------------------------------------------------ tests

#[test_only]
/// Runs `init` as the publish transaction would.
public fun init_for_testing(ctx: &mut TxContext) {
    init(sui::test_utils::create_one_time_witness<CLUSTER>(), ctx);
}

#[test_only]
/// A second, independent cluster (shared) with its own cap, for cross-cluster tests.
public fun create_extra_cluster_for_testing(ctx: &mut TxContext): AdminCap {
    let (cluster, cap) = new_cluster(ctx);
    transfer::share_object(cluster);
    cap
}

#[test_only]
/// Simulates a cluster object written by another package version.
public fun set_version_for_testing(cluster: &mut Cluster, version: u64) {
    cluster.version = version;
}

#[test_only]
public fun current_version_for_testing(): u64 { VERSION }

#[test_only]
/// Number of accounts with a grant entry (entries whose mask became 0 are removed).
public fun grant_entries_for_testing(cluster: &Cluster): u64 { cluster.grants.length() }

// Event constructors for the golden BCS vectors (`tests/golden_tests.move`); events can only be packed here.

#[test_only]
public fun cluster_created_for_testing(cluster_id: ID, admin_cap_id: ID, admin: address): ClusterCreated {
    ClusterCreated { cluster_id, admin_cap_id, admin }
}

#[test_only]
public fun slashed_for_testing(cluster_id: ID, record_id: ID): Slashed {
    Slashed { cluster_id, record_id }
}

#[test_only]
public fun role_minimum_changed_for_testing(
    cluster_id: ID,
    role: u8,
    old_min_mist: u64,
    new_min_mist: u64,
): RoleMinimumChanged {
    RoleMinimumChanged { cluster_id, role, old_min_mist, new_min_mist }
}

#[test_only]
public fun unbonding_period_changed_for_testing(
    cluster_id: ID,
    old_period_ms: u64,
    new_period_ms: u64,
): UnbondingPeriodChanged {
    UnbondingPeriodChanged { cluster_id, old_period_ms, new_period_ms }
}

#[test_only]
public fun pcrs_changed_for_testing(
    cluster_id: ID,
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
    enclave_cleared: bool,
): PcrsChanged {
    PcrsChanged { cluster_id, pcr0, pcr1, pcr2, enclave_cleared }
}

#[test_only]
public fun enclave_operator_changed_for_testing(
    cluster_id: ID,
    old_operator: address,
    new_operator: address,
): EnclaveOperatorChanged {
    EnclaveOperatorChanged { cluster_id, old_operator, new_operator }
}

#[test_only]
public fun treasury_withdrawn_for_testing(cluster_id: ID, amount: u64, recipient: address): TreasuryWithdrawn {
    TreasuryWithdrawn { cluster_id, amount, recipient }
}

#[test_only]
public fun cluster_renamed_for_testing(cluster_id: ID, name: String): ClusterRenamed {
    ClusterRenamed { cluster_id, name }
}

#[test_only]
public fun cluster_migrated_for_testing(cluster_id: ID, from_version: u64, to_version: u64): ClusterMigrated {
    ClusterMigrated { cluster_id, from_version, to_version }
}

#[test_only]
public fun role_granted_for_testing(cluster_id: ID, account: address, role: u8): RoleGranted {
    RoleGranted { cluster_id, account, role }
}

#[test_only]
public fun role_revoked_for_testing(cluster_id: ID, account: address, role: u8): RoleRevoked {
    RoleRevoked { cluster_id, account, role }
}
