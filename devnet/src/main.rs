//! `k3s-daas-devnet`: the K3s-DaaS development chain (not Sui; does not run Move).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sui_sdk_types::Address;

use daas_devnet::{ClientConfig, Devnet, DevnetOptions, GenesisConfig, faucet};

const ABOUT: &str = "K3s-DaaS development chain. This is a development chain, NOT Sui: it does \
not run Move. It models the k3s_daas Move package natively in Rust and serves the subset of the \
Sui gRPC v2 API (and gRPC-Web) that K3s-DaaS uses, so sui_rpc::Client and the TypeScript \
SuiGrpcClient work against it unchanged.";

#[derive(Parser)]
#[command(name = "k3s-daas-devnet", version, about = ABOUT, long_about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a chain in an empty data directory: package, shared Cluster, AdminCap, Clock and
    /// funded accounts (without --genesis: generated admin and faucet keys), and client.json.
    Init {
        /// Data directory of the chain (created with mode 0700).
        #[arg(long, env = "DAAS_DEVNET_DATA_DIR")]
        data_dir: PathBuf,
        /// Genesis file (accounts, faucet funds, cluster parameters); see the crate docs.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Endpoint written to client.json (`start` rewrites it with the real address).
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        rpc: String,
    },
    /// Serve the chain (initialising the data directory on first start). Prints
    /// `listening on <addr>` as the first line of stdout.
    Start {
        /// Data directory of the chain (created with mode 0700).
        #[arg(long, env = "DAAS_DEVNET_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Genesis file, used only if the data directory holds no chain yet.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Seal an empty checkpoint after this many ms without one (0: never), so checkpoint
        /// subscriptions keep making progress.
        #[arg(long, default_value_t = 10_000)]
        heartbeat_ms: u64,
        /// DEV MODE: also trust this dev attestation root (PEM certificate) in
        /// load_nitro_attestation, besides the AWS Nitro root. Documents signed under it prove
        /// nothing about a TEE.
        #[arg(long, value_name = "FILE")]
        trust_dev_attestation_root: Option<PathBuf>,
    },
    /// Send SUI from the faucet key to an address with a signed transfer transaction.
    Faucet {
        /// Data directory of the chain (created with mode 0700).
        #[arg(long, env = "DAAS_DEVNET_DATA_DIR")]
        data_dir: PathBuf,
        /// Devnet endpoint (default: `rpc` of client.json).
        #[arg(long)]
        rpc: Option<String>,
        /// Recipient address.
        #[arg(long)]
        to: Address,
        /// Amount in SUI (`100`, `0.5`) or MIST (`250mist`).
        #[arg(long, default_value = "100")]
        amount: String,
    },
}

/// Exit codes: 0 success, 1 failure, 64 bad usage (as the other K3s-DaaS binaries).
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            genesis,
            rpc,
        } => {
            let config = load_genesis(genesis.as_deref())?;
            let client = daas_devnet::init(&data_dir, config, &rpc)?;
            println!("{}", serde_json::to_string_pretty(&client)?);
            Ok(())
        }
        Command::Start {
            data_dir,
            listen,
            genesis,
            heartbeat_ms,
            trust_dev_attestation_root,
        } => {
            let options = match &trust_dev_attestation_root {
                Some(path) => DevnetOptions::with_dev_root_file(path)
                    .with_context(|| format!("--trust-dev-attestation-root {}", path.display()))?,
                None => DevnetOptions::default(),
            };
            start(
                &data_dir,
                listen,
                genesis.as_deref(),
                heartbeat_ms,
                &options,
            )
            .await
        }
        Command::Faucet {
            data_dir,
            rpc,
            to,
            amount,
        } => faucet_cmd(&data_dir, rpc, to, &amount).await,
    }
}

fn load_genesis(path: Option<&Path>) -> Result<Option<GenesisConfig>> {
    path.map(|p| GenesisConfig::load(p).with_context(|| format!("genesis file {}", p.display())))
        .transpose()
}

async fn start(
    data_dir: &Path,
    listen: SocketAddr,
    genesis: Option<&Path>,
    heartbeat_ms: u64,
    options: &DevnetOptions,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("listener address")?;
    let rpc = format!("http://{addr}");
    if !data_dir.join(daas_devnet::SNAPSHOT_FILE).exists() {
        let config = load_genesis(genesis)?;
        daas_devnet::init(data_dir, config, &rpc)?;
    } else if genesis.is_some() {
        tracing::warn!("the data directory already holds a chain; --genesis is ignored");
    }
    let devnet = Devnet::open_with(data_dir, options)?;
    devnet.write_client_config(&rpc)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
    }
    tracing::info!(
        %addr,
        chain_id = devnet.chain_id(),
        checkpoint = devnet.checkpoint_height(),
        "k3s-daas-devnet serving (a development chain, not Sui)"
    );
    let heartbeat = (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms));
    devnet.serve(listener, heartbeat, shutdown_signal()).await?;
    tracing::info!("devnet stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}

async fn faucet_cmd(data_dir: &Path, rpc: Option<String>, to: Address, amount: &str) -> Result<()> {
    let amount = faucet::parse_amount(amount).map_err(anyhow::Error::msg)?;
    let config = ClientConfig::load(&ClientConfig::path(data_dir))?;
    let Some(keystore) = &config.faucet_keystore else {
        bail!("this devnet has no faucet key (genesis with \"faucet\": null)");
    };
    let keystore = daas_wallet::Keystore::load(keystore)?;
    let key = keystore.select(None)?;
    let rpc = rpc.unwrap_or(config.rpc);
    let mut client =
        sui_rpc::Client::new(rpc.as_str()).with_context(|| format!("invalid endpoint {rpc}"))?;
    let receipt = faucet::fund(&mut client, key, to, amount).await?;
    println!(
        "sent {} MIST to {to}: coin {} in transaction {}",
        receipt.amount, receipt.coin, receipt.digest
    );
    Ok(())
}
