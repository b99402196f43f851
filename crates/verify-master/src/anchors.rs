//! Which roots a client trusts: the AWS Nitro Enclaves root G1 always, a dev root only when
//! the user names one.

use std::path::Path;

use daas_attestation::{RootKind, TrustAnchor};

use crate::error::VerifyMasterError;

/// The AWS root, plus the dev root in `dev_root` (PEM) when given. Callers must tell the user
/// loudly when a dev root is trusted: a dev master runs in no enclave and proves nothing.
pub fn trust_anchors(dev_root: Option<&Path>) -> Result<Vec<TrustAnchor>, VerifyMasterError> {
    let mut anchors = vec![TrustAnchor::aws_nitro_root_g1()];
    if let Some(path) = dev_root {
        let bad = |why: String| VerifyMasterError::DevRoot {
            path: path.display().to_string(),
            why,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        anchors.push(TrustAnchor::from_pem(&pem, RootKind::Dev).map_err(|e| bad(e.to_string()))?);
    }
    Ok(anchors)
}
