/// Tests of `k3s_daas::cluster`: init, admin functions, cap binding, version guard, name validation.
#[test_only]
module k3s_daas::cluster_tests;

use k3s_daas::cluster::{Self, Cluster, AdminCap};
use k3s_daas::test_common::{Self as tc, admin, alice, bob, pcr};
use std::unit_test::assert_eq;
use sui::coin::Coin;
use sui::event;
use sui::package::Publisher;
use sui::sui::SUI;
use sui::test_scenario as ts;

// ------------------------------------------------------------------------------------------------ init

#[test]
fun init_creates_cluster_and_caps_for_publisher() {
    let mut s = ts::begin(admin());
    cluster::init_for_testing(s.ctx());
    let effects = s.next_tx(admin());
    assert_eq!(effects.num_user_events(), 1); // ClusterCreated
    assert_eq!(effects.shared().length(), 1);

    // Only the publisher holds the AdminCap (and the Publisher).
    assert!(ts::has_most_recent_for_address<AdminCap>(admin()));
    assert!(ts::has_most_recent_for_address<Publisher>(admin()));
    assert!(!ts::has_most_recent_for_address<AdminCap>(alice()));

    let cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    assert_eq!(cap.admin_cap_cluster_id(), object::id(&cluster));
    assert_eq!(cluster.version(), cluster::current_version_for_testing());
    assert_eq!(*cluster.name(), b"k3s-daas".to_string());
    assert_eq!(cluster.min_stake(cluster::role_worker()), 1_000_000_000); // 1 SUI
    assert_eq!(cluster.min_stake(cluster::role_user()), 500_000_000); // 0.5 SUI
    assert_eq!(cluster.min_stake(cluster::role_admin()), 10_000_000_000); // 10 SUI
    assert_eq!(cluster.unbonding_period_ms(), 86_400_000); // 24 h
    assert!(cluster.expected_pcr0().is_empty());
    assert!(cluster.expected_pcr1().is_empty());
    assert!(cluster.expected_pcr2().is_empty());
    assert_eq!(cluster.enclave_operator(), admin());
    assert!(cluster.enclave().is_none());
    assert_eq!(cluster.treasury_value(), 0);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test]
fun role_helpers() {
    assert_eq!(cluster::role_worker(), 0);
    assert_eq!(cluster::role_user(), 1);
    assert_eq!(cluster::role_admin(), 2);
    assert!(cluster::is_valid_role(2));
    assert!(!cluster::is_valid_role(3));
    assert!(cluster::role_requires_grant(cluster::role_worker()));
    assert!(!cluster::role_requires_grant(cluster::role_user()));
    assert!(cluster::role_requires_grant(cluster::role_admin()));
    assert!(!cluster::role_requires_grant(3));
    assert!(!cluster::role_requires_grant(255));
}

#[test, expected_failure(abort_code = cluster::EInvalidRole)]
fun min_stake_of_unknown_role_aborts() {
    let mut s = tc::begin();
    let cluster = s.take_shared<Cluster>();
    cluster.min_stake(3);
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ set_role_minimum

#[test]
fun set_role_minimum_updates_each_role() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_worker(), 2_000_000_000);
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_user(), 1);
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_admin(), 50_000_000_000);
    assert_eq!(event::events_by_type<cluster::RoleMinimumChanged>().length(), 3);
    assert_eq!(cluster.min_stake(0), 2_000_000_000);
    assert_eq!(cluster.min_stake(1), 1);
    assert_eq!(cluster.min_stake(2), 50_000_000_000);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EInvalidRole)]
fun set_role_minimum_rejects_unknown_role() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_role_minimum(&cap, &mut cluster, 3, 1);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EZeroMinimum)]
fun set_role_minimum_rejects_zero() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_role_minimum(&cap, &mut cluster, cluster::role_worker(), 0);
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ set_unbonding_period

#[test]
fun set_unbonding_period_accepts_zero_and_thirty_days() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_unbonding_period(&cap, &mut cluster, 0);
    assert_eq!(cluster.unbonding_period_ms(), 0);
    cluster::set_unbonding_period(&cap, &mut cluster, 2_592_000_000);
    assert_eq!(cluster.unbonding_period_ms(), 2_592_000_000);
    assert_eq!(event::events_by_type<cluster::UnbondingPeriodChanged>().length(), 2);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EUnbondingTooLong)]
fun set_unbonding_period_rejects_more_than_thirty_days() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_unbonding_period(&cap, &mut cluster, 2_592_000_001);
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ set_expected_pcrs

#[test]
fun set_expected_pcrs_stores_values() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(1), pcr(2), pcr(3));
    assert_eq!(*cluster.expected_pcr0(), pcr(1));
    assert_eq!(*cluster.expected_pcr1(), pcr(2));
    assert_eq!(*cluster.expected_pcr2(), pcr(3));
    assert_eq!(event::events_by_type<cluster::PcrsChanged>().length(), 1);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EInvalidPcrLength)]
fun set_expected_pcrs_rejects_wrong_length() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    let mut short = pcr(2);
    short.pop_back();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(1), short, pcr(3));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EZeroPcr)]
fun set_expected_pcrs_rejects_zero_pcr0() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(0), pcr(2), pcr(3));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EZeroPcr)]
fun set_expected_pcrs_rejects_zero_pcr1() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(1), pcr(0), pcr(3));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EZeroPcr)]
fun set_expected_pcrs_rejects_zero_pcr2() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(1), pcr(2), pcr(0));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EInvalidPcrLength)]
fun set_expected_pcrs_checks_length_before_zero() {
    // An empty PCR is a length error, not a zero one.
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, vector[], pcr(0), pcr(0));
    abort 0xDEAD
}

#[test]
fun zero_pcr_rule() {
    assert!(cluster::is_zero_pcr(&pcr(0)));
    assert!(!cluster::is_zero_pcr(&pcr(1)));
    assert!(!cluster::is_zero_pcr(&vector[]));
    let mut last_set = pcr(0);
    *&mut last_set[47] = 1;
    assert!(!cluster::is_zero_pcr(&last_set));
}

// ------------------------------------------------------------------------------------------------ set_enclave_operator

#[test]
fun set_enclave_operator_updates() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_enclave_operator(&cap, &mut cluster, bob());
    assert_eq!(cluster.enclave_operator(), bob());
    assert_eq!(event::events_by_type<cluster::EnclaveOperatorChanged>().length(), 1);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

// ------------------------------------------------------------------------------------------------ set_name

#[test]
fun set_name_updates() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_name(&cap, &mut cluster, b"prod-eu-1".to_string());
    assert_eq!(*cluster.name(), b"prod-eu-1".to_string());
    assert_eq!(event::events_by_type<cluster::ClusterRenamed>().length(), 1);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EInvalidName)]
fun set_name_rejects_invalid_label() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_name(&cap, &mut cluster, b"Prod EU".to_string());
    abort 0xDEAD
}

#[test]
fun dns_label_validation() {
    assert!(cluster::is_valid_dns_label(&b"a".to_string()));
    assert!(cluster::is_valid_dns_label(&b"worker-1".to_string()));
    assert!(cluster::is_valid_dns_label(&b"0abc-def9".to_string()));
    assert!(cluster::is_valid_dns_label(&tc::repeat(0x61, 63)));
    assert!(!cluster::is_valid_dns_label(&tc::repeat(0x61, 64)));
    assert!(!cluster::is_valid_dns_label(&b"".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"-all".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"node-".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"Node".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"a.b".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"a_b".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"a b".to_string()));
    assert!(!cluster::is_valid_dns_label(&b"a\n".to_string()));
}

// ------------------------------------------------------------------------------------------------ slash

#[test]
fun slash_marks_record_id() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    let id = object::id_from_address(@0x1234);
    assert!(!cluster.is_slashed(id));
    cluster::slash(&cap, &mut cluster, id);
    assert!(cluster.is_slashed(id));
    assert_eq!(event::events_by_type<cluster::Slashed>().length(), 1);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EAlreadySlashed)]
fun slash_twice_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    let id = object::id_from_address(@0x1234);
    cluster::slash(&cap, &mut cluster, id);
    cluster::slash(&cap, &mut cluster, id);
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ grant_role, revoke_role
// (what a grant allows is tested with `stake` in staking_tests)

#[test]
fun grant_role_records_each_role_as_a_bit_and_emits() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    assert_eq!(cluster.granted_roles(alice()), 0);
    assert!(!cluster.is_granted(alice(), cluster::role_admin()));
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_admin());
    assert_eq!(cluster.granted_roles(alice()), 4);
    assert!(cluster.is_granted(alice(), cluster::role_admin()));
    assert!(!cluster.is_granted(alice(), cluster::role_worker()));
    assert!(!cluster.is_granted(bob(), cluster::role_admin()));
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_worker());
    assert_eq!(cluster.granted_roles(alice()), 5);
    assert!(cluster.is_granted(alice(), cluster::role_worker()));
    assert!(!cluster.is_granted(alice(), cluster::role_user())); // never granted
    assert!(!cluster.is_granted(alice(), 9)); // not a role (and no shift overflow)
    assert_eq!(cluster.grant_entries_for_testing(), 1); // one entry per account
    let events = event::events_by_type<cluster::RoleGranted>();
    assert_eq!(events.length(), 2);
    assert_eq!(events[0], cluster::role_granted_for_testing(object::id(&cluster), alice(), 2));
    assert_eq!(events[1], cluster::role_granted_for_testing(object::id(&cluster), alice(), 0));
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::EAlreadyGranted)]
fun grant_role_twice_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_worker());
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_worker());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::ERoleNotGrantable)]
fun grant_role_of_user_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_user());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::ERoleNotGrantable)]
fun grant_role_of_unknown_role_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, alice(), 8);
    abort 0xDEAD
}

#[test]
fun revoke_role_clears_the_bit_and_drops_an_empty_entry() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_admin());
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_worker());
    cluster::grant_role(&cap, &mut cluster, bob(), cluster::role_worker());
    cluster::revoke_role(&cap, &mut cluster, alice(), cluster::role_admin());
    assert_eq!(cluster.granted_roles(alice()), 1);
    assert!(!cluster.is_granted(alice(), cluster::role_admin()));
    assert!(cluster.is_granted(alice(), cluster::role_worker()));
    assert_eq!(cluster.grant_entries_for_testing(), 2);
    cluster::revoke_role(&cap, &mut cluster, alice(), cluster::role_worker());
    assert_eq!(cluster.granted_roles(alice()), 0);
    assert_eq!(cluster.grant_entries_for_testing(), 1); // alice's entry is gone, bob's stays
    assert!(cluster.is_granted(bob(), cluster::role_worker()));
    let events = event::events_by_type<cluster::RoleRevoked>();
    assert_eq!(events.length(), 2);
    assert_eq!(events[0], cluster::role_revoked_for_testing(object::id(&cluster), alice(), 2));
    assert_eq!(events[1], cluster::role_revoked_for_testing(object::id(&cluster), alice(), 0));
    // A revoked role can be granted again.
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_admin());
    assert!(cluster.is_granted(alice(), cluster::role_admin()));
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::ENotGranted)]
fun revoke_role_without_a_grant_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::revoke_role(&cap, &mut cluster, alice(), cluster::role_admin());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::ENotGranted)]
fun revoke_role_of_another_role_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_worker());
    cluster::revoke_role(&cap, &mut cluster, alice(), cluster::role_admin());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::ERoleNotGrantable)]
fun revoke_role_of_user_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::revoke_role(&cap, &mut cluster, alice(), cluster::role_user());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun grant_role_refuses_other_version() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster.set_version_for_testing(cluster::current_version_for_testing() + 1);
    cluster::grant_role(&cap, &mut cluster, alice(), cluster::role_admin());
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ withdraw_treasury
// (the happy path with real slashed funds is in staking_tests)

#[test, expected_failure(abort_code = cluster::EInsufficientTreasury)]
fun withdraw_treasury_more_than_balance_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::withdraw_treasury(&cap, &mut cluster, 1, s.ctx());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EZeroAmount)]
fun withdraw_treasury_zero_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::withdraw_treasury(&cap, &mut cluster, 0, s.ctx());
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ AdminCap binding
// Admin functions need an `&AdminCap`; only the publisher got one (see the init test), and a cap only
// works for its own cluster.

/// Takes the second cluster (created by `create_extra_cluster_for_testing`) and ADMIN's cap of the first.
macro fun with_foreign_cap($f: |&AdminCap, &mut Cluster, &mut ts::Scenario|) {
    let mut s = tc::begin();
    let other_cap = cluster::create_extra_cluster_for_testing(s.ctx());
    s.next_tx(admin());
    let mut other = s.take_shared_by_id<Cluster>(other_cap.admin_cap_cluster_id());
    let cap = s.take_from_sender<AdminCap>(); // the cap of the cluster from init
    assert!(cap.admin_cap_cluster_id() != object::id(&other));
    $f(&cap, &mut other, &mut s);
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_set_role_minimum() {
    with_foreign_cap!(|cap, c, _| cluster::set_role_minimum(cap, c, 0, 1));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_set_unbonding_period() {
    with_foreign_cap!(|cap, c, _| cluster::set_unbonding_period(cap, c, 1));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_set_expected_pcrs() {
    with_foreign_cap!(|cap, c, _| cluster::set_expected_pcrs(cap, c, pcr(1), pcr(2), pcr(3)));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_set_enclave_operator() {
    with_foreign_cap!(|cap, c, _| cluster::set_enclave_operator(cap, c, bob()));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_set_name() {
    with_foreign_cap!(|cap, c, _| cluster::set_name(cap, c, b"x".to_string()));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_withdraw_treasury() {
    with_foreign_cap!(|cap, c, s| cluster::withdraw_treasury(cap, c, 1, s.ctx()));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_slash() {
    with_foreign_cap!(|cap, c, _| cluster::slash(cap, c, object::id_from_address(@0x1)));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_grant_role() {
    with_foreign_cap!(|cap, c, _| cluster::grant_role(cap, c, alice(), cluster::role_admin()));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_revoke_role() {
    with_foreign_cap!(|cap, c, _| cluster::revoke_role(cap, c, alice(), cluster::role_admin()));
}

#[test, expected_failure(abort_code = cluster::EWrongAdminCap)]
fun foreign_cap_cannot_migrate() {
    with_foreign_cap!(|cap, c, _| {
        c.set_version_for_testing(0);
        cluster::migrate(cap, c)
    });
}

#[test]
fun admin_cap_can_be_handed_over() {
    // The cap has `store`: the admin can give it to another address (e.g. a multisig), which then
    // administers the cluster.
    let mut s = tc::begin();
    let cap = s.take_from_sender<AdminCap>();
    transfer::public_transfer(cap, bob());
    s.next_tx(bob());
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_unbonding_period(&cap, &mut cluster, 1_000);
    assert_eq!(cluster.unbonding_period_ms(), 1_000);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    assert!(!ts::has_most_recent_for_address<AdminCap>(admin()));
    s.end();
}

// ------------------------------------------------------------------------------------------------ version guard, migrate

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun admin_functions_refuse_other_version() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster.set_version_for_testing(cluster::current_version_for_testing() + 1); // newer package migrated it
    cluster::set_unbonding_period(&cap, &mut cluster, 1);
    abort 0xDEAD
}

#[test]
fun migrate_moves_old_cluster_to_current_version() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster.set_version_for_testing(0); // written by an older package version
    cluster::migrate(&cap, &mut cluster);
    assert_eq!(cluster.version(), cluster::current_version_for_testing());
    assert_eq!(event::events_by_type<cluster::ClusterMigrated>().length(), 1);
    cluster::set_unbonding_period(&cap, &mut cluster, 1); // works again
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = cluster::ENotUpgrade)]
fun migrate_at_current_version_aborts() {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::migrate(&cap, &mut cluster);
    abort 0xDEAD
}

#[test]
fun withdraw_treasury_sends_to_cap_holder() {
    // Funds reach the treasury only through slashing; see staking_tests for the full flow. Here: the
    // coin goes to the sender of the withdraw transaction.
    let mut s = tc::begin();
    let record_id = tc::stake_worker(&mut s);
    tc::admin_slash(&mut s, record_id);
    s.next_tx(alice());
    let mut cluster = s.take_shared<Cluster>();
    let mut record = s.take_from_sender<k3s_daas::staking::StakeRecord>();
    k3s_daas::staking::settle_slash(&mut cluster, &mut record);
    s.return_to_sender(record);
    ts::return_shared(cluster);

    s.next_tx(admin());
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::withdraw_treasury(&cap, &mut cluster, 400_000_000, s.ctx());
    assert_eq!(cluster.treasury_value(), 600_000_000);
    assert_eq!(event::events_by_type<cluster::TreasuryWithdrawn>().length(), 1);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.next_tx(admin());
    let coin = s.take_from_sender<Coin<SUI>>();
    assert_eq!(coin.value(), 400_000_000);
    s.return_to_sender(coin);
    s.end();
}
