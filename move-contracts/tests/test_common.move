/// Shared helpers for the unit tests: a published cluster, clocks, coins, stake records.
#[test_only]
module k3s_daas::test_common;

use k3s_daas::cluster::{Self, Cluster, AdminCap};
use k3s_daas::staking::{Self, StakeRecord};
use std::string::String;
use sui::clock::{Self, Clock};
use sui::coin::{Self, Coin};
use sui::sui::SUI;
use sui::test_scenario::{Self as ts, Scenario};

const ADMIN: address = @0xAD;
const ALICE: address = @0xA11CE;
const BOB: address = @0xB0B;

/// 1 SUI in MIST.
const SUI_1: u64 = 1_000_000_000;
/// A non-zero start time (ms) for clocks; 0 is the "no unbond request" marker in records.
const T0: u64 = 1_700_000_000_000;

public fun admin(): address { ADMIN }

public fun alice(): address { ALICE }

public fun bob(): address { BOB }

public fun one_sui(): u64 { SUI_1 }

public fun t0(): u64 { T0 }

/// Publishes the package (runs `init` as ADMIN) and starts the next transaction as ADMIN.
public fun begin(): Scenario {
    let mut s = ts::begin(ADMIN);
    cluster::init_for_testing(s.ctx());
    s.next_tx(ADMIN);
    s
}

public fun clock_at(s: &mut Scenario, ms: u64): Clock {
    let mut c = clock::create_for_testing(s.ctx());
    c.set_for_testing(ms);
    c
}

public fun mist(s: &mut Scenario, amount: u64): Coin<SUI> {
    coin::mint_for_testing(amount, s.ctx())
}

/// `who` stakes `amount` MIST for `role` with `node_name` at time T0; returns the new record's id.
/// The next transaction is started as `who`.
public fun stake_as(s: &mut Scenario, who: address, role: u8, amount: u64, node_name: String): ID {
    s.next_tx(who);
    let cluster = s.take_shared<Cluster>();
    let coin = mist(s, amount);
    let clock = clock_at(s, T0);
    staking::stake(&cluster, coin, role, node_name, &clock, s.ctx());
    clock.destroy_for_testing();
    ts::return_shared(cluster);
    s.next_tx(who);
    let record = s.take_from_sender<StakeRecord>();
    let id = object::id(&record);
    s.return_to_sender(record);
    id
}

/// ALICE stakes 1 SUI as worker "worker-1", granted the worker role first if she does not hold it yet.
public fun stake_worker(s: &mut Scenario): ID {
    stake_granted(s, ALICE, cluster::role_worker(), SUI_1, b"worker-1".to_string())
}

/// `stake_as`, after ADMIN has granted `who` the `role` if it needs a grant and `who` does not hold it yet.
public fun stake_granted(s: &mut Scenario, who: address, role: u8, amount: u64, node_name: String): ID {
    if (cluster::role_requires_grant(role) && !is_granted(s, who, role)) grant(s, who, role);
    stake_as(s, who, role, amount, node_name)
}

/// ADMIN grants `who` the privileged `role` in the (only) cluster.
public fun grant(s: &mut Scenario, who: address, role: u8) {
    s.next_tx(ADMIN);
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::grant_role(&cap, &mut cluster, who, role);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
}

/// ADMIN revokes `who`'s grant for `role` in the (only) cluster.
public fun revoke(s: &mut Scenario, who: address, role: u8) {
    s.next_tx(ADMIN);
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::revoke_role(&cap, &mut cluster, who, role);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
}

/// Whether `who` holds the grant for `role` in the (only) cluster.
public fun is_granted(s: &mut Scenario, who: address, role: u8): bool {
    s.next_tx(ADMIN);
    let cluster = s.take_shared<Cluster>();
    let granted = cluster.is_granted(who, role);
    ts::return_shared(cluster);
    granted
}

/// ADMIN slashes `record_id` in the (only) cluster.
public fun admin_slash(s: &mut Scenario, record_id: ID) {
    s.next_tx(ADMIN);
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::slash(&cap, &mut cluster, record_id);
    s.return_to_sender(cap);
    ts::return_shared(cluster);
}

/// A 48-byte PCR value filled with `fill`.
public fun pcr(fill: u8): vector<u8> {
    let mut v = vector[];
    let mut i = 0;
    while (i < 48) {
        v.push_back(fill);
        i = i + 1;
    };
    v
}

/// A string of `n` copies of `c`.
public fun repeat(c: u8, n: u64): String {
    let mut v = vector[];
    let mut i = 0;
    while (i < n) {
        v.push_back(c);
        i = i + 1;
    };
    v.to_string()
}
