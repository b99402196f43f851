//! Attested key release from AWS KMS, inside the enclave.
//!
//! WIP.

mod ber;
mod cms;
pub mod sigv4;

pub use ber::BerError;
pub use cms::{CmsError, open_enveloped_data};
