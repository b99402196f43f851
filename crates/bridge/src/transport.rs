//! The vsock seam: listen on a port, connect to `(cid, port)`.
//!
//! [`RealVsock`] is AF_VSOCK through `tokio-vsock` (production). [`UnixVsock`] maps every
//! `(cid, port)` to the Unix socket `<dir>/<cid>.<port>.sock`, for tests and `dev`: vsock
//! loopback (CID 1) needs the `vsock_loopback` module, which many hosts, CI sandboxes and the
//! project's build machine do not have. Both hand out the same boxed stream type, so the bridge
//! runs one code path over either.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// The parent instance's CID, always (`VMADDR_CID_PARENT` in nitro-cli).
pub const PARENT_CID: u32 = 3;

/// The lowest CID an enclave can have; 0–3 are reserved and `u32::MAX` means "any".
pub const MIN_ENCLAVE_CID: u32 = 4;

/// A boxed future, so the transport traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream over the transport (vsock, Unix socket) or TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// An accepted connection and, where the transport knows it, the peer's CID.
pub struct Accepted {
    /// The connection.
    pub stream: BoxStream,
    /// The peer's CID: `Some` on vsock, `None` on Unix sockets (whose access is governed by
    /// file modes instead).
    pub peer_cid: Option<u32>,
}

/// A bound listener on the transport.
pub trait Listener: Send + Sync {
    /// Waits for the next connection.
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>>;
    /// The port it listens on.
    fn port(&self) -> u32;
}

/// A boxed [`Listener`].
pub type BoxListener = Box<dyn Listener>;

/// Listen and connect over vsock (or a stand-in for it).
pub trait VsockTransport: Send + Sync + 'static {
    /// Binds `port` on this side (any local CID).
    fn listen(&self, port: u32) -> io::Result<BoxListener>;
    /// Connects to `port` on `cid`.
    fn connect(&self, cid: u32, port: u32) -> BoxFuture<'_, io::Result<BoxStream>>;
    /// A short human-readable description for logs (`vsock`, `unix:/run/x`).
    fn describe(&self) -> String;
}

/// AF_VSOCK through `tokio-vsock`: production inside and beside a Nitro Enclave.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealVsock;

struct RealListener {
    inner: tokio_vsock::VsockListener,
    port: u32,
}

impl VsockTransport for RealVsock {
    fn listen(&self, port: u32) -> io::Result<BoxListener> {
        let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
        let inner = tokio_vsock::VsockListener::bind(addr)?;
        let port = inner.local_addr().map(|a| a.port()).unwrap_or(port);
        Ok(Box::new(RealListener { inner, port }))
    }

    fn connect(&self, cid: u32, port: u32) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream =
                tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port)).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        "vsock".to_owned()
    }
}

impl Listener for RealListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            Ok(Accepted {
                stream: Box::new(stream),
                peer_cid: Some(peer.cid()),
            })
        })
    }

    fn port(&self) -> u32 {
        self.port
    }
}

/// Unix sockets standing in for vsock: `(cid, port)` is `<dir>/<cid>.<port>.sock`.
///
/// For tests and `dev` only. Each side is built with its own CID (the parent with
/// [`PARENT_CID`], the enclave with its CID) and listens under that CID. Peer CIDs are not
/// known, so access control is the file system's: the directory is created 0700 and every
/// socket is made 0600.
#[derive(Debug, Clone)]
pub struct UnixVsock {
    dir: PathBuf,
    local_cid: u32,
}

impl UnixVsock {
    /// A transport whose listeners appear as `local_cid` under `dir`. Creates `dir` (0700) if
    /// it does not exist, and refuses a directory that group or other users can open.
    pub fn new(dir: impl Into<PathBuf>, local_cid: u32) -> io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = dir.into();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let mode = std::fs::metadata(&dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is reachable by other users (mode {:o}); the vsock stand-in needs a 0700 directory",
                    dir.display(),
                    mode & 0o777
                ),
            ));
        }
        Ok(Self { dir, local_cid })
    }

    /// The socket path for `(cid, port)`.
    pub fn path(&self, cid: u32, port: u32) -> PathBuf {
        socket_path(&self.dir, cid, port)
    }

    /// The directory holding the sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn socket_path(dir: &Path, cid: u32, port: u32) -> PathBuf {
    dir.join(format!("{cid}.{port}.sock"))
}

struct UnixListener {
    inner: tokio::net::UnixListener,
    port: u32,
}

impl VsockTransport for UnixVsock {
    fn listen(&self, port: u32) -> io::Result<BoxListener> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let path = self.path(self.local_cid, port);
        // A socket left by an earlier run would make bind fail; remove sockets only.
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(&path)?;
        }
        let inner = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Box::new(UnixListener { inner, port }))
    }

    fn connect(&self, cid: u32, port: u32) -> BoxFuture<'_, io::Result<BoxStream>> {
        let path = self.path(cid, port);
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(&path).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        format!("unix:{} (vsock stand-in)", self.dir.display())
    }
}

impl Listener for UnixListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, _) = self.inner.accept().await?;
            Ok(Accepted {
                stream: Box::new(stream),
                peer_cid: None,
            })
        })
    }

    fn port(&self) -> u32 {
        self.port
    }
}

/// Connects with a deadline, naming what timed out.
pub(crate) async fn connect_within(
    transport: &dyn VsockTransport,
    cid: u32,
    port: u32,
    limit: Duration,
) -> io::Result<BoxStream> {
    match tokio::time::timeout(limit, transport.connect(cid, port)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to vsock {cid}:{port} took longer than {limit:?}"),
        )),
    }
}
