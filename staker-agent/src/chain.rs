//! `staker-agent stake | add-stake | unstake | withdraw | revoke-tokens | status` and the
//! AdminCap holder's `admin grant | revoke-grant` (the enclave's `admin set-pcrs |
//! register-enclave` are in `enclave.rs`).
//!
//! Every command resolves the deployment (config file, `--rpc` preset or URL, id overrides),
//! checks the endpoint's chain id before signing anything, builds the transaction offline,
//! signs it with the selected wallet key, executes it and waits for its checkpoint. Data goes to
//! stdout (human text or `--json`), progress to stderr.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use daas_chain::effects::Executed;
use daas_chain::{Chain, ChainConfig, ChainError, GrpcChain, RecordObject, tx};
use daas_chain_types::{AbortCode, Cluster, PackageEvent, consts};
use daas_seal::{Address, Role};
use daas_wallet::WalletKey;
use serde_json::json;

use crate::amount;
use crate::cli::{AddStakeArgs, ChainArgs, ChainOnly, Global, GrantArgs, RecordArgs, StakeArgs};

pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

pub(crate) fn now_ms() -> u64 {
    daas_seal::unix_ms(SystemTime::now())
}

/// The deployment from `--chain-config`, `--rpc`, `--package`, `--cluster`.
fn deployment(args: &ChainArgs) -> daas_chain::Deployment {
    daas_chain::Deployment {
        rpc: args.rpc.clone(),
        chain_config: args.chain_config.clone(),
        package: args.package,
        cluster: args.cluster,
    }
}

/// A stake record that may be used now: the key's, in the configured cluster, active, not
/// slashed.
#[derive(Clone, Debug)]
pub(crate) struct UsableRecord {
    pub(crate) id: Address,
    pub(crate) role: Role,
    /// Empty unless a worker's.
    pub(crate) node_name: String,
    pub(crate) token_epoch: u64,
}

/// `--stake` (or the only record `owner` has in the cluster), after checking that it is
/// `owner`'s, in the configured cluster, active and not slashed.
pub(crate) async fn usable_record(
    chain: &GrpcChain,
    owner: Address,
    stake: Option<Address>,
) -> Result<UsableRecord> {
    let r = pick_record(chain, owner, stake).await?;
    let id = r.object.id;
    let r = r.record;
    let role = Role::from_code(r.role)
        .ok_or_else(|| anyhow!("stake record {id} has unknown role {}", r.role))?;
    let standing = standing_of(chain, id, Some(&r)).await?;
    if standing != Standing::Active {
        bail!(
            "stake record {id} is not active ({standing}): the control plane would refuse any token for it"
        );
    }
    Ok(UsableRecord {
        id,
        role,
        node_name: r.node_name,
        token_epoch: r.token_epoch,
    })
}

/// Where a stake record stands now, as far as the control plane is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    Active,
    Unbonding,
    Slashed,
    /// The record no longer exists.
    Withdrawn,
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Standing::Active => "active",
            Standing::Unbonding => "unbonding",
            Standing::Slashed => "slashed",
            Standing::Withdrawn => "withdrawn",
        })
    }
}

/// The standing of record `id` (read from the chain unless `record` is given): its status,
/// and the cluster's slashed table.
pub(crate) async fn standing_of(
    chain: &GrpcChain,
    id: Address,
    record: Option<&daas_chain_types::StakeRecord>,
) -> Result<Standing> {
    let fetched;
    let r = match record {
        Some(r) => r,
        None => match chain.stake_record(id).await?.value {
            Some(o) => {
                fetched = o.record;
                &fetched
            }
            None => return Ok(Standing::Withdrawn),
        },
    };
    match r.status {
        consts::STATUS_ACTIVE => {}
        consts::STATUS_UNBONDING => return Ok(Standing::Unbonding),
        consts::STATUS_SLASHED => return Ok(Standing::Slashed),
        other => bail!("stake record {id} has an unknown status {other}"),
    }
    let table = chain.cluster().await?.value.cluster.slashed.id;
    Ok(if chain.is_slashed(table, id).await?.value {
        Standing::Slashed
    } else {
        Standing::Active
    })
}

/// For `token mint --chain-config`: the record's role, node name and current token epoch, after
/// checking that it is `owner`'s, in the token's cluster, and active; explicit flags must agree.
pub(crate) fn record_for_token(
    args: &crate::cli::MintArgs,
    owner: Address,
) -> Result<(Role, Option<String>, u64)> {
    let chain_args = ChainArgs {
        rpc: args.rpc.clone(),
        chain_config: args.chain_config.clone(),
        package: None,
        cluster: Some(args.cluster),
    };
    block_on(async {
        let chain = connect(&chain_args).await?;
        let r = usable_record(&chain, owner, Some(args.stake)).await?;
        let role = r.role;
        let node = (!r.node_name.is_empty()).then_some(r.node_name);
        if let Some(given) = args.role
            && given != role
        {
            bail!("--role {given} disagrees with the record's role {role}");
        }
        if args.node_name.is_some() && args.node_name != node {
            bail!("--node-name disagrees with the record's node name");
        }
        if let Some(given) = args.epoch
            && given != r.token_epoch
        {
            bail!(
                "--epoch {given} is not the record's token epoch {} (a token for it would be refused)",
                r.token_epoch
            );
        }
        Ok((role, node, r.token_epoch))
    })
}

/// A checked connection: right chain, reachable.
pub(crate) async fn connect(args: &ChainArgs) -> Result<GrpcChain> {
    Ok(deployment(args).connect().await?)
}

pub(crate) fn key(global: &Global) -> Result<WalletKey> {
    let keystore = crate::wallet::load(global)?;
    crate::wallet::selected(global, &keystore)
}

/// Signs and executes with progress on stderr.
pub(crate) async fn submit(
    chain: &GrpcChain,
    key: &WalletKey,
    what: &str,
    tx: sui_sdk_types::Transaction,
) -> Result<Executed, ChainError> {
    eprintln!("{what}: submitting transaction {} …", tx.digest());
    let executed = chain.sign_and_execute(key.keypair(), tx).await?;
    match executed.checkpoint {
        Some(c) => eprintln!("{what}: done, in checkpoint {c}"),
        None => eprintln!("{what}: done"),
    }
    Ok(executed)
}

/// The record to act on: `--stake`, or the only record the key owns in the cluster.
async fn pick_record(
    chain: &GrpcChain,
    owner: Address,
    stake: Option<Address>,
) -> Result<RecordObject> {
    let cluster = chain.config().cluster;
    if let Some(id) = stake {
        let r = chain.stake_record(id).await?.value.ok_or_else(|| {
            anyhow!("stake record {id} does not exist (withdrawn, or a wrong id)")
        })?;
        if r.record.owner != owner {
            bail!(
                "stake record {id} is owned by {}, not by your key {owner}",
                r.record.owner
            );
        }
        if r.record.cluster_id != cluster {
            bail!(
                "stake record {id} belongs to cluster {}, not {cluster}",
                r.record.cluster_id
            );
        }
        return Ok(r);
    }
    let mut mine: Vec<_> = chain
        .stake_records_of(owner)
        .await?
        .into_iter()
        .filter(|r| r.record.cluster_id == cluster)
        .collect();
    match mine.len() {
        0 => bail!("{owner} has no stake record in cluster {cluster}; stake first"),
        1 => Ok(mine.remove(0)),
        _ => bail!(
            "{owner} has {} stake records in this cluster; pass --stake with one of: {}",
            mine.len(),
            mine.iter()
                .map(|r| r.object.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(crate) fn print(global: &Global, value: serde_json::Value, text: String) {
    if global.json() {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn in_duration(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms.div_ceil(1000))).to_string()
}

fn status_name(status: u8) -> &'static str {
    match status {
        consts::STATUS_ACTIVE => "active",
        consts::STATUS_UNBONDING => "unbonding",
        consts::STATUS_SLASHED => "slashed",
        _ => "unknown",
    }
}

fn role_name(role: u8) -> &'static str {
    Role::from_code(role).map_or("unknown", Role::as_str)
}

pub(crate) fn stake(global: &Global, args: StakeArgs) -> Result<()> {
    block_on(async {
        let key = key(global)?;
        let node_name = args.node_name.unwrap_or_default();
        match args.role {
            Role::Worker if !consts::is_valid_dns_label(&node_name) => bail!(
                "a worker needs --node-name: a DNS label of 1-63 lowercase letters, digits and '-'"
            ),
            Role::User | Role::Admin if !node_name.is_empty() => {
                bail!("--node-name is for workers only")
            }
            _ => {}
        }
        let chain = connect(&args.chain).await?;
        let cluster = chain.cluster().await?.value.cluster;
        if consts::role_requires_grant(args.role.code()) {
            let mask = grant_mask(&chain, &cluster, key.address()).await?;
            if !consts::mask_grants(mask, args.role.code()) {
                bail!(
                    "{me} holds no grant for the {role} role in cluster {id}: staking as worker or admin needs the cluster admin's consent. Ask the holder of the cluster's AdminCap to run:\n  staker-agent admin grant --account {me} --role {role} --chain-config <deployment file>",
                    me = key.address(),
                    role = args.role,
                    id = cluster.id,
                );
            }
        }
        let minimum = cluster.min_stake(args.role.code()).unwrap_or(u64::MAX);
        if args.amount < minimum {
            bail!(
                "{} is below the cluster's minimum for the {} role: stake at least {}",
                amount::format(args.amount),
                args.role,
                amount::format(minimum)
            );
        }
        let gas = chain.gas_for(key.address(), args.amount).await?;
        let t = tx::stake(
            chain.config(),
            &gas,
            args.amount,
            args.role.code(),
            &node_name,
        )?;
        let executed = submit(&chain, &key, "stake", t).await?;
        let record = event(&executed, "Staked", |e| match e {
            PackageEvent::Staked(s) => Some(s.record_id),
            _ => None,
        })?;
        print(
            global,
            json!({
                "record": record.to_string(), "role": args.role.as_str(), "node_name": node_name,
                "amount_mist": args.amount, "digest": executed.digest.to_string(), "checkpoint": executed.checkpoint,
            }),
            format!(
                "Staked {} as {}{}.\nstake record  {record}\ntransaction   {}",
                amount::format(args.amount),
                args.role,
                if node_name.is_empty() {
                    String::new()
                } else {
                    format!(" (node {node_name})")
                },
                executed.digest
            ),
        );
        Ok(())
    })
}

/// A transaction on one of the key's stake records (`--stake`, or the only one).
struct RecordTx {
    chain: GrpcChain,
    record: RecordObject,
    /// The execution, not yet `?`-ed, so callers can explain an abort in context.
    result: Result<Executed, ChainError>,
}

/// Picks the record, builds the transaction with `build` (gas covering `amount`), signs it and
/// executes it.
async fn on_record(
    global: &Global,
    args: &RecordArgs,
    what: &str,
    amount: u64,
    build: impl FnOnce(
        &ChainConfig,
        &tx::Gas,
        daas_chain::ObjectRef,
    ) -> Result<sui_sdk_types::Transaction, ChainError>,
) -> Result<RecordTx> {
    let key = key(global)?;
    let chain = connect(&args.chain).await?;
    let record = pick_record(&chain, key.address(), args.stake).await?;
    precheck(what, &record)?;
    let gas = chain.gas_for(key.address(), amount).await?;
    let t = build(chain.config(), &gas, record.object)?;
    let result = submit(&chain, &key, what, t).await;
    Ok(RecordTx {
        chain,
        record,
        result,
    })
}

/// Refuses, before any gas is spent, what the chain would certainly abort: withdrawing an
/// active record, unstaking twice, adding to a record that is not active. (The slashed table
/// and the unbonding time are left to the chain, which is the authority on both.)
fn precheck(what: &str, r: &RecordObject) -> Result<()> {
    let id = r.object.id;
    match (what, r.record.status) {
        ("withdraw", consts::STATUS_ACTIVE) => {
            bail!("record {id} is still active: run `staker-agent unstake` first")
        }
        ("unstake", consts::STATUS_UNBONDING) => {
            bail!(
                "an unstake was already requested for record {id}: withdraw after the unbonding period"
            )
        }
        ("unstake" | "add-stake", consts::STATUS_SLASHED) => bail!("record {id} was slashed"),
        ("add-stake", consts::STATUS_UNBONDING) => {
            bail!("record {id} is unbonding: stake can only be added to an active record")
        }
        _ => Ok(()),
    }
}

/// The first event `pick` accepts.
pub(crate) fn event<T>(
    executed: &Executed,
    name: &str,
    pick: impl Fn(&PackageEvent) -> Option<T>,
) -> Result<T> {
    executed
        .events
        .iter()
        .find_map(pick)
        .ok_or_else(|| anyhow!("the transaction emitted no {name} event"))
}

pub(crate) fn add_stake(global: &Global, args: AddStakeArgs) -> Result<()> {
    block_on(async {
        let amount = args.amount;
        let done = on_record(global, &args.record, "add-stake", amount, |c, g, r| {
            tx::add_stake(c, g, r, amount)
        })
        .await?;
        let executed = done.result?;
        let total = event(&executed, "StakeAdded", |e| match e {
            PackageEvent::StakeAdded(a) => Some(a.new_total),
            _ => None,
        })?;
        let id = done.record.object.id;
        print(
            global,
            json!({ "record": id.to_string(), "added_mist": amount, "total_mist": total, "digest": executed.digest.to_string() }),
            format!(
                "Added {} to {id}; now {}.",
                amount::format(amount),
                amount::format(total)
            ),
        );
        Ok(())
    })
}

pub(crate) fn unstake(global: &Global, args: RecordArgs) -> Result<()> {
    block_on(async {
        let done = on_record(global, &args, "unstake", 0, tx::request_unstake).await?;
        let executed = done.result?;
        let ev = event(&executed, "UnstakeRequested", |e| match e {
            PackageEvent::UnstakeRequested(u) => Some(u.clone()),
            _ => None,
        })?;
        let id = done.record.object.id;
        print(
            global,
            json!({ "record": id.to_string(), "token_epoch": ev.token_epoch, "withdrawable_at_ms": ev.withdrawable_at_ms, "digest": executed.digest.to_string() }),
            format!(
                "Unstake requested for {id}: its tokens stopped working (token epoch is now {}).\nWithdraw in {} (`staker-agent withdraw`).",
                ev.token_epoch,
                in_duration(ev.withdrawable_at_ms.saturating_sub(now_ms()))
            ),
        );
        Ok(())
    })
}

pub(crate) fn withdraw(global: &Global, args: RecordArgs) -> Result<()> {
    block_on(async {
        let done = on_record(global, &args, "withdraw", 0, tx::withdraw).await?;
        let id = done.record.object.id;
        let executed = match done.result {
            Err(ChainError::Aborted(a)) if a.known == Some(AbortCode::UnbondingNotElapsed) => {
                let period = done
                    .chain
                    .cluster()
                    .await?
                    .value
                    .cluster
                    .unbonding_period_ms;
                let at = done
                    .record
                    .record
                    .unbond_requested_at_ms
                    .saturating_add(period);
                bail!(
                    "unbonding not finished: withdrawable in about {} (the chain said: {a})",
                    in_duration(at.saturating_sub(now_ms()))
                );
            }
            Err(ChainError::Aborted(a)) if a.known == Some(AbortCode::NotUnbonding) => {
                bail!("record {id} is still active: run `staker-agent unstake` first")
            }
            other => other?,
        };
        let ev = event(&executed, "Withdrawn", |e| match e {
            PackageEvent::Withdrawn(w) => Some(w.clone()),
            _ => None,
        })?;
        print(
            global,
            json!({ "record": id.to_string(), "amount_mist": ev.amount, "slashed": ev.slashed, "digest": executed.digest.to_string() }),
            if ev.slashed {
                format!(
                    "Record {id} was slashed: its funds went to the cluster treasury; the record is deleted."
                )
            } else {
                format!(
                    "Withdrew {} from {id}; the record is deleted.",
                    amount::format(ev.amount)
                )
            },
        );
        Ok(())
    })
}

pub(crate) fn revoke_tokens(global: &Global, args: RecordArgs) -> Result<()> {
    block_on(async {
        let done = on_record(global, &args, "revoke-tokens", 0, tx::revoke_tokens).await?;
        let executed = done.result?;
        let epoch = event(&executed, "TokensRevoked", |e| match e {
            PackageEvent::TokensRevoked(t) => Some(t.token_epoch),
            _ => None,
        })?;
        let id = done.record.object.id;
        print(
            global,
            json!({ "record": id.to_string(), "token_epoch": epoch, "digest": executed.digest.to_string() }),
            format!(
                "Every token of {id} issued so far is revoked (token epoch is now {epoch}). New tokens: `staker-agent token mint --stake {id} --cluster … --chain-config …` reads the epoch from the chain."
            ),
        );
        Ok(())
    })
}

pub(crate) fn status(global: &Global, args: ChainOnly) -> Result<()> {
    block_on(async {
        let key = key(global)?;
        let chain = connect(&args.chain).await?;
        let cluster = chain.cluster().await?.value.cluster;
        let records = chain.stake_records_of(key.address()).await?;
        let balance: u64 = chain
            .sui_coins(key.address())
            .await?
            .iter()
            .map(|c| c.balance)
            .sum();
        let grants = granted_roles(grant_mask(&chain, &cluster, key.address()).await?);
        let now = now_ms();
        let mut rows = Vec::new();
        // The PCRs the chain expects, as the PCR file `pcrs.sh --compare` and `admin set-pcrs`
        // read (empty until the AdminCap holder set them).
        let expected_pcrs = json!({
            "PCR0": hex::encode(&cluster.expected_pcr0),
            "PCR1": hex::encode(&cluster.expected_pcr1),
            "PCR2": hex::encode(&cluster.expected_pcr2),
        });
        let pcr_line = |p: &[u8]| {
            if p.is_empty() {
                "not set".to_owned()
            } else {
                hex::encode(p)
            }
        };
        let mut text = format!(
            "address   {}\nbalance   {}\ncluster   {} ({})\ngrants    {}\nPCR0      {}\nPCR1      {}\nPCR2      {}\nenclave   {}\n",
            key.address(),
            amount::format(balance),
            cluster.id,
            cluster.name,
            if grants.is_empty() {
                "none (you may stake as user)".to_owned()
            } else {
                grants.join(", ")
            },
            pcr_line(&cluster.expected_pcr0),
            pcr_line(&cluster.expected_pcr1),
            pcr_line(&cluster.expected_pcr2),
            if cluster.enclave.is_some() {
                "registered"
            } else {
                "none registered"
            },
        );
        if records.is_empty() {
            text.push_str("no stake records");
        }
        for r in &records {
            let rec = &r.record;
            let slashed = rec.status == consts::STATUS_SLASHED
                || (rec.cluster_id == cluster.id
                    && chain
                        .is_slashed(cluster.slashed.id, r.object.id)
                        .await?
                        .value);
            let status = if slashed {
                "slashed"
            } else {
                status_name(rec.status)
            };
            let withdrawable_at = (!slashed)
                .then(|| rec.withdrawable_at_ms(cluster.unbonding_period_ms))
                .flatten();
            let left = withdrawable_at.map(|at| at.saturating_sub(now));
            rows.push(json!({
                "record": r.object.id.to_string(), "cluster": rec.cluster_id.to_string(),
                "role": role_name(rec.role), "node_name": rec.node_name, "amount_mist": rec.balance,
                "status": status, "token_epoch": rec.token_epoch, "staked_at_ms": rec.staked_at_ms,
                "withdrawable_at_ms": withdrawable_at, "unbonding_left_ms": left,
            }));
            text.push_str(&format!(
                "\nrecord    {}\n  role         {}{}\n  amount       {}\n  status       {}{}\n  token epoch  {}\n",
                r.object.id,
                role_name(rec.role),
                if rec.node_name.is_empty() { String::new() } else { format!(" (node {})", rec.node_name) },
                amount::format(rec.balance),
                status,
                match left {
                    Some(0) => " (withdrawable now)".to_owned(),
                    Some(ms) => format!(" (withdrawable in {})", in_duration(ms)),
                    None => String::new(),
                },
                rec.token_epoch,
            ));
        }
        print(
            global,
            json!({ "address": key.address().to_string(), "balance_mist": balance, "cluster": cluster.id.to_string(), "grants": grants, "expected_pcrs": expected_pcrs, "enclave_registered": cluster.enclave.is_some(), "records": rows }),
            text.trim_end().to_owned(),
        );
        Ok(())
    })
}

/// The grant mask (`Cluster.grants` entry) of `account`: 0 without any grant.
async fn grant_mask(chain: &GrpcChain, cluster: &Cluster, account: Address) -> Result<u8> {
    Ok(chain
        .role_grants(cluster.grants.id, account)
        .await
        .with_context(|| format!("reading the role grants of {account}"))?
        .value)
}

/// The roles a grant mask allows, by name (`worker`, `admin`).
fn granted_roles(mask: u8) -> Vec<&'static str> {
    [Role::Worker, Role::Admin]
        .into_iter()
        .filter(|r| consts::mask_grants(mask, r.code()))
        .map(Role::as_str)
        .collect()
}

/// The cluster's AdminCap (`--admin-cap`, or `admin_cap` of the config file), after checking
/// that `key` owns it and that it administers the configured cluster.
pub(crate) async fn held_admin_cap(
    chain: &GrpcChain,
    key: &WalletKey,
    admin_cap: Option<Address>,
) -> Result<daas_chain::AdminCapObject> {
    let cluster_id = chain.config().cluster;
    let cap_id = admin_cap.or(chain.config().admin_cap).ok_or_else(|| {
        anyhow!("no AdminCap id: pass --admin-cap, or a --chain-config file with \"admin_cap\"")
    })?;
    let cap = chain
        .admin_cap(cap_id)
        .await
        .with_context(|| format!("reading the AdminCap {cap_id}"))?;
    if cap.owner != key.address() {
        bail!(
            "AdminCap {cap_id} is owned by {}, not by your key {}: select the cap holder's key with --keystore/--key",
            cap.owner,
            key.address()
        );
    }
    if cap.cap.cluster_id != cluster_id {
        bail!(
            "AdminCap {cap_id} administers cluster {}, not {cluster_id}",
            cap.cap.cluster_id
        );
    }
    Ok(cap)
}

/// What `admin grant` and `admin revoke-grant` do to a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantChange {
    Grant,
    Revoke,
}

/// `admin grant` / `admin revoke-grant`: checks, before anything is signed, that the key holds
/// this cluster's AdminCap and that the account's grant is in the state the change needs (the
/// chain would abort otherwise, for gas), then calls `cluster::grant_role` / `revoke_role`.
pub(crate) fn grant(global: &Global, args: GrantArgs, change: GrantChange) -> Result<()> {
    let (what, verb) = match change {
        GrantChange::Grant => ("admin grant", "grant"),
        GrantChange::Revoke => ("admin revoke-grant", "revoke"),
    };
    block_on(async {
        let key = key(global)?;
        let chain = connect(&args.chain).await?;
        let cluster_id = chain.config().cluster;
        let cap = held_admin_cap(&chain, &key, args.admin_cap).await?;
        let cluster = chain.cluster().await?.value.cluster;
        let (account, role) = (args.account, args.role);
        let held = consts::mask_grants(grant_mask(&chain, &cluster, account).await?, role.code());
        match (change, held) {
            (GrantChange::Grant, true) => {
                bail!("{account} already holds the {role} grant in cluster {cluster_id}")
            }
            (GrantChange::Revoke, false) => {
                bail!("{account} holds no {role} grant in cluster {cluster_id}")
            }
            _ => {}
        }
        let gas = chain.gas_for(key.address(), 0).await?;
        let t = match change {
            GrantChange::Grant => {
                tx::grant_role(chain.config(), &gas, cap.object, account, role.code())?
            }
            GrantChange::Revoke => {
                tx::revoke_role(chain.config(), &gas, cap.object, account, role.code())?
            }
        };
        let executed = submit(&chain, &key, what, t).await?;
        let confirmed = event(&executed, "RoleGranted or RoleRevoked", |e| {
            match (change, e) {
                (GrantChange::Grant, PackageEvent::RoleGranted(g)) => Some((g.account, g.role)),
                (GrantChange::Revoke, PackageEvent::RoleRevoked(r)) => Some((r.account, r.role)),
                _ => None,
            }
        })?;
        if confirmed != (account, role.code()) {
            bail!("the transaction's event names another account or role than requested");
        }
        print(
            global,
            json!({
                "account": account.to_string(), "role": role.as_str(), "change": verb,
                "cluster": cluster_id.to_string(), "digest": executed.digest.to_string(),
                "checkpoint": executed.checkpoint,
            }),
            match change {
                GrantChange::Grant => format!(
                    "Granted the {role} role to {account} in cluster {cluster_id}: it may now stake as {role} (`staker-agent stake --role {role}`).\ntransaction   {}",
                    executed.digest
                ),
                GrantChange::Revoke => format!(
                    "Revoked the {role} grant of {account} in cluster {cluster_id}: it can no longer stake as {role}. Its existing {role} records stay on chain until their owner unstakes and withdraws them; the control plane refuses them.\ntransaction   {}",
                    executed.digest
                ),
            },
        );
        Ok(())
    })
}
