//! Where AWS credentials come from. Inside the enclave there is no instance metadata service:
//! the parent relays its instance role's temporary credentials (wired by the caller).

use std::future::Future;

use crate::sigv4::Credentials;

/// Why credentials are unavailable. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[error("AWS credentials unavailable from {source_name}: {reason}")]
pub struct CredentialsError {
    /// The source, as [`CredentialSource::describe`] names it.
    pub source_name: String,
    /// What went wrong.
    pub reason: String,
}

/// A source of AWS credentials, asked once per KMS request (temporary credentials rotate).
pub trait CredentialSource: Send + Sync {
    /// Current credentials.
    fn credentials(&self) -> impl Future<Output = Result<Credentials, CredentialsError>> + Send;

    /// For logs: where the credentials come from. Never a secret.
    fn describe(&self) -> String;
}

/// Fixed credentials (tests, or a caller that refreshes by building a new provider).
#[derive(Debug, Clone)]
pub struct StaticCredentials(Credentials);

impl StaticCredentials {
    /// Always answers `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        StaticCredentials(credentials)
    }
}

impl CredentialSource for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.0.clone())
    }

    fn describe(&self) -> String {
        format!("static credentials ({})", self.0.access_key_id())
    }
}
