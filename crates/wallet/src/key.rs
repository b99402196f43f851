//! One wallet key: the keypair plus what can be shown about it.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64, Encoding};
use sui_crypto::ed25519::Ed25519PrivateKey;
use sui_crypto::secp256k1::Secp256k1PrivateKey;
use sui_crypto::secp256r1::Secp256r1PrivateKey;
use sui_crypto::simple::SimpleKeypair;
use sui_sdk_types::{Address, MultisigMemberPublicKey, SignatureScheme};

use crate::keystore::WalletError;

/// The signature schemes a wallet key may use. Ed25519 is the default for new keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    Secp256k1,
    Secp256r1,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::Secp256k1 => "secp256k1",
            Scheme::Secp256r1 => "secp256r1",
        }
    }

    pub fn flag(self) -> u8 {
        match self {
            Scheme::Ed25519 => 0x00,
            Scheme::Secp256k1 => 0x01,
            Scheme::Secp256r1 => 0x02,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = WalletError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ed25519" => Ok(Scheme::Ed25519),
            "secp256k1" => Ok(Scheme::Secp256k1),
            "secp256r1" => Ok(Scheme::Secp256r1),
            _ => Err(WalletError::UnknownScheme(s.chars().take(16).collect())),
        }
    }
}

/// A private key with its derived address and optional alias. `Debug` and `Display` show only
/// public information.
#[derive(Clone)]
pub struct WalletKey {
    keypair: SimpleKeypair,
    address: Address,
    scheme: Scheme,
    public_key_b64: String,
    alias: Option<String>,
}

impl WalletKey {
    pub fn from_keypair(keypair: SimpleKeypair) -> Result<Self, WalletError> {
        let scheme = match keypair.scheme() {
            SignatureScheme::Ed25519 => Scheme::Ed25519,
            SignatureScheme::Secp256k1 => Scheme::Secp256k1,
            SignatureScheme::Secp256r1 => Scheme::Secp256r1,
            _ => return Err(WalletError::UnknownScheme("other".into())),
        };
        let verifying = keypair.verifying_key();
        let mut flagged = vec![scheme.flag()];
        match verifying.public_key() {
            MultisigMemberPublicKey::Ed25519(pk) => flagged.extend_from_slice(pk.as_bytes()),
            MultisigMemberPublicKey::Secp256k1(pk) => flagged.extend_from_slice(pk.as_bytes()),
            MultisigMemberPublicKey::Secp256r1(pk) => flagged.extend_from_slice(pk.as_bytes()),
            _ => return Err(WalletError::UnknownScheme("other".into())),
        }
        Ok(WalletKey {
            address: verifying.derive_address(),
            keypair,
            scheme,
            public_key_b64: Base64::encode_string(&flagged),
            alias: None,
        })
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate(scheme: Scheme) -> Self {
        let rng = rand_core::OsRng;
        let keypair: SimpleKeypair = match scheme {
            Scheme::Ed25519 => Ed25519PrivateKey::generate(rng).into(),
            Scheme::Secp256k1 => Secp256k1PrivateKey::generate(rng).into(),
            Scheme::Secp256r1 => Secp256r1PrivateKey::generate(rng).into(),
        };
        Self::from_keypair(keypair).expect("the three simple schemes are always supported")
    }

    /// Parses a Bech32 `suiprivkey1…` string or a keystore entry (`base64(flag || key)`).
    pub fn parse_secret(s: &str) -> Result<Self, WalletError> {
        let s = s.trim();
        let keypair = if s.starts_with("suiprivkey") {
            SimpleKeypair::from_suiprivkey(s)
        } else {
            SimpleKeypair::from_base64(s)
        }
        .map_err(|_| WalletError::BadSecret)?;
        Self::from_keypair(keypair)
    }

    pub fn keypair(&self) -> &SimpleKeypair {
        &self.keypair
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `base64(flag || public key)`, the form `sui.aliases` and `sui keytool list` use.
    pub fn public_key_base64(&self) -> &str {
        &self.public_key_b64
    }

    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref()
    }

    pub(crate) fn set_alias(&mut self, alias: String) {
        self.alias = Some(alias);
    }

    /// The keystore entry for this key. Secret: callers write it to a 0600 file only.
    pub(crate) fn keystore_entry(&self) -> String {
        self.keypair.to_base64()
    }

    /// `suiprivkey1…` export. Secret: for handing the key to another tool, never for logs.
    pub fn to_suiprivkey(&self) -> Result<String, WalletError> {
        self.keypair
            .to_suiprivkey()
            .map_err(|_| WalletError::BadSecret)
    }
}

impl fmt::Debug for WalletKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletKey")
            .field("address", &self.address)
            .field("scheme", &self.scheme)
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}
