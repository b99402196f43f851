//! `kubeconfig`: kubectl access to K3s-DaaS. Exit codes: 0 ok, 1 failure, 64 bad usage.
//!
//! - `kubeconfig generate` writes a kubeconfig for the proxy (`https://HOST:8080`) with its
//!   certificate pinned, in one of two modes:
//!   `--exec --cluster 0x… --stake 0x… [--role user]` records an exec credential plugin entry
//!   that runs this binary, so kubectl gets a fresh short-lived Seal token whenever the last one
//!   expires; `--token-stdin` stores a bearer token read from stdin (never from argv, where `ps`
//!   would show it).
//! - `kubeconfig merge --from FILE [--into ~/.kube/config] [--set-current]` adds its entries to
//!   your kubeconfig; a same-named entry with different content is refused unless `--force`.
//! - `kubeconfig credential …` is the exec credential plugin itself: it prints a
//!   `client.authentication.k8s.io/v1` `ExecCredential`. A generated entry looks like:
//! ```yaml
//! users:
//! - name: k3s-daas
//!   user:
//!     exec:
//!       apiVersion: client.authentication.k8s.io/v1
//!       command: /usr/local/bin/kubeconfig
//!       args: [credential, --cluster, "0x…", --stake, "0x…", --role, user,
//!              --epoch, "0", --ttl, 15m]
//!       interactiveMode: Never
//!       provideClusterInfo: false
//! ```
//!
//! See `docs/kubeconfig.md`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};
use daas_kubeconfig::{
    CaBundle, CredentialRequest, ExecPlugin, GenerateSpec, MAX_EXEC_TTL, MergeOptions,
    MergeOutcome, SecretString, ServerUrl, UserCredential, exec_credential, generate,
    merge_into_file, parse_kubeconfig, read_kubeconfig, to_yaml, write_private,
};
use daas_seal::{Address, NodeName, Role};
use daas_wallet::{Keystore, default_keystore_path};
use zeroize::Zeroizing;

/// kubectl access to K3s-DaaS: kubeconfig files and the exec credential plugin.
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
    /// Write a kubeconfig for the K3s-DaaS proxy, with its TLS certificate pinned.
    Generate(Box<GenerateArgs>),
    /// Add the clusters, users and contexts of a generated kubeconfig to your kubeconfig.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").required(true).args(["token_stdin", "exec"])))]
#[command(group(ArgGroup::new("pin").required(true).args(["ca_file", "attested"])))]
struct GenerateArgs {
    /// The proxy's URL; https:// only (e.g. https://203.0.113.7:8080). With --attested the
    /// default is the endpoint registered on chain.
    #[arg(long, env = "DAAS_SERVER", value_parser = parse_server)]
    server: Option<ServerUrl>,
    /// PEM certificate to pin: the proxy CA (`<data-dir>/proxy/ca.crt`) or its certificate.
    #[arg(long, env = "DAAS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Pin the CA only after checking the master: a fresh attestation for a random nonce,
    /// signed under the AWS Nitro root, with the cluster's expected PCRs read from chain, its
    /// CA registered on chain and served over TLS. Needs the chain (--rpc/--chain-config) and
    /// --cluster.
    #[arg(long, requires = "cluster")]
    attested: bool,
    /// (attested) gRPC endpoint of a Sui full node: a URL or devnet|testnet|mainnet.
    #[arg(long, env = "DAAS_RPC")]
    rpc: Option<String>,
    /// (attested) Deployment file (JSON: rpc, chain_id, package, cluster, …).
    #[arg(long = "chain-config", env = "DAAS_CHAIN_CONFIG")]
    chain_config: Option<PathBuf>,
    /// (attested) The k3s_daas package id (default: from --chain-config).
    #[arg(long, env = "DAAS_PACKAGE")]
    package: Option<Address>,
    /// (attested) Also trust this DEV attestation root (PEM). Development only.
    #[arg(long, env = "DAAS_DEV_ATTESTATION_ROOT")]
    dev_root: Option<PathBuf>,
    /// Name of the cluster, user and context entries.
    #[arg(long, default_value = "k3s-daas", env = "DAAS_KUBECONFIG_NAME")]
    name: String,
    /// Default namespace of the context.
    #[arg(long, env = "DAAS_NAMESPACE")]
    namespace: Option<String>,
    /// Static token mode: read a bearer token from stdin and store it in the kubeconfig.
    #[arg(long)]
    token_stdin: bool,
    /// Exec mode: kubectl runs `kubeconfig credential` for a fresh short-lived Seal token.
    #[arg(long, requires_all = ["cluster", "stake"])]
    exec: bool,
    /// On-chain Cluster object id (exec and attested).
    #[arg(long, env = "DAAS_CLUSTER")]
    cluster: Option<Address>,
    /// (exec) Your stake record's object id.
    #[arg(long, env = "DAAS_STAKE")]
    stake: Option<Address>,
    /// (exec) Role of the stake record.
    #[arg(long, default_value = "user", value_parser = parse_role)]
    role: Role,
    /// (exec) Node name (worker stakes only).
    #[arg(long)]
    node_name: Option<String>,
    /// (exec) Sui keystore file (default: the Sui CLI's, looked up when kubectl runs the plugin).
    #[arg(long, env = "DAAS_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// (exec) Key address or alias, never the private key (needed if the keystore has several).
    #[arg(long, env = "DAAS_KEY_IDENTITY", hide_env_values = true)]
    key: Option<String>,
    /// (exec) Token lifetime; kubectl caches each token until it expires. At most 1h.
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    ttl: Duration,
    /// (exec) The stake record's current token_epoch.
    #[arg(long, default_value_t = 0, env = "DAAS_TOKEN_EPOCH")]
    epoch: u64,
    /// Output file (written 0600), or - for stdout.
    #[arg(short = 'o', long, default_value = "-")]
    output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// The kubeconfig to add (from `kubeconfig generate`), or - for stdin.
    #[arg(long)]
    from: PathBuf,
    /// The kubeconfig to change; created 0600 if missing [default: the first path of
    /// $KUBECONFIG, else ~/.kube/config].
    #[arg(long, env = "DAAS_KUBECONFIG_INTO")]
    into: Option<PathBuf>,
    /// Make the merged context kubectl's current context.
    #[arg(long)]
    set_current: bool,
    /// Replace same-named entries that differ (every rewrite keeps the old file as `<file>.bak`).
    #[arg(long)]
    force: bool,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: daas_seal::ClaimsError| e.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) || d > MAX_EXEC_TTL {
        return Err("between 1s and 1h: exec credentials are meant to be short-lived".into());
    }
    Ok(d)
}

fn parse_server(s: &str) -> Result<ServerUrl, String> {
    ServerUrl::parse(s).map_err(|e| e.to_string())
}

mod attested {
    //! `generate --attested`: the CA to pin comes from a master that passed every check.

    use anyhow::{Context, Result};
    use daas_attestation::{RootKind, TrustAnchor};
    use daas_kubeconfig::{CaBundle, ServerUrl};
    use daas_verify_master::{MasterCheck, verify_master};

    use super::GenerateArgs;

    pub(super) fn pin(args: &GenerateArgs) -> Result<(ServerUrl, CaBundle)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let verified = runtime.block_on(async {
            let chain = daas_chain::Deployment {
                rpc: args.rpc.clone(),
                chain_config: args.chain_config.clone(),
                package: args.package,
                cluster: args.cluster,
            }
            .connect()
            .await?;
            let check = MasterCheck {
                endpoint: args.server.as_ref().map(|s| s.as_str().to_owned()),
                anchors: anchors(args)?,
                ..MasterCheck::new(daas_seal::unix_ms(std::time::SystemTime::now()))
            };
            verify_master(&chain, &check)
                .await
                .context("the master did not pass the attestation check; nothing was pinned")
        })?;
        if verified.root == RootKind::Dev {
            eprintln!(
                "kubeconfig: WARNING: the master attested under the DEV root: it runs in no enclave"
            );
        }
        eprintln!(
            "kubeconfig: verified {} ({}): PCRs match the cluster on chain, CA sha256 {} registered on chain",
            verified.endpoint,
            verified.module_id,
            hex::encode(verified.ca_sha256)
        );
        let server = ServerUrl::parse(&verified.endpoint)?;
        let ca = CaBundle::from_pem(verified.ca_pem.as_bytes())?;
        Ok((server, ca))
    }

    fn anchors(args: &GenerateArgs) -> Result<Vec<TrustAnchor>> {
        let anchors = daas_verify_master::trust_anchors(args.dev_root.as_deref())?;
        if let Some(path) = &args.dev_root {
            eprintln!(
                "kubeconfig: WARNING: trusting the DEV attestation root {}; development only",
                path.display()
            );
        }
        Ok(anchors)
    }
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
            let ks = load_keystore(&path)?;
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
        Command::Generate(args) => run_generate(*args)?,
        Command::Merge(args) => run_merge(args)?,
    }
    Ok(())
}

fn load_keystore(path: &Path) -> Result<Keystore> {
    let ks =
        Keystore::load(path).with_context(|| format!("loading keystore {}", path.display()))?;
    if let Some(mode) = ks.exposed_mode() {
        eprintln!(
            "kubeconfig: warning: {} has mode {mode:o}; other users may read your key (chmod 600)",
            path.display()
        );
    }
    Ok(ks)
}

/// Upper bound on a token read from stdin; Seal tokens are far below it.
const MAX_TOKEN_INPUT: u64 = 64 * 1024;

fn run_generate(args: GenerateArgs) -> Result<()> {
    let (server, ca) = match &args.ca_file {
        Some(path) => {
            let server = args
                .server
                .clone()
                .context("--server is needed with --ca-file")?;
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            let ca =
                CaBundle::from_pem(&pem).with_context(|| format!("pinning {}", path.display()))?;
            (server, ca)
        }
        None => attested::pin(&args)?,
    };
    let credential = if args.token_stdin {
        UserCredential::Token(read_token_from_stdin()?)
    } else {
        let (Some(cluster), Some(stake)) = (args.cluster, args.stake) else {
            bail!("--exec needs --cluster and --stake");
        };
        let keystore = args
            .keystore
            .map(|p| std::path::absolute(&p).with_context(|| format!("resolving {}", p.display())))
            .transpose()?;
        // Fail now, not on every kubectl call: the keystore must load and the key be chosen.
        let check_path = match &keystore {
            Some(p) => p.clone(),
            None => default_keystore_path()?,
        };
        load_keystore(&check_path)?
            .select(args.key.as_deref())
            .with_context(|| format!("choosing a key in {}", check_path.display()))?;
        UserCredential::Exec(ExecPlugin {
            command: std::env::current_exe().context("locating this kubeconfig binary")?,
            keystore,
            key: args.key,
            cluster,
            stake,
            role: args.role,
            node_name: args.node_name.map(NodeName::new).transpose()?,
            token_epoch: args.epoch,
            ttl: args.ttl,
        })
    };
    let config = generate(&GenerateSpec {
        name: args.name,
        server,
        ca,
        namespace: args.namespace,
        credential,
    })?;
    if args.output == Path::new("-") {
        print!("{}", to_yaml(&config)?);
    } else {
        write_private(&args.output, &config, args.force)?;
        eprintln!("kubeconfig: wrote {} (mode 0600)", args.output.display());
    }
    Ok(())
}

fn read_token_from_stdin() -> Result<SecretString> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("kubeconfig: reading the token from stdin (end with Ctrl-D)");
    }
    let mut text = Zeroizing::new(String::new());
    stdin
        .lock()
        .take(MAX_TOKEN_INPUT)
        .read_to_string(&mut text)
        .context("reading the token from stdin")?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let from = if args.from == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the kubeconfig from stdin")?;
        parse_kubeconfig(&text, Path::new("<stdin>"))?
    } else {
        read_kubeconfig(&args.from)?
    };
    let into = match args.into {
        Some(p) => p,
        None => default_kubeconfig_path()?,
    };
    let options = MergeOptions {
        force: args.force,
        set_current: args.set_current,
    };
    match merge_into_file(&into, from, options)? {
        MergeOutcome::Created => eprintln!("kubeconfig: created {} (mode 0600)", into.display()),
        MergeOutcome::Unchanged => {
            eprintln!("kubeconfig: {} already has these entries", into.display());
        }
        MergeOutcome::Updated { backup } => eprintln!(
            "kubeconfig: updated {} (previous version: {})",
            into.display(),
            backup.display()
        ),
    }
    Ok(())
}

/// Where kubectl writes: the first path of `$KUBECONFIG`, else `~/.kube/config`.
fn default_kubeconfig_path() -> Result<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --into")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}
