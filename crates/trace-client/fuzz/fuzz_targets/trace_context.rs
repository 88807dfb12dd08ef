//! `traceparent` and `tracestate`, kept without loss: see `checks::run_trace_context`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run_trace_context(data));
