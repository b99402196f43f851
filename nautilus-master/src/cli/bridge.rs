//! `nautilus-master bridge`: the parent instance's side of the vsock bridge (crates/bridge).
//!
//! Runs on the parent EC2 instance, outside the enclave: forwards ingress TCP (kubectl :8080,
//! workers :6443) to the enclave's vsock ports, forwards the enclave's egress to an allow-list
//! of TCP targets, and relays temporary AWS credentials from an explicitly chosen source (the
//! instance role from IMDSv2, an EKS IRSA role through STS, or EKS Pod Identity). It holds no
//! enclave secret; see docs/bridge.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use daas_bridge::{
    AllowList, Bridge, BridgeConfig, ContainerConfig, CredentialsConfig, CredentialsSource,
    DEFAULT_IMDS_URL, DEFAULT_SESSION_NAME, EgressConfig, IngressRoute, Limits, PARENT_CID,
    RealVsock, Target, UnixVsock, VsockTransport, WebIdentityConfig,
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
    /// vsock port for the credentials relay (temporary AWS credentials for the enclave's KMS
    /// calls, from --credentials-source). Without it, no relay.
    #[arg(long, env = "DAAS_BRIDGE_CREDENTIALS_PORT")]
    credentials_port: Option<u32>,
    /// Where the relayed credentials come from: `imds` (the EC2 instance role), `web-identity`
    /// (EKS IRSA: the pod's ServiceAccount token exchanged with STS) or `container` (the EKS
    /// Pod Identity agent). Explicit on purpose: there is no auto-detection.
    #[arg(
        long,
        value_enum,
        default_value_t = SourceKind::Imds,
        env = "DAAS_BRIDGE_CREDENTIALS_SOURCE"
    )]
    credentials_source: SourceKind,
    /// Instance metadata service base URL (IMDSv2 only; source `imds`).
    #[arg(long, default_value = DEFAULT_IMDS_URL, env = "DAAS_IMDS_URL")]
    imds_url: String,
    /// Region to report with the credentials (and of the STS endpoint). Default: `AWS_REGION`,
    /// then `AWS_DEFAULT_REGION`, then (source `imds` only) the instance's, from IMDS.
    #[arg(long, env = "DAAS_BRIDGE_REGION")]
    region: Option<String>,
    /// The IAM role to assume (source `web-identity`; set by EKS IRSA).
    #[arg(long, env = "AWS_ROLE_ARN")]
    role_arn: Option<String>,
    /// The projected ServiceAccount token, re-read at every refresh (source `web-identity`;
    /// set by EKS IRSA).
    #[arg(long, env = "AWS_WEB_IDENTITY_TOKEN_FILE")]
    web_identity_token_file: Option<PathBuf>,
    /// `RoleSessionName` for STS (source `web-identity`).
    #[arg(long, default_value = DEFAULT_SESSION_NAME, env = "AWS_ROLE_SESSION_NAME")]
    role_session_name: String,
    /// `DurationSeconds` for STS, 900 to 43200 (source `web-identity`). Default: STS's (1 h).
    #[arg(long, env = "DAAS_BRIDGE_STS_DURATION_SECONDS")]
    sts_duration_seconds: Option<u32>,
    /// STS endpoint `https://host[:port]` instead of `https://sts.<region>.amazonaws.com`
    /// (source `web-identity`; tests, or a partition the bridge does not know).
    #[arg(long, env = "DAAS_BRIDGE_STS_ENDPOINT")]
    sts_endpoint: Option<String>,
    /// TEST ONLY: a PEM file of CA certificates trusted for STS besides Mozilla's roots.
    #[arg(long, env = "DAAS_BRIDGE_STS_EXTRA_CA", hide = true)]
    sts_extra_ca: Option<PathBuf>,
    /// The Pod Identity agent's URI (source `container`; set by EKS Pod Identity). Plain http
    /// only to 169.254.170.23, [fd00:ec2::23] or a loopback IP.
    #[arg(long, env = "AWS_CONTAINER_CREDENTIALS_FULL_URI")]
    container_credentials_uri: Option<String>,
    /// The file whose content is sent as `Authorization`, re-read at every refresh (source
    /// `container`; set by EKS Pod Identity).
    #[arg(long, env = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")]
    container_token_file: Option<PathBuf>,
    /// Close a forwarded connection after this long without a byte either way.
    #[arg(long, default_value = "5m", env = "DAAS_BRIDGE_IDLE_TIMEOUT")]
    idle_timeout: humantime::Duration,
    /// DEV/TEST ONLY: use Unix sockets `<DIR>/<cid>.<port>.sock` instead of vsock, for hosts
    /// without vsock (the enclave side must use the same directory). Not a Nitro deployment.
    #[arg(long, env = "DAAS_UNIX_VSOCK_DIR")]
    unix_vsock_dir: Option<PathBuf>,
}

/// `--credentials-source`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SourceKind {
    /// The EC2 instance role, from IMDSv2.
    Imds,
    /// EKS IRSA: STS AssumeRoleWithWebIdentity with the ServiceAccount token.
    WebIdentity,
    /// EKS Pod Identity: the agent's credentials URI.
    Container,
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

/// The credentials relay's source and region; `env` looks up `AWS_REGION` and
/// `AWS_DEFAULT_REGION` (a parameter, so tests need not touch the process environment).
fn credentials(
    args: &BridgeArgs,
    vsock_port: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CredentialsConfig> {
    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty());
    let source = match args.credentials_source {
        SourceKind::Imds => CredentialsSource::Imds {
            url: args.imds_url.clone(),
        },
        SourceKind::WebIdentity => {
            let (Some(role_arn), Some(token_file)) =
                (&args.role_arn, &args.web_identity_token_file)
            else {
                bail!(
                    "--credentials-source web-identity needs --role-arn and --web-identity-token-file \
                     (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, which EKS sets for a ServiceAccount with an IAM role)"
                );
            };
            if env("AWS_STS_REGIONAL_ENDPOINTS").as_deref() == Some("legacy") {
                warn!(
                    "AWS_STS_REGIONAL_ENDPOINTS=legacy is ignored: the bridge always calls the regional STS endpoint"
                );
            }
            CredentialsSource::WebIdentity(WebIdentityConfig {
                role_arn: role_arn.clone(),
                token_file: token_file.clone(),
                session_name: args.role_session_name.clone(),
                duration_seconds: args.sts_duration_seconds,
                endpoint: args.sts_endpoint.clone(),
                extra_ca: args.sts_extra_ca.clone(),
            })
        }
        SourceKind::Container => {
            let (Some(full_uri), Some(token_file)) =
                (&args.container_credentials_uri, &args.container_token_file)
            else {
                bail!(
                    "--credentials-source container needs --container-credentials-uri and --container-token-file \
                     (AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, which EKS Pod Identity sets)"
                );
            };
            CredentialsSource::Container(ContainerConfig {
                full_uri: full_uri.clone(),
                token_file: token_file.clone(),
            })
        }
    };
    if region.is_none() && args.credentials_source != SourceKind::Imds {
        bail!(
            "--credentials-source {} needs a region: --region, AWS_REGION or AWS_DEFAULT_REGION",
            source.name()
        );
    }
    Ok(CredentialsConfig {
        vsock_port,
        source,
        region,
    })
}

/// Builds the bridge configuration (reads only the allow file).
fn config(args: &BridgeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<BridgeConfig> {
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
        credentials: args
            .credentials_port
            .map(|vsock_port| credentials(args, vsock_port, env))
            .transpose()?,
        limits: Limits {
            idle_timeout: Duration::from(args.idle_timeout),
            ..Limits::default()
        },
    })
}

pub(crate) async fn run(args: BridgeArgs) -> Result<()> {
    let config = config(&args, &|name| std::env::var(name).ok())?;
    if let Some(c) = &config.credentials {
        info!(
            source = c.source.name(),
            region = c.region.as_deref().unwrap_or("(from IMDS)"),
            "Credentials relay source"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bridge: BridgeArgs,
    }

    /// Parses `flags`; the AWS region variables come from `env`. (clap still reads the flags'
    /// own `env` fallbacks from the process, whose environment has no AWS variables in tests.)
    fn parse(flags: &[&str], env: &[(&str, &str)]) -> Result<BridgeConfig> {
        let mut argv = vec![
            "bridge",
            "--enclave-cid",
            "16",
            "--credentials-port",
            "8001",
        ];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config(&cli.bridge, &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn relay(c: &BridgeConfig) -> &CredentialsConfig {
        c.credentials.as_ref().expect("the relay is configured")
    }

    #[test]
    fn imds_stays_the_default_and_the_region_may_come_from_imds() {
        let c = parse(&[], &[]).expect("config");
        assert!(
            matches!(&relay(&c).source, CredentialsSource::Imds { url } if url == DEFAULT_IMDS_URL)
        );
        assert_eq!(relay(&c).region, None);
        let c = parse(&[], &[("AWS_REGION", "eu-west-1")]).expect("config");
        assert_eq!(relay(&c).region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn web_identity_takes_the_irsa_settings() {
        let c = parse(
            &[
                "--credentials-source",
                "web-identity",
                "--role-arn",
                "arn:aws:iam::123456789012:role/daas",
                "--web-identity-token-file",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
                "--sts-duration-seconds",
                "3600",
            ],
            &[("AWS_DEFAULT_REGION", "eu-central-1")],
        )
        .expect("config");
        let CredentialsSource::WebIdentity(w) = &relay(&c).source else {
            panic!("expected web-identity");
        };
        assert_eq!(w.role_arn, "arn:aws:iam::123456789012:role/daas");
        assert_eq!(w.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(w.duration_seconds, Some(3600));
        assert_eq!(relay(&c).region.as_deref(), Some("eu-central-1"));
        // --region wins over the environment, AWS_REGION over AWS_DEFAULT_REGION.
        let c = parse(
            &[
                "--credentials-source",
                "web-identity",
                "--role-arn",
                "arn:aws:iam::123456789012:role/daas",
                "--web-identity-token-file",
                "/t",
            ],
            &[
                ("AWS_REGION", "us-east-2"),
                ("AWS_DEFAULT_REGION", "eu-central-1"),
            ],
        )
        .expect("config");
        assert_eq!(relay(&c).region.as_deref(), Some("us-east-2"));
    }

    #[test]
    fn missing_settings_are_named() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 4] = [
            (
                &[
                    "--credentials-source",
                    "web-identity",
                    "--web-identity-token-file",
                    "/t",
                ],
                &[("AWS_REGION", "eu-west-1")],
                "--role-arn",
            ),
            (
                &[
                    "--credentials-source",
                    "web-identity",
                    "--role-arn",
                    "arn:aws:iam::123456789012:role/daas",
                    "--web-identity-token-file",
                    "/t",
                ],
                &[],
                "needs a region",
            ),
            (
                &[
                    "--credentials-source",
                    "container",
                    "--container-token-file",
                    "/t",
                ],
                &[("AWS_REGION", "eu-west-1")],
                "--container-credentials-uri",
            ),
            (
                &[
                    "--credentials-source",
                    "container",
                    "--container-credentials-uri",
                    "http://169.254.170.23/v1/credentials",
                    "--container-token-file",
                    "/t",
                ],
                &[],
                "needs a region",
            ),
        ];
        for (flags, env, why) in cases {
            let e = parse(flags, env).expect_err("refused");
            assert!(e.to_string().contains(why), "{flags:?}: {e}");
        }
        let c = parse(
            &[
                "--credentials-source",
                "container",
                "--container-credentials-uri",
                "http://169.254.170.23/v1/credentials",
                "--container-token-file",
                "/t",
                "--region",
                "ap-southeast-2",
            ],
            &[],
        )
        .expect("config");
        assert!(matches!(relay(&c).source, CredentialsSource::Container(_)));
    }
}
