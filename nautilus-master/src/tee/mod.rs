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

/// The dev stand-in for the NSM: a dev root (kept under a directory so a dev chain and a dev
/// master share it across restarts) and PCRs derived from this build.
#[derive(Debug)]
pub struct DevTee {
    pub attester: Arc<DevAttester>,
    /// The dev root certificate (PEM) clients must be told to trust explicitly.
    pub root_pem: String,
}

/// File names of a saved dev root.
pub const DEV_ROOT_CERT: &str = "dev-root.pem";
pub const DEV_ROOT_KEY: &str = "dev-root.key";

impl DevTee {
    /// A dev attester under a new dev root (key only in memory), "measuring" `image`.
    pub fn new(image: &[u8]) -> anyhow::Result<DevTee> {
        Self::with_root(DevRoot::generate()?, image)
    }

    fn with_root(root: DevRoot, image: &[u8]) -> anyhow::Result<DevTee> {
        let root_pem = root.certificate_pem();
        let attester = DevAttester::new(root, daas_attestation::dev::dev_pcrs(image))?;
        Ok(DevTee {
            attester: Arc::new(attester),
            root_pem,
        })
    }

    /// The dev root saved in `dir` (`dev-root.pem`, and `dev-root.key` with mode 0600), created
    /// there on first use; PCRs from this build ([`DevTee::for_this_build`]).
    pub fn load_or_create(dir: &std::path::Path) -> anyhow::Result<DevTee> {
        use anyhow::Context;
        let cert_path = dir.join(DEV_ROOT_CERT);
        let key_path = dir.join(DEV_ROOT_KEY);
        let root = if key_path.is_file() {
            let cert = std::fs::read_to_string(&cert_path)
                .with_context(|| format!("reading {}", cert_path.display()))?;
            let key = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key_path)
                    .with_context(|| format!("reading {}", key_path.display()))?,
            );
            DevRoot::from_pem(&cert, &key)
                .with_context(|| format!("loading the dev root in {}", dir.display()))?
        } else {
            let root = DevRoot::generate()?;
            crate::private_fs::create_private_dir(dir)?;
            crate::private_fs::write_atomic(&key_path, root.key_pem().as_bytes(), 0o600)?;
            crate::private_fs::write_atomic(&cert_path, root.certificate_pem().as_bytes(), 0o644)?;
            root
        };
        Self::with_root(root, &this_build())
    }

    /// A dev attester under a new in-memory root, PCRs from this build: the "image" is the
    /// package name and version, so the dev PCRs change with every release (hashing the whole
    /// executable would cost seconds in debug builds and prove no more: nothing in dev mode is
    /// measured by hardware).
    pub fn for_this_build() -> anyhow::Result<DevTee> {
        DevTee::new(&this_build())
    }

    /// The dev root as a trust anchor (kind `Dev`), for the dev chain.
    pub fn trust_anchor(&self) -> daas_attestation::TrustAnchor {
        self.attester.trust_anchor()
    }

    /// PCR0/1/2 of the dev image (what the dev cluster expects).
    pub fn pcrs(&self) -> [Vec<u8>; 3] {
        let p = self.attester.pcrs();
        [p.pcr0, p.pcr1, p.pcr2]
    }
}

fn this_build() -> Vec<u8> {
    format!(
        "{} {} (dev image)",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Opens the attester `kind` names; `Dev` uses (or creates) the dev root in `dev_root_dir` and
/// logs loudly: nothing it produces proves anything.
pub fn open(
    kind: TeeKind,
    dev_root_dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn Attester>, Option<DevTee>)> {
    match kind {
        TeeKind::Nitro => Ok((Arc::new(nsm::NsmAttester::open()?), None)),
        TeeKind::Dev => {
            tracing::warn!(
                "--tee dev: attestation documents are signed by a local DEV root, not by AWS; they prove nothing about this machine"
            );
            let dev = DevTee::load_or_create(dev_root_dir)?;
            Ok((dev.attester.clone(), Some(dev)))
        }
    }
}
