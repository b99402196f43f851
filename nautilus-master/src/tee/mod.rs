//! The enclave side of trust: who attests ([`Attester`](daas_attestation::Attester)
//! implementations: the real NSM, or the dev attester), the enclave's in-memory TLS identity,
//! and the attestation service behind `GET /attestation`.

pub mod identity;
pub mod nsm;
pub mod service;

use std::sync::Arc;

use daas_attestation::Attester;
use daas_attestation::dev::{DevAttester, DevRoot};

pub use identity::EnclaveIdentity;
pub use service::AttestationService;

/// Which attester a master uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeKind {
    /// The Nitro Security Module (`/dev/nsm`): production.
    Nitro,
    /// A local stand-in signing with a dev root: development only, never trusted by default.
    Dev,
}

/// The dev attester for this executable: a new dev root (its key only in memory), PCRs measured
/// from `image`.
#[derive(Debug)]
pub struct DevTee {
    pub attester: Arc<DevAttester>,
    /// The dev root certificate (PEM) clients must be told to trust explicitly.
    pub root_pem: String,
}

impl DevTee {
    pub fn new(image: &[u8]) -> anyhow::Result<DevTee> {
        let root = DevRoot::generate()?;
        let root_pem = root.certificate_pem();
        let attester = DevAttester::new(root, daas_attestation::dev::dev_pcrs(image))?;
        Ok(DevTee {
            attester: Arc::new(attester),
            root_pem,
        })
    }

    /// The dev root as a trust anchor (kind `Dev`), for the dev chain.
    pub fn trust_anchor(&self) -> daas_attestation::TrustAnchor {
        self.attester.trust_anchor()
    }

    /// The dev attester of this build: its "image" is the package name and version, so the
    /// dev PCRs change with every release (hashing the whole executable would cost seconds in
    /// debug builds and prove no more: nothing in dev mode is measured by hardware).
    pub fn for_this_build() -> anyhow::Result<DevTee> {
        DevTee::new(
            format!(
                "{} {} (dev image)",
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        )
    }

    /// PCR0/1/2 of the dev image (what the dev cluster expects).
    pub fn pcrs(&self) -> [Vec<u8>; 3] {
        let p = self.attester.pcrs();
        [p.pcr0, p.pcr1, p.pcr2]
    }
}

/// Opens the attester `kind` names. `Dev` logs loudly: nothing it produces proves anything.
pub fn open(kind: TeeKind, image: &[u8]) -> anyhow::Result<(Arc<dyn Attester>, Option<DevTee>)> {
    match kind {
        TeeKind::Nitro => Ok((Arc::new(nsm::NsmAttester::open()?), None)),
        TeeKind::Dev => {
            tracing::warn!(
                "--tee dev: attestation documents are signed by a local DEV root, not by AWS; they prove nothing about this machine"
            );
            let dev = DevTee::new(image)?;
            Ok((dev.attester.clone(), Some(dev)))
        }
    }
}
