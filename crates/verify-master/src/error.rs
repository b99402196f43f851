//! Why a master was not trusted. Every variant names the check that failed.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyMasterError {
    #[error("master endpoint {url:?}: {why}")]
    Endpoint { url: String, why: String },
    #[error("dev attestation root {path}: {why}")]
    DevRoot { path: String, why: String },
    #[error("reading the cluster from the chain: {0}")]
    Chain(#[from] daas_chain::ChainError),
    #[error(
        "cluster {cluster} has no expected enclave PCRs on chain yet; its admin must run `staker-agent admin set-pcrs` first"
    )]
    PcrsNotConfigured { cluster: String },
    #[error(
        "no enclave is registered on chain for cluster {cluster}; the operator must register the master first"
    )]
    NotRegistered { cluster: String },
    #[error("fetching the attestation from {endpoint}: {why}")]
    Fetch { endpoint: String, why: String },
    #[error("the master's answer is malformed: {0}")]
    Malformed(String),
    #[error("attestation document refused: {0}")]
    Document(#[from] daas_attestation::AttestationError),
    #[error("attestation policy refused the master: {0}")]
    Policy(#[from] daas_attestation::policy::PolicyError),
    #[error(
        "the master's CA (sha256 {served}) is not the one registered on chain (sha256 {registered}): the enclave restarted without registering again, or this is another enclave"
    )]
    CaNotRegistered { served: String, registered: String },
    #[error(
        "the attested endpoint {attested:?} differs from the one registered on chain ({registered:?})"
    )]
    EndpointNotRegistered {
        attested: String,
        registered: String,
    },
    #[error("the TLS certificate the master presented is not trusted: {why}")]
    ServedCertificate { why: String },
    #[error("request to {endpoint}: {why}")]
    Request { endpoint: String, why: String },
    #[error("the answer from {endpoint} is larger than {limit} bytes; refused")]
    TooLarge { endpoint: String, limit: usize },
}
