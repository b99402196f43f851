//! [`verify`]: parse, COSE signature, chain and PCR shape, in Sui's order.

use p384::ecdsa::Signature;
use p384::ecdsa::signature::Verifier;

use crate::chain::{p384_key, parse_cert, verify_chain};
use crate::{AttestationError, CertName, Document, RootKind, TrustAnchor, UnixMillis, cose};

/// PCRs Sui returns to Move and requires (abort 3 when it cannot).
const REQUIRED_PCRS: [u8; 6] = [0, 1, 2, 3, 4, 8];

/// A document that passed [`verify`], and the kind of root it chained to.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The decoded payload.
    pub document: Document,
    /// The kind of the trust anchor that issued `cabundle[0]`.
    pub root: RootKind,
}

/// Full verification at time `at`: parse, chain to one of `anchors`, validity of every
/// certificate at `at`, KU/BC, COSE ES384 signature. Mirrors Sui's `load_nitro_attestation`.
///
/// Order as in Sui: parse (abort 1), then fastcrypto's `verify_nitro_attestation` (abort 2):
/// the signature as a P-384 (r, s) pair, the leaf's P-384 key, the ES384 signature over the
/// Sig_structure (high-S accepted, as p384 and fastcrypto do), then the chain (see the `chain`
/// module); finally the PCRs Sui hands to Move (0, 1, 2, 3, 4, 8) must be present (abort 3).
///
/// A document accepted here is accepted by Sui at the same time with the same root; this
/// function is stricter in a few places listed in docs/tee.md.
pub fn verify(
    bytes: &[u8],
    anchors: &[TrustAnchor],
    at: UnixMillis,
) -> Result<Verified, AttestationError> {
    let envelope = cose::parse(bytes)?;
    let document = crate::document::parse_payload(envelope.payload)?;

    let signature = Signature::from_slice(envelope.signature)
        .map_err(|_| AttestationError::SignatureEncoding)?;
    let leaf = parse_cert(&document.certificate, CertName::Leaf)?;
    let key = p384_key(&leaf).ok_or(AttestationError::LeafKey)?;
    let signed = cose::sig_structure(envelope.protected, envelope.payload);
    key.verify(&signed, &signature)
        .map_err(|_| AttestationError::BadSignature)?;

    let root = verify_chain(&document, anchors, at)?;

    if let Some(missing) = REQUIRED_PCRS.iter().find(|i| document.pcr(**i).is_none()) {
        return Err(AttestationError::MissingPcr(*missing));
    }
    Ok(Verified { document, root })
}
