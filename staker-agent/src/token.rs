//! `staker-agent token …`

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use daas_seal::{Address, Claims, NodeName, Role, SealToken, TimeRules};
use daas_wallet::WalletKey;
use serde_json::json;

use crate::cli::{Global, MintArgs};

fn now_ms() -> u64 {
    daas_seal::unix_ms(SystemTime::now())
}

/// Latest instant humantime formats (9999-12-31T23:59:59Z); token times are untrusted input.
const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

pub(crate) fn rfc3339(ms: u64) -> String {
    match UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)) {
        Some(t) if ms <= MAX_RFC3339_MS => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{ms} ms after the Unix epoch (beyond year 9999)"),
    }
}

/// What a Seal token is minted for (the signer is the key).
pub(crate) struct Minting<'a> {
    pub(crate) cluster: Address,
    pub(crate) stake: Address,
    pub(crate) role: Role,
    pub(crate) node_name: Option<&'a str>,
    pub(crate) token_epoch: u64,
    pub(crate) ttl_ms: u64,
}

/// Mints a fresh token (random nonce, issued now) with `key`: `token mint` and `join` (one
/// fresh worker token per join call) both mint here.
pub(crate) fn mint_for(key: &WalletKey, m: &Minting<'_>) -> Result<SealToken> {
    let mut builder = Claims::builder(m.cluster, key.address(), m.stake, m.role)
        .lifetime(now_ms(), m.ttl_ms)
        .token_epoch(m.token_epoch)
        .random_nonce();
    if let Some(name) = m.node_name {
        builder = builder.node_name(NodeName::new(name)?);
    }
    Ok(daas_seal::mint(key.keypair(), builder.build()?)?)
}

pub(crate) fn mint(global: &Global, args: MintArgs) -> Result<()> {
    let keystore = crate::wallet::load(global)?;
    let key = crate::wallet::selected(global, &keystore)?;
    let ttl_ms = u64::try_from(args.ttl.as_millis()).context("ttl out of range")?;
    let (role, node_name, epoch) = if args.chain_config.is_some() || args.rpc.is_some() {
        crate::chain::record_for_token(&args, key.address())?
    } else {
        let role = args
            .role
            .context("--role is required (or pass --chain-config to read it from the chain)")?;
        (role, args.node_name, args.epoch.unwrap_or(0))
    };
    let token = mint_for(
        &key,
        &Minting {
            cluster: args.cluster,
            stake: args.stake,
            role,
            node_name: node_name.as_deref(),
            token_epoch: epoch,
            ttl_ms,
        },
    )?;
    let c = token.claims();
    if global.json() {
        println!(
            "{}",
            json!({ "token": token.as_str(), "expires_at": rfc3339(c.expires_at_ms), "signer": c.signer.to_string() })
        );
    } else {
        eprintln!(
            "Seal token for {} ({}), expires {}",
            c.signer,
            c.role,
            rfc3339(c.expires_at_ms)
        );
        println!("{}", token.as_str());
    }
    Ok(())
}

pub(crate) fn inspect(global: &Global, token: Option<String>) -> Result<()> {
    let text = match token.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .take(daas_seal::MAX_TOKEN_LEN as u64 + 2)
                .read_to_string(&mut s)
                .context("reading the token from stdin")?;
            s.trim().to_owned()
        }
        Some(t) => t.to_owned(),
    };
    let token = SealToken::parse(&text).context("not a valid Seal token")?;
    let c = token.claims();
    let signature = match token.verify_signature() {
        Ok(()) => "valid".to_owned(),
        Err(e) => format!("INVALID: {e}"),
    };
    let now = now_ms();
    let rules = TimeRules::default();
    // The verdict the master would reach on time and shape (audience taken from the token).
    let time = match c.check(now, &c.cluster, &rules) {
        Ok(()) => format!(
            "valid for {}",
            humantime::format_duration(std::time::Duration::from_secs(
                c.expires_at_ms.saturating_sub(now) / 1000
            ))
        ),
        Err(e) => e.to_string(),
    };
    if global.json() {
        println!(
            "{}",
            json!({
                "cluster": c.cluster.to_string(), "signer": c.signer.to_string(), "stake": c.stake.to_string(),
                "role": c.role.as_str(), "node_name": c.node_name.as_ref().map(|n| n.as_str()),
                "issued_at": rfc3339(c.issued_at_ms), "expires_at": rfc3339(c.expires_at_ms),
                "token_epoch": c.token_epoch, "nonce": hex::encode(c.nonce),
                "scheme": token.scheme_name(), "signature": signature, "time": time,
            })
        );
    } else {
        println!("cluster      {}", c.cluster);
        println!("signer       {}", c.signer);
        println!("stake        {}", c.stake);
        println!("role         {}", c.role);
        println!(
            "node name    {}",
            c.node_name.as_ref().map_or("-", |n| n.as_str())
        );
        println!("issued at    {}", rfc3339(c.issued_at_ms));
        println!("expires at   {}", rfc3339(c.expires_at_ms));
        println!("token epoch  {}", c.token_epoch);
        println!("scheme       {}", token.scheme_name());
        println!("signature    {signature}");
        println!("time         {time}");
        println!("(on-chain checks — stake exists, active, epoch — are made by the master)");
    }
    if token.verify_signature().is_err() {
        bail!("the token's signature does not verify");
    }
    Ok(())
}
