//! HTTP header carriers.
//!
//! veneur's clients understand four pairs of headers, tried in this order when extracting
//! ([`DEFAULT_EXTRACT_FORMATS`]); W3C Trace Context is available on request:
//!
//! | [`HeaderFormat`] | trace-ID header | span-ID header | numbers | also injected |
//! |---|---|---|---|---|
//! | `Envoy` | `ot-tracer-traceid` | `ot-tracer-spanid` | hex | `ot-tracer-sampled` (the decision; `true` when undecided) |
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
//! replaces any values already present; call it once per format to write several (a
//! service between W3C and veneur callers can write both). The resource is not sent in
//! headers; extraction reads a `resource` header if one is present anyway, as veneur does.
//!
//! # Sampling, baggage and W3C
//!
//! Besides the IDs, the headers carry the trace's sampling decision and baggage:
//!
//! | | Envoy and the other veneur groups, custom pairs | W3C |
//! |---|---|---|
//! | sampled | `ot-tracer-sampled: true`/`false` (Envoy only; `true` when undecided, as veneur) | the `traceparent` flag |
//! | baggage | one `ot-baggage-<key>` header per item, values percent-encoded | the `baggage` header ([`baggage`](super::baggage)) |
//! | beyond 64 bits | | `traceparent`'s high 64 bits, flags, `tracestate` ([`W3cTrace`]) |
//!
//! Extraction reads both kinds of baggage whichever format wins (the `baggage` header
//! first; `ot-baggage-*` items whose key it already gave are skipped), and keeps what a
//! `traceparent` carried beyond 64 bits even when another format won, if it names the
//! same trace and span. Baggage over its limits or malformed is refused whole, never the
//! trace: [`extract_headers_checked`] says why.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::baggage::{self as wire_baggage, BAGGAGE_HEADER, OT_BAGGAGE_PREFIX, OtBaggage};
use super::parse::{
    ExtractError, RESOURCE_KEY, SAMPLED_KEY, format_hex, parse_decimal, parse_hex, parse_sampled,
};
use super::w3c;
use crate::trace::baggage::{Baggage, BaggageError, MAX_BYTES};
use crate::trace::context::{SpanContext, W3cTrace};

/// A way of writing a span context into HTTP headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderFormat {
    /// Envoy's (Lightstep-style) `ot-tracer-traceid` / `ot-tracer-spanid` in hex, plus
    /// `ot-tracer-sampled` (the sampling decision, `true` when undecided) on injection.
    /// veneur's default.
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
pub const ENVOY_SAMPLED_HEADER: &str = SAMPLED_KEY;

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

/// Writes `ctx` into `headers` in `format`, replacing existing values: its trace and span
/// IDs, its sampling decision and its baggage (see the [module docs](self)).
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
            inject_w3c(ctx, headers);
            return;
        }
        HeaderFormat::Envoy => {
            let sampled = if ctx.sampled.unwrap_or(true) {
                "true"
            } else {
                "false"
            };
            insert(headers, ENVOY_SAMPLED_HEADER, sampled.to_owned());
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
    inject_ot_baggage(&ctx.baggage, headers);
}

/// `traceparent` (continuing the caller's W3C trace, if any), `tracestate` and `baggage`.
fn inject_w3c(ctx: &SpanContext, headers: &mut HeaderMap) {
    let (high, flags) = match &ctx.w3c {
        Some(w) => (w.trace_id_high, w.flags),
        None => (0, w3c::SAMPLED),
    };
    let sampled = ctx.sampled.unwrap_or(flags & w3c::SAMPLED != 0);
    let flags = (flags & !w3c::SAMPLED) | if sampled { w3c::SAMPLED } else { 0 };
    let value = w3c::format_traceparent_full(high, ctx.trace_id, ctx.span_id, flags);
    insert(headers, w3c::TRACEPARENT, value);
    match ctx.w3c.as_ref().filter(|w| !w.tracestate.is_empty()) {
        Some(w) => insert(headers, w3c::TRACESTATE, w.tracestate.clone()),
        None => {
            headers.remove(w3c::TRACESTATE);
        }
    }
    if ctx.baggage.is_empty() {
        headers.remove(BAGGAGE_HEADER);
    } else {
        insert(
            headers,
            BAGGAGE_HEADER,
            wire_baggage::format_baggage(&ctx.baggage),
        );
    }
}

/// One `ot-baggage-<key>` header per item, replacing the `ot-baggage-*` headers present.
fn inject_ot_baggage(baggage: &Baggage, headers: &mut HeaderMap) {
    let stale: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(OT_BAGGAGE_PREFIX))
        .cloned()
        .collect();
    for name in stale {
        headers.remove(name);
    }
    for (key, value) in baggage.iter() {
        let mut encoded = String::with_capacity(value.len());
        wire_baggage::percent_encode(value, &mut encoded);
        let name = format!("{OT_BAGGAGE_PREFIX}{key}");
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(encoded),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Inserts a value we formatted ourselves (visible ASCII) under a lowercase token name
/// (the built-in ones, or checked by [`CustomHeaders::try_new`]).
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
/// `resource` header if present. Its sampling decision, baggage and W3C trace come as the
/// [module docs](self) say; baggage that was refused is left out
/// ([`extract_headers_checked`] says why).
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
    extract_headers_checked(headers, formats).context
}

/// What [`extract_headers_checked`] found.
#[derive(Debug)]
#[non_exhaustive]
pub struct HeaderExtraction {
    /// The remote span's context, with the baggage when it was accepted.
    pub context: Result<SpanContext, ExtractError>,
    /// The baggage alone (also when no span context was found: W3C baggage travels
    /// without one), or why it was refused.
    pub baggage: Result<Baggage, BaggageError>,
}

/// [`extract_headers`], also saying whether the baggage was refused, and giving the
/// baggage of requests that carry no span context. The trace-http server middleware
/// uses it, and counts refusals in
/// [`ClientStats::baggage_refused`](crate::ClientStats::baggage_refused).
///
/// ```
/// use http::HeaderMap;
/// use trace_client::propagation::{self, DEFAULT_EXTRACT_FORMATS};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ot-tracer-traceid", "3039".parse()?);
/// headers.insert("ot-tracer-spanid", "10932".parse()?);
/// headers.insert("baggage", "tenant=acme,,".parse()?);
/// let found = propagation::extract_headers_checked(&headers, DEFAULT_EXTRACT_FORMATS);
/// let ctx = found.context?;
/// assert_eq!((ctx.trace_id, ctx.baggage.len()), (12345, 0)); // the trace is kept
/// assert!(found.baggage.is_err()); // the malformed baggage is not
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_headers_checked(headers: &HeaderMap, formats: &[HeaderFormat]) -> HeaderExtraction {
    let baggage = extract_baggage(headers);
    let context = formats
        .iter()
        .find_map(|&format| {
            let trace = first_value(headers, format.trace_key());
            let span = format.span_key().and_then(|k| first_value(headers, k));
            format.parse_ids(trace, span).map(|ids| (format, ids))
        })
        .ok_or(ExtractError::MissingIds)
        .map(|(format, (trace_id, span_id))| {
            let mut ctx = SpanContext::new(trace_id, span_id);
            ctx.resource = first_value(headers, RESOURCE_KEY)
                .unwrap_or_default()
                .to_owned();
            if format == HeaderFormat::Envoy {
                ctx.sampled = first_value(headers, ENVOY_SAMPLED_HEADER).and_then(parse_sampled);
            }
            if formats.contains(&HeaderFormat::W3c) {
                extract_w3c(headers, &mut ctx);
            }
            if let Ok(baggage) = &baggage {
                ctx.baggage = baggage.clone();
            }
            ctx
        });
    HeaderExtraction { context, baggage }
}

/// Keeps what a `traceparent` for the same trace and span carries beyond 64 bits.
fn extract_w3c(headers: &HeaderMap, ctx: &mut SpanContext) {
    let Some(parent) = first_value(headers, w3c::TRACEPARENT).and_then(w3c::parse_traceparent_full)
    else {
        return;
    };
    if (parent.trace_id, parent.span_id) != (ctx.trace_id, ctx.span_id) {
        return;
    }
    ctx.sampled.get_or_insert(parent.sampled());
    ctx.w3c = Some(W3cTrace {
        trace_id_high: parent.trace_id_high,
        flags: parent.flags,
        tracestate: tracestate(headers).unwrap_or_default(),
    });
}

/// The `tracestate` headers joined with `,`, if they are valid together.
fn tracestate(headers: &HeaderMap) -> Option<String> {
    let mut joined = String::new();
    for value in headers.get_all(w3c::TRACESTATE) {
        let value = std::str::from_utf8(value.as_bytes()).ok()?;
        if joined.len() + value.len() + 1 > w3c::MAX_TRACESTATE_LEN {
            return None;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
    }
    w3c::is_valid_tracestate(&joined).then_some(joined)
}

/// The baggage of `headers`: the W3C `baggage` headers, then the `ot-baggage-*` items
/// whose keys they did not give, within the limits.
///
/// # Errors
///
/// The first [`BaggageError`]: limits, syntax, encoding. Nothing is kept then.
///
/// ```
/// use http::HeaderMap;
/// use trace_client::propagation::extract_baggage;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("baggage", "tenant=acme".parse()?);
/// headers.insert("ot-baggage-attempt", "2".parse()?);
/// let baggage = extract_baggage(&headers)?;
/// assert_eq!(baggage.iter().collect::<Vec<_>>(), [("tenant", "acme"), ("attempt", "2")]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_baggage(headers: &HeaderMap) -> Result<Baggage, BaggageError> {
    let mut baggage = Baggage::new();
    let mut total = 0;
    for value in headers.get_all(BAGGAGE_HEADER) {
        total += value.len();
        if total > MAX_BYTES {
            return Err(BaggageError::TooLarge { limit: MAX_BYTES });
        }
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| BaggageError::Malformed)?;
        wire_baggage::parse_baggage(value, &mut baggage)?;
    }
    let mut ot = OtBaggage::default();
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with(OT_BAGGAGE_PREFIX) {
            continue;
        }
        let key = &name[OT_BAGGAGE_PREFIX.len()..];
        if baggage.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            continue;
        }
        match std::str::from_utf8(value.as_bytes()) {
            Ok(value) => ot.offer(name, value, true),
            Err(_) => return Err(BaggageError::InvalidEncoding),
        }
    }
    for (key, value) in ot.finish()?.iter() {
        baggage.set(key, value)?;
    }
    Ok(baggage)
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

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";

    #[test]
    fn sampled_flag_round_trips_in_envoy_and_w3c() {
        for format in [HeaderFormat::Envoy, HeaderFormat::W3c] {
            for sampled in [Some(true), Some(false)] {
                let mut ctx = SpanContext::new(5, 6);
                ctx.sampled = sampled;
                let mut map = HeaderMap::new();
                inject_headers(&ctx, &mut map, format);
                let back = extract_headers(&map, &[format]).unwrap();
                assert_eq!(back.sampled, sampled, "{format:?}");
            }
            // Undecided is written as sampled, as veneur writes `ot-tracer-sampled: true`.
            let mut map = HeaderMap::new();
            inject_headers(&SpanContext::new(5, 6), &mut map, format);
            assert_eq!(
                extract_headers(&map, &[format]).unwrap().sampled,
                Some(true)
            );
        }
        // Decimal groups carry no flag.
        let map = headers(&[
            ("traceid", "1"),
            ("spanid", "2"),
            ("ot-tracer-sampled", "false"),
        ]);
        assert_eq!(
            extract_headers(&map, DEFAULT_EXTRACT_FORMATS)
                .unwrap()
                .sampled,
            None
        );
        let map = headers(&[
            ("ot-tracer-traceid", "1"),
            ("ot-tracer-spanid", "2"),
            ("ot-tracer-sampled", "maybe"),
        ]);
        assert_eq!(
            extract_headers(&map, DEFAULT_EXTRACT_FORMATS)
                .unwrap()
                .sampled,
            None
        );
    }

    #[test]
    fn w3c_round_trips_without_loss() {
        let map = headers(&[
            ("traceparent", TP),
            ("tracestate", "a=1"),
            ("TraceState", "b=2"),
        ]);
        let ctx = extract_headers(&map, &[HeaderFormat::W3c]).unwrap();
        let w3c = ctx.w3c.clone().unwrap();
        assert_eq!(w3c.trace_id_high, 0x0af7_6519_16cd_43dd);
        assert_eq!((w3c.flags, w3c.tracestate.as_str()), (0x03, "a=1,b=2"));
        assert_eq!(ctx.sampled, Some(true));
        let mut out = HeaderMap::new();
        inject_headers(&ctx, &mut out, HeaderFormat::W3c);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "a=1,b=2");

        // A child continues the same W3C trace with its own span ID and the decision.
        let mut child = ctx.clone();
        child.span_id = 0x1234;
        child.sampled = Some(false);
        inject_headers(&child, &mut out, HeaderFormat::W3c);
        assert_eq!(
            out["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-0000000000001234-02"
        );
    }

    #[test]
    fn a_traceparent_that_agrees_with_the_winner_gives_its_extra_bits() {
        let mut map = headers(&[("traceparent", TP), ("tracestate", "k=v")]);
        inject_headers(
            &SpanContext::new(
                0x8448_eb21_1c80_319c_u64 as i64,
                0xb7ad_6b71_6920_3331_u64 as i64,
            ),
            &mut map,
            HeaderFormat::Envoy,
        );
        map.remove("ot-tracer-sampled");
        let formats = [HeaderFormat::Envoy, HeaderFormat::W3c];
        let ctx = extract_headers(&map, &formats).unwrap();
        assert_eq!(
            ctx.w3c.as_ref().map(|w| w.trace_id_high),
            Some(0x0af7_6519_16cd_43dd)
        );
        assert_eq!(ctx.sampled, Some(true), "from the traceparent flag");
        // Not when W3C is not accepted, nor when the traceparent names another span.
        assert_eq!(
            extract_headers(&map, &[HeaderFormat::Envoy]).unwrap().w3c,
            None
        );
        map.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-00000000000000aa-01"),
        );
        assert_eq!(extract_headers(&map, &formats).unwrap().w3c, None);
    }

    #[test]
    fn invalid_tracestate_is_not_passed_on() {
        for bad in ["A=1", "a=1,a=2", "a", &format!("a={}", "v".repeat(300))] {
            let map = headers(&[("traceparent", TP), ("tracestate", bad)]);
            let ctx = extract_headers(&map, &[HeaderFormat::W3c]).unwrap();
            assert_eq!(ctx.w3c.unwrap().tracestate, "", "{bad:?}");
        }
        let mut out = HeaderMap::new();
        out.insert("tracestate", HeaderValue::from_static("stale=1"));
        inject_headers(&SpanContext::new(1, 2), &mut out, HeaderFormat::W3c);
        assert!(
            out.get("tracestate").is_none(),
            "a stale tracestate is removed"
        );
    }

    #[test]
    fn baggage_round_trips_in_both_header_kinds() {
        let mut baggage = Baggage::new();
        baggage.set("tenant", "acme corp").unwrap();
        baggage.set("note", "café,=;").unwrap();
        let ctx = SpanContext::new(1, 2).with_baggage(baggage.clone());
        for format in [
            HeaderFormat::Envoy,
            HeaderFormat::OpenTracing,
            HeaderFormat::W3c,
        ] {
            let mut map = HeaderMap::new();
            inject_headers(&ctx, &mut map, format);
            let back = extract_headers(&map, &[format]).unwrap();
            assert_eq!(back.baggage, baggage, "{format:?}");
        }
        let mut map = HeaderMap::new();
        inject_headers(&ctx, &mut map, HeaderFormat::Envoy);
        assert_eq!(map["ot-baggage-tenant"], "acme%20corp");
        // Injecting another context replaces the items, not adds to them.
        inject_headers(&SpanContext::new(1, 3), &mut map, HeaderFormat::Envoy);
        assert!(map.keys().all(|k| !k.as_str().starts_with("ot-baggage-")));
    }

    #[test]
    fn both_baggage_kinds_merge_the_w3c_header_first() {
        let map = headers(&[
            ("traceid", "1"),
            ("spanid", "2"),
            ("baggage", "Tenant=w3c"),
            ("ot-baggage-tenant", "ot"),
            ("ot-baggage-extra", "x"),
        ]);
        let ctx = extract_headers(&map, DEFAULT_EXTRACT_FORMATS).unwrap();
        assert_eq!(
            ctx.baggage.iter().collect::<Vec<_>>(),
            [("Tenant", "w3c"), ("extra", "x")]
        );
    }

    #[test]
    fn refused_baggage_keeps_the_trace_and_says_why() {
        let big = "v".repeat(MAX_BYTES);
        for (extra, err) in [
            (
                vec![("baggage", format!("k={big}"))],
                BaggageError::TooLarge { limit: MAX_BYTES },
            ),
            (
                vec![
                    ("baggage", "k=1".into()),
                    ("baggage", format!("j={}", &big[..MAX_BYTES - 4])),
                ],
                BaggageError::TooLarge { limit: MAX_BYTES },
            ),
            (
                (0..100).map(|i| ("baggage", format!("k{i}=v"))).collect(),
                BaggageError::TooManyItems {
                    limit: crate::trace::baggage::MAX_ITEMS,
                },
            ),
            (
                vec![("baggage", "k=%zz".into())],
                BaggageError::InvalidEncoding,
            ),
            (
                vec![("ot-baggage-a", "%".into())],
                BaggageError::InvalidEncoding,
            ),
        ] {
            let mut pairs = vec![("traceid", "1".to_owned()), ("spanid", "2".to_owned())];
            pairs.extend(extra);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let found = extract_headers_checked(&headers(&pairs), DEFAULT_EXTRACT_FORMATS);
            let ctx = found.context.unwrap();
            assert_eq!((ctx.trace_id, ctx.span_id, ctx.baggage.len()), (1, 2, 0));
            assert_eq!(found.baggage.unwrap_err(), err);
        }
        // Baggage without a trace context is still read.
        let found =
            extract_headers_checked(&headers(&[("baggage", "k=v")]), DEFAULT_EXTRACT_FORMATS);
        assert!(found.context.is_err());
        assert_eq!(found.baggage.unwrap().get("k"), Some("v"));
    }
}
