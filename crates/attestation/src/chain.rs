//! The certificate chain checks, in fastcrypto's `verify_cert_chain` order.
//!
//! The chain is `[leaf, cabundle[n-1], …, cabundle[0]]` (fastcrypto `verify_cert`), and
//! `cabundle[0]` must be issued by a pinned [`TrustAnchor`] (fastcrypto checks it against the
//! embedded root, never against itself). For each certificate `i`:
//! 1. KeyUsage present and unique: the leaf has digitalSignature, CAs keyCertSign
//!    (`Missing key usage extension`, `... missing ... key usage`);
//! 2. CAs: BasicConstraints present, critical, CA=true, and `i - 1 <= pathLen` when a
//!    pathLen is set; the leaf: if present, CA=false and no pathLen;
//! 3. valid at `at` in whole seconds, bounds inclusive (`ASN1Time::from_timestamp(ms / 1000)`,
//!    `Validity::is_valid_at`);
//! 4. issuer name equal to the issuer's subject name (`certificate chain issuer mismatch`);
//! 5. signature verifies with the issuer's key (`certificate fails to verify`).
//!
//! *Stricter* than fastcrypto: the signature algorithm must be ecdsa-with-SHA384 with a P-384
//! issuer key (fastcrypto lets x509-parser verify whatever algorithm the certificate names),
//! no bytes may follow a certificate's DER, and a malformed BasicConstraints on the leaf is
//! refused (fastcrypto ignores it).

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};
use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA384;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{AttestationError, CertName, Document, RootKind, TrustAnchor, UnixMillis};

/// Parse one certificate, refusing trailing bytes.
pub(crate) fn parse_cert(
    der: &[u8],
    cert: CertName,
) -> Result<X509Certificate<'_>, AttestationError> {
    let (rest, parsed) =
        X509Certificate::from_der(der).map_err(|e| AttestationError::Certificate {
            cert,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(AttestationError::Certificate {
            cert,
            reason: format!("{} trailing byte(s) after the DER", rest.len()),
        });
    }
    Ok(parsed)
}

/// The P-384 key of a certificate.
pub(crate) fn p384_key(cert: &X509Certificate<'_>) -> Option<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data).ok()
}

/// Check the chain of `doc` at `at`; returns the kind of the anchor it ends at.
pub(crate) fn verify_chain(
    doc: &Document,
    anchors: &[TrustAnchor],
    at: UnixMillis,
) -> Result<RootKind, AttestationError> {
    let n = doc.cabundle.len();
    let mut chain = Vec::with_capacity(n + 1);
    chain.push((
        CertName::Leaf,
        parse_cert(&doc.certificate, CertName::Leaf)?,
    ));
    for (i, der) in doc.cabundle.iter().enumerate().rev() {
        chain.push((CertName::Bundle(i), parse_cert(der, CertName::Bundle(i))?));
    }
    // u64 ms / 1000 always fits an i64.
    let at_secs = i64::try_from(at / 1000).unwrap_or(i64::MAX);

    for (i, (name, cert)) in chain.iter().enumerate() {
        let name = *name;
        key_usage(cert, name, i == 0)?;
        basic_constraints(cert, name, i)?;
        validity(cert, name, at_secs)?;
        if cert.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA384 {
            return Err(AttestationError::CertificateAlgorithm { cert: name });
        }
        let signature = Signature::from_der(&cert.signature_value.data).map_err(|_| {
            AttestationError::Certificate {
                cert: name,
                reason: "signature is not a DER ECDSA P-384 signature".into(),
            }
        });
        let tbs = cert.tbs_certificate.as_ref();
        match chain.get(i + 1) {
            Some((issuer_name, issuer)) => {
                if cert.issuer().as_raw() != issuer.subject().as_raw() {
                    return Err(AttestationError::IssuerMismatch {
                        cert: name,
                        issuer: *issuer_name,
                    });
                }
                let key = p384_key(issuer).ok_or_else(|| AttestationError::Certificate {
                    cert: *issuer_name,
                    reason: "key is not a P-384 public key".into(),
                })?;
                let ok = signature.as_ref().is_ok_and(|s| key.verify(tbs, s).is_ok());
                if !ok {
                    return Err(AttestationError::CertificateSignature {
                        cert: name,
                        issuer: *issuer_name,
                    });
                }
            }
            None => {
                // cabundle[0]: issued by a pinned anchor (same subject and key, usually the
                // very same certificate).
                let anchor = anchors.iter().find(|a| {
                    a.subject() == cert.issuer().as_raw()
                        && signature
                            .as_ref()
                            .is_ok_and(|s| a.key().verify(tbs, s).is_ok())
                });
                return anchor
                    .map(TrustAnchor::kind)
                    .ok_or(AttestationError::UntrustedRoot {
                        anchors: anchors.len(),
                    });
            }
        }
    }
    // The loop returns at the last certificate; the chain is never empty.
    Err(AttestationError::UntrustedRoot {
        anchors: anchors.len(),
    })
}

fn key_usage(
    cert: &X509Certificate<'_>,
    name: CertName,
    leaf: bool,
) -> Result<(), AttestationError> {
    let err = |reason| AttestationError::KeyUsage { cert: name, reason };
    let ku = match cert.key_usage() {
        Ok(Some(ku)) => ku,
        Ok(None) => return Err(err("extension missing")),
        Err(_) => return Err(err("extension malformed or repeated")),
    };
    if leaf && !ku.value.digital_signature() {
        return Err(err("leaf lacks digitalSignature"));
    }
    if !leaf && !ku.value.key_cert_sign() {
        return Err(err("CA lacks keyCertSign"));
    }
    Ok(())
}

fn basic_constraints(
    cert: &X509Certificate<'_>,
    name: CertName,
    position: usize,
) -> Result<(), AttestationError> {
    let err = |reason| AttestationError::BasicConstraints { cert: name, reason };
    let bc = cert
        .basic_constraints()
        .map_err(|_| err("extension malformed or repeated"))?;
    if position == 0 {
        return match bc {
            Some(bc) if bc.value.ca => Err(err("leaf is a CA")),
            Some(bc) if bc.value.path_len_constraint.is_some() => {
                Err(err("leaf has a pathLenConstraint"))
            }
            _ => Ok(()),
        };
    }
    let bc = bc.ok_or_else(|| err("extension missing on a CA"))?;
    if !bc.critical {
        return Err(err("not critical on a CA"));
    }
    if !bc.value.ca {
        return Err(err("CA flag not set on an issuing certificate"));
    }
    if let Some(path_len) = bc.value.path_len_constraint
        && position - 1 > path_len as usize
    {
        return Err(err("pathLenConstraint exceeded"));
    }
    Ok(())
}

fn validity(cert: &X509Certificate<'_>, name: CertName, at: i64) -> Result<(), AttestationError> {
    let v = cert.validity();
    let not_before = v.not_before.timestamp();
    let not_after = v.not_after.timestamp();
    if at < not_before {
        return Err(AttestationError::NotYetValid {
            cert: name,
            not_before,
            at,
        });
    }
    if at > not_after {
        return Err(AttestationError::Expired {
            cert: name,
            not_after,
            at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real document, decoded, for chain-only checks (its COSE signature would no longer
    /// match after these edits, so `verify` would stop earlier, as Sui does).
    fn doc() -> (Document, u64) {
        let dir = std::env::var_os("DAAS_VECTORS_DIR").map_or_else(
            || {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../../shared/vectors/nitro")
            },
            std::path::PathBuf::from,
        );
        let bytes = std::fs::read(dir.join("evervault-prod-2022-10-13.cose")).expect("vector");
        let doc = crate::parse(&bytes).expect("parse");
        let at = doc.timestamp_ms;
        (doc, at)
    }

    fn aws() -> [TrustAnchor; 1] {
        [TrustAnchor::aws_nitro_root_g1()]
    }

    #[test]
    fn real_chain_passes() {
        let (doc, at) = doc();
        assert_eq!(
            verify_chain(&doc, &aws(), at).expect("chain"),
            RootKind::Aws
        );
    }

    #[test]
    fn missing_entries_break_the_chain() {
        let (doc, at) = doc();
        for i in 1..4 {
            let mut d = doc.clone();
            d.cabundle.remove(i);
            let err = verify_chain(&d, &aws(), at).expect_err("missing intermediate");
            assert!(
                matches!(err, AttestationError::IssuerMismatch { .. }),
                "cabundle[{i}]: {err}"
            );
        }
        // Without the bundled root, the regional certificate is checked against the anchor
        // directly; it is issued by the root, so its *name* matches, but fastcrypto requires
        // cabundle[0] to be signed by the pinned root, which it is: this chain still passes,
        // exactly as in Sui.
        let mut d = doc.clone();
        d.cabundle.remove(0);
        assert_eq!(
            verify_chain(&d, &aws(), at).expect("root omitted"),
            RootKind::Aws
        );
    }

    #[test]
    fn reordered_entries_break_the_chain() {
        let (doc, at) = doc();
        for (a, b) in [(1, 2), (2, 3), (1, 3), (0, 1)] {
            let mut d = doc.clone();
            d.cabundle.swap(a, b);
            assert!(verify_chain(&d, &aws(), at).is_err(), "swap {a} {b}");
        }
        let mut d = doc.clone();
        d.cabundle.reverse();
        assert!(verify_chain(&d, &aws(), at).is_err());
    }

    #[test]
    fn leaf_in_the_bundle_is_refused() {
        let (doc, at) = doc();
        let mut d = doc.clone();
        d.cabundle.push(doc.certificate.clone());
        let err = verify_chain(&d, &aws(), at).expect_err("leaf as CA");
        assert!(
            matches!(
                err,
                AttestationError::IssuerMismatch {
                    cert: CertName::Leaf,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn corrupt_certificates_are_named() {
        let (doc, at) = doc();
        let mut d = doc.clone();
        d.cabundle[2][10] ^= 0xff;
        let err = verify_chain(&d, &aws(), at).expect_err("corrupt");
        assert!(
            matches!(
                err,
                AttestationError::Certificate {
                    cert: CertName::Bundle(2),
                    ..
                } | AttestationError::CertificateSignature { .. }
                    | AttestationError::IssuerMismatch { .. }
            ),
            "{err}"
        );
        // A flipped bit in the leaf's signature.
        let mut d = doc.clone();
        let n = d.certificate.len();
        d.certificate[n - 5] ^= 1;
        let err = verify_chain(&d, &aws(), at).expect_err("leaf signature");
        assert!(
            matches!(
                err,
                AttestationError::CertificateSignature {
                    cert: CertName::Leaf,
                    ..
                }
            ),
            "{err}"
        );
        // Trailing bytes after a certificate.
        let mut d = doc;
        d.cabundle[1].push(0);
        let err = verify_chain(&d, &aws(), at).expect_err("trailing");
        assert!(matches!(
            err,
            AttestationError::Certificate {
                cert: CertName::Bundle(1),
                ..
            }
        ));
    }
}
