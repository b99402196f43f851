//! Command-line surface. Every flag has an environment variable `DAAS_…`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use daas_seal::{Address, Role};

/// Stake SUI, mint Seal tokens and run a K3s-DaaS worker.
///
/// Keys come from the Sui CLI keystore (default: $SUI_CONFIG_DIR/sui.keystore or
/// ~/.sui/sui_config/sui.keystore). Private keys are never printed.
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Debug)]
pub(crate) struct Global {
    /// Sui keystore file.
    #[arg(long, global = true, env = "DAAS_KEYSTORE")]
    pub(crate) keystore: Option<PathBuf>,
    /// Which key to use: its address (0x…) or its alias from sui.aliases (never the private key
    /// itself). Required when the keystore holds more than one key.
    #[arg(long, global = true, env = "DAAS_KEY_IDENTITY", hide_env_values = true)]
    pub(crate) key: Option<String>,
    /// Output format on stdout.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "plain",
        env = "DAAS_OUTPUT"
    )]
    pub(crate) output: Output,
    /// Shorthand for `--output json`.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Global {
    pub(crate) fn json(&self) -> bool {
        self.json || self.output == Output::Json
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Plain,
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Inspect the wallet keys in the keystore.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Mint and inspect Seal tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Stake SUI for a role in the cluster (creates a stake record you own).
    Stake(StakeArgs),
    /// Add SUI to one of your active stake records.
    AddStake(AddStakeArgs),
    /// Request an unstake: tokens stop working at once; withdraw after the unbonding period.
    Unstake(RecordArgs),
    /// Withdraw an unbonded (or slashed) record: returns the funds (none if slashed) and deletes it.
    Withdraw(RecordArgs),
    /// Invalidate every Seal token issued for a record so far (bumps its token epoch).
    RevokeTokens(RecordArgs),
    /// Show your stake records: amount, status, token epoch, unbonding time left.
    Status(ChainOnly),
    /// Check the cluster's master before trusting it: a fresh attestation for a random nonce,
    /// signed under the AWS Nitro root, PCRs equal to the cluster's expected PCRs on chain, its
    /// CA the one registered on chain and the one its TLS certificate chains to.
    VerifyMaster(VerifyMasterArgs),
    /// Cluster administration, for the holder of the cluster's AdminCap (its key: --keystore/--key).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Args, Debug)]
pub(crate) struct VerifyMasterArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// The master's URL (default: the endpoint registered on chain).
    #[arg(long, env = "DAAS_MASTER")]
    pub(crate) endpoint: Option<String>,
    /// Also trust this DEV attestation root (PEM; `nautilus-master dev` writes
    /// <data-dir>/tee/dev-root.pem). Development only: a dev master proves nothing.
    #[arg(long, env = "DAAS_DEV_ATTESTATION_ROOT")]
    pub(crate) dev_root: Option<PathBuf>,
    /// Write the verified CA certificate (PEM) here.
    #[arg(long)]
    pub(crate) ca_out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// Allow an account to stake for a privileged role (worker or admin; users need no grant).
    Grant(GrantArgs),
    /// Withdraw an account's grant for a role. It can no longer stake for that role; its existing
    /// records of that role stay on chain (the control plane refuses them) until their owner
    /// unstakes and withdraws them.
    RevokeGrant(GrantArgs),
    /// Set the expected PCR0/1/2 of the approved enclave image (this clears the registered
    /// enclave, which must register again). All-zero (debug-mode) values are refused.
    SetPcrs(SetPcrsArgs),
    /// Register the cluster's enclave on chain from its Nitro attestation document, as the
    /// cluster's enclave operator (load_nitro_attestation + enclave::register_enclave in one
    /// transaction). The document is checked here first (PCRs, debug mode, user_data binding,
    /// age) so that a registration the chain would refuse costs no gas.
    RegisterEnclave(RegisterEnclaveArgs),
}

#[derive(Args, Debug)]
pub(crate) struct SetPcrsArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// JSON file with the PCRs as hex: `{"PCR0": "…", "PCR1": "…", "PCR2": "…"}`, or the output
    /// of `nitro-cli build-enclave` / `describe-eif` (`{"Measurements": {"PCR0": …}}`).
    #[arg(long)]
    pub(crate) pcrs: PathBuf,
    /// The cluster's AdminCap object id (default: `admin_cap` of the --chain-config file).
    #[arg(long, env = "DAAS_ADMIN_CAP")]
    pub(crate) admin_cap: Option<Address>,
}

#[derive(Args, Debug)]
pub(crate) struct RegisterEnclaveArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// The attestation document: the raw COSE_Sign1 bytes, or the same bytes as hex text.
    #[arg(long, conflicts_with = "master", required_unless_present = "master")]
    pub(crate) document: Option<PathBuf>,
    /// Fetch a fresh document from the running master instead (`GET /attestation` at this
    /// URL); the endpoint registered is the one the document binds.
    #[arg(long)]
    pub(crate) master: Option<String>,
    /// The endpoint the enclave serves at; must equal the endpoint in the document's user_data
    /// (default with --master: the endpoint the document binds).
    #[arg(long, required_unless_present = "master")]
    pub(crate) endpoint: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// The account (0x…) whose grant changes.
    #[arg(long)]
    pub(crate) account: Address,
    /// worker or admin.
    #[arg(long, value_parser = parse_grantable_role)]
    pub(crate) role: Role,
    /// The cluster's AdminCap object id (default: `admin_cap` of the --chain-config file).
    #[arg(long, env = "DAAS_ADMIN_CAP")]
    pub(crate) admin_cap: Option<Address>,
}

/// Where the chain is and which deployment on it.
#[derive(Args, Debug, Clone)]
pub(crate) struct ChainArgs {
    /// gRPC endpoint: a URL, or `devnet` (local development chain, http://127.0.0.1:9000),
    /// `testnet`, `mainnet`. Overrides the config file's `rpc`.
    #[arg(long, env = "DAAS_RPC")]
    pub(crate) rpc: Option<String>,
    /// Deployment file (JSON: rpc, chain_id, package, cluster, cluster_initial_shared_version);
    /// `k3s-daas-devnet` writes one to <data-dir>/client.json.
    #[arg(long = "chain-config", env = "DAAS_CHAIN_CONFIG")]
    pub(crate) chain_config: Option<PathBuf>,
    /// Package id (overrides the config file).
    #[arg(long, env = "DAAS_PACKAGE")]
    pub(crate) package: Option<Address>,
    /// Cluster object id (overrides the config file).
    #[arg(long, env = "DAAS_CLUSTER")]
    pub(crate) cluster: Option<Address>,
}

#[derive(Args, Debug)]
pub(crate) struct ChainOnly {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
}

#[derive(Args, Debug)]
pub(crate) struct StakeArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Amount: SUI by default (`1.5`, `2SUI`) or MIST with a suffix (`1500000000mist`).
    #[arg(long, value_parser = crate::amount::parse)]
    pub(crate) amount: u64,
    /// worker, user or admin. Worker and admin need the cluster admin's grant for your address
    /// (`staker-agent admin grant`); checked before anything is signed.
    #[arg(long, value_parser = parse_role)]
    pub(crate) role: Role,
    /// Kubernetes node name (workers only; a DNS label).
    #[arg(long)]
    pub(crate) node_name: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct AddStakeArgs {
    #[command(flatten)]
    pub(crate) record: RecordArgs,
    /// Amount to add: SUI by default or MIST with a `mist` suffix.
    #[arg(long, value_parser = crate::amount::parse)]
    pub(crate) amount: u64,
}

#[derive(Args, Debug)]
pub(crate) struct RecordArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Stake record id; may be omitted when you own exactly one record in the cluster.
    #[arg(long, env = "DAAS_STAKE")]
    pub(crate) stake: Option<Address>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum WalletCommand {
    /// List every key: address, scheme, alias.
    List,
    /// Show the selected key (--key, or the only key): address, scheme, alias, public key.
    Show,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Mint a Seal token for a stake record and print it on stdout.
    Mint(MintArgs),
    /// Decode a token and check its signature, without any secret. Reads stdin if TOKEN is
    /// omitted or `-` (keeps the token out of shell history and `ps`).
    Inspect { token: Option<String> },
}

#[derive(Args, Debug)]
pub(crate) struct MintArgs {
    /// Object id of your stake record.
    #[arg(long, env = "DAAS_STAKE")]
    pub(crate) stake: Address,
    /// Role of the stake record: worker, user or admin (read from the chain with
    /// --chain-config/--rpc; required otherwise).
    #[arg(long, value_parser = parse_role)]
    pub(crate) role: Option<Role>,
    /// Lifetime, e.g. 15m, 1h (at most 24h, the verifier's default maximum).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub(crate) ttl: Duration,
    /// Object id of the on-chain Cluster (the token's audience).
    #[arg(long, env = "DAAS_CLUSTER")]
    pub(crate) cluster: Address,
    /// Kubernetes node name (workers only; a DNS label; read from the chain when connected).
    #[arg(long, env = "DAAS_NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// The stake record's current token_epoch (revoking bumps it on chain). Read from the chain
    /// with --chain-config/--rpc; 0 otherwise.
    #[arg(long)]
    pub(crate) epoch: Option<u64>,
    /// Read role, node name and token epoch from the stake record on chain, and refuse to mint
    /// for a record that is not yours, not in --cluster, or not active.
    #[arg(long = "chain-config", env = "DAAS_CHAIN_CONFIG")]
    pub(crate) chain_config: Option<PathBuf>,
    /// gRPC endpoint or preset (devnet, testnet, mainnet) for the chain lookup.
    #[arg(long, env = "DAAS_RPC")]
    pub(crate) rpc: Option<String>,
}

pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: daas_seal::ClaimsError| e.to_string())
}

fn parse_grantable_role(s: &str) -> Result<Role, String> {
    match parse_role(s)? {
        Role::User => Err("users need no grant: only worker and admin are granted".into()),
        role => Ok(role),
    }
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("the lifetime must be positive".into());
    }
    if d > MAX_TTL {
        return Err("at most 24h: verifiers refuse longer lifetimes by default".into());
    }
    Ok(d)
}

pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Wallet(cmd) => crate::wallet::run(&cli.global, cmd),
        Command::Token(TokenCommand::Mint(args)) => crate::token::mint(&cli.global, args),
        Command::Stake(args) => crate::chain::stake(&cli.global, args),
        Command::AddStake(args) => crate::chain::add_stake(&cli.global, args),
        Command::Unstake(args) => crate::chain::unstake(&cli.global, args),
        Command::Withdraw(args) => crate::chain::withdraw(&cli.global, args),
        Command::RevokeTokens(args) => crate::chain::revoke_tokens(&cli.global, args),
        Command::Status(args) => crate::chain::status(&cli.global, args),
        Command::VerifyMaster(args) => crate::master::run(&cli.global, args),
        Command::Admin(AdminCommand::Grant(args)) => {
            crate::chain::grant(&cli.global, args, crate::chain::GrantChange::Grant)
        }
        Command::Admin(AdminCommand::RevokeGrant(args)) => {
            crate::chain::grant(&cli.global, args, crate::chain::GrantChange::Revoke)
        }
        Command::Admin(AdminCommand::SetPcrs(args)) => crate::enclave::set_pcrs(&cli.global, args),
        Command::Admin(AdminCommand::RegisterEnclave(args)) => {
            crate::enclave::register(&cli.global, args)
        }
        Command::Token(TokenCommand::Inspect { token }) => {
            crate::token::inspect(&cli.global, token)
        }
    }
}
