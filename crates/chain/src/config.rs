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

    /// Refuses a configuration the control plane must not trust: the chain id must be pinned
    /// (every answer is checked against it), and the endpoint must be reached over TLS unless it
    /// is on this machine (`http://` to a loopback address or `localhost`). Through plain HTTP to
    /// another host, whoever sits on the path could answer with forged stake records.
    pub fn check_for_control_plane(&self) -> Result<(), ChainError> {
        if self.chain_id.as_deref().is_none_or(str::is_empty) {
            return Err(ChainError::Config(format!(
                "the chain configuration for {} pins no chain_id: the control plane checks every answer against it (get it from `GetServiceInfo` of a node you trust, or the network preset)",
                self.rpc
            )));
        }
        let uri: tonic::codegen::http::Uri = self
            .rpc
            .parse()
            .map_err(|e| ChainError::Config(format!("invalid RPC URL {:?}: {e}", self.rpc)))?;
        match uri.scheme_str() {
            Some("https") => Ok(()),
            Some("http") if uri.host().is_some_and(is_loopback_host) => Ok(()),
            Some("http") => Err(ChainError::Config(format!(
                "refusing plain http:// to {}: the control plane reads stake records from its RPC endpoint, so anyone on the path could forge them; use https://, or http:// only to a loopback address",
                self.rpc
            ))),
            _ => Err(ChainError::Config(format!(
                "invalid RPC URL {:?}: expected https:// (or http:// to a loopback address)",
                self.rpc
            ))),
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

/// Where a command-line tool finds its deployment: `--chain-config FILE`, `--rpc` (a URL or a
/// [`Network`] name), `--package`, `--cluster`; flags override the file.
#[derive(Clone, Debug, Default)]
pub struct Deployment {
    pub rpc: Option<String>,
    pub chain_config: Option<std::path::PathBuf>,
    pub package: Option<Address>,
    pub cluster: Option<Address>,
}

impl Deployment {
    /// The configuration these flags name. A preset network pins its chain id; a file's chain
    /// id must agree with it. The cluster's initial shared version is read from the chain when
    /// the file does not give it for this cluster.
    pub async fn resolve(&self) -> Result<ChainConfig, ChainError> {
        let file = self
            .chain_config
            .as_deref()
            .map(ChainConfig::load)
            .transpose()?;
        let (rpc, preset_chain_id) = match self.rpc.as_deref() {
            Some(name) => match Network::from_name(name) {
                Some(n) => (Some(n.url().to_owned()), n.chain_id()),
                None => (Some(name.to_owned()), None),
            },
            None => (None, None),
        };
        let rpc = rpc
            .or_else(|| file.as_ref().map(|f| f.rpc.clone()))
            .unwrap_or_else(|| Network::Devnet.url().to_owned());
        let chain_id = match (
            file.as_ref().and_then(|f| f.chain_id.clone()),
            preset_chain_id,
        ) {
            (Some(a), Some(b)) if a != b => {
                return Err(ChainError::Config(format!(
                    "the chain config expects chain id {a}, but --rpc {} is chain {b}",
                    self.rpc.as_deref().unwrap_or_default()
                )));
            }
            (a, b) => a.or(b.map(str::to_owned)),
        };
        let package = self
            .package
            .or(file.as_ref().map(|f| f.package))
            .ok_or_else(|| {
                ChainError::Config("no package id: pass --chain-config <file> or --package".into())
            })?;
        let cluster = self
            .cluster
            .or(file.as_ref().map(|f| f.cluster))
            .ok_or_else(|| {
                ChainError::Config("no cluster id: pass --chain-config <file> or --cluster".into())
            })?;
        let same_cluster = file.as_ref().filter(|f| f.cluster == cluster);
        let initial = same_cluster.map(|f| f.cluster_initial_shared_version);
        let mut config = ChainConfig::new(rpc, package, cluster, initial.unwrap_or(0));
        config.chain_id = chain_id;
        config.admin_cap = same_cluster.and_then(|f| f.admin_cap);
        if initial.is_none() {
            let chain = crate::GrpcChain::new(config.clone())?;
            config.cluster_initial_shared_version = chain.initial_shared_version(cluster).await?;
        }
        Ok(config)
    }

    /// The resolved deployment's chain, checked: reachable, and the chain id it reports is the
    /// pinned one (when one is pinned).
    pub async fn connect(&self) -> Result<crate::GrpcChain, ChainError> {
        let chain = crate::GrpcChain::new(self.resolve().await?)?;
        let info = chain.check_chain().await?;
        tracing::debug!(chain = %info.chain, chain_id = %info.chain_id, height = info.checkpoint_height, "connected");
        Ok(chain)
    }
}

/// `localhost`, `127.0.0.0/8` or `::1` (URI hosts keep IPv6 brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    fn control_plane_needs_a_pinned_chain_and_tls_off_this_machine() {
        let check = |rpc: &str, chain_id: Option<&str>| {
            let mut c = ChainConfig::new(
                rpc,
                Address::from_static("0x1"),
                Address::from_static("0x2"),
                1,
            );
            c.chain_id = chain_id.map(str::to_owned);
            c.check_for_control_plane().map_err(|e| e.to_string())
        };
        for ok in [
            "https://fullnode.mainnet.sui.io",
            "https://10.0.0.1:9000",
            "http://127.0.0.1:9000",
            "http://127.1.2.3:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            assert_eq!(check(ok, Some("abc")), Ok(()), "{ok}");
        }
        for (rpc, chain_id, why) in [
            ("http://10.0.0.1:9000", Some("abc"), "plain http://"),
            ("http://fullnode.example.com", Some("abc"), "plain http://"),
            (
                "http://127.0.0.1.example.com:9000",
                Some("abc"),
                "plain http://",
            ),
            ("ftp://127.0.0.1", Some("abc"), "expected https://"),
            ("not a url", Some("abc"), "invalid RPC URL"),
            ("https://fullnode.mainnet.sui.io", None, "pins no chain_id"),
            (
                "https://fullnode.mainnet.sui.io",
                Some(""),
                "pins no chain_id",
            ),
        ] {
            let err = check(rpc, chain_id).expect_err(rpc);
            assert!(err.contains(why), "{rpc}: {err}");
        }
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
