//! `nautilus-master serve`: the production entry point, inside the enclave.
//!
//! Everything comes from one TOML file ([`ServeConfig`]) plus a few flags:
//! - the attester: the Nitro Security Module, or the dev attester only with `--tee dev`;
//! - the vsock bridge's enclave side (`[bridge]`, `daas_bridge::EnclaveConfig`): local
//!   forwarders to the allow-listed egress targets (etcd, the Sui full node, KMS) and the
//!   parent's credentials relay; the enclave enforces its own allow-list;
//! - the storage keys: released by AWS KMS to this enclave's attestation (`[keys.kms]`), or a
//!   key-ring directory (`[keys.file]`, refused unless `--tee dev`);
//! - the etcd shim on a real etcd (`[etcd]`), reached through the bridge;
//! - the chain: a Sui gRPC endpoint over https (loopback http only for development), chain id
//!   pinned, followed from the tip;
//! - `k3s server` (or an API server that is already running), the proxy with
//!   `GET /attestation`, the TokenReview webhook and health/metrics.
//!
//! Registration on chain is the operator's act (`staker-agent admin register-enclave --master
//! URL`): the enclave holds no wallet.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::control_plane::{Options, Running, Store, Trust, UpstreamChoice};
use crate::tee::TeeKind;

/// The serve configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Working directory (a tmpfs inside the enclave): k3s state, sockets, the freshness anchor.
    pub data_dir: PathBuf,
    /// The URL clients use (`https://host:8080`); bound into every attestation document.
    pub public_endpoint: String,
    /// Extra names/addresses in the proxy certificate (the public host).
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub listen: ListenConfig,
    pub chain: ChainSection,
    pub etcd: EtcdSection,
    pub keys: KeysSection,
    #[serde(default)]
    pub upstream: UpstreamSection,
    /// The enclave side of the vsock bridge; absent: no vsock (development).
    #[serde(default)]
    pub bridge: Option<daas_bridge::EnclaveConfig>,
    /// Accept admin-role tokens only from these addresses (on top of the on-chain grant).
    #[serde(default)]
    pub admin_allow: Vec<daas_seal::Address>,
    /// The worker path: join API and the :6443 front.
    #[serde(default)]
    pub workers: WorkersSection,
    /// The kubectl proxy on :8080.
    #[serde(default)]
    pub proxy: ProxySection,
}

/// `[proxy]`: limits of the kubectl front door.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// `[proxy.rate_limits]`: requests per second per identity, by role.
    #[serde(default)]
    pub rate_limits: RateLimitsSection,
}

/// Per role: a number (requests/s, burst two seconds' worth), `"RATE:BURST"` or
/// `"unlimited"`; roles left out keep the default (100/s, burst 200).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    #[serde(default)]
    pub worker: Option<crate::RateLimit>,
    #[serde(default)]
    pub user: Option<crate::RateLimit>,
    #[serde(default)]
    pub admin: Option<crate::RateLimit>,
}

impl RateLimitsSection {
    pub fn limits(&self) -> crate::RoleRateLimits {
        let default = crate::RoleRateLimits::default();
        crate::RoleRateLimits {
            worker: self.worker.unwrap_or(default.worker),
            user: self.user.unwrap_or(default.user),
            admin: self.admin.unwrap_or(default.admin),
        }
    }
}

/// `[workers]`: where the :6443 front listens and how revoked nodes are handled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    /// Off: no join API, no :6443 front.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_node_listen")]
    pub listen: SocketAddr,
    /// The URL agents use (default: `public_endpoint`'s host on port 6443).
    #[serde(default)]
    pub public_url: Option<String>,
    /// CA (PEM) of kubelet client certificates (default: K3s's client CA, or the external
    /// upstream's CA).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default = "default_token_ttl", with = "humantime_serde_compat")]
    pub token_ttl: Duration,
    /// How long an unbonding node's drain honours PodDisruptionBudgets.
    #[serde(default = "default_unbonding_grace", with = "humantime_serde_compat")]
    pub unbonding_grace: Duration,
    /// `NoSchedule` (default) or `NoExecute`.
    #[serde(default = "default_taint_effect")]
    pub revoked_taint_effect: String,
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            enabled: true,
            listen: default_node_listen(),
            public_url: None,
            client_ca: None,
            token_ttl: default_token_ttl(),
            unbonding_grace: default_unbonding_grace(),
            revoked_taint_effect: default_taint_effect(),
        }
    }
}

/// Longest bootstrap-token lifetime `[workers] token_ttl` accepts (K3s's own default is 24 h;
/// a join needs minutes).
const MAX_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

fn default_true() -> bool {
    true
}
fn default_node_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6443))
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_unbonding_grace() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_taint_effect() -> String {
    "NoSchedule".into()
}

impl WorkersSection {
    /// The control plane's worker options, or `None` when disabled.
    pub fn options(
        &self,
        public_endpoint: &str,
    ) -> anyhow::Result<Option<crate::control_plane::WorkerOptions>> {
        if !self.enabled {
            return Ok(None);
        }
        if self.token_ttl < Duration::from_secs(1) || self.token_ttl > MAX_TOKEN_TTL {
            anyhow::bail!(
                "workers.token_ttl must be between 1s and {}: a bootstrap token is a join credential",
                humantime::format_duration(MAX_TOKEN_TTL)
            );
        }
        let taint_effect = match self.revoked_taint_effect.as_str() {
            "NoSchedule" => crate::workers::TaintEffect::NoSchedule,
            "NoExecute" => crate::workers::TaintEffect::NoExecute,
            other => anyhow::bail!(
                "workers.revoked_taint_effect: {other:?} is neither NoSchedule nor NoExecute"
            ),
        };
        let public_url = match &self.public_url {
            Some(u) => Some(u.clone()),
            // Port 0 (tests): the bound address.
            None if self.listen.port() == 0 => None,
            None => {
                let uri: http::Uri = public_endpoint
                    .parse()
                    .map_err(|e| anyhow::anyhow!("public_endpoint: {e}"))?;
                let host = uri
                    .host()
                    .ok_or_else(|| anyhow::anyhow!("public_endpoint has no host"))?;
                Some(format!("https://{host}:{}", self.listen.port()))
            }
        };
        Ok(Some(crate::control_plane::WorkerOptions {
            listen: self.listen,
            public_url,
            client_ca: self.client_ca.clone(),
            config: crate::workers::WorkersConfig {
                token_ttl: self.token_ttl,
                unbonding_grace: self.unbonding_grace,
                taint_effect,
                ..crate::workers::WorkersConfig::new(String::new())
            },
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    #[serde(default = "default_proxy")]
    pub proxy: SocketAddr,
    #[serde(default = "default_webhook")]
    pub webhook: SocketAddr,
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            proxy: default_proxy(),
            webhook: default_webhook(),
            admin: default_admin(),
        }
    }
}

fn default_proxy() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_webhook() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Sui gRPC URL (https; http only to loopback).
    pub rpc: String,
    /// Required: the chain id the endpoint must report.
    pub chain_id: String,
    pub package: daas_seal::Address,
    pub cluster: daas_seal::Address,
    /// Read from the chain when absent.
    #[serde(default)]
    pub cluster_initial_shared_version: Option<u64>,
    /// Silence after which the follower counts its stream as lost.
    #[serde(default = "default_stale_after", with = "humantime_serde_compat")]
    pub stale_after: Duration,
}

fn default_stale_after() -> Duration {
    Duration::from_secs(30)
}

mod humantime_serde_compat {
    use serde::Deserialize;
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    /// `https://host:port` (or `http://` to loopback) URLs of the etcd members.
    pub endpoints: Vec<String>,
    /// PEM CA bundle of the etcd servers (needed for https).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key (mTLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    #[serde(default)]
    pub kms: Option<KmsKeys>,
    /// A key-ring directory (`nautilus-master keys init`): development only.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKeys {
    /// Where the wrapped data keys (`daas_kms::WrappedKeys` JSON) are: `"etcd"` (a record in
    /// the datastore; the first start on an empty datastore generates them: see
    /// [`crate::wrapped_keys`]) or the absolute path of a file.
    pub wrapped_keys: WrappedKeysSource,
    /// The KMS key (ARN) that wraps the data keys. Required with `"etcd"`; with a file, the
    /// file's key must be this one when it is given. Part of the measured configuration, so a
    /// record naming another key is refused.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The KMS region (required with `"etcd"`; with a file, the file's region must be this
    /// one when it is given).
    #[serde(default)]
    pub region: Option<String>,
    /// Override of `https://kms.<region>.amazonaws.com` (tests, FIPS endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Where the TCP connection goes (the bridge's local forwarder); TLS still checks the
    /// endpoint's host name.
    #[serde(default)]
    pub connect_to: Option<SocketAddr>,
    /// CA bundle that authenticates KMS.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
}

/// `[keys.kms] wrapped_keys`: the datastore, or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrappedKeysSource {
    /// The record under the shim's reserved prefix in etcd.
    Etcd,
    /// A wrapped-keys file (absolute path).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for WrappedKeysSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "etcd" {
            return Ok(WrappedKeysSource::Etcd);
        }
        let path = PathBuf::from(&text);
        if !path.is_absolute() {
            return Err(serde::de::Error::custom(format!(
                "wrapped_keys = {text:?}: \"etcd\" or an absolute path"
            )));
        }
        Ok(WrappedKeysSource::File(path))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The k3s binary (default: $K3S_BIN, then `k3s` on PATH).
    #[serde(default)]
    pub k3s_bin: Option<PathBuf>,
    /// An API server that is already running (request-header auth).
    #[serde(default)]
    pub external: Option<ExternalUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalUpstream {
    pub url: String,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A KMS key or alias ARN: `arn:<partition>:kms:<region>:<account>:key/<id>` or
/// `…:alias/<name>`. Naming an alias lets the configuration (which is measured into the image)
/// be written before the key exists; the account's key administrators own the alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// `key/<id>` or `alias/<name>`.
    pub resource: String,
}

impl KmsArn {
    pub fn parse(text: &str) -> Result<KmsArn> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts.as_slice() else {
            bail!("not an ARN (arn:aws:kms:<region>:<account>:key/<id> or …:alias/<name>)");
        };
        if *arn != "arn" || !partition.starts_with("aws") || *service != "kms" {
            bail!("not a KMS ARN (arn:aws:kms:…)");
        }
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("the ARN's region {region:?} is not a region name");
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            bail!("the ARN's account {account:?} is not 12 digits");
        }
        let named = resource
            .strip_prefix("key/")
            .or_else(|| resource.strip_prefix("alias/"))
            .is_some_and(|n| !n.is_empty());
        if !named {
            bail!("the ARN names {resource:?}, neither key/<id> nor alias/<name>");
        }
        Ok(KmsArn {
            partition: (*partition).to_owned(),
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            resource: (*resource).to_owned(),
        })
    }

    fn is_alias(&self) -> bool {
        self.resource.starts_with("alias/")
    }

    /// Whether a wrapped-keys record's `key_id` is this configured key: the same ARN, or for an
    /// alias, a key ARN in the same partition, region and account (KMS then checks, at every
    /// request, that the blob is under the alias's key: requests name the alias).
    fn covers(&self, record_key_id: &str) -> bool {
        match KmsArn::parse(record_key_id) {
            Ok(r) if self.is_alias() => {
                r.resource.starts_with("key/")
                    && r.partition == self.partition
                    && r.region == self.region
                    && r.account == self.account
            }
            Ok(r) => r == *self,
            Err(_) => false,
        }
    }
}

impl ServeConfig {
    /// Reads and checks a config file. Nothing is started.
    pub fn load(path: &Path) -> Result<ServeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the serve config {}", path.display()))?;
        let config: ServeConfig =
            toml::from_str(&text).with_context(|| format!("serve config {}", path.display()))?;
        Ok(config)
    }

    /// The checks that do not depend on the machine: fail before anything starts.
    pub fn check(&self, tee: TeeKind) -> Result<()> {
        daas_verify_master::Endpoint::parse(&self.public_endpoint).context("public_endpoint")?;
        match (&self.keys.kms, &self.keys.file) {
            (Some(_), Some(_)) => bail!("[keys]: give either kms or file, not both"),
            (None, None) => bail!("[keys]: give kms (production) or file (--tee dev only)"),
            (None, Some(_)) if tee == TeeKind::Nitro => bail!(
                "[keys] file: a key file is readable by whoever controls the parent; an enclave takes its keys from KMS ([keys.kms]). Key files are for --tee dev only"
            ),
            _ => {}
        }
        if let Some(kms) = &self.keys.kms {
            if kms.wrapped_keys == WrappedKeysSource::Etcd {
                if kms.key_id.is_none() {
                    bail!(
                        "[keys.kms] wrapped_keys = \"etcd\" needs key_id (the KMS key's or its alias's ARN) and region"
                    );
                }
                if kms.region.as_deref().is_none_or(str::is_empty) {
                    bail!("[keys.kms] wrapped_keys = \"etcd\" needs region");
                }
            }
            if let Some(id) = &kms.key_id {
                let arn = KmsArn::parse(id).with_context(|| format!("[keys.kms] key_id {id:?}"))?;
                if let Some(region) = &kms.region
                    && &arn.region != region
                {
                    bail!(
                        "[keys.kms] key_id {id:?} is in {}, not in region {region:?}",
                        arn.region
                    );
                }
            }
        }
        if self.etcd.endpoints.is_empty() {
            bail!("[etcd] endpoints: at least one etcd member is needed");
        }
        for e in &self.etcd.endpoints {
            if !(e.starts_with("https://") || is_loopback_http(e)) {
                bail!(
                    "[etcd] endpoint {e:?}: https only (http to loopback is allowed for a local etcd)"
                );
            }
        }
        self.chain_config().check_for_control_plane()?;
        Ok(())
    }

    fn chain_config(&self) -> daas_chain::ChainConfig {
        let mut config = daas_chain::ChainConfig::new(
            self.chain.rpc.clone(),
            self.chain.package,
            self.chain.cluster,
            self.chain.cluster_initial_shared_version.unwrap_or(0),
        );
        config.chain_id = Some(self.chain.chain_id.clone());
        config
    }
}

/// `http://` to `localhost`, `127.0.0.0/8` or `::1` (the chain client's notion of loopback).
fn is_loopback_http(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|uri| {
        uri.scheme_str() == Some("http")
            && uri.host().is_some_and(daas_chain::config::is_loopback_host)
    })
}

/// Flags of `serve` that are not in the file.
#[derive(Clone, Debug)]
pub struct ServeFlags {
    pub tee: TeeKind,
    /// Replace vsock by Unix sockets in this directory (`--tee dev` only; tests).
    pub unix_vsock_dir: Option<PathBuf>,
    /// This enclave's CID on the Unix-socket stand-in.
    pub unix_vsock_cid: u32,
    /// Where the dev root is kept (`--tee dev`; default `<data_dir>/tee`).
    pub dev_root_dir: Option<PathBuf>,
}

/// Runs the control plane from `config` until `shutdown`.
pub async fn run(
    config: ServeConfig,
    flags: ServeFlags,
    shutdown: impl std::future::Future<Output = ()> + Send,
    on_ready: impl FnOnce(&Running),
) -> Result<()> {
    config.check(flags.tee)?;
    if flags.unix_vsock_dir.is_some() && flags.tee != TeeKind::Dev {
        bail!("--unix-vsock-dir replaces vsock by local sockets: --tee dev only");
    }
    crate::private_fs::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;

    // 0. Inside a Nitro Enclave nothing configures the network, not even loopback, and
    //    everything below listens or connects on 127.0.0.x.
    if flags.tee == TeeKind::Nitro {
        let state = tokio::task::spawn_blocking(daas_netup::loopback_up)
            .await
            .context("bringing up loopback")?
            .context("bringing up loopback (the enclave boots without it)")?;
        tracing::info!(?state, "loopback ready");
    }

    // 1. The attester first: without one there is nothing to serve.
    let dev_root_dir = flags
        .dev_root_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("tee"));
    let (attester, dev) = crate::tee::open(flags.tee, &dev_root_dir)?;
    if dev.is_some() {
        tracing::warn!(
            root = %dev_root_dir.join(crate::tee::DEV_ROOT_CERT).display(),
            "DEV attester: clients must be told to trust this dev root"
        );
    }
    tracing::info!(attester = %attester.describe(), "attester ready");

    // 2. The bridge: egress forwarders and the credentials relay, before anything dials out.
    let transport: Arc<dyn daas_bridge::VsockTransport> = match &flags.unix_vsock_dir {
        Some(dir) => {
            tracing::warn!(dir = %dir.display(), "vsock replaced by Unix sockets (development)");
            Arc::new(daas_bridge::UnixVsock::new(dir, flags.unix_vsock_cid)?)
        }
        None => Arc::new(daas_bridge::RealVsock),
    };
    let bridge = match &config.bridge {
        Some(bridge) => Some(
            daas_bridge::EnclaveSide::start(bridge.clone(), transport.clone())
                .await
                .context("starting the enclave side of the vsock bridge")?,
        ),
        None => None,
    };
    let credentials_port = config.bridge.as_ref().and_then(|b| b.credentials_port);

    // 3. etcd through the bridge (it also keeps the wrapped data keys).
    let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>> {
        p.as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()
    };
    let etcd = daas_etcd_shim::EtcdConfig {
        endpoints: config.etcd.endpoints.clone(),
        ca_pem: read(&config.etcd.ca)?,
        client_identity: match (read(&config.etcd.cert)?, read(&config.etcd.key)?) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        },
        ..daas_etcd_shim::EtcdConfig::default()
    };
    let backend = daas_etcd_shim::EtcdBackend::connect(&etcd)?;

    // 4. The storage keys.
    let keys = match (&config.keys.kms, &config.keys.file) {
        (Some(kms), _) => {
            let port = credentials_port.context(
                "[keys.kms] needs the parent's credentials relay: set [bridge] credentials_port",
            )?;
            release_keys(kms, &backend, attester.clone(), transport.clone(), port).await?
        }
        (None, Some(dir)) => {
            use daas_envelope::KeyProvider;
            daas_etcd_shim::Keys::from_ring(daas_envelope::KeyRingDir::new(dir).load()?)
        }
        (None, None) => bail!("[keys]: no key source"),
    };

    // 5. The chain, pinned.
    let mut chain_config = config.chain_config();
    if config.chain.cluster_initial_shared_version.is_none() {
        let probe = daas_chain::GrpcChain::new(chain_config.clone())?;
        chain_config.cluster_initial_shared_version = probe
            .initial_shared_version(config.chain.cluster)
            .await
            .context("reading the cluster object")?;
    }
    let chain = daas_chain::GrpcChain::new(chain_config)?;

    // 6. The store: the anchor in the enclave's working directory.
    let store = Store {
        backend,
        keys: Arc::new(keys),
        anchor: daas_etcd_shim::Anchor::new(config.data_dir.join("etcd.anchor")),
        // The enclave has no disk that outlives it: each start begins a new baseline (see
        // docs/tee.md, "Rollback across enclave restarts").
        baseline: daas_etcd_shim::Baseline::AcceptMissingAnchor,
        describe: format!("etcd {}", config.etcd.endpoints.join(",")),
    };

    let upstream = match &config.upstream.external {
        Some(e) => UpstreamChoice::External {
            url: e.url.clone(),
            ca: e.ca.clone(),
            client_cert: e.client_cert.clone(),
            client_key: e.client_key.clone(),
        },
        None => UpstreamChoice::K3s {
            bin: config.upstream.k3s_bin.clone(),
        },
    };
    let options = Options {
        data_dir: config.data_dir.clone(),
        listen: config.listen.proxy,
        webhook_listen: config.listen.webhook,
        admin_listen: config.listen.admin,
        etcd_listen: None,
        upstream,
        insecure_dev_http: false,
        rbac: crate::proxy::rbac::RbacPolicy::default(),
        admin_allowlist: (!config.admin_allow.is_empty())
            .then(|| config.admin_allow.iter().copied().collect()),
        rate_limits: config.proxy.rate_limits.limits(),
        workers: config.workers.options(&config.public_endpoint)?,
    };
    let trust = Trust {
        chain,
        cluster: config.chain.cluster,
        stale_after: config.chain.stale_after,
        attester,
        sans: config.sans.clone(),
        public_endpoint: Some(config.public_endpoint.clone()),
    };
    let served = crate::control_plane::run(
        options,
        trust,
        store,
        |_, endpoint| async move {
            tracing::info!(%endpoint, "serving; the operator registers this enclave with `staker-agent admin register-enclave --master {endpoint}`");
            Ok(())
        },
        shutdown,
        on_ready,
    )
    .await;
    if let Some(bridge) = bridge {
        bridge.shutdown().await;
    }
    served
}

/// Credentials from the parent's relay, asked for at every KMS request (they rotate).
struct RelayedCredentials {
    transport: Arc<dyn daas_bridge::VsockTransport>,
    port: u32,
}

impl daas_kms::CredentialSource for RelayedCredentials {
    async fn credentials(
        &self,
    ) -> Result<daas_kms::sigv4::Credentials, daas_kms::CredentialsError> {
        let relayed = daas_bridge::CredentialsClient::new(&*self.transport, self.port)
            .fetch()
            .await
            .map_err(|e| daas_kms::CredentialsError {
                source_name: self.describe(),
                reason: e.to_string(),
            })?;
        Ok(daas_kms::sigv4::Credentials::new(
            relayed.access_key_id.expose(),
            relayed.secret_access_key.expose(),
            Some(relayed.session_token.expose().to_owned()),
        ))
    }

    fn describe(&self) -> String {
        format!("the parent's credentials relay (vsock port {})", self.port)
    }
}

/// Asks KMS for the storage keys with this enclave's attestation; only ciphertext crosses the
/// parent. With `wrapped_keys = "etcd"` the wrapped keys are read from etcd, and generated
/// (KMS `GenerateDataKey` to this enclave's attestation) on the first start of an empty
/// datastore.
async fn release_keys(
    kms: &KmsKeys,
    backend: &daas_etcd_shim::EtcdBackend,
    attester: Arc<dyn daas_attestation::Attester>,
    transport: Arc<dyn daas_bridge::VsockTransport>,
    credentials_port: u32,
) -> Result<daas_etcd_shim::Keys> {
    let credentials = RelayedCredentials {
        transport,
        port: credentials_port,
    };
    // One client for every request: in the file's region, or the configured one for etcd (the
    // record must be in it; checked below, and again by the provider).
    let (mut wrapped, client) = match &kms.wrapped_keys {
        WrappedKeysSource::File(path) => {
            let wrapped = daas_kms::WrappedKeys::from_file(path)?;
            let client = kms_client(kms, &wrapped.region)?;
            (wrapped, client)
        }
        WrappedKeysSource::Etcd => {
            let (key_id, region) = match (&kms.key_id, &kms.region) {
                (Some(k), Some(r)) => (k.as_str(), r.as_str()),
                _ => bail!("[keys.kms] wrapped_keys = \"etcd\" needs key_id and region"),
            };
            let client = kms_client(kms, region)?;
            let wrapped = wrapped_keys_from_etcd(
                backend,
                &client,
                key_id,
                region,
                attester.as_ref(),
                &credentials,
            )
            .await?;
            (wrapped, client)
        }
    };
    if let Some(key_id) = &kms.key_id {
        let configured = KmsArn::parse(key_id).context("[keys.kms] key_id")?;
        if !configured.covers(&wrapped.key_id) {
            bail!(
                "the wrapped keys are under KMS key {}, but this enclave is configured for {key_id}",
                wrapped.key_id
            );
        }
        // Every request names the configured key (or alias), never the record's: KMS refuses a
        // blob that is not under it.
        wrapped.key_id = key_id.clone();
    }
    if let Some(region) = &kms.region
        && &wrapped.region != region
    {
        bail!(
            "the wrapped keys are in region {}, but this enclave is configured for {region}",
            wrapped.region
        );
    }
    let provider = daas_kms::KmsKeyProvider::new(wrapped, client, attester, credentials)?;
    let released = provider
        .release_keys()
        .await
        .context("releasing the storage keys from KMS")?;
    Ok(daas_etcd_shim::Keys::from_provider(Box::new(released))?)
}

fn kms_client(kms: &KmsKeys, region: &str) -> Result<daas_kms::KmsClient> {
    let mut client_config = daas_kms::KmsClientConfig::new(region.to_owned());
    client_config.endpoint = kms.endpoint.clone();
    client_config.connect_to = kms.connect_to;
    if let Some(bundle) = &kms.ca_bundle {
        client_config.ca_bundle = bundle.clone();
    }
    Ok(daas_kms::KmsClient::new(client_config)?)
}

/// The wrapped keys kept in etcd; on the first start of an empty datastore, a data key is
/// generated for this enclave and its record written (the first of two racing enclaves wins).
async fn wrapped_keys_from_etcd<C: daas_kms::CredentialSource>(
    backend: &daas_etcd_shim::EtcdBackend,
    client: &daas_kms::KmsClient,
    key_id: &str,
    region: &str,
    attester: &dyn daas_attestation::Attester,
    credentials: &C,
) -> Result<daas_kms::WrappedKeys> {
    use crate::wrapped_keys::{Stored, holds_cluster_data, load, store_new};
    if let Some(found) = load(backend)
        .await
        .context("reading the wrapped keys from etcd")?
    {
        tracing::info!(keys = found.keys.len(), kms_key = %found.key_id, "wrapped data keys read from etcd");
        return Ok(found);
    }
    if holds_cluster_data(backend)
        .await
        .context("checking whether etcd holds cluster data")?
    {
        bail!(
            "etcd holds cluster data but no wrapped data keys (the record {:?} is missing): a new key could not decrypt that data. Restore the record from a backup of etcd; refusing to generate a new key",
            String::from_utf8_lossy(crate::wrapped_keys::RECORD_KEY)
        );
    }
    tracing::warn!(kms_key = %key_id, "no wrapped data keys in an empty etcd: generating the cluster's first data key");
    let provisioned = daas_kms::provision_wrapped_key(client, key_id, attester, credentials)
        .await
        .context("generating the first data key with KMS")?;
    let keys = daas_kms::WrappedKeys::new_single(provisioned.entry, provisioned.kms_key, region)?;
    match store_new(backend, &keys)
        .await
        .context("writing the wrapped keys to etcd")?
    {
        Stored::Written => Ok(keys),
        Stored::Lost(other) => {
            tracing::info!("another enclave wrote the wrapped keys first; using its record");
            Ok(other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "/run/k3s-daas"
public_endpoint = "https://203.0.113.7:8080"
[chain]
rpc = "https://fullnode.testnet.sui.io:443"
chain_id = "4c78adacZZZ"
package = "0x1"
cluster = "0x2"
[etcd]
endpoints = ["https://10.0.0.5:2379"]
[keys.kms]
wrapped_keys = "/etc/k3s-daas/wrapped-keys.json"
"#;

    fn parse(text: &str) -> Result<ServeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn a_production_config_passes_its_checks() {
        let config = parse(GOOD).expect("parse");
        config.check(TeeKind::Nitro).expect("valid");
        assert_eq!(config.listen.proxy, default_proxy());
        assert_eq!(config.chain.stale_after, Duration::from_secs(30));
    }

    #[test]
    fn the_worker_section_has_defaults_and_bounds() {
        let config = parse(GOOD).expect("parse");
        let w = config
            .workers
            .options(&config.public_endpoint)
            .expect("valid")
            .expect("workers on by default");
        assert_eq!(w.listen, default_node_listen());
        assert_eq!(w.public_url.as_deref(), Some("https://203.0.113.7:6443"));
        assert_eq!(w.config.token_ttl, Duration::from_secs(600));
        for (toml, says) in [
            ("[workers]\ntoken_ttl = \"2h\"\n", "token_ttl"),
            ("[workers]\ntoken_ttl = \"0s\"\n", "token_ttl"),
            ("[workers]\ntoken_ttl = \"500ms\"\n", "token_ttl"),
            (
                "[workers]\nrevoked_taint_effect = \"Evict\"\n",
                "neither NoSchedule",
            ),
        ] {
            let config = parse(&format!("{GOOD}{toml}")).expect("parse");
            let err = config
                .workers
                .options(&config.public_endpoint)
                .expect_err(toml)
                .to_string();
            assert!(err.contains(says), "{toml}: {err}");
        }
        let off = parse(&format!("{GOOD}[workers]\nenabled = false\n")).expect("parse");
        assert!(
            off.workers
                .options(&off.public_endpoint)
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn rate_limits_are_set_per_role_and_checked_when_read() {
        let config = parse(GOOD).expect("parse");
        assert_eq!(
            config.proxy.rate_limits.limits(),
            crate::RoleRateLimits::default()
        );
        let config = parse(&format!(
            "{GOOD}[proxy.rate_limits]\nadmin = \"2000:4000\"\nuser = 50\nworker = \"unlimited\"\n"
        ))
        .expect("parse");
        let limits = config.proxy.rate_limits.limits();
        assert_eq!(limits.admin, crate::RateLimit::new(2000.0, 4000.0));
        assert_eq!(limits.user, crate::RateLimit::new(50.0, 100.0));
        assert!(limits.worker.is_unlimited());
        for (bad, says) in [
            ("admin = -5", "rate -5"),
            ("admin = \"10:0\"", "burst 0"),
            ("admin = \"lots\"", "not a rate"),
            ("admin = true", "requests per second"),
            ("root = 5", "unknown field"),
        ] {
            let err = parse(&format!("{GOOD}[proxy.rate_limits]\n{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn unsafe_or_incomplete_configs_are_refused_before_anything_starts() {
        let cases: [(&str, &str, TeeKind, &str); 7] = [
            (
                "[keys.kms]\nwrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n",
                "[keys]\nfile = \"/keys\"\n",
                TeeKind::Nitro,
                "--tee dev only",
            ),
            (
                "wrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n",
                "wrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n[keys]\nfile = \"/k\"\n",
                TeeKind::Dev,
                "either kms or file",
            ),
            (
                "endpoints = [\"https://10.0.0.5:2379\"]",
                "endpoints = []",
                TeeKind::Nitro,
                "at least one etcd member",
            ),
            (
                "endpoints = [\"https://10.0.0.5:2379\"]",
                "endpoints = [\"http://10.0.0.5:2379\"]",
                TeeKind::Nitro,
                "https only",
            ),
            (
                "rpc = \"https://fullnode.testnet.sui.io:443\"",
                "rpc = \"http://fullnode.testnet.sui.io:9000\"",
                TeeKind::Nitro,
                "https",
            ),
            (
                "public_endpoint = \"https://203.0.113.7:8080\"",
                "public_endpoint = \"http://203.0.113.7:8080\"",
                TeeKind::Nitro,
                "public_endpoint",
            ),
            (
                "[keys.kms]\nwrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n",
                "[keys]\n",
                TeeKind::Dev,
                "give kms",
            ),
        ];
        for (from, to, tee, want) in cases {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "case {want}: replacement did not apply");
            let config = parse(&text).expect("parses");
            let err = format!("{:#}", config.check(tee).expect_err(want));
            assert!(err.contains(want), "{want}: {err}");
        }
        // A file key is fine for --tee dev, and loopback http is fine for a local etcd.
        let dev = GOOD
            .replace(
                "[keys.kms]\nwrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n",
                "[keys]\nfile = \"/keys\"\n",
            )
            .replace("https://10.0.0.5:2379", "http://127.0.0.1:2379");
        parse(&dev)
            .expect("parse")
            .check(TeeKind::Dev)
            .expect("dev config");
        let ipv6 = dev.replace("http://127.0.0.1:2379", "http://[::1]:2379");
        parse(&ipv6)
            .expect("parse")
            .check(TeeKind::Dev)
            .expect("IPv6 loopback etcd");
        // No chain id, or an unknown key: refused by the parser, naming the field.
        let err = parse(&GOOD.replace("chain_id = \"4c78adacZZZ\"\n", "")).expect_err("no id");
        assert!(err.to_string().contains("chain_id"), "{err}");
        let err = parse(&format!("{GOOD}\n[extra]\nx = 1\n")).expect_err("unknown");
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn wrapped_keys_in_etcd_need_the_pinned_key_and_region() {
        let file = "wrapped_keys = \"/etc/k3s-daas/wrapped-keys.json\"\n";
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/0000";
        let etcd = GOOD.replace(
            file,
            &format!("wrapped_keys = \"etcd\"\nkey_id = \"{arn}\"\nregion = \"eu-west-1\"\n"),
        );
        let config = parse(&etcd).expect("parse");
        config.check(TeeKind::Nitro).expect("valid");
        let kms = config.keys.kms.as_ref().expect("kms");
        assert_eq!(kms.wrapped_keys, WrappedKeysSource::Etcd);
        for (text, says) in [
            (
                GOOD.replace(file, "wrapped_keys = \"etcd\"\n"),
                "needs key_id",
            ),
            (
                GOOD.replace(
                    file,
                    "wrapped_keys = \"etcd\"\nkey_id = \"alias/k3s\"\nregion = \"eu-west-1\"\n",
                ),
                "not an ARN",
            ),
            (
                GOOD.replace(
                    file,
                    &format!(
                        "wrapped_keys = \"etcd\"\nkey_id = \"{arn}\"\nregion = \"us-east-1\"\n"
                    ),
                ),
                "not in region",
            ),
            (
                GOOD.replace(
                    file,
                    &format!("wrapped_keys = \"etcd\"\nkey_id = \"{arn}\"\n"),
                ),
                "needs region",
            ),
        ] {
            let err = format!(
                "{:#}",
                parse(&text)
                    .expect("parse")
                    .check(TeeKind::Nitro)
                    .expect_err(says)
            );
            assert!(err.contains(says), "{says}: {err}");
        }
        // Neither "etcd" nor an absolute path: refused by the parser.
        let err =
            parse(&GOOD.replace(file, "wrapped_keys = \"keys.json\"\n")).expect_err("relative");
        assert!(err.to_string().contains("absolute path"), "{err}");
    }

    #[test]
    fn a_configured_alias_covers_keys_of_its_account_and_region_only() {
        let alias =
            KmsArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/k3s-daas-prod").expect("alias");
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd";
        assert!(alias.covers(key));
        for other in [
            "arn:aws:kms:eu-west-1:999999999999:key/1234abcd", // another account
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd", // another region
            "arn:aws:kms:eu-west-1:111122223333:alias/other",  // an alias is not a key
            "1234abcd",                                        // not an ARN
        ] {
            assert!(!alias.covers(other), "{other}");
        }
        let pinned = KmsArn::parse(key).expect("key");
        assert!(pinned.covers(key));
        assert!(!pinned.covers("arn:aws:kms:eu-west-1:111122223333:key/other"));
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:kms:eu-west-1:1111:key/x",
            "arn:aws:kms:eu-west-1:111122223333:key/",
            "arn:aws:kms:EU:111122223333:key/x",
            "arn:aws:kms:eu-west-1:111122223333:grant/x",
        ] {
            assert!(KmsArn::parse(bad).is_err(), "{bad}");
        }
    }

    /// The example the deployment docs start from (deploy-ec2/enclave/cluster.example) is a
    /// valid production configuration.
    #[test]
    fn the_deployment_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy-ec2/enclave/cluster.example/serve.toml");
        let config = ServeConfig::load(&path).expect("the example parses");
        config
            .check(TeeKind::Nitro)
            .expect("the example passes the production checks");
        assert_eq!(
            config.proxy.rate_limits.limits(),
            crate::RoleRateLimits {
                admin: crate::RateLimit::new(1000.0, 2000.0),
                ..crate::RoleRateLimits::default()
            }
        );
        let bridge = config.bridge.as_ref().expect("the example uses the bridge");
        assert_eq!(bridge.credentials_port, Some(8001));
        // Every egress target the enclave names is on its own allow-list.
        for e in &bridge.egress {
            assert!(bridge.allow.allows(&e.target), "{e:?} not allowed");
        }
    }
}
