//! Requests against hand-written kernel ABI bytes; replies built by hand and decoded.

use nix::errno::Errno;

use super::*;

// --- bytes as the kernel ABI lays them out ---

const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_GETADDR: u16 = 22;
const RTM_NEWADDR_TYPE: u16 = 20;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_SCOPE_HOST: u8 = 254;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_CACHEINFO: u16 = 6;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 1;
const IFF_LOOPBACK: u32 = 8;

/// `struct nlmsghdr` followed by `payload`, padded to 4 bytes.
fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(16 + payload.len()).expect("small test message");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&kind.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// `struct nlattr` followed by `value`, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let length = u16::try_from(4 + value.len()).expect("small test attribute");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&kind.to_le_bytes());
    bytes.extend_from_slice(value);
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// `struct ifinfomsg`.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0];
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&change.to_le_bytes());
    bytes
}

/// `struct ifaddrmsg`.
fn ifaddrmsg(family: u8, prefix_len: u8, scope: u8, index: u32) -> Vec<u8> {
    let mut bytes = vec![family, prefix_len, 0, scope];
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes
}

/// An `NLMSG_ERROR` reply with `code` (0: ACK) for a request with `seq`.
fn error_reply(seq: u32, code: i32) -> Vec<u8> {
    let mut payload = code.to_le_bytes().to_vec();
    // The kernel echoes the request's header.
    payload.extend_from_slice(&message(RTM_SETLINK, 5, seq, &[])[..16]);
    message(NLMSG_ERROR, 0, seq, &payload)
}

fn done_reply(seq: u32, code: i32) -> Vec<u8> {
    message(NLMSG_DONE, 2, seq, &code.to_le_bytes())
}

fn newlink(seq: u32, index: u32, flags: u32) -> Vec<u8> {
    let mut payload = ifinfomsg(index, flags, 0);
    payload.extend(nla(IFLA_IFNAME, b"lo\0"));
    message(RTM_NEWLINK, 0, seq, &payload)
}

fn newaddr(seq: u32, family: u8, prefix_len: u8, index: u32, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = ifaddrmsg(family, prefix_len, RT_SCOPE_HOST, index);
    payload.extend(attributes.concat());
    message(RTM_NEWADDR_TYPE, 2, seq, &payload)
}

// --- requests ---

#[test]
fn requests_match_the_kernel_abi() {
    let loopback = [127, 0, 0, 1];
    let cases: [(&str, Vec<u8>, Vec<u8>); 4] = [
        (
            "RTM_GETLINK by name, acked",
            get_link_by_name(7, "lo"),
            message(
                RTM_GETLINK,
                0x1 | 0x4,
                7,
                &[ifinfomsg(0, 0, 0), nla(IFLA_IFNAME, b"lo\0")].concat(),
            ),
        ),
        (
            "RTM_GETADDR dump of IPv4",
            dump_ipv4_addresses(8),
            message(RTM_GETADDR, 0x1 | 0x300, 8, &ifaddrmsg(AF_INET, 0, 0, 0)),
        ),
        (
            "RTM_NEWADDR 127.0.0.1/8 scope host, create exclusively, acked",
            add_loopback_address(9, 1),
            message(
                RTM_NEWADDR_TYPE,
                0x1 | 0x4 | 0x400 | 0x200,
                9,
                &[
                    ifaddrmsg(AF_INET, 8, RT_SCOPE_HOST, 1),
                    nla(IFA_LOCAL, &loopback),
                    nla(IFA_ADDRESS, &loopback),
                ]
                .concat(),
            ),
        ),
        (
            "RTM_SETLINK IFF_UP only, acked",
            set_link_up(10, 1),
            message(RTM_SETLINK, 0x1 | 0x4, 10, &ifinfomsg(1, IFF_UP, IFF_UP)),
        ),
    ];
    for (name, built, expected) in cases {
        assert_eq!(built, expected, "{name}");
    }
}

// --- replies ---

/// Decodes `datagram` for sequence number 5 at `step`.
fn decode(datagram: &[u8], step: Step) -> Result<Datagram, NetupError> {
    decode_datagram(datagram, 5, step)
}

fn check(name: &str, datagram: Vec<u8>, replies: Vec<Reply>, finished: bool) {
    let decoded = decode(&datagram, Step::FindLink)
        .unwrap_or_else(|error| panic!("{name}: decoding failed: {error}"));
    assert_eq!(decoded, Datagram { replies, finished }, "{name}");
}

fn loopback_address(index: u32) -> Reply {
    Reply::Address(Address {
        index,
        prefix_len: 8,
        local: Some(Ipv4Addr::LOCALHOST),
    })
}

#[test]
fn replies_decode_into_what_was_asked() {
    let lo = [127, 0, 0, 1];
    check("an ACK ends the request", error_reply(5, 0), vec![], true);
    check(
        "a link, then the ACK, in one datagram",
        [newlink(5, 1, IFF_UP | IFF_LOOPBACK), error_reply(5, 0)].concat(),
        vec![Reply::Link(Link { index: 1, up: true })],
        true,
    );
    check(
        "a link that is down",
        newlink(5, 1, IFF_LOOPBACK),
        vec![Reply::Link(Link {
            index: 1,
            up: false,
        })],
        false,
    );
    check(
        "an address dump: IPv6 skipped, NLMSG_DONE ends it",
        [
            newaddr(
                5,
                AF_INET,
                8,
                1,
                &[nla(IFA_ADDRESS, &lo), nla(IFA_LOCAL, &lo)],
            ),
            newaddr(5, AF_INET6, 128, 1, &[nla(IFA_ADDRESS, &[0; 16])]),
            newaddr(5, AF_INET, 24, 2, &[nla(IFA_LOCAL, &[10, 0, 0, 1])]),
            done_reply(5, 0),
        ]
        .concat(),
        vec![
            loopback_address(1),
            Reply::Address(Address {
                index: 2,
                prefix_len: 24,
                local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            }),
        ],
        true,
    );
    check(
        "IFA_ADDRESS stands in for a missing IFA_LOCAL",
        newaddr(5, AF_INET, 8, 1, &[nla(IFA_ADDRESS, &lo)]),
        vec![loopback_address(1)],
        false,
    );
    check(
        "an attribute that does not parse is skipped",
        newaddr(
            5,
            AF_INET,
            8,
            1,
            &[nla(IFA_CACHEINFO, &[1, 2, 3]), nla(IFA_LOCAL, &lo)],
        ),
        vec![loopback_address(1)],
        false,
    );
    check(
        "an empty NLMSG_DONE (old kernels) ends a dump",
        message(NLMSG_DONE, 2, 5, &[]),
        vec![],
        true,
    );
    check(
        "messages for another request are skipped, even its error",
        [
            newlink(4, 9, IFF_UP),
            error_reply(4, -(Errno::EPERM as i32)),
        ]
        .concat(),
        vec![],
        false,
    );
    check(
        "unrelated message types are skipped",
        message(1, 0, 5, &[]),
        vec![],
        false,
    );
}

#[test]
fn error_replies_become_the_error_for_their_step() {
    let eperm = decode(&error_reply(5, -(Errno::EPERM as i32)), Step::AddAddress);
    assert!(
        matches!(
            eperm,
            Err(NetupError::NotPermitted {
                step: Step::AddAddress
            })
        ),
        "{eperm:?}"
    );
    let message = eperm.expect_err("EPERM is an error").to_string();
    assert_eq!(
        message,
        "add 127.0.0.1/8 to lo: EPERM: needs CAP_NET_ADMIN (run as root inside the enclave)"
    );

    let enodev = decode(&error_reply(5, -(Errno::ENODEV as i32)), Step::FindLink);
    assert!(
        matches!(
            enodev,
            Err(NetupError::NoLoopback {
                step: Step::FindLink
            })
        ),
        "{enodev:?}"
    );

    let eexist = decode(&error_reply(5, -(Errno::EEXIST as i32)), Step::AddAddress);
    assert!(
        matches!(
            eexist,
            Err(NetupError::Refused {
                step: Step::AddAddress,
                errno: Errno::EEXIST
            })
        ),
        "{eexist:?}"
    );
    let message = eexist.expect_err("EEXIST is an error").to_string();
    assert!(
        message.starts_with("add 127.0.0.1/8 to lo: the kernel refused: EEXIST"),
        "{message}"
    );

    // ENODEV only means "no lo" when looking lo up.
    let enodev_later = decode(&error_reply(5, -(Errno::ENODEV as i32)), Step::SetLinkUp);
    assert!(
        matches!(
            enodev_later,
            Err(NetupError::Refused {
                step: Step::SetLinkUp,
                errno: Errno::ENODEV
            })
        ),
        "{enodev_later:?}"
    );

    let failed_dump = decode(&done_reply(5, -(Errno::EINTR as i32)), Step::ListAddresses);
    assert!(
        matches!(
            failed_dump,
            Err(NetupError::Refused {
                step: Step::ListAddresses,
                errno: Errno::EINTR
            })
        ),
        "{failed_dump:?}"
    );
}

#[test]
fn malformed_replies_are_refused() {
    let ack = error_reply(5, 0);
    let cases: [(&str, Vec<u8>); 5] = [
        ("shorter than a netlink header", ack[..10].to_vec()),
        (
            "length field past the datagram",
            ack[..ack.len() - 4].to_vec(),
        ),
        ("length field below a header", {
            let mut bytes = ack.clone();
            bytes[..4].copy_from_slice(&8u32.to_le_bytes());
            bytes
        }),
        (
            "NLMSG_ERROR without its code",
            message(NLMSG_ERROR, 0, 5, &[0, 0]),
        ),
        (
            "RTM_NEWLINK without its ifinfomsg",
            message(RTM_NEWLINK, 0, 5, &[0; 8]),
        ),
    ];
    for (name, datagram) in cases {
        let result = decode(&datagram, Step::FindLink);
        assert!(
            matches!(
                result,
                Err(NetupError::Decode {
                    step: Step::FindLink,
                    ..
                })
            ),
            "{name}: {result:?}"
        );
    }

    let overrun = decode(&message(NLMSG_OVERRUN, 0, 5, &[]), Step::FindLink);
    assert!(
        matches!(
            overrun,
            Err(NetupError::Protocol {
                step: Step::FindLink,
                ..
            })
        ),
        "{overrun:?}"
    );
}

#[test]
fn only_127_0_0_1_slash_8_on_the_link_counts_as_loopback() {
    let address = |index, prefix_len, local| Address {
        index,
        prefix_len,
        local,
    };
    let cases = [
        (address(1, 8, Some(Ipv4Addr::LOCALHOST)), true),
        (address(2, 8, Some(Ipv4Addr::LOCALHOST)), false),
        (address(1, 32, Some(Ipv4Addr::LOCALHOST)), false),
        (address(1, 8, Some(Ipv4Addr::new(127, 0, 0, 2))), false),
        (address(1, 8, None), false),
    ];
    for (address, expected) in cases {
        assert_eq!(address.is_loopback_on(1), expected, "{address:?}");
    }
}
