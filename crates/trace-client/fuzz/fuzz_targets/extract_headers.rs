//! Arbitrary bytes as HTTP headers, text-map entries, a `traceparent` value and a binary
//! carrier: extraction never panics, and what it extracts injects and extracts back to the
//! same context. See `checks::run`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run(data));
