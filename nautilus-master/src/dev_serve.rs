//! The long-running half of `nautilus-master dev`: the control plane ([`crate::control_plane`])
//! on this machine, on embedded defaults, until Ctrl-C.
//!
//! What `dev` chooses: the embedded etcd store and the key ring under the data dir, the dev
//! chain in this process (pinned like any chain), and the dev attester standing in for the NSM.
//! Once the proxy is bound, the dev enclave is registered on the dev chain through the real PTB,
//! as an operator registers a real one, so clients can check it (`--dev-root`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::control_plane::{Options, Store, Trust};
pub use crate::control_plane::{Running, UpstreamChoice};

/// What `dev` serves: the control plane's options, and the dev stand-in for the enclave's
/// attester (a dev root the dev chain trusts).
#[derive(Clone, Debug)]
pub struct DevServeOptions {
    pub plane: Options,
    pub tee: Arc<crate::tee::DevTee>,
}

/// Where `dev` keeps its dev attestation root.
pub fn dev_root_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("tee")
}

/// The dev root certificate clients must be told to trust (`--dev-root`).
pub fn dev_root_path(data_dir: &std::path::Path) -> PathBuf {
    dev_root_dir(data_dir).join(crate::tee::DEV_ROOT_CERT)
}

/// Runs everything until `shutdown` resolves; `on_ready` is called once all is listening and
/// the dev enclave is registered.
pub async fn serve(
    opts: DevServeOptions,
    chain: &crate::dev_chain::DevChain,
    shutdown: impl std::future::Future<Output = ()> + Send,
    on_ready: impl FnOnce(&Running),
) -> Result<()> {
    use daas_envelope::KeyProvider;
    use daas_etcd_shim::{Anchor, Baseline, EmbeddedBackend, EmbeddedConfig, Keys};

    let data_dir = &opts.plane.data_dir;
    let ring = daas_envelope::KeyRingDir::new(data_dir.join("keys"));
    let etcd_dir = data_dir.join("etcd");
    let store = Store {
        backend: EmbeddedBackend::open(&EmbeddedConfig::new(&etcd_dir)).context(
            "opening the embedded etcd store (is another `dev` running on this data dir?)",
        )?,
        keys: Arc::new(Keys::from_ring(ring.load()?)),
        // Beside the key ring, outside the store. A data dir from before the anchor existed
        // starts a new one (dev only; logged at warn); a store behind its anchor is refused.
        anchor: Anchor::new(data_dir.join("keys.anchor")),
        baseline: Baseline::AcceptMissingAnchor,
        describe: format!("embedded store {}", etcd_dir.display()),
    };
    let trust = Trust {
        chain: chain.chain.clone(),
        cluster: chain.config.cluster,
        stale_after: crate::dev_chain::STALE_AFTER,
        attester: opts.tee.attester.clone(),
        sans: Vec::new(),
        public_endpoint: None,
    };
    let pcrs = opts.tee.pcrs();
    crate::control_plane::run(
        opts.plane,
        trust,
        store,
        |service, endpoint| async move {
            chain
                .register_enclave(&service, [&pcrs[0], &pcrs[1], &pcrs[2]], &endpoint)
                .await
        },
        shutdown,
        on_ready,
    )
    .await
}
