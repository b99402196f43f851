//! The loopback sequence: find `lo`, add 127.0.0.1/8, set it up, verify.

use tracing::{debug, info};

use crate::error::{NetupError, Step};
use crate::rtnl::Rtnl;
use crate::wire::{self, Link, Reply};

/// What [`loopback_up`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackState {
    /// `lo` was already up with 127.0.0.1/8; nothing was changed.
    AlreadyUp,
    /// At least one change was made, and afterwards `lo` is up with 127.0.0.1/8.
    Configured {
        /// 127.0.0.1/8 was added to `lo` (false: it was there, or appeared meanwhile).
        added_address: bool,
        /// `IFF_UP` was set on `lo` (false: it was already up).
        set_up: bool,
    },
}

/// Brings up the loopback interface of the calling thread's network namespace, as
/// `ip addr add 127.0.0.1/8 dev lo; ip link set lo up` would: adds 127.0.0.1/8 (scope host)
/// to `lo` unless it is there, sets `lo` up unless it is, then checks that both hold.
///
/// The address is added explicitly (and before the link goes up) because some kernels, such
/// as the Nitro Enclave's, do not add it when `lo` comes up. Idempotent: a second call returns
/// [`LoopbackState::AlreadyUp`]. Changing interfaces needs `CAP_NET_ADMIN`
/// ([`NetupError::NotPermitted`] otherwise). Blocking; meant to run first thing at start-up.
pub fn loopback_up() -> Result<LoopbackState, NetupError> {
    let mut rtnl = Rtnl::open()?;
    let before = inspect(&mut rtnl, Step::FindLink, Step::ListAddresses)?;
    debug!(
        index = before.link.index,
        up = before.link.up,
        address_present = before.address_present,
        "Loopback inspected"
    );
    if before.link.up && before.address_present {
        return Ok(LoopbackState::AlreadyUp);
    }
    let index = before.link.index;

    let added_address = !before.address_present && add_address(&mut rtnl, index)?;
    let set_up = !before.link.up;
    if set_up {
        rtnl.request(Step::SetLinkUp, |seq| wire::set_link_up(seq, index))?;
    }

    let after = inspect(&mut rtnl, Step::Verify, Step::Verify)?;
    if !(after.link.up && after.address_present) {
        return Err(NetupError::NotVerified {
            link_up: after.link.up,
            address_present: after.address_present,
        });
    }
    info!(added_address, set_up, "Loopback is up (127.0.0.1/8 on lo)");
    Ok(LoopbackState::Configured {
        added_address,
        set_up,
    })
}

/// `lo` and whether 127.0.0.1/8 is on it.
struct Inspection {
    link: Link,
    address_present: bool,
}

fn inspect(rtnl: &mut Rtnl, link_step: Step, address_step: Step) -> Result<Inspection, NetupError> {
    let link = rtnl
        .request(link_step, |seq| {
            wire::get_link_by_name(seq, wire::LOOPBACK_NAME)
        })?
        .into_iter()
        .find_map(|reply| match reply {
            Reply::Link(link) => Some(link),
            Reply::Address(_) => None,
        })
        .ok_or(NetupError::Protocol {
            step: link_step,
            detail: "the kernel acknowledged the lookup of lo without describing it",
        })?;
    let address_present = rtnl
        .request(address_step, wire::dump_ipv4_addresses)?
        .iter()
        .any(
            |reply| matches!(reply, Reply::Address(address) if address.is_loopback_on(link.index)),
        );
    Ok(Inspection {
        link,
        address_present,
    })
}

/// Adds 127.0.0.1/8 to `lo`; returns false when the kernel says it is already there (EEXIST).
fn add_address(rtnl: &mut Rtnl, index: u32) -> Result<bool, NetupError> {
    match rtnl.request(Step::AddAddress, |seq| {
        wire::add_loopback_address(seq, index)
    }) {
        Ok(_) => Ok(true),
        Err(NetupError::Refused {
            errno: nix::errno::Errno::EEXIST,
            ..
        }) => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests;
