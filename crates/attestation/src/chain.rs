//! The certificate chain checks.
