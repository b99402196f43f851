//! `nautilus-master bridge` as a process, over the Unix-socket vsock stand-in (this machine
//! has no vsock loopback): usage errors exit 64 before anything binds, and an enclave-made
//! egress connection reaches an allowed target while another target is denied.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nautilus-master");

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn usage_errors_exit_64_with_a_clear_message() {
    let out = Command::new(BIN)
        .args([
            "bridge",
            "--enclave-cid",
            "3",
            "--ingress",
            "127.0.0.1:0=8080",
        ])
        .output()
        .expect("run nautilus-master");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enclave CIDs are 4 or more"), "{stderr}");

    let out = Command::new(BIN)
        .args([
            "bridge",
            "--enclave-cid",
            "16",
            "--egress-port",
            "8000",
            "--allow",
            "*.amazonaws.com:443",
        ])
        .output()
        .expect("run nautilus-master");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wildcards are not allowed"), "{stderr}");
}

fn egress(sock: &std::path::Path, target: &str) -> (u8, String, UnixStream) {
    let mut s = UnixStream::connect(sock).expect("connect the bridge's egress socket");
    let target: daas_bridge::Target = target.parse().expect("target");
    s.write_all(&daas_bridge::header::encode(&target))
        .expect("header");
    let mut head = [0u8; 2];
    s.read_exact(&mut head).expect("reply");
    let mut reason = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut reason).expect("reason");
    (head[0], String::from_utf8_lossy(&reason).into_owned(), s)
}

#[test]
fn egress_through_the_bridge_process() {
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("bind target");
    let target_addr = target.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in target.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("vsock");
    let _bridge = KillOnDrop(
        Command::new(BIN)
            .args(["bridge", "--enclave-cid", "16", "--egress-port", "8000"])
            .arg("--allow")
            .arg(target_addr.to_string())
            .arg("--unix-vsock-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bridge"),
    );
    // The parent listens as CID 3.
    let sock = dir.join("3.8000.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the bridge never bound {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, reason, mut s) = egress(&sock, &target_addr.to_string());
    assert_eq!(
        (status, reason.as_str()),
        (0, ""),
        "allowed target connects"
    );
    s.write_all(b"ping").expect("write");
    let mut got = [0u8; 4];
    s.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"ping");

    let (status, reason, _) = egress(&sock, "169.254.169.254:80");
    assert_eq!(status, 1, "DENIED");
    assert!(
        reason.contains("not on the parent's allow-list"),
        "{reason}"
    );
}
