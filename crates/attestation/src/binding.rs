//! `user_data` layout v1: what a K3s-DaaS enclave binds into its attestation document.
//!
//! ```text
//! user_data = MAGIC ‖ cluster_id ‖ ca_sha256 ‖ endpoint
//! MAGIC     = "K3SDAAS" 0x01          ; 8 bytes, the last byte is the layout version
//! cluster_id = 32 bytes                ; the cluster object ID on Sui
//! ca_sha256  = 32 bytes                ; SHA-256 of the enclave CA certificate DER
//! endpoint   = 1..=256 bytes of UTF-8  ; where kubectl reaches the cluster
//! ```
//!
//! Total 73..=328 bytes, within the 512-byte `user_data` limit of the NSM and of Sui.

/// Magic and version prefix: `K3SDAAS` followed by the layout version 1.
pub const MAGIC: [u8; 8] = *b"K3SDAAS\x01";
/// Longest endpoint, in bytes.
pub const MAX_ENDPOINT: usize = 256;
const FIXED: usize = MAGIC.len() + 32 + 32;

/// The decoded v1 binding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Binding {
    /// The cluster object ID on Sui.
    #[serde(serialize_with = "hex32")]
    pub cluster_id: [u8; 32],
    /// SHA-256 of the enclave CA certificate (DER).
    #[serde(serialize_with = "hex32")]
    pub ca_sha256: [u8; 32],
    /// The cluster endpoint (1..=256 bytes of UTF-8).
    pub endpoint: String,
}

/// Why `user_data` is not a v1 binding.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingError {
    /// Shorter than the fixed part plus a one-byte endpoint.
    #[error("binding is {0} bytes; at least {min} needed", min = FIXED + 1)]
    TooShort(usize),
    /// Longer than the fixed part plus a 256-byte endpoint.
    #[error("binding is {0} bytes; at most {max} allowed", max = FIXED + MAX_ENDPOINT)]
    TooLong(usize),
    /// Does not start with `K3SDAAS\x01` (another layout, or another version).
    #[error("binding does not start with the K3SDAAS v1 magic")]
    BadMagic,
    /// The endpoint is not UTF-8.
    #[error("binding endpoint is not UTF-8")]
    EndpointNotUtf8,
}

impl Binding {
    /// The `user_data` bytes. The endpoint must be 1..=256 bytes ([`Binding::decode`] refuses
    /// anything else); use [`Binding::check_endpoint`] first for untrusted input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.endpoint.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.cluster_id);
        out.extend_from_slice(&self.ca_sha256);
        out.extend_from_slice(self.endpoint.as_bytes());
        out
    }

    /// Decode `user_data` bytes.
    pub fn decode(bytes: &[u8]) -> Result<Binding, BindingError> {
        if bytes.len() <= FIXED {
            return Err(BindingError::TooShort(bytes.len()));
        }
        if bytes.len() > FIXED + MAX_ENDPOINT {
            return Err(BindingError::TooLong(bytes.len()));
        }
        let (magic, rest) = bytes.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(BindingError::BadMagic);
        }
        let (cluster_id, rest) = rest.split_at(32);
        let (ca_sha256, endpoint) = rest.split_at(32);
        let endpoint = std::str::from_utf8(endpoint).map_err(|_| BindingError::EndpointNotUtf8)?;
        Ok(Binding {
            cluster_id: cluster_id
                .try_into()
                .map_err(|_| BindingError::TooShort(0))?,
            ca_sha256: ca_sha256
                .try_into()
                .map_err(|_| BindingError::TooShort(0))?,
            endpoint: endpoint.to_owned(),
        })
    }

    /// Whether `endpoint` fits the layout (1..=256 bytes).
    pub fn check_endpoint(endpoint: &str) -> Result<(), BindingError> {
        match endpoint.len() {
            0 => Err(BindingError::TooShort(FIXED)),
            n if n > MAX_ENDPOINT => Err(BindingError::TooLong(FIXED + n)),
            _ => Ok(()),
        }
    }
}

fn hex32<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: &str) -> Binding {
        Binding {
            cluster_id: [7; 32],
            ca_sha256: [9; 32],
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn round_trips_and_bounds() {
        for endpoint in ["a", "https://k3s.example:6443", &"x".repeat(MAX_ENDPOINT)] {
            let b = sample(endpoint);
            let bytes = b.encode();
            assert!(bytes.len() <= crate::limits::MAX_USER_DATA);
            assert_eq!(Binding::decode(&bytes), Ok(b));
        }
        assert_eq!(
            Binding::decode(&sample("").encode()),
            Err(BindingError::TooShort(72))
        );
        let long = sample(&"x".repeat(MAX_ENDPOINT + 1)).encode();
        assert_eq!(Binding::decode(&long), Err(BindingError::TooLong(329)));
        let mut v2 = sample("a").encode();
        v2[7] = 2;
        assert_eq!(Binding::decode(&v2), Err(BindingError::BadMagic));
        let mut bad = sample("ab").encode();
        bad[72] = 0xff;
        assert_eq!(Binding::decode(&bad), Err(BindingError::EndpointNotUtf8));
        assert!(Binding::check_endpoint("").is_err());
        assert!(Binding::check_endpoint("a").is_ok());
    }
}
