/// Stake-to-join: one owned `StakeRecord` per stake, holding its own `Balance<SUI>`.
///
/// A worker stakes to join as a node, a user or admin stakes for kubectl access (role minimums in
/// `k3s_daas::cluster`). Worker and admin stakes are by consent of the cluster admin: the sender must hold the
/// admin's grant for the role (`cluster::grant_role`); anyone may stake as a user. The record is an owned object with `key` only (no `store`): it cannot be
/// transferred or wrapped by anyone but this module, so `owner` always equals the object owner. The
/// control plane reads the record (`GetObject`) and checks owner, role, status, balance, token epoch and
/// that the cluster has not slashed it.
///
/// Life cycle: ACTIVE --request_unstake--> UNBONDING --(unbonding period)--> withdraw (record deleted).
/// Slashing: the admin marks a record id as slashed in the cluster; the record's funds go to the cluster
/// treasury when the owner next calls `settle_slash` or `withdraw` (status SLASHED). Until then the record
/// cannot add stake or unbond, and its funds stay locked in it.
///
/// Token revocation: the control plane binds access tokens to `token_epoch`; `revoke_tokens` and
/// `request_unstake` bump it, invalidating all earlier tokens.
///
/// Grant revocation: `cluster::revoke_role` cannot touch records already staked (they are owned objects). A
/// worker or admin record whose owner no longer holds the grant for its role stays ACTIVE on chain; the
/// control plane must refuse it, and its owner can still `request_unstake` and `withdraw` it.
module k3s_daas::staking;

use k3s_daas::cluster::{Self, Cluster};
use std::string::String;
use sui::balance::Balance;
use sui::clock::Clock;
use sui::coin::{Self, Coin};
use sui::event;
use sui::sui::SUI;

// ------------------------------------------------------------------------------------------------ constants

/// Record status: staked and usable.
const STATUS_ACTIVE: u8 = 0;
/// Record status: unstake requested; withdrawable after the unbonding period.
const STATUS_UNBONDING: u8 = 1;
/// Record status: slash settled; the balance has gone to the treasury.
const STATUS_SLASHED: u8 = 2;

// ------------------------------------------------------------------------------------------------ abort codes

/// Coin value below the cluster's minimum stake for the role.
const EBelowMinimum: u64 = 20;
/// Worker node name is not a DNS label (1..=63 bytes of `a-z`, `0-9`, `-`, no leading/trailing `-`),
/// or a user/admin stake has a non-empty node name.
const EInvalidNodeName: u64 = 21;
/// The record belongs to a different cluster than the one passed.
const EWrongCluster: u64 = 22;
/// The sender is not the record's owner.
const ENotOwner: u64 = 23;
/// `add_stake` on a record that is not ACTIVE.
const ENotActive: u64 = 24;
/// `request_unstake` on a record that is already UNBONDING.
const EAlreadyUnbonding: u64 = 25;
/// `withdraw` of a record that is not UNBONDING (and not slashed).
const ENotUnbonding: u64 = 26;
/// `withdraw` before `unbond_requested_at_ms + unbonding_period_ms`.
const EUnbondingNotElapsed: u64 = 27;
/// `add_stake` / `request_unstake` on a slashed record.
const ERecordSlashed: u64 = 28;
/// `settle_slash` on a record the cluster has not slashed.
const ENotSlashed: u64 = 29;
/// `settle_slash` on a record whose slash is already settled.
const EAlreadySettled: u64 = 30;
/// `add_stake` with a zero-value coin.
const EZeroStake: u64 = 31;
/// `stake` for worker or admin by a sender without the cluster admin's grant for that role
/// (`cluster::grant_role`).
const ENoGrant: u64 = 32;

// ------------------------------------------------------------------------------------------------ objects

/// One stake. Owned by `owner`; `key` without `store`. Field order is the BCS layout (mirrored in Rust).
public struct StakeRecord has key {
    id: UID,
    /// Id of the `Cluster` this stake is for.
    cluster_id: ID,
    /// Staker; equals the object's owner.
    owner: address,
    /// `cluster::role_worker()` (0), `role_user()` (1) or `role_admin()` (2).
    role: u8,
    /// Kubernetes node name for workers (DNS label); empty for users and admins. Not unique on chain:
    /// the control plane must key nodes by record id or reject duplicates.
    node_name: String,
    /// The staked funds.
    balance: Balance<SUI>,
    /// STATUS_ACTIVE (0), STATUS_UNBONDING (1) or STATUS_SLASHED (2).
    status: u8,
    /// Access tokens are valid only for the current value; bumped by `revoke_tokens`,
    /// `request_unstake` and `settle_slash`.
    token_epoch: u64,
    /// Clock time of `stake` (ms).
    staked_at_ms: u64,
    /// Clock time of `request_unstake` (ms); 0 if none.
    unbond_requested_at_ms: u64,
}

// ------------------------------------------------------------------------------------------------ events

public struct Staked has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    role: u8,
    node_name: String,
    amount: u64,
    staked_at_ms: u64,
}

public struct StakeAdded has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    amount: u64,
    new_total: u64,
}

public struct UnstakeRequested has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    token_epoch: u64,
    requested_at_ms: u64,
    /// `requested_at_ms` + the unbonding period at request time (the admin may change the period later).
    withdrawable_at_ms: u64,
}

/// The record was deleted. `amount` is what the owner received (0 when `slashed`).
public struct Withdrawn has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    amount: u64,
    slashed: bool,
}

public struct TokensRevoked has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    token_epoch: u64,
}

/// A slashed record's balance (`amount`) moved to the cluster treasury.
public struct SlashSettled has copy, drop {
    cluster_id: ID,
    record_id: ID,
    owner: address,
    amount: u64,
}

// ------------------------------------------------------------------------------------------------ entry points

/// Stakes `coin` for `role` and sends a new `StakeRecord` to the sender. The whole coin is staked and must
/// be at least the cluster's minimum for the role. Workers must give a DNS-label `node_name`; users and
/// admins must pass an empty one. Worker and admin stakes need the sender to hold the cluster admin's grant
/// for the role (`cluster::grant_role`). Takes the cluster read-only (no contention on the shared object).
///
/// Checks, in this order: cluster version (`cluster::EWrongVersion`), known role (`cluster::EInvalidRole`),
/// grant for worker/admin (`ENoGrant`), node name (`EInvalidNodeName`), minimum (`EBelowMinimum`).
public fun stake(
    cluster: &Cluster,
    coin: Coin<SUI>,
    role: u8,
    node_name: String,
    clock: &Clock,
    ctx: &mut TxContext,
) {
    cluster.assert_version();
    let min = cluster.min_stake(role); // aborts with cluster::EInvalidRole for an unknown role
    assert!(!cluster::role_requires_grant(role) || cluster.is_granted(ctx.sender(), role), ENoGrant);
    if (role == cluster::role_worker()) {
        assert!(cluster::is_valid_dns_label(&node_name), EInvalidNodeName);
    } else {
        assert!(node_name.is_empty(), EInvalidNodeName);
    };
    let amount = coin.value();
    assert!(amount >= min, EBelowMinimum);

    let now = clock.timestamp_ms();
    let record = StakeRecord {
        id: object::new(ctx),
        cluster_id: object::id(cluster),
        owner: ctx.sender(),
        role,
        node_name,
        balance: coin.into_balance(),
        status: STATUS_ACTIVE,
        token_epoch: 0,
        staked_at_ms: now,
        unbond_requested_at_ms: 0,
    };
    event::emit(Staked {
        cluster_id: record.cluster_id,
        record_id: object::id(&record),
        owner: record.owner,
        role,
        node_name,
        amount,
        staked_at_ms: now,
    });
    transfer::transfer(record, ctx.sender());
}

/// Adds `coin` to an ACTIVE, unslashed record.
public fun add_stake(cluster: &Cluster, record: &mut StakeRecord, coin: Coin<SUI>, ctx: &TxContext) {
    check_record(cluster, record, ctx);
    assert!(!is_record_slashed(cluster, record), ERecordSlashed);
    assert!(record.status == STATUS_ACTIVE, ENotActive);
    let amount = coin.value();
    assert!(amount > 0, EZeroStake);
    let new_total = record.balance.join(coin.into_balance());
    event::emit(StakeAdded {
        cluster_id: record.cluster_id,
        record_id: object::id(record),
        owner: record.owner,
        amount,
        new_total,
    });
}

/// Starts unbonding: status UNBONDING, tokens revoked (token_epoch + 1), time stamped. The funds can be
/// withdrawn once the cluster's unbonding period has elapsed; the admin can still slash meanwhile.
public fun request_unstake(cluster: &Cluster, record: &mut StakeRecord, clock: &Clock, ctx: &TxContext) {
    check_record(cluster, record, ctx);
    assert!(!is_record_slashed(cluster, record), ERecordSlashed);
    assert!(record.status != STATUS_UNBONDING, EAlreadyUnbonding);
    let now = clock.timestamp_ms();
    record.status = STATUS_UNBONDING;
    record.token_epoch = record.token_epoch + 1;
    record.unbond_requested_at_ms = now;
    event::emit(UnstakeRequested {
        cluster_id: record.cluster_id,
        record_id: object::id(record),
        owner: record.owner,
        token_epoch: record.token_epoch,
        requested_at_ms: now,
        withdrawable_at_ms: now + cluster.unbonding_period_ms(),
    });
}

/// Deletes the record and returns its funds.
/// - Not slashed: the record must be UNBONDING and `unbond_requested_at_ms + unbonding_period_ms <= now`
///   (the cluster's current period). Returns a coin with the whole balance.
/// - Slashed (marked in the cluster, or already settled): allowed at any time; the whole balance goes to
///   the treasury, the slashed mark is cleared, and a ZERO-value coin is returned (the caller's PTB must
///   transfer it or destroy it with `0x2::coin::destroy_zero`). This is how a slashed staker gets the
///   storage rebate of the record back; the funds themselves are forfeit.
/// Takes the cluster `&mut` because funds may move into its treasury.
public fun withdraw(
    cluster: &mut Cluster,
    mut record: StakeRecord,
    clock: &Clock,
    ctx: &mut TxContext,
): Coin<SUI> {
    check_record(cluster, &record, ctx);
    let slashed = is_record_slashed(cluster, &record);
    if (slashed) {
        if (record.status != STATUS_SLASHED) settle(cluster, &mut record);
    } else {
        assert!(record.status == STATUS_UNBONDING, ENotUnbonding);
        assert!(
            clock.timestamp_ms() >= record.unbond_requested_at_ms + cluster.unbonding_period_ms(),
            EUnbondingNotElapsed,
        );
    };
    let StakeRecord { id, cluster_id, owner, balance, .. } = record;
    let record_id = id.to_inner();
    id.delete();
    cluster.clear_slashed(record_id);
    let amount = balance.value();
    event::emit(Withdrawn { cluster_id, record_id, owner, amount, slashed });
    coin::from_balance(balance, ctx)
}

/// Invalidates all access tokens issued for the record so far (token_epoch + 1). Any status.
public fun revoke_tokens(cluster: &Cluster, record: &mut StakeRecord, ctx: &TxContext) {
    check_record(cluster, record, ctx);
    record.token_epoch = record.token_epoch + 1;
    event::emit(TokensRevoked {
        cluster_id: record.cluster_id,
        record_id: object::id(record),
        owner: record.owner,
        token_epoch: record.token_epoch,
    });
}

/// Settles a slash: moves the whole balance of a record the cluster has slashed into the treasury,
/// sets status SLASHED and revokes tokens. Only whoever can pass the owned record (its owner) can call
/// it; `withdraw` settles too.
public fun settle_slash(cluster: &mut Cluster, record: &mut StakeRecord) {
    cluster.assert_version();
    assert!(record.cluster_id == object::id(cluster), EWrongCluster);
    assert!(cluster.is_slashed(object::id(record)), ENotSlashed);
    assert!(record.status != STATUS_SLASHED, EAlreadySettled);
    settle(cluster, record);
}

// ------------------------------------------------------------------------------------------------ reads

public fun cluster_id(r: &StakeRecord): ID { r.cluster_id }

public fun owner(r: &StakeRecord): address { r.owner }

public fun role(r: &StakeRecord): u8 { r.role }

public fun node_name(r: &StakeRecord): &String { &r.node_name }

public fun amount(r: &StakeRecord): u64 { r.balance.value() }

public fun status(r: &StakeRecord): u8 { r.status }

public fun token_epoch(r: &StakeRecord): u64 { r.token_epoch }

public fun staked_at_ms(r: &StakeRecord): u64 { r.staked_at_ms }

public fun unbond_requested_at_ms(r: &StakeRecord): u64 { r.unbond_requested_at_ms }

public fun status_active(): u8 { STATUS_ACTIVE }

public fun status_unbonding(): u8 { STATUS_UNBONDING }

public fun status_slashed(): u8 { STATUS_SLASHED }

// ------------------------------------------------------------------------------------------------ internal

/// Version guard, record of this cluster, sender is the owner.
fun check_record(cluster: &Cluster, record: &StakeRecord, ctx: &TxContext) {
    cluster.assert_version();
    assert!(record.cluster_id == object::id(cluster), EWrongCluster);
    assert!(record.owner == ctx.sender(), ENotOwner);
}

fun is_record_slashed(cluster: &Cluster, record: &StakeRecord): bool {
    record.status == STATUS_SLASHED || cluster.is_slashed(object::id(record))
}

fun settle(cluster: &mut Cluster, record: &mut StakeRecord) {
    let funds = record.balance.withdraw_all();
    let amount = funds.value();
    cluster.deposit_to_treasury(funds);
    record.status = STATUS_SLASHED;
    record.token_epoch = record.token_epoch + 1;
    event::emit(SlashSettled {
        cluster_id: record.cluster_id,
        record_id: object::id(record),
        owner: record.owner,
        amount,
    });
}

// ------------------------------------------------------------------------------------------------ tests

// Constructors for the golden BCS vectors (`tests/golden_tests.move`); structs can only be packed here.

#[test_only]
/// Takes `ctx` rather than a `UID`: the Sui verifier requires an object's `UID` to come straight from `object::new`.
public fun stake_record_for_testing(
    cluster_id: ID,
    owner: address,
    role: u8,
    node_name: String,
    balance: Balance<SUI>,
    status: u8,
    token_epoch: u64,
    staked_at_ms: u64,
    unbond_requested_at_ms: u64,
    ctx: &mut TxContext,
): StakeRecord {
    StakeRecord {
        id: object::new(ctx),
        cluster_id,
        owner,
        role,
        node_name,
        balance,
        status,
        token_epoch,
        staked_at_ms,
        unbond_requested_at_ms,
    }
}

#[test_only]
public fun staked_for_testing(
    cluster_id: ID,
    record_id: ID,
    owner: address,
    role: u8,
    node_name: String,
    amount: u64,
    staked_at_ms: u64,
): Staked {
    Staked { cluster_id, record_id, owner, role, node_name, amount, staked_at_ms }
}

#[test_only]
public fun stake_added_for_testing(
    cluster_id: ID,
    record_id: ID,
    owner: address,
    amount: u64,
    new_total: u64,
): StakeAdded {
    StakeAdded { cluster_id, record_id, owner, amount, new_total }
}

#[test_only]
public fun unstake_requested_for_testing(
    cluster_id: ID,
    record_id: ID,
    owner: address,
    token_epoch: u64,
    requested_at_ms: u64,
    withdrawable_at_ms: u64,
): UnstakeRequested {
    UnstakeRequested { cluster_id, record_id, owner, token_epoch, requested_at_ms, withdrawable_at_ms }
}

#[test_only]
public fun withdrawn_for_testing(
    cluster_id: ID,
    record_id: ID,
    owner: address,
    amount: u64,
    slashed: bool,
): Withdrawn {
    Withdrawn { cluster_id, record_id, owner, amount, slashed }
}

#[test_only]
public fun tokens_revoked_for_testing(
    cluster_id: ID,
    record_id: ID,
    owner: address,
    token_epoch: u64,
): TokensRevoked {
    TokensRevoked { cluster_id, record_id, owner, token_epoch }
}

#[test_only]
public fun slash_settled_for_testing(cluster_id: ID, record_id: ID, owner: address, amount: u64): SlashSettled {
    SlashSettled { cluster_id, record_id, owner, amount }
}
