//! `nautilus-master keys`: the etcd value-encryption key ring.
//!
//! File operations (`init`, `rotate`, `retire`) act on the key ring directory; `status`,
//! `reload` and `rewrap` also talk to a running shim through its `daas.shim.v1.KeyAdmin` API.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use daas_envelope::{KeyId, KeyProvider, KeyRingDir};
use daas_etcd_proto::admin::{
    KeyStatusRequest, ReloadRequest, RewrapRequest, key_admin_client::KeyAdminClient,
};
use tonic::transport::Channel;

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a key ring directory (mode 0700) with a first active key.
    Init {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
    },
    /// Generate a new active key; old keys stay readable. With --endpoint the running shim
    /// switches immediately (otherwise at its next periodic reload).
    Rotate {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
        /// The shim's URL (http://127.0.0.1:2379).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Delete an old key. Values still sealed under it become unreadable: run `rewrap` and check
    /// `status --scan` first.
    Retire {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
        #[arg(long)]
        key_id: KeyId,
        /// Retire even if the shim (--endpoint) still reports values under this key.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Show the key ring; with --endpoint the shim's live ring, with --scan also how many
    /// stored values each key seals.
    Status {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: Option<PathBuf>,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, requires = "endpoint")]
        scan: bool,
    },
    /// Ask the running shim to re-read its key ring now.
    Reload {
        #[arg(long)]
        endpoint: String,
    },
    /// Re-encrypt every value sealed under an old key with the active key (compare-and-swap
    /// writes through the running shim; each bumps the value's mod_revision).
    Rewrap {
        #[arg(long)]
        endpoint: String,
        /// Upper bound on re-encrypting writes per second.
        #[arg(long, default_value_t = 500)]
        max_writes_per_second: u32,
    },
}

async fn admin(endpoint: &str) -> Result<KeyAdminClient<Channel>> {
    let channel = Channel::from_shared(endpoint.to_string())
        .with_context(|| format!("bad endpoint {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the etcd shim at {endpoint}"))?;
    Ok(KeyAdminClient::new(channel))
}

pub(crate) async fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Init { keyring } => {
            let id = KeyRingDir::new(&keyring)
                .init()
                .with_context(|| format!("initialising key ring {}", keyring.display()))?;
            println!(
                "initialised key ring {} with active key {id}",
                keyring.display()
            );
        }
        KeysCommand::Rotate { keyring, endpoint } => {
            let id = KeyRingDir::new(&keyring).rotate()?;
            println!("active key is now {id}; older keys remain for reading");
            if let Some(endpoint) = endpoint {
                let r = admin(&endpoint)
                    .await?
                    .reload(ReloadRequest {})
                    .await?
                    .into_inner();
                println!("shim reloaded: active {}", r.active_key_id);
                if r.active_key_id != id.to_string() {
                    bail!(
                        "the shim at {endpoint} reports active key {} after reload, expected {id}: is it using this key ring?",
                        r.active_key_id
                    );
                }
            }
        }
        KeysCommand::Retire {
            keyring,
            key_id,
            force,
            endpoint,
        } => {
            if let Some(endpoint) = &endpoint {
                let status = admin(endpoint)
                    .await?
                    .status(KeyStatusRequest { scan: true })
                    .await?
                    .into_inner();
                let still = status
                    .counts
                    .iter()
                    .find(|c| c.key_id == key_id.to_string())
                    .map_or(0, |c| c.values);
                if still > 0 && !force {
                    bail!(
                        "{still} stored values are still sealed under {key_id}: run `keys rewrap` first (or --force to make them unreadable)"
                    );
                }
            } else if !force {
                bail!(
                    "give --endpoint so the shim can confirm no value still uses {key_id} (or --force)"
                );
            }
            KeyRingDir::new(&keyring).retire(key_id)?;
            println!("retired key {key_id}");
        }
        KeysCommand::Status {
            keyring,
            endpoint,
            scan,
        } => {
            if let Some(dir) = keyring {
                let provider = KeyRingDir::new(&dir);
                let ring = provider.load()?;
                println!("key ring {}", provider.describe());
                for id in ring.ids() {
                    let marker = if id == ring.active_id() {
                        " (active)"
                    } else {
                        ""
                    };
                    println!("  {id}{marker}");
                }
            }
            if let Some(endpoint) = endpoint {
                let s = admin(&endpoint)
                    .await?
                    .status(KeyStatusRequest { scan })
                    .await?
                    .into_inner();
                println!(
                    "shim {endpoint}: provider {}, active {}",
                    s.provider, s.active_key_id
                );
                println!("  loaded keys: {}", s.key_ids.join(", "));
                if scan {
                    println!("  scanned {} values at revision {}", s.scanned, s.revision);
                    for c in &s.counts {
                        let mut notes = Vec::new();
                        if c.active {
                            notes.push("active");
                        }
                        if !c.loaded {
                            notes.push("NOT LOADED: unreadable");
                        }
                        println!(
                            "  {:>10} values under {} {}",
                            c.values,
                            c.key_id,
                            notes.join(", ")
                        );
                    }
                    if s.unreadable > 0 {
                        println!(
                            "  {:>10} values are not envelopes (written around the shim?)",
                            s.unreadable
                        );
                    }
                }
            }
        }
        KeysCommand::Reload { endpoint } => {
            let r = admin(&endpoint)
                .await?
                .reload(ReloadRequest {})
                .await?
                .into_inner();
            println!(
                "active {}; loaded {}",
                r.active_key_id,
                r.key_ids.join(", ")
            );
        }
        KeysCommand::Rewrap {
            endpoint,
            max_writes_per_second,
        } => {
            let r = admin(&endpoint)
                .await?
                .rewrap(RewrapRequest {
                    page_size: 0,
                    max_writes_per_second,
                })
                .await?
                .into_inner();
            println!(
                "rewrap: scanned {}, re-encrypted {} under {}, skipped {} (changed meanwhile), {} not envelopes",
                r.scanned, r.rewrapped, r.active_key_id, r.conflicts, r.unreadable
            );
        }
    }
    Ok(())
}
