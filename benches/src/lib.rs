//! Criterion benchmarks for the ssf-rs workspace; see `benches/`.
