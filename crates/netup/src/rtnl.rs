//! A blocking `NETLINK_ROUTE` socket that sends one request at a time and collects its replies.

use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::socket::{MsgFlags, setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::error::{NetupError, Step};
use crate::wire::{self, Reply};

/// How long to wait for the kernel's next reply datagram. The kernel answers rtnetlink
/// requests synchronously, so this only bounds a broken kernel, not a slow one.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer: rtnetlink dump datagrams are at most 32 KiB.
const DATAGRAM_MAX: usize = 64 * 1024;
/// Datagrams read for one request before giving up; a dump of a few interfaces needs one or two.
const DATAGRAMS_PER_REQUEST_MAX: usize = 1024;

/// A connected `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
    buffer: Vec<u8>,
}

impl Rtnl {
    /// Opens, binds (kernel-chosen port) and connects a socket to the kernel.
    pub(crate) fn open() -> Result<Self, NetupError> {
        let io = |source| NetupError::Socket {
            step: Step::OpenSocket,
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(io)?;
        socket.bind_auto().map_err(io)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        let timeout = TimeVal::milliseconds(
            i64::try_from(RECEIVE_TIMEOUT.as_millis()).expect("a 5 s timeout fits in i64"),
        );
        setsockopt(&socket, ReceiveTimeout, &timeout).map_err(|errno| io(errno.into()))?;
        Ok(Self {
            socket,
            seq: 0,
            buffer: vec![0; DATAGRAM_MAX],
        })
    }

    /// Sends the request `build` makes for the next sequence number and returns the replies up
    /// to its ACK or `NLMSG_DONE`; an error reply becomes the [`NetupError`] for `step`.
    pub(crate) fn request(
        &mut self,
        step: Step,
        build: impl FnOnce(u32) -> Vec<u8>,
    ) -> Result<Vec<Reply>, NetupError> {
        let io = |source| NetupError::Socket { step, source };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&build(seq), 0).map_err(io)?;
        let mut replies = Vec::new();
        for _ in 0..DATAGRAMS_PER_REQUEST_MAX {
            // MSG_TRUNC: the return value is the datagram's real length even when it did not fit.
            let length = self
                .socket
                .recv(&mut &mut self.buffer[..], MsgFlags::MSG_TRUNC.bits())
                .map_err(io)?;
            let datagram = self.buffer.get(..length).ok_or(NetupError::Protocol {
                step,
                detail: "a reply datagram was larger than 64 KiB",
            })?;
            let decoded = wire::decode_datagram(datagram, seq, step)?;
            replies.extend(decoded.replies);
            if decoded.finished {
                return Ok(replies);
            }
        }
        Err(NetupError::Protocol {
            step,
            detail: "no ACK or NLMSG_DONE ended the request",
        })
    }
}
