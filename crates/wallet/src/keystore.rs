//! The Sui CLI keystore file and its aliases.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sui_sdk_types::Address;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::key::WalletKey;

/// Keystore and key errors. None of them contains key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WalletError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Sui keystore (expected a JSON array of strings)")]
    NotAKeystore { path: PathBuf },
    #[error("{path} is not a Sui aliases file (expected [{{\"alias\", \"public_key_base64\"}}])")]
    NotAnAliasesFile { path: PathBuf },
    #[error("keystore entry #{index} in {path} is not a supported private key")]
    BadEntry { path: PathBuf, index: usize },
    #[error("not a supported private key (expected suiprivkey1… or base64 flag||key)")]
    BadSecret,
    #[error("unknown key scheme {0:?} (expected ed25519, secp256k1 or secp256r1)")]
    UnknownScheme(String),
    #[error("the keystore {path} holds no keys")]
    Empty { path: PathBuf },
    #[error("no key with address or alias {0:?} in the keystore")]
    NotFound(String),
    #[error("the keystore holds {count} keys; choose one with --key <address|alias>")]
    Ambiguous { count: usize },
    #[error("cannot find the Sui config directory: set SUI_CONFIG_DIR or HOME, or pass --keystore")]
    NoConfigDir,
}

/// The default keystore: `$SUI_CONFIG_DIR/sui.keystore`, else `~/.sui/sui_config/sui.keystore`.
pub fn default_keystore_path() -> Result<PathBuf, WalletError> {
    if let Some(dir) = std::env::var_os("SUI_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("sui.keystore"));
    }
    let home = std::env::var_os("HOME").ok_or(WalletError::NoConfigDir)?;
    Ok(PathBuf::from(home).join(".sui/sui_config/sui.keystore"))
}

/// The keys of one keystore file, in file order.
#[derive(Debug)]
pub struct Keystore {
    path: PathBuf,
    keys: Vec<WalletKey>,
    exposed_mode: Option<u32>,
}

#[derive(Deserialize)]
struct AliasEntry {
    alias: String,
    public_key_base64: String,
}

impl Keystore {
    /// Loads a keystore and, if present, the `sui.aliases` file beside it.
    pub fn load(path: &Path) -> Result<Self, WalletError> {
        let exposed_mode = warn_if_exposed(path);
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| WalletError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        let entries: Vec<String> =
            serde_json::from_str(&text).map_err(|_| WalletError::NotAKeystore {
                path: path.to_owned(),
            })?;
        let entries: Vec<Zeroizing<String>> = entries.into_iter().map(Zeroizing::new).collect();
        let mut keys = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                WalletKey::parse_secret(entry).map_err(|_| WalletError::BadEntry {
                    path: path.to_owned(),
                    index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let aliases_path = path.with_file_name("sui.aliases");
        if aliases_path.is_file() {
            let text = fs::read_to_string(&aliases_path).map_err(|source| WalletError::Read {
                path: aliases_path.clone(),
                source,
            })?;
            let aliases: Vec<AliasEntry> =
                serde_json::from_str(&text).map_err(|_| WalletError::NotAnAliasesFile {
                    path: aliases_path.clone(),
                })?;
            for key in &mut keys {
                if let Some(a) = aliases
                    .iter()
                    .find(|a| a.public_key_base64 == key.public_key_base64())
                {
                    key.set_alias(a.alias.clone());
                }
            }
        }
        Ok(Keystore {
            path: path.to_owned(),
            keys,
            exposed_mode,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's permission bits when group or others may access it (a warning was logged).
    pub fn exposed_mode(&self) -> Option<u32> {
        self.exposed_mode
    }

    pub fn keys(&self) -> &[WalletKey] {
        &self.keys
    }

    /// Picks a key by address (`0x…`, any case; matched first, exactly) or else by alias.
    /// Without a selector the keystore must hold exactly one key: guessing which wallet signs is
    /// not acceptable for a credential.
    pub fn select(&self, selector: Option<&str>) -> Result<&WalletKey, WalletError> {
        let Some(sel) = selector else {
            return match self.keys.as_slice() {
                [] => Err(WalletError::Empty {
                    path: self.path.clone(),
                }),
                [only] => Ok(only),
                many => Err(WalletError::Ambiguous { count: many.len() }),
            };
        };
        let by_address = sel
            .starts_with("0x")
            .then(|| sel.parse::<Address>().ok())
            .flatten()
            .and_then(|a| self.keys.iter().find(|k| k.address() == a));
        by_address
            .or_else(|| self.keys.iter().find(|k| k.alias() == Some(sel)))
            .ok_or_else(|| WalletError::NotFound(printable_selector(sel)))
    }
}

/// Echo a selector back only if it cannot be a secret someone pasted by mistake.
fn printable_selector(sel: &str) -> String {
    if sel.starts_with("suiprivkey") || sel.len() > 66 || sel.chars().any(|c| c.is_control()) {
        "(value hidden: it looks like a private key)".to_owned()
    } else {
        sel.to_owned()
    }
}

/// Writes `keys` as a Sui CLI keystore with mode 0600, atomically: a unique temporary file
/// (created 0600) in the same directory is written, synced and renamed over `path`, then the
/// directory is synced. A failed write leaves the old file intact and no temporary behind.
pub fn write_keystore(path: &Path, keys: &[WalletKey]) -> Result<(), WalletError> {
    let write_err = |source| WalletError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(write_err)?;
    let entries: Vec<Zeroizing<String>> = keys
        .iter()
        .map(|k| Zeroizing::new(k.keystore_entry()))
        .collect();
    let plain: Vec<&str> = entries.iter().map(|e| e.as_str()).collect();
    let text = Zeroizing::new(
        serde_json::to_string_pretty(&plain).expect("a list of strings always serializes"),
    );
    // tempfile creates files with mode 0600 on Unix and removes them on drop (error paths).
    let mut tmp = tempfile::Builder::new()
        .prefix(".sui.keystore.")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(text.as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    #[cfg(unix)]
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)?;
    Ok(())
}

/// Warns (never fails) when a key file is readable or writable by group or others, and returns
/// the offending mode.
fn warn_if_exposed(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "Key file is accessible by group or others; run chmod 600"
            );
            return Some(mode);
        }
    }
    None
}

#[cfg(test)]
mod tests;
