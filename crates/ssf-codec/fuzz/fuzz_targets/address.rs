//! Address parsing never panics and round trips; see `checks::address`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::address(data));
