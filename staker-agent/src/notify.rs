//! systemd's readiness protocol (`sd_notify`): datagrams like `READY=1` or `STATUS=…` to the
//! Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Without
//! the variable (not started by systemd with `Type=notify`) nothing is sent.
//!
//! Twenty lines of std (`UnixDatagram`), so no crate: the protocol is one datagram per message.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where to send notifications, if systemd asked for them.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when unset or unusable (logged).
    pub(crate) fn from_env() -> Option<Self> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = value.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(std::path::Path::new(&value)),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => Some(Self { socket, addr }),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; no readiness notifications");
                None
            }
        }
    }

    /// Sends `message` (newline-separated `KEY=value` lines); failures are logged, not fatal.
    pub(crate) fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}
