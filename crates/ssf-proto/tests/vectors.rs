//! The hex test vectors of the SSF specification (§1.5), encoded and decoded.

use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{Scope, SsfSample, SsfSpan, Status, wire};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn check(span: &SsfSpan, expected: &str) {
    let bytes = wire::encode_to_vec(span);
    assert_eq!(bytes, hex(expected), "encoding of {span:?}");
    assert_eq!(wire::encoded_len(span), bytes.len());
    assert_eq!(&wire::decode(&bytes[..]).unwrap(), span);
}

#[test]
fn ids_and_timestamps() {
    let span = SsfSpan {
        version: 1,
        trace_id: 1,
        id: 2,
        parent_id: 3,
        start_timestamp: 9000,
        end_timestamp: 9001,
        ..Default::default()
    };
    check(&span, "080110011802200328a84630a946");
}

#[test]
fn full_span_with_samples_and_negative_id() {
    let span = SsfSpan {
        trace_id: -1,
        id: 5,
        error: true,
        service: "svc".into(),
        metrics: vec![
            sample::count("c", 1.0)
                .with_tag("a", "b")
                .with_scope(Scope::Global),
            sample::set("s", "x"),
            sample::status("st", Status::Warning),
        ],
        tags: sample::tags([("k", "v")]),
        indicator: true,
        name: "op".into(),
        root_start_timestamp: 7,
        ..Default::default()
    };
    check(
        &span,
        "10ffffffffffffffffff0118053801420373766352171201631d0000803f3d0000803f42060a01611201625002520d08031201732a01783d0000803f520d08041202737430013d0000803f5a060a016b12017660016a026f707007",
    );
}

#[test]
fn bare_gauge_sample() {
    let g = sample::gauge("g", 2.5).with_unit("u").with_sample_rate(0.5);
    let mut bytes = Vec::new();
    wire::encode_sample(&g, &mut bytes);
    assert_eq!(bytes, hex("08011201671d000020403d0000003f4a0175"));
    assert_eq!(wire::sample_len(&g), bytes.len());
    use ssf_proto::prost::Message;
    assert_eq!(SsfSample::decode(&bytes[..]).unwrap(), g);
}

#[test]
fn large_timestamp() {
    let span = SsfSpan {
        id: 1,
        start_timestamp: 1_700_000_000_000_000_000,
        ..Default::default()
    };
    check(&span, "1801288080a8b1e39fe7cb17");
}

#[test]
fn map_entries_keep_empty_values() {
    let span = SsfSpan {
        tags: sample::tags([("e", "")]),
        ..Default::default()
    };
    check(&span, "5a050a01651200");
    let span = SsfSpan {
        metrics: vec![SsfSample::default()],
        ..Default::default()
    };
    check(&span, "5200");
}

#[test]
fn empty_input_is_default_span() {
    assert_eq!(wire::decode(&[][..]).unwrap(), SsfSpan::default());
    assert!(wire::encode_to_vec(&SsfSpan::default()).is_empty());
}

#[test]
fn tags_encode_deterministically() {
    let a = SsfSpan {
        tags: sample::tags([("z", "1"), ("a", "2"), ("m", "3")]),
        ..Default::default()
    };
    let b = SsfSpan {
        tags: sample::tags([("m", "3"), ("z", "1"), ("a", "2")]),
        ..Default::default()
    };
    assert_eq!(wire::encode_to_vec(&a), wire::encode_to_vec(&b));
}

#[test]
fn reserved_and_unknown_fields_are_skipped() {
    // Field 9 (reserved, varint 5), then id 2, then unknown field 99 (length-delimited).
    let bytes = hex("48051802 9a0602 6869".replace(' ', "").as_str());
    let span = wire::decode(&bytes[..]).unwrap();
    assert_eq!(
        span,
        SsfSpan {
            id: 2,
            ..Default::default()
        }
    );
}

#[test]
fn wrong_wire_type_is_an_error() {
    // Field 3 (id) as a length-delimited field.
    assert!(wire::decode(&hex("1a0101")[..]).is_err());
    // Truncated varint.
    assert!(wire::decode(&hex("18ff")[..]).is_err());
}

#[test]
fn last_scalar_and_last_map_key_win() {
    let bytes = hex(&"18011802 5a060a016b120131 5a060a016b120132".replace(" ", ""));
    let span = wire::decode(&bytes[..]).unwrap();
    assert_eq!(span.id, 2);
    assert_eq!(span.tags["k"], "2");
}
