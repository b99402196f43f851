//! `staker-agent verify-master`: check the cluster's master before trusting it (the attestation
//! check every worker runs before it joins).

use std::path::Path;

use anyhow::{Context, Result};
use daas_attestation::{RootKind, TrustAnchor};
use daas_verify_master::{MasterCheck, VerifiedMaster, verify_master};

use crate::chain::{block_on, connect, now_ms};
use crate::cli::{Global, VerifyMasterArgs};

pub(crate) fn run(global: &Global, args: VerifyMasterArgs) -> Result<()> {
    let verified = block_on(async {
        let chain = connect(&args.chain).await?;
        let check = MasterCheck {
            endpoint: args.endpoint.clone(),
            anchors: anchors(args.dev_root.as_deref())?,
            ..MasterCheck::new(now_ms())
        };
        verify_master(&chain, &check)
            .await
            .context("the master did not pass the attestation check; nothing was trusted")
    })?;
    if let Some(path) = &args.ca_out {
        std::fs::write(path, &verified.ca_pem)
            .with_context(|| format!("writing the verified CA to {}", path.display()))?;
    }
    print(global, &verified);
    Ok(())
}

/// The AWS Nitro root, plus a dev root only when one is given (with a warning: a dev root
/// proves nothing about the machine).
pub(crate) fn anchors(dev_root: Option<&Path>) -> Result<Vec<TrustAnchor>> {
    let anchors = daas_verify_master::trust_anchors(dev_root)?;
    if let Some(path) = dev_root {
        eprintln!(
            "staker-agent: WARNING: trusting the DEV attestation root {}: a dev master runs in no enclave and proves nothing",
            path.display()
        );
    }
    Ok(anchors)
}

fn print(global: &Global, v: &VerifiedMaster) {
    let root = match v.root {
        RootKind::Aws => "AWS Nitro Enclaves root G1",
        RootKind::Dev => "DEV root (not a TEE)",
    };
    if global.json() {
        let value = serde_json::json!({
            "endpoint": v.endpoint,
            "module_id": v.module_id,
            "attested_at_ms": v.attested_at_ms,
            "root": root,
            "pcr0": hex::encode(&v.pcrs[0]),
            "pcr1": hex::encode(&v.pcrs[1]),
            "pcr2": hex::encode(&v.pcrs[2]),
            "ca_sha256": hex::encode(v.ca_sha256),
            "k3s_ca_hash": v.k3s_ca_hash,
            "ca_pem": v.ca_pem,
        });
        println!("{value}");
    } else {
        println!(
            "master     {}\nenclave    {}\nattested   {} ms since epoch, signed under the {root}\nPCR0       {}\nPCR1       {}\nPCR2       {}\n           (equal to the cluster's expected PCRs on chain)\nCA sha256  {} (registered on chain; the TLS certificate chains to it)\nK3s hash   {}",
            v.endpoint,
            v.module_id,
            v.attested_at_ms,
            hex::encode(&v.pcrs[0]),
            hex::encode(&v.pcrs[1]),
            hex::encode(&v.pcrs[2]),
            hex::encode(v.ca_sha256),
            v.k3s_ca_hash,
        );
    }
}
