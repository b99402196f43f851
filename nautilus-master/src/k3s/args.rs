//! The `k3s server` command line, built from a typed configuration. No I/O.
//!
//! Every flag is emitted as one `--flag=value` argument, so a flag and its value can never be
//! split or reordered by later arguments, and tests can look for exact strings.

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// K3s's default https port: the K3s supervisor, which serves `/cacerts`, `/v1-k3s/*` and passes
/// everything else to kube-apiserver.
pub const DEFAULT_HTTPS_PORT: u16 = 6443;

/// Packaged components that are switched off by default: traefik and servicelb would expose
/// workloads on the control-plane host, and metrics-server needs an agent to scrape. The
/// control plane runs without an agent (`--disable-agent`), so none of them would work anyway.
pub const DEFAULT_DISABLE: &[&str] = &["traefik", "servicelb", "metrics-server"];

/// kube-apiserver admission plugins enabled on top of its defaults. `NodeRestriction` is what
/// K3s itself sets for `enable-admission-plugins`; a `--kube-apiserver-arg` for that flag
/// replaces K3s's value, so it is listed again. `DenyServiceExternalIPs` refuses new
/// `spec.externalIPs` on Services for everyone (CVE-2020-8554: a Service with an external IP
/// captures that address's traffic on every node); kube-apiserver leaves it off by default.
pub const ADMISSION_PLUGINS: &str = "NodeRestriction,DenyServiceExternalIPs";

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyFiles {
    /// Certificate (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
}

/// Where K3s keeps the cluster state: the encrypting etcd shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datastore {
    /// The shim's URL: `http://127.0.0.1:2379`, `https://127.0.0.1:2379` or `unix://…`. K3s
    /// passes it to kube-apiserver as `--etcd-servers`. Must not carry credentials (argv is
    /// world-readable in `/proc`).
    pub endpoint: String,
    /// CA (PEM) of the shim's server certificate (`--datastore-cafile`), for `https://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mTLS to the shim (`--datastore-certfile`/`--datastore-keyfile`).
    pub client_cert: Option<CertKeyFiles>,
}

impl Datastore {
    /// A datastore reached without TLS (loopback or a unix socket).
    pub fn plain(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ca_file: None,
            client_cert: None,
        }
    }
}

/// kube-apiserver's TokenReview webhook: bearer tokens no other authenticator accepts are sent
/// to our webhook, so Seal tokens work against the apiserver too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenWebhookArgs {
    /// The kubeconfig-format file naming the webhook (see
    /// [`write_token_webhook_kubeconfig`](super::write_token_webhook_kubeconfig)).
    pub config_file: PathBuf,
    /// How long kube-apiserver caches a webhook answer (its default is 2 minutes, which would
    /// keep a revoked stake's token working that long).
    pub cache_ttl: Duration,
}

impl TokenWebhookArgs {
    /// The default cache TTL: short, so revocation takes effect quickly.
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);

    /// A webhook configured by `config_file`, with [`Self::DEFAULT_CACHE_TTL`].
    pub fn new(config_file: impl Into<PathBuf>) -> Self {
        Self {
            config_file: config_file.into(),
            cache_ttl: Self::DEFAULT_CACHE_TTL,
        }
    }
}

/// What `k3s server` is started with. [`K3sServerConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sServerConfig {
    /// K3s's state directory (certificates, manifests, `server/token`).
    pub data_dir: PathBuf,
    /// The cluster datastore.
    pub datastore: Datastore,
    /// Address the supervisor/apiserver listens on. Default 127.0.0.1: only the proxy (and the
    /// webhook's peers) inside the enclave reach it.
    pub bind_address: IpAddr,
    /// Address kube-apiserver advertises in the `kubernetes` Service endpoints: the address
    /// workers' pods reach the API at (the enclave's bridged address). `None` leaves the choice
    /// to K3s (the host's first interface). Never loopback: the API server refuses loopback
    /// endpoints, which would leave `kubernetes.default` without endpoints for in-cluster
    /// clients such as CoreDNS.
    pub advertise_address: Option<IpAddr>,
    /// The https port ([`DEFAULT_HTTPS_PORT`]).
    pub https_listen_port: u16,
    /// Extra subject alternative names for the serving certificate (the names the proxy and
    /// agents use to reach it).
    pub tls_sans: Vec<String>,
    /// File holding the cluster token (see [`ClusterToken`](super::ClusterToken)).
    pub token_file: PathBuf,
    /// Where K3s writes its admin kubeconfig.
    pub write_kubeconfig: PathBuf,
    /// Packaged components not to deploy ([`DEFAULT_DISABLE`]); empty for none.
    pub disable: Vec<String>,
    /// The TokenReview webhook, if any.
    pub token_webhook: Option<TokenWebhookArgs>,
    /// Appended last, verbatim. For single-valued flags the last occurrence wins; list flags
    /// (`--tls-san`, `--kube-apiserver-arg`) accumulate.
    pub extra_args: Vec<OsString>,
}

impl K3sServerConfig {
    /// Defaults: loopback bind address, advertise address chosen by K3s, port 6443, no extra SANs,
    /// [`DEFAULT_DISABLE`], no webhook, no extra arguments.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        datastore: Datastore,
        token_file: impl Into<PathBuf>,
        write_kubeconfig: impl Into<PathBuf>,
    ) -> Self {
        Self {
            data_dir: data_dir.into(),
            datastore,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_address: None,
            https_listen_port: DEFAULT_HTTPS_PORT,
            tls_sans: Vec::new(),
            token_file: token_file.into(),
            write_kubeconfig: write_kubeconfig.into(),
            disable: DEFAULT_DISABLE.iter().map(|s| (*s).to_owned()).collect(),
            token_webhook: None,
            extra_args: Vec::new(),
        }
    }
}

/// `--name=value` as one argument (values may be non-UTF-8 paths).
fn flag(name: &str, value: impl AsRef<OsStr>) -> OsString {
    let value = value.as_ref();
    let mut arg = OsString::with_capacity(name.len() + 1 + value.len());
    arg.push(name);
    arg.push("=");
    arg.push(value);
    arg
}

/// `--kube-apiserver-arg=<apiserver flag>=<value>`.
fn apiserver_arg(name: &str, value: impl AsRef<OsStr>) -> OsString {
    let mut inner = OsString::from(name);
    inner.push("=");
    inner.push(value);
    flag("--kube-apiserver-arg", inner)
}

/// A duration as Go's `time.ParseDuration` reads it: whole seconds, else milliseconds.
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The `k3s server` argument list for `config` (without the program name).
pub fn server_args(config: &K3sServerConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::with_capacity(24 + config.extra_args.len());
    args.push("server".into());
    // Our own directory, so K3s state sits with the rest of the enclave's state and two
    // instances on one host (tests) do not share /var/lib/rancher/k3s.
    args.push(flag("--data-dir", &config.data_dir));
    // Control plane only: no kubelet, container runtime or CNI here, so workloads never run in
    // the enclave's trust domain; workers join as agents.
    args.push("--disable-agent".into());
    // The encrypting etcd shim is the only datastore: values reach storage only as ciphertext.
    args.push(flag("--datastore-endpoint", &config.datastore.endpoint));
    // TLS to the shim when it serves https (K3s hands these to kube-apiserver's --etcd-*file).
    if let Some(ca) = &config.datastore.ca_file {
        args.push(flag("--datastore-cafile", ca));
    }
    if let Some(client) = &config.datastore.client_cert {
        args.push(flag("--datastore-certfile", &client.cert_file));
        args.push(flag("--datastore-keyfile", &client.key_file));
    }
    // Loopback by default: kubectl reaches the API only through the Seal-token proxy.
    args.push(flag("--bind-address", config.bind_address.to_string()));
    // What the apiserver publishes as the `kubernetes` endpoint; K3s would otherwise pick the
    // host's first interface address.
    if let Some(addr) = config.advertise_address {
        args.push(flag("--advertise-address", addr.to_string()));
    }
    args.push(flag(
        "--https-listen-port",
        config.https_listen_port.to_string(),
    ));
    // The names the proxy and agents dial must be in the serving certificate.
    for san in &config.tls_sans {
        args.push(flag("--tls-san", san));
    }
    // The join token from a 0600 file: a token on argv would be readable by every local user
    // through /proc/<pid>/cmdline.
    args.push(flag("--token-file", &config.token_file));
    // The admin kubeconfig is a cluster-admin credential: owner-only.
    args.push(flag("--write-kubeconfig", &config.write_kubeconfig));
    args.push(flag("--write-kubeconfig-mode", "0600"));
    if !config.disable.is_empty() {
        args.push(flag("--disable", config.disable.join(",")));
    }
    // K3s sets this today; pinning it keeps "no anonymous requests" independent of K3s defaults.
    args.push(apiserver_arg("anonymous-auth", "false"));
    // K3s's own NodeRestriction, plus no Service externalIPs (CVE-2020-8554).
    args.push(apiserver_arg("enable-admission-plugins", ADMISSION_PLUGINS));
    if let Some(webhook) = &config.token_webhook {
        // Bearer tokens that K3s's own authenticators reject go to our TokenReview webhook.
        args.push(apiserver_arg(
            "authentication-token-webhook-config-file",
            &webhook.config_file,
        ));
        // Short cache so a revoked stake stops authenticating quickly.
        args.push(apiserver_arg(
            "authentication-token-webhook-cache-ttl",
            go_duration(webhook.cache_ttl),
        ));
        // Our webhook speaks authentication.k8s.io/v1; the apiserver's default is v1beta1.
        args.push(apiserver_arg("authentication-token-webhook-version", "v1"));
    }
    args.extend(config.extra_args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> K3sServerConfig {
        K3sServerConfig::new(
            "/state/k3s",
            Datastore::plain("http://127.0.0.1:2379"),
            "/state/k3s-token/token",
            "/state/k3s/admin.kubeconfig",
        )
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_str().expect("test arguments are UTF-8").to_owned())
            .collect()
    }

    /// Checks the argument list of `config` against `expected`, exactly and in order.
    fn check(config: &K3sServerConfig, expected: &[&str]) {
        assert_eq!(strings(&server_args(config)), expected);
    }

    const BASE: &[&str] = &[
        "server",
        "--data-dir=/state/k3s",
        "--disable-agent",
        "--datastore-endpoint=http://127.0.0.1:2379",
        "--bind-address=127.0.0.1",
        "--https-listen-port=6443",
        "--token-file=/state/k3s-token/token",
        "--write-kubeconfig=/state/k3s/admin.kubeconfig",
        "--write-kubeconfig-mode=0600",
        "--disable=traefik,servicelb,metrics-server",
        "--kube-apiserver-arg=anonymous-auth=false",
        "--kube-apiserver-arg=enable-admission-plugins=NodeRestriction,DenyServiceExternalIPs",
    ];

    #[test]
    fn defaults() {
        check(&base(), BASE);
    }

    #[test]
    fn every_option() {
        let mut config = base();
        config.datastore = Datastore {
            endpoint: "https://127.0.0.1:2379".into(),
            ca_file: Some("/tls/etcd-ca.pem".into()),
            client_cert: Some(CertKeyFiles {
                cert_file: "/tls/client.pem".into(),
                key_file: "/tls/client-key.pem".into(),
            }),
        };
        config.bind_address = "10.0.0.5".parse().expect("literal");
        config.advertise_address = Some("10.0.0.6".parse().expect("literal"));
        config.https_listen_port = 16443;
        config.tls_sans = vec!["k3s.daas.internal".into(), "10.0.0.5".into()];
        config.disable = vec!["traefik".into(), "coredns".into()];
        config.token_webhook = Some(TokenWebhookArgs {
            config_file: "/state/webhook.kubeconfig".into(),
            cache_ttl: Duration::from_millis(1500),
        });
        config.extra_args = vec!["--debug".into(), "--tls-san=extra".into()];
        check(
            &config,
            &[
                "server",
                "--data-dir=/state/k3s",
                "--disable-agent",
                "--datastore-endpoint=https://127.0.0.1:2379",
                "--datastore-cafile=/tls/etcd-ca.pem",
                "--datastore-certfile=/tls/client.pem",
                "--datastore-keyfile=/tls/client-key.pem",
                "--bind-address=10.0.0.5",
                "--advertise-address=10.0.0.6",
                "--https-listen-port=16443",
                "--tls-san=k3s.daas.internal",
                "--tls-san=10.0.0.5",
                "--token-file=/state/k3s-token/token",
                "--write-kubeconfig=/state/k3s/admin.kubeconfig",
                "--write-kubeconfig-mode=0600",
                "--disable=traefik,coredns",
                "--kube-apiserver-arg=anonymous-auth=false",
                "--kube-apiserver-arg=enable-admission-plugins=NodeRestriction,DenyServiceExternalIPs",
                "--kube-apiserver-arg=authentication-token-webhook-config-file=/state/webhook.kubeconfig",
                "--kube-apiserver-arg=authentication-token-webhook-cache-ttl=1500ms",
                "--kube-apiserver-arg=authentication-token-webhook-version=v1",
                "--debug",
                "--tls-san=extra",
            ],
        );
    }

    #[test]
    fn ca_only_tls_datastore() {
        let mut config = base();
        config.datastore.endpoint = "https://127.0.0.1:2379".into();
        config.datastore.ca_file = Some("/tls/ca.pem".into());
        let args = strings(&server_args(&config));
        assert!(args.contains(&"--datastore-cafile=/tls/ca.pem".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--datastore-certfile")));
        assert!(!args.iter().any(|a| a.starts_with("--datastore-keyfile")));
    }

    #[test]
    fn webhook_with_default_ttl() {
        let mut config = base();
        config.token_webhook = Some(TokenWebhookArgs::new("/w.kubeconfig"));
        let args = strings(&server_args(&config));
        let webhook: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| a.contains("webhook"))
            .collect();
        assert_eq!(
            webhook,
            [
                "--kube-apiserver-arg=authentication-token-webhook-config-file=/w.kubeconfig",
                "--kube-apiserver-arg=authentication-token-webhook-cache-ttl=10s",
                "--kube-apiserver-arg=authentication-token-webhook-version=v1",
            ]
        );
    }

    #[test]
    fn no_webhook_args_unless_configured() {
        assert!(
            !strings(&server_args(&base()))
                .iter()
                .any(|a| a.contains("webhook"))
        );
    }

    #[test]
    fn nothing_disabled() {
        let mut config = base();
        config.disable.clear();
        assert!(
            !strings(&server_args(&config))
                .iter()
                .any(|a| a.starts_with("--disable="))
        );
    }

    #[test]
    fn token_only_by_file() {
        let args = strings(&server_args(&base()));
        assert!(
            !args
                .iter()
                .any(|a| a == "--token" || a.starts_with("--token=") || a == "-t"),
            "{args:?}"
        );
        assert!(args.contains(&"--token-file=/state/k3s-token/token".to_owned()));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(0)), "0s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_pass_through() {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let mut config = base();
        config.data_dir = PathBuf::from(OsString::from_vec(b"/st\xffate".to_vec()));
        let args = server_args(&config);
        assert_eq!(args[1].as_bytes(), b"--data-dir=/st\xffate");
    }
}
