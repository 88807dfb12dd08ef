//! The W3C `baggage` header and `ot-baggage-*` items: see `checks::run_baggage`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run_baggage(data));
