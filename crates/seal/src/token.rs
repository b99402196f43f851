//! Textual form, BCS payload, minting and signature verification.

use std::borrow::Cow;
use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use sui_crypto::SuiSigner;
use sui_crypto::SuiVerifier;
use sui_crypto::simple::{SimpleKeypair, SimpleVerifier};
use sui_sdk_types::{Address, PersonalMessage, SignatureScheme, SimpleSignature, UserSignature};

use crate::claims::{Claims, NodeName, PayloadV1, Role, TimeRules};
use crate::error::{ClaimsError, MintError, ParseError, SignatureError};

/// Textual prefix. Deliberately not "seal": Mysten's Seal is an unrelated product.
pub const PREFIX: &str = "k3sdaas";
/// First bytes of every payload: a domain tag so a signature over a token payload cannot be
/// mistaken for a signature over anything else a wallet signs.
pub const PAYLOAD_MAGIC: [u8; 7] = *b"k3sdaas";
/// The payload format this crate reads and writes.
pub const PAYLOAD_VERSION: u8 = 1;
/// Upper bound on the textual token, checked before any decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A minted token: the text to send plus the claims it carries.
#[derive(Clone, PartialEq, Eq)]
pub struct SealToken {
    text: String,
    claims: Claims,
}

impl SealToken {
    /// Parses a token within fixed bounds. Nothing is verified yet.
    pub fn parse(text: &str) -> Result<Unverified, ParseError> {
        Unverified::parse(text)
    }

    /// The bearer credential. Treat as a secret: do not log it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Debug for SealToken {
    /// Never prints the credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Signs `claims` with `keypair` as a Sui PersonalMessage.
///
/// Refuses claims whose `signer` is not the keypair's address: a token is always minted by the
/// wallet it names.
pub fn mint(keypair: &SimpleKeypair, claims: Claims) -> Result<SealToken, MintError> {
    claims.validate_shape()?;
    if keypair.verifying_key().derive_address() != claims.signer {
        return Err(MintError::SignerMismatch);
    }
    let payload = encode_payload(&claims).map_err(MintError::Encode)?;
    let signature = keypair
        .sign_personal_message(&PersonalMessage(Cow::Borrowed(&payload)))
        .map_err(MintError::Sign)?;
    let signature = normalize_low_s(signature);
    let text = format!(
        "{PREFIX}.{}.{}",
        Base64UrlUnpadded::encode_string(&payload),
        Base64UrlUnpadded::encode_string(&signature.to_bytes())
    );
    Ok(SealToken { text, claims })
}

/// The BCS payload bytes for `claims` (exposed for cross-checks and docs).
pub(crate) fn encode_payload(claims: &Claims) -> Result<Vec<u8>, bcs::Error> {
    bcs::to_bytes(&PayloadV1 {
        magic: PAYLOAD_MAGIC,
        version: PAYLOAD_VERSION,
        cluster: claims.cluster,
        signer: claims.signer,
        stake: claims.stake,
        role: claims.role.code(),
        node_name: claims.node_name.as_ref().map(|n| n.as_str().to_owned()),
        issued_at_ms: claims.issued_at_ms,
        expires_at_ms: claims.expires_at_ms,
        token_epoch: claims.token_epoch,
        nonce: claims.nonce,
    })
}

/// A token that parsed but whose signature and claims have not been checked.
#[derive(Clone)]
pub struct Unverified {
    payload: Vec<u8>,
    signature: SimpleSignature,
    claims: Claims,
}

impl fmt::Debug for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("claims", &self.claims)
            .field("scheme", &self.scheme_name())
            .finish_non_exhaustive()
    }
}

impl Unverified {
    fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(ParseError::TooLong {
                len: text.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let mut parts = text.split('.');
        let prefix = parts.next().unwrap_or_default();
        if prefix != PREFIX {
            return Err(ParseError::WrongPrefix);
        }
        let (Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::WrongSegmentCount);
        };
        let payload = Base64UrlUnpadded::decode_vec(payload_b64)
            .map_err(|_| ParseError::BadBase64 { segment: "payload" })?;
        let signature_bytes =
            Base64UrlUnpadded::decode_vec(signature_b64).map_err(|_| ParseError::BadBase64 {
                segment: "signature",
            })?;

        let claims = decode_payload(&payload)?;
        let signature = decode_signature(&signature_bytes)?;
        Ok(Unverified {
            payload,
            signature,
            claims,
        })
    }

    /// The claims as the token states them, not yet trustworthy.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The exact signed payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn scheme_name(&self) -> &'static str {
        scheme_name(self.signature.scheme())
    }

    /// The address of the key that produced the signature (whether or not it verifies).
    pub fn signature_address(&self) -> Address {
        self.signature.derive_address()
    }

    /// Whether the key the signature carries hashes to the payload's `signer` (one BLAKE2b,
    /// no curve arithmetic). A token failing this can never verify, whatever its signature.
    pub fn check_signer(&self) -> Result<(), SignatureError> {
        if self.signature.derive_address() != self.claims.signer {
            return Err(SignatureError::SignerMismatch);
        }
        Ok(())
    }

    /// Checks that the signing key's address is the payload's `signer` (first: it is cheap),
    /// then the signature over the payload.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.check_signer()?;
        if is_high_s_r1(&self.signature)? {
            return Err(SignatureError::NonCanonical);
        }
        let message = PersonalMessage(Cow::Borrowed(&self.payload));
        let signature = UserSignature::Simple(self.signature.clone());
        SimpleVerifier
            .verify_personal_message(&message, &signature)
            .map_err(|_| SignatureError::BadSignature)?;
        Ok(())
    }

    /// Applies audience and time rules; see [`Claims::check`].
    pub fn check_claims(
        &self,
        now_ms: u64,
        audience: &Address,
        rules: &TimeRules,
    ) -> Result<(), ClaimsError> {
        self.claims.check(now_ms, audience, rules)
    }

    /// Signature and claims in one call, in the order the authenticator uses (cheap claim checks
    /// first, so expired or foreign tokens cost no signature verification).
    pub fn verify(
        self,
        now_ms: u64,
        audience: &Address,
        rules: &TimeRules,
    ) -> Result<Verified, VerifyStage> {
        self.check_claims(now_ms, audience, rules)
            .map_err(VerifyStage::Claims)?;
        self.verify_signature().map_err(VerifyStage::Signature)?;
        Ok(Verified {
            claims: self.claims,
        })
    }
}

/// Which offline check failed in [`Unverified::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyStage {
    #[error(transparent)]
    Claims(ClaimsError),
    #[error(transparent)]
    Signature(SignatureError),
}

/// Claims whose signature and time/audience rules have been checked; the on-chain state has not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    claims: Claims,
}

impl Verified {
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

fn decode_payload(payload: &[u8]) -> Result<Claims, ParseError> {
    if payload.len() < PAYLOAD_MAGIC.len() + 1 || payload[..PAYLOAD_MAGIC.len()] != PAYLOAD_MAGIC {
        return Err(ParseError::BadMagic);
    }
    let version = payload[PAYLOAD_MAGIC.len()];
    if version != PAYLOAD_VERSION {
        return Err(ParseError::UnsupportedVersion(version));
    }
    // `bcs::from_bytes` rejects trailing bytes, non-canonical ULEB128 and bad Option tags, so
    // exactly one byte string maps to each claims value.
    let raw: PayloadV1 = bcs::from_bytes(payload).map_err(|_| ParseError::MalformedPayload)?;
    let role = Role::from_code(raw.role).ok_or(ParseError::UnknownRole(raw.role))?;
    let node_name = raw
        .node_name
        .map(NodeName::new)
        .transpose()
        .map_err(|_| ParseError::InvalidNodeName)?;
    Ok(Claims {
        cluster: raw.cluster,
        signer: raw.signer,
        stake: raw.stake,
        role,
        node_name,
        issued_at_ms: raw.issued_at_ms,
        expires_at_ms: raw.expires_at_ms,
        token_epoch: raw.token_epoch,
        nonce: raw.nonce,
    })
}

fn decode_signature(bytes: &[u8]) -> Result<SimpleSignature, ParseError> {
    let scheme = bytes
        .first()
        .map(|flag| SignatureScheme::from_byte(*flag))
        .ok_or(ParseError::MalformedSignature)?
        .map_err(|_| ParseError::MalformedSignature)?;
    match scheme {
        SignatureScheme::Ed25519 | SignatureScheme::Secp256k1 | SignatureScheme::Secp256r1 => {}
        other => return Err(ParseError::UnsupportedScheme(scheme_name(other))),
    }
    match UserSignature::from_bytes(bytes) {
        Ok(UserSignature::Simple(simple)) => Ok(simple),
        _ => Err(ParseError::MalformedSignature),
    }
}

/// Sui accepts ECDSA signatures only with `s <= n/2` (fastcrypto rejects high s; k256 already
/// signs and verifies that way). `p256` 0.13 neither normalises when signing nor rejects high s,
/// so r1 signatures are normalised here, and high-s r1 signatures are refused on verify: one
/// token, one spelling.
fn normalize_low_s(signature: UserSignature) -> UserSignature {
    let UserSignature::Simple(SimpleSignature::Secp256r1 {
        signature: sig,
        public_key,
    }) = &signature
    else {
        return signature;
    };
    match p256::ecdsa::Signature::from_slice(sig.inner()).map(|s| s.normalize_s()) {
        Ok(Some(low)) => UserSignature::Simple(SimpleSignature::Secp256r1 {
            signature: sui_sdk_types::Secp256r1Signature::new(low.to_bytes().into()),
            public_key: *public_key,
        }),
        _ => signature,
    }
}

/// `Ok(true)` for a high-s secp256r1 signature; `Err` when r or s is out of range (not a
/// signature at all).
fn is_high_s_r1(signature: &SimpleSignature) -> Result<bool, SignatureError> {
    match signature {
        SimpleSignature::Secp256r1 { signature, .. } => {
            p256::ecdsa::Signature::from_slice(signature.inner())
                .map(|s| s.normalize_s().is_some())
                .map_err(|_| SignatureError::BadSignature)
        }
        _ => Ok(false),
    }
}

fn scheme_name(scheme: SignatureScheme) -> &'static str {
    match scheme {
        SignatureScheme::Ed25519 => "ed25519",
        SignatureScheme::Secp256k1 => "secp256k1",
        SignatureScheme::Secp256r1 => "secp256r1",
        SignatureScheme::Multisig => "multisig",
        SignatureScheme::Bls12381 => "bls12381",
        SignatureScheme::ZkLogin => "zklogin",
        SignatureScheme::Passkey => "passkey",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests;
