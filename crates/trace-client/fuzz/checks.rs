//! The properties the fuzz targets check, shared with the regression test
//! `crates/trace-client/tests/fuzz_regressions.rs`, which runs every corpus file through
//! them in a normal `cargo test`: [`run`] for `extract_headers`, [`run_baggage`] for
//! `baggage` (the W3C `baggage` header and `ot-baggage-*` items) and
//! [`run_trace_context`] for `trace_context` (`traceparent` and `tracestate`, kept
//! without loss).
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
use trace_client::propagation::{
    self, DEFAULT_EXTRACT_FORMATS, HeaderFormat, baggage, extract_baggage, extract_binary,
    extract_headers, extract_headers_checked, extract_text_map, extract_text_map_from,
    inject_headers, inject_text_map, to_binary, w3c,
};
use trace_client::{Baggage, SpanContext};

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

/// The header lines of `pairs` that are valid in HTTP, as a [`HeaderMap`].
fn header_map(pairs: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for &(name, value) in pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            // A map at capacity refuses more entries instead of panicking.
            if headers.try_append(name, value).is_err() {
                break;
            }
        }
    }
    headers
}

/// Runs every extraction on `data` and checks the properties.
pub(crate) fn run(data: &[u8]) {
    let pairs = lines(data);
    let headers = header_map(&pairs);
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

/// Baggage within its limits, whatever the input.
fn check_bounds(b: &Baggage) {
    assert!(b.len() <= trace_client::baggage::MAX_ITEMS);
    assert!(b.byte_len() <= trace_client::baggage::MAX_BYTES);
    assert!(b.iter().all(|(k, _)| trace_client::baggage::is_key(k)));
}

/// The `baggage` target: header lines through [`extract_baggage`] and the whole input
/// (and each value) through [`baggage::parse_baggage`]. No panic; what is accepted is
/// within the limits, refusals change nothing, and accepted baggage writes and reads
/// back the same (W3C) or with its keys in lower case (`ot-baggage-*`).
pub(crate) fn run_baggage(data: &[u8]) {
    let pairs = lines(data);
    let headers = header_map(&pairs);
    let found = extract_headers_checked(&headers, &ALL_FORMATS);
    match (&found.baggage, &found.context) {
        (Ok(b), Ok(ctx)) => assert_eq!(&ctx.baggage, b),
        (Err(_), Ok(ctx)) => assert!(ctx.baggage.is_empty()),
        (_, Err(_)) => {}
    }
    assert_eq!(extract_baggage(&headers).ok(), found.baggage.clone().ok());
    if let Ok(b) = &found.baggage {
        check_bounds(b);
        check_baggage_round_trip(b);
    }
    for (_, value) in &pairs {
        if let Ok(value) = std::str::from_utf8(value) {
            check_parse_baggage(value);
        }
    }
    if let Ok(whole) = std::str::from_utf8(data) {
        check_parse_baggage(whole);
    }
}

fn check_parse_baggage(value: &str) {
    let mut seed = Baggage::new();
    seed.set("seed", "1").expect("a valid item");
    let before = seed.clone();
    match baggage::parse_baggage(value, &mut seed) {
        Ok(()) => {
            check_bounds(&seed);
            check_baggage_round_trip(&seed);
        }
        Err(_) => assert_eq!(seed, before, "a refused header changes nothing"),
    }
}

fn check_baggage_round_trip(b: &Baggage) {
    let ctx = SpanContext::new(1, 2).with_baggage(b.clone());
    let mut w3c_headers = HeaderMap::new();
    inject_headers(&ctx, &mut w3c_headers, HeaderFormat::W3c);
    let back = extract_baggage(&w3c_headers).expect("our own header reads back");
    let written = baggage::format_baggage(b);
    let items = if written.is_empty() {
        0
    } else {
        written.split(',').count()
    };
    if items == b.len() {
        assert_eq!(&back, b, "every item fits: the same baggage comes back");
    } else {
        // Items left out for length: what came back is the rest, unchanged and in order.
        let mut all = b.iter();
        for item in back.iter() {
            assert!(all.any(|i| i == item), "{item:?} came back unchanged");
        }
    }
    let mut ot = HeaderMap::new();
    inject_headers(&ctx, &mut ot, HeaderFormat::Envoy);
    if let Ok(back) = extract_baggage(&ot) {
        assert!(back.len() <= b.len());
        for (k, v) in back.iter() {
            // Header names are case-insensitive: keys that differ only in case share one
            // header, and the last one written wins.
            let original = b.iter().filter(|(ok, _)| ok.eq_ignore_ascii_case(k)).last();
            assert_eq!(original.map(|(_, ov)| ov), Some(v), "{k}");
        }
    }
}

/// The `trace_context` target: header lines with `traceparent`/`tracestate` among them
/// through W3C extraction, and each value and the whole input through the parsers. No
/// panic; a context continues the same 128-bit trace, flags and `tracestate` when
/// injected again, and a `tracestate` is passed on only when valid and bounded.
pub(crate) fn run_trace_context(data: &[u8]) {
    let pairs = lines(data);
    let headers = header_map(&pairs);
    for formats in [&[HeaderFormat::W3c][..], &ALL_FORMATS[..]] {
        let Ok(ctx) = extract_headers(&headers, formats) else {
            continue;
        };
        assert!(ctx.trace_id != 0 && ctx.span_id != 0);
        if let Some(w) = &ctx.w3c {
            assert!(w.tracestate.len() <= w3c::MAX_TRACESTATE_LEN);
            assert!(w.tracestate.is_empty() || w3c::is_valid_tracestate(&w.tracestate));
            let mut out = HeaderMap::new();
            inject_headers(&ctx, &mut out, HeaderFormat::W3c);
            let again = extract_headers(&out, &[HeaderFormat::W3c]).expect("our own traceparent");
            assert_eq!(again.w3c.as_ref(), Some(w));
            assert_eq!((again.trace_id, again.span_id), (ctx.trace_id, ctx.span_id));
            assert_eq!(again.sampled, ctx.sampled);
        }
    }
    let mut values: Vec<&str> = pairs
        .iter()
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect();
    if let Ok(whole) = std::str::from_utf8(data) {
        values.push(whole);
    }
    for value in values {
        if let Some(t) = w3c::parse_traceparent_full(value) {
            assert!(t.trace_id != 0 && t.span_id != 0 && t.version != 0xff);
            let formatted =
                w3c::format_traceparent_full(t.trace_id_high, t.trace_id, t.span_id, t.flags);
            if t.version == 0 {
                assert_eq!(formatted, value, "version 00 is written back as it came");
            }
            let back = w3c::parse_traceparent_full(&formatted).expect("our own traceparent");
            assert_eq!(
                (back.trace_id_high, back.trace_id, back.span_id, back.flags),
                (t.trace_id_high, t.trace_id, t.span_id, t.flags)
            );
        }
        if w3c::is_valid_tracestate(value) {
            assert!(value.len() <= w3c::MAX_TRACESTATE_LEN);
        }
    }
}
