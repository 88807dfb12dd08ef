//! Header extraction through the server middleware: whatever the headers hold, the
//! middleware never panics; a complete, valid context in any supported format is continued,
//! anything else (malformed, zero, partial, mixed, duplicated, oversized) gives a root.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use proptest::prelude::*;
use ssf_proto::SsfSpan;
use tower::{Layer, Service, service_fn};
use trace_client::propagation::{self, DEFAULT_EXTRACT_FORMATS, HeaderFormat};
use trace_client::{Client, SpanContext};
use trace_http::ServerTraceLayer;

const ALL_FORMATS: [HeaderFormat; 5] = [
    HeaderFormat::Envoy,
    HeaderFormat::OpenTracing,
    HeaderFormat::Ruby,
    HeaderFormat::Veneur,
    HeaderFormat::W3c,
];

/// Runs one request with `headers` through the server middleware (extracting `formats`)
/// and returns the span it recorded. The inner service is ready at once, so a no-op waker
/// is enough and no runtime is needed.
fn serve(headers: HeaderMap, formats: &[HeaderFormat]) -> SsfSpan {
    let (client, mut rx) = Client::channel(4);
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    });
    let mut svc = ServerTraceLayer::new()
        .client(client)
        .extract_formats(formats)
        .layer(inner);
    let mut req = Request::get("/p").body(()).expect("a request");
    *req.headers_mut() = headers;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    let Poll::Ready(Ok(_)) = fut.as_mut().poll(&mut cx) else {
        panic!("the trivial service answers at once");
    };
    let span = rx.try_recv().expect("a recorded span");
    assert!(rx.try_recv().is_err(), "one span per request");
    span
}

fn is_root(span: &SsfSpan) -> bool {
    span.parent_id == 0 && span.trace_id == span.id && span.id != 0
}

fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    map
}

/// `name` with each letter's case chosen by the bits of `mask`.
fn mixed_case(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

// ---- a complete context is continued, in every format ----

#[test]
fn each_veneur_group_is_continued_as_written_by_other_clients() {
    type Case = (&'static [(&'static str, &'static [u8])], i64, i64);
    let cases: [Case; 5] = [
        (
            &[
                ("OT-Tracer-TraceId", b"3039"),
                ("OT-Tracer-SpanId", b"FFFFFFFFFFFFFFFF"),
            ],
            12345,
            -1,
        ),
        (&[("Trace-Id", b"10"), ("Span-Id", b"-11")], 10, -11),
        (&[("X-Trace-Id", b"20"), ("X-Span-Id", b"21")], 20, 21),
        (&[("Traceid", b"30"), ("Spanid", b"31")], 30, 31),
        (
            &[("ot-tracer-traceid", b"-ff"), ("ot-tracer-spanid", b"+a")],
            -255,
            10,
        ),
    ];
    for (pairs, trace, parent) in cases {
        let span = serve(map(pairs), DEFAULT_EXTRACT_FORMATS);
        assert_eq!(
            (span.trace_id, span.parent_id),
            (trace, parent),
            "{pairs:?}"
        );
        assert_ne!(span.id, parent);
    }
}

#[test]
fn w3c_is_continued_only_when_enabled() {
    let value: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let headers = map(&[("traceparent", value)]);
    assert!(is_root(&serve(headers.clone(), DEFAULT_EXTRACT_FORMATS)));
    let span = serve(headers, &ALL_FORMATS);
    assert_eq!(span.trace_id as u64, 0x8448_eb21_1c80_319c);
    assert_eq!(span.parent_id as u64, 0xb7ad_6b71_6920_3331);
}

#[test]
fn earlier_formats_win_and_the_order_is_configurable() {
    let headers = map(&[
        ("traceid", b"1"),
        ("spanid", b"2"),
        ("x-trace-id", b"3"),
        ("x-span-id", b"4"),
    ]);
    let span = serve(headers.clone(), DEFAULT_EXTRACT_FORMATS);
    assert_eq!((span.trace_id, span.parent_id), (3, 4));
    let span = serve(headers.clone(), &[HeaderFormat::Veneur, HeaderFormat::Ruby]);
    assert_eq!((span.trace_id, span.parent_id), (1, 2));
    assert!(is_root(&serve(headers, &[])));
}

#[test]
fn the_first_of_duplicated_headers_counts() {
    let span = serve(
        map(&[("traceid", b"5"), ("traceid", b"6"), ("spanid", b"7")]),
        DEFAULT_EXTRACT_FORMATS,
    );
    assert_eq!((span.trace_id, span.parent_id), (5, 7));
    let span = serve(
        map(&[("traceid", b"x"), ("traceid", b"6"), ("spanid", b"7")]),
        DEFAULT_EXTRACT_FORMATS,
    );
    assert!(is_root(&span));
}

#[test]
fn huge_and_numerous_headers_give_a_root() {
    let huge = vec![b'7'; 64 * 1024];
    let mut headers = map(&[("traceid", &huge), ("spanid", &huge)]);
    for _ in 0..2000 {
        headers.append("ot-tracer-traceid", HeaderValue::from_static("0"));
        headers.append("x-trace-id", HeaderValue::from_static("1"));
    }
    headers.append("x-span-id", HeaderValue::from_bytes(&huge).unwrap());
    headers.append("traceparent", HeaderValue::from_bytes(&huge).unwrap());
    assert!(is_root(&serve(headers, &ALL_FORMATS)));
}

fn nonzero() -> impl Strategy<Value = i64> {
    any::<i64>().prop_filter("zero means absent", |&id| id != 0)
}

proptest! {
    #[test]
    fn every_format_is_continued(
        format in prop::sample::select(&ALL_FORMATS[..]),
        trace in nonzero(),
        span_id in nonzero(),
        case_mask in any::<u64>(),
    ) {
        let mut injected = HeaderMap::new();
        propagation::inject_headers(&SpanContext::new(trace, span_id), &mut injected, format);
        // Re-insert under mixed-case names: header names are case-insensitive.
        let mut headers = HeaderMap::new();
        for (name, value) in &injected {
            let name = mixed_case(name.as_str(), case_mask);
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.clone());
        }
        let span = serve(headers.clone(), &ALL_FORMATS);
        prop_assert_eq!((span.trace_id, span.parent_id), (trace, span_id));
        prop_assert_ne!(span.id, 0);
        let default = serve(headers, DEFAULT_EXTRACT_FORMATS);
        if format == HeaderFormat::W3c {
            prop_assert!(is_root(&default));
        } else {
            prop_assert_eq!((default.trace_id, default.parent_id), (trace, span_id));
        }
    }
}

// ---- anything else gives a root, without panicking ----

/// The names the middleware reads, plus a few it does not.
const NAMES: &[&str] = &[
    "ot-tracer-traceid",
    "ot-tracer-spanid",
    "ot-tracer-sampled",
    "trace-id",
    "span-id",
    "x-trace-id",
    "x-span-id",
    "traceid",
    "spanid",
    "traceparent",
    "tracestate",
    "resource",
    "parentid",
];

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(NAMES), any::<u64>()).prop_map(|(n, m)| mixed_case(n, m)),
        "[a-zA-Z0-9-]{1,30}",
    ]
}

/// Bytes a header value may hold: visible ASCII, tab and obs-text.
fn value_byte() -> impl Strategy<Value = u8> {
    prop_oneof![8 => 0x20u8..=0x7e, 1 => Just(b'\t'), 2 => 0x80u8..=0xff]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| format!("{:x}", n as u64).into_bytes()),
        any::<(u64, u64)>().prop_map(|(a, b)| format!("00-{a:032x}-{b:016x}-01").into_bytes()),
        prop::collection::vec(value_byte(), 0..64),
        ("[0-9a-fA-F+-]{0,40}").prop_map(String::into_bytes),
        (1usize..20_000).prop_map(|n| vec![b'9'; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary headers: never a panic, and the span continues exactly what extraction
    /// finds, or is a root when it finds nothing.
    #[test]
    fn arbitrary_headers_never_panic(
        pairs in prop::collection::vec((header_name(), header_value()), 0..16),
        formats in prop::sample::subsequence(&ALL_FORMATS[..], 0..=5),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in &pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let span = serve(headers.clone(), &formats);
        match propagation::extract_headers(&headers, &formats) {
            Ok(ctx) => prop_assert_eq!((span.trace_id, span.parent_id), (ctx.trace_id, ctx.span_id)),
            Err(_) => prop_assert!(is_root(&span), "{:?}", span),
        }
    }
}

/// A decimal ID that does not parse, or parses to zero.
fn bad_decimal() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(
            &[
                "",
                "0",
                "-0",
                "+0",
                " 12",
                "12 ",
                "0x1f",
                "1e5",
                "12a",
                "--1",
                "+-3",
                "1.0",
                "١٢",
                "9223372036854775808",
                "-9223372036854775809",
                "18446744073709551616",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        (20usize..20_000).prop_map(|n| vec![b'1'; n]),
        (any::<u32>(), "[a-zA-Z ._]{1,3}").prop_map(|(n, junk)| format!("{n}{junk}").into_bytes()),
        prop::collection::vec(0x80u8..=0xff, 1..8),
    ]
}

/// A hex ID that does not parse, or parses to zero.
fn bad_hex() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(
            &[
                "",
                "0",
                "-0",
                "00000",
                "0x1f",
                "g1",
                " a",
                "a ",
                "--a",
                "+-a",
                "10000000000000000",
                "-8000000000000001",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        (17usize..20_000).prop_map(|n| vec![b'f'; n]),
        (any::<u32>(), "[g-zG-Z ._]{1,3}")
            .prop_map(|(n, junk)| format!("{n:x}{junk}").into_bytes()),
        prop::collection::vec(0x80u8..=0xff, 1..8),
    ]
}

/// A `traceparent` that is invalid.
fn bad_traceparent() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"00-00000000000000000000000000000000-b7ad6b7169203331-01".to_vec()),
        Just(b"00-0af7651916cd43dd0000000000000000-b7ad6b7169203331-01".to_vec()),
        Just(b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01".to_vec()),
        Just(b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
        Just(b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01".to_vec()),
        Just(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra".to_vec()),
        "[0-9a-f-]{0,54}".prop_map(String::into_bytes),
        (56usize..20_000).prop_map(|n| vec![b'0'; n]),
        prop::collection::vec(value_byte(), 55..=55).prop_filter("not a valid traceparent", |v| {
            std::str::from_utf8(v)
                .map_or(true, |s| propagation::w3c::parse_traceparent(s).is_none())
        }),
    ]
}

/// What one decimal or hex key group holds in a malformed request.
#[derive(Clone, Debug)]
enum Broken {
    /// Neither header.
    Absent,
    /// A valid trace ID without a span ID (mixed with other groups, this is the
    /// "trace from one format, span from another" case).
    TraceOnly(i64),
    /// A valid span ID without a trace ID.
    SpanOnly(i64),
    /// Both headers, at least one of them bad.
    Bad { trace: Vec<u8>, span: Vec<u8> },
    /// A bad trace ID first, then a valid pair: only the first value counts.
    BadFirst { bad: Vec<u8>, trace: i64, span: i64 },
}

fn broken(hex: bool) -> BoxedStrategy<Broken> {
    let bad = if hex {
        bad_hex().boxed()
    } else {
        bad_decimal().boxed()
    };
    let good = if hex {
        nonzero()
            .prop_map(|n| format!("{:x}", n as u64).into_bytes())
            .boxed()
    } else {
        nonzero().prop_map(|n| n.to_string().into_bytes()).boxed()
    };
    prop_oneof![
        Just(Broken::Absent),
        nonzero().prop_map(Broken::TraceOnly),
        nonzero().prop_map(Broken::SpanOnly),
        (bad.clone(), good.clone()).prop_map(|(trace, span)| Broken::Bad { trace, span }),
        (good, bad.clone()).prop_map(|(trace, span)| Broken::Bad { trace, span }),
        (bad.clone(), bad.clone()).prop_map(|(trace, span)| Broken::Bad { trace, span }),
        (bad, nonzero(), nonzero()).prop_map(|(bad, trace, span)| Broken::BadFirst {
            bad,
            trace,
            span
        }),
    ]
    .boxed()
}

fn add_group(headers: &mut HeaderMap, format: HeaderFormat, group: &Broken, mask: u64) {
    let hex = format == HeaderFormat::Envoy;
    let id = |n: i64| -> Vec<u8> {
        if hex {
            format!("{:x}", n as u64).into_bytes()
        } else {
            n.to_string().into_bytes()
        }
    };
    let trace_key = mixed_case(format.trace_key(), mask);
    let span_key = mixed_case(format.span_key().expect("a key group"), mask.rotate_left(7));
    let mut add = |key: &str, value: &[u8]| {
        headers.append(
            HeaderName::from_bytes(key.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    };
    match group {
        Broken::Absent => {}
        Broken::TraceOnly(n) => add(&trace_key, &id(*n)),
        Broken::SpanOnly(n) => add(&span_key, &id(*n)),
        Broken::Bad { trace, span } => {
            add(&trace_key, trace);
            add(&span_key, span);
        }
        Broken::BadFirst { bad, trace, span } => {
            add(&trace_key, bad);
            add(&trace_key, &id(*trace));
            add(&span_key, &id(*span));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Malformed, zero, partial, mixed-format, duplicated and oversized trace headers, in
    /// every group at once and with W3C enabled: always a root span.
    #[test]
    fn malformed_headers_give_a_root(
        groups in (broken(true), broken(false), broken(false), broken(false)),
        traceparent in prop::option::of(bad_traceparent()),
        noise in prop::collection::vec(("x-[a-z]{1,10}", prop::collection::vec(value_byte(), 0..32)), 0..4),
        mask in any::<u64>(),
    ) {
        let mut headers = HeaderMap::new();
        add_group(&mut headers, HeaderFormat::Envoy, &groups.0, mask);
        add_group(&mut headers, HeaderFormat::OpenTracing, &groups.1, mask >> 8);
        add_group(&mut headers, HeaderFormat::Ruby, &groups.2, mask >> 16);
        add_group(&mut headers, HeaderFormat::Veneur, &groups.3, mask >> 24);
        if let Some(value) = &traceparent {
            headers.append("traceparent", HeaderValue::from_bytes(value).unwrap());
        }
        for (name, value) in &noise {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let span = serve(headers, &ALL_FORMATS);
        prop_assert!(is_root(&span), "{:?}", span);
    }
}
