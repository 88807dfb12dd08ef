//! Every input kept from fuzzing goes through the same checks as the fuzz targets, in a
//! normal `cargo test`: the minimized corpora under `fuzz/corpus/<target>` and, when a
//! target ever finds a crash, the minimized crash under `fuzz/regressions/<target>`.
//!
//! The checks live in `fuzz/checks.rs`, shared with the targets. How to fuzz and how to
//! add a crash here: RELIABILITY.md (section "Fuzzing").

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every kept input of `target`; returns how many corpus files there were.
fn run(target: &str, check: fn(&[u8])) -> usize {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    ssf_test_support::fuzz::run(&fuzz_dir, target, check)
}

#[test]
fn decode_stream() {
    assert!(run("decode_stream", checks::decode_stream) >= 20);
}

#[test]
fn roundtrip() {
    assert!(run("roundtrip", checks::roundtrip) >= 20);
}

#[test]
fn datagram() {
    assert!(run("datagram", checks::datagram) >= 20);
}

#[test]
fn address() {
    assert!(run("address", checks::address) >= 20);
}

/// Known inputs, good and hostile, pass the checks as the fuzz targets run them.
#[test]
fn known_good_and_hostile_inputs_pass_the_checks() {
    // A span whose canonical encoding is fine passes...
    let span = ssf_proto::SsfSpan {
        id: 1,
        trace_id: 2,
        name: "op".into(),
        ..Default::default()
    };
    let bytes = ssf_proto::wire::encode_to_vec(&span);
    checks::roundtrip(&bytes);
    checks::datagram(&bytes);
    let mut framed = vec![1u8, 0];
    framed.extend((bytes.len() as u32).to_be_bytes());
    framed.extend(&bytes);
    checks::decode_stream(&framed);
    checks::address(b"udp://127.0.0.1:8128");
    // ...and the decoder's limit holds for a length far over it.
    checks::decode_stream(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0a, 0x0a]);
    assert!(
        (checks::STREAM_MAX_FRAME as u64) < u64::from(u32::MAX),
        "the stream check decodes with a small limit"
    );
}
