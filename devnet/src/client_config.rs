//! `client.json`: what the project's CLIs need to talk to a devnet.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sui_sdk_types::Address;

use crate::error::DevnetError;
use crate::store;

/// File name of the client configuration inside the data directory.
pub const CLIENT_CONFIG_FILE: &str = "client.json";

/// The contents of `D/client.json`.
///
/// ```json
/// {
///   "rpc": "http://127.0.0.1:9000",
///   "chain_id": "<base58 digest of checkpoint 0>",
///   "package": "0x…", "cluster": "0x…", "cluster_initial_shared_version": 1, "admin_cap": "0x…",
///   "admin": "0x…", "admin_keystore": "D/admin.keystore",
///   "faucet": "0x…", "faucet_keystore": "D/faucet.keystore"
/// }
/// ```
/// The last four fields are present only when the devnet generated those keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// gRPC (and gRPC-Web) endpoint, `http://host:port`.
    pub rpc: String,
    /// Base58 digest of the genesis checkpoint (`GetServiceInfo.chain_id`).
    pub chain_id: String,
    /// Id of the (natively modelled) `k3s_daas` package.
    pub package: Address,
    /// The shared `Cluster` object.
    pub cluster: Address,
    pub cluster_initial_shared_version: u64,
    /// The cluster's `AdminCap`, owned by `admin`.
    pub admin_cap: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Address>,
    /// Sui keystore (JSON array of `base64(flag || key)`) holding the admin key, if generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_keystore: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faucet: Option<Address>,
    /// Sui keystore holding the faucet key, if the genesis funded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faucet_keystore: Option<PathBuf>,
}

impl ClientConfig {
    /// `D/client.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CLIENT_CONFIG_FILE)
    }

    pub fn load(path: &Path) -> Result<ClientConfig, DevnetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DevnetError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DevnetError::ClientConfig {
            path: path.to_owned(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), DevnetError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| DevnetError::ClientConfig {
                path: path.to_owned(),
                source,
            })?;
        text.push('\n');
        store::write_private_file(path, text.as_bytes())
    }
}
