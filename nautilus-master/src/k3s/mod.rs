//! K3s server supervision: the `k3s server` child that runs the control plane inside the enclave.
//!
//! What it does:
//! - [`server_args`] turns a [`K3sServerConfig`] into the `k3s server` argument list (pure; every
//!   flag's reason is documented where it is added). The datastore is our encrypting etcd shim;
//!   the apiserver is bound to loopback because kubectl reaches it only through the Seal-token
//!   proxy.
//! - [`ClusterToken`] is the K3s join/bootstrap secret: created once from OS randomness, kept in
//!   a mode-0600 file in a mode-0700 directory, handed to K3s with `--token-file` (never on argv),
//!   and redacted in `Debug`/`Display`. [`write_token_webhook_kubeconfig`] writes the file
//!   kube-apiserver's `authentication-token-webhook-config-file` reads.
//! - [`Supervisor`] (the generic part is the `daas-supervisor` crate, shared with
//!   `staker-agent run`) runs the child in its own process group, forwards its output to `tracing`
//!   (target `k3s`), waits for a [`ReadinessProbe`], restarts it with exponential backoff after
//!   an unexpected exit and stops it with SIGTERM, a grace period, then SIGKILL. Its
//!   [`SupervisorState`] is published on a `tokio::sync::watch` channel for `/readyz`.
//! - With feature `dev`, [`ensure_k3s`] provides `dev`'s k3s when none is installed: the pinned
//!   release ([`K3S_VERSION`]) for this architecture, SHA-256-checked against the release's
//!   checksum file and cached per user.
//!
//! What it does not do: start the etcd shim or the proxy, talk to the Kubernetes API, or reap
//! processes that K3s itself orphans (the enclave's init does that).
//!
//! Architecture invariant: the cluster token never appears on a command line, in an error or in a
//! log line.

mod args;
#[cfg(feature = "dev")]
mod download;
mod probe;
mod supervisor;
mod token;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use args::{
    ADMISSION_PLUGINS, CertKeyFiles, DEFAULT_DISABLE, DEFAULT_HTTPS_PORT, Datastore,
    K3sServerConfig, TokenWebhookArgs, server_args,
};
pub use daas_supervisor::ReadinessProbe;
#[cfg(feature = "dev")]
pub use download::{
    Arch, DownloadConfig, DownloadError, K3S_VERSION, K3sBinary, MAX_BINARY_BYTES,
    MAX_CHECKSUM_BYTES, MAX_REDIRECTS, Origin, RELEASE_URL, RELEASE_URL_ENV, check_release,
    default_cache_dir, ensure_k3s,
};
pub use probe::{HttpsPingProbe, TcpConnectProbe};
pub use supervisor::{
    K3S_BIN_ENV, RestartPolicy, Supervisor, SupervisorConfig, SupervisorState, resolve_k3s_binary,
};
pub use token::{ClusterToken, write_token_webhook_kubeconfig};

/// Everything that can go wrong in this module. Messages never contain the cluster token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K3sError {
    /// No k3s binary at the explicit path, at `$K3S_BIN`, or on `PATH`.
    #[error("k3s binary not found: {detail}")]
    BinaryNotFound {
        /// Where it was looked for.
        detail: String,
    },
    /// A file system operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was attempted ("read", "create", ...).
        op: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Group or others have some access to the token file or its directory (like ssh, refuse).
    #[error(
        "permissions {mode:04o} for {} are too open: group and others must have no access \
         (chmod {want:o} it)",
        path.display()
    )]
    InsecureMode {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode to set: 600 for files, 700 for the directory.
        want: u32,
    },
    /// A path that should be a regular file is not one.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A path that should be a directory is not one.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The token file exists but does not hold one line of printable ASCII.
    #[error("{} does not hold a cluster token (one line of printable ASCII)", path.display())]
    InvalidToken {
        /// The token file.
        path: PathBuf,
    },
    /// The webhook kubeconfig could not be encoded.
    #[error("cannot encode the TokenReview webhook kubeconfig")]
    Encode(#[source] serde_json::Error),
    /// The k3s child could not be started (on the first start this ends supervision).
    #[error("cannot start {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Waiting for the k3s child failed (it has been sent SIGKILL).
    #[error("cannot wait for the k3s child (pid {pid})")]
    Wait {
        /// The child's pid.
        pid: u32,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The child exited `failures` times in a row, each time sooner than `window` after it
    /// started, and the restart policy allows no more.
    #[error(
        "k3s exited {failures} times in a row, each within {} of starting; giving up",
        humantime::format_duration(*window)
    )]
    GaveUp {
        /// Consecutive rapid failures.
        failures: u32,
        /// [`RestartPolicy::reset_after`].
        window: Duration,
    },
    /// A supervision failure added to `daas-supervisor` after the variants above.
    #[error(transparent)]
    Supervisor(daas_supervisor::SupervisorError),
}
