//! Attested key release from AWS KMS, inside the enclave.
//!
//! What it does: KMS `Decrypt` and `GenerateDataKey` with a Nitro attestation `Recipient`
//! ([`KmsClient`]), so KMS releases or generates a data key only for an enclave whose
//! measurements its key policy names, encrypted to an ephemeral RSA-2048 key that the
//! attestation document carries ([`RecipientKey`]); parsing and opening the BER CMS
//! EnvelopedData reply ([`open_enveloped_data`]); SigV4 request signing ([`sigv4`]);
//! provisioning data keys into a wrapped-keys file ([`provision_wrapped_key`],
//! [`WrappedKeys::write`]); and releasing the etcd envelope key ring from that file
//! ([`KmsKeyProvider`], [`ReleasedKeys`] as a [`daas_envelope::KeyProvider`]).
//!
//! What it does not do: obtain credentials (a [`CredentialSource`] does; inside the enclave
//! the parent relays them), produce attestation documents (an
//! [`daas_attestation::Attester`] does), forward bytes out of the enclave (the connection goes
//! to `connect_to`, the bridge forwarder), call any KMS operation but `Decrypt` and
//! `GenerateDataKey`, or ever ask for plaintext: the parent and the network see only ciphertext. See `docs/kms.md`.

mod ber;
mod client;
mod cms;
mod credentials;
mod error;
mod provider;
mod provision;
mod recipient;
pub mod sigv4;

pub use ber::BerError;
pub use client::{
    CONTENT_TYPE, DECRYPT_TARGET, DEFAULT_CA_BUNDLE, DEFAULT_TIMEOUT, DecryptRequest,
    GENERATE_DATA_KEY_TARGET, GenerateDataKeyRequest, GeneratedDataKey, KmsClient, KmsClientConfig,
    RecipientCiphertext,
};
pub use cms::{CmsError, open_enveloped_data};
pub use credentials::{CredentialSource, CredentialsError, StaticCredentials};
pub use error::KmsError;
pub use provider::{KmsKeyProvider, ReleasedKeys, WrappedKey, WrappedKeys, WriteMode};
pub use provision::{ProvisionedKey, provision_wrapped_key};
pub use recipient::{KEY_ENCRYPTION_ALGORITHM, Recipient, RecipientError, RecipientKey, SPKI_LEN};
