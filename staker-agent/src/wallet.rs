//! `staker-agent wallet …`

use anyhow::{Context, Result};
use daas_wallet::{Keystore, WalletKey, default_keystore_path};
use serde_json::json;

use crate::cli::{Global, WalletCommand};

pub(crate) fn load(global: &Global) -> Result<Keystore> {
    let path = match &global.keystore {
        Some(p) => p.clone(),
        None => default_keystore_path()?,
    };
    Keystore::load(&path).with_context(|| format!("loading keystore {}", path.display()))
}

pub(crate) fn selected(global: &Global, keystore: &Keystore) -> Result<WalletKey> {
    Ok(keystore.select(global.key.as_deref())?.clone())
}

fn describe(k: &WalletKey) -> serde_json::Value {
    json!({
        "address": k.address().to_string(),
        "scheme": k.scheme().as_str(),
        "alias": k.alias(),
        "public_key_base64": k.public_key_base64(),
    })
}

pub(crate) fn run(global: &Global, cmd: WalletCommand) -> Result<()> {
    let keystore = load(global)?;
    match cmd {
        WalletCommand::List => {
            if global.json() {
                let keys: Vec<_> = keystore.keys().iter().map(describe).collect();
                println!("{}", json!({ "keystore": keystore.path(), "keys": keys }));
            } else {
                for k in keystore.keys() {
                    println!(
                        "{}  {:<9}  {}",
                        k.address(),
                        k.scheme(),
                        k.alias().unwrap_or("-")
                    );
                }
            }
        }
        WalletCommand::Show => {
            let k = selected(global, &keystore)?;
            if global.json() {
                println!("{}", describe(&k));
            } else {
                println!("address     {}", k.address());
                println!("scheme      {}", k.scheme());
                println!("alias       {}", k.alias().unwrap_or("-"));
                println!("public key  {}", k.public_key_base64());
            }
        }
    }
    Ok(())
}
