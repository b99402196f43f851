//! `k3s_daas::cluster`, modelled after `move-contracts/sources/cluster.move`.

use sui_sdk_types::{Address, Owner, StructTag};

use daas_chain_types::abort::AbortCode;
use daas_chain_types::events::{
    ClusterMigrated, ClusterRenamed, EnclaveOperatorChanged, PcrsChanged, RoleGranted,
    RoleMinimumChanged, RoleRevoked, Slashed, TreasuryWithdrawn, UnbondingPeriodChanged,
};
use daas_chain_types::package::{
    grant_entry_id, grant_entry_type, slashed_entry_id, slashed_entry_type,
};
use daas_chain_types::{AdminCap, Cluster, Coin, Field, Package, PackageEvent, consts};

use super::{Args, CallCtx, Function, Kind, Loc, Param};
use crate::exec::Failure;
use crate::exec::runtime::{ObjVal, Runtime, Value};

const M: &str = daas_chain_types::package::MODULE_CLUSTER;

// Declaration order of the functions in cluster.move (test-only functions excluded).
const SET_ROLE_MINIMUM: Loc = Loc::pkg(M, "set_role_minimum", 2);
const SET_UNBONDING_PERIOD: Loc = Loc::pkg(M, "set_unbonding_period", 3);
const SET_EXPECTED_PCRS: Loc = Loc::pkg(M, "set_expected_pcrs", 4);
const SET_NAME: Loc = Loc::pkg(M, "set_name", 6);
const WITHDRAW_TREASURY: Loc = Loc::pkg(M, "withdraw_treasury", 7);
const SLASH: Loc = Loc::pkg(M, "slash", 8);
const GRANT_ROLE: Loc = Loc::pkg(M, "grant_role", 9);
const REVOKE_ROLE: Loc = Loc::pkg(M, "revoke_role", 10);
const MIGRATE: Loc = Loc::pkg(M, "migrate", 11);
const MIN_STAKE: Loc = Loc::pkg(M, "min_stake", 14);
const ASSERT_VERSION: Loc = Loc::pkg(M, "assert_version", 38);
const ASSERT_ADMIN: Loc = Loc::pkg(M, "assert_admin", 39);

pub(super) fn function(name: &str) -> Option<&'static Function> {
    use Kind::{AdminCap as Cap, Cluster as Cl};
    use Param::{Address as Addr, Bytes, Id, Mut, Ref, String as Str, U8, U64};
    static SET_ROLE_MINIMUM_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), U8, U64],
        type_params: 0,
        handler: set_role_minimum,
    };
    static SET_UNBONDING_PERIOD_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), U64],
        type_params: 0,
        handler: set_unbonding_period,
    };
    static SET_EXPECTED_PCRS_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Bytes, Bytes, Bytes],
        type_params: 0,
        handler: set_expected_pcrs,
    };
    static SET_ENCLAVE_OPERATOR_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Addr],
        type_params: 0,
        handler: set_enclave_operator,
    };
    static SET_NAME_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Str],
        type_params: 0,
        handler: set_name,
    };
    static WITHDRAW_TREASURY_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), U64],
        type_params: 0,
        handler: withdraw_treasury,
    };
    static SLASH_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Id],
        type_params: 0,
        handler: slash,
    };
    static GRANT_ROLE_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Addr, U8],
        type_params: 0,
        handler: grant_role,
    };
    static REVOKE_ROLE_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl), Addr, U8],
        type_params: 0,
        handler: revoke_role,
    };
    static MIGRATE_FN: Function = Function {
        params: &[Ref(Cap), Mut(Cl)],
        type_params: 0,
        handler: migrate,
    };
    use daas_chain_types::package as p;
    Some(match name {
        p::FN_SET_ROLE_MINIMUM => &SET_ROLE_MINIMUM_FN,
        p::FN_SET_UNBONDING_PERIOD => &SET_UNBONDING_PERIOD_FN,
        p::FN_SET_EXPECTED_PCRS => &SET_EXPECTED_PCRS_FN,
        p::FN_SET_ENCLAVE_OPERATOR => &SET_ENCLAVE_OPERATOR_FN,
        p::FN_SET_NAME => &SET_NAME_FN,
        p::FN_WITHDRAW_TREASURY => &WITHDRAW_TREASURY_FN,
        p::FN_SLASH => &SLASH_FN,
        p::FN_GRANT_ROLE => &GRANT_ROLE_FN,
        p::FN_REVOKE_ROLE => &REVOKE_ROLE_FN,
        p::FN_MIGRATE => &MIGRATE_FN,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------- shared helpers

/// `cluster::assert_version`.
pub(super) fn assert_version(package: &Package, cluster: &Cluster) -> Result<(), Failure> {
    if cluster.version != consts::VERSION {
        return Err(ASSERT_VERSION.abort(package, AbortCode::WrongVersion.code()));
    }
    Ok(())
}

/// `cluster::assert_admin`.
fn assert_admin(package: &Package, cluster: &Cluster, cap: &AdminCap) -> Result<(), Failure> {
    assert_version(package, cluster)?;
    if cap.cluster_id != cluster.id {
        return Err(ASSERT_ADMIN.abort(package, AbortCode::WrongAdminCap.code()));
    }
    Ok(())
}

/// `cluster::min_stake`.
pub(super) fn min_stake(package: &Package, cluster: &Cluster, role: u8) -> Result<u64, Failure> {
    cluster
        .min_stake(role)
        .ok_or_else(|| MIN_STAKE.abort(package, AbortCode::InvalidRole.code()))
}

/// `cluster::is_slashed`: the table entry (a dynamic field object) exists.
pub(super) fn is_slashed(rt: &Runtime<'_>, cluster: &Cluster, record_id: Address) -> bool {
    rt.child_exists(&slashed_entry_id(cluster.slashed.id, record_id))
}

/// `cluster::deposit_to_treasury`.
pub(super) fn deposit_to_treasury(
    loc: Loc,
    package: &Package,
    cluster: &mut Cluster,
    amount: u64,
) -> Result<(), Failure> {
    cluster.treasury = cluster
        .treasury
        .checked_add(amount)
        .ok_or_else(|| loc.arithmetic(package))?;
    Ok(())
}

/// `cluster::clear_slashed`: removes the record's table entry, if any.
pub(super) fn clear_slashed(rt: &mut Runtime<'_>, cluster: &mut Cluster, record_id: Address) {
    if is_slashed(rt, cluster, record_id) {
        rt.remove_child(slashed_entry_id(cluster.slashed.id, record_id));
        cluster.slashed.size = cluster.slashed.size.saturating_sub(1);
    }
}

/// `table::add(&mut cluster.slashed, record_id, true)`: a new
/// `0x2::dynamic_field::Field<ID, bool>` owned by the table.
fn add_slashed(
    rt: &mut Runtime<'_>,
    cluster: &mut Cluster,
    record_id: Address,
) -> Result<(), Failure> {
    let table = cluster.slashed.id;
    let id = slashed_entry_id(table, record_id);
    let entry = Field {
        id,
        name: record_id,
        value: true,
    };
    rt.write_child(table, ObjVal::new(id, slashed_entry_type(), &entry)?);
    cluster.slashed.size += 1;
    Ok(())
}

/// `cluster::granted_roles`: the mask of `account`'s `Cluster.grants` entry, 0 without one.
pub(super) fn granted_roles(
    rt: &Runtime<'_>,
    cluster: &Cluster,
    account: Address,
) -> Result<u8, Failure> {
    let id = grant_entry_id(cluster.grants.id, account);
    let Some(entry) = rt.child(&id) else {
        return Ok(0);
    };
    if entry.type_ != grant_entry_type() {
        return Err(Failure::invariant(format!(
            "grant entry {id} has type {}",
            entry.type_
        )));
    }
    let field: Field<Address, u8> = entry.decode()?;
    if field.id != id || field.name != account {
        return Err(Failure::invariant(format!(
            "grant entry {id} is not {account}'s"
        )));
    }
    Ok(field.value)
}

/// `cluster::is_granted`.
pub(super) fn is_granted(
    rt: &Runtime<'_>,
    cluster: &Cluster,
    account: Address,
    role: u8,
) -> Result<bool, Failure> {
    if !consts::role_requires_grant(role) {
        return Ok(false);
    }
    Ok(consts::mask_grants(
        granted_roles(rt, cluster, account)?,
        role,
    ))
}

/// Writes `account`'s `Cluster.grants` entry with `mask`: `table::add` of a new
/// `0x2::dynamic_field::Field<address, u8>` owned by the table when `new`, `*borrow_mut = mask`
/// otherwise; `table::remove` when `mask` is 0.
fn set_grant(
    rt: &mut Runtime<'_>,
    cluster: &mut Cluster,
    account: Address,
    had_entry: bool,
    mask: u8,
) -> Result<(), Failure> {
    let table = cluster.grants.id;
    let id = grant_entry_id(table, account);
    if mask == 0 {
        rt.remove_child(id);
        cluster.grants.size = cluster.grants.size.saturating_sub(1);
        return Ok(());
    }
    let entry = Field {
        id,
        name: account,
        value: mask,
    };
    rt.write_child(table, ObjVal::new(id, grant_entry_type(), &entry)?);
    if !had_entry {
        cluster.grants.size += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------- admin functions

/// `set_role_minimum(cap: &AdminCap, cluster: &mut Cluster, role: u8, min_mist: u64)`.
fn set_role_minimum(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let role = args.u8(2)?;
    let min_mist = args.u64(3)?;
    assert_admin(&pkg, &cluster, &cap)?;
    if min_mist == 0 {
        return Err(SET_ROLE_MINIMUM.abort(&pkg, AbortCode::ZeroMinimum.code()));
    }
    let old_min_mist = min_stake(&pkg, &cluster, role)?;
    match role {
        consts::ROLE_WORKER => cluster.min_stake_worker = min_mist,
        consts::ROLE_USER => cluster.min_stake_user = min_mist,
        _ => cluster.min_stake_admin = min_mist,
    }
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::RoleMinimumChanged(RoleMinimumChanged {
        cluster_id: cluster.id,
        role,
        old_min_mist,
        new_min_mist: min_mist,
    }))?;
    Ok(Vec::new())
}

/// `set_unbonding_period(cap: &AdminCap, cluster: &mut Cluster, period_ms: u64)`.
fn set_unbonding_period(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let period_ms = args.u64(2)?;
    assert_admin(&pkg, &cluster, &cap)?;
    if period_ms > consts::MAX_UNBONDING_PERIOD_MS {
        return Err(SET_UNBONDING_PERIOD.abort(&pkg, AbortCode::UnbondingTooLong.code()));
    }
    let old_period_ms = cluster.unbonding_period_ms;
    cluster.unbonding_period_ms = period_ms;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::UnbondingPeriodChanged(
        UnbondingPeriodChanged {
            cluster_id: cluster.id,
            old_period_ms,
            new_period_ms: period_ms,
        },
    ))?;
    Ok(Vec::new())
}

/// `set_expected_pcrs(cap, cluster, pcr0, pcr1, pcr2)`: 48 bytes each, none all zero.
fn set_expected_pcrs(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let (pcr0, pcr1, pcr2) = (args.bytes(2)?, args.bytes(3)?, args.bytes(4)?);
    assert_admin(&pkg, &cluster, &cap)?;
    if [&pcr0, &pcr1, &pcr2]
        .iter()
        .any(|p| p.len() != consts::PCR_LENGTH)
    {
        return Err(SET_EXPECTED_PCRS.abort(&pkg, AbortCode::InvalidPcrLength.code()));
    }
    if [&pcr0, &pcr1, &pcr2].iter().any(|p| consts::is_zero_pcr(p)) {
        return Err(SET_EXPECTED_PCRS.abort(&pkg, AbortCode::ZeroPcr.code()));
    }
    let enclave_cleared = cluster.enclave.is_some();
    cluster.enclave = None;
    cluster.expected_pcr0 = pcr0.clone();
    cluster.expected_pcr1 = pcr1.clone();
    cluster.expected_pcr2 = pcr2.clone();
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::PcrsChanged(PcrsChanged {
        cluster_id: cluster.id,
        pcr0,
        pcr1,
        pcr2,
        enclave_cleared,
    }))?;
    Ok(Vec::new())
}

/// `set_enclave_operator(cap, cluster, operator: address)`.
fn set_enclave_operator(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let operator = args.address(2)?;
    assert_admin(&pkg, &cluster, &cap)?;
    let old_operator = cluster.enclave_operator;
    cluster.enclave_operator = operator;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::EnclaveOperatorChanged(
        EnclaveOperatorChanged {
            cluster_id: cluster.id,
            old_operator,
            new_operator: operator,
        },
    ))?;
    Ok(Vec::new())
}

/// `set_name(cap, cluster, name: String)`.
fn set_name(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let name = args.string(2)?;
    assert_admin(&pkg, &cluster, &cap)?;
    if !consts::is_valid_dns_label(&name) {
        return Err(SET_NAME.abort(&pkg, AbortCode::InvalidName.code()));
    }
    cluster.name = name.clone();
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::ClusterRenamed(ClusterRenamed {
        cluster_id: cluster.id,
        name,
    }))?;
    Ok(Vec::new())
}

/// `withdraw_treasury(cap, cluster, amount: u64, ctx)`: sends a coin to the sender.
fn withdraw_treasury(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let amount = args.u64(2)?;
    assert_admin(&pkg, &cluster, &cap)?;
    if amount == 0 {
        return Err(WITHDRAW_TREASURY.abort(&pkg, AbortCode::ZeroAmount.code()));
    }
    if amount > cluster.treasury {
        return Err(WITHDRAW_TREASURY.abort(&pkg, AbortCode::InsufficientTreasury.code()));
    }
    let id = ctx.rt.fresh_id();
    cluster.treasury -= amount;
    let coin = ObjVal::new(
        id,
        StructTag::gas_coin(),
        &Coin {
            id,
            balance: amount,
        },
    )?;
    ctx.rt.transfer(coin, Owner::Address(ctx.sender));
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::TreasuryWithdrawn(TreasuryWithdrawn {
        cluster_id: cluster.id,
        amount,
        recipient: ctx.sender,
    }))?;
    Ok(Vec::new())
}

/// `slash(cap, cluster, record_id: ID)`.
fn slash(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let record_id = args.address(2)?;
    assert_admin(&pkg, &cluster, &cap)?;
    if is_slashed(ctx.rt, &cluster, record_id) {
        return Err(SLASH.abort(&pkg, AbortCode::AlreadySlashed.code()));
    }
    add_slashed(ctx.rt, &mut cluster, record_id)?;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::Slashed(Slashed {
        cluster_id: cluster.id,
        record_id,
    }))?;
    Ok(Vec::new())
}

/// `grant_role(cap, cluster, account: address, role: u8)`.
fn grant_role(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let account = args.address(2)?;
    let role = args.u8(3)?;
    assert_admin(&pkg, &cluster, &cap)?;
    let Some(bit) = consts::grant_bit(role) else {
        return Err(GRANT_ROLE.abort(&pkg, AbortCode::RoleNotGrantable.code()));
    };
    let mask = granted_roles(ctx.rt, &cluster, account)?;
    if mask & bit != 0 {
        return Err(GRANT_ROLE.abort(&pkg, AbortCode::AlreadyGranted.code()));
    }
    set_grant(ctx.rt, &mut cluster, account, mask != 0, mask | bit)?;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::RoleGranted(RoleGranted {
        cluster_id: cluster.id,
        account,
        role,
    }))?;
    Ok(Vec::new())
}

/// `revoke_role(cap, cluster, account: address, role: u8)`: existing records are not touched.
fn revoke_role(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    let account = args.address(2)?;
    let role = args.u8(3)?;
    assert_admin(&pkg, &cluster, &cap)?;
    let Some(bit) = consts::grant_bit(role) else {
        return Err(REVOKE_ROLE.abort(&pkg, AbortCode::RoleNotGrantable.code()));
    };
    let mask = granted_roles(ctx.rt, &cluster, account)?;
    if mask & bit == 0 {
        return Err(REVOKE_ROLE.abort(&pkg, AbortCode::NotGranted.code()));
    }
    set_grant(ctx.rt, &mut cluster, account, true, mask ^ bit)?;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::RoleRevoked(RoleRevoked {
        cluster_id: cluster.id,
        account,
        role,
    }))?;
    Ok(Vec::new())
}

/// `migrate(cap, cluster)`: the devnet's package is the only version, so this always aborts
/// with `ENotUpgrade` once the cap matches (as the Move code does without an upgrade).
fn migrate(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cap: AdminCap = args.decode(0)?;
    let mut cluster: Cluster = args.decode(1)?;
    if cap.cluster_id != cluster.id {
        return Err(MIGRATE.abort(&pkg, AbortCode::WrongAdminCap.code()));
    }
    if cluster.version >= consts::VERSION {
        return Err(MIGRATE.abort(&pkg, AbortCode::NotUpgrade.code()));
    }
    let from_version = cluster.version;
    cluster.version = consts::VERSION;
    args.store(1, &cluster)?;
    ctx.emit(PackageEvent::ClusterMigrated(ClusterMigrated {
        cluster_id: cluster.id,
        from_version,
        to_version: consts::VERSION,
    }))?;
    Ok(Vec::new())
}
