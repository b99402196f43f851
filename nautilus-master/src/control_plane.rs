//! The control plane both entry points run (`serve` in the enclave, `dev` on one machine), until
//! asked to stop.
//!
//! Started, in order: the chain follower (pinned chain), the encrypting etcd shim on the given
//! backend, the enclave's TLS identity and attestation service, `k3s server` on that shim when a
//! k3s binary is found (or any API server given with `--upstream`), then the kubectl proxy (TLS
//! on :8080, with `GET /attestation`), the TokenReview webhook and the health/metrics listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::k3s::{
    ClusterToken, Datastore, HttpsPingProbe, K3sServerConfig, Supervisor, SupervisorConfig,
    SupervisorState, TokenWebhookArgs, resolve_k3s_binary, server_args,
    write_token_webhook_kubeconfig,
};
use crate::proxy::{
    Proxy, ProxyConfig, ReadyCheck, ServeLimits, UpstreamConfig, UpstreamTls, serve_admin,
    serve_proxy, webhook,
};
use crate::tee::{AttestationService, EnclaveIdentity};

/// Where the Kubernetes API comes from.
#[derive(Clone, Debug)]
pub enum UpstreamChoice {
    /// Start `k3s server` (explicit binary, else `$K3S_BIN`, else `k3s` on PATH).
    K3s { bin: Option<PathBuf> },
    /// An API server that is already running (request-header auth with a front-proxy cert).
    External {
        url: String,
        ca: PathBuf,
        client_cert: PathBuf,
        client_key: PathBuf,
    },
    /// Neither: the proxy answers 503 with instructions.
    None,
}

/// The encrypting etcd shim's store: a backend, the keys, and the freshness anchor.
pub struct Store<B> {
    pub backend: B,
    pub keys: Arc<daas_etcd_shim::Keys>,
    pub anchor: daas_etcd_shim::Anchor,
    pub baseline: daas_etcd_shim::Baseline,
    /// Describes the store for logs (e.g. "embedded store …/etcd", "etcd https://…").
    pub describe: String,
}

/// Who the master is and which chain it trusts.
pub struct Trust {
    /// The pinned chain (checked before anything starts).
    pub chain: daas_chain::GrpcChain,
    pub cluster: daas_seal::Address,
    /// Silence after which the follower counts its stream as lost.
    pub stale_after: Duration,
    /// Produces the attestation documents (the NSM, or the dev attester).
    pub attester: Arc<dyn daas_attestation::Attester>,
    /// Names in the proxy certificate besides the listen address.
    pub sans: Vec<String>,
    /// The endpoint bound into every document; `None`: `https://<bound proxy address>`.
    pub public_endpoint: Option<String>,
}

/// Listen addresses and choices of the control plane.
#[derive(Clone, Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub webhook_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The etcd shim's address; `None`: the 0600 unix socket `<data-dir>/etcd.sock`.
    pub etcd_listen: Option<daas_etcd_shim::Listen>,
    pub upstream: UpstreamChoice,
    /// Serve :8080 without TLS (warned about; never outside development).
    pub insecure_dev_http: bool,
    /// Role bindings and what each user namespace gets.
    pub rbac: crate::proxy::rbac::RbacPolicy,
    /// Operator pin of the admin role (see [`crate::auth::AuthConfig::admin_allowlist`]).
    pub admin_allowlist: Option<std::collections::BTreeSet<daas_seal::Address>>,
    /// Requests per identity at :8080, by role.
    pub rate_limits: crate::proxy::RoleRateLimits,
    /// The worker path (join API and the :6443 front); `None`: no workers.
    pub workers: Option<WorkerOptions>,
}

/// Where the :6443 front listens and how nodes are handled.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub listen: SocketAddr,
    /// The URL agents are told to use; `None`: `https://<bound address>`.
    pub public_url: Option<String>,
    /// The CA (PEM) that signs kubelet client certificates. `None`: the upstream's CA
    /// (`--upstream-ca`) for an external API server, K3s's `client-ca.crt` for k3s.
    pub client_ca: Option<PathBuf>,
    /// Token lifetime, taint effect, unbonding grace (its `server_url` is filled in here).
    pub config: crate::workers::WorkersConfig,
}

/// Port `k3s server` listens on inside the enclave: the :6443 front takes 6443 and forwards to
/// it (K3s advertises the front's port to agents, `--advertise-port`).
pub const K3S_INTERNAL_PORT: u16 = 6444;

/// What is running, for the banner.
#[derive(Debug)]
pub struct Running {
    pub proxy_url: String,
    /// Where the (public) CA certificate was written.
    pub ca_path: PathBuf,
    /// The endpoint bound into the attestation documents.
    pub endpoint: String,
    pub webhook_url: String,
    pub admin_url: String,
    pub etcd_url: String,
    pub upstream: String,
    /// Whether an API server is behind the proxy.
    pub has_upstream: bool,
    pub k3s: Option<String>,
    /// The :6443 front's URL, when workers can join.
    pub node_url: Option<String>,
}

/// Runs everything until `shutdown` resolves. Once every listener is bound, `attested` gets
/// the attestation service and the endpoint (`dev` registers its dev enclave there); then
/// `on_ready` is called.
pub async fn run<B, F>(
    opts: Options,
    trust: Trust,
    store: Store<B>,
    attested: impl FnOnce(Arc<AttestationService>, String) -> F,
    shutdown: impl std::future::Future<Output = ()> + Send,
    on_ready: impl FnOnce(&Running),
) -> Result<()>
where
    B: daas_etcd_shim::backend::Backend,
    F: std::future::Future<Output = Result<()>>,
{
    use daas_etcd_shim::{EtcdShim, Listen, Listener, ServeOptions, ShimOptions};

    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();

    // 0. The chain: trusted (pinned chain id, local endpoint) before anything else starts.
    let (auth, _status, follower) = crate::chain::follow::following(
        trust.chain.clone(),
        crate::auth::AuthConfig {
            admin_allowlist: opts.admin_allowlist.clone(),
            ..crate::auth::AuthConfig::new(trust.cluster)
        },
        trust.stale_after,
    )
    .await
    .context("the chain endpoint")?;
    tasks.spawn({
        let stop = stopped(stop_rx.clone());
        async move {
            tokio::select! {
                r = follower => r.context("chain follower"),
                () = stop => Ok(()),
            }
        }
    });
    // 1. etcd shim on the store, served on a 0600 unix socket under the data dir (no TCP port
    //    unless etcd_listen asks for a loopback one), KeyAdmin on a socket of its own, the
    //    freshness anchor outside the store.
    let Store {
        backend,
        keys,
        anchor,
        baseline,
        describe: store_desc,
    } = store;
    // Absolute: k3s hands the URL to kube-apiserver, which resolves it from its own directory.
    let socket = |name: &str| -> Result<Listen> {
        Ok(Listen::Unix(std::path::absolute(opts.data_dir.join(name))?))
    };
    let etcd_listen = match &opts.etcd_listen {
        Some(listen) => listen.clone(),
        None => socket("etcd.sock")?,
    };
    let listener = Listener::bind(&etcd_listen, None)
        .await
        .with_context(|| format!("etcd shim: binding {etcd_listen:?}"))?;
    let admin_listener = Listener::bind(&socket("etcd-admin.sock")?, None)
        .await
        .context("etcd shim: binding the KeyAdmin socket")?;
    let etcd_url = listener.url(false);
    let freshness = daas_etcd_shim::anchor::start(&backend, &keys, &anchor, baseline)
        .await
        .context("etcd shim: checking the store against its freshness anchor")?;
    {
        let options = ShimOptions {
            advertise_url: etcd_url.clone(),
            ..ShimOptions::default()
        };
        let shim = EtcdShim::with_freshness(backend, keys, options, freshness);
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            let options = ServeOptions {
                tls: None,
                key_reload_interval: Duration::from_secs(30),
                anchor: Some(anchor),
            };
            daas_etcd_shim::serve(shim, listener, Some(admin_listener), options, stop)
                .await
                .map_err(anyhow::Error::from)
                .context("etcd shim")
        });
    }
    info!(url = %etcd_url, store = %store_desc, "etcd shim serving (AES-256-GCM values)");

    // 2. The enclave's TLS identity (also the webhook's): a CA made in memory at every start,
    //    its key never written; only the public CA certificate goes to disk (for --ca-file).
    let mut sans = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        opts.listen.ip().to_string(),
    ];
    sans.extend(trust.sans.iter().cloned());
    sans.sort();
    sans.dedup();
    let identity = EnclaveIdentity::generate(&sans)?;
    let ca_path = opts.data_dir.join("proxy/ca.crt");
    if let Some(dir) = ca_path.parent() {
        crate::private_fs::create_private_dir(dir)?;
    }
    crate::private_fs::write_atomic(&ca_path, identity.ca_pem().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", ca_path.display()))?;
    let cert = identity.server_cert();
    let server_tls = cert.server_config()?;
    // Bind every listener before anything starts, so a busy port fails fast and port 0 works
    // (the banner and the k3s webhook config use the bound addresses).
    let proxy_listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("proxy: binding {}", opts.listen))?;
    let webhook_listener = tokio::net::TcpListener::bind(opts.webhook_listen)
        .await
        .with_context(|| format!("webhook: binding {}", opts.webhook_listen))?;
    let admin_listener = tokio::net::TcpListener::bind(opts.admin_listen)
        .await
        .with_context(|| format!("admin: binding {}", opts.admin_listen))?;
    let node_listener = match &opts.workers {
        Some(w) => Some(
            tokio::net::TcpListener::bind(w.listen)
                .await
                .with_context(|| format!(":6443 front: binding {}", w.listen))?,
        ),
        None => None,
    };
    let node_addr = node_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    let proxy_addr = proxy_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let webhook_url = format!(
        "https://{}{}",
        webhook_listener.local_addr()?,
        webhook::PATH
    );
    // The attestation service binds cluster, CA and the public endpoint.
    let endpoint = trust
        .public_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://{proxy_addr}"));
    let attestation = Arc::new(AttestationService::new(
        trust.attester.clone(),
        &identity,
        trust.cluster.into_inner(),
        &endpoint,
    ));
    info!(attester = %attestation.describe(), %endpoint, ca_sha256 = %hex::encode(identity.ca_sha256()), "attestation service ready");
    if let Err(e) = attested(attestation.clone(), endpoint.clone()).await {
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        return Err(e);
    }

    // 3. The Kubernetes API: k3s, an external server, or none.
    let mut k3s_state: Option<watch::Receiver<SupervisorState>> = None;
    let mut k3s_desc = None;
    let (upstream, upstream_desc, hint) = match &opts.upstream {
        UpstreamChoice::External {
            url,
            ca,
            client_cert,
            client_key,
        } => {
            let tls = UpstreamTls::from_files(ca, client_cert, client_key)?;
            (
                Some(UpstreamConfig::new(url, tls)?),
                url.clone(),
                String::new(),
            )
        }
        UpstreamChoice::K3s { bin } => match resolve_k3s_binary(bin.as_deref()) {
            Ok(bin) => {
                let started = tokio::select! {
                    r = start_k3s(
                        &bin,
                        &opts.data_dir,
                        &etcd_url,
                        &webhook_url,
                        &cert.ca_pem,
                        node_addr.map(|a| a.port()),
                        &mut tasks,
                        stopped(stop_rx.clone()),
                    ) => Some(r),
                    () = &mut shutdown => None,
                };
                let Some(started) = started else {
                    // Asked to stop while k3s was still starting: stop it and the shim cleanly.
                    let _ = stop_tx.send(true);
                    while tasks.join_next().await.is_some() {}
                    return Ok(());
                };
                let (upstream, state) = started?;
                k3s_desc = Some(bin.display().to_string());
                k3s_state = Some(state);
                (
                    Some(upstream),
                    format!("k3s server (https://127.0.0.1:{K3S_INTERNAL_PORT})"),
                    String::new(),
                )
            }
            Err(e) => (None, format!("none ({e})"), no_k3s_hint()),
        },
        UpstreamChoice::None => (None, "none".into(), no_k3s_hint()),
    };

    // 4. Proxy, webhook, admin.
    let config = ProxyConfig {
        upstream,
        no_upstream_hint: if hint.is_empty() {
            ProxyConfig::default().no_upstream_hint
        } else {
            hint
        },
        rbac: opts.rbac.clone(),
        rate_limits: opts.rate_limits,
        attestation: Some(attestation),
        ..ProxyConfig::default()
    };
    let has_upstream = config.upstream.is_some();
    let proxy = Proxy::new(config, auth.clone())?;
    match proxy.bootstrap().await {
        Ok(()) => {}
        Err(
            e @ (crate::proxy::rbac::RbacError::UnsafeRequestHeaders(_)
            | crate::proxy::rbac::RbacError::TenantPolicyRejected { .. }),
        ) => {
            let _ = stop_tx.send(true);
            return Err(e).context("refusing to serve in front of this API server");
        }
        Err(e) => {
            warn!(error = %e, "the API server's settings could not be checked yet; requests get 503 until a retry succeeds");
        }
    }
    tasks.spawn({
        let proxy = proxy.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            proxy.maintain(stop).await;
            Ok(())
        }
    });
    let scheme = if opts.insecure_dev_http {
        warn!(
            "--insecure-dev-http: serving kubectl traffic WITHOUT TLS; tokens cross the network in cleartext"
        );
        "http"
    } else {
        "https"
    };
    let proxy_tls = (!opts.insecure_dev_http).then(|| server_tls.clone());
    tasks.spawn({
        let proxy = proxy.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            serve_proxy(
                proxy,
                proxy_listener,
                proxy_tls,
                ServeLimits::default(),
                stop,
            )
            .await;
            Ok(())
        }
    });
    let webhook_auth = auth.clone();
    tasks.spawn({
        let stop = stopped(stop_rx.clone());
        async move {
            webhook::serve_webhook(webhook_auth, webhook_listener, server_tls, stop).await;
            Ok(())
        }
    });
    // 5. Workers: the join API on :8080 and the :6443 front, with the CSR approver and the
    //    node lifecycle that follows stake.
    let node_url = match (&opts.workers, node_listener, proxy.rbac()) {
        (Some(w), Some(listener), Some(rbac)) => {
            let client_ca = match (&w.client_ca, &opts.upstream) {
                (Some(path), _) => path.clone(),
                (None, UpstreamChoice::External { ca, .. }) => ca.clone(),
                (None, _) => opts.data_dir.join("k3s/data/server/tls/client-ca.crt"),
            };
            let client_ca_pem = std::fs::read(&client_ca).with_context(|| {
                format!(
                    "the node client CA {} (--node-client-ca)",
                    client_ca.display()
                )
            })?;
            let addr = listener.local_addr()?;
            let url = w
                .public_url
                .clone()
                .unwrap_or_else(|| format!("https://{addr}"));
            let mut node_sans = sans.clone();
            node_sans.push(addr.ip().to_string());
            node_sans.sort();
            node_sans.dedup();
            let node_tls = identity
                .issue_server_cert("k3s-daas node front", &node_sans)?
                .server_config_with_client_cas(&client_ca_pem)?;
            let config = crate::workers::WorkersConfig {
                server_url: url.clone(),
                ..w.config.clone()
            };
            let workers = crate::workers::Workers::new(
                config,
                rbac.client().clone(),
                auth.clone(),
                identity.ca_pem().to_owned(),
                String::from_utf8_lossy(&client_ca_pem).into_owned(),
            );
            proxy.set_workers(workers.clone());
            tasks.spawn({
                let workers = workers.clone();
                let stop = stopped(stop_rx.clone());
                async move {
                    workers.run(stop).await;
                    Ok(())
                }
            });
            tasks.spawn({
                // Wake the lifecycle controller on every checkpoint that wrote objects.
                let workers = workers.clone();
                let mut changes = auth.view().changes();
                let stop = stopped(stop_rx.clone());
                async move {
                    tokio::pin!(stop);
                    loop {
                        tokio::select! {
                            () = &mut stop => return Ok(()),
                            changed = changes.changed() => {
                                if changed.is_err() {
                                    stop.await;
                                    return Ok(());
                                }
                                workers.stake_changed();
                            }
                        }
                    }
                }
            });
            let front = crate::workers::front::NodeFront::new(proxy.clone(), workers);
            tasks.spawn({
                let stop = stopped(stop_rx.clone());
                async move {
                    crate::workers::front::serve_front(
                        front,
                        listener,
                        node_tls,
                        // Kubelets and agents hold watches and the tunnel open for good and
                        // reconnect on their own: a shutdown does not wait long for them.
                        ServeLimits {
                            drain_timeout: Duration::from_secs(5),
                            ..ServeLimits::default()
                        },
                        stop,
                    )
                    .await;
                    Ok(())
                }
            });
            info!(%url, client_ca = %client_ca.display(), "workers: join API on the proxy, :6443 front serving");
            Some(url)
        }
        (Some(_), _, _) => {
            warn!("workers cannot join: there is no API server behind this master");
            None
        }
        _ => None,
    };
    let mut checks: Vec<ReadyCheck> = Vec::new();
    if let Some(state) = k3s_state.clone() {
        checks.push(("k3s".into(), Arc::new(move || state.borrow().is_ready())));
    }
    tasks.spawn({
        let stop = stopped(stop_rx.clone());
        let proxy = proxy.clone();
        async move {
            serve_admin(proxy, checks, admin_listener, stop).await;
            Ok(())
        }
    });

    on_ready(&Running {
        proxy_url: format!("{scheme}://{proxy_addr}"),
        ca_path,
        endpoint,
        webhook_url,
        admin_url: format!("http://{admin_addr}"),
        etcd_url,
        upstream: upstream_desc,
        has_upstream,
        k3s: k3s_desc,
        node_url,
    });

    // Run until asked to stop or until a component fails.
    let failure = tokio::select! {
        () = &mut shutdown => None,
        Some(done) = tasks.join_next() => Some(done),
    };
    info!("stopping: proxy, webhook, k3s, etcd shim");
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            warn!(error = %format!("{e:#}"), "component stopped with an error");
        }
    }
    match failure {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => bail!("a component panicked: {e}"),
        Some(Ok(Ok(()))) => bail!("a component stopped unexpectedly"),
        None => Ok(()),
    }
}

fn no_k3s_hint() -> String {
    "no Kubernetes API server behind this proxy: install k3s and restart with \
     `--k3s-bin PATH` (or K3S_BIN), or point it at a running kube-apiserver with \
     `--upstream URL --upstream-ca … --upstream-client-cert … --upstream-client-key …`"
        .into()
}

/// Starts `k3s server` on the shim under supervision and waits until its API and front-proxy
/// credentials are there.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn start_k3s(
    bin: &Path,
    data_dir: &Path,
    etcd_url: &str,
    webhook_url: &str,
    ca_pem: &str,
    front_port: Option<u16>,
    tasks: &mut tokio::task::JoinSet<Result<()>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(UpstreamConfig, watch::Receiver<SupervisorState>)> {
    let k3s_dir = data_dir.join("k3s");
    let token_file = k3s_dir.join("secrets/token");
    ClusterToken::load_or_create(&token_file)?;
    let webhook_config = k3s_dir.join("secrets/token-webhook.kubeconfig");
    write_token_webhook_kubeconfig(&webhook_config, webhook_url, ca_pem.as_bytes())?;
    let mut config = K3sServerConfig::new(
        k3s_dir.join("data"),
        Datastore::plain(etcd_url),
        token_file,
        k3s_dir.join("secrets/admin.kubeconfig"),
    );
    config.token_webhook = Some(TokenWebhookArgs::new(webhook_config));
    // The :6443 front takes the public port; K3s listens behind it and tells agents the
    // front's port (`/v1-k3s/apiservers`).
    config.https_listen_port = K3S_INTERNAL_PORT;
    if let Some(port) = front_port {
        config
            .extra_args
            .push(format!("--advertise-port={port}").into());
    }
    let supervisor = Supervisor::new(
        SupervisorConfig::new(bin, server_args(&config)),
        HttpsPingProbe::for_server(&config),
    );
    let mut state = supervisor.subscribe();
    let watcher = state.clone();
    tasks.spawn(async move { supervisor.run(stop).await.map_err(anyhow::Error::from) });
    info!(bin = %bin.display(), "k3s server starting (first start takes a while)");
    let tls = config.data_dir.join("server/tls");
    let files = [
        tls.join("server-ca.crt"),
        tls.join("client-auth-proxy.crt"),
        tls.join("client-auth-proxy.key"),
    ];
    tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            if let SupervisorState::Failed { reason } = &*state.borrow() {
                bail!("k3s failed: {reason}");
            }
            if state.borrow().is_ready() && files.iter().all(|f| f.is_file()) {
                return Ok(());
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), state.changed()).await;
        }
    })
    .await
    .context("k3s did not become ready within 5 minutes")??;
    let upstream = UpstreamConfig::new(
        &format!("https://127.0.0.1:{}", config.https_listen_port),
        UpstreamTls::from_files(&files[0], &files[1], &files[2])?,
    )?;
    Ok((upstream, watcher))
}
