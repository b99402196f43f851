//! The K3s cluster token and the TokenReview webhook kubeconfig: private files.

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use rand_core::{OsRng, RngCore};

use super::K3sError;

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// The K3s cluster (join) token: the secret K3s derives its bootstrap-data encryption key from
/// and agents present to join.
///
/// Generated as 32 bytes of OS randomness in hex, stored in a mode-0600 file inside a mode-0700
/// directory, and given to K3s with `--token-file`. `Debug` and `Display` print `<redacted>`;
/// use [`expose_secret`](Self::expose_secret) where the value is really needed.
#[derive(Clone)]
pub struct ClusterToken {
    secret: String,
}

impl ClusterToken {
    /// A fresh token: 32 random bytes from the operating system, hex-encoded (64 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self {
            secret: hex::encode(bytes),
        }
    }

    /// Loads the token at `path`, or, if there is none, generates one and stores it there
    /// (creating the parent directory with mode 0700). Later calls return the same token.
    ///
    /// Refuses a token file or directory that group or others can access, as ssh does: such a
    /// token may have leaked.
    pub fn load_or_create(path: &Path) -> Result<Self, K3sError> {
        create_private_dir(parent_dir(path))?;
        match fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let token = Self::generate();
                write_private_file(path, format!("{}\n", token.secret).as_bytes())?;
                tracing::info!(path = %path.display(), "created a new k3s cluster token");
                Ok(token)
            }
            Err(source) => Err(K3sError::Io {
                op: "stat",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Loads the token at `path`: a regular file, mode 0600 or stricter, in a directory without
    /// group/other access, holding one line of printable ASCII.
    pub fn load(path: &Path) -> Result<Self, K3sError> {
        check_dir(parent_dir(path))?;
        let meta = fs::metadata(path).map_err(io_err("stat", path))?;
        if !meta.is_file() {
            return Err(K3sError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        check_mode(path, meta.mode(), FILE_MODE)?;
        let bytes = fs::read(path).map_err(io_err("read", path))?;
        let invalid = || K3sError::InvalidToken {
            path: path.to_path_buf(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let secret = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(text);
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        Ok(Self {
            secret: secret.to_owned(),
        })
    }

    /// The token itself. Never log it or put it on a command line.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(<redacted>)")
    }
}

impl fmt::Display for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Writes the file kube-apiserver's `--authentication-token-webhook-config-file` reads: a
/// kubeconfig (JSON is valid kubeconfig) whose one cluster is the TokenReview webhook at
/// `webhook_url` (e.g. `https://127.0.0.1:8443/tokenreview`), trusted through `ca_pem`, the
/// webhook's CA or self-signed certificate (PEM). Mode 0600, parent directory created 0700.
///
/// The user entry is empty: the apiserver presents no client certificate to the webhook.
pub fn write_token_webhook_kubeconfig(
    path: &Path,
    webhook_url: &str,
    ca_pem: &[u8],
) -> Result<(), K3sError> {
    // ByteString serialises as base64, which is what `certificate-authority-data` holds.
    let ca_data = k8s_openapi::ByteString(ca_pem.to_vec());
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "daas-tokenreview",
            "cluster": {
                "server": webhook_url,
                "certificate-authority-data": ca_data,
            },
        }],
        "users": [{
            "name": "kube-apiserver",
            "user": {},
        }],
        "contexts": [{
            "name": "webhook",
            "context": {
                "cluster": "daas-tokenreview",
                "user": "kube-apiserver",
            },
        }],
        "current-context": "webhook",
    });
    let mut bytes = serde_json::to_vec_pretty(&config).map_err(K3sError::Encode)?;
    bytes.push(b'\n');
    create_private_dir(parent_dir(path))?;
    write_private_file(path, &bytes)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> K3sError {
    let path = path.to_path_buf();
    move |source| K3sError::Io { op, path, source }
}

fn check_mode(path: &Path, mode: u32, want: u32) -> Result<(), K3sError> {
    if mode & 0o077 != 0 {
        return Err(K3sError::InsecureMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
            want,
        });
    }
    Ok(())
}

fn check_dir(dir: &Path) -> Result<(), K3sError> {
    let meta = fs::metadata(dir).map_err(io_err("stat", dir))?;
    if !meta.is_dir() {
        return Err(K3sError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    check_mode(dir, meta.mode(), DIR_MODE)
}

/// Creates `dir` (and missing parents) with mode 0700 and refuses an existing one that group or
/// others can access.
fn create_private_dir(dir: &Path) -> Result<(), K3sError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_err("create directory", dir))?;
    check_dir(dir)
}

/// Writes `bytes` to `path` with mode 0600, atomically (see [`crate::private_fs::write_atomic`]).
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), K3sError> {
    crate::private_fs::write_atomic(path, bytes, FILE_MODE).map_err(io_err("write", path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn created_private_and_reused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("state/k3s-token/token");
        let first = ClusterToken::load_or_create(&path).expect("create");
        assert_eq!(first.expose_secret().len(), 64);
        assert!(first.expose_secret().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("parent")), 0o700);
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{}\n", first.expose_secret())
        );
        let second = ClusterToken::load_or_create(&path).expect("reload");
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert!(!crate::private_fs::temp_path(&path).exists());
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(
            ClusterToken::generate().expose_secret(),
            ClusterToken::generate().expose_secret()
        );
    }

    #[test]
    fn redacted() {
        let token = ClusterToken::generate();
        let secret = token.expose_secret().to_owned();
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{token:#?}"),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    #[test]
    fn refuses_open_file_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("secret/token");
        create_private_dir(parent_dir(&path)).expect("mkdir");
        ClusterToken::load_or_create(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = ClusterToken::load_or_create(&path).expect_err("0644 refused");
        assert!(
            matches!(err, K3sError::InsecureMode { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_open_directory_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("shared");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ClusterToken::load_or_create(&dir.join("token")).expect_err("0755 refused");
        assert!(
            matches!(err, K3sError::InsecureMode { mode: 0o755, .. }),
            "{err}"
        );
    }

    #[test]
    fn operator_supplied_token_is_used() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("secret/token");
        create_private_dir(parent_dir(&path)).expect("mkdir");
        write_private_file(&path, b"K10abc::server:s3cret\r\n").expect("write");
        let token = ClusterToken::load(&path).expect("load");
        assert_eq!(token.expose_secret(), "K10abc::server:s3cret");
    }

    #[test]
    fn invalid_token_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("secret/token");
        create_private_dir(parent_dir(&path)).expect("mkdir");
        for bad in [&b""[..], b"\n", b"two words\n", b"a\nb\n", b"\xff\xfe"] {
            write_private_file(&path, bad).expect("write");
            let err = ClusterToken::load(&path).expect_err("invalid");
            assert!(
                matches!(err, K3sError::InvalidToken { .. }),
                "{bad:?}: {err}"
            );
            assert!(!err.to_string().contains("words"));
        }
    }

    #[test]
    fn webhook_kubeconfig() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("auth/webhook.kubeconfig");
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        write_token_webhook_kubeconfig(&path, "https://127.0.0.1:8443/tokenreview", ca)
            .expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("parent")), 0o700);
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
        assert_eq!(v["kind"], "Config");
        assert_eq!(v["current-context"], "webhook");
        let cluster = &v["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://127.0.0.1:8443/tokenreview");
        let data: k8s_openapi::ByteString =
            serde_json::from_value(cluster["certificate-authority-data"].clone()).expect("b64");
        assert_eq!(data.0, ca);
        assert_eq!(v["contexts"][0]["context"]["cluster"], "daas-tokenreview");
        assert_eq!(v["contexts"][0]["context"]["user"], v["users"][0]["name"]);
    }
}
