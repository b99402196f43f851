//! `staker-agent run`: join, then run and supervise `k3s agent` (or a plain kubelet) until
//! SIGTERM/SIGINT, following the stake on chain.
//!
//! - Supervision is `daas-supervisor`'s: own process group, restarts with backoff (1 s doubling
//!   to 30 s, reset after 60 s up), SIGTERM to the group on stop, SIGKILL after `--stop-grace`.
//! - Readiness: `READY=1` to systemd once the child runs, `STATUS=` on restarts.
//! - The stake is read before every restart and every `--stake-check-interval`; once it is not
//!   active (unbonding, slashed, withdrawn) the child is stopped, the secrets removed, and the
//!   process exits with code 3 ([`Revoked`]).
//! - Before a restart, when the join material has expired and the node holds no kubelet client
//!   certificate yet, the node joins again (fresh Seal token).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use daas_join_api::AgentKind;
use daas_seal::Address;
use daas_supervisor::{
    RestartDecision, RestartPolicy, Spawned, Supervisor, SupervisorConfig, SupervisorState,
};
use subtle::ConstantTimeEq;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::chain::{Standing, block_on, now_ms, standing_of};
use crate::cli::{Global, RunArgs};
use crate::join::{self, Joined, Joiner, agent_kind};
use crate::notify::Notifier;
use crate::state_dir::{self, StateDir};

/// Uptime after which the restart backoff starts again at `--restart-backoff`.
const RESET_AFTER: Duration = Duration::from_secs(60);
/// k3s's default data directory.
const K3S_DEFAULT_DATA_DIR: &str = "/var/lib/rancher/k3s";

/// The stake stopped being active: the node was revoked. `main` exits with code 3.
#[derive(Debug)]
pub(crate) struct Revoked(pub(crate) String);

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Revoked {}

/// What runs and follows the stake, shared with the restart hook and the stake watcher.
struct Follow {
    joiner: Joiner,
    state: StateDir,
    stake: Address,
    node_password_file: PathBuf,
    /// The file whose existence shows that the node registered (then a re-join is useless).
    client_cert: PathBuf,
    /// Set (once) to why the node was revoked.
    revoked: watch::Sender<Option<String>>,
}

impl Follow {
    /// Reads the stake; when it is not active, records why and returns `true`. A chain that
    /// cannot be read is logged and counts as active (the master is the enforcement point; a
    /// chain outage must not take workers down).
    async fn stake_revoked(&self) -> bool {
        match standing_of(&self.joiner.chain, self.stake, None).await {
            Ok(Standing::Active) => false,
            Ok(standing) => {
                let reason = format!(
                    "stake {} is {standing}: the master has revoked this node",
                    self.stake
                );
                tracing::warn!(stake = %self.stake, %standing, "the stake is no longer active; stopping the agent");
                self.revoked.send_if_modified(|r| {
                    if r.is_none() {
                        *r = Some(reason);
                        true
                    } else {
                        false
                    }
                });
                true
            }
            Err(e) => {
                tracing::warn!(stake = %self.stake, error = %format!("{e:#}"), "cannot read the stake record; keeping the agent running");
                false
            }
        }
    }

    /// Whether the join material expired before the node registered.
    fn needs_rejoin(&self) -> Result<bool> {
        let Some(record) = self.state.record()? else {
            return Ok(true);
        };
        Ok(record.expires_at_ms <= now_ms() && !self.client_cert.exists())
    }

    /// Joins (the state directory's previous node password is the one we may have installed).
    async fn join(&self) -> Result<Joined> {
        let previous = self.state.read(state_dir::NODE_PASSWORD_FILE)?;
        let joined = self.joiner.join().await?;
        self.install_node_password(previous.as_deref())?;
        Ok(joined)
    }

    /// For k3s: the join's node password at `--node-password-file`, unless the same one is
    /// there. A different one is refused unless it is `previous` (ours, from an earlier join).
    fn install_node_password(&self, previous: Option<&[u8]>) -> Result<()> {
        if self.joiner.agent != AgentKind::K3sAgent {
            return Ok(());
        }
        let new = self
            .state
            .read(state_dir::NODE_PASSWORD_FILE)?
            .ok_or_else(|| anyhow!("the join wrote no node password"))?;
        let target = &self.node_password_file;
        match state_dir::read_small(target)? {
            Some(existing) if bool::from(existing.ct_eq(&new)) => return Ok(()),
            Some(existing) if previous.is_some_and(|p| bool::from(existing.ct_eq(p))) => {}
            Some(_) => bail!(
                "{} already holds a different node password (another node was joined on this machine, or k3s created one): k3s would send it and the node would be refused. If this machine is no longer that node, remove the file; or pass --node-password-file",
                target.display()
            ),
            None => {
                if let Some(dir) = target.parent() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
            }
        }
        state_dir::write_atomic(target, &new, 0o600)?;
        tracing::info!(path = %target.display(), "installed the node password");
        Ok(())
    }

    /// Removes the node password copy if it is ours.
    fn remove_node_password(&self) -> Result<Option<PathBuf>> {
        let (Some(ours), Some(installed)) = (
            self.state.read(state_dir::NODE_PASSWORD_FILE)?,
            state_dir::read_small(&self.node_password_file)?,
        ) else {
            return Ok(None);
        };
        if !bool::from(ours.ct_eq(&installed)) {
            return Ok(None);
        }
        std::fs::remove_file(&self.node_password_file)
            .with_context(|| format!("removing {}", self.node_password_file.display()))?;
        Ok(Some(self.node_password_file.clone()))
    }

    /// The restart hook: stop for a revoked stake; re-join when the material expired unused.
    async fn before_restart(self: Arc<Self>, attempt: u32) -> RestartDecision {
        if self.stake_revoked().await {
            return RestartDecision::Stop;
        }
        match self.needs_rejoin() {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(
                    attempt,
                    "the join material expired before the node registered; joining again"
                );
                match self.join().await {
                    Ok(j) => tracing::info!(
                        node = %j.record.node_name,
                        expires_at_ms = j.record.expires_at_ms,
                        "joined again"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "joining again failed; restarting with the old material");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read join.json"),
        }
        RestartDecision::Restart
    }
}

/// `staker-agent run`.
pub(crate) fn run(global: &Global, args: RunArgs) -> Result<()> {
    let agent = if args.kubelet.is_some() {
        AgentKind::Kubelet
    } else {
        agent_kind(args.join.agent)
    };
    block_on(async move {
        let joiner = Joiner::new(global, args.join.clone(), agent).await?;
        let state = joiner.state();
        let previous = state.read(state_dir::NODE_PASSWORD_FILE)?;
        let joined = joiner.join().await?;
        join::print(global, &joined);
        let stake: Address = joined
            .record
            .stake
            .parse()
            .map_err(|_| anyhow!("join.json names no valid stake"))?;
        let config = child_config(&args, &joined)?;
        let client_cert = match &args.kubelet {
            Some(_) => state
                .path(state_dir::PKI_DIR)
                .join("kubelet-client-current.pem"),
            None => args
                .k3s_data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(K3S_DEFAULT_DATA_DIR))
                .join("agent/client-kubelet.crt"),
        };
        let (revoked, _) = watch::channel(None);
        let follow = Arc::new(Follow {
            joiner,
            state,
            stake,
            node_password_file: args.node_password_file.clone(),
            client_cert,
            revoked,
        });
        follow.install_node_password(previous.as_deref())?;
        supervise(follow, config, args.stake_check_interval).await
    })
}

/// The child: `k3s agent --config …`, or the kubelet with the bootstrap flags.
fn child_config(args: &RunArgs, joined: &Joined) -> Result<SupervisorConfig> {
    let state = &joined.state;
    let (name, program, argv, env) = match &args.kubelet {
        Some(kubelet) => {
            let pki = state.path(state_dir::PKI_DIR);
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&pki)
                    .with_context(|| format!("creating {}", pki.display()))?;
            }
            let flag = |name: &str, path: &Path| {
                let mut s = OsString::from(format!("--{name}="));
                s.push(path);
                s
            };
            let mut argv = vec![
                flag(
                    "bootstrap-kubeconfig",
                    &state.path(state_dir::BOOTSTRAP_KUBECONFIG),
                ),
                flag("kubeconfig", &state.path(state_dir::KUBELET_KUBECONFIG)),
                flag("cert-dir", &pki),
                flag("client-ca-file", &state.path(state_dir::CLIENT_CA_FILE)),
                format!("--hostname-override={}", joined.record.node_name).into(),
            ];
            argv.extend(args.kubelet_args.iter().map(OsString::from));
            let env: Vec<(OsString, OsString)> = [
                ("K3S_DAAS_NODE_NAME", joined.record.node_name.clone().into()),
                ("K3S_DAAS_SERVER", joined.record.server.clone().into()),
                (
                    "K3S_DAAS_CA_FILE",
                    state.path(state_dir::CA_FILE).into_os_string(),
                ),
                (
                    "K3S_DAAS_CLIENT_CA_FILE",
                    state.path(state_dir::CLIENT_CA_FILE).into_os_string(),
                ),
                (
                    "K3S_DAAS_BOOTSTRAP_KUBECONFIG",
                    state.path(state_dir::BOOTSTRAP_KUBECONFIG).into_os_string(),
                ),
                (
                    "K3S_DAAS_KUBECONFIG",
                    state.path(state_dir::KUBELET_KUBECONFIG).into_os_string(),
                ),
                ("K3S_DAAS_STATE_DIR", state.root().as_os_str().to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (OsString::from(k), v))
            .collect();
            ("kubelet", kubelet.clone(), argv, env)
        }
        None => {
            let program = daas_supervisor::resolve_k3s_binary(args.k3s_bin.as_deref()).with_context(|| {
                format!(
                    "the join succeeded (its material is in {}), but the agent cannot run: install k3s, set K3S_BIN, or pass --k3s-bin (or --kubelet BIN)",
                    state.root().display()
                )
            })?;
            let mut argv: Vec<OsString> = vec![
                "agent".into(),
                "--config".into(),
                state.path(state_dir::K3S_CONFIG).into_os_string(),
            ];
            if let Some(dir) = &args.k3s_data_dir {
                argv.push("--data-dir".into());
                argv.push(dir.clone().into_os_string());
            }
            ("k3s-agent", program, argv, Vec::new())
        }
    };
    let mut config = SupervisorConfig::new(program, argv);
    config.name = name.to_owned();
    config.env = env;
    config.stop_grace = args.stop_grace;
    config.restart = RestartPolicy {
        initial_backoff: args.restart_backoff,
        max_backoff: args.restart_backoff_max.max(args.restart_backoff),
        reset_after: RESET_AFTER,
        max_rapid_failures: None,
    };
    Ok(config)
}

/// Runs the child until SIGTERM/SIGINT (exit 0) or revocation ([`Revoked`], exit 3).
async fn supervise(
    follow: Arc<Follow>,
    config: SupervisorConfig,
    stake_check_interval: Duration,
) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let name = config.name.clone();
    let hook_follow = follow.clone();
    let supervisor = Supervisor::new(config, Spawned)
        .before_restart(move |attempt| hook_follow.clone().before_restart(attempt));

    let notifier = Arc::new(Notifier::from_env());
    let reporter = tokio::spawn(report_state(
        supervisor.subscribe(),
        notifier.clone(),
        name.clone(),
    ));
    let watcher_follow = follow.clone();
    let watcher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(stake_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: the join just checked the stake
        loop {
            tick.tick().await;
            if watcher_follow.stake_revoked().await {
                break;
            }
        }
    });
    let mut revoked_rx = follow.revoked.subscribe();
    let stop_notifier = notifier.clone();
    let stop_name = name.clone();
    let shutdown = async move {
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = revoked_rx.wait_for(Option::is_some) => "the stake is no longer active",
        };
        tracing::info!("{why}: stopping {stop_name}");
        if let Some(n) = stop_notifier.as_ref() {
            n.send(&format!("STOPPING=1\nSTATUS=stopping {stop_name}: {why}"));
        }
    };
    let result = supervisor.run(shutdown).await;
    watcher.abort();
    let _ = reporter.await;

    let revoked = follow.revoked.borrow().clone();
    if let Some(reason) = revoked {
        let mut removed: Vec<String> = Vec::new();
        if let Some(path) = follow.remove_node_password()? {
            removed.push(path.display().to_string());
        }
        removed.extend(
            follow
                .state
                .remove_secrets()?
                .iter()
                .map(|p| p.display().to_string()),
        );
        eprintln!(
            "staker-agent: {name} stopped; removed {}",
            if removed.is_empty() {
                "nothing (no secret was left)".to_owned()
            } else {
                removed.join(", ")
            }
        );
        return Err(Revoked(reason).into());
    }
    result.with_context(|| format!("supervising {name}"))?;
    eprintln!("staker-agent: {name} stopped");
    Ok(())
}

/// Tells systemd (when it asked) about the child: `READY=1` once it runs, `STATUS=` on
/// restarts (`STOPPING=1` is sent by the shutdown itself). Ends when supervision does.
async fn report_state(
    mut state: watch::Receiver<SupervisorState>,
    notifier: Arc<Option<Notifier>>,
    name: String,
) {
    let send = |message: String| {
        if let Some(n) = notifier.as_ref() {
            n.send(&message);
        }
    };
    loop {
        let current = state.borrow_and_update().clone();
        match current {
            SupervisorState::Starting | SupervisorState::Stopping => {}
            SupervisorState::Ready => send(format!("READY=1\nSTATUS={name} running")),
            SupervisorState::Restarting { attempt, delay } => send(format!(
                "STATUS={name} exited; restart {attempt} in {}",
                humantime::format_duration(delay)
            )),
            SupervisorState::Stopped | SupervisorState::Failed { .. } => return,
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
