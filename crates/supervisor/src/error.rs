//! Why supervision failed.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that ends supervision with an error, or keeps it from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No k3s binary at the explicit path, at `$K3S_BIN`, or on `PATH`.
    #[error("k3s binary not found: {detail}")]
    BinaryNotFound {
        /// Where it was looked for.
        detail: String,
    },
    /// The child could not be started (on the first start this ends supervision).
    #[error("cannot start {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Waiting for the child failed (it has been sent SIGKILL).
    #[error("cannot wait for the {name} child (pid {pid})")]
    Wait {
        /// [`SupervisorConfig::name`](crate::SupervisorConfig::name).
        name: String,
        /// The child's pid.
        pid: u32,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The child exited `failures` times in a row, each time sooner than `window` after it
    /// started, and the restart policy allows no more.
    #[error(
        "{name} exited {failures} times in a row, each within {} of starting; giving up",
        humantime::format_duration(*window)
    )]
    GaveUp {
        /// [`SupervisorConfig::name`](crate::SupervisorConfig::name).
        name: String,
        /// Consecutive rapid failures.
        failures: u32,
        /// [`RestartPolicy::reset_after`](crate::RestartPolicy::reset_after).
        window: Duration,
    },
}

/// `error: cause: cause`, for the state and the log.
pub(crate) fn error_chain(error: &SupervisorError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
