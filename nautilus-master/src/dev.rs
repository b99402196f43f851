//! `nautilus-master dev`: the local, single-machine setup on embedded defaults.
//!
//! In this landing it provisions what later components share — a dev wallet in a Sui CLI
//! keystore, a dev cluster id, a dev stake record in an in-memory stake view — and drives the
//! real authentication path end to end (mint → authenticate → revoke → refused). It also
//! creates the etcd value-encryption key ring and runs the encrypting etcd shim on the embedded
//! store once (write → read back → the store file holds only ciphertext). It says plainly which
//! components (devnet chain, proxy, k3s) are not built yet.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::{Keystore, Scheme, WalletKey, write_keystore};

use crate::auth::{
    AuthConfig, AuthError, InMemoryStakeView, SealAuthenticator, StakeRecord, StakeStatus,
    unix_ms_now,
};

/// What `dev` set up, for printing and for tests.
#[derive(Debug)]
pub struct DevReport {
    pub keystore: PathBuf,
    pub address: Address,
    pub cluster: Address,
    pub stake: Address,
    pub username: String,
    pub groups: Vec<String>,
    pub revoked_refusal: String,
    pub keyring: PathBuf,
    pub active_key: String,
    pub etcd_dir: PathBuf,
    pub etcd_revision: i64,
    /// The second dev wallet (role `user`), in its own keystore.
    pub user_keystore: PathBuf,
    pub user_address: Address,
    pub user_stake: Address,
}

impl DevReport {
    /// The stakes the dev control plane's in-memory view serves (both at token epoch 0).
    pub fn stakes(&self) -> crate::dev_serve::DevStakes {
        use crate::dev_serve::{DevStakes, stake_record};
        DevStakes {
            cluster: self.cluster,
            records: vec![
                stake_record(self.stake, self.address, self.cluster, Role::Admin),
                stake_record(self.user_stake, self.user_address, self.cluster, Role::User),
            ],
        }
    }
}

/// Provisions `data_dir` (idempotent: an existing wallet and cluster id are reused) and runs the
/// authentication self-check.
pub async fn run(data_dir: &Path) -> Result<DevReport> {
    create_private_dir(data_dir)?;
    let keystore = data_dir.join("sui_config/sui.keystore");
    let key = load_or_create_key(&keystore)?;
    let cluster = read_or_create_id(&data_dir.join("cluster-id"))?;
    let stake = read_or_create_id(&data_dir.join("dev-stake-id"))?;
    let user_keystore = data_dir.join("user/sui.keystore");
    let user_key = load_or_create_key(&user_keystore)?;
    let user_stake = read_or_create_id(&data_dir.join("dev-user-stake-id"))?;

    let view = Arc::new(InMemoryStakeView::default());
    view.upsert(StakeRecord {
        id: stake,
        owner: key.address(),
        cluster,
        role: Role::Admin,
        node_name: None,
        amount_mist: 10_000_000_000,
        status: StakeStatus::Active,
        token_epoch: 0,
    });
    let auth = SealAuthenticator::new(AuthConfig::new(cluster), view.clone());

    let now = unix_ms_now();
    let claims = Claims::builder(cluster, key.address(), stake, Role::Admin)
        .lifetime(now, 15 * 60 * 1000)
        .random_nonce()
        .build()?;
    let token = mint(key.keypair(), claims)?;
    let identity = auth.authenticate_at(token.as_str(), now).await?;

    // Revocation, as the chain follower will drive it: bump the epoch, evict, refuse.
    view.update(&stake, |r| r.token_epoch += 1);
    auth.evict_stake(&stake);
    let refusal = match auth.authenticate_at(token.as_str(), now).await {
        Err(e @ AuthError::Revoked { .. }) => e.to_string(),
        other => anyhow::bail!("revocation self-check failed: expected Revoked, got {other:?}"),
    };

    let keyring = data_dir.join("keys");
    let ring_dir = daas_envelope::KeyRingDir::new(&keyring);
    if !keyring.join("active").is_file() {
        ring_dir.init()?;
    }
    let etcd_dir = data_dir.join("etcd");
    let (active_key, etcd_revision) =
        etcd_self_check(&ring_dir, &etcd_dir)
            .await
            .with_context(|| {
                format!(
                    "etcd shim self-check on {} (is a shim already using it?)",
                    etcd_dir.display()
                )
            })?;

    Ok(DevReport {
        keyring,
        active_key,
        etcd_dir,
        etcd_revision,
        keystore,
        address: key.address(),
        cluster,
        stake,
        username: identity.username.clone(),
        groups: identity.groups.clone(),
        revoked_refusal: refusal,
        user_keystore,
        user_address: user_key.address(),
        user_stake,
    })
}

/// The single key of a dev keystore, created (ed25519) on first use.
fn load_or_create_key(keystore: &Path) -> Result<WalletKey> {
    if keystore.is_file() {
        return Ok(Keystore::load(keystore)?
            .select(None)
            .context("a dev keystore must hold exactly one key")?
            .clone());
    }
    if let Some(dir) = keystore.parent() {
        create_private_dir(dir)?;
    }
    let key = WalletKey::generate(Scheme::Ed25519);
    write_keystore(keystore, std::slice::from_ref(&key))?;
    Ok(key)
}

/// Serves the shim on a loopback port for a moment, writes and reads a marker through it, and
/// checks that the store file never holds the marker in plaintext.
async fn etcd_self_check(ring: &daas_envelope::KeyRingDir, dir: &Path) -> Result<(String, i64)> {
    use bytes::Bytes;
    use daas_envelope::KeyProvider;
    use daas_etcd_proto::{PutRequest, RangeRequest, kv_client::KvClient};
    use daas_etcd_shim::{
        EmbeddedBackend, EmbeddedConfig, EtcdShim, Keys, Listen, Listener, ServeOptions,
        ShimOptions, serve,
    };

    let keys = Arc::new(Keys::from_ring(ring.load()?));
    let active = keys.active_id().map(|k| k.to_string()).unwrap_or_default();
    let backend = EmbeddedBackend::open(&EmbeddedConfig::new(dir))?;
    let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse()?), false).await?;
    let url = listener.url(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        EtcdShim::new(backend, keys, ShimOptions::default()),
        listener,
        ServeOptions {
            tls: None,
            key_reload_interval: std::time::Duration::ZERO,
        },
        async {
            let _ = stopped.await;
        },
    ));
    let mut marker = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut marker);
    let marker = format!("dev-self-check-{}", hex::encode(marker));
    let key = Bytes::from_static(b"/k3s-daas/dev/self-check");
    let mut kv = KvClient::connect(url).await?;
    kv.put(PutRequest {
        key: key.clone(),
        value: Bytes::from(marker.clone()),
        ..PutRequest::default()
    })
    .await?;
    let got = kv
        .range(RangeRequest {
            key,
            ..RangeRequest::default()
        })
        .await?
        .into_inner();
    let _ = stop.send(());
    server.await??;
    let revision = got.header.map_or(0, |h| h.revision);
    anyhow::ensure!(
        got.kvs.first().map(|kv| kv.value.as_ref()) == Some(marker.as_bytes()),
        "the value read back through the shim differs from the one written"
    );
    let stored = fs::read(dir.join("state.redb"))?;
    anyhow::ensure!(
        !stored.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the embedded store holds the self-check value in plaintext"
    );
    Ok((active, revision))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    crate::private_fs::create_private_dir(dir)
        .with_context(|| format!("creating {} with mode 0700", dir.display()))
}

/// A random 32-byte id persisted as 0x-hex, reused on later runs.
fn read_or_create_id(path: &Path) -> Result<Address> {
    if path.is_file() {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return text
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a 0x-hex id", path.display()));
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let id = Address::new(bytes);
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{id}")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dev_is_idempotent_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let first = run(dir.path()).await.expect("first run");
        let second = run(dir.path()).await.expect("second run");
        assert_eq!(first.address, second.address, "wallet reused");
        assert_eq!(first.cluster, second.cluster, "cluster id reused");
        assert_eq!(
            first.user_address, second.user_address,
            "user wallet reused"
        );
        assert_ne!(
            first.user_address, first.address,
            "two distinct dev identities"
        );
        assert_eq!(first.stakes().records.len(), 2);
        assert_eq!(first.username, format!("sui:{}", first.address));
        assert!(first.groups.contains(&"k3s-daas:admin".to_owned()));
        assert!(first.revoked_refusal.contains("revoked"));
        let mode = fs::metadata(&first.keystore)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(dir.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
