//! Spans encoded by veneur's own Go code (testdata/veneur-golden): every datagram decodes,
//! after ingest normalisation, to the span veneur decoded from it; where the bytes are
//! canonical (every map has at most one entry), re-encoding gives the same bytes.

use std::path::PathBuf;

use ssf_proto::{SsfSpan, json, normalize, wire};

fn golden(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/veneur-golden")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn canonical(span: &SsfSpan) -> bool {
    span.tags.len() <= 1 && span.metrics.iter().all(|m| m.tags.len() <= 1)
}

#[test]
fn datagrams_decode_to_veneur_spans_and_reencode() {
    let expected: Vec<SsfSpan> = golden("spans.jsonl")
        .lines()
        .map(|l| json::from_str(l).expect("golden json"))
        .collect();
    let datagrams: Vec<Vec<u8>> = golden("datagrams.hex").lines().map(unhex).collect();
    assert_eq!(expected.len(), 203);
    assert_eq!(datagrams.len(), 203);
    let mut byte_checked = 0;
    for (i, (bytes, want)) in datagrams.iter().zip(&expected).enumerate() {
        let raw = wire::decode(&bytes[..]).unwrap_or_else(|e| panic!("span {i}: {e}"));
        // The one-pass encoder writes the reference encoder's bytes.
        let mut slice = vec![0u8; bytes.len() + 8];
        let n = wire::encode_to_slice(&raw, &mut slice).expect("room enough");
        assert_eq!(
            &slice[..n],
            &wire::encode_to_vec(&raw)[..],
            "span {i} one pass"
        );
        if canonical(&raw) {
            assert_eq!(&wire::encode_to_vec(&raw), bytes, "span {i} bytes");
            byte_checked += 1;
        } else {
            // Same content, possibly another map order: same length, same decode.
            let ours = wire::encode_to_vec(&raw);
            assert_eq!(ours.len(), bytes.len(), "span {i} length");
            assert_eq!(wire::decode(&ours[..]).unwrap(), raw);
        }
        let mut normalised = raw;
        normalize(&mut normalised);
        assert_eq!(&normalised, want, "span {i}");
    }
    assert!(byte_checked >= 10, "only {byte_checked} canonical spans");
}

#[test]
fn json_rendering_matches_veneur() {
    for (i, line) in golden("spans.jsonl").lines().enumerate() {
        let span = json::from_str(line).unwrap();
        let mut ours: serde_json::Value = serde_json::from_str(&json::to_string(&span)).unwrap();
        let mut theirs: serde_json::Value = serde_json::from_str(line).unwrap();
        floats_as_f64(&mut ours);
        floats_as_f64(&mut theirs);
        assert_eq!(ours, theirs, "line {i}");
    }
}

/// Go prints the float 1 as `1`, serde as `1.0`: compare the 32-bit float fields as numbers.
fn floats_as_f64(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k == "value" || k == "sample_rate" {
                    let f = v.as_f64().unwrap();
                    *v = serde_json::json!(f);
                } else {
                    floats_as_f64(v);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(floats_as_f64),
        _ => {}
    }
}
