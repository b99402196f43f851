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
    /// Join this machine to the cluster as the worker of a stake record: verify the master,
    /// send a fresh worker Seal token to its join endpoint, and write the join material
    /// (bootstrap token, node password, CA, k3s agent config) under --state-dir.
    Join(JoinArgs),
    /// Join, then run and supervise `k3s agent` (or a plain kubelet with --kubelet) until
    /// SIGTERM/SIGINT; stops and removes the secrets when the stake is no longer active
    /// (exit code 3).
    Run(RunArgs),
    /// Cluster administration, for the holder of the cluster's AdminCap (its key: --keystore/--key).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// What runs on the worker (the `agent` of the join request).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AgentChoice {
    /// `k3s agent` (uses the K10 token and the node password).
    K3s,
    /// A plain kubelet with TLS bootstrap (uses the bootstrap kubeconfig).
    Kubelet,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct JoinArgs {
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Worker stake record id; may be omitted when you own exactly one record in the cluster.
    #[arg(long, env = "DAAS_STAKE")]
    pub(crate) stake: Option<Address>,
    /// The master's URL, `https://host[:port]` (port 8080 by default; default: the endpoint
    /// registered on chain).
    #[arg(long, env = "DAAS_MASTER")]
    pub(crate) master: Option<String>,
    /// Also trust this DEV attestation root (PEM). Development only: a dev master proves
    /// nothing.
    #[arg(long, env = "DAAS_DEV_ATTESTATION_ROOT", conflicts_with = "ca_file")]
    pub(crate) dev_root: Option<PathBuf>,
    /// Pin this CA (PEM) instead of checking the master's attestation: for masters without an
    /// enclave. Explicit, and warned about: nothing proves what runs behind it.
    #[arg(long, env = "DAAS_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// What will run on this machine: `k3s` (k3s agent) or `kubelet`.
    #[arg(long, value_enum, default_value = "k3s", env = "DAAS_AGENT")]
    pub(crate) agent: AgentChoice,
    /// Where the join material is written (created 0700).
    #[arg(long, env = "DAAS_STATE_DIR", default_value = "/var/lib/k3s-daas")]
    pub(crate) state_dir: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) join: JoinArgs,
    /// The k3s binary (default: $K3S_BIN, then `k3s` on PATH).
    #[arg(long)]
    pub(crate) k3s_bin: Option<PathBuf>,
    /// k3s's data directory, passed as `--data-dir` (default: k3s's own,
    /// /var/lib/rancher/k3s); its `agent/client-kubelet.crt` tells whether the node registered.
    #[arg(long, env = "DAAS_K3S_DATA_DIR")]
    pub(crate) k3s_data_dir: Option<PathBuf>,
    /// Where k3s agent reads the node password; the join's password is copied there before
    /// the first start (a different existing one is refused).
    #[arg(
        long,
        env = "DAAS_NODE_PASSWORD_FILE",
        default_value = "/etc/rancher/node/password"
    )]
    pub(crate) node_password_file: PathBuf,
    /// Run this kubelet (or a wrapper script) with the bootstrap kubeconfig instead of
    /// `k3s agent` (joins as `kubelet`).
    #[arg(long, env = "DAAS_KUBELET")]
    pub(crate) kubelet: Option<PathBuf>,
    /// An extra kubelet argument (repeatable), e.g. `--kubelet-arg=--fail-swap-on=false`.
    #[arg(long = "kubelet-arg", requires = "kubelet", allow_hyphen_values = true)]
    pub(crate) kubelet_args: Vec<String>,
    /// How long the agent may take to stop after SIGTERM before it gets SIGKILL.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "DAAS_STOP_GRACE")]
    pub(crate) stop_grace: Duration,
    /// How often the stake record is read from the chain while the agent runs.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "DAAS_STAKE_CHECK_INTERVAL")]
    pub(crate) stake_check_interval: Duration,
    /// First restart delay after the agent exits; it doubles up to --restart-backoff-max and
    /// starts again after 60 s of uptime.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) restart_backoff: Duration,
    /// Longest restart delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) restart_backoff_max: Duration,
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
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
        Command::Join(args) => crate::join::run(&cli.global, args),
        Command::Run(args) => crate::run::run(&cli.global, args),
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
