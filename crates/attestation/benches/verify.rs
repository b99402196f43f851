//! Verification throughput (filled in below).
fn main() {}
