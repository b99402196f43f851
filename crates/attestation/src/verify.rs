//! [`verify`]: parse, chain, validity, KU/BC and the COSE signature, in Sui's order.

use crate::{AttestationError, Document, RootKind, TrustAnchor, UnixMillis};

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
pub fn verify(
    bytes: &[u8],
    anchors: &[TrustAnchor],
    at: UnixMillis,
) -> Result<Verified, AttestationError> {
    let _ = (bytes, anchors, at);
    Err(AttestationError::Unimplemented("verify"))
}
