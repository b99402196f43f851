//! The pinned K3s release for `dev` when no k3s binary is installed: fetched from the K3s
//! GitHub release for this host's architecture, checked against the release's published
//! SHA-256 and kept in a per-user cache.
//!
//! What it does:
//! - [`ensure_k3s`] returns a verified binary: from the cache
//!   (`<cache>/<version>/<arch>/k3s`, see [`default_cache_dir`]) after re-hashing it against the
//!   checksum file cached beside it, else downloaded. A download fetches the release's
//!   `sha256sum-<arch>.txt` first, takes the line for our file (`k3s` or `k3s-arm64`), streams
//!   the binary into a temporary file in the cache directory while hashing it, and installs it
//!   (fsync, mode 0755, rename) only if the hashes match; a mismatch is refused and nothing is
//!   cached. Redirects are followed (GitHub answers 302 to its object store), at most
//!   [`MAX_REDIRECTS`], `https` only — plain `http` is accepted for loopback hosts (the tests'
//!   stand-in) and never after an `https` hop. Sizes are bounded ([`MAX_BINARY_BYTES`],
//!   [`MAX_CHECKSUM_BYTES`]), every network wait has a timeout, and progress is logged about
//!   every 10 %.
//!
//! What it does not do: verify a signature. K3s publishes checksums, not signatures, and the
//! checksum file comes from the same release over the same TLS, so the check catches corrupt,
//! truncated and swapped downloads and a tampered cache; trust in the bytes themselves rests on
//! TLS to GitHub (Mozilla's roots from `webpki-roots`) and the pinned version. It is for `dev`
//! only: the enclave image ships its own k3s.

mod client;

use std::fmt;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use client::{Sink, check_url, fetch, parse_url};

/// The K3s release `dev` downloads: Kubernetes 1.36, as our peers (kube-apiserver and kubelet
/// v1.36.2). v1.36.4+k3s1 is the newest 1.36 patch release K3s has promoted to its stable
/// channel (k3s-io/k3s pull request 14553, 2026-08-27); `--k3s-version` overrides it.
pub const K3S_VERSION: &str = "v1.36.4+k3s1";

/// Where K3s releases are published: `<RELEASE_URL><version>/<file>`.
pub const RELEASE_URL: &str = "https://github.com/k3s-io/k3s/releases/download/";

/// The environment variable that overrides [`RELEASE_URL`] (the tests' local stand-in).
pub const RELEASE_URL_ENV: &str = "DAAS_K3S_RELEASE_URL";

/// The largest k3s binary accepted (a release binary is about 70 MiB).
pub const MAX_BINARY_BYTES: u64 = 256 * 1024 * 1024;

/// The largest checksum file accepted (a release's is under 1 KiB).
pub const MAX_CHECKSUM_BYTES: u64 = 64 * 1024;

/// The most redirects followed for one file (GitHub needs one).
pub const MAX_REDIRECTS: usize = 5;

/// The CPU architectures K3s publishes a binary for, as its release names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl Arch {
    /// This machine's architecture, or [`DownloadError::UnsupportedArch`].
    pub fn host() -> Result<Self, DownloadError> {
        Self::from_rust(std::env::consts::ARCH)
    }

    /// Maps Rust's name for an architecture (`std::env::consts::ARCH`) to K3s's.
    pub fn from_rust(arch: &str) -> Result<Self, DownloadError> {
        match arch {
            "x86_64" => Ok(Arch::Amd64),
            "aarch64" => Ok(Arch::Arm64),
            other => Err(DownloadError::UnsupportedArch {
                arch: other.to_owned(),
            }),
        }
    }

    /// K3s's name for it: `amd64` or `arm64`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The binary's file name in a release: `k3s` (amd64) or `k3s-arm64`.
    pub fn asset(self) -> &'static str {
        match self {
            Arch::Amd64 => "k3s",
            Arch::Arm64 => "k3s-arm64",
        }
    }

    /// The release's checksum file for this architecture: `sha256sum-<arch>.txt`.
    pub fn checksum_file(self) -> String {
        format!("sha256sum-{}.txt", self.name())
    }
}

/// What [`ensure_k3s`] fetches, from where, and where it keeps it.
#[derive(Clone, Debug)]
pub struct DownloadConfig {
    /// The release tag ([`K3S_VERSION`] unless overridden).
    pub version: String,
    /// The release base URL ([`RELEASE_URL`] unless overridden); `<version>/` is appended.
    pub release_url: String,
    /// The cache root (see [`default_cache_dir`]); binaries go to `<version>/<arch>/k3s`.
    pub cache_dir: PathBuf,
    /// The architecture to fetch for ([`Arch::host`]).
    pub arch: Arch,
    /// `false` (`--no-download`): use the cache only.
    pub allow_download: bool,
    /// Largest binary accepted ([`MAX_BINARY_BYTES`]).
    pub max_binary_bytes: u64,
    /// Largest checksum file accepted ([`MAX_CHECKSUM_BYTES`]).
    pub max_checksum_bytes: u64,
    /// TCP connect plus TLS handshake limit (default 30 s).
    pub connect_timeout: Duration,
    /// Longest wait for a response's head or for the next piece of its body (default 60 s).
    pub idle_timeout: Duration,
    /// Longest time for one file, redirects included (default 30 min: a trickling server
    /// cannot hold `dev` forever).
    pub total_timeout: Duration,
}

impl DownloadConfig {
    /// The pinned version from the public release, cached under `cache_dir`, for `arch`,
    /// downloads allowed, default limits and timeouts.
    pub fn new(cache_dir: impl Into<PathBuf>, arch: Arch) -> Self {
        Self {
            version: K3S_VERSION.to_owned(),
            release_url: RELEASE_URL.to_owned(),
            cache_dir: cache_dir.into(),
            arch,
            allow_download: true,
            max_binary_bytes: MAX_BINARY_BYTES,
            max_checksum_bytes: MAX_CHECKSUM_BYTES,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// [`DownloadConfig::new`] for this machine: its architecture ([`Arch::host`]) and
    /// `cache_dir`, else [`default_cache_dir`].
    pub fn for_host(cache_dir: Option<PathBuf>) -> Result<Self, DownloadError> {
        let cache_dir = match cache_dir {
            Some(dir) => dir,
            None => default_cache_dir()?,
        };
        Ok(Self::new(cache_dir, Arch::host()?))
    }

    /// Checks the version and release URL (no I/O).
    pub fn check(&self) -> Result<(), DownloadError> {
        check_release(&self.version, &self.release_url)
    }

    /// `<cache>/<version>/<arch>`.
    pub fn cache_slot(&self) -> PathBuf {
        self.cache_dir.join(&self.version).join(self.arch.name())
    }

    fn base_url(&self) -> Result<String, DownloadError> {
        base_url(&self.release_url, &self.version)
    }
}

/// Checks a release tag and base URL without any I/O, so `dev` refuses bad flags before it
/// opens a port.
pub fn check_release(version: &str, release_url: &str) -> Result<(), DownloadError> {
    base_url(release_url, version).map(drop)
}

/// `<release_url><version>/`, checked against the URL policy.
fn base_url(release_url: &str, version: &str) -> Result<String, DownloadError> {
    check_version(version)?;
    let mut base = release_url.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    base.push_str(version);
    base.push('/');
    check_url(&parse_url(&base)?, None)?;
    Ok(base)
}

/// The cache root: `$XDG_CACHE_HOME/k3s-daas/k3s` when that is an absolute path, else
/// `$HOME/.cache/k3s-daas/k3s`.
pub fn default_cache_dir() -> Result<PathBuf, DownloadError> {
    cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

fn cache_dir_from(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, DownloadError> {
    // The XDG base-directory spec: relative values are invalid and ignored.
    let base = match (xdg.map(PathBuf::from), home.map(PathBuf::from)) {
        (Some(xdg), _) if xdg.is_absolute() => xdg,
        (_, Some(home)) if home.is_absolute() => home.join(".cache"),
        _ => return Err(DownloadError::NoCacheDir),
    };
    Ok(base.join("k3s-daas").join("k3s"))
}

/// Where a verified binary came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The cache, re-checked against its cached checksum file.
    Cache,
    /// Downloaded now from this URL (before redirects, which may carry signed queries).
    Downloaded {
        /// The release URL of the binary.
        url: String,
    },
}

/// A k3s binary whose SHA-256 matched its release's checksum file.
#[derive(Clone, Debug)]
pub struct K3sBinary {
    /// The cached, executable file.
    pub path: PathBuf,
    /// Its release tag.
    pub version: String,
    /// Its architecture.
    pub arch: Arch,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Cache or download.
    pub origin: Origin,
}

impl fmt::Display for K3sBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (K3s {} {}, ",
            self.path.display(),
            self.version,
            self.arch.name()
        )?;
        match &self.origin {
            Origin::Cache => f.write_str("cached")?,
            Origin::Downloaded { url } => write!(f, "downloaded from {url}")?,
        }
        write!(
            f,
            "; SHA-256 {} matches the release's {})",
            self.sha256,
            self.arch.checksum_file()
        )
    }
}

/// Everything that can go wrong while finding, fetching or checking the release.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// K3s publishes no binary for this architecture.
    #[error(
        "K3s publishes no release binary for this machine's architecture ({arch}; only amd64 \
         and arm64): install k3s yourself and set K3S_BIN"
    )]
    UnsupportedArch {
        /// Rust's name for the architecture.
        arch: String,
    },
    /// The version is not a release tag (it becomes part of a URL and a path).
    #[error(
        "{version:?} is not a K3s release tag (like {K3S_VERSION}: `v`, then letters, digits, \
         `.`, `+` or `-`)"
    )]
    BadVersion {
        /// The version given.
        version: String,
    },
    /// A release URL (given, or from a redirect) is unusable or not allowed.
    #[error("refusing release URL {url}: {reason}")]
    BadUrl {
        /// The URL (without its query).
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Neither `$XDG_CACHE_HOME` nor `$HOME` is set to an absolute path.
    #[error("no cache directory for k3s: set XDG_CACHE_HOME or HOME, or give --k3s-cache-dir")]
    NoCacheDir,
    /// There is no verified cached binary and downloading is switched off.
    #[error(
        "no verified k3s binary in {} and --no-download is set: install k3s (and put it on \
         PATH), set K3S_BIN or --k3s-bin, or drop --no-download",
        slot.display()
    )]
    NoDownload {
        /// The cache slot that was looked in.
        slot: PathBuf,
    },
    /// The host could not be reached (no network, DNS failure, refused).
    #[error("cannot reach {host} (no network? install k3s and set K3S_BIN, or retry online)")]
    Connect {
        /// `host:port`.
        host: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, protocol error).
    #[error("TLS with {host} failed")]
    Tls {
        /// `host:port`.
        host: String,
        /// rustls's error, as tokio-rustls reports it.
        #[source]
        source: io::Error,
    },
    /// A network wait took longer than its limit.
    #[error("{what} for {url} took longer than {}", humantime::format_duration(*after))]
    Timeout {
        /// The URL (without its query).
        url: String,
        /// What was awaited.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The HTTP exchange failed before a response head arrived.
    #[error("HTTP request for {url} failed")]
    Http {
        /// The URL (without its query).
        url: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The server answered with a status other than 200 or a redirect.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL (without its query).
        url: String,
        /// The status.
        status: u16,
    },
    /// More than [`MAX_REDIRECTS`] redirects (a loop, or a misconfigured mirror).
    #[error("more than {max} redirects fetching {url}")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
        /// [`MAX_REDIRECTS`].
        max: usize,
    },
    /// The body is larger than allowed (announced or actually sent).
    #[error("{url} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The URL (without its query).
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The body ended before the announced length.
    #[error("{url} ended after {received} of {expected} bytes")]
    Truncated {
        /// The URL (without its query).
        url: String,
        /// Bytes received.
        received: u64,
        /// `Content-Length`.
        expected: u64,
    },
    /// The connection broke while the body was being read.
    #[error("download of {url} broke off after {received} bytes")]
    Interrupted {
        /// The URL (without its query).
        url: String,
        /// Bytes received.
        received: u64,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The checksum file has no usable line for our binary.
    #[error("{file} has no SHA-256 line for {asset}")]
    ChecksumMissing {
        /// The checksum file's name.
        file: String,
        /// The binary's file name.
        asset: &'static str,
    },
    /// The checksum file's line for our binary is malformed or contradicts another one.
    #[error("{file} line {line}: {reason}")]
    ChecksumInvalid {
        /// The checksum file's name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The downloaded binary's hash differs from the release's checksum file.
    #[error(
        "SHA-256 mismatch for {url}: the release's {file} says {expected}, the download hashes \
         to {actual}; refused, nothing was cached"
    )]
    ChecksumMismatch {
        /// The binary's URL.
        url: String,
        /// The checksum file's name.
        file: String,
        /// The published hash.
        expected: String,
        /// The download's hash.
        actual: String,
    },
    /// The cached binary's hash differs from the cached checksum file (or that file is gone).
    #[error("cached {} fails its check: {reason}", path.display())]
    CachedInvalid {
        /// The cached binary.
        path: PathBuf,
        /// What failed ("SHA-256 … but the cached sha256sum-amd64.txt says …").
        reason: String,
    },
    /// A file system operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Returns the pinned k3s binary for `config.arch`: the cached one if it still matches its
/// cached checksum file, else (when `config.allow_download`) a freshly downloaded and verified
/// one. A cached binary that fails its check is deleted (and downloaded again if allowed).
pub async fn ensure_k3s(config: &DownloadConfig) -> Result<K3sBinary, DownloadError> {
    config.check()?;
    let slot = config.cache_slot();
    let bin = slot.join("k3s");
    let sums = slot.join(config.arch.checksum_file());
    if bin.exists() {
        let checked = {
            let (bin, sums, arch) = (bin.clone(), sums.clone(), config.arch);
            // Hashing ~70 MiB: off the runtime's threads.
            tokio::task::spawn_blocking(move || check_cached(&bin, &sums, arch))
                .await
                .map_err(|e| DownloadError::CachedInvalid {
                    path: config.cache_slot().join("k3s"),
                    reason: format!("the check did not finish: {e}"),
                })?
        };
        match checked {
            Ok(sha256) => {
                info!(path = %bin.display(), version = %config.version, "using the cached k3s (SHA-256 re-checked)");
                return Ok(K3sBinary {
                    path: bin,
                    version: config.version.clone(),
                    arch: config.arch,
                    sha256,
                    origin: Origin::Cache,
                });
            }
            Err(e) => {
                warn!(error = %e, "refusing the cached k3s; removing it");
                remove_if_present(&bin)?;
            }
        }
    }
    if !config.allow_download {
        return Err(DownloadError::NoDownload { slot });
    }
    download(config, &slot, &bin, &sums).await
}

/// Re-hashes a cached binary and compares it with the cached checksum file.
fn check_cached(bin: &Path, sums: &Path, arch: Arch) -> Result<String, DownloadError> {
    let invalid = |reason: String| DownloadError::CachedInvalid {
        path: bin.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(bin).map_err(|e| invalid(format!("cannot stat it: {e}")))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(invalid("not an executable regular file".into()));
    }
    let text = match std::fs::metadata(sums) {
        Ok(m) if m.len() <= MAX_CHECKSUM_BYTES => std::fs::read(sums)
            .map_err(|e| invalid(format!("cannot read {}: {e}", sums.display())))?,
        Ok(_) => return Err(invalid(format!("{} is too large", sums.display()))),
        Err(e) => return Err(invalid(format!("cannot read {}: {e}", sums.display()))),
    };
    let expected = expected_sha256(&text, &arch.checksum_file(), arch.asset())
        .map_err(|e| invalid(e.to_string()))?;
    let actual = sha256_file(bin)?;
    if actual != expected {
        return Err(invalid(format!(
            "its SHA-256 is {actual} but the cached {} says {expected}",
            arch.checksum_file()
        )));
    }
    Ok(actual)
}

fn sha256_file(path: &Path) -> Result<String, DownloadError> {
    let mut file = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_err("read", path))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The hash on the line of `text` (a `sha256sum` listing) naming `asset`. Lines are
/// `<64 hex> <space> [' ' | '*'] <name>`; lines for other files are ignored, but a line for
/// ours must be well-formed, and two lines for ours must agree.
fn expected_sha256(text: &[u8], file: &str, asset: &'static str) -> Result<String, DownloadError> {
    let invalid = |line: usize, reason: &'static str| DownloadError::ChecksumInvalid {
        file: file.to_owned(),
        line,
        reason,
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid(0, "not UTF-8 text"))?;
    let mut found: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let Some((hash, name)) = line.split_once(' ') else {
            continue;
        };
        // GNU coreutils: a second space (text mode) or `*` (binary mode) before the name.
        let name = name
            .strip_prefix(' ')
            .or_else(|| name.strip_prefix('*'))
            .unwrap_or(name);
        if name != asset {
            continue;
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(n + 1, "the hash is not 64 hex digits"));
        }
        let hash = hash.to_ascii_lowercase();
        match &found {
            Some(prev) if *prev != hash => {
                return Err(invalid(n + 1, "a second, different hash for the same file"));
            }
            _ => found = Some(hash),
        }
    }
    found.ok_or(DownloadError::ChecksumMissing {
        file: file.to_owned(),
        asset,
    })
}

async fn download(
    config: &DownloadConfig,
    slot: &Path,
    bin: &Path,
    sums: &Path,
) -> Result<K3sBinary, DownloadError> {
    let base = config.base_url()?;
    let sums_name = config.arch.checksum_file();
    let sums_url = format!("{base}{sums_name}");
    let bin_url = format!("{base}{}", config.arch.asset());
    info!(version = %config.version, arch = config.arch.name(), url = %bin_url, "downloading k3s (no k3s binary was found)");

    let mut text = Vec::new();
    fetch(config, &sums_url, config.max_checksum_bytes, &mut text).await?;
    let expected = expected_sha256(&text, &sums_name, config.arch.asset())?;

    crate::private_fs::create_private_dir(slot).map_err(io_err("create", slot))?;
    let temp = TempFile::create(slot)?;
    let mut sink = HashingFile {
        file: tokio::fs::File::from_std(temp.open()?),
        hasher: Sha256::new(),
        path: &temp.path,
    };
    fetch(config, &bin_url, config.max_binary_bytes, &mut sink).await?;
    let HashingFile { file, hasher, .. } = sink;
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(DownloadError::ChecksumMismatch {
            url: bin_url,
            file: sums_name,
            expected,
            actual,
        });
    }
    file.sync_all().await.map_err(io_err("sync", &temp.path))?;
    drop(file);
    std::fs::set_permissions(&temp.path, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &temp.path))?;
    // The checksum file first: a binary is never in place without the file that checks it.
    crate::private_fs::write_atomic(sums, &text, 0o644).map_err(io_err("write", sums))?;
    temp.persist(bin)?;
    std::fs::File::open(slot)
        .and_then(|dir| dir.sync_all())
        .map_err(io_err("sync", slot))?;
    info!(path = %bin.display(), sha256 = %actual, "k3s downloaded, verified and cached");
    Ok(K3sBinary {
        path: bin.to_path_buf(),
        version: config.version.clone(),
        arch: config.arch,
        sha256: actual,
        origin: Origin::Downloaded { url: bin_url },
    })
}

/// A temporary file in the cache slot, removed on drop unless persisted (a failed, refused or
/// cancelled download leaves nothing behind).
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path) -> Result<Self, DownloadError> {
        let mut tag = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut tag);
        Ok(Self {
            path: dir.join(format!(".k3s.download-{}", hex::encode(tag))),
            keep: false,
        })
    }

    fn open(&self) -> Result<std::fs::File, DownloadError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io_err("create", &self.path))
    }

    fn persist(mut self, to: &Path) -> Result<(), DownloadError> {
        std::fs::rename(&self.path, to).map_err(io_err("rename into place", to))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct HashingFile<'a> {
    file: tokio::fs::File,
    hasher: Sha256,
    path: &'a Path,
}

impl Sink for HashingFile<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), DownloadError> {
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(io_err("write", self.path))
    }
}

/// A release tag: `v` then ASCII letters, digits, `.`, `+`, `-` (it becomes a URL path segment
/// and a directory name, so no `/`, no `..`).
fn check_version(version: &str) -> Result<(), DownloadError> {
    let ok = version.len() <= 64
        && version.starts_with('v')
        && !version.contains("..")
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DownloadError::BadVersion {
            version: version.to_owned(),
        })
    }
}

fn remove_if_present(path: &Path) -> Result<(), DownloadError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DownloadError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DownloadError + 'a {
    move |source| DownloadError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
