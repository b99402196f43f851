//! `nautilus-master bridge`: the parent instance's side of the vsock bridge (crates/bridge).
//!
//! Runs on the parent EC2 instance, outside the enclave: forwards ingress TCP (kubectl :8080,
//! workers :6443) to the enclave's vsock ports, forwards the enclave's egress to an allow-list
//! of TCP targets, and relays the instance role's credentials from IMDSv2. It holds no enclave
//! secret; see docs/bridge.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use daas_bridge::{
    AllowList, Bridge, BridgeConfig, CredentialsConfig, DEFAULT_IMDS_URL, EgressConfig,
    IngressRoute, Limits, PARENT_CID, RealVsock, Target, UnixVsock, VsockTransport,
};
use tracing::{info, warn};

#[derive(Args, Debug)]
pub(crate) struct BridgeArgs {
    /// The enclave's CID (`EnclaveCID` in `nitro-cli describe-enclaves`); 4 or more.
    #[arg(long, env = "DAAS_ENCLAVE_CID", value_parser = enclave_cid)]
    enclave_cid: u32,
    /// Ingress route `LISTEN_ADDR=VSOCK_PORT`: TCP on the parent to a vsock port in the
    /// enclave. Repeat (or comma-separate) for each, e.g. `--ingress 0.0.0.0:8080=8080
    /// --ingress 0.0.0.0:6443=6443`.
    #[arg(
        long = "ingress",
        value_name = "ADDR=PORT",
        env = "DAAS_BRIDGE_INGRESS",
        value_delimiter = ','
    )]
    ingress: Vec<IngressRoute>,
    /// vsock port on which the enclave opens egress connections. Without it, no egress.
    #[arg(long, env = "DAAS_BRIDGE_EGRESS_PORT")]
    egress_port: Option<u32>,
    /// An egress target the enclave may reach: exact `host:port` (IPv6 as `[addr]:port`), no
    /// wildcards. Repeat (or comma-separate) for each. The enclave enforces its own list too.
    #[arg(
        long = "allow",
        value_name = "HOST:PORT",
        env = "DAAS_BRIDGE_ALLOW",
        value_delimiter = ','
    )]
    allow: Vec<Target>,
    /// File of egress targets, one `host:port` a line (`#` comments), added to `--allow`.
    #[arg(long, env = "DAAS_BRIDGE_ALLOW_FILE")]
    allow_file: Option<PathBuf>,
    /// vsock port for the credentials relay (the instance role's temporary credentials from
    /// IMDSv2, for the enclave's KMS calls). Without it, no relay.
    #[arg(long, env = "DAAS_BRIDGE_CREDENTIALS_PORT")]
    credentials_port: Option<u32>,
    /// Instance metadata service base URL (IMDSv2 only).
    #[arg(long, default_value = DEFAULT_IMDS_URL, env = "DAAS_IMDS_URL")]
    imds_url: String,
    /// Region to report with the credentials. Default: the instance's, from IMDS.
    #[arg(long, env = "DAAS_BRIDGE_REGION")]
    region: Option<String>,
    /// Close a forwarded connection after this long without a byte either way.
    #[arg(long, default_value = "5m", env = "DAAS_BRIDGE_IDLE_TIMEOUT")]
    idle_timeout: humantime::Duration,
    /// DEV/TEST ONLY: use Unix sockets `<DIR>/<cid>.<port>.sock` instead of vsock, for hosts
    /// without vsock (the enclave side must use the same directory). Not a Nitro deployment.
    #[arg(long, env = "DAAS_UNIX_VSOCK_DIR")]
    unix_vsock_dir: Option<PathBuf>,
}

fn enclave_cid(s: &str) -> Result<u32, String> {
    let cid: u32 = s.parse().map_err(|_| format!("`{s}` is not a CID"))?;
    if cid < daas_bridge::MIN_ENCLAVE_CID || cid == u32::MAX {
        return Err(format!(
            "{cid} is reserved (0-2 hypervisor/local/host, 3 the parent); enclave CIDs are 4 or more"
        ));
    }
    Ok(cid)
}

/// Builds the bridge configuration (reads only the allow file).
fn config(args: &BridgeArgs) -> Result<BridgeConfig> {
    let mut allow = AllowList::new(args.allow.iter().cloned());
    if let Some(path) = &args.allow_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading allow file {}", path.display()))?;
        allow.extend(AllowList::parse_text(&text).with_context(|| path.display().to_string())?);
    }
    let egress = match args.egress_port {
        Some(vsock_port) => {
            if allow.is_empty() {
                warn!("--egress-port without --allow/--allow-file: every egress target is denied");
            }
            Some(EgressConfig { vsock_port, allow })
        }
        None if !allow.is_empty() => {
            bail!("--allow/--allow-file given without --egress-port: nothing would use the list")
        }
        None => None,
    };
    if args.ingress.is_empty() && egress.is_none() && args.credentials_port.is_none() {
        bail!("nothing to serve: give --ingress, --egress-port or --credentials-port");
    }
    Ok(BridgeConfig {
        enclave_cid: args.enclave_cid,
        ingress: args.ingress.clone(),
        egress,
        credentials: args.credentials_port.map(|vsock_port| CredentialsConfig {
            vsock_port,
            imds_url: args.imds_url.clone(),
            region: args.region.clone(),
        }),
        limits: Limits {
            idle_timeout: Duration::from(args.idle_timeout),
            ..Limits::default()
        },
    })
}

pub(crate) async fn run(args: BridgeArgs) -> Result<()> {
    let config = config(&args)?;
    let transport: Arc<dyn VsockTransport> = match &args.unix_vsock_dir {
        Some(dir) => {
            warn!(
                dir = %dir.display(),
                "DEVELOPMENT/TEST ONLY: Unix sockets stand in for vsock; this is not a Nitro deployment"
            );
            Arc::new(
                UnixVsock::new(dir, PARENT_CID)
                    .with_context(|| format!("vsock stand-in directory {}", dir.display()))?,
            )
        }
        None => Arc::new(RealVsock),
    };
    let shutdown = crate::shutdown_signal()?;
    let bridge = Bridge::start(config, transport)
        .await
        .context("starting the bridge")?;
    for addr in bridge.ingress_addrs() {
        info!(listen = %addr, "Bridge ingress listening");
    }
    // One line on stdout once everything is bound, for supervisors and tests.
    {
        use std::io::Write;
        let addrs: Vec<String> = bridge
            .ingress_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "bridge ready; ingress {}", addrs.join(","));
        let _ = out.flush();
    }
    shutdown.await;
    let c = bridge.counters().snapshot();
    info!(
        ingress = c.ingress_connections,
        egress = c.egress_connections,
        denied = c.denied,
        bad_headers = c.bad_headers,
        "Bridge stopping"
    );
    bridge.shutdown().await;
    Ok(())
}
