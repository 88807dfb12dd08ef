//! Benchmarks of the client (written next).
fn main() {}
