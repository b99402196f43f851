//! Errors of the chain client. Each says what went wrong in the user's terms.

use daas_chain_types::PackageAbort;
use sui_sdk_types::Address;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("cannot reach the Sui RPC endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Sui RPC {call} failed: {status}")]
    Rpc {
        call: &'static str,
        #[source]
        status: Box<tonic::Status>,
    },
    #[error(
        "wrong network: the endpoint's chain id is {actual}, the configuration expects {expected}"
    )]
    WrongChain { expected: String, actual: String },
    #[error("object {id} is not a {expected} of this package (it is {actual})")]
    WrongType {
        id: Address,
        expected: String,
        actual: String,
    },
    #[error("object {id} is not owned by an address ({owner})")]
    NotAddressOwned { id: Address, owner: String },
    #[error("object {0} does not exist")]
    ObjectNotFound(Address),
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error(
        "insufficient balance: {needed} MIST needed (amount plus gas budget), {available} MIST available in {coins} coin(s)"
    )]
    InsufficientBalance {
        needed: u64,
        available: u64,
        coins: usize,
    },
    #[error("transaction aborted: {0}")]
    Aborted(PackageAbort),
    #[error("transaction failed: {0}")]
    ExecutionFailed(String),
    #[error("transaction {digest} executed but was not seen in a checkpoint in time")]
    CheckpointTimeout { digest: String },
    #[error("cannot build the transaction: {0}")]
    Build(String),
    #[error("cannot sign the transaction: {0}")]
    Sign(String),
    #[error("{0}")]
    Config(String),
}

impl ChainError {
    pub(crate) fn rpc(call: &'static str, status: tonic::Status) -> ChainError {
        ChainError::Rpc {
            call,
            status: Box::new(status),
        }
    }

    pub(crate) fn decode(what: impl Into<String>, reason: impl std::fmt::Display) -> ChainError {
        ChainError::Decode {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// The endpoint could not be reached or answered `Unavailable` (retry later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            ChainError::Unreachable { .. } => true,
            ChainError::Rpc { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ),
            _ => false,
        }
    }
}
