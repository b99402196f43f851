//! What went wrong, and at which step of bringing loopback up.

use std::fmt;

use nix::errno::Errno;

/// One step of [`crate::loopback_up`]; every error names the step it failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening, binding and connecting the `NETLINK_ROUTE` socket.
    OpenSocket,
    /// Looking up `lo` by name (`RTM_GETLINK`).
    FindLink,
    /// Listing the IPv4 addresses (`RTM_GETADDR` dump).
    ListAddresses,
    /// Adding 127.0.0.1/8 to `lo` (`RTM_NEWADDR`).
    AddAddress,
    /// Setting `lo` up (`RTM_SETLINK` with `IFF_UP`).
    SetLinkUp,
    /// Checking afterwards that `lo` is up and has 127.0.0.1/8.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::OpenSocket => "open a NETLINK_ROUTE socket",
            Step::FindLink => "find interface lo",
            Step::ListAddresses => "list the IPv4 addresses",
            Step::AddAddress => "add 127.0.0.1/8 to lo",
            Step::SetLinkUp => "set lo up",
            Step::Verify => "verify lo",
        })
    }
}

/// Why loopback could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum NetupError {
    /// The kernel refused with `EPERM`: changing interfaces needs `CAP_NET_ADMIN`.
    #[error("{step}: EPERM: needs CAP_NET_ADMIN (run as root inside the enclave)")]
    NotPermitted {
        /// The step the kernel refused.
        step: Step,
    },
    /// There is no interface named `lo` in this network namespace.
    #[error("{step}: no interface named lo (ENODEV)")]
    NoLoopback {
        /// The step that looked for it.
        step: Step,
    },
    /// The kernel answered a request with another error.
    #[error("{step}: the kernel refused: {errno}")]
    Refused {
        /// The step the kernel refused.
        step: Step,
        /// The errno from the kernel's `NLMSG_ERROR` (or `NLMSG_DONE`) reply.
        errno: Errno,
    },
    /// Sending to or receiving from the netlink socket failed.
    #[error("{step}: netlink socket: {source}")]
    Socket {
        /// The step whose I/O failed.
        step: Step,
        /// The socket error (a receive timeout reads as `EAGAIN`).
        #[source]
        source: std::io::Error,
    },
    /// A reply could not be decoded.
    #[error("{step}: malformed netlink reply")]
    Decode {
        /// The step whose reply was malformed.
        step: Step,
        /// What the decoder found.
        #[source]
        source: netlink_packet_core::DecodeError,
    },
    /// The kernel's replies did not follow the protocol (truncated, unterminated, missing).
    #[error("{step}: unexpected netlink reply: {detail}")]
    Protocol {
        /// The step whose reply was unexpected.
        step: Step,
        /// What was wrong with it.
        detail: &'static str,
    },
    /// Every request was accepted, yet `lo` is still not usable afterwards.
    #[error(
        "{}: after configuration lo is {} and 127.0.0.1/8 is {}",
        Step::Verify,
        if *link_up { "up" } else { "down" },
        if *address_present { "present" } else { "missing" }
    )]
    NotVerified {
        /// Whether `lo` has `IFF_UP`.
        link_up: bool,
        /// Whether 127.0.0.1/8 is on `lo`.
        address_present: bool,
    },
}

impl NetupError {
    /// Classifies a positive errno the kernel returned for `step`.
    pub(crate) fn from_errno(step: Step, errno: i32) -> Self {
        match Errno::from_raw(errno) {
            Errno::EPERM => NetupError::NotPermitted { step },
            Errno::ENODEV if step == Step::FindLink => NetupError::NoLoopback { step },
            errno => NetupError::Refused { step, errno },
        }
    }
}
