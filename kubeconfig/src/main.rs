//! `kubeconfig`: kubectl credentials for K3s-DaaS. Exit codes: 0 ok, 1 failure, 64 bad usage.
//!
//! Use as an exec credential plugin in a kubeconfig user entry:
//! ```yaml
//! users:
//! - name: me
//!   user:
//!     exec:
//!       apiVersion: client.authentication.k8s.io/v1
//!       command: kubeconfig
//!       args: [credential, --cluster, 0x…, --stake, 0x…, --role, user]
//!       interactiveMode: Never
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use daas_kubeconfig::{CredentialRequest, exec_credential};
use daas_seal::{Address, NodeName, Role};
use daas_wallet::{Keystore, default_keystore_path};

/// kubectl credentials for K3s-DaaS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Exec credential plugin: mint a short-lived Seal token and print an ExecCredential.
    Credential {
        /// Sui keystore file (default: the Sui CLI's).
        #[arg(long, env = "DAAS_KEYSTORE")]
        keystore: Option<PathBuf>,
        /// Key address or alias, never the private key (required if the keystore has several keys).
        #[arg(long, env = "DAAS_KEY_IDENTITY", hide_env_values = true)]
        key: Option<String>,
        /// On-chain Cluster object id.
        #[arg(long, env = "DAAS_CLUSTER")]
        cluster: Address,
        /// Your stake record's object id.
        #[arg(long, env = "DAAS_STAKE")]
        stake: Address,
        /// Role of the stake record.
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
        /// Node name (worker stakes only).
        #[arg(long)]
        node_name: Option<String>,
        /// The stake record's current token_epoch.
        #[arg(long, default_value_t = 0, env = "DAAS_TOKEN_EPOCH")]
        epoch: u64,
        /// Token lifetime (kubectl re-runs the plugin when it expires); at most 1h.
        #[arg(long, default_value = "10m", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: daas_seal::ClaimsError| e.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err("between 1s and 1h: exec credentials are meant to be short-lived".into());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubeconfig: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Credential {
            keystore,
            key,
            cluster,
            stake,
            role,
            node_name,
            epoch,
            ttl,
        } => {
            let path = match keystore {
                Some(p) => p,
                None => default_keystore_path()?,
            };
            let ks = Keystore::load(&path)
                .with_context(|| format!("loading keystore {}", path.display()))?;
            if let Some(mode) = ks.exposed_mode() {
                eprintln!(
                    "kubeconfig: warning: {} has mode {mode:o}; other users may read your key (chmod 600)",
                    path.display()
                );
            }
            let wallet_key = ks.select(key.as_deref())?;
            let request = CredentialRequest {
                cluster,
                stake,
                role,
                node_name: node_name.map(NodeName::new).transpose()?,
                token_epoch: epoch,
                ttl,
            };
            let cred = exec_credential(wallet_key, &request, SystemTime::now())?;
            println!("{}", serde_json::to_string(&cred)?);
        }
    }
    Ok(())
}
