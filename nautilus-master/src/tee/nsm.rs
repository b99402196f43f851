//! The real attester: the Nitro Security Module at `/dev/nsm`, through AWS's
//! `aws-nitro-enclaves-nsm-api` driver (one ioctl per request).

use std::sync::Mutex;

use aws_nitro_enclaves_nsm_api::api::{ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use daas_attestation::{AttestationRequest, Attester, AttesterError, RootKind};
use serde_bytes::ByteBuf;

/// Device path the driver opens (fixed in the AWS crate).
pub const NSM_DEVICE: &str = "/dev/nsm";

/// An open NSM device. Requests are serialised (the driver is one fd).
pub struct NsmAttester {
    fd: Mutex<i32>,
}

impl std::fmt::Debug for NsmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NsmAttester")
    }
}

impl NsmAttester {
    /// Opens `/dev/nsm`; fails outside a Nitro Enclave.
    pub fn open() -> Result<Self, AttesterError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(AttesterError::Device(format!(
                "cannot open {NSM_DEVICE}: not inside a Nitro Enclave (use `--tee dev` for development)"
            )));
        }
        Ok(NsmAttester { fd: Mutex::new(fd) })
    }
}

impl Drop for NsmAttester {
    fn drop(&mut self) {
        if let Ok(fd) = self.fd.lock() {
            driver::nsm_exit(*fd);
        }
    }
}

impl Attester for NsmAttester {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttesterError> {
        let fd = self
            .fd
            .lock()
            .map_err(|_| AttesterError::Device("NSM lock poisoned".into()))?;
        let response = driver::nsm_process_request(
            *fd,
            Request::Attestation {
                user_data: request.user_data.clone().map(ByteBuf::from),
                nonce: request.nonce.clone().map(ByteBuf::from),
                public_key: request.public_key.clone().map(ByteBuf::from),
            },
        );
        match response {
            Response::Attestation { document } => Ok(document),
            Response::Error(code) => Err(AttesterError::Device(format!(
                "NSM refused the attestation request: {}",
                describe(code)
            ))),
            _ => Err(AttesterError::Device(
                "NSM answered an attestation request with another response".into(),
            )),
        }
    }

    fn describe(&self) -> String {
        format!("Nitro Security Module ({NSM_DEVICE})")
    }

    fn root_kind(&self) -> RootKind {
        RootKind::Aws
    }
}

fn describe(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Success => "success without a document",
        ErrorCode::InvalidArgument => "invalid argument",
        ErrorCode::InvalidIndex => "invalid index",
        ErrorCode::InvalidResponse => "invalid response",
        ErrorCode::ReadOnlyIndex => "read-only index",
        ErrorCode::InvalidOperation => "invalid operation",
        ErrorCode::BufferTooSmall => "buffer too small",
        ErrorCode::InputTooLarge => {
            "input too large (user_data, nonce and public_key together exceed 4 KiB)"
        }
        ErrorCode::InternalError => "internal error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs only inside a Nitro Enclave (where `/dev/nsm` exists): the real device's document
    /// verifies under the AWS root at its own time and carries our fields.
    #[test]
    fn real_nsm_documents_verify_under_the_aws_root() {
        if !std::path::Path::new(NSM_DEVICE).exists() {
            eprintln!("skipped: {NSM_DEVICE} not present (not inside a Nitro Enclave)");
            return;
        }
        let nsm = NsmAttester::open().expect("open the NSM");
        let doc = nsm
            .attest(&AttestationRequest {
                user_data: Some(b"k3s-daas nsm test".to_vec()),
                nonce: Some(vec![7; 32]),
                public_key: None,
            })
            .expect("attest");
        let parsed = daas_attestation::parse(&doc).expect("parse");
        let verified = daas_attestation::verify(
            &doc,
            &[daas_attestation::TrustAnchor::aws_nitro_root_g1()],
            parsed.timestamp_ms,
        )
        .expect("verify");
        assert_eq!(verified.document.nonce, Some(vec![7; 32]));
    }
}
