//! Errors of the devnet library. None of them carries key material.

use std::path::PathBuf;

/// Everything that can go wrong outside request handling (requests answer with a gRPC status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a devnet chain snapshot ({reason})")]
    Snapshot { path: PathBuf, reason: String },
    #[error("{path} is not a valid genesis file")]
    GenesisFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: bad checkpoint log record at byte {offset}: {reason}")]
    LogCorrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("a checkpoint log record of {0} bytes exceeds the record limit")]
    RecordTooLarge(usize),
    #[error("transaction rejected ({code:?}): {message}")]
    Rejected { code: tonic::Code, message: String },
    #[error("invalid genesis: {0}")]
    Genesis(String),
    #[error("{0} already holds a devnet chain (chain.bcs); use another --data-dir or start it")]
    AlreadyInitialised(PathBuf),
    #[error("{0} holds no devnet chain; run `k3s-daas-devnet init` first")]
    NotInitialised(PathBuf),
    #[error("{path} is not a valid client.json")]
    ClientConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Wallet(#[from] daas_wallet::WalletError),
    #[error("BCS encoding failed")]
    Bcs(#[from] bcs::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("RPC to {rpc} failed: {status}")]
    Rpc {
        rpc: String,
        status: Box<tonic::Status>,
    },
    #[error("faucet: {0}")]
    Faucet(String),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("the dev attestation root must be a DEV root (RootKind::Dev), not {0:?}")]
    NotADevRoot(daas_attestation::RootKind),
    #[error("{path} is not a PEM certificate usable as the dev attestation root")]
    DevRoot {
        path: PathBuf,
        #[source]
        source: daas_attestation::AttestationError,
    },
}
