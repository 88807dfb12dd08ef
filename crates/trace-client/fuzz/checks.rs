//! The properties the `extract_headers` fuzz target checks ([`run`]), shared with the regression test
//! `crates/trace-client/tests/fuzz_regressions.rs`, which runs every corpus file through
//! them in a normal `cargo test`.
//!
//! The input is read four ways:
//!
//! * as header lines: split on `\n`, each line split at its first `:` into a name and a
//!   value (one leading space of the value dropped); lines whose name or value is not valid
//!   in HTTP are skipped for the [`HeaderMap`], lines that are not UTF-8 for the text map;
//! * each value, and the whole input, as a `traceparent`;
//! * the whole input as a binary carrier.
#![allow(dead_code)]

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use trace_client::SpanContext;
use trace_client::propagation::{
    self, DEFAULT_EXTRACT_FORMATS, HeaderFormat, extract_binary, extract_headers, extract_text_map,
    extract_text_map_from, inject_headers, inject_text_map, to_binary, w3c,
};

/// Every header format, W3C included, in the order extraction tries them.
pub(crate) const ALL_FORMATS: [HeaderFormat; 5] = [
    HeaderFormat::Envoy,
    HeaderFormat::OpenTracing,
    HeaderFormat::Ruby,
    HeaderFormat::Veneur,
    HeaderFormat::W3c,
];

/// The input as (name, value) byte pairs, one per line.
pub(crate) fn lines(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            Some((name, value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect()
}

/// Runs every extraction on `data` and checks the properties.
pub(crate) fn run(data: &[u8]) {
    let pairs = lines(data);

    let mut headers = HeaderMap::new();
    for &(name, value) in &pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            // A map at capacity refuses more entries instead of panicking.
            if headers.try_append(name, value).is_err() {
                break;
            }
        }
    }
    check_headers(&headers);

    let text: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|&(k, v)| Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?)))
        .collect();
    let from_pairs = extract_text_map(text.iter().copied());
    let from_slice = extract_text_map_from(&text[..]);
    assert_eq!(
        from_pairs.as_ref().ok(),
        from_slice.as_ref().ok(),
        "both text-map entry points agree"
    );
    if let Ok(ctx) = from_pairs {
        check_text_map_round_trip(&ctx);
    }
    if let Ok(ctx) = extract_text_map_from(&headers) {
        check_text_map_round_trip(&ctx);
    }

    for (_, value) in &text {
        check_traceparent(value);
    }
    if let Ok(whole) = std::str::from_utf8(data) {
        check_traceparent(whole);
    }

    check_binary(data);
}

/// Header extraction in every format: a context has non-zero IDs, the multi-format
/// result is the first single-format success, and each format round trips.
fn check_headers(headers: &HeaderMap) {
    let mut first_success = None;
    for format in ALL_FORMATS {
        let Ok(ctx) = extract_headers(headers, &[format]) else {
            continue;
        };
        assert_ne!(ctx.trace_id, 0, "{format:?}");
        assert_ne!(ctx.span_id, 0, "{format:?}");
        assert_eq!(ctx.parent_id, 0, "{format:?}");
        first_success.get_or_insert((ctx.trace_id, ctx.span_id));

        let mut fresh = HeaderMap::new();
        inject_headers(&ctx, &mut fresh, format);
        let back = extract_headers(&fresh, &[format]).expect("an injected context extracts");
        assert_eq!(
            (back.trace_id, back.span_id),
            (ctx.trace_id, ctx.span_id),
            "{format:?}"
        );
        // Injecting on top of the input replaces its values: the same IDs come back.
        let mut over = headers.clone();
        inject_headers(&ctx, &mut over, format);
        let back = extract_headers(&over, &[format]).expect("an injected context extracts");
        assert_eq!(
            (back.trace_id, back.span_id),
            (ctx.trace_id, ctx.span_id),
            "{format:?}"
        );
    }
    let all = extract_headers(headers, &ALL_FORMATS)
        .ok()
        .map(|c| (c.trace_id, c.span_id));
    assert_eq!(all, first_success);
    let default = extract_headers(headers, DEFAULT_EXTRACT_FORMATS);
    if let Ok(ctx) = &default {
        assert_ne!((ctx.trace_id, ctx.span_id), (0, 0));
    }
    assert!(extract_headers(headers, &[]).is_err());
}

/// A context extracted from a text map injects into a fresh map and extracts back whole.
fn check_text_map_round_trip(ctx: &SpanContext) {
    assert_ne!(ctx.trace_id, 0);
    assert_ne!(ctx.span_id, 0);
    let mut map = BTreeMap::new();
    inject_text_map(ctx, &mut map);
    let back = extract_text_map_from(&map).expect("an injected context extracts");
    assert_eq!(&back, ctx);
}

/// A `traceparent` that parses has non-zero IDs and formats back to the same IDs.
fn check_traceparent(value: &str) {
    if let Some((trace_id, span_id)) = w3c::parse_traceparent(value) {
        assert_ne!(trace_id, 0);
        assert_ne!(span_id, 0);
        let formatted = w3c::format_traceparent(trace_id, span_id);
        assert_eq!(
            w3c::parse_traceparent(&formatted),
            Some((trace_id, span_id))
        );
    }
}

/// A binary carrier that extracts has non-zero IDs and round trips.
fn check_binary(data: &[u8]) {
    match extract_binary(data) {
        Ok(ctx) => {
            assert_ne!(ctx.trace_id, 0);
            assert_ne!(ctx.span_id, 0);
            assert_eq!(ctx.parent_id, 0);
            let back = extract_binary(&to_binary(&ctx)[..]).expect("our own carrier extracts");
            assert_eq!(back, ctx);
        }
        Err(propagation::ExtractError::MissingIds | propagation::ExtractError::Decode(_)) => {}
        Err(e) => panic!("an unexpected error: {e}"),
    }
}
