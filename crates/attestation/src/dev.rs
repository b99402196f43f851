//! Development attestation: a local P-384 root, and documents byte-compatible with the NSM's.
//!
//! Dev documents go through exactly the same [`crate::verify`] as real ones; they verify only
//! when the dev root is configured as a [`TrustAnchor`] (kind [`RootKind::Dev`]), never under
//! the AWS root. Their `module_id` starts with `dev-`.
//!
//! The chain mirrors AWS's shapes (see docs/tee.md): root (CA, no pathLen; KU critical
//! digitalSignature+keyCertSign+cRLSign) → regional (pathLen 2) → zonal (pathLen 1) → instance
//! (pathLen 0, KU keyCertSign) → a 3-hour leaf (BasicConstraints CA=false critical; KU
//! digitalSignature+nonRepudiation, not critical). Everything is P-384 / ecdsa-with-SHA384.

use std::collections::BTreeMap;

use rand_core::{OsRng, RngCore};
use rcgen::PublicKeyData;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SerialNumber, SigningKey,
};
use sha2::{Digest, Sha384};

use crate::cbor::Writer;
use crate::policy::{ExpectedPcrs, PCR_LEN};
use crate::{
    AttestationRequest, Attester, AttesterError, RootKind, TrustAnchor, UnixMillis, cose,
    document::KEYS,
};

/// Leaf lifetime, as AWS issues them.
const LEAF_LIFETIME_SECS: i64 = 3 * 3600;
/// How long before the document time the leaf becomes valid (AWS: about 3 s).
const LEAF_BACKDATE_SECS: i64 = 3;
/// PCRs every document lists (NSM: PCR0..PCR15).
const BASE_PCRS: u8 = 16;

/// A local P-384 dev root CA (key in memory; the certificate can be exported as PEM/DER, and
/// the pair saved with [`DevRoot::key_pem`] and loaded with [`DevRoot::from_pem`] so a dev
/// chain and a dev master can share one root across restarts).
pub struct DevRoot {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    cert_pem: String,
    anchor: TrustAnchor,
}

impl std::fmt::Debug for DevRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevRoot")
            .field("fingerprint", &hex::encode(self.anchor.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl DevRoot {
    /// A fresh root, `CN=dev.nitro-enclaves`, valid 2000-01-01 to 2099-12-31 (no clock read).
    pub fn generate() -> Result<DevRoot, AttesterError> {
        let key = new_key()?;
        let mut params = ca_params("dev.nitro-enclaves", BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).map_err(signing)?;
        let anchor = TrustAnchor::from_der(cert.der().to_vec(), RootKind::Dev)
            .map_err(|e| AttesterError::Signing(format!("dev root does not parse back: {e}")))?;
        Ok(DevRoot {
            issuer: Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            anchor,
        })
    }

    /// A root saved earlier: its certificate and its private key (PKCS#8 PEM). The key must be
    /// a P-384 key and belong to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevRoot, AttesterError> {
        let config = |why: String| AttesterError::Config(format!("dev root: {why}"));
        let key = KeyPair::from_pem(key_pem).map_err(|e| config(format!("key: {e}")))?;
        if !key.is_compatible(&PKCS_ECDSA_P384_SHA384) {
            return Err(config("the key is not a P-384 key".into()));
        }
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| config(format!("certificate PEM: {e}")))?;
        let der = pem.contents;
        let anchor = TrustAnchor::from_der(der.clone(), RootKind::Dev)
            .map_err(|e| config(format!("certificate: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| config(format!("certificate: {e}")))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(config("the key does not belong to the certificate".into()));
        }
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|e| config(format!("certificate: {e}")))?;
        Ok(DevRoot {
            issuer,
            cert_der: der,
            cert_pem: cert_pem.to_owned(),
            anchor,
        })
    }

    /// The root's private key (PKCS#8 PEM), for saving it with mode 0600. A dev root's key
    /// proves nothing; it is still a key, and is never logged.
    pub fn key_pem(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// The root certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The root as a trust anchor of kind [`RootKind::Dev`].
    pub fn trust_anchor(&self) -> TrustAnchor {
        self.anchor.clone()
    }
}

/// Byte-compatible documents (untagged COSE_Sign1, same 9 keys in order, nulls, 16×48-byte
/// PCRs) signed with real ES384 by a 3-hour leaf under an intermediate chain from [`DevRoot`].
/// `module_id` starts with `"dev-"`.
pub struct DevAttester {
    root: DevRoot,
    /// regional, zonal, instance: issuers and certificates, root side first.
    intermediates: Vec<(Issuer<'static, KeyPair>, rcgen::Certificate)>,
    pcrs: BTreeMap<u8, [u8; PCR_LEN]>,
    module_id: String,
}

impl std::fmt::Debug for DevAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAttester")
            .field("module_id", &self.module_id)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl DevAttester {
    /// An attester under `root` reporting `pcrs` (indices 0..=31; PCR0..15 not given are
    /// reported as zero, as the NSM lists all 16).
    pub fn new(root: DevRoot, pcrs: BTreeMap<u8, [u8; 48]>) -> Result<DevAttester, AttesterError> {
        if let Some(i) = pcrs.keys().find(|i| **i > 31) {
            return Err(AttesterError::Config(format!("PCR index {i} is above 31")));
        }
        let mut all: BTreeMap<u8, [u8; PCR_LEN]> =
            (0..BASE_PCRS).map(|i| (i, [0u8; PCR_LEN])).collect();
        all.extend(pcrs);

        let instance = format!("{:016x}", OsRng.next_u64());
        let enclave = format!("{:016x}", OsRng.next_u64());
        let module_id = format!("dev-i-{instance}-enc{enclave}");

        let names = [
            ("regional.dev.nitro-enclaves".to_owned(), 2u8),
            ("zonal.regional.dev.nitro-enclaves".to_owned(), 1),
            (format!("i-{instance}.dev.nitro-enclaves"), 0),
        ];
        let mut intermediates: Vec<(Issuer<'static, KeyPair>, rcgen::Certificate)> = Vec::new();
        for (cn, path_len) in names {
            let key = new_key()?;
            let mut params = ca_params(&cn, BasicConstraints::Constrained(path_len));
            params.key_usages = if path_len == 0 {
                vec![KeyUsagePurpose::KeyCertSign]
            } else {
                vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                ]
            };
            let parent = intermediates.last().map_or(&root.issuer, |(i, _)| i);
            let cert = params.signed_by(&key, parent).map_err(signing)?;
            intermediates.push((Issuer::new(params, key), cert));
        }
        Ok(DevAttester {
            root,
            intermediates,
            pcrs: all,
            module_id,
        })
    }

    /// A document stamped `at` (its leaf is valid from `at − 3 s` to `at + 3 h`, like AWS's).
    pub fn attest_at(
        &self,
        request: &AttestationRequest,
        at: UnixMillis,
    ) -> Result<Vec<u8>, AttesterError> {
        request.check_sizes()?;
        let secs = i64::try_from(at / 1000)
            .map_err(|_| AttesterError::Config("time out of range".into()))?;
        let leaf_key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("{}.dev", self.module_id));
        params.is_ca = IsCa::ExplicitNoCa;
        // KeyUsage digitalSignature + nonRepudiation, not critical, as on AWS leaves
        // (rcgen marks its own KeyUsage critical): BIT STRING 03 02 06 c0.
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[2, 5, 29, 15],
                vec![0x03, 0x02, 0x06, 0xc0],
            ));
        params.not_before = datetime(secs - LEAF_BACKDATE_SECS)?;
        params.not_after = datetime(secs + LEAF_LIFETIME_SECS)?;
        params.serial_number = Some(serial());
        let instance = self
            .intermediates
            .last()
            .map(|(issuer, _)| issuer)
            .ok_or_else(|| AttesterError::Config("no intermediate".into()))?;
        let leaf = params.signed_by(&leaf_key, instance).map_err(signing)?;

        let mut cabundle: Vec<&[u8]> = vec![self.root.certificate_der()];
        cabundle.extend(self.intermediates.iter().map(|(_, c)| c.der().as_ref()));
        let payload = self.payload(request, at, leaf.der(), &cabundle);

        let signed = cose::sig_structure(&cose::PROTECTED_ES384, &payload);
        let der = leaf_key.sign(&signed).map_err(signing)?;
        let signature = p384::ecdsa::Signature::from_der(&der)
            .map_err(|_| AttesterError::Signing("signer returned a malformed signature".into()))?;
        Ok(cose::encode(&payload, &signature.to_bytes()))
    }

    /// The payload map: the nine keys in the NSM's order, `null` for absent optionals.
    fn payload(
        &self,
        request: &AttestationRequest,
        at: UnixMillis,
        leaf: &[u8],
        cabundle: &[&[u8]],
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(4096 + self.pcrs.len() * 52);
        w.map(KEYS.len());
        w.text("module_id");
        w.text(&self.module_id);
        w.text("digest");
        w.text("SHA384");
        w.text("timestamp");
        w.uint(at);
        w.text("pcrs");
        w.map(self.pcrs.len());
        for (i, v) in &self.pcrs {
            w.uint(u64::from(*i));
            w.bytes(v);
        }
        w.text("certificate");
        w.bytes(leaf);
        w.text("cabundle");
        w.array(cabundle.len());
        for c in cabundle {
            w.bytes(c);
        }
        w.text("public_key");
        w.opt_bytes(request.public_key.as_deref());
        w.text("user_data");
        w.opt_bytes(request.user_data.as_deref());
        w.text("nonce");
        w.opt_bytes(request.nonce.as_deref());
        w.into_vec()
    }

    /// PCR0/1/2 this attester reports, as a policy expects them.
    pub fn pcrs(&self) -> ExpectedPcrs {
        let get = |i: u8| self.pcrs.get(&i).map_or_else(Vec::new, |v| v.to_vec());
        ExpectedPcrs {
            pcr0: get(0),
            pcr1: get(1),
            pcr2: get(2),
        }
    }

    /// The `module_id` of this attester's documents (`dev-i-…-enc…`).
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// The dev root's trust anchor.
    pub fn trust_anchor(&self) -> TrustAnchor {
        self.root.trust_anchor()
    }

    /// The dev root.
    pub fn root(&self) -> &DevRoot {
        &self.root
    }
}

impl Attester for DevAttester {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        // The one clock read of this crate: the NSM stamps documents with its own time too.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| AttesterError::Signing("system clock before 1970".into()))?;
        let now = u64::try_from(now.as_millis())
            .map_err(|_| AttesterError::Signing("system clock out of range".into()))?;
        self.attest_at(request, now)
    }

    fn describe(&self) -> String {
        "DEV attester (not a TEE)".into()
    }

    fn root_kind(&self) -> RootKind {
        RootKind::Dev
    }
}

/// PCRs of a dev enclave image, by the Nitro extend rule
/// `extend(h) = SHA-384(48 zero bytes ‖ h)` (a fresh PCR extended once):
/// PCR0 = PCR1 = extend(SHA-384(image)) (a single-ramdisk image, as Nautilus-style builds give),
/// PCR2 = extend(SHA-384("")) (no second ramdisk). Other PCRs are absent (zero in documents).
pub fn dev_pcrs(image: &[u8]) -> BTreeMap<u8, [u8; 48]> {
    let image = extend(&Sha384::digest(image).into());
    let empty = extend(&Sha384::digest([]).into());
    BTreeMap::from([(0, image), (1, image), (2, empty)])
}

fn extend(measurement: &[u8; PCR_LEN]) -> [u8; PCR_LEN] {
    let mut h = Sha384::new();
    h.update([0u8; PCR_LEN]);
    h.update(measurement);
    h.finalize().into()
}

fn new_key() -> Result<KeyPair, AttesterError> {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(signing)
}

fn signing(e: rcgen::Error) -> AttesterError {
    AttesterError::Signing(e.to_string())
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "K3s-DaaS");
    dn.push(DnType::OrganizationalUnitName, "DEV (not a TEE)");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, constraints: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(constraints);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    params.serial_number = Some(serial());
    params
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and 16 bytes long
    SerialNumber::from_slice(&bytes)
}

fn datetime(secs: i64) -> Result<time::OffsetDateTime, AttesterError> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| AttesterError::Config("time out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_extend_is_the_known_constant() {
        // The PCR2 of single-ramdisk EIFs (MystenLabs/nautilus: UsingNautilus.md).
        assert_eq!(
            hex::encode(dev_pcrs(b"x")[&2]),
            "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
        );
    }
}
