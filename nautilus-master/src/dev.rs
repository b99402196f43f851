//! `nautilus-master dev`: the local, single-machine setup on embedded defaults.
//!
//! Provisions the dev identities on the dev chain (see [`crate::dev_chain`]): an admin and a
//! user wallet in Sui CLI keystores, funded from the devnet faucet and staked on chain through
//! the real client (an existing active record is reused). Then self-checks the real
//! authentication path against the chain-backed stake view (a token at the record's epoch is
//! accepted, one at any other epoch refused), creates the etcd value-encryption key ring and
//! runs the encrypting etcd shim once (write → read back → the store holds only ciphertext).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use daas_seal::{Address, Claims, Role, mint};
use daas_wallet::{Keystore, Scheme, WalletKey, write_keystore};

use crate::auth::{AuthConfig, AuthError, SealAuthenticator, unix_ms_now};
use crate::chain::ChainStakeView;
use crate::dev_chain::DevChain;

/// Dev stakes: the admin's (cluster-admin access) and the user's (one namespace).
pub const DEV_ADMIN_STAKE_MIST: u64 = 10_000_000_000;
pub const DEV_USER_STAKE_MIST: u64 = 1_000_000_000;
/// What the dev worker wallet is funded and granted for (it stakes itself, as a staker would).
pub const DEV_WORKER_STAKE_MIST: u64 = 1_000_000_000;
/// The node name the banner suggests for the dev worker.
pub const DEV_WORKER_NODE: &str = "dev-worker-1";

/// What `dev` set up, for printing and for tests.
#[derive(Debug)]
pub struct DevReport {
    pub keystore: PathBuf,
    pub address: Address,
    pub cluster: Address,
    pub stake: Address,
    /// The admin record's current token epoch (tokens must carry it).
    pub stake_epoch: u64,
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
    pub user_stake_epoch: u64,
    /// The third dev wallet: granted the worker role and funded, not staked (the banner shows
    /// the staker's commands).
    pub worker_keystore: PathBuf,
    pub worker_address: Address,
    /// The dev chain's endpoint and deployment file.
    pub chain_url: String,
    pub chain_config: PathBuf,
}

/// Creates the data directory (mode 0700) before anything is put in it.
pub fn prepare(data_dir: &Path) -> Result<()> {
    create_private_dir(data_dir)
}

/// Provisions `data_dir` and the dev stakes on `chain` (idempotent: existing wallets and active
/// records are reused) and runs the self-checks.
pub async fn run(data_dir: &Path, chain: &DevChain) -> Result<DevReport> {
    create_private_dir(data_dir)?;
    let keystore = data_dir.join("sui_config/sui.keystore");
    let key = load_or_create_key(&keystore)?;
    let user_keystore = data_dir.join("user/sui.keystore");
    let user_key = load_or_create_key(&user_keystore)?;
    let worker_keystore = data_dir.join("worker/sui.keystore");
    let worker_key = load_or_create_key(&worker_keystore)?;
    let cluster = chain.config.cluster;
    chain
        .ensure_ready_to_stake(worker_key.address(), Role::Worker, DEV_WORKER_STAKE_MIST)
        .await
        .context("preparing the dev worker wallet")?;
    let admin_record = chain
        .ensure_stake(&key, Role::Admin, DEV_ADMIN_STAKE_MIST)
        .await
        .context("provisioning the admin stake")?;
    let user_record = chain
        .ensure_stake(&user_key, Role::User, DEV_USER_STAKE_MIST)
        .await
        .context("provisioning the user stake")?;
    let stake = admin_record.object.id;
    let epoch = admin_record.record.token_epoch;
    // Plain files for scripts (and the tests): the ids the tokens need.
    write_id(&data_dir.join("cluster-id"), cluster)?;
    write_id(&data_dir.join("dev-stake-id"), stake)?;
    write_id(&data_dir.join("dev-user-stake-id"), user_record.object.id)?;

    // Self-check through the chain-backed view (no follower: every lookup reads the chain).
    let view = ChainStakeView::new(chain.chain.clone(), cluster, None);
    let auth = SealAuthenticator::new(AuthConfig::new(cluster), view);
    let now = unix_ms_now();
    let token = |epoch: u64| -> Result<String> {
        let claims = Claims::builder(cluster, key.address(), stake, Role::Admin)
            .lifetime(now, 15 * 60 * 1000)
            .token_epoch(epoch)
            .random_nonce()
            .build()?;
        Ok(mint(key.keypair(), claims)?.into_string())
    };
    let identity = auth
        .authenticate_at(&token(epoch)?, now)
        .await
        .context("authentication self-check against the dev chain")?;
    let refusal = match auth.authenticate_at(&token(epoch + 1)?, now).await {
        Err(e @ AuthError::Revoked { .. }) => e.to_string(),
        other => anyhow::bail!("token-epoch self-check failed: expected a refusal, got {other:?}"),
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
        stake_epoch: epoch,
        username: identity.username.clone(),
        groups: identity.groups.clone(),
        revoked_refusal: refusal,
        user_keystore,
        user_address: user_key.address(),
        user_stake: user_record.object.id,
        user_stake_epoch: user_record.record.token_epoch,
        worker_keystore,
        worker_address: worker_key.address(),
        chain_url: chain.url.clone(),
        chain_config: chain.client_config_path(),
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

/// Runs the shim on the store in process (no listener) with its freshness anchor, writes and
/// reads a marker through it, and checks that the store file never holds the marker in
/// plaintext.
async fn etcd_self_check(ring: &daas_envelope::KeyRingDir, dir: &Path) -> Result<(String, i64)> {
    use bytes::Bytes;
    use daas_envelope::KeyProvider;
    use daas_etcd_proto::{PutRequest, RangeRequest, kv_server::Kv};
    use daas_etcd_shim::{
        Anchor, Baseline, EmbeddedBackend, EmbeddedConfig, EtcdShim, Keys, ShimOptions,
    };

    let keys = Arc::new(Keys::from_ring(ring.load()?));
    let active = keys.active_id().map(|k| k.to_string()).unwrap_or_default();
    let backend = EmbeddedBackend::open(&EmbeddedConfig::new(dir))?;
    // The same anchor `dev` serves with (beside the key ring, outside the store).
    let anchor = Anchor::new(ring.path().with_file_name("keys.anchor"));
    let freshness =
        daas_etcd_shim::anchor::start(&backend, &keys, &anchor, Baseline::AcceptMissingAnchor)
            .await?;
    let shim = EtcdShim::with_freshness(backend, keys.clone(), ShimOptions::default(), freshness);
    let mut marker = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut marker);
    let marker = format!("dev-self-check-{}", hex::encode(marker));
    let key = Bytes::from_static(b"/k3s-daas/dev/self-check");
    shim.put(tonic::Request::new(PutRequest {
        key: key.clone(),
        value: Bytes::from(marker.clone()),
        ..PutRequest::default()
    }))
    .await?;
    let got = shim
        .range(tonic::Request::new(RangeRequest {
            key,
            ..RangeRequest::default()
        }))
        .await?
        .into_inner();
    daas_etcd_shim::anchor::write_now(&keys, &anchor, shim.freshness().watermark()).await?;
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

/// Writes `id` as 0x-hex (atomically, replacing an older value).
fn write_id(path: &Path, id: Address) -> Result<()> {
    crate::private_fs::write_atomic(path, format!("{id}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dev_is_idempotent_private_and_staked_on_the_dev_chain() {
        use daas_chain::Chain;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = "127.0.0.1:0".parse().expect("addr");
        let chain = DevChain::start(&dir.path().join("chain"), listen, None)
            .await
            .expect("dev chain");
        let first = run(dir.path(), &chain).await.expect("first run");
        let second = run(dir.path(), &chain).await.expect("second run");
        assert_eq!(first.address, second.address, "wallet reused");
        assert_eq!(
            first.stake, second.stake,
            "active record reused, not staked again"
        );
        assert_eq!(first.user_stake, second.user_stake);
        assert_eq!(first.cluster, chain.config.cluster);
        assert_ne!(
            first.user_address, first.address,
            "two distinct dev identities"
        );
        let admin = chain
            .chain
            .stake_record(first.stake)
            .await
            .expect("read")
            .value
            .expect("on chain");
        assert_eq!(
            (admin.record.owner, admin.record.role, admin.record.balance),
            (first.address, Role::Admin.code(), DEV_ADMIN_STAKE_MIST)
        );
        let user = chain
            .chain
            .stake_record(first.user_stake)
            .await
            .expect("read")
            .value
            .expect("on chain");
        assert_eq!(
            (user.record.owner, user.record.role),
            (first.user_address, Role::User.code())
        );
        assert_eq!(first.username, format!("sui:{}", first.address));
        assert!(first.groups.contains(&"k3s-daas:admin".to_owned()));
        assert!(first.revoked_refusal.contains("revoked"));
        let id: Address = fs::read_to_string(dir.path().join("dev-stake-id"))
            .expect("id file")
            .trim()
            .parse()
            .expect("hex id");
        assert_eq!(id, first.stake);
        let mode = fs::metadata(&first.keystore)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(dir.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        chain.shutdown().await.expect("shutdown");
    }
}
