//! Checking a K3s-DaaS master before trusting it, with no trust on first use.
//!
//! A client (the `kubeconfig` generator, `staker-agent verify-master` and `join`) knows only
//! the chain and the cluster id. [`verify_master`] reads the cluster's expected PCRs and its
//! registered enclave from the chain, asks the master for a fresh attestation document bound to
//! a random nonce (`GET /attestation`, [`wire`]), verifies the document under the pinned AWS
//! Nitro root (or a dev root the user configured explicitly), applies the fail-closed policy
//! (PCRs equal to the chain's, no debug enclave, fresh, our nonce, `user_data` binding this
//! cluster and the CA), requires that CA to be the one registered on chain, and requires the
//! TLS certificate the master served to chain to it. The CA it returns is then safe to pin, and
//! the K3s `K10…` CA hash workers need is derived from the same verified bytes.
//! [`post_json_pinned`] then talks to the master over TLS that trusts that CA alone.

mod anchors;
mod check;
mod error;
mod fetch;
mod pinned;
pub mod wire;

pub use anchors::trust_anchors;
pub use check::{
    DEFAULT_MAX_AGE_MS, MAX_FUTURE_SKEW_MS, MasterCheck, VerifiedMaster, k3s_ca_hash, verify_master,
};
pub use error::VerifyMasterError;
pub use fetch::{Endpoint, ServedChain, check_served_chain, fetch_attestation};
pub use pinned::{PinnedResponse, post_json_pinned};
