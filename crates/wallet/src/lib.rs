//! Sui wallet keys, loaded the way the Sui CLI stores them.
//!
//! - `sui.keystore`: a JSON array of strings, each `base64(flag || 32-byte private key)` with flag
//!   0x00 ed25519, 0x01 secp256k1, 0x02 secp256r1 (Bech32 `suiprivkey1…` entries are accepted too).
//! - `sui.aliases` (beside the keystore, optional): `[{"alias": "...", "public_key_base64": "base64(flag || pubkey)"}]`.
//! - A single Bech32 `suiprivkey1…` string (`sui keytool export`).
//!
//! Addresses are derived exactly as Sui does: `blake2b256(flag || public key)`.
//!
//! This crate reads and writes key files; it never prints or logs private key material, and
//! warns when a key file is readable by group or others. It does not talk to a chain.

mod key;
mod keystore;

pub use key::{Scheme, WalletKey};
pub use keystore::{Keystore, WalletError, default_keystore_path, write_keystore};
pub use sui_sdk_types::Address;
