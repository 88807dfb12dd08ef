//! Every input kept from fuzzing goes through the same checks as the fuzz targets, in a
//! normal `cargo test`: the minimized corpora under `fuzz/corpus/<target>` and, when a
//! target ever finds a crash, the minimized crash under `fuzz/regressions/<target>`.
//!
//! The checks live in `fuzz/checks.rs`, shared with the targets. How to fuzz and how to
//! add a crash here: `docs/reliability-input.md`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

/// Runs `check` on every kept input of `target`, reporting every file that fails.
/// Returns how many corpus files there were.
fn run(target: &str, check: fn(&[u8])) -> usize {
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: failing inputs {failures:#?}"
    );
    corpus.len()
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
