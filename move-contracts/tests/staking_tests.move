/// Tests of `k3s_daas::staking`: stake, add_stake, request_unstake, withdraw, revoke_tokens, settle_slash.
#[test_only]
module k3s_daas::staking_tests;

use k3s_daas::cluster::{Self, Cluster, AdminCap};
use k3s_daas::staking::{Self, StakeRecord};
use k3s_daas::test_common::{Self as tc, admin, alice, bob, one_sui, t0};
use std::unit_test::assert_eq;
use sui::clock::Clock;
use sui::coin::Coin;
use sui::event;
use sui::sui::SUI;
use sui::test_scenario::{Self as ts, Scenario};

const DAY_MS: u64 = 86_400_000;

/// ALICE's transaction with the cluster, her record and a clock at `now`.
macro fun as_alice($s: &mut Scenario, $now: u64, $f: |&mut Cluster, &mut StakeRecord, &Clock, &mut Scenario|) {
    let s = $s;
    s.next_tx(alice());
    let mut cluster = s.take_shared<Cluster>();
    let mut record = s.take_from_sender<StakeRecord>();
    let clock = tc::clock_at(s, $now);
    $f(&mut cluster, &mut record, &clock, s);
    clock.destroy_for_testing();
    s.return_to_sender(record);
    ts::return_shared(cluster);
}

/// ALICE requests unstake at `now`.
fun unstake_at(s: &mut Scenario, now: u64) {
    as_alice!(s, now, |c, r, clock, s| staking::request_unstake(c, r, clock, s.ctx()));
}

/// ALICE withdraws at `now`; returns the coin value she received.
fun withdraw_at(s: &mut Scenario, now: u64): u64 {
    s.next_tx(alice());
    let mut cluster = s.take_shared<Cluster>();
    let record = s.take_from_sender<StakeRecord>();
    let clock = tc::clock_at(s, now);
    let coin = staking::withdraw(&mut cluster, record, &clock, s.ctx());
    let value = coin.value();
    transfer::public_transfer(coin, alice());
    clock.destroy_for_testing();
    ts::return_shared(cluster);
    value
}

fun treasury(s: &mut Scenario): u64 {
    s.next_tx(admin());
    let cluster = s.take_shared<Cluster>();
    let v = cluster.treasury_value();
    ts::return_shared(cluster);
    v
}

// ------------------------------------------------------------------------------------------------ stake

#[test]
fun stake_worker_creates_owned_record() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    s.next_tx(alice());
    let cluster = s.take_shared<Cluster>();
    let record = s.take_from_sender<StakeRecord>();
    assert_eq!(object::id(&record), id);
    assert_eq!(record.cluster_id(), object::id(&cluster));
    assert_eq!(record.owner(), alice());
    assert_eq!(record.role(), cluster::role_worker());
    assert_eq!(*record.node_name(), b"worker-1".to_string());
    assert_eq!(record.amount(), one_sui());
    assert_eq!(record.status(), staking::status_active());
    assert_eq!(record.token_epoch(), 0);
    assert_eq!(record.staked_at_ms(), t0());
    assert_eq!(record.unbond_requested_at_ms(), 0);
    s.return_to_sender(record);
    ts::return_shared(cluster);
    s.end();
}

#[test]
fun stake_emits_staked_and_does_not_write_cluster() {
    let mut s = tc::begin();
    tc::grant(&mut s, alice(), cluster::role_worker());
    s.next_tx(alice());
    let cluster = s.take_shared<Cluster>();
    let coin = tc::mist(&mut s, one_sui());
    let clock = tc::clock_at(&mut s, t0());
    staking::stake(&cluster, coin, cluster::role_worker(), b"w".to_string(), &clock, s.ctx());
    assert_eq!(event::events_by_type<staking::Staked>().length(), 1);
    clock.destroy_for_testing();
    ts::return_shared(cluster);
    let effects = s.next_tx(alice());
    assert_eq!(effects.num_user_events(), 1);
    assert_eq!(effects.created().length(), 1); // the record; the coin was consumed
    assert_eq!(effects.transferred_to_account().length(), 1);
    s.end();
}

#[test]
fun stake_user_and_admin_at_their_minimums() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_user(), 500_000_000, b"".to_string());
    tc::stake_granted(&mut s, bob(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    s.next_tx(alice());
    let r = s.take_from_sender<StakeRecord>();
    assert_eq!(r.role(), cluster::role_user());
    assert!(r.node_name().is_empty());
    s.return_to_sender(r);
    s.next_tx(bob());
    let r = s.take_from_sender<StakeRecord>();
    assert_eq!(r.role(), cluster::role_admin());
    assert_eq!(r.amount(), 10_000_000_000);
    s.return_to_sender(r);
    s.end();
}

#[test, expected_failure(abort_code = staking::EBelowMinimum)]
fun stake_worker_below_minimum_aborts() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_worker(), one_sui() - 1, b"worker-1".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EBelowMinimum)]
fun stake_user_below_minimum_aborts() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_user(), 499_999_999, b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EBelowMinimum)]
fun stake_admin_below_minimum_aborts() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_admin(), 9_999_999_999, b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EBelowMinimum)]
fun stake_respects_raised_minimum() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_worker(), 2 * one_sui());
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    tc::stake_worker(&mut s); // 1 SUI
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EInvalidRole)]
fun stake_with_unknown_role_aborts() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), 3, 100 * one_sui(), b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EInvalidNodeName)]
fun stake_worker_node_name_too_long_aborts() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_worker(), one_sui(), tc::repeat(0x61, 64));
    abort 0xDEAD
}

#[test]
fun stake_worker_node_name_of_63_bytes_is_fine() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_worker(), one_sui(), tc::repeat(0x61, 63));
    s.end();
}

#[test, expected_failure(abort_code = staking::EInvalidNodeName)]
fun stake_worker_empty_node_name_aborts() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_worker(), one_sui(), b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EInvalidNodeName)]
fun stake_worker_flag_like_node_name_aborts() {
    let mut s = tc::begin();
    tc::stake_granted(&mut s, alice(), cluster::role_worker(), one_sui(), b"--all".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EInvalidNodeName)]
fun stake_user_with_node_name_aborts() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_user(), one_sui(), b"worker-1".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun stake_refuses_other_cluster_version() {
    let mut s = tc::begin();
    tc::grant(&mut s, alice(), cluster::role_worker());
    s.next_tx(admin());
    let mut cluster = s.take_shared<Cluster>();
    cluster.set_version_for_testing(cluster::current_version_for_testing() + 1);
    ts::return_shared(cluster);
    tc::stake_as(&mut s, alice(), cluster::role_worker(), one_sui(), b"worker-1".to_string());
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ stake: role grants

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun stake_admin_without_grant_aborts() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun stake_worker_without_grant_aborts() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_worker(), one_sui(), b"worker-1".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun stake_admin_with_only_a_worker_grant_aborts() {
    let mut s = tc::begin();
    tc::grant(&mut s, alice(), cluster::role_worker());
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun a_grant_is_for_its_account_only() {
    let mut s = tc::begin();
    tc::grant(&mut s, bob(), cluster::role_admin());
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun stake_checks_the_grant_before_node_name_and_minimum() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), cluster::role_worker(), 1, b"Not A Label".to_string());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EInvalidRole)]
fun stake_checks_the_role_before_the_grant() {
    let mut s = tc::begin();
    tc::stake_as(&mut s, alice(), 7, one_sui(), b"".to_string());
    abort 0xDEAD
}

#[test]
fun stake_admin_and_worker_after_grant() {
    let mut s = tc::begin();
    tc::grant(&mut s, alice(), cluster::role_admin());
    tc::grant(&mut s, alice(), cluster::role_worker());
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    tc::stake_as(&mut s, alice(), cluster::role_worker(), one_sui(), b"worker-1".to_string());
    s.next_tx(alice());
    assert_eq!(s.ids_for_sender<StakeRecord>().length(), 2);
    s.end();
}

#[test]
fun user_stake_needs_no_grant() {
    let mut s = tc::begin();
    assert!(!tc::is_granted(&mut s, alice(), cluster::role_user()));
    tc::stake_as(&mut s, alice(), cluster::role_user(), 500_000_000, b"".to_string());
    s.next_tx(alice());
    let r = s.take_from_sender<StakeRecord>();
    assert_eq!(r.role(), cluster::role_user());
    s.return_to_sender(r);
    s.end();
}

#[test, expected_failure(abort_code = staking::ENoGrant)]
fun stake_after_revoke_aborts() {
    let mut s = tc::begin();
    tc::grant(&mut s, alice(), cluster::role_admin());
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    tc::revoke(&mut s, alice(), cluster::role_admin());
    tc::stake_as(&mut s, alice(), cluster::role_admin(), 10_000_000_000, b"".to_string());
    abort 0xDEAD
}

#[test]
fun record_of_a_revoked_grant_stays_and_can_still_unstake_and_withdraw() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::revoke(&mut s, alice(), cluster::role_worker());
    assert!(!tc::is_granted(&mut s, alice(), cluster::role_worker()));
    // The record is untouched: still active, same stake (the admin cannot reach owned objects).
    s.next_tx(alice());
    let record = s.take_from_sender<StakeRecord>();
    assert_eq!(object::id(&record), id);
    assert_eq!(record.status(), staking::status_active());
    assert_eq!(record.amount(), one_sui());
    s.return_to_sender(record);
    // Its owner can still leave with the funds.
    unstake_at(&mut s, t0());
    assert_eq!(withdraw_at(&mut s, t0() + DAY_MS), one_sui());
    s.next_tx(alice());
    assert!(!ts::has_most_recent_for_address<StakeRecord>(alice()));
    s.end();
}

// ------------------------------------------------------------------------------------------------ add_stake

#[test]
fun add_stake_increases_balance() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        let coin = tc::mist(s, 250);
        staking::add_stake(c, r, coin, s.ctx());
        assert_eq!(r.amount(), one_sui() + 250);
        assert_eq!(event::events_by_type<staking::StakeAdded>().length(), 1);
    });
    s.end();
}

#[test, expected_failure(abort_code = staking::EZeroStake)]
fun add_stake_zero_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        let coin = tc::mist(s, 0);
        staking::add_stake(c, r, coin, s.ctx());
    });
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotActive)]
fun add_stake_while_unbonding_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0() + 1);
    as_alice!(&mut s, t0() + 2, |c, r, _clock, s| {
        let coin = tc::mist(s, 1);
        staking::add_stake(c, r, coin, s.ctx());
    });
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ERecordSlashed)]
fun add_stake_to_slashed_record_aborts() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        let coin = tc::mist(s, 1);
        staking::add_stake(c, r, coin, s.ctx());
    });
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotOwner)]
fun add_stake_by_non_owner_aborts() {
    // On chain only the owner can pass an owned record; test_scenario lets BOB take ALICE's record.
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    s.next_tx(bob());
    let cluster = s.take_shared<Cluster>();
    let mut record = s.take_from_address<StakeRecord>(alice());
    let coin = tc::mist(&mut s, 1);
    staking::add_stake(&cluster, &mut record, coin, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EWrongCluster)]
fun add_stake_with_wrong_cluster_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(alice());
    let other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    let mut record = s.take_from_sender<StakeRecord>();
    let coin = tc::mist(&mut s, 1);
    staking::add_stake(&other, &mut record, coin, s.ctx());
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ request_unstake

#[test]
fun request_unstake_starts_unbonding_and_revokes_tokens() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0() + 5, |c, r, clock, s| {
        staking::request_unstake(c, r, clock, s.ctx());
        assert_eq!(r.status(), staking::status_unbonding());
        assert_eq!(r.token_epoch(), 1);
        assert_eq!(r.unbond_requested_at_ms(), t0() + 5);
        assert_eq!(r.amount(), one_sui());
        assert_eq!(event::events_by_type<staking::UnstakeRequested>().length(), 1);
    });
    s.end();
}

#[test, expected_failure(abort_code = staking::EAlreadyUnbonding)]
fun double_unstake_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0() + 1);
    unstake_at(&mut s, t0() + 2);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ERecordSlashed)]
fun unstake_slashed_record_aborts() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    unstake_at(&mut s, t0() + 1);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EWrongCluster)]
fun unstake_with_wrong_cluster_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(alice());
    let other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    let mut record = s.take_from_sender<StakeRecord>();
    let clock = tc::clock_at(&mut s, t0());
    staking::request_unstake(&other, &mut record, &clock, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotOwner)]
fun unstake_by_non_owner_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    s.next_tx(bob());
    let cluster = s.take_shared<Cluster>();
    let mut record = s.take_from_address<StakeRecord>(alice());
    let clock = tc::clock_at(&mut s, t0());
    staking::request_unstake(&cluster, &mut record, &clock, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun unstake_refuses_other_cluster_version() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, clock, s| {
        c.set_version_for_testing(0);
        staking::request_unstake(c, r, clock, s.ctx());
    });
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ withdraw

#[test]
fun withdraw_after_unbonding_period_returns_everything() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        let coin = tc::mist(s, 7);
        staking::add_stake(c, r, coin, s.ctx());
    });
    unstake_at(&mut s, t0() + 10);
    let got = withdraw_at(&mut s, t0() + 10 + DAY_MS); // exactly at the end of the period
    assert_eq!(got, one_sui() + 7);
    let effects = s.next_tx(alice());
    assert!(effects.deleted().contains(&id));
    assert!(!ts::has_most_recent_for_address<StakeRecord>(alice()));
    let coin = s.take_from_sender<Coin<SUI>>();
    assert_eq!(coin.value(), one_sui() + 7);
    s.return_to_sender(coin);
    assert_eq!(treasury(&mut s), 0);
    s.end();
}

#[test]
fun withdraw_emits_withdrawn() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    withdraw_at(&mut s, t0() + DAY_MS);
    assert_eq!(event::events_by_type<staking::Withdrawn>().length(), 1);
    s.end();
}

#[test, expected_failure(abort_code = staking::EUnbondingNotElapsed)]
fun withdraw_before_unbonding_period_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0() + 10);
    withdraw_at(&mut s, t0() + 10 + DAY_MS - 1);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EUnbondingNotElapsed)]
fun withdraw_uses_current_unbonding_period() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    s.next_tx(admin());
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_unbonding_period(&cap, &mut cluster, 2 * DAY_MS);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    withdraw_at(&mut s, t0() + DAY_MS);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotUnbonding)]
fun withdraw_when_not_unbonding_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    withdraw_at(&mut s, t0() + 100 * DAY_MS);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EWrongCluster)]
fun withdraw_with_wrong_cluster_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(alice());
    let mut other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    let record = s.take_from_sender<StakeRecord>();
    let clock = tc::clock_at(&mut s, t0() + DAY_MS);
    let _coin = staking::withdraw(&mut other, record, &clock, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotOwner)]
fun withdraw_by_non_owner_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    s.next_tx(bob());
    let mut cluster = s.take_shared<Cluster>();
    let record = s.take_from_address<StakeRecord>(alice());
    let clock = tc::clock_at(&mut s, t0() + DAY_MS);
    let _coin = staking::withdraw(&mut cluster, record, &clock, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun withdraw_refuses_other_cluster_version() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    s.next_tx(admin());
    let mut cluster = s.take_shared<Cluster>();
    cluster.set_version_for_testing(0);
    ts::return_shared(cluster);
    withdraw_at(&mut s, t0() + DAY_MS);
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ slashing

#[test]
fun slash_then_withdraw_moves_funds_to_treasury() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    // No unbonding needed: the owner gets nothing anyway, and the record is cleaned up.
    let got = withdraw_at(&mut s, t0());
    assert_eq!(got, 0);
    assert_eq!(event::events_by_type<staking::SlashSettled>().length(), 1);
    assert_eq!(event::events_by_type<staking::Withdrawn>().length(), 1);
    assert_eq!(treasury(&mut s), one_sui());
    s.next_tx(admin());
    let cluster = s.take_shared<Cluster>();
    assert!(!cluster.is_slashed(id)); // mark cleared with the record
    ts::return_shared(cluster);
    assert!(!ts::has_most_recent_for_address<StakeRecord>(alice()));

    // The admin can take the slashed funds out.
    s.next_tx(admin());
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::withdraw_treasury(&cap, &mut cluster, one_sui(), s.ctx());
    assert_eq!(cluster.treasury_value(), 0);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.next_tx(admin());
    let coin = s.take_from_sender<Coin<SUI>>();
    assert_eq!(coin.value(), one_sui());
    s.return_to_sender(coin);
    s.end();
}

#[test]
fun slash_during_unbonding_still_takes_funds() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    unstake_at(&mut s, t0());
    tc::admin_slash(&mut s, id);
    let got = withdraw_at(&mut s, t0() + DAY_MS);
    assert_eq!(got, 0);
    assert_eq!(treasury(&mut s), one_sui());
    s.end();
}

#[test]
fun settle_slash_moves_funds_and_marks_record() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    as_alice!(&mut s, t0(), |c, r, _clock, _s| {
        staking::settle_slash(c, r);
        assert_eq!(r.status(), staking::status_slashed());
        assert_eq!(r.amount(), 0);
        assert_eq!(r.token_epoch(), 1);
        assert_eq!(c.treasury_value(), one_sui());
        assert_eq!(event::events_by_type<staking::SlashSettled>().length(), 1);
    });
    // Withdrawing the settled record returns nothing more and deletes it.
    let got = withdraw_at(&mut s, t0());
    assert_eq!(got, 0);
    assert_eq!(event::events_by_type<staking::SlashSettled>().length(), 0); // not settled twice
    assert_eq!(treasury(&mut s), one_sui());
    s.end();
}

#[test, expected_failure(abort_code = staking::EAlreadySettled)]
fun settle_slash_twice_aborts() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    as_alice!(&mut s, t0(), |c, r, _clock, _s| staking::settle_slash(c, r));
    as_alice!(&mut s, t0(), |c, r, _clock, _s| staking::settle_slash(c, r));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotSlashed)]
fun settle_slash_of_unslashed_record_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, _s| staking::settle_slash(c, r));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::EWrongCluster)]
fun settle_slash_with_wrong_cluster_aborts() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    // Slash the record id in a second cluster, then try to settle it there.
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(alice());
    let mut other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    cluster::slash(&other_cap, &mut other, id);
    let mut record = s.take_from_sender<StakeRecord>();
    staking::settle_slash(&mut other, &mut record);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun settle_slash_refuses_other_cluster_version() {
    let mut s = tc::begin();
    let id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, id);
    as_alice!(&mut s, t0(), |c, r, _clock, _s| {
        c.set_version_for_testing(0);
        staking::settle_slash(c, r);
    });
    abort 0xDEAD
}

#[test]
fun slashing_other_records_does_not_affect_mine() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    let bob_id = tc::stake_granted(&mut s, bob(), cluster::role_worker(), one_sui(), b"worker-2".to_string());
    tc::admin_slash(&mut s, bob_id);
    unstake_at(&mut s, t0());
    assert_eq!(withdraw_at(&mut s, t0() + DAY_MS), one_sui());
    assert_eq!(treasury(&mut s), 0);
    s.end();
}

// ------------------------------------------------------------------------------------------------ revoke_tokens

#[test]
fun revoke_tokens_bumps_epoch() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        staking::revoke_tokens(c, r, s.ctx());
        assert_eq!(r.token_epoch(), 1);
        staking::revoke_tokens(c, r, s.ctx());
        assert_eq!(r.token_epoch(), 2);
        assert_eq!(r.status(), staking::status_active());
        assert_eq!(event::events_by_type<staking::TokensRevoked>().length(), 2);
    });
    // Unstaking revokes once more.
    unstake_at(&mut s, t0() + 1);
    as_alice!(&mut s, t0() + 2, |_c, r, _clock, _s| assert_eq!(r.token_epoch(), 3));
    s.end();
}

#[test, expected_failure(abort_code = staking::EWrongCluster)]
fun revoke_tokens_with_wrong_cluster_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(alice());
    let other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    let mut record = s.take_from_sender<StakeRecord>();
    staking::revoke_tokens(&other, &mut record, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = staking::ENotOwner)]
fun revoke_tokens_by_non_owner_aborts() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    s.next_tx(bob());
    let cluster = s.take_shared<Cluster>();
    let mut record = s.take_from_address<StakeRecord>(alice());
    staking::revoke_tokens(&cluster, &mut record, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun revoke_tokens_refuses_other_cluster_version() {
    let mut s = tc::begin();
    tc::stake_worker(&mut s);
    as_alice!(&mut s, t0(), |c, r, _clock, s| {
        c.set_version_for_testing(0);
        staking::revoke_tokens(c, r, s.ctx());
    });
    abort 0xDEAD
}
