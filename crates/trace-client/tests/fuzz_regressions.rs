//! Every input kept from fuzzing the propagation parsers goes through the same checks as
//! the `extract_headers` fuzz target, in a normal `cargo test`: the minimized corpus under
//! `fuzz/corpus/extract_headers` and, when the target ever finds a crash, the minimized
//! crash under `fuzz/regressions/extract_headers`.
//!
//! The checks live in `fuzz/checks.rs`, shared with the target. How to fuzz and how to add
//! a crash here: RELIABILITY.md (section "Fuzzing").

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn extract_headers_corpus_and_regressions() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = ssf_test_support::fuzz::run(&fuzz_dir, "extract_headers", checks::run);
    assert!(corpus >= 20, "the corpus is missing");
}

#[test]
fn header_lines_are_read_as_the_fuzz_target_reads_them() {
    let pairs = checks::lines(b"Traceid: 1\r\nspanid:2\nno colon\n:empty name\nk: v: w");
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                std::str::from_utf8(k).unwrap(),
                std::str::from_utf8(v).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("Traceid", "1"),
            ("spanid", "2"),
            ("", "empty name"),
            ("k", "v: w")
        ]
    );
    // Every format's injected headers, one per line, pass the checks.
    for format in checks::ALL_FORMATS {
        let mut headers = http::HeaderMap::new();
        let ctx = trace_client::SpanContext::new(-5, i64::MAX);
        trace_client::propagation::inject_headers(&ctx, &mut headers, format);
        let mut text = Vec::new();
        for (name, value) in &headers {
            text.extend(name.as_str().as_bytes());
            text.extend(b": ");
            text.extend(value.as_bytes());
            text.push(b'\n');
        }
        checks::run(&text);
    }
}

#[test]
fn baggage_corpus_and_regressions() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = ssf_test_support::fuzz::run(&fuzz_dir, "baggage", checks::run_baggage);
    assert!(corpus >= 10, "the corpus is missing");
}

#[test]
fn trace_context_corpus_and_regressions() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = ssf_test_support::fuzz::run(&fuzz_dir, "trace_context", checks::run_trace_context);
    assert!(corpus >= 10, "the corpus is missing");
}
