//! Releasing the storage data keys through KMS, and a [`KeyProvider`] holding them.
//!
//! The wrapped-keys file (JSON) lists each data key as KMS ciphertext:
//!
//! ```json
//! { "active": "1a2b3c4d",
//!   "keys": [ { "id": "1a2b3c4d", "ciphertext_blob": "<base64 from kms Encrypt/GenerateDataKey>" } ],
//!   "key_id": "arn:aws:kms:eu-west-1:111122223333:key/…",
//!   "region": "eu-west-1" }
//! ```
//!
//! Entries come from [`provision_wrapped_key`](crate::provision_wrapped_key) (KMS
//! `GenerateDataKey` with a Recipient, inside the enclave); [`WrappedKeys::new_single`],
//! [`WrappedKeys::push`] and [`WrappedKeys::write`] assemble and store the file.
//!
//! `id` is the envelope [`KeyId`] of the 32-byte data key (`SHA-256("k3s-daas/key-id/v1" ‖
//! key)[0..4]`, 8 lowercase hex digits): a released key whose id differs is refused, so a blob
//! swapped between entries (or under another KMS key) cannot become the active key. The file
//! holds nothing secret; the parent may store it.

use std::fs::{File, Permissions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use daas_attestation::Attester;
use daas_envelope::{DataKey, KeyId, KeyProvider, KeyRing, KeyRingError, ProviderError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::client::{DecryptRequest, KmsClient, MAX_CIPHERTEXT_BLOB};
use crate::credentials::CredentialSource;
use crate::error::KmsError;
use crate::provision::{ProvisionedKey, provision_wrapped_key};
use crate::recipient::RecipientKey;

/// Most wrapped keys a file may list.
pub(crate) const MAX_KEYS: usize = 64;
/// Largest wrapped-keys file read (bytes).
const MAX_FILE: u64 = 1024 * 1024;
/// Data key length.
pub(crate) const KEY_LEN: usize = 32;
/// Mode of a written wrapped-keys file.
const FILE_MODE: u32 = 0o600;

/// One entry of the wrapped-keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// The data key's envelope id (8 lowercase hex digits).
    pub id: String,
    /// Base64 of the KMS ciphertext of the 32-byte data key.
    pub ciphertext_blob: String,
}

/// The wrapped-keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKeys {
    /// Id of the key that encrypts new values.
    pub active: String,
    /// Every data key in the ring, the active one included.
    pub keys: Vec<WrappedKey>,
    /// The KMS key (ARN preferred) that wrapped them.
    pub key_id: String,
    /// The KMS region.
    pub region: String,
}

/// Whether [`WrappedKeys::write`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create the file; fail with [`KmsError::KeysFileExists`] if it exists.
    CreateNew,
    /// Create or atomically replace the file (after a [`push`](WrappedKeys::push) to a file
    /// read with [`from_file`](WrappedKeys::from_file), for example).
    Replace,
}

/// A checked entry: its id and the decoded ciphertext.
#[derive(Debug, Clone)]
struct Entry {
    id: KeyId,
    blob: Vec<u8>,
}

impl WrappedKeys {
    /// Reads and checks the file at `path`.
    pub fn from_file(path: &Path) -> Result<WrappedKeys, KmsError> {
        let io = |source| KmsError::KeysFileIo {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE {
            return Err(KmsError::KeysFile(format!(
                "{} is {len} bytes; at most {MAX_FILE} accepted",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        WrappedKeys::from_json(&text)
    }

    /// A file holding one key, `entry`, which is active; `key_id` is the KMS key that wrapped
    /// it (ARN preferred: [`ProvisionedKey::kms_key`]) and `region` its region.
    pub fn new_single(
        entry: WrappedKey,
        key_id: impl Into<String>,
        region: impl Into<String>,
    ) -> Result<WrappedKeys, KmsError> {
        let keys = WrappedKeys {
            active: entry.id.clone(),
            keys: vec![entry],
            key_id: key_id.into(),
            region: region.into(),
        };
        keys.entries()?;
        Ok(keys)
    }

    /// Appends `entry` (not active; see [`set_active`](Self::set_active)). Refused, leaving
    /// the file unchanged, if the entry is invalid, its id is already listed, or the file
    /// would list more than 64 keys.
    pub fn push(&mut self, entry: WrappedKey) -> Result<(), KmsError> {
        let mut next = self.clone();
        next.keys.push(entry);
        next.entries()?;
        *self = next;
        Ok(())
    }

    /// Makes the listed key `id` the active one (the key that encrypts new values).
    pub fn set_active(&mut self, id: KeyId) -> Result<(), KmsError> {
        let mut next = self.clone();
        next.active = id.to_string();
        next.entries()?;
        *self = next;
        Ok(())
    }

    /// The JSON text of the file (pretty, with a final newline).
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a struct of strings always serialises");
        text.push('\n');
        text
    }

    /// Checks the file and writes it to `path` atomically: a temporary file in the same
    /// directory, mode 0600 from creation, synced, renamed into place (without replacing an
    /// existing file under [`WriteMode::CreateNew`]), and the directory synced.
    pub fn write(&self, path: &Path, mode: WriteMode) -> Result<(), KmsError> {
        self.entries()?;
        let failed = |action, at: &Path| {
            let path = at.to_path_buf();
            move |source| KmsError::KeysFileWrite {
                action,
                path,
                source,
            }
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if mode == WriteMode::CreateNew && path.symlink_metadata().is_ok() {
            return Err(KmsError::KeysFileExists {
                path: path.to_path_buf(),
            });
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-wrapped-keys-")
            .permissions(Permissions::from_mode(FILE_MODE))
            .tempfile_in(dir)
            .map_err(failed("create a temporary file for", path))?;
        tmp.write_all(self.to_json().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(failed("write", tmp.path()))?;
        match mode {
            WriteMode::CreateNew => tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    KmsError::KeysFileExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    failed("create", path)(e.error)
                }
            })?,
            WriteMode::Replace => tmp
                .persist(path)
                .map_err(|e| failed("replace", path)(e.error))?,
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed("sync the directory of", path))?;
        tracing::info!(
            path = %path.display(),
            keys = self.keys.len(),
            active = %self.active,
            "wrapped data keys file written"
        );
        Ok(())
    }

    /// Parses and checks the JSON text.
    pub fn from_json(text: &str) -> Result<WrappedKeys, KmsError> {
        let keys: WrappedKeys = serde_json::from_str(text)
            .map_err(|e| KmsError::KeysFile(format!("not a wrapped-keys object: {e}")))?;
        keys.entries()?;
        Ok(keys)
    }

    /// The active id and the entries, checked: canonical ids, no duplicates, the active key
    /// listed, 1..=64 entries, blobs of 1..=6144 bytes, a key id and a region.
    fn entries(&self) -> Result<(KeyId, Vec<Entry>), KmsError> {
        let bad = |m: String| KmsError::KeysFile(m);
        if self.key_id.trim().is_empty() {
            return Err(bad("key_id is empty".into()));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(format!(
                "region {:?} is not an AWS region name",
                self.region
            )));
        }
        if self.keys.is_empty() || self.keys.len() > MAX_KEYS {
            return Err(bad(format!(
                "{} keys listed; 1 to {MAX_KEYS} accepted",
                self.keys.len()
            )));
        }
        let active = canonical_id(&self.active)
            .ok_or_else(|| bad(format!("active {:?} is not a key id", self.active)))?;
        let mut entries: Vec<Entry> = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let id = canonical_id(&key.id).ok_or_else(|| {
                bad(format!(
                    "{:?} is not a key id (8 lowercase hex digits)",
                    key.id
                ))
            })?;
            if entries.iter().any(|e| e.id == id) {
                return Err(bad(format!("key {id} is listed twice")));
            }
            let blob = Base64::decode_vec(key.ciphertext_blob.trim()).map_err(|_| {
                bad(format!(
                    "ciphertext_blob of key {id} is not standard base64"
                ))
            })?;
            if blob.is_empty() || blob.len() > MAX_CIPHERTEXT_BLOB {
                return Err(bad(format!(
                    "ciphertext_blob of key {id} is {} bytes; KMS ciphertexts are 1 to \
                     {MAX_CIPHERTEXT_BLOB}",
                    blob.len()
                )));
            }
            entries.push(Entry { id, blob });
        }
        if !entries.iter().any(|e| e.id == active) {
            return Err(bad(format!(
                "the active key {active} is not listed in keys"
            )));
        }
        Ok((active, entries))
    }
}

/// Releases the data keys of a [`WrappedKeys`] file through KMS `Decrypt`, each with a fresh
/// ephemeral recipient key and attestation document.
pub struct KmsKeyProvider<C> {
    keys: WrappedKeys,
    client: KmsClient,
    attester: Arc<dyn Attester>,
    credentials: C,
}

impl<C> std::fmt::Debug for KmsKeyProvider<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyProvider")
            .field("key_id", &self.keys.key_id)
            .field("region", &self.keys.region)
            .field("active", &self.keys.active)
            .finish_non_exhaustive()
    }
}

impl<C: CredentialSource> KmsKeyProvider<C> {
    /// A provider for `keys`, asking KMS through `client` with documents from `attester` and
    /// credentials from `credentials`. Fails if the client's region is not the file's.
    pub fn new(
        keys: WrappedKeys,
        client: KmsClient,
        attester: Arc<dyn Attester>,
        credentials: C,
    ) -> Result<Self, KmsError> {
        keys.entries()?;
        if client.region() != keys.region {
            return Err(KmsError::RegionMismatch {
                client: client.region().to_owned(),
                file: keys.region.clone(),
            });
        }
        Ok(KmsKeyProvider {
            keys,
            client,
            attester,
            credentials,
        })
    }

    /// Decrypts every listed key through KMS and assembles the ring.
    pub async fn release(&self) -> Result<KeyRing, KmsError> {
        Ok(self.release_keys().await?.key_ring()?)
    }

    /// Decrypts every listed key through KMS; the result can serve as a [`KeyProvider`].
    pub async fn release_keys(&self) -> Result<ReleasedKeys, KmsError> {
        let (active, entries) = self.keys.entries()?;
        let mut released = Vec::with_capacity(entries.len());
        for entry in &entries {
            let key = self.release_one(entry).await?;
            released.push((entry.id, key));
        }
        tracing::info!(
            keys = released.len(),
            %active,
            kms_key = %self.keys.key_id,
            attester = %self.attester.describe(),
            "data keys released by KMS to this enclave's attestation"
        );
        let released = ReleasedKeys {
            active,
            keys: released,
            kms_key: self.keys.key_id.clone(),
        };
        released.key_ring()?; // duplicate check now, not at the first load
        Ok(released)
    }

    /// Generates a new data key under this file's KMS key, inside the enclave (KMS
    /// `GenerateDataKey` with a fresh recipient key and attestation document), for rotation:
    /// [`push`](WrappedKeys::push) its entry to the file, [`set_active`](WrappedKeys::set_active)
    /// it, write the file, then release the keys again.
    pub async fn provision(&self) -> Result<ProvisionedKey, KmsError> {
        provision_wrapped_key(
            &self.client,
            &self.keys.key_id,
            self.attester.as_ref(),
            &self.credentials,
        )
        .await
    }

    async fn release_one(&self, entry: &Entry) -> Result<Zeroizing<[u8; KEY_LEN]>, KmsError> {
        let recipient_key = RecipientKey::generate()?;
        let recipient = recipient_key.recipient(self.attester.as_ref())?;
        let credentials = self.credentials.credentials().await?;
        let reply = self
            .client
            .decrypt(
                &DecryptRequest {
                    ciphertext_blob: &entry.blob,
                    key_id: Some(&self.keys.key_id),
                    encryption_algorithm: Some("SYMMETRIC_DEFAULT"),
                    recipient: &recipient,
                },
                &credentials,
            )
            .await?;
        check_kms_key(&self.keys.key_id, reply.key_id.as_deref())?;
        let plaintext = recipient_key.open(&reply.ciphertext_for_recipient)?;
        let bytes: [u8; KEY_LEN] =
            plaintext
                .as_slice()
                .try_into()
                .map_err(|_| KmsError::DataKeyLength {
                    id: entry.id,
                    len: plaintext.len(),
                })?;
        let bytes = Zeroizing::new(bytes);
        let actual = DataKey::from_bytes(*bytes).id();
        if actual != entry.id {
            return Err(KmsError::KeyIdMismatch {
                expected: entry.id,
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Data keys released by KMS, held in memory (wiped on drop). As a [`KeyProvider`] it hands
/// out the same ring on every `load` (`KeyProvider::load` is synchronous; the release is not).
pub struct ReleasedKeys {
    active: KeyId,
    keys: Vec<(KeyId, Zeroizing<[u8; KEY_LEN]>)>,
    kms_key: String,
}

impl std::fmt::Debug for ReleasedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedKeys")
            .field("active", &self.active)
            .field(
                "ids",
                &self.keys.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ReleasedKeys {
    /// The active key's id.
    pub fn active_id(&self) -> KeyId {
        self.active
    }

    /// A ring of these keys.
    pub fn key_ring(&self) -> Result<KeyRing, KeyRingError> {
        let mut active = None;
        let mut previous = Vec::with_capacity(self.keys.len());
        for (id, bytes) in &self.keys {
            let key = DataKey::from_bytes(**bytes);
            if *id == self.active && active.is_none() {
                active = Some(key);
            } else {
                previous.push(key);
            }
        }
        let active = active.expect("release_keys checked that the active key is listed");
        KeyRing::new(active, previous)
    }
}

impl KeyProvider for ReleasedKeys {
    fn load(&self) -> Result<KeyRing, ProviderError> {
        Ok(self.key_ring()?)
    }

    fn describe(&self) -> String {
        format!(
            "AWS KMS attested release ({} keys under {}, active {})",
            self.keys.len(),
            self.kms_key,
            self.active
        )
    }
}

fn canonical_id(text: &str) -> Option<KeyId> {
    text.parse::<KeyId>()
        .ok()
        .filter(|id| id.to_string() == text)
}

/// Refuses a reply naming another key ARN than the one asked for (when an ARN was asked for).
pub(crate) fn check_kms_key(expected: &str, actual: Option<&str>) -> Result<(), KmsError> {
    match actual {
        Some(actual) if is_key_arn(expected) && actual != expected => Err(KmsError::WrongKmsKey {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `arn:<partition>:kms:<region>:<account>:key/<id>` (not an alias ARN).
pub(crate) fn is_key_arn(key_id: &str) -> bool {
    key_id.starts_with("arn:") && key_id.contains(":kms:") && key_id.contains(":key/")
}

#[cfg(test)]
mod tests;
