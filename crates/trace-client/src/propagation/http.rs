//! HTTP header carriers.
//!
//! veneur's clients understand four pairs of headers, tried in this order when extracting
//! ([`DEFAULT_EXTRACT_FORMATS`]); W3C Trace Context is available on request:
//!
//! | [`HeaderFormat`] | trace-ID header | span-ID header | numbers | also injected |
//! |---|---|---|---|---|
//! | `Envoy` | `ot-tracer-traceid` | `ot-tracer-spanid` | hex | `ot-tracer-sampled: true` |
//! | `OpenTracing` | `trace-id` | `span-id` | decimal | |
//! | `Ruby` | `x-trace-id` | `x-span-id` | decimal | |
//! | `Veneur` | `traceid` | `spanid` | decimal | |
//! | `W3c` (opt-in) | `traceparent` | (same header) | see [`w3c`] | |
//! | `Custom` | yours | yours | decimal or hex | |
//!
//! A [`CustomHeaders`] pair names headers of your own; list it among the others, in the
//! place you want it tried, and inject it like any other format (the trace-http layers
//! take the same lists).
//!
//! Header names match regardless of case (as always with [`HeaderMap`]). Hexadecimal IDs are
//! the 64 bits of the ID, lowercase on injection, either case on extraction, so
//! `ffffffffffffffff` is −1; a leading `-` (veneur's way of writing negative IDs) is also
//! accepted. Decimal IDs may be negative. Zero IDs, numbers outside 64 bits, values that are
//! not UTF-8 and partial pairs are ignored and the next format is tried. Only the first
//! value of a repeated header is read.
//!
//! Injection writes one format, by default [`HeaderFormat::Envoy`] as veneur does, and
//! replaces any values already present. The resource is not sent in headers; extraction
//! reads a `resource` header if one is present anyway, as veneur does.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::parse::{ExtractError, RESOURCE_KEY, format_hex, parse_decimal, parse_hex};
use super::w3c;
use crate::trace::context::SpanContext;

/// A way of writing a span context into HTTP headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderFormat {
    /// Envoy's (Lightstep-style) `ot-tracer-traceid` / `ot-tracer-spanid` in hex, plus
    /// `ot-tracer-sampled: true` on injection. veneur's default.
    #[default]
    Envoy,
    /// `Trace-Id` / `Span-Id` in decimal.
    OpenTracing,
    /// `X-Trace-Id` / `X-Span-Id` in decimal, as veneur's Ruby client writes them.
    Ruby,
    /// `Traceid` / `Spanid` in decimal.
    Veneur,
    /// W3C Trace Context `traceparent`; see [`w3c`].
    W3c,
    /// A trace-ID / span-ID header pair of the user's own naming.
    Custom(CustomHeaders),
}

/// How a [custom](HeaderFormat::Custom) header pair writes its IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdEncoding {
    /// Signed decimal, as veneur's OpenTracing, Ruby and Veneur groups.
    Decimal,
    /// 64-bit hexadecimal, as Envoy's group (reading accepts up to 16 hex digits).
    Hex,
}

/// The names of a trace-ID / span-ID header pair of the user's own, for
/// [`HeaderFormat::Custom`]: put it in an extraction list (anywhere among the built-in
/// groups) or inject it.
///
/// ```
/// use trace_client::SpanContext;
/// use trace_client::propagation::{self, CustomHeaders, HeaderFormat, IdEncoding};
///
/// const MINE: HeaderFormat =
///     HeaderFormat::Custom(CustomHeaders::new("x-b3-traceid", "x-b3-spanid", IdEncoding::Hex));
///
/// let mut headers = http::HeaderMap::new();
/// propagation::inject_headers(&SpanContext::new(255, 16), &mut headers, MINE);
/// assert_eq!(headers["x-b3-traceid"], "ff");
/// let ctx = propagation::extract_headers(&headers, &[HeaderFormat::Envoy, MINE])?;
/// assert_eq!((ctx.trace_id, ctx.span_id), (255, 16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomHeaders {
    trace: &'static str,
    span: &'static str,
    ids: IdEncoding,
}

/// Why a [`CustomHeaders`] name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CustomHeadersError {
    /// A name is empty or holds a byte that is not a lowercase HTTP token character.
    InvalidName,
    /// The trace and span headers have the same name.
    SameName,
}

impl std::fmt::Display for CustomHeadersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CustomHeadersError::InvalidName => {
                "a custom header name must be a non-empty lowercase http token"
            }
            CustomHeadersError::SameName => "the trace and span headers need different names",
        })
    }
}

impl std::error::Error for CustomHeadersError {}

/// Whether `name` is a non-empty lowercase HTTP token (RFC 9110 `tchar`s, no capitals).
const fn is_lowercase_token(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl CustomHeaders {
    /// A pair named `trace` and `span` (lowercase), IDs written as `ids` says.
    ///
    /// # Panics
    ///
    /// If a name is not a lowercase HTTP token or both are the same; in a `const` that is
    /// a compile error. Use [`try_new`](Self::try_new) for names read at run time.
    pub const fn new(trace: &'static str, span: &'static str, ids: IdEncoding) -> Self {
        match Self::try_new(trace, span, ids) {
            Ok(h) => h,
            Err(_) => panic!("custom header names must be distinct lowercase http tokens"),
        }
    }

    /// [`new`](Self::new), with an error instead of a panic.
    ///
    /// # Errors
    ///
    /// [`CustomHeadersError`] when a name is not a lowercase HTTP token or both are the
    /// same.
    pub const fn try_new(
        trace: &'static str,
        span: &'static str,
        ids: IdEncoding,
    ) -> Result<Self, CustomHeadersError> {
        if !is_lowercase_token(trace) || !is_lowercase_token(span) {
            return Err(CustomHeadersError::InvalidName);
        }
        if same(trace, span) {
            return Err(CustomHeadersError::SameName);
        }
        Ok(CustomHeaders { trace, span, ids })
    }

    /// The trace-ID header's name.
    pub const fn trace_header(&self) -> &'static str {
        self.trace
    }

    /// The span-ID header's name.
    pub const fn span_header(&self) -> &'static str {
        self.span
    }

    /// How the IDs are written.
    pub const fn ids(&self) -> IdEncoding {
        self.ids
    }
}

/// The formats tried by extraction unless told otherwise: veneur's four, in veneur's order.
/// W3C is not among them; pass a list including [`HeaderFormat::W3c`] to accept it.
pub const DEFAULT_EXTRACT_FORMATS: &[HeaderFormat] = &[
    HeaderFormat::Envoy,
    HeaderFormat::OpenTracing,
    HeaderFormat::Ruby,
    HeaderFormat::Veneur,
];

/// The format injected by default, as veneur does: [`HeaderFormat::Envoy`].
pub const DEFAULT_INJECT_FORMAT: HeaderFormat = HeaderFormat::Envoy;

/// The header `ot-tracer-sampled`, set to `true` by Envoy-format injection.
pub const ENVOY_SAMPLED_HEADER: &str = "ot-tracer-sampled";

impl HeaderFormat {
    /// The (lowercase) name of the header holding the trace ID; for W3C, `traceparent`.
    pub const fn trace_key(self) -> &'static str {
        match self {
            HeaderFormat::Envoy => "ot-tracer-traceid",
            HeaderFormat::OpenTracing => "trace-id",
            HeaderFormat::Ruby => "x-trace-id",
            HeaderFormat::Veneur => "traceid",
            HeaderFormat::W3c => w3c::TRACEPARENT,
            HeaderFormat::Custom(h) => h.trace,
        }
    }

    /// The (lowercase) name of the header holding the span ID; `None` for W3C, whose
    /// `traceparent` holds both.
    pub const fn span_key(self) -> Option<&'static str> {
        match self {
            HeaderFormat::Envoy => Some("ot-tracer-spanid"),
            HeaderFormat::OpenTracing => Some("span-id"),
            HeaderFormat::Ruby => Some("x-span-id"),
            HeaderFormat::Veneur => Some("spanid"),
            HeaderFormat::W3c => None,
            HeaderFormat::Custom(h) => Some(h.span),
        }
    }

    /// Parses the values of this format's headers into non-zero trace and span IDs.
    pub(crate) fn parse_ids(self, trace: Option<&str>, span: Option<&str>) -> Option<(i64, i64)> {
        let (trace_id, span_id) = match self {
            HeaderFormat::W3c => w3c::parse_traceparent(trace?)?,
            HeaderFormat::Envoy => (parse_hex(trace?)?, parse_hex(span?)?),
            HeaderFormat::OpenTracing | HeaderFormat::Ruby | HeaderFormat::Veneur => {
                (parse_decimal(trace?)?, parse_decimal(span?)?)
            }
            HeaderFormat::Custom(h) => match h.ids {
                IdEncoding::Decimal => (parse_decimal(trace?)?, parse_decimal(span?)?),
                IdEncoding::Hex => (parse_hex(trace?)?, parse_hex(span?)?),
            },
        };
        (trace_id != 0 && span_id != 0).then_some((trace_id, span_id))
    }
}

/// Writes `ctx`'s trace and span IDs into `headers` in `format`, replacing existing values.
///
/// # Examples
///
/// ```
/// use trace_client::SpanContext;
/// use trace_client::propagation::{HeaderFormat, inject_headers};
///
/// let ctx = SpanContext::new(12345, -1);
/// let mut headers = http::HeaderMap::new();
/// inject_headers(&ctx, &mut headers, HeaderFormat::Envoy);
/// assert_eq!(headers["ot-tracer-traceid"], "3039");
/// assert_eq!(headers["ot-tracer-spanid"], "ffffffffffffffff");
/// assert_eq!(headers["ot-tracer-sampled"], "true");
///
/// inject_headers(&ctx, &mut headers, HeaderFormat::W3c);
/// assert_eq!(
///     headers["traceparent"],
///     "00-00000000000000000000000000003039-ffffffffffffffff-01"
/// );
/// ```
pub fn inject_headers(ctx: &SpanContext, headers: &mut HeaderMap, format: HeaderFormat) {
    let (trace, span) = match format {
        HeaderFormat::W3c => {
            let value = w3c::format_traceparent(ctx.trace_id, ctx.span_id);
            insert(headers, w3c::TRACEPARENT, value);
            return;
        }
        HeaderFormat::Envoy => {
            insert(headers, ENVOY_SAMPLED_HEADER, "true".to_owned());
            (format_hex(ctx.trace_id), format_hex(ctx.span_id))
        }
        HeaderFormat::OpenTracing
        | HeaderFormat::Ruby
        | HeaderFormat::Veneur
        | HeaderFormat::Custom(CustomHeaders {
            ids: IdEncoding::Decimal,
            ..
        }) => (ctx.trace_id.to_string(), ctx.span_id.to_string()),
        HeaderFormat::Custom(CustomHeaders {
            ids: IdEncoding::Hex,
            ..
        }) => (format_hex(ctx.trace_id), format_hex(ctx.span_id)),
    };
    insert(headers, format.trace_key(), trace);
    if let Some(span_key) = format.span_key() {
        insert(headers, span_key, span);
    }
}

/// Inserts a value we formatted ourselves (ASCII digits, letters and dashes) under a
/// lowercase token name (the built-in ones, or checked by [`CustomHeaders::try_new`]).
fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::try_from(value),
    ) {
        headers.insert(name, value);
    }
}

/// The first value of header `name`, if it is UTF-8.
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    std::str::from_utf8(headers.get(name)?.as_bytes()).ok()
}

/// Extracts the context of the remote span from `headers`, trying `formats` in order; the
/// first format whose headers hold two valid, non-zero IDs wins.
///
/// The context's parent ID is 0 (headers do not carry it) and its resource comes from a
/// `resource` header if present.
///
/// # Errors
///
/// [`ExtractError::MissingIds`] when no format matched.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
/// use trace_client::propagation::{self, DEFAULT_EXTRACT_FORMATS, HeaderFormat};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("X-Trace-Id", "10".parse()?);
/// headers.insert("X-Span-Id", "11".parse()?);
/// let ctx = propagation::extract_headers(&headers, DEFAULT_EXTRACT_FORMATS)?;
/// assert_eq!((ctx.trace_id, ctx.span_id), (10, 11));
///
/// headers.insert(
///     "traceparent",
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse()?,
/// );
/// let ctx = propagation::extract_headers(&headers, &[HeaderFormat::W3c])?;
/// assert_eq!(ctx.trace_id as u64, 0x8448eb211c80319c);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_headers(
    headers: &HeaderMap,
    formats: &[HeaderFormat],
) -> Result<SpanContext, ExtractError> {
    let (trace_id, span_id) = formats
        .iter()
        .find_map(|format| {
            let trace = first_value(headers, format.trace_key());
            let span = format.span_key().and_then(|k| first_value(headers, k));
            format.parse_ids(trace, span)
        })
        .ok_or(ExtractError::MissingIds)?;
    Ok(SpanContext {
        trace_id,
        span_id,
        parent_id: 0,
        resource: first_value(headers, RESOURCE_KEY)
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ids(map: &HeaderMap, formats: &[HeaderFormat]) -> Option<(i64, i64)> {
        extract_headers(map, formats)
            .ok()
            .map(|c| (c.trace_id, c.span_id))
    }

    const ALL: [HeaderFormat; 5] = [
        HeaderFormat::Envoy,
        HeaderFormat::OpenTracing,
        HeaderFormat::Ruby,
        HeaderFormat::Veneur,
        HeaderFormat::W3c,
    ];

    #[test]
    fn every_format_round_trips() {
        for format in ALL {
            for (t, s) in [(1, 2), (-1, i64::MIN), (i64::MAX, -7)] {
                let mut map = HeaderMap::new();
                inject_headers(&SpanContext::new(t, s), &mut map, format);
                assert_eq!(ids(&map, &[format]), Some((t, s)), "{format:?}");
                assert_eq!(ids(&map, &ALL), Some((t, s)), "{format:?}");
            }
        }
    }

    #[test]
    fn envoy_injection_matches_veneur() {
        let mut map = headers(&[("ot-tracer-spanid", "old"), ("ot-tracer-spanid", "older")]);
        inject_headers(
            &SpanContext::new(255, 256),
            &mut map,
            HeaderFormat::default(),
        );
        assert_eq!(map.len(), 3);
        assert_eq!(map["ot-tracer-traceid"], "ff");
        assert_eq!(map.get_all("ot-tracer-spanid").iter().count(), 1);
        assert_eq!(map["ot-tracer-spanid"], "100");
        assert_eq!(map["ot-tracer-sampled"], "true");
    }

    #[test]
    fn decimal_formats_inject_their_own_names() {
        for (format, t, s) in [
            (HeaderFormat::OpenTracing, "trace-id", "span-id"),
            (HeaderFormat::Ruby, "x-trace-id", "x-span-id"),
            (HeaderFormat::Veneur, "traceid", "spanid"),
        ] {
            let mut map = HeaderMap::new();
            inject_headers(&SpanContext::new(-10, 20), &mut map, format);
            assert_eq!(map.len(), 2);
            assert_eq!(map[t], "-10");
            assert_eq!(map[s], "20");
        }
    }

    #[test]
    fn order_and_case() {
        let map = headers(&[
            ("TRACEID", "3"),
            ("SpanId", "4"),
            ("Trace-Id", "5"),
            ("Span-Id", "6"),
        ]);
        assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), Some((5, 6)));
        assert_eq!(ids(&map, &[HeaderFormat::Veneur]), Some((3, 4)));
        assert_eq!(ids(&map, &[]), None);
        let map = headers(&[("OT-Tracer-TraceId", "FF"), ("ot-tracer-spanid", "a")]);
        assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), Some((255, 10)));
    }

    #[test]
    fn rejects_zero_partial_and_bad() {
        for pairs in [
            &[("traceid", "0"), ("spanid", "1")][..],
            &[("traceid", "1"), ("spanid", "0")],
            &[("traceid", "1")],
            &[("trace-id", "1"), ("x-span-id", "2")],
            &[("ot-tracer-traceid", "0x1"), ("ot-tracer-spanid", "1")],
            &[
                ("ot-tracer-traceid", "10000000000000000"),
                ("ot-tracer-spanid", "1"),
            ],
            &[("x-trace-id", "1.0"), ("x-span-id", "1")],
        ] {
            assert_eq!(
                ids(&headers(pairs), DEFAULT_EXTRACT_FORMATS),
                None,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn first_value_wins_and_non_utf8_is_absent() {
        let map = headers(&[("traceid", "1"), ("traceid", "2"), ("spanid", "3")]);
        assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), Some((1, 3)));

        let mut map = headers(&[("spanid", "3"), ("trace-id", "8"), ("span-id", "9")]);
        map.insert("traceid", HeaderValue::from_bytes(b"\xff1").unwrap());
        assert_eq!(ids(&map, &[HeaderFormat::Veneur]), None);
        assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), Some((8, 9)));
    }

    #[test]
    fn resource_header_is_read() {
        let map = headers(&[("traceid", "1"), ("spanid", "2"), ("Resource", "r")]);
        let ctx = extract_headers(&map, DEFAULT_EXTRACT_FORMATS).unwrap();
        assert_eq!(ctx, SpanContext::new(1, 2).with_resource("r"));
    }

    #[test]
    fn w3c_is_opt_in() {
        let mut map = HeaderMap::new();
        inject_headers(&SpanContext::new(1, 2), &mut map, HeaderFormat::W3c);
        assert_eq!(map.len(), 1);
        assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), None);
        assert_eq!(ids(&map, &[HeaderFormat::W3c]), Some((1, 2)));
    }

    #[test]
    fn keys() {
        assert_eq!(HeaderFormat::W3c.trace_key(), "traceparent");
        assert_eq!(HeaderFormat::W3c.span_key(), None);
        assert_eq!(DEFAULT_INJECT_FORMAT, HeaderFormat::Envoy);
    }

    #[test]
    fn custom_groups_round_trip_in_either_encoding_and_take_their_place_in_the_order() {
        for enc in [IdEncoding::Decimal, IdEncoding::Hex] {
            let mine = HeaderFormat::Custom(CustomHeaders::new("x-my-trace", "x-my-span", enc));
            for (t, s) in [(1, 2), (-1, i64::MIN), (i64::MAX, -7)] {
                let mut map = HeaderMap::new();
                inject_headers(&SpanContext::new(t, s), &mut map, mine);
                assert_eq!(map.len(), 2, "{map:?}");
                assert_eq!(ids(&map, &[mine]), Some((t, s)));
                // Not read unless listed.
                assert_eq!(ids(&map, DEFAULT_EXTRACT_FORMATS), None);
            }
            let map = headers(&[
                ("x-trace-id", "10"),
                ("x-span-id", "11"),
                ("x-my-trace", "20"),
                ("x-my-span", "21"),
            ]);
            let (a, b) = if enc == IdEncoding::Hex {
                (0x20, 0x21)
            } else {
                (20, 21)
            };
            assert_eq!(ids(&map, &[mine, HeaderFormat::Ruby]), Some((a, b)));
            assert_eq!(ids(&map, &[HeaderFormat::Ruby, mine]), Some((10, 11)));
            // Header names are case-insensitive on the wire.
            let upper = headers(&[("X-My-Trace", "5"), ("X-MY-SPAN", "6")]);
            assert_eq!(ids(&upper, &[mine]), Some((5, 6)));
        }
    }

    #[test]
    fn custom_group_names_are_checked() {
        use CustomHeadersError::*;
        let dec = IdEncoding::Decimal;
        for (trace, span, want) in [
            ("", "x", InvalidName),
            ("X-Trace", "x-span", InvalidName),
            ("x trace", "x-span", InvalidName),
            ("x-trace", "x-span\n", InvalidName),
            ("x:trace", "x-span", InvalidName),
            ("x-trace", "x-trace", SameName),
        ] {
            assert_eq!(
                CustomHeaders::try_new(trace, span, dec),
                Err(want),
                "{trace:?} {span:?}"
            );
        }
        let ok = CustomHeaders::try_new("x-t", "x-s", dec).unwrap();
        assert_eq!(
            (ok.trace_header(), ok.span_header(), ok.ids()),
            ("x-t", "x-s", dec)
        );
        assert!(std::panic::catch_unwind(|| CustomHeaders::new("Bad", "x", dec)).is_err());
    }
}
