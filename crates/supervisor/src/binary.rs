//! Finding the k3s binary.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::SupervisorError;

/// The environment variable naming the k3s binary (see [`resolve_k3s_binary`]).
pub const K3S_BIN_ENV: &str = "K3S_BIN";

/// Finds the k3s binary: `explicit` if given, else `$K3S_BIN`, else `k3s` on `PATH`. The result
/// is an executable regular file; otherwise the error says where it looked.
pub fn resolve_k3s_binary(explicit: Option<&Path>) -> Result<PathBuf, SupervisorError> {
    resolve(
        explicit,
        std::env::var_os(K3S_BIN_ENV),
        std::env::var_os("PATH"),
    )
}

fn resolve(
    explicit: Option<&Path>,
    env_bin: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<PathBuf, SupervisorError> {
    let named = |path: PathBuf, how: &str| {
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(SupervisorError::BinaryNotFound {
                detail: format!("{} ({how}) is not an executable file", path.display()),
            })
        }
    };
    if let Some(path) = explicit {
        return named(path.to_path_buf(), "given explicitly");
    }
    if let Some(path) = env_bin.filter(|v| !v.is_empty()) {
        return named(PathBuf::from(path), "from $K3S_BIN");
    }
    path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("k3s"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| SupervisorError::BinaryNotFound {
            detail: "no executable `k3s` on PATH; set K3S_BIN or give its path".to_owned(),
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn binary_resolution() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin_dir = tmp.path().join("bin");
        std::fs::create_dir(&bin_dir).expect("mkdir");
        let k3s = bin_dir.join("k3s");
        std::fs::write(&k3s, "#!/bin/sh\n").expect("write");
        let other = tmp.path().join("other-k3s");
        std::fs::write(&other, "#!/bin/sh\n").expect("write");
        for p in [&k3s, &other] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let missing = tmp.path().join("missing");
        let path_var = Some(bin_dir.clone().into_os_string());

        // Explicit beats $K3S_BIN beats PATH.
        assert_eq!(
            resolve(Some(&other), Some(missing.clone().into()), path_var.clone())
                .expect("explicit"),
            other
        );
        assert_eq!(
            resolve(None, Some(other.clone().into()), path_var.clone()).expect("env"),
            other
        );
        assert_eq!(
            resolve(None, Some(OsString::new()), path_var.clone()).expect("empty env ignored"),
            k3s
        );
        assert_eq!(resolve(None, None, path_var.clone()).expect("PATH"), k3s);

        let err = resolve(Some(&missing), None, path_var.clone()).expect_err("missing");
        assert!(
            err.to_string().contains("missing (given explicitly)"),
            "{err}"
        );
        let err = resolve(None, Some(missing.clone().into()), path_var).expect_err("missing");
        assert!(err.to_string().contains("from $K3S_BIN"), "{err}");
        let err = resolve(None, None, Some(tmp.path().into())).expect_err("not on PATH");
        assert!(err.to_string().contains("K3S_BIN"), "{err}");

        // Not executable.
        std::fs::set_permissions(&k3s, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(resolve(None, None, Some(bin_dir.into_os_string())).is_err());
    }
}
