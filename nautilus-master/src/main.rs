//! `nautilus-master`: parse, configure, run. Logs go to stderr, data to stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

/// The K3s-DaaS control plane (runs inside the Nitro Enclave; `dev` runs everything locally).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "plain",
        env = "DAAS_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set up and self-check a local development control plane under a data directory.
    ///
    /// Creates (or reuses) a dev Sui wallet, a dev cluster id and a dev admin stake, then runs the
    /// Seal authentication path end to end. The devnet chain, etcd shim, kubectl proxy and k3s
    /// supervision join this command as they land.
    Dev {
        /// Data directory (created with mode 0700).
        #[arg(long, default_value = ".daas-dev", env = "DAAS_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Serve the encrypting etcd v3 API (what kube-apiserver / K3s `--datastore-endpoint` use).
    EtcdShim(Box<cli::etcd_shim::EtcdShimArgs>),
    /// Manage the etcd value-encryption key ring (init, rotate, retire, status, rewrap).
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
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
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAAS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Dev { data_dir } => {
            let report = runtime.block_on(nautilus_master::dev::run(&data_dir))?;
            print_dev_report(&data_dir, &report);
        }
        Command::EtcdShim(args) => runtime.block_on(cli::etcd_shim::run(*args))?,
        Command::Keys { command } => runtime.block_on(cli::keys::run(command))?,
    }
    Ok(())
}

fn print_dev_report(data_dir: &std::path::Path, r: &nautilus_master::dev::DevReport) {
    let ks = r.keystore.display();
    println!("K3s-DaaS dev control plane — {}", data_dir.display());
    println!();
    println!(
        "  dev wallet    {} (ed25519, keystore {ks}, mode 0600)",
        r.address
    );
    println!("  cluster id    {}", r.cluster);
    println!(
        "  dev stake     {} (admin, 10 SUI, in-memory stake view)",
        r.stake
    );
    println!();
    println!("Authentication self-check (real Seal token path):");
    println!(
        "  minted an admin token, authenticated as {} {:?}",
        r.username, r.groups
    );
    println!(
        "  revoked it by token-epoch bump: refused with \"{}\"",
        r.revoked_refusal
    );
    println!();
    println!("Encrypting etcd shim self-check (real shim, embedded store):");
    println!(
        "  key ring {} (active key {}), store {}",
        r.keyring.display(),
        r.active_key,
        r.etcd_dir.display()
    );
    println!(
        "  wrote and read back a value at revision {}; the store file holds only ciphertext",
        r.etcd_revision
    );
    println!();
    println!(
        "Not running yet (they land with their issues): local devnet chain (#7), kubectl proxy on"
    );
    println!(":8080 and k3s supervision (#5). Nothing is left listening.");
    println!();
    println!("Next:");
    println!(
        "  nautilus-master etcd-shim --keyring {} --backend embedded:{}    (etcd on 127.0.0.1:2379)",
        r.keyring.display(),
        r.etcd_dir.display()
    );
    println!("  staker-agent --keystore {ks} wallet list");
    println!(
        "  staker-agent --keystore {ks} token mint --cluster {} --stake {} --role admin --ttl 15m --epoch 1",
        r.cluster, r.stake
    );
    println!(
        "  staker-agent token inspect < token.txt     (reads stdin: keeps the token out of ps and history)"
    );
}
