//! `dev`'s K3s download against a local stand-in for the GitHub release: a fake `k3s` (a shell
//! script that records how it was started) and its checksum file.
//!
//! The stand-in speaks raw HTTP/1.1 on a loopback port rather than through hyper's server, so
//! it can also send what a broken or hostile server sends: a body shorter than its
//! `Content-Length`, a body larger than allowed, redirect loops. It counts every request, so
//! the tests can prove a cache hit or `--no-download` makes none.
//!
//! The library-level cases call `k3s::ensure_k3s` directly; the process-level ones run
//! `nautilus-master dev` as a newcomer would (no k3s on PATH, no `K3S_BIN`) and stop it with
//! SIGTERM.

#![allow(clippy::unwrap_used)] // test: a failed step should panic

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nautilus_master::k3s::{Arch, DownloadConfig, DownloadError, K3S_VERSION, Origin, ensure_k3s};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// The stand-in release server.

/// A canned response: the whole bytes written back, after which the connection is closed.
#[derive(Clone)]
struct Canned(Vec<u8>);

impl Canned {
    fn ok(body: &[u8]) -> Self {
        Self::with_head(
            &format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()),
            body,
        )
    }

    /// A 200 whose `Content-Length` announces `announced` bytes but sends `body`.
    fn lying_length(announced: usize, body: &[u8]) -> Self {
        Self::with_head(
            &format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n"),
            body,
        )
    }

    /// A 200 without a length: the body ends when the connection closes.
    fn until_close(body: &[u8]) -> Self {
        Self::with_head("HTTP/1.1 200 OK\r\n", body)
    }

    fn redirect(location: &str) -> Self {
        Self::with_head(
            &format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"),
            b"",
        )
    }

    fn with_head(head: &str, body: &[u8]) -> Self {
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        bytes.extend_from_slice(body);
        Canned(bytes)
    }
}

/// Serves `routes` (request path → response; anything else 404) on 127.0.0.1 until dropped.
struct Release {
    addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Canned>>>,
    paths: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Release {
    fn start(routes: HashMap<String, Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Arc::new(Mutex::new(routes));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (routes, paths, count, stop) =
                (routes.clone(), paths.clone(), count.clone(), stop.clone());
            move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let Some(path) = read_request_path(&conn) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    paths.lock().unwrap().push(path.clone());
                    let response =
                        routes
                            .lock()
                            .unwrap()
                            .get(&path)
                            .cloned()
                            .unwrap_or_else(|| {
                                Canned::with_head(
                                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n",
                                    b"",
                                )
                            });
                    let mut conn = conn;
                    // The client may hang up early (an oversized body): not an error here.
                    let _ = conn.write_all(&response.0);
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                }
            }
        });
        Release {
            addr,
            routes,
            paths,
            count,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL to give as the release URL.
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    fn set(&self, path: &str, response: Canned) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), response);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head and returns its path (`GET /path HTTP/1.1`).
fn read_request_path(conn: &TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// The fake release.

fn arch() -> Arch {
    Arch::host().expect("the tests run on amd64 or arm64")
}

fn bin_path() -> String {
    format!("/{K3S_VERSION}/{}", arch().asset())
}

fn sums_path() -> String {
    format!("/{K3S_VERSION}/{}", arch().checksum_file())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A `k3s` that answers `--version`, and otherwise appends its arguments to `record` and
/// sleeps (like a server that never becomes ready), so `dev` waits for it until stopped.
fn fake_k3s(record: &Path) -> Vec<u8> {
    format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'k3s version {K3S_VERSION} (fake)'; exit 0; fi\n\
         echo \"$*\" >> '{}'\nexec sleep 120\n",
        record.display()
    )
    .into_bytes()
}

/// A checksum listing as K3s publishes it: several files, ours among them.
fn sums_for(binary: &[u8]) -> Vec<u8> {
    format!(
        "{}  k3s-airgap-images-{a}.tar.zst\n{}  {}\n{}  k3s-images.txt\n",
        sha256_hex(b"images"),
        sha256_hex(binary),
        arch().asset(),
        sha256_hex(b"list"),
        a = arch().name(),
    )
    .into_bytes()
}

fn release_for(binary: &[u8]) -> Release {
    Release::start(HashMap::from([
        (bin_path(), Canned::ok(binary)),
        (sums_path(), Canned::ok(&sums_for(binary))),
    ]))
}

fn config(release: &Release, cache: &Path) -> DownloadConfig {
    let mut config = DownloadConfig::new(cache, arch());
    config.release_url = release.url();
    config
}

/// Everything in the cache (relative paths), to prove nothing was left behind.
fn cached_files(cache: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(cache, cache, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Library level: ensure_k3s against the stand-in.

#[tokio::test]
async fn downloads_verifies_caches_then_uses_the_cache_without_a_request() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = fake_k3s(&tmp.path().join("record"));
    let release = release_for(&binary);
    let cache = tmp.path().join("cache");
    let got = ensure_k3s(&config(&release, &cache)).await.unwrap();
    let slot = cache.join(K3S_VERSION).join(arch().name());
    assert_eq!(got.path, slot.join("k3s"));
    assert_eq!(got.sha256, sha256_hex(&binary));
    assert_eq!(
        got.origin,
        Origin::Downloaded {
            url: format!("{}{K3S_VERSION}/{}", release.url(), arch().asset())
        }
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), binary);
    let mode = std::fs::metadata(&got.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert_eq!(
        release.paths(),
        vec![sums_path(), bin_path()],
        "checksums first"
    );
    assert_eq!(
        cached_files(&cache),
        vec![
            format!("{K3S_VERSION}/{}/k3s", arch().name()),
            format!("{K3S_VERSION}/{}/{}", arch().name(), arch().checksum_file()),
        ]
    );
    let shown = got.to_string();
    assert!(
        shown.contains("downloaded from") && shown.contains(&got.sha256),
        "{shown}"
    );

    // Second call: the cache, re-checked, and no request at all.
    let again = ensure_k3s(&config(&release, &cache)).await.unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(again.sha256, got.sha256);
    assert_eq!(release.requests(), 2);
}

#[tokio::test]
async fn a_tampered_cached_binary_is_refused_and_downloaded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = fake_k3s(&tmp.path().join("record"));
    let release = release_for(&binary);
    let cache = tmp.path().join("cache");
    let got = ensure_k3s(&config(&release, &cache)).await.unwrap();
    std::fs::write(&got.path, b"#!/bin/sh\necho tampered\n").unwrap();

    // Without downloads: refused (and removed), with a message that says what to do.
    let mut offline = config(&release, &cache);
    offline.allow_download = false;
    let err = ensure_k3s(&offline).await.unwrap_err();
    assert!(matches!(err, DownloadError::NoDownload { .. }), "{err}");
    assert!(!got.path.exists(), "the tampered binary is removed");
    assert_eq!(release.requests(), 2);

    std::fs::write(&got.path, b"#!/bin/sh\necho tampered again\n").unwrap();
    std::fs::set_permissions(&got.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let again = ensure_k3s(&config(&release, &cache)).await.unwrap();
    assert!(matches!(again.origin, Origin::Downloaded { .. }));
    assert_eq!(std::fs::read(&again.path).unwrap(), binary);
    assert_eq!(release.requests(), 4);
}

/// What a refused download must leave: an error of the expected kind, nothing in the cache.
async fn refused(release: &Release, tweak: impl FnOnce(&mut DownloadConfig)) -> DownloadError {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut config = config(release, &cache);
    tweak(&mut config);
    let err = ensure_k3s(&config).await.unwrap_err();
    assert_eq!(cached_files(&cache), Vec::<String>::new(), "{err}");
    err
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_naming_both_hashes() {
    let binary = b"#!/bin/sh\nexit 0\n".to_vec();
    let release = release_for(&binary);
    let published = sha256_hex(b"something else");
    release.set(
        &sums_path(),
        Canned::ok(format!("{published}  {}\n", arch().asset()).as_bytes()),
    );
    let err = refused(&release, |_| {}).await;
    let text = err.to_string();
    assert!(
        matches!(err, DownloadError::ChecksumMismatch { .. }),
        "{text}"
    );
    assert!(
        text.contains(&published) && text.contains(&sha256_hex(&binary)),
        "{text}"
    );
}

#[tokio::test]
async fn a_checksum_file_without_our_file_is_refused_before_the_binary_is_fetched() {
    let release = release_for(b"bin");
    release.set(
        &sums_path(),
        Canned::ok(format!("{}  k3s-something-else\n", sha256_hex(b"bin")).as_bytes()),
    );
    let err = refused(&release, |_| {}).await;
    assert!(
        err.to_string()
            .contains(&format!("has no SHA-256 line for {}", arch().asset())),
        "{err}"
    );
    assert_eq!(release.paths(), vec![sums_path()]);
}

#[tokio::test]
async fn truncated_and_oversized_bodies_are_refused() {
    let binary = vec![b'x'; 4096];
    let release = release_for(&binary);

    release.set(&bin_path(), Canned::lying_length(8192, &binary));
    let err = refused(&release, |_| {}).await;
    assert!(
        matches!(
            err,
            DownloadError::Truncated { .. } | DownloadError::Interrupted { .. }
        ),
        "{err}"
    );

    // Announced too large: refused before the body is read.
    release.set(&bin_path(), Canned::ok(&binary));
    let err = refused(&release, |c| c.max_binary_bytes = 1024).await;
    assert!(
        matches!(err, DownloadError::TooLarge { limit: 1024, .. }),
        "{err}"
    );

    // No length announced, and more bytes than allowed.
    release.set(&bin_path(), Canned::until_close(&binary));
    let err = refused(&release, |c| c.max_binary_bytes = 1024).await;
    assert!(matches!(err, DownloadError::TooLarge { .. }), "{err}");

    // A checksum file over the default 64 KiB bound.
    release.set(
        &sums_path(),
        Canned::until_close(&vec![b'#'; 64 * 1024 + 1]),
    );
    let err = refused(&release, |_| {}).await;
    assert!(
        matches!(err, DownloadError::TooLarge { limit, .. } if limit == 64 * 1024),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_are_followed_but_loops_and_downgrades_are_refused() {
    let binary = b"#!/bin/sh\nexit 0\n".to_vec();
    let release = release_for(&binary);

    // As GitHub does: 302 to an object store URL with a signed query.
    release.set(
        &bin_path(),
        Canned::redirect("/objects/k3s?signature=secret"),
    );
    release.set("/objects/k3s?signature=secret", Canned::ok(&binary));
    let tmp = tempfile::tempdir().unwrap();
    let got = ensure_k3s(&config(&release, tmp.path())).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), binary);

    // A loop: refused after the fifth redirect.
    release.set(&bin_path(), Canned::redirect("/loop-a"));
    release.set("/loop-a", Canned::redirect("/loop-b"));
    release.set("/loop-b", Canned::redirect("/loop-a"));
    let before = release.requests();
    let err = refused(&release, |_| {}).await;
    assert!(
        matches!(err, DownloadError::TooManyRedirects { max: 5, .. }),
        "{err}"
    );
    // The checksum file, then the binary's URL and five redirects.
    assert_eq!(release.requests() - before, 1 + 6);

    // To plain http on a non-loopback host: refused without connecting there.
    release.set(&bin_path(), Canned::redirect("http://example.com/k3s"));
    let err = refused(&release, |_| {}).await;
    assert!(err.to_string().contains("loopback"), "{err}");

    release.set(
        &bin_path(),
        Canned::with_head("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n", b""),
    );
    let err = refused(&release, |_| {}).await;
    assert!(
        matches!(err, DownloadError::Status { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn no_network_is_one_clear_line() {
    // A port nothing listens on.
    let port = support::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = DownloadConfig::new(tmp.path(), arch());
    config.release_url = format!("http://127.0.0.1:{port}/");
    let err = ensure_k3s(&config).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DownloadError::Connect { .. }), "{text}");
    assert!(
        text.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

/// HTTPS is verified against the public roots: a server with a certificate of its own (here on
/// loopback, as a network attacker's would be) fails the handshake, and nothing is fetched.
#[tokio::test]
async fn https_refuses_a_certificate_outside_the_public_roots() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn({
        let handshakes = handshakes.clone();
        async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if acceptor.accept(tcp).await.is_ok() {
                    handshakes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut config = DownloadConfig::new(tmp.path().join("cache"), arch());
    config.release_url = format!("https://127.0.0.1:{port}/");
    let err = ensure_k3s(&config).await.unwrap_err();
    assert!(matches!(err, DownloadError::Tls { .. }), "{err}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(cached_files(tmp.path()), Vec::<String>::new());
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// Process level: `nautilus-master dev` with no k3s installed.

/// A running `dev`; its stdout lines arrive on `lines`. Killed if the test fails before
/// [`DevProcess::stop`].
struct DevProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl DevProcess {
    fn start(data: &Path, cache: &Path, release: &Release, extra: &[&str]) -> Self {
        let mut cmd = Command::new(support::bin());
        cmd.args(["dev", "--data-dir"]).arg(data);
        for flag in [
            "--listen",
            "--webhook-listen",
            "--admin-listen",
            "--chain-listen",
            "--node-listen",
        ] {
            cmd.args([flag, "127.0.0.1:0"]);
        }
        let mut child = cmd
            .arg("--k3s-cache-dir")
            .arg(cache)
            .args(["--k3s-release-url", &release.url()])
            .args(extra)
            // A newcomer's machine: no k3s on PATH, no K3S_BIN.
            .env_remove("K3S_BIN")
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        DevProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stdout line starting (after indentation) with `prefix`.
    fn line(&mut self, prefix: &str) -> String {
        if let Some(l) = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with(prefix))
        {
            return l.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("no {prefix:?} line from dev: {:?}", self.seen));
            self.seen.push(line.clone());
            if line.trim_start().starts_with(prefix) {
                return line;
            }
        }
    }

    /// SIGTERM; `dev` must exit 0.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "dev exited with {status}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dev did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the fake k3s has recorded `n` starts, and returns them.
fn starts(record: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(record).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the fake k3s was started {} times, expected {n}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A newcomer's first `dev`: the pinned release is downloaded, verified, cached (0755) and
/// started as `k3s server`; the next start uses the cache without a request; a tampered cached
/// binary is refused and downloaded again.
#[test]
fn dev_downloads_caches_and_runs_the_pinned_k3s() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("k3s-starts");
    let binary = fake_k3s(&record);
    let release = release_for(&binary);
    let cache = tmp.path().join("cache");
    let data = tmp.path().join("d");
    let cached = cache.join(K3S_VERSION).join(arch().name()).join("k3s");

    let mut dev = DevProcess::start(&data, &cache, &release, &[]);
    let line = dev.line("k3s binary");
    assert!(
        line.contains(&cached.display().to_string())
            && line.contains(&format!("downloaded from {}{K3S_VERSION}/", release.url()))
            && line.contains(&sha256_hex(&binary)),
        "{line}"
    );
    let first = starts(&record, 1);
    assert!(first[0].starts_with("server "), "{first:?}");
    assert!(first[0].contains("--datastore-endpoint"), "{first:?}");
    dev.stop();
    assert_eq!(std::fs::read(&cached).unwrap(), binary);
    let mode = std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert_eq!(release.requests(), 2);

    let mut dev = DevProcess::start(&data, &cache, &release, &[]);
    let line = dev.line("k3s binary");
    assert!(line.contains("cached"), "{line}");
    starts(&record, 2);
    dev.stop();
    assert_eq!(release.requests(), 2, "a cache hit makes no request");

    std::fs::write(&cached, b"#!/bin/sh\necho tampered\n").unwrap();
    let mut dev = DevProcess::start(&data, &cache, &release, &[]);
    let line = dev.line("k3s binary");
    assert!(line.contains("downloaded from"), "{line}");
    starts(&record, 3);
    dev.stop();
    assert_eq!(release.requests(), 4);
    assert_eq!(std::fs::read(&cached).unwrap(), binary);
}

/// A wrong checksum: refused with both hashes, nothing cached, and `dev` still serves
/// everything else, without an API server.
#[test]
fn dev_refuses_a_wrong_checksum_and_serves_without_an_api_server() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("k3s-starts");
    let binary = fake_k3s(&record);
    let release = release_for(&binary);
    let published = sha256_hex(b"not the binary");
    release.set(
        &sums_path(),
        Canned::ok(format!("{published}  {}\n", arch().asset()).as_bytes()),
    );
    let cache = tmp.path().join("cache");
    let mut dev = DevProcess::start(&tmp.path().join("d"), &cache, &release, &[]);
    let line = dev.line("k3s binary");
    assert!(
        line.contains("none: SHA-256 mismatch")
            && line.contains(&published)
            && line.contains(&sha256_hex(&binary)),
        "{line}"
    );
    let api = dev.line("API server");
    assert!(api.contains("none"), "{api}");
    dev.line("No k3s binary was found");
    dev.line("Staking on chain");
    assert!(!record.exists(), "the refused binary never ran");
    assert_eq!(cached_files(&cache), Vec::<String>::new());
    dev.stop();
}

/// `--no-download` with an empty cache: no request at all, and the message says what to do.
#[test]
fn dev_no_download_makes_no_request_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let release = release_for(b"unused");
    let cache = tmp.path().join("cache");
    let mut dev = DevProcess::start(&tmp.path().join("d"), &cache, &release, &["--no-download"]);
    let line = dev.line("k3s binary");
    for what in [
        "--no-download is set",
        "install k3s",
        "K3S_BIN",
        "drop --no-download",
    ] {
        assert!(line.contains(what), "{what:?} missing from {line}");
    }
    dev.line("Staking on chain");
    assert_eq!(release.requests(), 0);
    dev.stop();
}
