//! rtnetlink requests and replies as bytes; no I/O.
//!
//! Requests are built with `netlink-packet-route`. Replies are decoded leniently: only the
//! fixed headers and the attributes this crate needs are parsed, so attributes that a newer or
//! older kernel adds or formats differently cannot fail the enclave's boot.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    DoneBuffer, ErrorBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlasIterator, Parseable,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeader, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage},
};

use crate::error::{NetupError, Step};

/// The loopback interface's name.
pub(crate) const LOOPBACK_NAME: &str = "lo";
/// The address put on `lo`.
pub(crate) const LOOPBACK_ADDRESS: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Its prefix: the whole of 127.0.0.0/8 is local, so 127.0.0.x listeners work.
pub(crate) const LOOPBACK_PREFIX: u8 = 8;

/// `RTM_NEWLINK` (linux/rtnetlink.h): a link description, the reply to `RTM_GETLINK`.
const RTM_NEWLINK: u16 = 16;
/// `RTM_NEWADDR` (linux/rtnetlink.h): an address description, the reply to `RTM_GETADDR`.
const RTM_NEWADDR: u16 = 20;
/// Size of `struct ifaddrmsg`, after which an address message's attributes start.
const IFADDRMSG_LEN: usize = 8;

/// Looks up one link by name; the kernel answers with its `RTM_NEWLINK`, then the ACK.
pub(crate) fn get_link_by_name(seq: u32, name: &str) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName(name.to_owned()));
    encode(
        seq,
        NLM_F_REQUEST | NLM_F_ACK,
        RouteNetlinkMessage::GetLink(link),
    )
}

/// Dumps every IPv4 address (the kernel ignores the index filter of a dump unless strict
/// checking is on, so callers filter); ends with `NLMSG_DONE`.
pub(crate) fn dump_ipv4_addresses(seq: u32) -> Vec<u8> {
    let mut address = AddressMessage::default();
    address.header.family = AddressFamily::Inet;
    encode(
        seq,
        NLM_F_REQUEST | NLM_F_DUMP,
        RouteNetlinkMessage::GetAddress(address),
    )
}

/// Adds 127.0.0.1/8, scope host, to link `index` (what `ip addr add 127.0.0.1/8 dev lo` sends).
/// `NLM_F_EXCL` makes an existing address an `EEXIST` the caller can recognise.
pub(crate) fn add_loopback_address(seq: u32, index: u32) -> Vec<u8> {
    let mut address = AddressMessage::default();
    address.header = AddressHeader {
        family: AddressFamily::Inet,
        prefix_len: LOOPBACK_PREFIX,
        scope: AddressScope::Host,
        index,
        ..AddressHeader::default()
    };
    let ip = IpAddr::V4(LOOPBACK_ADDRESS);
    address.attributes = vec![AddressAttribute::Local(ip), AddressAttribute::Address(ip)];
    encode(
        seq,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        RouteNetlinkMessage::NewAddress(address),
    )
}

/// Sets `IFF_UP` on link `index` and changes no other flag.
pub(crate) fn set_link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.header = LinkHeader {
        index,
        flags: LinkFlags::Up,
        change_mask: LinkFlags::Up,
        ..LinkHeader::default()
    };
    encode(
        seq,
        NLM_F_REQUEST | NLM_F_ACK,
        RouteNetlinkMessage::SetLink(link),
    )
}

/// Removes 127.0.0.1/8 from link `index` (tests build partial states with it).
#[cfg(test)]
pub(crate) fn delete_loopback_address(seq: u32, index: u32) -> Vec<u8> {
    let mut address = AddressMessage::default();
    address.header = AddressHeader {
        family: AddressFamily::Inet,
        prefix_len: LOOPBACK_PREFIX,
        index,
        ..AddressHeader::default()
    };
    address.attributes = vec![AddressAttribute::Local(IpAddr::V4(LOOPBACK_ADDRESS))];
    encode(
        seq,
        NLM_F_REQUEST | NLM_F_ACK,
        RouteNetlinkMessage::DelAddress(address),
    )
}

fn encode(seq: u32, flags: u16, message: RouteNetlinkMessage) -> Vec<u8> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = flags;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// A link as the kernel described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// Interface index.
    pub(crate) index: u32,
    /// Whether `IFF_UP` is set.
    pub(crate) up: bool,
}

/// An IPv4 address as the kernel described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Address {
    /// Interface index it is on.
    pub(crate) index: u32,
    /// Prefix length.
    pub(crate) prefix_len: u8,
    /// `IFA_LOCAL`, or `IFA_ADDRESS` when there is no `IFA_LOCAL`.
    pub(crate) local: Option<Ipv4Addr>,
}

impl Address {
    /// Whether this is 127.0.0.1/8 on link `index`.
    pub(crate) fn is_loopback_on(&self, index: u32) -> bool {
        self.index == index
            && self.prefix_len == LOOPBACK_PREFIX
            && self.local == Some(LOOPBACK_ADDRESS)
    }
}

/// One decoded reply message that answers our request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `RTM_NEWLINK`.
    Link(Link),
    /// `RTM_NEWADDR` for an IPv4 address.
    Address(Address),
}

/// What one datagram said.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Datagram {
    /// The replies it carried.
    pub(crate) replies: Vec<Reply>,
    /// Whether it ended the request (an ACK or `NLMSG_DONE`).
    pub(crate) finished: bool,
}

/// Decodes one datagram from the kernel: the messages for sequence number `seq` (others are
/// skipped), an error reply as the [`NetupError`] it means for `step`.
pub(crate) fn decode_datagram(bytes: &[u8], seq: u32, step: Step) -> Result<Datagram, NetupError> {
    let mut out = Datagram::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let message = NetlinkBuffer::new_checked(rest)
            .map_err(|source| NetupError::Decode { step, source })?;
        let length = message.length() as usize;
        if message.sequence_number() == seq && decode_message(&message, step, &mut out)? {
            out.finished = true;
            return Ok(out);
        }
        // Messages are 4-byte aligned; the last one may lack its padding.
        rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(out)
}

/// Decodes one message into `out`; returns whether it ends the request.
fn decode_message(
    message: &NetlinkBuffer<&[u8]>,
    step: Step,
    out: &mut Datagram,
) -> Result<bool, NetupError> {
    let payload = message.payload();
    let decode = |source| NetupError::Decode { step, source };
    match message.message_type() {
        NLMSG_ERROR => {
            let error = ErrorBuffer::new_checked(&payload).map_err(decode)?;
            match error.code() {
                None => Ok(true),
                Some(code) => Err(NetupError::from_errno(step, code.get().saturating_abs())),
            }
        }
        NLMSG_DONE => {
            // A dump that failed part-way reports its errno in NLMSG_DONE; old kernels may send
            // an empty NLMSG_DONE.
            if payload.len() >= 4 {
                let code = DoneBuffer::new_checked(&payload).map_err(decode)?.code();
                if code < 0 {
                    return Err(NetupError::from_errno(step, code.saturating_abs()));
                }
            }
            Ok(true)
        }
        NLMSG_OVERRUN => Err(NetupError::Protocol {
            step,
            detail: "the kernel reported an overrun (NLMSG_OVERRUN)",
        }),
        RTM_NEWLINK => {
            let header = LinkHeader::parse(payload).map_err(decode)?;
            out.replies.push(Reply::Link(Link {
                index: header.index,
                up: header.flags.contains(LinkFlags::Up),
            }));
            Ok(false)
        }
        RTM_NEWADDR => {
            if let Some(address) = decode_ipv4_address(payload).map_err(decode)? {
                out.replies.push(Reply::Address(address));
            }
            Ok(false)
        }
        // NLMSG_NOOP and anything not asked for.
        _ => Ok(false),
    }
}

/// Decodes an `RTM_NEWADDR` payload; `None` for a family other than IPv4.
fn decode_ipv4_address(
    payload: &[u8],
) -> Result<Option<Address>, netlink_packet_core::DecodeError> {
    let header = AddressHeader::parse(payload)?;
    if header.family != AddressFamily::Inet {
        return Ok(None);
    }
    let mut local = None;
    let mut address = None;
    for nla in NlasIterator::new(payload.get(IFADDRMSG_LEN..).unwrap_or_default()) {
        // An attribute this crate does not need may fail to parse; it is skipped.
        match AddressAttribute::parse(&nla?) {
            Ok(AddressAttribute::Local(IpAddr::V4(ip))) => local = Some(ip),
            Ok(AddressAttribute::Address(IpAddr::V4(ip))) => address = Some(ip),
            _ => {}
        }
    }
    Ok(Some(Address {
        index: header.index,
        prefix_len: header.prefix_len,
        local: local.or(address),
    }))
}

// The tests spell out kernel ABI bytes little-endian, as on the enclave (x86_64).
#[cfg(all(test, target_endian = "little"))]
mod tests;
