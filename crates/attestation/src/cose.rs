//! The COSE_Sign1 envelope.
