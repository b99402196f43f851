//! `k3s_daas::staking`, modelled after `move-contracts/sources/staking.move`.

use sui_sdk_types::{Owner, StructTag};

use daas_chain_types::abort::AbortCode;
use daas_chain_types::events::{
    SlashSettled, StakeAdded, Staked, TokensRevoked, UnstakeRequested, Withdrawn,
};
use daas_chain_types::{Cluster, Coin, Package, PackageEvent, StakeRecord, consts};

use super::cluster::{
    assert_version, clear_slashed, deposit_to_treasury, is_granted, is_slashed, min_stake,
};
use super::{Args, CallCtx, Function, Kind, Loc, Param};
use crate::exec::Failure;
use crate::exec::runtime::{ObjVal, Runtime, Value};

const M: &str = daas_chain_types::package::MODULE_STAKING;

// Declaration order of the functions in staking.move.
const STAKE: Loc = Loc::pkg(M, "stake", 0);
const ADD_STAKE: Loc = Loc::pkg(M, "add_stake", 1);
const REQUEST_UNSTAKE: Loc = Loc::pkg(M, "request_unstake", 2);
const WITHDRAW: Loc = Loc::pkg(M, "withdraw", 3);
const REVOKE_TOKENS: Loc = Loc::pkg(M, "revoke_tokens", 4);
const SETTLE_SLASH: Loc = Loc::pkg(M, "settle_slash", 5);
const CHECK_RECORD: Loc = Loc::pkg(M, "check_record", 18);
const SETTLE: Loc = Loc::pkg(M, "settle", 20);

pub(super) fn function(name: &str) -> Option<&'static Function> {
    use Kind::{Clock, Cluster as Cl, StakeRecord as Rec, SuiCoin};
    use Param::{Mut, Ref, String as Str, U8, Val};
    static STAKE_FN: Function = Function {
        params: &[Ref(Cl), Val(SuiCoin), U8, Str, Ref(Clock)],
        type_params: 0,
        handler: stake,
    };
    static ADD_STAKE_FN: Function = Function {
        params: &[Ref(Cl), Mut(Rec), Val(SuiCoin)],
        type_params: 0,
        handler: add_stake,
    };
    static REQUEST_UNSTAKE_FN: Function = Function {
        params: &[Ref(Cl), Mut(Rec), Ref(Clock)],
        type_params: 0,
        handler: request_unstake,
    };
    static WITHDRAW_FN: Function = Function {
        params: &[Mut(Cl), Val(Rec), Ref(Clock)],
        type_params: 0,
        handler: withdraw,
    };
    static REVOKE_TOKENS_FN: Function = Function {
        params: &[Ref(Cl), Mut(Rec)],
        type_params: 0,
        handler: revoke_tokens,
    };
    static SETTLE_SLASH_FN: Function = Function {
        params: &[Mut(Cl), Mut(Rec)],
        type_params: 0,
        handler: settle_slash,
    };
    use daas_chain_types::package as p;
    Some(match name {
        p::FN_STAKE => &STAKE_FN,
        p::FN_ADD_STAKE => &ADD_STAKE_FN,
        p::FN_REQUEST_UNSTAKE => &REQUEST_UNSTAKE_FN,
        p::FN_WITHDRAW => &WITHDRAW_FN,
        p::FN_REVOKE_TOKENS => &REVOKE_TOKENS_FN,
        p::FN_SETTLE_SLASH => &SETTLE_SLASH_FN,
        _ => return None,
    })
}

/// `check_record`: version guard, record of this cluster, sender is the owner.
fn check_record(
    package: &Package,
    cluster: &Cluster,
    record: &StakeRecord,
    sender: sui_sdk_types::Address,
) -> Result<(), Failure> {
    assert_version(package, cluster)?;
    if record.cluster_id != cluster.id {
        return Err(CHECK_RECORD.abort(package, AbortCode::WrongCluster.code()));
    }
    if record.owner != sender {
        return Err(CHECK_RECORD.abort(package, AbortCode::NotOwner.code()));
    }
    Ok(())
}

/// `is_record_slashed`.
fn is_record_slashed(rt: &Runtime<'_>, cluster: &Cluster, record: &StakeRecord) -> bool {
    record.status == consts::STATUS_SLASHED || is_slashed(rt, cluster, record.id)
}

/// `settle`: the whole balance goes to the treasury, status SLASHED, tokens revoked.
fn settle(
    ctx: &mut CallCtx<'_, '_>,
    cluster: &mut Cluster,
    record: &mut StakeRecord,
) -> Result<(), Failure> {
    let pkg = ctx.package;
    let amount = record.balance;
    record.balance = 0;
    deposit_to_treasury(SETTLE, &pkg, cluster, amount)?;
    record.status = consts::STATUS_SLASHED;
    record.token_epoch = record
        .token_epoch
        .checked_add(1)
        .ok_or_else(|| SETTLE.arithmetic(&pkg))?;
    ctx.emit(PackageEvent::SlashSettled(SlashSettled {
        cluster_id: record.cluster_id,
        record_id: record.id,
        owner: record.owner,
        amount,
    }))
}

/// `stake(cluster: &Cluster, coin: Coin<SUI>, role: u8, node_name: String, clock: &Clock, ctx)`.
fn stake(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cluster: Cluster = args.decode(0)?;
    let coin: Coin = args.decode(1)?;
    let role = args.u8(2)?;
    let node_name = args.string(3)?;
    assert_version(&pkg, &cluster)?;
    let min = min_stake(&pkg, &cluster, role)?;
    if consts::role_requires_grant(role) && !is_granted(ctx.rt, &cluster, ctx.sender, role)? {
        return Err(STAKE.abort(&pkg, AbortCode::NoGrant.code()));
    }
    let name_ok = if role == consts::ROLE_WORKER {
        consts::is_valid_dns_label(&node_name)
    } else {
        node_name.is_empty()
    };
    if !name_ok {
        return Err(STAKE.abort(&pkg, AbortCode::InvalidNodeName.code()));
    }
    let amount = coin.balance;
    if amount < min {
        return Err(STAKE.abort(&pkg, AbortCode::BelowMinimum.code()));
    }
    let now = ctx.now_ms;
    let id = ctx.rt.fresh_id();
    let record = StakeRecord {
        id,
        cluster_id: cluster.id,
        owner: ctx.sender,
        role,
        node_name: node_name.clone(),
        balance: amount,
        status: consts::STATUS_ACTIVE,
        token_epoch: 0,
        staked_at_ms: now,
        unbond_requested_at_ms: 0,
    };
    // `coin.into_balance()` deletes the coin's UID.
    ctx.rt.delete(coin.id);
    ctx.emit(PackageEvent::Staked(Staked {
        cluster_id: record.cluster_id,
        record_id: id,
        owner: record.owner,
        role,
        node_name,
        amount,
        staked_at_ms: now,
    }))?;
    let object = ObjVal::new(id, pkg.stake_record_type(), &record)?;
    ctx.rt.transfer(object, Owner::Address(ctx.sender));
    Ok(Vec::new())
}

/// `add_stake(cluster: &Cluster, record: &mut StakeRecord, coin: Coin<SUI>, ctx)`.
fn add_stake(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cluster: Cluster = args.decode(0)?;
    let mut record: StakeRecord = args.decode(1)?;
    let coin: Coin = args.decode(2)?;
    check_record(&pkg, &cluster, &record, ctx.sender)?;
    if is_record_slashed(ctx.rt, &cluster, &record) {
        return Err(ADD_STAKE.abort(&pkg, AbortCode::RecordSlashed.code()));
    }
    if record.status != consts::STATUS_ACTIVE {
        return Err(ADD_STAKE.abort(&pkg, AbortCode::NotActive.code()));
    }
    let amount = coin.balance;
    if amount == 0 {
        return Err(ADD_STAKE.abort(&pkg, AbortCode::ZeroStake.code()));
    }
    let new_total = record
        .balance
        .checked_add(amount)
        .ok_or_else(|| ADD_STAKE.arithmetic(&pkg))?;
    record.balance = new_total;
    ctx.rt.delete(coin.id);
    args.store(1, &record)?;
    ctx.emit(PackageEvent::StakeAdded(StakeAdded {
        cluster_id: record.cluster_id,
        record_id: record.id,
        owner: record.owner,
        amount,
        new_total,
    }))?;
    Ok(Vec::new())
}

/// `request_unstake(cluster: &Cluster, record: &mut StakeRecord, clock: &Clock, ctx)`.
fn request_unstake(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cluster: Cluster = args.decode(0)?;
    let mut record: StakeRecord = args.decode(1)?;
    check_record(&pkg, &cluster, &record, ctx.sender)?;
    if is_record_slashed(ctx.rt, &cluster, &record) {
        return Err(REQUEST_UNSTAKE.abort(&pkg, AbortCode::RecordSlashed.code()));
    }
    if record.status == consts::STATUS_UNBONDING {
        return Err(REQUEST_UNSTAKE.abort(&pkg, AbortCode::AlreadyUnbonding.code()));
    }
    let now = ctx.now_ms;
    record.status = consts::STATUS_UNBONDING;
    record.token_epoch = record
        .token_epoch
        .checked_add(1)
        .ok_or_else(|| REQUEST_UNSTAKE.arithmetic(&pkg))?;
    record.unbond_requested_at_ms = now;
    let withdrawable_at_ms = now
        .checked_add(cluster.unbonding_period_ms)
        .ok_or_else(|| REQUEST_UNSTAKE.arithmetic(&pkg))?;
    args.store(1, &record)?;
    ctx.emit(PackageEvent::UnstakeRequested(UnstakeRequested {
        cluster_id: record.cluster_id,
        record_id: record.id,
        owner: record.owner,
        token_epoch: record.token_epoch,
        requested_at_ms: now,
        withdrawable_at_ms,
    }))?;
    Ok(Vec::new())
}

/// `withdraw(cluster: &mut Cluster, record: StakeRecord, clock: &Clock, ctx): Coin<SUI>`.
fn withdraw(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let mut cluster: Cluster = args.decode(0)?;
    let mut record: StakeRecord = args.decode(1)?;
    check_record(&pkg, &cluster, &record, ctx.sender)?;
    let slashed = is_record_slashed(ctx.rt, &cluster, &record);
    if slashed {
        if record.status != consts::STATUS_SLASHED {
            settle(ctx, &mut cluster, &mut record)?;
        }
    } else {
        if record.status != consts::STATUS_UNBONDING {
            return Err(WITHDRAW.abort(&pkg, AbortCode::NotUnbonding.code()));
        }
        let withdrawable_at = record
            .unbond_requested_at_ms
            .checked_add(cluster.unbonding_period_ms)
            .ok_or_else(|| WITHDRAW.arithmetic(&pkg))?;
        if ctx.now_ms < withdrawable_at {
            return Err(WITHDRAW.abort(&pkg, AbortCode::UnbondingNotElapsed.code()));
        }
    }
    let record_id = record.id;
    ctx.rt.delete(record_id);
    clear_slashed(ctx.rt, &mut cluster, record_id);
    let amount = record.balance;
    ctx.emit(PackageEvent::Withdrawn(Withdrawn {
        cluster_id: record.cluster_id,
        record_id,
        owner: record.owner,
        amount,
        slashed,
    }))?;
    args.store(0, &cluster)?;
    let id = ctx.rt.fresh_id();
    let coin = ObjVal::new(
        id,
        StructTag::gas_coin(),
        &Coin {
            id,
            balance: amount,
        },
    )?;
    Ok(vec![Value::Object(coin)])
}

/// `revoke_tokens(cluster: &Cluster, record: &mut StakeRecord, ctx)`.
fn revoke_tokens(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let cluster: Cluster = args.decode(0)?;
    let mut record: StakeRecord = args.decode(1)?;
    check_record(&pkg, &cluster, &record, ctx.sender)?;
    record.token_epoch = record
        .token_epoch
        .checked_add(1)
        .ok_or_else(|| REVOKE_TOKENS.arithmetic(&pkg))?;
    args.store(1, &record)?;
    ctx.emit(PackageEvent::TokensRevoked(TokensRevoked {
        cluster_id: record.cluster_id,
        record_id: record.id,
        owner: record.owner,
        token_epoch: record.token_epoch,
    }))?;
    Ok(Vec::new())
}

/// `settle_slash(cluster: &mut Cluster, record: &mut StakeRecord)`.
fn settle_slash(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let mut cluster: Cluster = args.decode(0)?;
    let mut record: StakeRecord = args.decode(1)?;
    assert_version(&pkg, &cluster)?;
    if record.cluster_id != cluster.id {
        return Err(SETTLE_SLASH.abort(&pkg, AbortCode::WrongCluster.code()));
    }
    if !is_slashed(ctx.rt, &cluster, record.id) {
        return Err(SETTLE_SLASH.abort(&pkg, AbortCode::NotSlashed.code()));
    }
    if record.status == consts::STATUS_SLASHED {
        return Err(SETTLE_SLASH.abort(&pkg, AbortCode::AlreadySettled.code()));
    }
    settle(ctx, &mut cluster, &mut record)?;
    args.store(0, &cluster)?;
    args.store(1, &record)?;
    Ok(Vec::new())
}
