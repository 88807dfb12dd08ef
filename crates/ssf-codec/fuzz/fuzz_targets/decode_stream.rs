//! Arbitrary bytes, split into arbitrary chunks, through the stream decoder; see `checks::decode_stream`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_stream(data));
