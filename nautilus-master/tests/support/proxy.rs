//! An in-process kubectl front door for tests: the real `Proxy` (TLS, authenticator, upstream
//! client) with an in-memory stake view whose records the test controls.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use daas_seal::{Address, Claims, NodeName, Role, mint};
use daas_wallet::{Scheme, WalletKey};
use nautilus_master::auth::{
    AuthConfig, InMemoryStakeView, SealAuthenticator, StakeRecord, StakeStatus, unix_ms_now,
};
use nautilus_master::proxy::{
    Proxy, ProxyConfig, ServeLimits, ServerCert, UpstreamConfig, UpstreamTls, serve_admin,
    serve_proxy, webhook::serve_webhook,
};

pub type View = Arc<InMemoryStakeView>;

/// A staker with a wallet key and an active stake record in the view.
pub struct Staker {
    pub key: WalletKey,
    pub stake: Address,
    pub role: Role,
    pub node: Option<String>,
}

impl Staker {
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// A fresh token valid for `ttl_ms` at token epoch `epoch`.
    pub fn token(&self, cluster: Address, epoch: u64) -> String {
        self.token_at(cluster, epoch, unix_ms_now(), 10 * 60 * 1000)
    }

    pub fn token_at(&self, cluster: Address, epoch: u64, issued_ms: u64, ttl_ms: u64) -> String {
        let mut b = Claims::builder(cluster, self.address(), self.stake, self.role)
            .lifetime(issued_ms, ttl_ms)
            .token_epoch(epoch)
            .random_nonce();
        if let Some(n) = &self.node {
            b = b.node_name(NodeName::new(n.clone()).unwrap());
        }
        mint(self.key.keypair(), b.build().unwrap())
            .unwrap()
            .as_str()
            .to_owned()
    }
}

pub fn random_address() -> Address {
    WalletKey::generate(Scheme::Ed25519).address()
}

/// Adds an active staker of `role` to `view`.
pub fn add_staker(view: &InMemoryStakeView, cluster: Address, role: Role) -> Staker {
    let key = WalletKey::generate(Scheme::Ed25519);
    let stake = random_address();
    let node = (role == Role::Worker).then(|| "worker-1".to_owned());
    view.upsert(StakeRecord {
        id: stake,
        owner: key.address(),
        cluster,
        role,
        node_name: node.clone(),
        amount_mist: 20_000_000_000,
        status: StakeStatus::Active,
        token_epoch: 0,
        granted: true,
    });
    Staker {
        key,
        stake,
        role,
        node,
    }
}

/// Front-proxy credentials of the kube-apiserver peer's PKI (`run_dir/pki`).
pub fn peer_upstream(url: &str, pki: &Path) -> UpstreamConfig {
    let tls = UpstreamTls::from_files(
        &pki.join("ca.crt"),
        &pki.join("front-proxy-client.crt"),
        &pki.join("front-proxy-client.key"),
    )
    .unwrap();
    UpstreamConfig::new(url, tls).unwrap()
}

/// The proxy, webhook and admin listeners running on a private runtime; stopped on drop.
pub struct RunningProxy {
    pub runtime: tokio::runtime::Runtime,
    pub proxy: Arc<Proxy<View>>,
    pub view: View,
    pub cluster: Address,
    pub url: String,
    pub addr: SocketAddr,
    pub webhook_url: String,
    pub admin_url: String,
    pub ca_path: PathBuf,
    pub ca_pem: String,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

/// How a [`RunningProxy`] starts, beyond its [`ProxyConfig`].
pub struct Options {
    pub limits: ServeLimits,
    /// Adjusts the authenticator's settings (the cluster id is filled in).
    pub auth: Box<dyn FnOnce(AuthConfig) -> AuthConfig>,
    /// Whether a failing `Proxy::bootstrap` fails the start (it may be meant to fail).
    pub require_bootstrap: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: ServeLimits::default(),
            auth: Box::new(|c| c),
            require_bootstrap: true,
        }
    }
}

impl RunningProxy {
    pub fn start(tls_dir: &Path, config: ProxyConfig) -> Self {
        Self::start_with(tls_dir, config, ServeLimits::default())
    }

    pub fn start_with(tls_dir: &Path, config: ProxyConfig, limits: ServeLimits) -> Self {
        Self::start_opts(
            tls_dir,
            config,
            Options {
                limits,
                ..Options::default()
            },
        )
    }

    pub fn start_opts(tls_dir: &Path, config: ProxyConfig, options: Options) -> Self {
        let Options {
            limits,
            auth: tune,
            require_bootstrap,
        } = options;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("DAAS_LOG")
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = random_address();
        let view: View = Arc::new(InMemoryStakeView::default());
        let auth = Arc::new(SealAuthenticator::new(
            AuthConfig {
                cluster,
                ..tune(AuthConfig::new(cluster))
            },
            view.clone(),
        ));
        let cert = ServerCert::load_or_generate(
            tls_dir,
            &["127.0.0.1".to_owned(), "localhost".to_owned()],
        )
        .unwrap();
        let server_tls = cert.server_config().unwrap();
        let proxy = runtime.block_on(async { Proxy::new(config, auth.clone()).unwrap() });
        let bootstrapped = runtime.block_on(proxy.bootstrap());
        if require_bootstrap {
            bootstrapped.unwrap();
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (addr, webhook, admin) = runtime.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let w = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addrs = (
                l.local_addr().unwrap(),
                w.local_addr().unwrap(),
                a.local_addr().unwrap(),
            );
            tokio::spawn(serve_proxy(
                proxy.clone(),
                l,
                Some(server_tls.clone()),
                limits,
                wait(stopped.clone()),
            ));
            tokio::spawn(serve_webhook(auth, w, server_tls, wait(stopped.clone())));
            tokio::spawn(proxy.clone().maintain(wait(stopped.clone())));
            tokio::spawn(serve_admin(proxy.clone(), Vec::new(), a, wait(stopped)));
            addrs
        });
        RunningProxy {
            runtime,
            proxy,
            view,
            cluster,
            url: format!("https://{addr}"),
            addr,
            webhook_url: format!("https://{webhook}/tokenreview"),
            admin_url: format!("http://{admin}"),
            ca_path: cert.ca_path.clone(),
            ca_pem: cert.ca_pem.clone(),
            stop: Some(stop),
        }
    }

    pub fn staker(&self, role: Role) -> Staker {
        add_staker(&self.view, self.cluster, role)
    }

    /// Gives `staker` (of another proxy, e.g. before a restart) an active record of its role
    /// in this proxy's cluster.
    pub fn enroll(&self, staker: &Staker) {
        self.view.upsert(StakeRecord {
            id: staker.stake,
            owner: staker.address(),
            cluster: self.cluster,
            role: staker.role,
            node_name: staker.node.clone(),
            amount_mist: 20_000_000_000,
            status: StakeStatus::Active,
            token_epoch: 0,
            granted: true,
        });
    }

    /// Bumps the record's token epoch (as `revoke_tokens` on chain), then does what the chain
    /// follower does for such a change: evicts its tokens and re-checks its live sessions.
    pub fn revoke(&self, staker: &Staker) {
        self.view.update(&staker.stake, |r| r.token_epoch += 1);
        let auth = self.proxy.authenticator();
        auth.evict_stake(&staker.stake);
        let _enter = self.runtime.enter();
        auth.revalidate(nautilus_master::auth::Scope::Stake(staker.stake));
    }

    /// Writes a kubeconfig for `token` pinned to the proxy's CA.
    pub fn kubeconfig(
        &self,
        dir: &Path,
        name: &str,
        token: &str,
        namespace: Option<&str>,
    ) -> PathBuf {
        write_kubeconfig(dir, name, &self.url, &self.ca_pem, token, namespace)
    }
}

/// Writes `dir/<name>.kubeconfig`: `server` pinned to `ca_pem`, a static bearer `token`.
pub fn write_kubeconfig(
    dir: &Path,
    name: &str,
    server: &str,
    ca_pem: &str,
    token: &str,
    namespace: Option<&str>,
) -> PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    let ns = namespace
        .map(|n| format!("    namespace: {n}\n"))
        .unwrap_or_default();
    let ca = base64_std(ca_pem.as_bytes());
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: daas\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: daas\n    user: {name}\n{ns}current-context: {name}\n"
        ),
    )
    .unwrap();
    path
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

pub fn base64_std(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}
