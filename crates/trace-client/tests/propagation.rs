//! Carrier behaviour from the outside: spec vectors, round trips through every carrier, and
//! property tests that arbitrary input never panics.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use trace_client::propagation::{
    self, DEFAULT_EXTRACT_FORMATS, ExtractError, HeaderFormat, extract_binary, extract_headers,
    extract_text_map, extract_text_map_from, inject_headers, inject_text_map, to_binary,
};
use trace_client::{Span, SpanContext};

const ALL_FORMATS: [HeaderFormat; 5] = [
    HeaderFormat::Envoy,
    HeaderFormat::OpenTracing,
    HeaderFormat::Ruby,
    HeaderFormat::Veneur,
    HeaderFormat::W3c,
];

fn quiet(mut span: Span) -> Span {
    span.set_finish_on_drop(false);
    span
}

#[test]
fn text_map_vectors_from_veneur() {
    let map: HashMap<&str, &str> = [("ot-tracer-traceid", "3039"), ("ot-tracer-spanid", "10932")]
        .into_iter()
        .collect();
    let ctx = extract_text_map(&map).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (12345, 67890));

    let map: HashMap<&str, &str> = [("Trace-Id", "24680"), ("Span-Id", "13579")]
        .into_iter()
        .collect();
    let ctx = extract_text_map_from(&map).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (24680, 13579));

    let map: HashMap<&str, &str> = [("foo", "bar"), ("traceid_", "1")].into_iter().collect();
    let err = extract_text_map(&map).unwrap_err();
    assert!(matches!(err, ExtractError::MissingIds));
    assert!(
        err.to_string()
            .starts_with("error parsing fields from text map")
    );
}

#[test]
fn text_map_inject_and_round_trip() {
    let root = quiet(Span::start_trace("my-resource"));
    let span = quiet(root.child("op"));
    let mut map = HashMap::new();
    inject_text_map(&span.context(), &mut map);
    assert_eq!(map["traceid"], span.trace_id().to_string());
    assert_eq!(map["spanid"], span.span_id().to_string());
    assert_eq!(map["parentid"], root.span_id().to_string());
    assert_eq!(map["resource"], "my-resource");

    let ctx = extract_text_map(&map).unwrap();
    assert_eq!(ctx, span.context());
}

#[test]
fn binary_inject_and_round_trip() {
    let root = quiet(Span::start_trace("res"));
    let span = quiet(root.child("op"));
    let bytes = to_binary(&span.context());

    // The carrier decodes to a span with the same IDs, no metrics and no error.
    let decoded = ssf_proto::wire::decode(&bytes[..]).unwrap();
    let converted = span.to_ssf();
    assert_eq!(decoded.trace_id, converted.trace_id);
    assert_eq!(decoded.parent_id, converted.parent_id);
    assert_eq!(decoded.id, converted.id);
    assert_eq!(decoded.metrics, converted.metrics);
    assert_eq!(decoded.error, converted.error);
    assert_eq!(decoded.start_timestamp, 0);

    // A marshalled span extracts, and the round trip keeps the trace, span and resource.
    let ctx = extract_binary(&bytes[..]).unwrap();
    assert_eq!(ctx.trace_id, span.trace_id());
    assert_eq!(ctx.span_id, span.span_id());
    assert_eq!(ctx.resource, "res");
    assert_eq!(ctx.parent_id, 0);

    let mut full = span.to_ssf();
    full.tags.insert("resource".into(), "res".into());
    let ctx = extract_binary(&ssf_proto::wire::encode_to_vec(&full)[..]).unwrap();
    assert_eq!(
        (ctx.trace_id, ctx.span_id),
        (span.trace_id(), span.span_id())
    );
}

#[test]
fn http_inject_sets_the_default_group_and_round_trips() {
    let span = quiet(Span::root("op"));
    let mut headers = HeaderMap::new();
    inject_headers(&span.context(), &mut headers, HeaderFormat::default());
    for name in ["ot-tracer-traceid", "ot-tracer-spanid"] {
        assert!(!headers[name].is_empty(), "{name}");
    }
    assert_eq!(headers["Ot-Tracer-Sampled"], "true");
    assert!(headers.get("resource").is_none());
    let ctx = extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!(
        (ctx.trace_id, ctx.span_id),
        (span.trace_id(), span.span_id())
    );

    // A child of the extracted remote span links to it.
    let child = quiet(Span::child_of(&ctx, "server"));
    assert_ne!(child.span_id(), span.span_id());
    assert_eq!(child.parent_id(), span.span_id());
    assert_eq!(child.trace_id(), span.trace_id());
}

#[test]
fn envoy_full_width_ids_keep_their_bits() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "OT-TRACER-TRACEID",
        HeaderValue::from_static("ffffffffffffffff"),
    );
    headers.insert(
        "ot-tracer-spanid",
        HeaderValue::from_static("8000000000000000"),
    );
    let ctx = extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (-1, i64::MIN));
}

#[test]
fn zero_ids_are_rejected_everywhere() {
    let zero = SpanContext::new(0, 5);
    for format in ALL_FORMATS {
        let mut headers = HeaderMap::new();
        inject_headers(&zero, &mut headers, format);
        assert!(
            extract_headers(&headers, &ALL_FORMATS).is_err(),
            "{format:?}"
        );
    }
    let mut map = HashMap::new();
    inject_text_map(&zero, &mut map);
    assert!(extract_text_map(&map).is_err());
    assert!(extract_binary(&to_binary(&zero)[..]).is_err());
}

#[test]
fn carrier_error_sources() {
    use std::error::Error;
    let err = extract_binary(&b"\x0a\xff"[..]).unwrap_err();
    assert!(matches!(err, ExtractError::Decode(_)));
    assert!(err.source().is_some());
    assert_eq!(err.to_string(), "error decoding span from binary carrier");
}

fn non_zero() -> impl Strategy<Value = i64> {
    any::<i64>().prop_filter("non-zero", |id| *id != 0)
}

proptest! {
    #[test]
    fn any_non_zero_ids_survive_every_carrier(
        trace in non_zero(),
        span in non_zero(),
        parent in any::<i64>(),
        resource in "[a-zA-Z0-9 /_.-]{0,20}",
    ) {
        let ctx = SpanContext::new(trace, span).with_parent_id(parent).with_resource(resource.clone());

        for format in ALL_FORMATS {
            let mut headers = HeaderMap::new();
            inject_headers(&ctx, &mut headers, format);
            let got = extract_headers(&headers, &[format]).unwrap();
            prop_assert_eq!((got.trace_id, got.span_id), (trace, span));
            let got = extract_headers(&headers, &ALL_FORMATS).unwrap();
            prop_assert_eq!((got.trace_id, got.span_id), (trace, span));
        }

        let mut map = HashMap::new();
        inject_text_map(&ctx, &mut map);
        prop_assert_eq!(&extract_text_map(&map).unwrap(), &ctx);

        let mut headers = HeaderMap::new();
        inject_text_map(&ctx, &mut headers);
        prop_assert_eq!(&extract_text_map_from(&headers).unwrap(), &ctx);

        let got = extract_binary(&to_binary(&ctx)[..]).unwrap();
        prop_assert_eq!(got, SpanContext::new(trace, span).with_resource(resource));
    }

    #[test]
    fn arbitrary_headers_never_panic(
        pairs in proptest::collection::vec(
            (
                prop_oneof![
                    Just("ot-tracer-traceid".to_owned()),
                    Just("ot-tracer-spanid".to_owned()),
                    Just("Trace-Id".to_owned()),
                    Just("span-id".to_owned()),
                    Just("X-TRACE-ID".to_owned()),
                    Just("x-span-id".to_owned()),
                    Just("traceid".to_owned()),
                    Just("SpanId".to_owned()),
                    Just("traceparent".to_owned()),
                    Just("resource".to_owned()),
                    "[a-zA-Z0-9-]{1,20}",
                ],
                prop_oneof![
                    "[0-9a-fA-F+-]{0,20}",
                    "00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
                    proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| {
                        b.into_iter().filter(|c| *c == b'\t' || (*c >= 0x20 && *c != 0x7f)).collect::<Vec<u8>>()
                    }).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
                ],
            ),
            0..12,
        ),
        raw in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in &pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append("traceparent", value.clone());
            headers.append("ot-tracer-traceid", value);
        }

        for formats in [DEFAULT_EXTRACT_FORMATS, &ALL_FORMATS[..]] {
            if let Ok(ctx) = extract_headers(&headers, formats) {
                prop_assert!(ctx.is_valid());
            }
            // Whatever was extracted, a span can always be started from it.
            let mut span = match extract_headers(&headers, formats) {
                Ok(ctx) => Span::child_of(&ctx, "server"),
                Err(_) => Span::root("server"),
            };
            span.set_finish_on_drop(false);
            prop_assert!(span.trace_id() != 0 && span.span_id() != 0);
        }
        if let Ok(ctx) = extract_text_map_from(&headers) {
            prop_assert!(ctx.is_valid());
        }
        if let Ok(ctx) = extract_text_map(pairs.iter().map(|(k, v)| (k, v))) {
            prop_assert!(ctx.is_valid());
        }
        if let Ok(ctx) = propagation::extract_binary(&raw[..]) {
            prop_assert!(ctx.is_valid());
        }
    }
}
