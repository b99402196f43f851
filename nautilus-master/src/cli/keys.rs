//! `nautilus-master keys`: the etcd value-encryption key ring.
//!
//! File operations (`init`, `rotate`, `retire`, `unretire`) act on the key ring directory;
//! `status`, `reload`, `rewrap` and the checks of `rotate`/`retire` talk to a running shim
//! through its `daas.shim.v1.KeyAdmin` API, which the shim serves on its own listener
//! (`--admin-listen`, by default the 0600 unix socket `unix://<key ring>.admin.sock`), never on
//! the etcd listener.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use daas_envelope::{KeyId, KeyProvider, KeyRingDir};
use daas_etcd_proto::admin::{
    KeyStatusRequest, KeyStatusResponse, ReloadRequest, RewrapRequest,
    key_admin_client::KeyAdminClient,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Where the shim's KeyAdmin listener is.
#[derive(Args, Debug, Clone)]
pub(crate) struct AdminEndpoint {
    /// The shim's KeyAdmin endpoint (its `--admin-listen`): `unix:///path/keys.admin.sock`
    /// (the default there is `<key ring>.admin.sock`), `http://127.0.0.1:PORT`, or
    /// `https://HOST:PORT` with `--admin-ca`/`--admin-cert`/`--admin-key`. Not the etcd URL:
    /// KeyAdmin is not served there.
    #[arg(long = "admin-endpoint", env = "DAAS_ETCD_ADMIN_ENDPOINT")]
    url: Option<String>,
    /// CA (PEM) of the shim's server certificate, for `https://`.
    #[arg(long, requires = "url")]
    admin_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS to the shim.
    #[arg(long, requires_all = ["url", "admin_key"])]
    admin_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "admin_cert")]
    admin_key: Option<PathBuf>,
}

/// The same, required.
#[derive(Args, Debug, Clone)]
pub(crate) struct RequiredAdminEndpoint {
    #[command(flatten)]
    endpoint: AdminEndpoint,
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a key ring directory (mode 0700) with a first active key.
    Init {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
    },
    /// Generate a new active key; old keys stay readable. With --admin-endpoint the running
    /// shim switches immediately (otherwise at its next periodic reload).
    Rotate {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
        #[command(flatten)]
        admin: AdminEndpoint,
    },
    /// Move an old key to `<key ring>/archive/` (kept 0600, never loaded by default). Values
    /// still sealed under it stop decrypting, so with --admin-endpoint it first checks that the
    /// shim serves this ring, that no stored value needs the key, and that the shim's history
    /// is compacted past the scan. Backups sealed under it stay readable with `etcd-shim
    /// --with-archived-keys` or after `keys unretire`.
    Retire {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
        #[arg(long)]
        key_id: KeyId,
        /// Archive it without asking a shim (values or history still sealed under it become
        /// unreadable until the key is unretired).
        #[arg(long)]
        force: bool,
        /// Wait up to this long for the datastore's compaction to pass the scan (kube-apiserver
        /// compacts every 5 minutes); 0s refuses at once.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        wait_for_compaction: Duration,
        #[command(flatten)]
        admin: AdminEndpoint,
    },
    /// Move an archived key back into the key ring (decrypt-only; the active key does not
    /// change), e.g. to keep reading a restored backup sealed under it.
    Unretire {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: PathBuf,
        #[arg(long)]
        key_id: KeyId,
    },
    /// Show the key ring (and its archived keys); with --admin-endpoint the shim's live ring,
    /// with --scan also how many stored values each key seals.
    Status {
        #[arg(long, env = "DAAS_KEYRING")]
        keyring: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminEndpoint,
        #[arg(long, requires = "url")]
        scan: bool,
    },
    /// Ask the running shim to re-read its key ring now.
    Reload {
        #[command(flatten)]
        admin: RequiredAdminEndpoint,
    },
    /// Re-encrypt every value sealed under an old key, or in envelope v1, with the active key
    /// (compare-and-swap writes through the running shim; each bumps the value's mod_revision).
    /// Values that fail decryption or the freshness check are reported, never rewritten.
    Rewrap {
        #[command(flatten)]
        admin: RequiredAdminEndpoint,
        /// Upper bound on re-encrypting writes per second (1..=10000).
        #[arg(long, default_value_t = 500,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_writes_per_second: u32,
    },
}

impl RequiredAdminEndpoint {
    fn get(&self) -> Result<&AdminEndpoint> {
        if self.endpoint.url.is_none() {
            bail!("give the shim's KeyAdmin endpoint with --admin-endpoint");
        }
        Ok(&self.endpoint)
    }
}

/// Connects to a unix socket for tonic, whatever URI it is asked for.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower_service::Service<Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        })
    }
}

impl AdminEndpoint {
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    async fn connect(&self) -> Result<KeyAdminClient<Channel>> {
        let Some(url) = &self.url else {
            bail!("give the shim's KeyAdmin endpoint with --admin-endpoint");
        };
        let context = || format!("connecting to the shim's KeyAdmin at {url}");
        let channel = if let Some(path) = url.strip_prefix("unix://") {
            Endpoint::from_static("http://keyadmin.invalid")
                .connect_with_connector(UnixConnector(PathBuf::from(path)))
                .await
                .with_context(context)?
        } else {
            let mut endpoint = Endpoint::from_shared(url.clone())
                .with_context(|| format!("bad --admin-endpoint {url:?}"))?;
            if url.starts_with("https://") {
                let mut tls = ClientTlsConfig::new();
                if let Some(ca) = &self.admin_ca {
                    tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
                }
                if let (Some(cert), Some(key)) = (&self.admin_cert, &self.admin_key) {
                    tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
                }
                endpoint = endpoint.tls_config(tls)?;
            }
            endpoint.connect().await.with_context(context)?
        };
        Ok(KeyAdminClient::new(channel))
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Turns a KeyAdmin error into advice when the endpoint is not a KeyAdmin listener.
fn admin_error(url: Option<&str>, status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::Unimplemented {
        anyhow::anyhow!(
            "{} does not serve KeyAdmin: the shim serves it on its own listener (etcd-shim \
             --admin-listen, by default unix://<key ring>.admin.sock), not on the etcd API; give \
             that as --admin-endpoint",
            url.unwrap_or("the endpoint")
        )
    } else {
        anyhow::Error::new(status).context("KeyAdmin call failed")
    }
}

async fn status(admin: &AdminEndpoint, scan: bool) -> Result<KeyStatusResponse> {
    admin
        .connect()
        .await?
        .status(KeyStatusRequest { scan })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| admin_error(admin.url(), e))
}

pub(crate) async fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Init { keyring } => {
            let id = KeyRingDir::new(&keyring)
                .init()
                .with_context(|| format!("initialising key ring {}", keyring.display()))?;
            println!(
                "initialised key ring {} with active key {id}",
                keyring.display()
            );
        }
        KeysCommand::Rotate { keyring, admin } => {
            let id = KeyRingDir::new(&keyring).rotate()?;
            println!("active key is now {id}; older keys remain for reading");
            if let Some(url) = admin.url() {
                let r = admin
                    .connect()
                    .await?
                    .reload(ReloadRequest {})
                    .await
                    .map_err(|e| admin_error(Some(url), e))?
                    .into_inner();
                println!("shim reloaded: active {}", r.active_key_id);
                if r.active_key_id != id.to_string() {
                    bail!(
                        "the shim at {url} reports active key {} after reload, expected {id}: is it using this key ring?",
                        r.active_key_id
                    );
                }
            }
        }
        KeysCommand::Retire {
            keyring,
            key_id,
            force,
            wait_for_compaction,
            admin,
        } => {
            let dir = KeyRingDir::new(&keyring);
            if admin.url().is_some() {
                check_retirable(&dir, key_id, &admin, force, wait_for_compaction).await?;
            } else if !force {
                bail!(
                    "give --admin-endpoint so the shim can confirm no value or history still uses {key_id} (or --force)"
                );
            }
            dir.retire(key_id)?;
            println!(
                "retired key {key_id}: archived in {}",
                keyring.join("archive").display()
            );
        }
        KeysCommand::Unretire { keyring, key_id } => {
            KeyRingDir::new(&keyring).unretire(key_id)?;
            println!(
                "key {key_id} is back in the key ring (for reading; the active key is unchanged)"
            );
        }
        KeysCommand::Status {
            keyring,
            admin,
            scan,
        } => {
            if let Some(dir) = keyring {
                let provider = KeyRingDir::new(&dir);
                let ring = provider.load()?;
                println!("key ring {}", provider.describe());
                for id in ring.ids() {
                    let marker = if id == ring.active_id() {
                        " (active)"
                    } else {
                        ""
                    };
                    println!("  {id}{marker}");
                }
                for id in provider.archived_ids()? {
                    println!("  {id} (retired, in archive/)");
                }
            }
            if let Some(url) = admin.url() {
                let s = status(&admin, scan).await?;
                println!(
                    "shim {url}: provider {}, active {}",
                    s.provider, s.active_key_id
                );
                println!("  loaded keys: {}", s.key_ids.join(", "));
                if scan {
                    println!(
                        "  scanned {} values at revision {} (compacted up to {})",
                        s.scanned, s.revision, s.compact_revision
                    );
                    for c in &s.counts {
                        let mut notes = Vec::new();
                        if c.active {
                            notes.push("active".to_owned());
                        }
                        if !c.loaded {
                            notes.push("NOT LOADED: unreadable".to_owned());
                        }
                        if c.v1_values > 0 {
                            notes.push(format!("{} in envelope v1", c.v1_values));
                        }
                        println!(
                            "  {:>10} values under {} {}",
                            c.values,
                            c.key_id,
                            notes.join(", ")
                        );
                    }
                    if s.unreadable > 0 {
                        println!(
                            "  {:>10} values are not envelopes (written around the shim?)",
                            s.unreadable
                        );
                    }
                }
            }
        }
        KeysCommand::Reload { admin } => {
            let admin = admin.get()?;
            let r = admin
                .connect()
                .await?
                .reload(ReloadRequest {})
                .await
                .map_err(|e| admin_error(admin.url(), e))?
                .into_inner();
            println!(
                "active {}; loaded {}",
                r.active_key_id,
                r.key_ids.join(", ")
            );
        }
        KeysCommand::Rewrap {
            admin,
            max_writes_per_second,
        } => {
            let admin = admin.get()?;
            let r = admin
                .connect()
                .await?
                .rewrap(RewrapRequest {
                    page_size: 0,
                    max_writes_per_second,
                })
                .await
                .map_err(|e| admin_error(admin.url(), e))?
                .into_inner();
            println!(
                "rewrap: scanned {}, re-encrypted {} under {}, skipped {} (changed meanwhile), {} unreadable (not envelopes, unknown key, or stale)",
                r.scanned, r.rewrapped, r.active_key_id, r.conflicts, r.unreadable
            );
        }
    }
    Ok(())
}

/// What `retire` can check through the shim before archiving `id`:
/// 1. the shim serves this key ring (same active key, every key of the ring loaded);
/// 2. no stored value is sealed under `id` (a scan at the latest revision `S`);
/// 3. the shim's history holds nothing older than `S` (its compaction revision is `≥ S`), so
///    no older version of a value, readable by a watch replay or a read at a past revision,
///    is sealed under `id` either.
///
/// What it cannot see: backups and snapshots of the datastore taken elsewhere, and other
/// shims or rings. Those are why the key is archived, not deleted (`docs/etcd-shim.md`).
async fn check_retirable(
    dir: &KeyRingDir,
    id: KeyId,
    admin: &AdminEndpoint,
    force: bool,
    wait: Duration,
) -> Result<()> {
    let url = admin.url().unwrap_or_default();
    let ring = dir.load()?;
    let s = status(admin, true).await?;
    let loaded: BTreeSet<String> = s.key_ids.iter().cloned().collect();
    let ours: BTreeSet<String> = ring.ids().map(|k| k.to_string()).collect();
    if s.active_key_id != ring.active_id().to_string() || !ours.is_subset(&loaded) {
        bail!(
            "the shim at {url} does not serve this key ring (it has active key {} and keys {}; {} has active key {} and keys {}): wrong --admin-endpoint or --keyring, or the shim has not reloaded yet (`keys reload`)",
            s.active_key_id,
            s.key_ids.join(", "),
            dir.path().display(),
            ring.active_id(),
            ours.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if force {
        return Ok(());
    }
    let still = s
        .counts
        .iter()
        .find(|c| c.key_id == id.to_string())
        .map_or(0, |c| c.values);
    if still > 0 {
        bail!(
            "{still} stored values are still sealed under {id}: run `keys rewrap` first (or --force to archive it anyway)"
        );
    }
    // No value uses the key at revision `scanned`, and nothing can seal a new one under it (it
    // is not active): once compaction passes `scanned`, no older version can either.
    let scanned = s.revision;
    let mut compacted = s.compact_revision;
    let deadline = Instant::now() + wait;
    while compacted < scanned {
        if Instant::now() >= deadline {
            bail!(
                "no stored value uses {id} at revision {scanned}, but the history before it is not compacted yet (compacted up to {compacted}): older versions may still be sealed under {id}. kube-apiserver compacts every 5 minutes: retry later, pass --wait-for-compaction 15m, or compact to {scanned} yourself"
            );
        }
        tokio::time::sleep(Duration::from_secs(5).min(wait)).await;
        compacted = status(admin, false).await?.compact_revision;
    }
    Ok(())
}
