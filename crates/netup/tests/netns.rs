//! `loopback_up` against the real kernel, in a fresh network namespace (needs root).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};

use daas_netup::{LoopbackState, loopback_up};
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};

/// Runs `test` on a thread of its own in a new network namespace (unshare affects only the
/// calling thread, so the test process's namespace is untouched). Returns false when skipped.
fn in_new_netns(test: impl FnOnce() + Send + 'static) -> bool {
    let outcome = std::thread::spawn(move || match unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => {
            test();
            true
        }
        Err(Errno::EPERM) if std::env::var("DAAS_REQUIRE_PEERS").as_deref() != Ok("1") => {
            println!("SKIPPED: needs root for a network namespace");
            false
        }
        Err(errno) => panic!("unshare(CLONE_NEWNET): {errno}"),
    })
    .join();
    match outcome {
        Ok(ran) => ran,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Whether a TCP connection to a listener on `ip` gets through, in this thread's namespace.
///
/// With loopback down, old kernels refuse the bind (`EADDRNOTAVAIL`); newer ones (6.x here)
/// allow it and the connect fails (`ENETUNREACH`, at once: there is no route). Any other error
/// fails the test.
fn tcp_over(ip: Ipv4Addr) -> bool {
    let listener = match TcpListener::bind(SocketAddrV4::new(ip, 0)) {
        Ok(listener) => listener,
        Err(error) if error.raw_os_error() == Some(Errno::EADDRNOTAVAIL as i32) => return false,
        Err(error) => panic!("bind {ip}:0: {error}"),
    };
    let address = listener.local_addr().expect("listener address");
    match TcpStream::connect(address) {
        Ok(_stream) => {
            let (_accepted, peer) = listener.accept().expect("accept the connection");
            // The source is lo's primary address, 127.0.0.1, whichever 127.x was dialled.
            assert!(
                peer.ip().is_loopback(),
                "a loopback source address, got {peer}"
            );
            true
        }
        Err(error) if error.raw_os_error() == Some(Errno::ENETUNREACH as i32) => false,
        Err(error) => panic!("connect {address}: {error}"),
    }
}

#[test]
fn brings_up_loopback_in_a_fresh_namespace_and_is_idempotent() {
    in_new_netns(|| {
        assert!(
            !tcp_over(Ipv4Addr::LOCALHOST),
            "a new network namespace has lo down with no address"
        );

        let state = loopback_up().expect("loopback_up in a fresh namespace");
        assert_eq!(
            state,
            LoopbackState::Configured {
                added_address: true,
                set_up: true
            }
        );

        assert!(
            tcp_over(Ipv4Addr::LOCALHOST),
            "TCP over 127.0.0.1 after loopback_up"
        );
        // The whole /8 is local: the bridge's egress forwarders listen on 127.0.0.x.
        assert!(
            tcp_over(Ipv4Addr::new(127, 0, 0, 65)),
            "TCP over 127.0.0.65 after loopback_up"
        );

        assert_eq!(
            loopback_up().expect("second loopback_up"),
            LoopbackState::AlreadyUp
        );
    });
}
