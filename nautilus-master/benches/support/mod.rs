//! Code the proxy benches share (each bench is its own crate and includes this module).

pub(crate) mod http;
pub(crate) mod load;
