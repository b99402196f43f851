//! `nautilus-master etcd-shim` as a process: the real `etcdctl` against it, key rotation
//! without downtime, retired keys kept for restored backups, listeners that never serve the
//! decrypted state unauthenticated, KeyAdmin on its own listener, and durability across
//! `kill -9`.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use daas_etcd_proto::{PutRequest, RangeRequest, kv_client::KvClient};
use support::{ShimProcess, files_containing, init_keyring, peer, run_ok, wait_until};

fn etcdctl(bin: &std::path::Path, shim: &ShimProcess) -> Command {
    let mut cmd = Command::new(bin);
    // Without the scheme: etcdctl 3.4 sends the whole endpoint URL as the HTTP/2 :authority
    // for `endpoint status`, which strict HTTP/2 servers (h2) reject as malformed.
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=127.0.0.1:{}", shim.port))
        .arg("--command-timeout=10s");
    cmd
}

#[test]
// The watcher is killed and reaped below; an assertion failing earlier ends the test process.
#[allow(clippy::zombie_processes)]
fn etcdctl_put_get_txn_watch_lease_compaction_status() {
    let Some(etcdctl_bin) = peer("ETCDCTL_BIN", "etcdctl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let shim = ShimProcess::start(&tmp.path().join("data"), &keyring);
    let ctl = || etcdctl(&etcdctl_bin, &shim);

    // A watcher started first sees everything that follows.
    let mut watch = ctl()
        .args(["watch", "--prefix", "/t/", "--prev-kv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    assert_eq!(run_ok(ctl().args(["put", "/t/a", "alpha"])).trim(), "OK");
    assert_eq!(run_ok(ctl().args(["put", "/t/a", "alpha2"])).trim(), "OK");
    assert_eq!(run_ok(ctl().args(["put", "/t/b", "beta"])).trim(), "OK");
    assert_eq!(
        run_ok(ctl().args(["get", "--prefix", "/t/"])),
        "/t/a\nalpha2\n/t/b\nbeta\n"
    );
    let json = run_ok(ctl().args(["get", "/t/a", "-w", "json"]));
    assert!(json.contains("\"version\":2"), "{json}");

    // Txn: compare on version, success branch runs.
    let mut txn = ctl()
        .args(["txn", "--interactive=false"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = txn.stdin.as_mut().unwrap();
        stdin
            .write_all(b"version(\"/t/a\") = \"2\"\n\nput /t/c gamma\n\nput /t/c wrong\n\n")
            .unwrap();
    }
    let out = txn.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("SUCCESS"), "txn output: {out}");
    assert_eq!(
        run_ok(ctl().args(["get", "--print-value-only", "/t/c"])).trim(),
        "gamma"
    );

    // Leases.
    let granted = run_ok(ctl().args(["lease", "grant", "60"]));
    let lease = granted.split_whitespace().nth(1).unwrap().to_string();
    assert!(granted.contains("granted with TTL(60s)"), "{granted}");
    run_ok(ctl().args(["put", "--lease", &lease, "/t/leased", "x"]));
    let ttl = run_ok(ctl().args(["lease", "timetolive", "--keys", &lease]));
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("/t/leased"),
        "{ttl}"
    );
    run_ok(ctl().args(["lease", "revoke", &lease]));
    assert_eq!(run_ok(ctl().args(["get", "/t/leased"])), "");

    // Delete, then the watcher must have seen every change in order.
    assert_eq!(run_ok(ctl().args(["del", "/t/b"])).trim(), "1");
    std::thread::sleep(Duration::from_millis(500));
    watch.kill().unwrap();
    let mut seen = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    for needle in [
        "/t/a", "alpha", "alpha2", "/t/b", "beta", "/t/c", "gamma", "DELETE",
    ] {
        assert!(
            lines.contains(&needle),
            "watch output lacks {needle:?}:\n{seen}"
        );
    }

    // Compaction: old revisions become unreadable with etcd's exact error.
    let rev_json = run_ok(ctl().args(["get", "/t/a", "-w", "json"]));
    let rev: i64 = rev_json
        .split("\"revision\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(run_ok(ctl().args(["compaction", &rev.to_string()])).contains("compacted revision"));
    let old = ctl().args(["get", "/t/a", "--rev=2"]).output().unwrap();
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"),
        "{old:?}"
    );

    // Endpoint status reports a version kube-apiserver accepts for progress requests.
    let status = run_ok(ctl().args(["endpoint", "status", "-w", "json"]));
    assert!(status.contains("\"version\":\"3.6.13\""), "{status}");
    let health = ctl().args(["endpoint", "health"]).output().unwrap();
    assert!(health.status.success(), "{health:?}");
    let members = run_ok(ctl().args(["member", "list"]));
    assert!(members.contains(&shim.url), "{members}");
}

#[test]
fn key_rotation_without_downtime_then_rewrap_and_retire() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let data = tmp.path().join("data");
    let shim = ShimProcess::start(&data, &keyring);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = shim.url.clone();
    let mut kv = rt.block_on(async { KvClient::connect(url).await.unwrap() });
    let put = |kv: &mut KvClient<_>, k: &str, v: &str| {
        rt.block_on(kv.put(PutRequest {
            key: Bytes::from(k.to_string()),
            value: Bytes::from(v.to_string()),
            ..PutRequest::default()
        }))
        .unwrap();
    };
    for i in 0..20 {
        put(&mut kv, &format!("/rot/{i:02}"), &format!("value-{i}"));
    }
    let status = |scan: bool| {
        let mut cmd = Command::new(support::bin());
        cmd.args(["keys", "status", "--admin-endpoint", &shim.admin_url]);
        if scan {
            cmd.arg("--scan");
        }
        run_ok(&mut cmd)
    };
    let before = status(true);
    assert!(before.contains("20 values under"), "{before}");

    let rotated = run_ok(
        Command::new(support::bin())
            .args(["keys", "rotate", "--keyring"])
            .arg(&keyring)
            .args(["--admin-endpoint", &shim.admin_url]),
    );
    let new_id = rotated
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches(';')
        .to_string();
    assert!(status(false).contains(&format!("active {new_id}")));

    // Old values still read; new writes use the new key; the store never went away.
    put(&mut kv, "/rot/new", "after-rotation");
    let scan = status(true);
    assert!(
        scan.contains(&format!("1 values under {new_id} active")),
        "{scan}"
    );
    assert!(scan.contains("20 values under"), "{scan}");

    // Retiring the old key is refused while values still need it.
    let old_id = scan
        .lines()
        .find(|l| l.contains("20 values under"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    let retire = || {
        Command::new(support::bin())
            .args(["keys", "retire", "--keyring"])
            .arg(&keyring)
            .args(["--key-id", &old_id, "--admin-endpoint", &shim.admin_url])
            .output()
            .unwrap()
    };
    let refused = retire();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("run `keys rewrap` first"));

    let rewrap = run_ok(Command::new(support::bin()).args([
        "keys",
        "rewrap",
        "--admin-endpoint",
        &shim.admin_url,
    ]));
    assert!(rewrap.contains("re-encrypted 20 under"), "{rewrap}");
    let scan = status(true);
    assert!(
        scan.contains(&format!("21 values under {new_id} active")),
        "{scan}"
    );

    // No current value needs the old key, but the history still holds the versions the
    // rewrap replaced: refused until compaction passes them.
    let refused = retire();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not compacted yet"), "{err}");
    let current = rt
        .block_on(kv.range(RangeRequest {
            key: Bytes::from_static(b"/rot/"),
            ..RangeRequest::default()
        }))
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    rt.block_on(kv.compact(daas_etcd_proto::CompactionRequest {
        revision: current,
        physical: false,
    }))
    .unwrap();
    let retired = retire();
    assert!(retired.status.success(), "{retired:?}");
    // Archived, not deleted.
    assert!(
        keyring
            .join("archive")
            .join(format!("{old_id}.key"))
            .is_file()
    );
    // Everything still decrypts with the old key gone (after the shim reloads the ring).
    wait_until("shim reload after retire", Duration::from_secs(10), || {
        !status(false).contains(&old_id)
    });
    let resp = rt
        .block_on(kv.range(RangeRequest {
            key: Bytes::from_static(b"/rot/"),
            range_end: Bytes::from_static(b"/rot0"),
            ..RangeRequest::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(resp.kvs.len(), 21);
    assert_eq!(resp.kvs[0].value.as_ref(), b"value-0");
    assert!(files_containing(&data, b"value-0").is_empty());
}

#[test]
fn kill_9_under_write_load_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let data = tmp.path().join("data");
    let port = support::free_port();
    let mut shim = ShimProcess::start_on(port, &data, &keyring);
    let url = shim.url.clone();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // 16 writers, each recording (key, revision) for every acknowledged put.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let url = url.clone();
            let stop = stop.clone();
            rt.spawn(async move {
                let mut kv = KvClient::connect(url).await.unwrap();
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("/crash/w{w:02}/{i:08}");
                    match kv
                        .put(PutRequest {
                            key: Bytes::from(key.clone()),
                            value: Bytes::from(format!("v{i}")),
                            ..PutRequest::default()
                        })
                        .await
                    {
                        Ok(r) => acked.push((key, r.into_inner().header.unwrap().revision)),
                        Err(_) => break, // the server died mid-request: not acknowledged
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    shim.kill(); // SIGKILL while the writers are still writing
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, i64)> = writers
        .into_iter()
        .flat_map(|h| rt.block_on(h).unwrap())
        .collect();
    assert!(
        acked.len() > 100,
        "load too small to mean anything: {}",
        acked.len()
    );
    let max_acked = acked.iter().map(|(_, r)| *r).max().unwrap();

    let shim = ShimProcess::start_on(port, &data, &keyring);
    let mut kv = rt.block_on(KvClient::connect(shim.url.clone())).unwrap();
    let resp = rt
        .block_on(kv.range(RangeRequest {
            key: Bytes::from_static(b"/crash/"),
            range_end: Bytes::from_static(b"/crash0"),
            ..RangeRequest::default()
        }))
        .unwrap()
        .into_inner();
    let current = resp.header.unwrap().revision;
    assert!(
        current >= max_acked,
        "revision went back: {current} < {max_acked}"
    );
    let stored: std::collections::HashMap<_, _> = resp
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .collect();
    for (key, rev) in &acked {
        assert_eq!(
            stored.get(key),
            Some(rev),
            "acknowledged write {key}@{rev} lost"
        );
    }
    // Revisions stay monotonic after the restart.
    let next = rt
        .block_on(kv.put(PutRequest {
            key: Bytes::from_static(b"/crash/after"),
            value: Bytes::from_static(b"x"),
            ..PutRequest::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(next.header.unwrap().revision, current + 1);
    eprintln!(
        "crash test: {} acknowledged writes before kill -9, all present; {} stored",
        acked.len(),
        stored.len()
    );
}

/// A self-signed server certificate and key (PEM files) under `dir`.
fn tls_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed certificate");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.pem()).expect("write certificate");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

/// TLS without client certificates encrypts the decrypted cluster state on its way to anyone
/// who connects: a non-loopback listener (etcd or KeyAdmin) is refused at start, before
/// anything is bound or opened, unless `--tls-client-ca` is given.
#[test]
fn a_non_loopback_listener_without_client_certificates_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let (cert, key) = tls_files(tmp.path());
    let data = tmp.path().join("data");
    for (listen, admin) in [("0.0.0.0:0", None), ("127.0.0.1:0", Some("0.0.0.0:0"))] {
        let mut cmd = Command::new(support::bin());
        cmd.args(["etcd-shim", "--listen", listen, "--keyring"])
            .arg(&keyring)
            .arg("--backend")
            .arg(format!("embedded:{}", data.display()))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key);
        if let Some(admin) = admin {
            cmd.args(["--admin-listen", admin]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{listen}/{admin:?} must be refused: {err}"
        );
        assert!(
            err.contains("0.0.0.0:0 without client-certificate authentication")
                && err.contains("--tls-client-ca"),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
        assert!(
            !data.exists(),
            "the datastore was opened before the refusal"
        );
    }
}

/// KeyAdmin has its own 0600 unix socket and is not served on the etcd listener; the CLI
/// points at the right one, and refuses out-of-range rewrap rates before calling anything.
#[test]
fn key_admin_has_a_listener_of_its_own() {
    use daas_etcd_proto::admin::{KeyStatusRequest, key_admin_client::KeyAdminClient};
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let shim = ShimProcess::start(&tmp.path().join("data"), &keyring);
    let socket = tmp.path().join("keys.admin.sock");
    assert_eq!(shim.admin_url, format!("unix://{}", socket.display()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        tmp.path().join("keys.anchor").is_file(),
        "anchor beside the key ring"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            KeyAdminClient::connect(shim.url.clone())
                .await
                .unwrap()
                .status(KeyStatusRequest { scan: true })
                .await
        })
        .expect_err("KeyAdmin on the etcd listener");
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");

    let wrong = Command::new(support::bin())
        .args(["keys", "status", "--admin-endpoint", &shim.url])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not serve KeyAdmin"),
        "{wrong:?}"
    );
    let ok = run_ok(Command::new(support::bin()).args([
        "keys",
        "status",
        "--admin-endpoint",
        &shim.admin_url,
        "--scan",
    ]));
    assert!(ok.contains("scanned"), "{ok}");

    for rate in ["0", "10001", "4294967295"] {
        let out = Command::new(support::bin())
            .args(["keys", "rewrap", "--admin-endpoint", &shim.admin_url])
            .args(["--max-writes-per-second", rate])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "rate {rate}: {out:?}");
    }
}

/// Retiring a key archives it: a backup taken before rotate → rewrap → retire, restored later,
/// reads again with the archived key (`--with-archived-keys`). The restore itself is a rollback
/// of the datastore, refused until the operator accepts it.
#[test]
fn a_backup_from_before_retirement_reads_with_the_archived_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let data = tmp.path().join("data");
    let port = support::free_port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kv = |shim: &ShimProcess| rt.block_on(KvClient::connect(shim.url.clone())).unwrap();
    let get_all = |kv: &mut KvClient<tonic::transport::Channel>| {
        rt.block_on(kv.range(RangeRequest {
            key: Bytes::from_static(b"/bk/"),
            range_end: Bytes::from_static(b"/bk0"),
            ..RangeRequest::default()
        }))
        .map(|r| r.into_inner())
    };

    let mut shim = ShimProcess::start_on(port, &data, &keyring);
    let mut c = kv(&shim);
    for i in 0..10 {
        rt.block_on(c.put(PutRequest {
            key: Bytes::from(format!("/bk/{i:02}")),
            value: Bytes::from(format!("backed-up-{i}")),
            ..PutRequest::default()
        }))
        .unwrap();
    }
    shim.stop();
    // The operator's backup: a copy of the store.
    let backup = tmp.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    std::fs::copy(data.join("state.redb"), backup.join("state.redb")).unwrap();

    let mut shim = ShimProcess::start_on(port, &data, &keyring);
    let admin = ["--admin-endpoint", shim.admin_url.as_str()];
    let keys = || {
        let mut cmd = Command::new(support::bin());
        cmd.arg("keys");
        cmd
    };
    let status = run_ok(keys().args(["status", "--scan"]).args(admin));
    let old_id = status
        .lines()
        .find(|l| l.contains("10 values under"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_owned();
    run_ok(
        keys()
            .args(["rotate", "--keyring"])
            .arg(&keyring)
            .args(admin),
    );
    run_ok(keys().arg("rewrap").args(admin));
    let mut c = kv(&shim);
    let current = get_all(&mut c).unwrap().header.unwrap().revision;
    rt.block_on(c.compact(daas_etcd_proto::CompactionRequest {
        revision: current,
        physical: false,
    }))
    .unwrap();
    run_ok(
        keys()
            .args(["retire", "--keyring"])
            .arg(&keyring)
            .args(["--key-id", &old_id])
            .args(admin),
    );
    let listed = run_ok(keys().args(["status", "--keyring"]).arg(&keyring));
    assert!(
        listed.contains(&format!("{old_id} (retired, in archive/)")),
        "{listed}"
    );
    shim.stop();

    // Disaster: the store is restored from the backup.
    std::fs::copy(backup.join("state.redb"), data.join("state.redb")).unwrap();
    let refused = ShimProcess::try_start(port, &data, &keyring, &[])
        .err()
        .unwrap();
    assert!(refused.contains("rolled back"), "{refused}");
    // Accepted on purpose, but without the retired key nothing in it reads.
    let mut shim =
        ShimProcess::start_with(port, &data, &keyring, &["--accept-rolled-back-datastore"]);
    let err = get_all(&mut kv(&shim)).expect_err("sealed under the retired key");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    shim.stop();
    // With the archived keys loaded, the backup reads again.
    let _shim = ShimProcess::start_with(port, &data, &keyring, &["--with-archived-keys"]);
    let all = get_all(&mut kv(&_shim)).unwrap();
    assert_eq!(all.kvs.len(), 10);
    assert_eq!(all.kvs[3].value.as_ref(), b"backed-up-3");
}

/// Logs written to a pipe (the journal, a file) carry no terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keys");
    init_keyring(&keyring);
    let mut child = Command::new(support::bin())
        .args(["etcd-shim", "--listen"])
        .arg(format!("127.0.0.1:{}", support::free_port()))
        .arg("--backend")
        .arg(format!("embedded:{}", tmp.path().join("data").display()))
        .arg("--keyring")
        .arg(&keyring)
        .env("DAAS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("etcd-shim listening on"), "{first:?}");
    child.kill().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child.wait().unwrap();
    assert!(logs.contains("INFO"), "no log lines to check: {logs}");
    assert!(
        !logs.contains('\x1b'),
        "colour codes in piped logs: {logs:?}"
    );
}
