//! The text format of every golden span (testdata/veneur-golden/stream.bin) is what
//! protobuf's own Python printer wrote for it (testdata/text-format/spans.jsonl, made by
//! scripts/text-format-vectors.py), byte for byte.

use std::path::PathBuf;

use ssf_proto::wire;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

#[test]
fn golden_spans_print_as_protobuf_prints_them() {
    let stream = std::fs::read(testdata("veneur-golden/stream.bin")).expect("stream.bin");
    let expected: Vec<String> = std::fs::read_to_string(testdata("text-format/spans.jsonl"))
        .expect("spans.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a json string"))
        .collect();
    assert_eq!(expected.len(), 203);
    let mut rest = &stream[..];
    let mut n = 0;
    while !rest.is_empty() {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let span = wire::decode(&rest[5..5 + len]).unwrap_or_else(|e| panic!("span {n}: {e}"));
        assert_eq!(span.to_string(), expected[n], "span {n}: {span:?}");
        rest = &rest[5 + len..];
        n += 1;
    }
    assert_eq!(n, expected.len());
}
