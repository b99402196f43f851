//! Seal token v1: the one bearer credential of K3s-DaaS.
//!
//! A Seal token is minted offline by a Sui wallet and names an on-chain stake record. This crate
//! defines the byte format, mints tokens, parses them within fixed bounds and checks the
//! signature and the time/audience claims. It does **no I/O**: whether the stake record exists,
//! is active and carries the token's epoch is decided by the authenticator in `nautilus-master`,
//! which reads the chain.
//!
//! "Seal" here is unrelated to Mysten Labs' Seal threshold-encryption product; the textual
//! prefix is [`PREFIX`] (`k3sdaas`) so the two cannot be confused.
//!
//! # Format (normative text in `docs/seal-token.md`)
//!
//! ```text
//! token     = prefix "." payload-b64 "." signature-b64        ; at most 4096 bytes
//! prefix    = "k3sdaas"
//! payload   = BCS(TokenPayloadV1)                              ; see [`Claims`]
//! signature = Sui serialized signature: flag || sig || pubkey  ; Ed25519, Secp256k1, Secp256r1
//! *-b64     = base64url without padding (RFC 4648 §5), canonical
//! ```
//!
//! The signature is a Sui PersonalMessage signature over the payload bytes, so any Sui wallet
//! (or `sui keytool sign-personal-message`) can produce one.

mod claims;
mod error;
mod token;

pub use claims::{Claims, ClaimsBuilder, NodeName, Role, TimeRules, unix_ms};
pub use error::{ClaimsError, MintError, ParseError, SignatureError};
pub use sui_sdk_types::Address;
pub use token::{
    MAX_TOKEN_LEN, PAYLOAD_MAGIC, PAYLOAD_VERSION, PREFIX, SealToken, Unverified, Verified,
    VerifyStage, mint,
};
