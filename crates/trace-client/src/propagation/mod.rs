//! Carrying span contexts between processes.
//!
//! A [`SpanContext`](crate::SpanContext) is *injected* into a carrier by the caller and *extracted* from it by
//! the callee, which then starts its spans with [`Span::child_of`](crate::Span::child_of).
//! Three carriers are supported, compatible with veneur's Go client:
//!
//! | carrier | inject | extract |
//! |---|---|---|
//! | [text map](text_map) (any string map) | decimal `traceid`, `parentid`, `spanid`, `resource` | veneur's four ID key groups, first complete one wins |
//! | [HTTP headers](http) ([`HeaderMap`](::http::HeaderMap)) | one [`HeaderFormat`]; default Envoy hex `ot-tracer-*` | a list of formats, default [`DEFAULT_EXTRACT_FORMATS`] |
//! | [binary] (protobuf `SSFSpan` bytes) | `trace_id`, `id`, `parent_id`, `resource` tag, service | `trace_id`, `id`, `resource` tag |
//!
//! W3C Trace Context `traceparent` and `tracestate` headers ([`w3c`]) are available as an
//! opt-in [`HeaderFormat::W3c`], and are continued without loss: the 128-bit trace ID,
//! the flags and `tracestate` go on downstream.
//!
//! Every carrier also carries the trace's sampling decision
//! ([`SpanContext::sampled`](crate::SpanContext::sampled): `ot-tracer-sampled`, or the
//! `traceparent` flag) and its [baggage](crate::Baggage) (`ot-baggage-<key>` entries, or
//! the W3C `baggage` header: see [`baggage`]). Baggage is bounded
//! ([`MAX_ITEMS`](crate::baggage::MAX_ITEMS), [`MAX_BYTES`](crate::baggage::MAX_BYTES));
//! a carrier's baggage over the limits or malformed is refused whole and the trace is
//! still extracted.
//!
//! # Differences from veneur
//!
//! Extraction is stricter than veneur's, so that a garbled header never produces a
//! half-valid context:
//!
//! * a key group counts only when *both* its trace ID and its span ID are present, parse
//!   and are non-zero; otherwise the next group is tried. veneur accepted a lone `Traceid`
//!   (span ID 0) but rejected a lone `Trace-Id`;
//! * a number outside the 64-bit range is rejected instead of being clamped to `i64::MAX`
//!   or `i64::MIN`;
//! * hexadecimal IDs are read and written as the 64 bits of the ID, so the Envoy header
//!   `ffffffffffffffff` is the ID −1 and round trips (veneur clamped it to `i64::MAX` and
//!   wrote −1 as `-1`, which it still accepts);
//! * binary extraction rejects zero IDs; binary injection leaves the timestamps 0 instead of
//!   veneur's overflowed "zero time";
//! * error messages follow Rust conventions: `error parsing fields from text map: ...`
//!   instead of veneur's `error parsing fields from TextMapReader` (and, in
//!   [`crate::metrics`], `no metrics to send` instead of `No metrics to send.`).
//!
//! Nothing here panics or allocates more than a copy of the matched values, whatever the
//! carrier holds.
//!
//! # Examples
//!
//! ```
//! use std::collections::HashMap;
//! use trace_client::SpanContext;
//! use trace_client::propagation::{self, HeaderFormat};
//!
//! let ctx = SpanContext::new(12345, 67890).with_resource("checkout");
//!
//! let mut map = HashMap::new();
//! propagation::inject_text_map(&ctx, &mut map);
//! assert_eq!(propagation::extract_text_map(&map)?, ctx);
//!
//! let mut headers = http::HeaderMap::new();
//! propagation::inject_headers(&ctx, &mut headers, HeaderFormat::Envoy);
//! assert_eq!(headers["ot-tracer-traceid"], "3039");
//! let remote = propagation::extract_headers(&headers, propagation::DEFAULT_EXTRACT_FORMATS)?;
//! assert_eq!((remote.trace_id, remote.span_id), (12345, 67890));
//! # Ok::<(), propagation::ExtractError>(())
//! ```

pub mod baggage;
pub mod binary;
pub mod http;
mod parse;
pub mod text_map;
pub mod w3c;

pub use self::binary::{extract_binary, inject_binary, to_binary};
pub use self::http::{
    CustomHeaders, CustomHeadersError, DEFAULT_EXTRACT_FORMATS, DEFAULT_INJECT_FORMAT,
    HeaderExtraction, HeaderFormat, IdEncoding, extract_baggage, extract_headers,
    extract_headers_checked, inject_headers,
};
pub use self::parse::{ExtractError, RESOURCE_KEY};
pub use self::text_map::{
    TextMapReader, TextMapWriter, extract_text_map, extract_text_map_from, inject_text_map,
};
