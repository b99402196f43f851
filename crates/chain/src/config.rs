//! Where the chain is and which package/cluster on it K3s-DaaS uses.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sui_sdk_types::Address;

use crate::ChainError;

/// Well-known endpoints. `Devnet` is the local development chain (`k3s-daas-devnet start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Devnet,
    Testnet,
    Mainnet,
}

impl Network {
    /// gRPC URL of the network.
    pub fn url(self) -> &'static str {
        match self {
            Network::Devnet => "http://127.0.0.1:9000",
            Network::Testnet => "https://fullnode.testnet.sui.io",
            Network::Mainnet => "https://fullnode.mainnet.sui.io",
        }
    }

    /// Chain id (base58 genesis checkpoint digest) of public networks; the devnet's is per
    /// data directory (see its `client.json`).
    pub fn chain_id(self) -> Option<&'static str> {
        match self {
            Network::Devnet => None,
            Network::Testnet => Some("69WiPg3DAQiwdxfncX6wYQ2siKwAe6L9BZthQea3JNMD"),
            Network::Mainnet => Some("4btiuiMPvEENsttpZC7CZ53DruC3MAgfznDbASZ7DR6S"),
        }
    }

    /// `devnet`, `testnet`, `mainnet` → preset.
    pub fn from_name(name: &str) -> Option<Network> {
        match name {
            "devnet" | "local" | "localnet" => Some(Network::Devnet),
            "testnet" => Some(Network::Testnet),
            "mainnet" => Some(Network::Mainnet),
            _ => None,
        }
    }
}

/// The deployment a client talks to. The JSON file form is what `k3s-daas-devnet` writes to
/// `<data-dir>/client.json` and what an operator writes after `sui client publish`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// gRPC URL (`http://` for a local devnet, `https://` otherwise).
    pub rpc: String,
    /// Expected chain id; checked against the endpoint before any transaction is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// The published `k3s_daas` package.
    pub package: Address,
    /// The shared `Cluster` object.
    pub cluster: Address,
    /// Version at which the cluster became shared (needed to pass it to a transaction).
    pub cluster_initial_shared_version: u64,
    /// The cluster's `AdminCap`, for admin tooling (never needed by stakers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_cap: Option<Address>,
    /// Dev keys the development chain generated (`k3s-daas-devnet` writes these four; public
    /// deployments leave them out). Never needed by stakers or the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_keystore: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faucet: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faucet_keystore: Option<std::path::PathBuf>,
}

impl ChainConfig {
    /// A deployment without an expected chain id or dev keys.
    pub fn new(
        rpc: impl Into<String>,
        package: Address,
        cluster: Address,
        cluster_initial_shared_version: u64,
    ) -> ChainConfig {
        ChainConfig {
            rpc: rpc.into(),
            chain_id: None,
            package,
            cluster,
            cluster_initial_shared_version,
            admin_cap: None,
            admin: None,
            admin_keystore: None,
            faucet: None,
            faucet_keystore: None,
        }
    }

    /// Reads a JSON config file.
    pub fn load(path: &Path) -> Result<ChainConfig, ChainError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ChainError::Config(format!("cannot read chain config {}: {e}", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            ChainError::Config(format!("chain config {} is invalid: {e}", path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public chain ids are base58 digests whose first four bytes are the well-known short
    /// chain identifiers (`35834a8a` mainnet, `4c78adac` testnet).
    #[test]
    fn preset_chain_ids_match_the_short_identifiers() {
        for (net, short) in [
            (Network::Mainnet, "35834a8a"),
            (Network::Testnet, "4c78adac"),
        ] {
            let id = net.chain_id().expect("public network");
            let digest: sui_sdk_types::Digest = id.parse().expect("base58 digest");
            let hex: String = digest.inner()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(hex, short, "{net:?}");
        }
        assert_eq!(Network::Devnet.chain_id(), None);
        assert_eq!(Network::from_name("testnet"), Some(Network::Testnet));
        assert_eq!(Network::from_name("prod"), None);
    }

    #[test]
    fn config_files_round_trip_and_reject_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.json");
        let cfg = ChainConfig {
            rpc: "http://127.0.0.1:9000".into(),
            chain_id: Some("abc".into()),
            package: Address::from_static("0x1"),
            cluster: Address::from_static("0x2"),
            cluster_initial_shared_version: 3,
            admin_cap: None,
            admin: None,
            admin_keystore: Some("/d/admin.keystore".into()),
            faucet: None,
            faucet_keystore: None,
        };
        std::fs::write(&path, serde_json::to_string(&cfg).expect("json")).expect("write");
        assert_eq!(ChainConfig::load(&path).expect("load"), cfg);
        std::fs::write(&path, r#"{"rpc":"x","package":"0x1","cluster":"0x2","cluster_initial_shared_version":1,"typo":1}"#).expect("write");
        let err = ChainConfig::load(&path).expect_err("unknown field");
        assert!(err.to_string().contains("typo"), "{err}");
        let err = ChainConfig::load(&dir.path().join("missing.json")).expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
