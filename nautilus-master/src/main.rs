//! `nautilus-master`: parse, configure, run. Logs go to stderr, data to stdout.

#[cfg(feature = "dev")]
use std::net::SocketAddr;
#[cfg(feature = "dev")]
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
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

#[cfg(feature = "dev")]
#[derive(clap::Args, Debug)]
struct DevArgs {
    /// Data directory (created with mode 0700).
    #[arg(long, default_value = ".daas-dev", env = "DAAS_DATA_DIR")]
    data_dir: PathBuf,
    /// Set up and self-check, then exit without serving.
    #[arg(long)]
    check: bool,
    /// kubectl proxy address.
    #[arg(long, default_value = "127.0.0.1:8080", env = "DAAS_LISTEN")]
    listen: SocketAddr,
    /// TokenReview webhook address (loopback).
    #[arg(long, default_value = "127.0.0.1:8443")]
    webhook_listen: SocketAddr,
    /// /healthz, /readyz and /metrics address (loopback).
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin_listen: SocketAddr,
    /// etcd shim address. Default: the 0600 unix socket `<data-dir>/etcd.sock` (KeyAdmin on
    /// `<data-dir>/etcd-admin.sock`), so no other local user can reach the decrypted state.
    /// Give a loopback address such as `127.0.0.1:2399` to use TCP instead (reachable by every
    /// local user).
    #[arg(long, value_parser = loopback_or_unix)]
    etcd_listen: Option<daas_etcd_shim::Listen>,
    /// Dev chain (k3s-daas-devnet, in this process) gRPC address (loopback). 9000 is the
    /// devnet's usual port, so `staker-agent --rpc devnet` reaches it.
    #[arg(long, default_value = "127.0.0.1:9000")]
    chain_listen: SocketAddr,
    /// k3s binary (default: $K3S_BIN, then `k3s` on PATH, then the pinned K3s release from the
    /// cache or downloaded).
    #[arg(long)]
    k3s_bin: Option<PathBuf>,
    /// Never download K3s: without a k3s binary (--k3s-bin, K3S_BIN, PATH or a verified cached
    /// one) dev runs without an API server.
    #[arg(long, env = "DAAS_NO_DOWNLOAD")]
    no_download: bool,
    /// The K3s release downloaded when no k3s binary is found.
    #[arg(
        long,
        value_name = "TAG",
        default_value = nautilus_master::k3s::K3S_VERSION,
        env = "DAAS_K3S_VERSION"
    )]
    k3s_version: String,
    /// Where downloaded K3s releases are kept [default: $XDG_CACHE_HOME/k3s-daas/k3s, else
    /// ~/.cache/k3s-daas/k3s].
    #[arg(long, value_name = "DIR", env = "DAAS_K3S_CACHE_DIR")]
    k3s_cache_dir: Option<PathBuf>,
    /// Base URL of K3s releases (`<URL><tag>/<file>`); plain http only to loopback (tests).
    #[arg(
        long,
        hide = true,
        value_name = "URL",
        default_value = nautilus_master::k3s::RELEASE_URL,
        env = nautilus_master::k3s::RELEASE_URL_ENV
    )]
    k3s_release_url: String,
    /// Use this running kube-apiserver instead of starting k3s (request-header auth).
    #[arg(long, requires_all = ["upstream_ca", "upstream_client_cert", "upstream_client_key"])]
    upstream: Option<String>,
    /// Cluster CA the upstream's serving certificate must chain to.
    #[arg(long)]
    upstream_ca: Option<PathBuf>,
    /// Front-proxy client certificate (CN in the upstream's --requestheader-allowed-names).
    #[arg(long)]
    upstream_client_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long)]
    upstream_client_key: Option<PathBuf>,
    /// Serve kubectl over plain HTTP. Development only: tokens travel in cleartext.
    #[arg(long)]
    insecure_dev_http: bool,
    /// JSON file of overrides for what each user namespace gets (Pod Security level,
    /// ResourceQuota, LimitRange, default NetworkPolicy); see docs/proxy.md.
    #[arg(long, env = "DAAS_TENANT_POLICY")]
    tenant_policy: Option<PathBuf>,
    /// Do not create ClusterRoleBinding k3s-daas:admin (admin-role tokens then get no rights
    /// from the master; an existing binding is left alone).
    #[arg(long, env = "DAAS_NO_ADMIN_BINDING")]
    no_admin_binding: bool,
    /// Accept admin-role tokens only from these Sui addresses (comma-separated or repeated),
    /// on top of the cluster's on-chain grant. Unset: every address the chain grants the admin
    /// role.
    #[arg(
        long = "admin-allow",
        value_name = "ADDRESS",
        env = "DAAS_ADMIN_ALLOW",
        value_delimiter = ','
    )]
    admin_allow: Vec<daas_seal::Address>,
    /// Requests per second per identity at :8080 for a role, `ROLE=RATE[:BURST]` (burst
    /// default: two seconds' worth) or `ROLE=unlimited`; comma-separated or repeated. Roles not
    /// given keep 100/s, burst 200. Raise it for an admin whose CI pipeline or controller works
    /// through the proxy.
    #[arg(
        long = "rate-limit",
        value_name = "ROLE=RATE[:BURST]",
        env = "DAAS_RATE_LIMIT",
        value_delimiter = ','
    )]
    rate_limit: Vec<nautilus_master::RoleRateLimit>,
    /// The :6443 front for K3s agents and kubelets (workers join through `POST /join` on the
    /// proxy, then talk to this address).
    #[arg(long, default_value = "127.0.0.1:6443", env = "DAAS_NODE_LISTEN")]
    node_listen: SocketAddr,
    /// CA (PEM) that signs kubelet client certificates [default: --upstream-ca, or K3s's
    /// client CA].
    #[arg(long)]
    node_client_ca: Option<PathBuf>,
    /// How long an unbonding worker's drain honours PodDisruptionBudgets before its pods are
    /// deleted anyway (slashed workers are drained at once).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    unbonding_grace: std::time::Duration,
    /// Effect of the `k3s-daas.io/revoked` taint on a revoked worker.
    #[arg(long, value_enum, default_value = "no-schedule")]
    revoked_taint_effect: nautilus_master::workers::TaintEffect,
    /// No worker path: no join API, no :6443 front.
    #[arg(long)]
    no_workers: bool,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The serve configuration (TOML; see docs/tee.md).
    #[arg(long, env = "DAAS_SERVE_CONFIG")]
    config: PathBuf,
    /// Who attests: the Nitro Security Module, or a local DEV stand-in (development only).
    #[arg(long, value_enum, default_value = "nitro")]
    tee: nautilus_master::tee::TeeKind,
    /// Where the dev root is kept with --tee dev [default: <data_dir>/tee].
    #[arg(long)]
    dev_root_dir: Option<PathBuf>,
    /// Replace vsock by Unix sockets in this directory (--tee dev only; this is how the tests
    /// run the bridge on machines without vsock).
    #[arg(long)]
    unix_vsock_dir: Option<PathBuf>,
    /// This enclave's CID on the Unix-socket stand-in.
    #[arg(long, default_value_t = 16)]
    unix_vsock_cid: u32,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local development control plane under a data directory, until Ctrl-C.
    ///
    /// Creates (or reuses) two dev Sui wallets (admin and user) with dev stakes, a cluster id
    /// and an etcd key ring; self-checks Seal authentication and the etcd shim; then serves the
    /// etcd shim (embedded store), `k3s server` (an installed k3s, else the pinned K3s release,
    /// downloaded once, SHA-256-checked and cached; see --no-download) or any kube-apiserver
    /// given with --upstream, the kubectl proxy, the TokenReview webhook and health/metrics.
    /// Stakes live in an in-memory view until the local devnet chain lands.
    #[cfg(feature = "dev")]
    Dev(Box<DevArgs>),
    /// Run the control plane inside the Nitro Enclave (production), from a config file.
    ///
    /// Attestation from the NSM (`--tee dev` for a local stand-in), storage keys released by
    /// KMS to this enclave's attestation, etcd and the Sui full node through the vsock bridge,
    /// `k3s server`, the proxy (with `GET /attestation`), the webhook and health/metrics. See
    /// docs/tee.md.
    Serve(Box<ServeArgs>),
    /// On the parent instance: forward ingress TCP to the enclave over vsock, the enclave's
    /// egress to an allow-list of TCP targets, and relay the instance role's credentials.
    Bridge(Box<cli::bridge::BridgeArgs>),
    /// Serve the encrypting etcd v3 API (what kube-apiserver / K3s `--datastore-endpoint` use).
    EtcdShim(Box<cli::etcd_shim::EtcdShimArgs>),
    /// Manage the etcd value-encryption key ring (init, rotate, retire, status, rewrap).
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
    /// Check Nitro attestation documents offline (the same verifier the cluster uses).
    Attestation {
        #[command(subcommand)]
        command: cli::attestation::AttestationCommand,
    },
}

#[cfg(feature = "dev")]
/// `--etcd-listen`: a unix socket, or a loopback TCP address (dev serves no TLS).
fn loopback_or_unix(s: &str) -> Result<daas_etcd_shim::Listen, String> {
    let listen: daas_etcd_shim::Listen = s.parse()?;
    match &listen {
        daas_etcd_shim::Listen::Tcp(addr) if !addr.ip().is_loopback() => Err(format!(
            "{addr} is not a loopback address: dev serves the etcd shim without TLS"
        )),
        _ => Ok(listen),
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
        // The in-process dev chain logs every transaction at info; keep that out of the default.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,daas_devnet=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // No colour codes in the journal or in files (and no cost for them per audit line).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        #[cfg(feature = "dev")]
        Command::Dev(args) => runtime.block_on(dev(*args))?,
        Command::Bridge(args) => runtime.block_on(cli::bridge::run(*args))?,
        Command::Serve(args) => runtime.block_on(serve(*args))?,
        Command::EtcdShim(args) => runtime.block_on(cli::etcd_shim::run(*args))?,
        Command::Keys { command } => runtime.block_on(cli::keys::run(command))?,
        Command::Attestation { command } => cli::attestation::run(command)?,
    }
    Ok(())
}

#[cfg(feature = "dev")]
async fn dev(args: DevArgs) -> Result<()> {
    use nautilus_master::dev_serve::{DevServeOptions, UpstreamChoice, serve};
    use nautilus_master::proxy::rbac::{RbacPolicy, TenantPolicy};
    // Configuration first: a bad policy file fails before anything starts.
    let tenant = match &args.tenant_policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            TenantPolicy::from_json(&text).with_context(|| path.display().to_string())?
        }
        None => TenantPolicy::default(),
    };
    let rbac = RbacPolicy {
        admin_binding: !args.no_admin_binding,
        tenant,
    };
    nautilus_master::k3s::check_release(&args.k3s_version, &args.k3s_release_url)
        .context("--k3s-version / --k3s-release-url")?;
    let mut shutdown = std::pin::pin!(shutdown_signal()?);
    nautilus_master::dev::prepare(&args.data_dir)?;
    // The stand-in for the enclave's NSM: a dev root kept under <data-dir>/tee (made on first
    // use), PCRs derived from this build's version. The dev chain trusts that root, loudly.
    let tee = std::sync::Arc::new(nautilus_master::tee::DevTee::load_or_create(
        &nautilus_master::dev_serve::dev_root_dir(&args.data_dir),
    )?);
    let chain = nautilus_master::dev_chain::DevChain::start(
        &args.data_dir.join("chain"),
        args.chain_listen,
        Some(tee.trust_anchor()),
    )
    .await?;
    let report = match nautilus_master::dev::run(&args.data_dir, &chain).await {
        Ok(r) => r,
        Err(e) => {
            let _ = chain.shutdown().await;
            return Err(e);
        }
    };
    print_self_checks(&args.data_dir, &report);
    if args.check {
        return chain.shutdown().await;
    }
    // This machine's architecture and cache: errors only matter if a download is needed.
    let k3s_download =
        nautilus_master::k3s::DownloadConfig::for_host(args.k3s_cache_dir).map(|mut config| {
            config.version = args.k3s_version;
            config.release_url = args.k3s_release_url;
            config.allow_download = !args.no_download;
            config
        });
    let upstream = match (
        args.upstream,
        args.upstream_ca,
        args.upstream_client_cert,
        args.upstream_client_key,
    ) {
        (Some(url), Some(ca), Some(client_cert), Some(client_key)) => UpstreamChoice::External {
            url,
            ca,
            client_cert,
            client_key,
        },
        _ => {
            // Ctrl-C during a download stops `dev` (the partial file is removed).
            let found = tokio::select! {
                found = dev_k3s_binary(args.k3s_bin, k3s_download) => found,
                () = &mut shutdown => return chain.shutdown().await,
            };
            UpstreamChoice::K3s { bin: found }
        }
    };
    let opts = DevServeOptions {
        plane: nautilus_master::control_plane::Options {
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            webhook_listen: args.webhook_listen,
            admin_listen: args.admin_listen,
            etcd_listen: args.etcd_listen,
            upstream,
            insecure_dev_http: args.insecure_dev_http,
            rbac,
            admin_allowlist: (!args.admin_allow.is_empty())
                .then(|| args.admin_allow.iter().copied().collect()),
            rate_limits: nautilus_master::RoleRateLimits::with_overrides(&args.rate_limit),
            workers: (!args.no_workers).then(|| nautilus_master::control_plane::WorkerOptions {
                listen: args.node_listen,
                public_url: None,
                client_ca: args.node_client_ca.clone(),
                config: nautilus_master::workers::WorkersConfig {
                    unbonding_grace: args.unbonding_grace,
                    taint_effect: args.revoked_taint_effect,
                    ..nautilus_master::workers::WorkersConfig::new(String::new())
                },
            }),
        },
        tee,
    };
    let data_dir = args.data_dir;
    let served = serve(opts, &chain, shutdown, |running| {
        print_running(&data_dir, &report, running);
    })
    .await
    .context("dev control plane");
    let stopped = chain.shutdown().await.context("stopping the dev chain");
    served.and(stopped)
}

/// The k3s binary `dev` runs: the one named (`--k3s-bin`, `K3S_BIN`: used as given, never
/// replaced by a download), else `k3s` on PATH, else the pinned release (cached, or downloaded
/// and verified). `None` (the reason printed) when there is none: `dev` then serves without an
/// API server, as the banner explains.
#[cfg(feature = "dev")]
async fn dev_k3s_binary(
    explicit: Option<PathBuf>,
    download: Result<nautilus_master::k3s::DownloadConfig, nautilus_master::k3s::DownloadError>,
) -> Option<PathBuf> {
    use nautilus_master::k3s::{K3S_BIN_ENV, ensure_k3s, resolve_k3s_binary};
    let named = explicit.is_some() || std::env::var_os(K3S_BIN_ENV).is_some_and(|v| !v.is_empty());
    if named {
        return explicit;
    }
    if let Ok(path) = resolve_k3s_binary(None) {
        println!("  k3s binary    {} (on PATH)", path.display());
        return Some(path);
    }
    let found = match download {
        Ok(config) => ensure_k3s(&config).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(k3s) => {
            println!("  k3s binary    {k3s}");
            Some(k3s.path)
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            tracing::warn!(error = %format!("{e:#}"), "no k3s binary: serving without an API server");
            println!("  k3s binary    none: {e:#}");
            None
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    use nautilus_master::serve::{ServeConfig, ServeFlags, run};
    let config = ServeConfig::load(&args.config)?;
    let shutdown = shutdown_signal()?;
    let flags = ServeFlags {
        tee: args.tee,
        unix_vsock_dir: args.unix_vsock_dir,
        unix_vsock_cid: args.unix_vsock_cid,
        dev_root_dir: args.dev_root_dir,
    };
    run(config, flags, shutdown, |running| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "serving {} (attested endpoint {})",
            running.proxy_url, running.endpoint
        );
        let _ = writeln!(out, "API server {}", running.upstream);
        let _ = writeln!(out, "health {}/readyz", running.admin_url);
        let _ = out.flush();
    })
    .await
    .context("serve")
}

/// Installs SIGINT/SIGTERM handlers now (so a signal during a long start-up is caught, not
/// fatal) and returns a future that resolves on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(feature = "dev")]
fn print_self_checks(data_dir: &Path, r: &nautilus_master::dev::DevReport) {
    println!("K3s-DaaS dev control plane — {}", data_dir.display());
    println!();
    println!(
        "  admin wallet  {} (ed25519, keystore {})",
        r.address,
        r.keystore.display()
    );
    println!(
        "  user wallet   {} (ed25519, keystore {})",
        r.user_address,
        r.user_keystore.display()
    );
    println!(
        "  dev chain     {} (k3s-daas-devnet, a development chain, not Sui; deployment {})",
        r.chain_url,
        r.chain_config.display()
    );
    println!("  cluster       {}", r.cluster);
    println!(
        "  admin stake   {} (on chain, role admin, token epoch {})",
        r.stake, r.stake_epoch
    );
    println!(
        "  user stake    {} (on chain, role user, token epoch {})",
        r.user_stake, r.user_stake_epoch
    );
    println!();
    println!("Self-checks:");
    println!(
        "  Seal authentication against the chain: an admin token authenticated as {} {:?}; one at another token epoch was refused (\"{}\")",
        r.username, r.groups, r.revoked_refusal
    );
    println!(
        "  etcd shim: key ring {} (active key {}); a value written at revision {} read back, store holds only ciphertext",
        r.keyring.display(),
        r.active_key,
        r.etcd_revision
    );
    println!();
}

#[cfg(feature = "dev")]
fn print_running(
    data_dir: &Path,
    r: &nautilus_master::dev::DevReport,
    running: &nautilus_master::dev_serve::Running,
) {
    let ks = r.keystore.display();
    let uks = r.user_keystore.display();
    let ca = running.ca_path.display();
    let dir = data_dir.display();
    let user_ns = nautilus_master::proxy::rbac::user_namespace(&r.user_address);
    println!("Running (Ctrl-C stops everything):");
    println!(
        "  DEVELOPMENT MODE: the dev chain, etcd shim, token webhook and health listeners serve this"
    );
    println!(
        "  machine only, with local trust (loopback, or a 0600 unix socket): any local user can reach"
    );
    println!("  the loopback ones. Do not run `dev` on a shared host; see docs/security.md.");
    println!(
        "  kubectl proxy    {}   (Seal tokens; enclave CA made in memory: {ca})",
        running.proxy_url
    );
    println!(
        "  attestation      {}/attestation?nonce=<hex>   (DEV attester: root {}, trusted by the dev chain only)",
        running.proxy_url,
        nautilus_master::dev_serve::dev_root_path(data_dir).display()
    );
    println!("  API server       {}", running.upstream);
    if let Some(url) = &running.node_url {
        println!(
            "  node front       {url}   (:6443 for kubelets and K3s agents; they join with POST /join on the proxy)"
        );
    }
    println!(
        "  etcd shim        {}   (embedded store {dir}/etcd)",
        running.etcd_url
    );
    println!("  token webhook    {}", running.webhook_url);
    println!(
        "  health/metrics   {}/readyz  {}/metrics",
        running.admin_url, running.admin_url
    );
    println!(
        "  dev chain        {}   (stakes read through the chain-backed view + checkpoint follower)",
        r.chain_url
    );
    if !running.has_upstream {
        println!();
        println!(
            "No k3s binary was found, so kubectl requests are authenticated and then answered"
        );
        println!(
            "503. Add one with --k3s-bin PATH (or K3S_BIN), or put any kube-apiserver behind the"
        );
        println!(
            "proxy with --upstream URL --upstream-ca … --upstream-client-cert … --upstream-client-key …"
        );
    }
    println!();
    println!("Next, in another shell:");
    let chain_config = r.chain_config.display();
    let dev_root_path = nautilus_master::dev_serve::dev_root_path(data_dir);
    let dev_root = dev_root_path.display();
    println!(
        "  cargo run -q -p staker-agent -- verify-master --chain-config {chain_config} --dev-root {dev_root}"
    );
    println!(
        "  cargo run -q -p kubeconfig -- generate --attested --chain-config {chain_config} --dev-root {dev_root} \\"
    );
    println!(
        "      --name daas-admin --exec --keystore {ks} --cluster {} --stake {} --role admin --epoch {} -o {dir}/admin.kubeconfig",
        r.cluster, r.stake, r.stake_epoch
    );
    println!("  kubectl --kubeconfig {dir}/admin.kubeconfig get namespaces");
    println!(
        "  cargo run -q -p kubeconfig -- generate --attested --chain-config {chain_config} --dev-root {dev_root} \\"
    );
    println!(
        "      --name daas-user --exec --keystore {uks} --cluster {} --stake {} --role user --epoch {} --namespace {user_ns} -o {dir}/user.kubeconfig",
        r.cluster, r.user_stake, r.user_stake_epoch
    );
    println!(
        "  kubectl --kubeconfig {dir}/user.kubeconfig get configmaps      (your namespace: {user_ns})"
    );
    println!(
        "  cargo run -q -p staker-agent -- --keystore {ks} token mint --cluster {} --stake {} --role admin --epoch {} --ttl 15m",
        r.cluster, r.stake, r.stake_epoch
    );
    println!(
        "  cargo run -q -p staker-agent -- --keystore {uks} status --chain-config {}",
        r.chain_config.display()
    );
    if let Some(node_url) = &running.node_url {
        let wks = r.worker_keystore.display();
        let node = nautilus_master::dev::DEV_WORKER_NODE;
        println!();
        println!(
            "Workers: a third dev wallet ({wks}) holds the worker grant; stake, join and run a node (:6443 front {node_url}):"
        );
        println!(
            "  cargo run -q -p staker-agent -- --keystore {wks} stake --role worker --node-name {node} --amount 1 --chain-config {chain_config}"
        );
        println!(
            "  cargo run -q -p staker-agent -- --keystore {wks} join --chain-config {chain_config} --dev-root {dev_root} --agent kubelet --state-dir {dir}/worker-node"
        );
        println!(
            "  cargo run -q -p staker-agent -- --keystore {wks} run --chain-config {chain_config} --dev-root {dev_root} --state-dir {dir}/worker-node --kubelet /path/to/kubelet"
        );
        println!(
            "  (or `run` without --kubelet to start `k3s agent`; `staker-agent unstake` drains and deletes the node within a checkpoint)"
        );
    }
    println!(
        "Staking on chain: `staker-agent --keystore … stake | revoke-tokens | unstake --chain-config {}`; the proxy refuses revoked tokens within a checkpoint.",
        r.chain_config.display()
    );
}
