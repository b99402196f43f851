//! The model against the Move sources: every entry function's checks, abort codes (module,
//! function, code), state changes and events, called directly with resolved arguments.

use sui_sdk_types::{Address, Digest, ExecutionError, Owner, StructTag, TypeTag};

use daas_attestation::TrustAnchor;
use daas_chain_types::abort::AbortCode;
use daas_chain_types::package::{
    grant_entry_id, grant_entry_type, identifier, slashed_entry_id, slashed_entry_type,
};
use daas_chain_types::{AdminCap, Cluster, Coin, Package, PackageEvent, StakeRecord, consts};

use super::{Arg, Args, CallCtx, lookup};
use crate::exec::Failure;
use crate::exec::runtime::{ObjVal, Runtime, Value};
use crate::genesis::{self, GenesisConfig};
use crate::state::Ledger;

const NOW: u64 = 1_700_000_000_000;
const ADMIN: Address = Address::from_static("0xad");
const USER: Address = Address::from_static("0xb0b");
const SUI: u64 = consts::MIST_PER_SUI;

struct H {
    ledger: Ledger,
    pkg: Package,
    cluster: Cluster,
    cap: AdminCap,
    /// The roots `load_nitro_attestation` trusts (the AWS root only, unless a test adds one).
    anchors: Vec<TrustAnchor>,
    /// The clock time calls see.
    now: std::cell::Cell<u64>,
}

impl H {
    fn new() -> H {
        let config = GenesisConfig {
            admin: ADMIN,
            accounts: Vec::new(),
            faucet: None,
            cluster: Default::default(),
        };
        let ledger = genesis::build(&config, None, NOW).expect("genesis");
        let info = ledger.info().clone();
        let pkg = Package::new(info.package);
        let decode = |id: &Address| {
            ObjVal::from_object(ledger.object(id).expect("genesis object")).expect("struct")
        };
        let cluster: Cluster = decode(&info.cluster).decode().expect("cluster layout");
        let cap: AdminCap = decode(&info.admin_cap).decode().expect("cap layout");
        H {
            ledger,
            pkg,
            cluster,
            cap,
            anchors: vec![TrustAnchor::aws_nitro_root_g1()],
            now: std::cell::Cell::new(NOW),
        }
    }

    fn rt(&self) -> Runtime<'_> {
        Runtime::new(&self.ledger, Digest::new([7; 32]))
    }

    fn cluster(&self, c: &Cluster) -> Arg {
        Arg::Obj(ObjVal::new(c.id, self.pkg.cluster_type(), c).expect("encode"))
    }

    fn cap(&self, c: &AdminCap) -> Arg {
        Arg::Obj(ObjVal::new(c.id, self.pkg.admin_cap_type(), c).expect("encode"))
    }

    fn record(&self, r: &StakeRecord) -> Arg {
        Arg::Obj(ObjVal::new(r.id, self.pkg.stake_record_type(), r).expect("encode"))
    }

    fn clock(&self) -> Arg {
        let clock = daas_chain_types::objects::Clock {
            id: daas_chain_types::package::CLOCK_ID,
            timestamp_ms: 0,
        };
        Arg::Obj(
            ObjVal::new(clock.id, daas_chain_types::package::clock_type(), &clock).expect("encode"),
        )
    }

    fn active_record(&self, owner: Address, balance: u64) -> StakeRecord {
        StakeRecord {
            id: Address::from_static("0x5eed"),
            cluster_id: self.cluster.id,
            owner,
            role: consts::ROLE_WORKER,
            node_name: "worker-1".to_owned(),
            balance,
            status: consts::STATUS_ACTIVE,
            token_epoch: 0,
            staked_at_ms: NOW - 10,
            unbond_requested_at_ms: 0,
        }
    }

    fn call(
        &self,
        rt: &mut Runtime<'_>,
        module: &str,
        function: &str,
        sender: Address,
        args: Vec<Arg>,
    ) -> Result<(Vec<Value>, Args), Failure> {
        self.call_at(rt, self.pkg.id, module, function, sender, args, Vec::new())
    }

    #[allow(clippy::too_many_arguments)]
    fn call_at(
        &self,
        rt: &mut Runtime<'_>,
        package: Address,
        module: &str,
        function: &str,
        sender: Address,
        args: Vec<Arg>,
        type_arguments: Vec<TypeTag>,
    ) -> Result<(Vec<Value>, Args), Failure> {
        let f = lookup(&self.pkg, &package, module, function).expect("modelled function");
        assert_eq!(f.params.len(), args.len(), "{module}::{function} arity");
        let mut ctx = CallCtx {
            sender,
            now_ms: self.now.get(),
            anchors: &self.anchors,
            package: self.pkg,
            call_package: package,
            call_module: identifier(module),
            type_arguments,
            rt,
        };
        let mut args = Args(args);
        (f.handler)(&mut ctx, &mut args).map(|values| (values, args))
    }
}

fn coin(id: &'static str, balance: u64) -> Arg {
    let id = Address::from_static(id);
    Arg::Obj(ObjVal::new(id, StructTag::gas_coin(), &Coin { id, balance }).expect("encode"))
}

/// Asserts a Move abort of `code` raised in `module::function` of `package`.
fn assert_abort_at<T>(
    result: Result<T, Failure>,
    package: Address,
    module: &str,
    function: &str,
    code: u64,
) {
    let Err(failure) = result else {
        panic!("expected {module}::{function} to abort with {code}");
    };
    match *failure.error {
        ExecutionError::MoveAbort {
            location,
            code: got,
        } => {
            assert_eq!(got, code, "abort code");
            assert_eq!(location.package, package);
            assert_eq!(location.module.as_str(), module);
            assert_eq!(
                location.function_name.as_ref().map(|f| f.as_str()),
                Some(function)
            );
        }
        other => panic!("expected a Move abort, got {other:?}"),
    }
}

fn assert_abort<T>(h: &H, result: Result<T, Failure>, function: &str, code: AbortCode) {
    assert_abort_at(result, h.pkg.id, code.module(), function, code.code());
}

fn decode_arg<T: serde::de::DeserializeOwned>(args: &Args, i: usize) -> T {
    args.decode(i).expect("decode")
}

fn events(h: &H, rt: &Runtime<'_>) -> Vec<PackageEvent> {
    rt.events
        .iter()
        .map(|e| PackageEvent::decode(&h.pkg, &e.type_, &e.contents).expect("package event"))
        .collect()
}

/// Marks `record_id` slashed in `cluster` through `cluster::slash`.
fn slash(h: &H, rt: &mut Runtime<'_>, cluster: &Cluster, record_id: Address) -> Cluster {
    let (_, args) = h
        .call(
            rt,
            "cluster",
            "slash",
            ADMIN,
            vec![h.cap(&h.cap), h.cluster(cluster), Arg::Address(record_id)],
        )
        .expect("slash");
    decode_arg(&args, 1)
}

/// Grants `account` the `role` in `cluster` through `cluster::grant_role`.
fn grant(h: &H, rt: &mut Runtime<'_>, cluster: &Cluster, account: Address, role: u8) -> Cluster {
    let (_, args) = h
        .call(
            rt,
            "cluster",
            "grant_role",
            ADMIN,
            vec![
                h.cap(&h.cap),
                h.cluster(cluster),
                Arg::Address(account),
                Arg::U8(role),
            ],
        )
        .expect("grant_role");
    decode_arg(&args, 1)
}

/// `cluster::revoke_role` of `account`'s `role` in `cluster`.
fn revoke(
    h: &H,
    rt: &mut Runtime<'_>,
    cluster: &Cluster,
    account: Address,
    role: u8,
) -> Result<Cluster, Failure> {
    h.call(
        rt,
        "cluster",
        "revoke_role",
        ADMIN,
        vec![
            h.cap(&h.cap),
            h.cluster(cluster),
            Arg::Address(account),
            Arg::U8(role),
        ],
    )
    .map(|(_, args)| decode_arg(&args, 1))
}

// ---------------------------------------------------------------------------------- staking

#[test]
fn stake_checks_version_role_node_name_and_minimum_in_move_order() {
    let h = H::new();
    let mut rt = h.rt();
    let stake = |rt: &mut Runtime<'_>, cluster: &Cluster, amount: u64, role: u8, name: &str| {
        h.call(
            rt,
            "staking",
            "stake",
            USER,
            vec![
                h.cluster(cluster),
                coin("0xc0", amount),
                Arg::U8(role),
                Arg::String(name.to_owned()),
                h.clock(),
            ],
        )
    };
    let mut old = h.cluster.clone();
    old.version = 2;
    // Version first, even with every other argument wrong.
    assert_abort(
        &h,
        stake(&mut rt, &old, 0, 9, "BAD"),
        "assert_version",
        AbortCode::WrongVersion,
    );
    assert_abort(
        &h,
        stake(&mut rt, &h.cluster, 0, 3, ""),
        "min_stake",
        AbortCode::InvalidRole,
    );
    // Without the admin's grant, worker and admin abort before node name and minimum are checked.
    assert_abort(
        &h,
        stake(&mut rt, &h.cluster, 0, consts::ROLE_WORKER, "Worker_1"),
        "stake",
        AbortCode::NoGrant,
    );
    assert_abort(
        &h,
        stake(&mut rt, &h.cluster, 10 * SUI, consts::ROLE_ADMIN, ""),
        "stake",
        AbortCode::NoGrant,
    );
    assert!(rt.events.is_empty() && rt.transferred.is_empty() && rt.deleted.is_empty());
    let cluster = grant(&h, &mut rt, &h.cluster, USER, consts::ROLE_WORKER);
    let cluster = grant(&h, &mut rt, &cluster, USER, consts::ROLE_ADMIN);
    let granted = rt.events.len();
    assert_abort(
        &h,
        stake(&mut rt, &cluster, 0, consts::ROLE_WORKER, "Worker_1"),
        "stake",
        AbortCode::InvalidNodeName,
    );
    assert_abort(
        &h,
        stake(&mut rt, &cluster, 0, consts::ROLE_WORKER, ""),
        "stake",
        AbortCode::InvalidNodeName,
    );
    assert_abort(
        &h,
        stake(&mut rt, &cluster, 0, consts::ROLE_USER, "worker-1"),
        "stake",
        AbortCode::InvalidNodeName,
    );
    assert_abort(
        &h,
        stake(&mut rt, &cluster, SUI - 1, consts::ROLE_WORKER, "worker-1"),
        "stake",
        AbortCode::BelowMinimum,
    );
    assert_abort(
        &h,
        stake(&mut rt, &cluster, 10 * SUI - 1, consts::ROLE_ADMIN, ""),
        "stake",
        AbortCode::BelowMinimum,
    );
    assert!(rt.events.len() == granted && rt.transferred.is_empty() && rt.deleted.is_empty());

    let (values, _) =
        stake(&mut rt, &cluster, 3 * SUI, consts::ROLE_WORKER, "worker-1").expect("stake");
    assert!(values.is_empty());
    // The coin is consumed, the record goes to the sender.
    assert!(rt.deleted.contains(&Address::from_static("0xc0")));
    assert_eq!(rt.transferred.len(), 1);
    let (object, owner) = rt.transferred.values().next().expect("record");
    assert_eq!(*owner, Owner::Address(USER));
    assert_eq!(object.type_, h.pkg.stake_record_type());
    let record: StakeRecord = object.decode().expect("record layout");
    assert_eq!(record.id, Address::derive_id(Digest::new([7; 32]), 0));
    assert_eq!(
        (
            record.cluster_id,
            record.owner,
            record.role,
            record.balance,
            record.status
        ),
        (
            h.cluster.id,
            USER,
            consts::ROLE_WORKER,
            3 * SUI,
            consts::STATUS_ACTIVE
        )
    );
    assert_eq!(
        (
            record.token_epoch,
            record.staked_at_ms,
            record.unbond_requested_at_ms
        ),
        (0, NOW, 0)
    );
    match events(&h, &rt).as_slice() {
        [
            PackageEvent::RoleGranted(_),
            PackageEvent::RoleGranted(_),
            PackageEvent::Staked(e),
        ] => {
            assert_eq!(
                (e.record_id, e.owner, e.amount, e.staked_at_ms),
                (record.id, USER, 3 * SUI, NOW)
            );
            assert_eq!(e.node_name, "worker-1");
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn add_stake_requires_own_active_unslashed_record_and_a_non_zero_coin() {
    let h = H::new();
    let mut rt = h.rt();
    let add = |rt: &mut Runtime<'_>,
               cluster: &Cluster,
               record: &StakeRecord,
               amount: u64,
               sender: Address| {
        h.call(
            rt,
            "staking",
            "add_stake",
            sender,
            vec![h.cluster(cluster), h.record(record), coin("0xc1", amount)],
        )
    };
    let record = h.active_record(USER, 2 * SUI);
    let mut other_cluster = h.cluster.clone();
    other_cluster.id = Address::from_static("0xc1a5");
    assert_abort(
        &h,
        add(&mut rt, &other_cluster, &record, SUI, USER),
        "check_record",
        AbortCode::WrongCluster,
    );
    assert_abort(
        &h,
        add(&mut rt, &h.cluster, &record, SUI, ADMIN),
        "check_record",
        AbortCode::NotOwner,
    );
    let mut unbonding = record.clone();
    unbonding.status = consts::STATUS_UNBONDING;
    assert_abort(
        &h,
        add(&mut rt, &h.cluster, &unbonding, SUI, USER),
        "add_stake",
        AbortCode::NotActive,
    );
    let mut settled = record.clone();
    settled.status = consts::STATUS_SLASHED;
    assert_abort(
        &h,
        add(&mut rt, &h.cluster, &settled, SUI, USER),
        "add_stake",
        AbortCode::RecordSlashed,
    );
    assert_abort(
        &h,
        add(&mut rt, &h.cluster, &record, 0, USER),
        "add_stake",
        AbortCode::ZeroStake,
    );

    let (_, args) = add(&mut rt, &h.cluster, &record, SUI, USER).expect("add_stake");
    let updated: StakeRecord = decode_arg(&args, 1);
    assert_eq!(updated.balance, 3 * SUI);
    assert!(rt.deleted.contains(&Address::from_static("0xc1")));
    assert!(
        matches!(events(&h, &rt).as_slice(), [PackageEvent::StakeAdded(e)] if e.amount == SUI && e.new_total == 3 * SUI)
    );

    // A record the admin marked as slashed cannot grow either.
    let mut rt = h.rt();
    let cluster = slash(&h, &mut rt, &h.cluster, record.id);
    assert_abort(
        &h,
        add(&mut rt, &cluster, &record, SUI, USER),
        "add_stake",
        AbortCode::RecordSlashed,
    );
}

#[test]
fn request_unstake_starts_unbonding_once_and_revokes_tokens() {
    let h = H::new();
    let mut rt = h.rt();
    let unstake = |rt: &mut Runtime<'_>, cluster: &Cluster, record: &StakeRecord| {
        h.call(
            rt,
            "staking",
            "request_unstake",
            USER,
            vec![h.cluster(cluster), h.record(record), h.clock()],
        )
    };
    let record = h.active_record(USER, 2 * SUI);
    let (_, args) = unstake(&mut rt, &h.cluster, &record).expect("request_unstake");
    let unbonding: StakeRecord = decode_arg(&args, 1);
    assert_eq!(
        (
            unbonding.status,
            unbonding.token_epoch,
            unbonding.unbond_requested_at_ms
        ),
        (consts::STATUS_UNBONDING, 1, NOW)
    );
    match events(&h, &rt).as_slice() {
        [PackageEvent::UnstakeRequested(e)] => {
            assert_eq!(e.token_epoch, 1);
            assert_eq!(
                e.withdrawable_at_ms,
                NOW + consts::DEFAULT_UNBONDING_PERIOD_MS
            );
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert_abort(
        &h,
        unstake(&mut rt, &h.cluster, &unbonding),
        "request_unstake",
        AbortCode::AlreadyUnbonding,
    );
    let cluster = slash(&h, &mut rt, &h.cluster, record.id);
    assert_abort(
        &h,
        unstake(&mut rt, &cluster, &record),
        "request_unstake",
        AbortCode::RecordSlashed,
    );
    let mut old = h.cluster.clone();
    old.version = 0;
    assert_abort(
        &h,
        unstake(&mut rt, &old, &record),
        "assert_version",
        AbortCode::WrongVersion,
    );
}

#[test]
fn withdraw_after_unbonding_returns_the_balance_and_deletes_the_record() {
    let h = H::new();
    let withdraw = |rt: &mut Runtime<'_>, cluster: &Cluster, record: &StakeRecord| {
        h.call(
            rt,
            "staking",
            "withdraw",
            USER,
            vec![h.cluster(cluster), h.record(record), h.clock()],
        )
    };
    let mut rt = h.rt();
    let active = h.active_record(USER, 2 * SUI);
    assert_abort(
        &h,
        withdraw(&mut rt, &h.cluster, &active),
        "withdraw",
        AbortCode::NotUnbonding,
    );
    let mut unbonding = active.clone();
    unbonding.status = consts::STATUS_UNBONDING;
    unbonding.unbond_requested_at_ms = NOW - consts::DEFAULT_UNBONDING_PERIOD_MS + 1;
    assert_abort(
        &h,
        withdraw(&mut rt, &h.cluster, &unbonding),
        "withdraw",
        AbortCode::UnbondingNotElapsed,
    );
    unbonding.unbond_requested_at_ms = NOW - consts::DEFAULT_UNBONDING_PERIOD_MS;

    let (values, _) = withdraw(&mut rt, &h.cluster, &unbonding).expect("withdraw");
    let [Value::Object(coin)] = values.as_slice() else {
        panic!("withdraw returns one coin, got {values:?}");
    };
    assert_eq!(coin.type_, StructTag::gas_coin());
    assert_eq!(coin.decode::<Coin>().expect("coin").balance, 2 * SUI);
    assert!(rt.deleted.contains(&active.id));
    assert!(matches!(
        events(&h, &rt).as_slice(),
        [PackageEvent::Withdrawn(e)] if e.amount == 2 * SUI && !e.slashed && e.record_id == active.id
    ));
}

#[test]
fn withdraw_of_a_slashed_record_settles_into_the_treasury_and_clears_the_mark() {
    let h = H::new();
    let mut rt = h.rt();
    let record = h.active_record(USER, 5 * SUI);
    let cluster = slash(&h, &mut rt, &h.cluster, record.id);
    let entry = slashed_entry_id(h.cluster.slashed.id, record.id);
    assert!(rt.child_exists(&entry));
    assert_eq!(cluster.slashed.size, 1);

    // Allowed while ACTIVE: a slashed record needs no unbonding.
    let (values, args) = h
        .call(
            &mut rt,
            "staking",
            "withdraw",
            USER,
            vec![h.cluster(&cluster), h.record(&record), h.clock()],
        )
        .expect("withdraw");
    let after: Cluster = decode_arg(&args, 0);
    assert_eq!(after.treasury, 5 * SUI);
    assert_eq!(after.slashed.size, 0);
    assert!(!rt.child_exists(&entry));
    let [Value::Object(coin)] = values.as_slice() else {
        panic!("one coin");
    };
    assert_eq!(coin.decode::<Coin>().expect("coin").balance, 0);
    let evs = events(&h, &rt);
    assert!(
        matches!(evs.as_slice(), [PackageEvent::Slashed(_), PackageEvent::SlashSettled(s), PackageEvent::Withdrawn(w)]
        if s.amount == 5 * SUI && w.amount == 0 && w.slashed)
    );
}

#[test]
fn revoke_tokens_bumps_the_token_epoch_in_any_status() {
    let h = H::new();
    let mut rt = h.rt();
    let mut record = h.active_record(USER, SUI);
    record.status = consts::STATUS_SLASHED;
    record.token_epoch = 4;
    let (_, args) = h
        .call(
            &mut rt,
            "staking",
            "revoke_tokens",
            USER,
            vec![h.cluster(&h.cluster), h.record(&record)],
        )
        .expect("revoke_tokens");
    assert_eq!(decode_arg::<StakeRecord>(&args, 1).token_epoch, 5);
    assert!(
        matches!(events(&h, &rt).as_slice(), [PackageEvent::TokensRevoked(e)] if e.token_epoch == 5)
    );
    let r = h.call(
        &mut rt,
        "staking",
        "revoke_tokens",
        ADMIN,
        vec![h.cluster(&h.cluster), h.record(&record)],
    );
    assert_abort(&h, r, "check_record", AbortCode::NotOwner);
}

#[test]
fn settle_slash_needs_a_slash_mark_and_settles_once() {
    let h = H::new();
    let mut rt = h.rt();
    let settle = |rt: &mut Runtime<'_>, cluster: &Cluster, record: &StakeRecord| {
        h.call(
            rt,
            "staking",
            "settle_slash",
            USER,
            vec![h.cluster(cluster), h.record(record)],
        )
    };
    let record = h.active_record(USER, 7 * SUI);
    assert_abort(
        &h,
        settle(&mut rt, &h.cluster, &record),
        "settle_slash",
        AbortCode::NotSlashed,
    );
    let cluster = slash(&h, &mut rt, &h.cluster, record.id);
    let mut foreign = record.clone();
    foreign.cluster_id = Address::from_static("0xf00");
    assert_abort(
        &h,
        settle(&mut rt, &cluster, &foreign),
        "settle_slash",
        AbortCode::WrongCluster,
    );
    let (_, args) = settle(&mut rt, &cluster, &record).expect("settle_slash");
    let (after, settled): (Cluster, StakeRecord) = (decode_arg(&args, 0), decode_arg(&args, 1));
    assert_eq!(
        (
            after.treasury,
            settled.balance,
            settled.status,
            settled.token_epoch
        ),
        (7 * SUI, 0, consts::STATUS_SLASHED, 1)
    );
    assert_abort(
        &h,
        settle(&mut rt, &after, &settled),
        "settle_slash",
        AbortCode::AlreadySettled,
    );
}

// ---------------------------------------------------------------------------------- cluster

#[test]
fn admin_functions_check_version_then_the_cap() {
    let h = H::new();
    let mut rt = h.rt();
    let foreign_cap = AdminCap {
        id: Address::from_static("0xca9"),
        cluster_id: Address::from_static("0xe15e"),
    };
    let mut old = h.cluster.clone();
    old.version = 7;
    let calls: Vec<(&str, Vec<Arg>)> = vec![
        ("set_role_minimum", vec![Arg::U8(0), Arg::U64(1)]),
        ("set_unbonding_period", vec![Arg::U64(1)]),
        (
            "set_expected_pcrs",
            vec![
                Arg::Bytes(vec![0; 48]),
                Arg::Bytes(vec![0; 48]),
                Arg::Bytes(vec![0; 48]),
            ],
        ),
        ("set_enclave_operator", vec![Arg::Address(USER)]),
        ("set_name", vec![Arg::String("abc".to_owned())]),
        ("withdraw_treasury", vec![Arg::U64(1)]),
        ("slash", vec![Arg::Address(USER)]),
        ("grant_role", vec![Arg::Address(USER), Arg::U8(0)]),
        ("revoke_role", vec![Arg::Address(USER), Arg::U8(0)]),
    ];
    for (function, rest) in calls {
        let args = |cap: &AdminCap, cluster: &Cluster| {
            let mut v = vec![h.cap(cap), h.cluster(cluster)];
            v.extend(rest.iter().cloned());
            v
        };
        let r = h.call(
            &mut rt,
            "cluster",
            function,
            ADMIN,
            args(&foreign_cap, &old),
        );
        assert_abort(&h, r, "assert_version", AbortCode::WrongVersion);
        let r = h.call(
            &mut rt,
            "cluster",
            function,
            ADMIN,
            args(&foreign_cap, &h.cluster),
        );
        assert_abort(&h, r, "assert_admin", AbortCode::WrongAdminCap);
    }
    assert!(rt.events.is_empty());
}

#[test]
fn set_role_minimum_and_unbonding_period_validate_their_values() {
    let h = H::new();
    let mut rt = h.rt();
    let set_min = |rt: &mut Runtime<'_>, role: u8, min: u64| {
        h.call(
            rt,
            "cluster",
            "set_role_minimum",
            ADMIN,
            vec![
                h.cap(&h.cap),
                h.cluster(&h.cluster),
                Arg::U8(role),
                Arg::U64(min),
            ],
        )
    };
    assert_abort(
        &h,
        set_min(&mut rt, 0, 0),
        "set_role_minimum",
        AbortCode::ZeroMinimum,
    );
    assert_abort(
        &h,
        set_min(&mut rt, 3, 5),
        "min_stake",
        AbortCode::InvalidRole,
    );
    let (_, args) = set_min(&mut rt, consts::ROLE_USER, 42).expect("set_role_minimum");
    assert_eq!(decode_arg::<Cluster>(&args, 1).min_stake_user, 42);
    assert!(
        matches!(events(&h, &rt).as_slice(), [PackageEvent::RoleMinimumChanged(e)]
        if e.role == 1 && e.old_min_mist == consts::DEFAULT_MIN_STAKE_USER && e.new_min_mist == 42)
    );

    let set_period = |rt: &mut Runtime<'_>, ms: u64| {
        h.call(
            rt,
            "cluster",
            "set_unbonding_period",
            ADMIN,
            vec![h.cap(&h.cap), h.cluster(&h.cluster), Arg::U64(ms)],
        )
    };
    assert_abort(
        &h,
        set_period(&mut rt, consts::MAX_UNBONDING_PERIOD_MS + 1),
        "set_unbonding_period",
        AbortCode::UnbondingTooLong,
    );
    let (_, args) =
        set_period(&mut rt, consts::MAX_UNBONDING_PERIOD_MS).expect("max period is allowed");
    assert_eq!(
        decode_arg::<Cluster>(&args, 1).unbonding_period_ms,
        consts::MAX_UNBONDING_PERIOD_MS
    );
    let (_, args) = set_period(&mut rt, 0).expect("zero period is allowed");
    assert_eq!(decode_arg::<Cluster>(&args, 1).unbonding_period_ms, 0);
}

#[test]
fn pcrs_name_and_operator_setters() {
    let h = H::new();
    let mut rt = h.rt();
    let pcrs = |rt: &mut Runtime<'_>, cluster: &Cluster, len: usize| {
        h.call(
            rt,
            "cluster",
            "set_expected_pcrs",
            ADMIN,
            vec![
                h.cap(&h.cap),
                h.cluster(cluster),
                Arg::Bytes(vec![1; 48]),
                Arg::Bytes(vec![2; len]),
                Arg::Bytes(vec![3; 48]),
            ],
        )
    };
    assert_abort(
        &h,
        pcrs(&mut rt, &h.cluster, 47),
        "set_expected_pcrs",
        AbortCode::InvalidPcrLength,
    );
    let mut registered = h.cluster.clone();
    registered.enclave = Some(daas_chain_types::Enclave {
        public_key: vec![9],
        endpoint: "https://e".to_owned(),
        ca_sha256: vec![7; 32],
        pcr0: vec![],
        pcr1: vec![],
        pcr2: vec![],
        attested_at_ms: 1,
        registered_at_ms: 2,
    });
    let (_, args) = pcrs(&mut rt, &registered, 48).expect("set_expected_pcrs");
    let after: Cluster = decode_arg(&args, 1);
    assert_eq!((after.expected_pcr1, after.enclave), (vec![2; 48], None));
    assert!(
        matches!(events(&h, &rt).as_slice(), [PackageEvent::PcrsChanged(e)] if e.enclave_cleared)
    );

    let name = |rt: &mut Runtime<'_>, n: &str| {
        h.call(
            rt,
            "cluster",
            "set_name",
            ADMIN,
            vec![
                h.cap(&h.cap),
                h.cluster(&h.cluster),
                Arg::String(n.to_owned()),
            ],
        )
    };
    assert_abort(
        &h,
        name(&mut rt, "Prod"),
        "set_name",
        AbortCode::InvalidName,
    );
    assert_abort(
        &h,
        name(&mut rt, "-prod"),
        "set_name",
        AbortCode::InvalidName,
    );
    let (_, args) = name(&mut rt, "prod-1").expect("set_name");
    assert_eq!(decode_arg::<Cluster>(&args, 1).name, "prod-1");

    let (_, args) = h
        .call(
            &mut rt,
            "cluster",
            "set_enclave_operator",
            ADMIN,
            vec![h.cap(&h.cap), h.cluster(&h.cluster), Arg::Address(USER)],
        )
        .expect("set_enclave_operator");
    assert_eq!(decode_arg::<Cluster>(&args, 1).enclave_operator, USER);
    assert!(
        matches!(events(&h, &rt).last(), Some(PackageEvent::EnclaveOperatorChanged(e)) if e.old_operator == ADMIN && e.new_operator == USER)
    );
}

#[test]
fn withdraw_treasury_sends_a_coin_to_the_admin() {
    let h = H::new();
    let mut rt = h.rt();
    let mut rich = h.cluster.clone();
    rich.treasury = 10;
    let take = |rt: &mut Runtime<'_>, amount: u64| {
        h.call(
            rt,
            "cluster",
            "withdraw_treasury",
            ADMIN,
            vec![h.cap(&h.cap), h.cluster(&rich), Arg::U64(amount)],
        )
    };
    assert_abort(
        &h,
        take(&mut rt, 0),
        "withdraw_treasury",
        AbortCode::ZeroAmount,
    );
    assert_abort(
        &h,
        take(&mut rt, 11),
        "withdraw_treasury",
        AbortCode::InsufficientTreasury,
    );
    let (_, args) = take(&mut rt, 4).expect("withdraw_treasury");
    assert_eq!(decode_arg::<Cluster>(&args, 1).treasury, 6);
    let (object, owner) = rt.transferred.values().next().expect("coin");
    assert_eq!(
        (object.decode::<Coin>().expect("coin").balance, *owner),
        (4, Owner::Address(ADMIN))
    );
    assert!(
        matches!(events(&h, &rt).as_slice(), [PackageEvent::TreasuryWithdrawn(e)] if e.amount == 4 && e.recipient == ADMIN)
    );
}

#[test]
fn slash_adds_a_dynamic_field_entry_once() {
    let h = H::new();
    let mut rt = h.rt();
    let record = Address::from_static("0x7ec");
    let cluster = slash(&h, &mut rt, &h.cluster, record);
    let entry_id = slashed_entry_id(h.cluster.slashed.id, record);
    let Some(Some((entry, parent))) = rt.children.get(&entry_id) else {
        panic!("slash wrote no table entry");
    };
    assert_eq!(*parent, h.cluster.slashed.id);
    assert_eq!(entry.type_, slashed_entry_type());
    let field: daas_chain_types::Field<Address, bool> = entry.decode().expect("Field<ID, bool>");
    assert_eq!(
        (field.id, field.name, field.value),
        (entry_id, record, true)
    );
    let r = h.call(
        &mut rt,
        "cluster",
        "slash",
        ADMIN,
        vec![h.cap(&h.cap), h.cluster(&cluster), Arg::Address(record)],
    );
    assert_abort(&h, r, "slash", AbortCode::AlreadySlashed);
}

/// The `Field<address, u8>` entry of `account` in `cluster.grants` as this transaction sees it:
/// `None` if absent, else its mask, after checking type, parent, id and name.
fn grant_entry(rt: &Runtime<'_>, cluster: &Cluster, account: Address) -> Option<u8> {
    let id = grant_entry_id(cluster.grants.id, account);
    match rt.children.get(&id) {
        None => {
            assert!(
                !rt.child_exists(&id),
                "an entry from before the transaction"
            );
            None
        }
        Some(None) => None,
        Some(Some((entry, parent))) => {
            assert_eq!(*parent, cluster.grants.id);
            assert_eq!(entry.type_, grant_entry_type());
            let field: daas_chain_types::Field<Address, u8> =
                entry.decode().expect("Field<address, u8>");
            assert_eq!((field.id, field.name), (id, account));
            Some(field.value)
        }
    }
}

#[test]
fn grant_and_revoke_role_keep_one_bitmask_entry_per_account() {
    let h = H::new();
    let mut rt = h.rt();
    let call = |rt: &mut Runtime<'_>, function: &str, cluster: &Cluster, role: u8| {
        h.call(
            rt,
            "cluster",
            function,
            ADMIN,
            vec![
                h.cap(&h.cap),
                h.cluster(cluster),
                Arg::Address(USER),
                Arg::U8(role),
            ],
        )
    };
    for role in [consts::ROLE_USER, 3, 8, 255] {
        assert_abort(
            &h,
            call(&mut rt, "grant_role", &h.cluster, role),
            "grant_role",
            AbortCode::RoleNotGrantable,
        );
        assert_abort(
            &h,
            call(&mut rt, "revoke_role", &h.cluster, role),
            "revoke_role",
            AbortCode::RoleNotGrantable,
        );
    }
    assert_abort(
        &h,
        call(&mut rt, "revoke_role", &h.cluster, consts::ROLE_ADMIN),
        "revoke_role",
        AbortCode::NotGranted,
    );
    assert!(rt.events.is_empty() && rt.children.is_empty());

    let c = grant(&h, &mut rt, &h.cluster, USER, consts::ROLE_ADMIN);
    assert_eq!(
        (grant_entry(&rt, &c, USER), c.grants.size),
        (Some(0b100), 1)
    );
    let c = grant(&h, &mut rt, &c, USER, consts::ROLE_WORKER);
    assert_eq!(
        (grant_entry(&rt, &c, USER), c.grants.size),
        (Some(0b101), 1)
    );
    let c = grant(&h, &mut rt, &c, ADMIN, consts::ROLE_WORKER);
    assert_eq!(
        (grant_entry(&rt, &c, ADMIN), c.grants.size),
        (Some(0b001), 2)
    );
    assert_abort(
        &h,
        call(&mut rt, "grant_role", &c, consts::ROLE_WORKER),
        "grant_role",
        AbortCode::AlreadyGranted,
    );

    let c = revoke(&h, &mut rt, &c, USER, consts::ROLE_ADMIN).expect("revoke admin");
    assert_eq!(
        (grant_entry(&rt, &c, USER), c.grants.size),
        (Some(0b001), 2)
    );
    assert_abort(
        &h,
        call(&mut rt, "revoke_role", &c, consts::ROLE_ADMIN),
        "revoke_role",
        AbortCode::NotGranted,
    );
    // The last grant gone, the entry is removed (a deleted dynamic field).
    let c = revoke(&h, &mut rt, &c, USER, consts::ROLE_WORKER).expect("revoke worker");
    assert_eq!((grant_entry(&rt, &c, USER), c.grants.size), (None, 1));
    assert!(matches!(
        rt.children.get(&grant_entry_id(c.grants.id, USER)),
        Some(None)
    ));
    assert_eq!(grant_entry(&rt, &c, ADMIN), Some(0b001));

    let granted = |account, role| {
        PackageEvent::RoleGranted(daas_chain_types::events::RoleGranted {
            cluster_id: h.cluster.id,
            account,
            role,
        })
    };
    let revoked = |account, role| {
        PackageEvent::RoleRevoked(daas_chain_types::events::RoleRevoked {
            cluster_id: h.cluster.id,
            account,
            role,
        })
    };
    assert_eq!(
        events(&h, &rt),
        vec![
            granted(USER, consts::ROLE_ADMIN),
            granted(USER, consts::ROLE_WORKER),
            granted(ADMIN, consts::ROLE_WORKER),
            revoked(USER, consts::ROLE_ADMIN),
            revoked(USER, consts::ROLE_WORKER),
        ]
    );
}

#[test]
fn a_revoked_grant_stops_new_stakes_but_not_existing_records() {
    let h = H::new();
    let mut rt = h.rt();
    let stake_admin = |rt: &mut Runtime<'_>, cluster: &Cluster, sender: Address| {
        h.call(
            rt,
            "staking",
            "stake",
            sender,
            vec![
                h.cluster(cluster),
                coin("0xc0", 10 * SUI),
                Arg::U8(consts::ROLE_ADMIN),
                Arg::String(String::new()),
                h.clock(),
            ],
        )
    };
    let cluster = grant(&h, &mut rt, &h.cluster, USER, consts::ROLE_ADMIN);
    stake_admin(&mut rt, &cluster, USER).expect("granted admin stakes");
    // A grant is the account's own.
    assert_abort(
        &h,
        stake_admin(&mut rt, &cluster, ADMIN),
        "stake",
        AbortCode::NoGrant,
    );
    let cluster = revoke(&h, &mut rt, &cluster, USER, consts::ROLE_ADMIN).expect("revoke");
    assert_abort(
        &h,
        stake_admin(&mut rt, &cluster, USER),
        "stake",
        AbortCode::NoGrant,
    );
    // The record staked under the grant is untouched, and its owner can still leave.
    let mut record = h.active_record(USER, 10 * SUI);
    record.role = consts::ROLE_ADMIN;
    record.node_name = String::new();
    let (_, args) = h
        .call(
            &mut rt,
            "staking",
            "request_unstake",
            USER,
            vec![h.cluster(&cluster), h.record(&record), h.clock()],
        )
        .expect("request_unstake after the revoke");
    assert_eq!(
        decode_arg::<StakeRecord>(&args, 1).status,
        consts::STATUS_UNBONDING
    );
}

#[test]
fn migrate_without_an_upgrade_aborts() {
    let h = H::new();
    let mut rt = h.rt();
    let foreign = AdminCap {
        id: h.cap.id,
        cluster_id: Address::from_static("0x1"),
    };
    let r = h.call(
        &mut rt,
        "cluster",
        "migrate",
        ADMIN,
        vec![h.cap(&foreign), h.cluster(&h.cluster)],
    );
    assert_abort(&h, r, "migrate", AbortCode::WrongAdminCap);
    let r = h.call(
        &mut rt,
        "cluster",
        "migrate",
        ADMIN,
        vec![h.cap(&h.cap), h.cluster(&h.cluster)],
    );
    assert_abort(&h, r, "migrate", AbortCode::NotUpgrade);
}

// ---------------------------------------------------------------------------------- framework

#[test]
fn destroy_zero_and_nitro_attestation_behave_like_the_framework() {
    let h = H::new();
    let mut rt = h.rt();
    let sui: TypeTag = TypeTag::Struct(Box::new(StructTag::sui()));
    let r = h.call_at(
        &mut rt,
        Address::TWO,
        "coin",
        "destroy_zero",
        USER,
        vec![coin("0xd1", 1)],
        vec![sui.clone()],
    );
    assert_abort_at(r, Address::TWO, "balance", "destroy_zero", 0);
    h.call_at(
        &mut rt,
        Address::TWO,
        "coin",
        "destroy_zero",
        USER,
        vec![coin("0xd0", 0)],
        vec![sui],
    )
    .expect("destroy_zero of a zero coin");
    assert!(rt.deleted.contains(&Address::from_static("0xd0")));

    let r = h.call_at(
        &mut rt,
        Address::TWO,
        "nitro_attestation",
        "load_nitro_attestation",
        USER,
        vec![Arg::Bytes(vec![1, 2, 3]), h.clock()],
        vec![],
    );
    // Not CBOR: Sui's EParseError (1), raised from nitro_attestation.
    assert_abort_at(
        r,
        Address::TWO,
        "nitro_attestation",
        "load_nitro_attestation",
        1,
    );
    assert!(lookup(&h.pkg, &Address::TWO, "coin", "mint").is_none());
    assert!(lookup(&h.pkg, &h.pkg.id, "staking", "steal").is_none());
}

// ---------------------------------------------------------------------------------- enclave

mod enclave {
    use daas_attestation::Document;
    use daas_chain_types::consts::encode_user_data;
    use daas_chain_types::objects::{NitroAttestationDocument, PcrEntry};
    use daas_chain_types::package::nitro_attestation_document_type;

    use super::*;
    use crate::exec::runtime::StructVal;

    const ENDPOINT: &str = "https://enclave.example:6443";
    const CA: [u8; 32] = [0xca; 32];

    fn configured(h: &H) -> Cluster {
        let mut c = h.cluster.clone();
        c.expected_pcr0 = vec![1; 48];
        c.expected_pcr1 = vec![2; 48];
        c.expected_pcr2 = vec![3; 48];
        c
    }

    /// A document as `load_nitro_attestation` would return it: PCRs 0-4 and 8, fresh at NOW,
    /// user_data v1 for `cluster`, a public key.
    fn doc(cluster: &Cluster) -> NitroAttestationDocument {
        let pcr = |index: u8, fill: u8| PcrEntry {
            index,
            value: vec![fill; 48],
        };
        NitroAttestationDocument {
            module_id: b"dev-i-0-enc0".to_vec(),
            timestamp: NOW - 1_000,
            digest: b"SHA384".to_vec(),
            pcrs: vec![
                pcr(0, 1),
                pcr(1, 2),
                pcr(2, 3),
                pcr(3, 4),
                pcr(4, 5),
                pcr(8, 0),
            ],
            public_key: Some(vec![0x30, 0x76]),
            user_data: Some(encode_user_data(cluster.id, &CA, ENDPOINT)),
            nonce: None,
        }
    }

    fn doc_arg(doc: &NitroAttestationDocument) -> Arg {
        Arg::Struct(StructVal::new(nitro_attestation_document_type(), doc).expect("encode"))
    }

    fn register(
        h: &H,
        rt: &mut Runtime<'_>,
        cluster: &Cluster,
        doc: &NitroAttestationDocument,
        endpoint: &str,
        sender: Address,
    ) -> Result<(Vec<Value>, Args), Failure> {
        h.call(
            rt,
            "enclave",
            "register_enclave",
            sender,
            vec![
                h.cluster(cluster),
                doc_arg(doc),
                Arg::String(endpoint.to_owned()),
                h.clock(),
            ],
        )
    }

    #[test]
    fn a_valid_document_registers_with_its_ca_hash_and_emits_the_event() {
        let h = H::new();
        let mut rt = h.rt();
        let cluster = configured(&h);
        let d = doc(&cluster);
        let (values, args) =
            register(&h, &mut rt, &cluster, &d, ENDPOINT, ADMIN).expect("register_enclave");
        assert!(values.is_empty());
        let after: Cluster = decode_arg(&args, 0);
        let e = after.enclave.expect("enclave stored");
        assert_eq!(e.ca_sha256, CA.to_vec());
        assert_eq!(e.endpoint, ENDPOINT);
        assert_eq!(e.public_key, vec![0x30, 0x76]);
        assert_eq!((e.pcr0, e.pcr2), (vec![1; 48], vec![3; 48]));
        assert_eq!((e.attested_at_ms, e.registered_at_ms), (NOW - 1_000, NOW));
        match events(&h, &rt).as_slice() {
            [PackageEvent::EnclaveRegistered(ev)] => {
                assert_eq!(ev.ca_sha256, CA.to_vec());
                assert_eq!(ev.cluster_id, cluster.id);
                assert_eq!(ev.endpoint, ENDPOINT);
            }
            other => panic!("expected one EnclaveRegistered, got {other:?}"),
        }
    }

    /// Every check of `register_checked`, in the Move order, with its code and function.
    #[test]
    fn every_check_aborts_where_the_move_code_does() {
        let h = H::new();
        let cluster = configured(&h);
        let other_cluster = Address::from_static("0xc1");
        let with = |f: &dyn Fn(&mut NitroAttestationDocument)| {
            let mut d = doc(&cluster);
            f(&mut d);
            d
        };
        let user_data = |bytes: Vec<u8>| with(&|d| d.user_data = Some(bytes.clone()));
        let good_ud = encode_user_data(cluster.id, &CA, ENDPOINT);
        let mut bad_magic = good_ud.clone();
        bad_magic[0] = b'k';
        let mut version_2 = good_ud.clone();
        version_2[7] = 2;
        let zero_pcr = |i: usize| with(&|d| d.pcrs[i].value = vec![0; 48]);
        let cases: Vec<(NitroAttestationDocument, &str, Address, &str, AbortCode)> = vec![
            (
                doc(&cluster),
                ENDPOINT,
                USER,
                "register_checked",
                AbortCode::NotEnclaveOperator,
            ),
            (
                doc(&cluster),
                "",
                ADMIN,
                "check_endpoint",
                AbortCode::InvalidEndpoint,
            ),
            (
                zero_pcr(0),
                ENDPOINT,
                ADMIN,
                "check_not_debug",
                AbortCode::DebugAttestation,
            ),
            (
                zero_pcr(1),
                ENDPOINT,
                ADMIN,
                "check_not_debug",
                AbortCode::DebugAttestation,
            ),
            (
                zero_pcr(2),
                ENDPOINT,
                ADMIN,
                "check_not_debug",
                AbortCode::DebugAttestation,
            ),
            (
                with(&|d| d.pcrs[1].value = vec![9; 48]),
                ENDPOINT,
                ADMIN,
                "check_pcrs",
                AbortCode::PcrMismatch,
            ),
            (
                // An older Sui parsing mode left PCR2 out: it reads as empty and never matches.
                with(&|d| {
                    d.pcrs.remove(2);
                }),
                ENDPOINT,
                ADMIN,
                "check_pcrs",
                AbortCode::PcrMismatch,
            ),
            (
                with(&|d| d.timestamp = NOW - 300_001),
                ENDPOINT,
                ADMIN,
                "check_freshness",
                AbortCode::AttestationStale,
            ),
            (
                with(&|d| d.timestamp = NOW + 60_001),
                ENDPOINT,
                ADMIN,
                "check_freshness",
                AbortCode::AttestationFromFuture,
            ),
            (
                with(&|d| d.user_data = None),
                ENDPOINT,
                ADMIN,
                "check_user_data",
                AbortCode::MissingUserData,
            ),
            (
                user_data(good_ud[..71].to_vec()),
                ENDPOINT,
                ADMIN,
                "check_user_data",
                AbortCode::UserDataTooShort,
            ),
            (
                user_data(bad_magic),
                ENDPOINT,
                ADMIN,
                "check_user_data",
                AbortCode::UserDataBadMagic,
            ),
            (
                user_data(version_2),
                ENDPOINT,
                ADMIN,
                "check_user_data",
                AbortCode::UserDataUnsupportedVersion,
            ),
            (
                user_data(encode_user_data(other_cluster, &CA, ENDPOINT)),
                ENDPOINT,
                ADMIN,
                "check_user_data",
                AbortCode::UserDataWrongCluster,
            ),
            (
                doc(&cluster),
                "https://elsewhere.example:6443",
                ADMIN,
                "check_user_data",
                AbortCode::UserDataEndpointMismatch,
            ),
            (
                with(&|d| d.public_key = Some(Vec::new())),
                ENDPOINT,
                ADMIN,
                "check_public_key",
                AbortCode::MissingPublicKey,
            ),
            (
                with(&|d| d.public_key = None),
                ENDPOINT,
                ADMIN,
                "check_public_key",
                AbortCode::MissingPublicKey,
            ),
        ];
        for (d, endpoint, sender, function, code) in cases {
            let mut rt = h.rt();
            let r = register(&h, &mut rt, &cluster, &d, endpoint, sender);
            assert_abort(&h, r, function, code);
            assert!(rt.events.is_empty(), "{code:?}: no event on abort");
        }

        // Unconfigured cluster: the debug check still comes first, then the configuration.
        let mut rt = h.rt();
        let unconfigured = h.cluster.clone();
        let r = register(&h, &mut rt, &unconfigured, &zero_pcr(0), ENDPOINT, ADMIN);
        assert_abort(&h, r, "check_not_debug", AbortCode::DebugAttestation);
        let r = register(
            &h,
            &mut rt,
            &unconfigured,
            &doc(&unconfigured),
            ENDPOINT,
            ADMIN,
        );
        assert_abort(&h, r, "check_pcrs", AbortCode::EnclaveNotConfigured);

        // Another package version.
        let mut old = cluster.clone();
        old.version = 0;
        let r = register(&h, &mut rt, &old, &doc(&old), ENDPOINT, ADMIN);
        assert_abort(&h, r, "assert_version", AbortCode::WrongVersion);

        // Replay: the registered enclave's document, or an older one, aborts; a newer one
        // replaces it.
        let (_, args) =
            register(&h, &mut rt, &cluster, &doc(&cluster), ENDPOINT, ADMIN).expect("first");
        let registered: Cluster = decode_arg(&args, 0);
        let r = register(&h, &mut rt, &registered, &doc(&registered), ENDPOINT, ADMIN);
        assert_abort(&h, r, "check_newer", AbortCode::AttestationNotNewer);
        h.now.set(NOW + 5);
        let mut newer = doc(&registered);
        newer.timestamp = NOW;
        let (_, args) = register(&h, &mut rt, &registered, &newer, ENDPOINT, ADMIN).expect("newer");
        let replaced: Cluster = decode_arg(&args, 0);
        let e = replaced.enclave.expect("enclave");
        assert_eq!((e.attested_at_ms, e.registered_at_ms), (NOW, NOW + 5));
    }

    #[test]
    fn set_expected_pcrs_refuses_zero_pcrs() {
        let h = H::new();
        for zero in 0..3 {
            let mut rt = h.rt();
            let mut pcrs = [vec![1u8; 48], vec![2; 48], vec![3; 48]];
            pcrs[zero] = vec![0; 48];
            let r = h.call(
                &mut rt,
                "cluster",
                "set_expected_pcrs",
                ADMIN,
                vec![
                    h.cap(&h.cap),
                    h.cluster(&h.cluster),
                    Arg::Bytes(pcrs[0].clone()),
                    Arg::Bytes(pcrs[1].clone()),
                    Arg::Bytes(pcrs[2].clone()),
                ],
            );
            assert_abort(&h, r, "set_expected_pcrs", AbortCode::ZeroPcr);
        }
    }

    /// Sui's current parsing: sorted by index, required PCRs 0-4 and 8 even when zero, others
    /// only when non-zero.
    #[test]
    fn the_document_value_has_suis_pcr_list() {
        let mut pcrs = std::collections::BTreeMap::new();
        for i in 0..16u8 {
            pcrs.insert(i, vec![0; 48]);
        }
        pcrs.insert(3, vec![3; 48]);
        pcrs.insert(4, vec![4; 48]);
        pcrs.insert(16, vec![16; 48]);
        pcrs.insert(9, vec![9; 48]);
        let d = Document {
            module_id: "i-0-enc1".to_owned(),
            digest: "SHA384".to_owned(),
            timestamp_ms: 7,
            pcrs,
            certificate: vec![1],
            cabundle: vec![vec![2]],
            public_key: None,
            user_data: Some(Vec::new()),
            nonce: Some(vec![5]),
        };
        let v = super::super::framework::sui_document(&d);
        let indices: Vec<u8> = v.pcrs.iter().map(|e| e.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 3, 4, 8, 9, 16]);
        assert_eq!(v.pcr(0), Some(&[0u8; 48][..]));
        assert_eq!(v.pcr(9), Some(&[9u8; 48][..]));
        assert_eq!(v.pcr(5), None);
        assert_eq!(
            (v.module_id.as_slice(), v.digest.as_slice(), v.timestamp),
            (&b"i-0-enc1"[..], &b"SHA384"[..], 7)
        );
        assert_eq!(
            (v.public_key, v.user_data, v.nonce),
            (None, Some(Vec::new()), Some(vec![5]))
        );
    }
}
