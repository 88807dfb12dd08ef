//! The text-map carrier: a map of string keys to string values.
//!
//! [`inject_text_map`] writes four entries, all decimal except the resource:
//!
//! | key | value |
//! |---|---|
//! | `traceid` | the trace ID |
//! | `parentid` | the span's parent ID |
//! | `spanid` | the span ID |
//! | `resource` | the resource (left out when empty) |
//! | `ot-tracer-sampled` | `true` or `false`: the trace's sampling decision (left out when none was made) |
//! | `ot-baggage-<key>` | each baggage item, its value as is |
//!
//! [`extract_text_map`] and [`extract_text_map_from`] look for veneur's four ID key groups
//! ([`DEFAULT_EXTRACT_FORMATS`]), in this order:
//! `ot-tracer-traceid`/`ot-tracer-spanid` (hexadecimal), `trace-id`/`span-id`,
//! `x-trace-id`/`x-span-id` and `traceid`/`spanid` (decimal). Keys match regardless of
//! case. The first group whose two IDs are both present, valid and non-zero wins; the
//! `resource` key gives the resource and `parentid` the parent ID (0 when absent or
//! invalid), `ot-tracer-sampled` the sampling decision and the `ot-baggage-*` keys the
//! baggage (refused whole, the trace still extracted, when over its limits). When a key occurs more than once (say `traceid` and `TraceId`), the first entry
//! in the carrier's iteration order wins; for a `HashMap` that order is unspecified.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::baggage::{OT_BAGGAGE_PREFIX, OtBaggage};
use super::http::DEFAULT_EXTRACT_FORMATS;
use super::parse::{ExtractError, RESOURCE_KEY, SAMPLED_KEY, parse_decimal, parse_sampled};
use crate::trace::context::SpanContext;

/// The key of the trace ID in text maps.
pub const TRACE_ID_KEY: &str = "traceid";
/// The key of the span ID in text maps.
pub const SPAN_ID_KEY: &str = "spanid";
/// The key of the parent span ID in text maps.
pub const PARENT_ID_KEY: &str = "parentid";

/// A carrier that extraction can read: anything that can list string entries.
///
/// Implemented for `HashMap`, `BTreeMap`, slices and `Vec`s of pairs whose keys and values
/// are `AsRef<str>`, and for [`http::HeaderMap`] (every UTF-8 value of every header).
pub trait TextMapReader {
    /// Calls `f` with every entry of the carrier.
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str));
}

/// A carrier that injection can write to.
///
/// Implemented for `HashMap<String, String>`, `BTreeMap<String, String>` (both replace
/// existing values), `Vec<(String, String)>` (appends) and [`http::HeaderMap`] (replaces;
/// a value that is not a valid header value is skipped).
pub trait TextMapWriter {
    /// Sets `key` to `value`.
    fn set(&mut self, key: &str, value: &str);
}

impl<K: AsRef<str>, V: AsRef<str>, S> TextMapReader for HashMap<K, V, S> {
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str)) {
        self.iter().for_each(|(k, v)| f(k.as_ref(), v.as_ref()));
    }
}

impl<K: AsRef<str>, V: AsRef<str>> TextMapReader for BTreeMap<K, V> {
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str)) {
        self.iter().for_each(|(k, v)| f(k.as_ref(), v.as_ref()));
    }
}

impl<K: AsRef<str>, V: AsRef<str>> TextMapReader for [(K, V)] {
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str)) {
        self.iter().for_each(|(k, v)| f(k.as_ref(), v.as_ref()));
    }
}

impl<K: AsRef<str>, V: AsRef<str>> TextMapReader for Vec<(K, V)> {
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str)) {
        self.as_slice().for_each_entry(f);
    }
}

impl TextMapReader for HeaderMap {
    fn for_each_entry(&self, f: &mut dyn FnMut(&str, &str)) {
        for (name, value) in self {
            if let Ok(value) = std::str::from_utf8(value.as_bytes()) {
                f(name.as_str(), value);
            }
        }
    }
}

impl<S: BuildHasher> TextMapWriter for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: &str) {
        self.insert(key.to_owned(), value.to_owned());
    }
}

impl TextMapWriter for BTreeMap<String, String> {
    fn set(&mut self, key: &str, value: &str) {
        self.insert(key.to_owned(), value.to_owned());
    }
}

impl TextMapWriter for Vec<(String, String)> {
    fn set(&mut self, key: &str, value: &str) {
        self.push((key.to_owned(), value.to_owned()));
    }
}

impl TextMapWriter for HeaderMap {
    fn set(&mut self, key: &str, value: &str) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            self.insert(name, value);
        }
    }
}

/// Writes `ctx` into `carrier` as decimal `traceid`, `parentid` and `spanid` entries and a
/// `resource` entry (skipped when the resource is empty).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use trace_client::SpanContext;
/// use trace_client::propagation::inject_text_map;
///
/// let mut map = BTreeMap::new();
/// inject_text_map(&SpanContext::new(1, 2).with_parent_id(3).with_resource("r"), &mut map);
/// let entries: Vec<_> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
/// assert_eq!(
///     entries,
///     [("parentid", "3"), ("resource", "r"), ("spanid", "2"), ("traceid", "1")]
/// );
/// ```
pub fn inject_text_map<W: TextMapWriter + ?Sized>(ctx: &SpanContext, carrier: &mut W) {
    carrier.set(TRACE_ID_KEY, &ctx.trace_id.to_string());
    carrier.set(PARENT_ID_KEY, &ctx.parent_id.to_string());
    carrier.set(SPAN_ID_KEY, &ctx.span_id.to_string());
    if !ctx.resource.is_empty() {
        carrier.set(RESOURCE_KEY, &ctx.resource);
    }
    if let Some(sampled) = ctx.sampled {
        carrier.set(SAMPLED_KEY, if sampled { "true" } else { "false" });
    }
    let mut key = String::from(OT_BAGGAGE_PREFIX);
    for (k, v) in ctx.baggage.iter() {
        key.truncate(OT_BAGGAGE_PREFIX.len());
        key.push_str(k);
        carrier.set(&key, v);
    }
}

/// Extracts a span context from any iterator of string pairs, such as `&HashMap<String,
/// String>` or an array of `(&str, &str)`.
///
/// See the [module documentation](self) for the keys read.
///
/// # Errors
///
/// [`ExtractError::MissingIds`] when no key group holds two valid, non-zero IDs.
///
/// # Examples
///
/// ```
/// use trace_client::propagation::extract_text_map;
///
/// let ctx = extract_text_map([("ot-tracer-traceid", "3039"), ("ot-tracer-spanid", "10932")])?;
/// assert_eq!((ctx.trace_id, ctx.span_id), (12345, 67890));
///
/// let ctx = extract_text_map([("Trace-Id", "24680"), ("Span-Id", "13579")])?;
/// assert_eq!((ctx.trace_id, ctx.span_id), (24680, 13579));
///
/// assert!(extract_text_map([("user-agent", "curl")]).is_err());
/// # Ok::<(), trace_client::propagation::ExtractError>(())
/// ```
pub fn extract_text_map<I, K, V>(carrier: I) -> Result<SpanContext, ExtractError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut scan = Scan::default();
    for (k, v) in carrier {
        scan.offer(k.as_ref(), v.as_ref());
    }
    scan.finish()
}

/// Extracts a span context from a [`TextMapReader`], such as a `HashMap`, a `Vec` of pairs
/// or an [`http::HeaderMap`] read as a plain text map.
///
/// # Errors
///
/// [`ExtractError::MissingIds`] when no key group holds two valid, non-zero IDs.
pub fn extract_text_map_from<R: TextMapReader + ?Sized>(
    carrier: &R,
) -> Result<SpanContext, ExtractError> {
    let mut scan = Scan::default();
    carrier.for_each_entry(&mut |k, v| scan.offer(k, v));
    scan.finish()
}

/// Index of the keys a text map is scanned for.
const RESOURCE_SLOT: usize = 8;
const PARENT_SLOT: usize = 9;
const SAMPLED_SLOT: usize = 10;
const SLOTS: usize = 11;

/// The key of each slot: the trace and span keys of each default format, then resource and
/// parent ID.
fn slot_key(slot: usize) -> &'static str {
    match slot {
        RESOURCE_SLOT => RESOURCE_KEY,
        PARENT_SLOT => PARENT_ID_KEY,
        SAMPLED_SLOT => SAMPLED_KEY,
        _ => {
            let format = DEFAULT_EXTRACT_FORMATS[slot / 2];
            if slot % 2 == 0 {
                format.trace_key()
            } else {
                format.span_key().unwrap_or_default()
            }
        }
    }
}

/// The first value seen for each key of interest.
#[derive(Default)]
struct Scan {
    values: [Option<String>; SLOTS],
    baggage: OtBaggage,
}

impl Scan {
    fn offer(&mut self, key: &str, value: &str) {
        self.baggage.offer(key, value, false);
        for (slot, seen) in self.values.iter_mut().enumerate() {
            if seen.is_none() && key.eq_ignore_ascii_case(slot_key(slot)) {
                *seen = Some(value.to_owned());
                return;
            }
        }
    }

    fn get(&self, slot: usize) -> Option<&str> {
        self.values[slot].as_deref()
    }

    fn finish(mut self) -> Result<SpanContext, ExtractError> {
        let (trace_id, span_id) = DEFAULT_EXTRACT_FORMATS
            .iter()
            .enumerate()
            .find_map(|(i, format)| format.parse_ids(self.get(2 * i), self.get(2 * i + 1)))
            .ok_or(ExtractError::MissingIds)?;
        Ok(SpanContext {
            trace_id,
            span_id,
            parent_id: self.get(PARENT_SLOT).and_then(parse_decimal).unwrap_or(0),
            resource: self.values[RESOURCE_SLOT].take().unwrap_or_default(),
            sampled: self.get(SAMPLED_SLOT).and_then(parse_sampled),
            baggage: self.baggage.finish().unwrap_or_default(),
            w3c: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_the_four_groups() {
        let keys: Vec<_> = (0..SLOTS).map(slot_key).collect();
        assert_eq!(
            keys,
            [
                "ot-tracer-traceid",
                "ot-tracer-spanid",
                "trace-id",
                "span-id",
                "x-trace-id",
                "x-span-id",
                "traceid",
                "spanid",
                "resource",
                "parentid",
                "ot-tracer-sampled"
            ]
        );
    }

    #[test]
    fn spec_vectors() {
        let ctx = extract_text_map([("ot-tracer-traceid", "3039"), ("ot-tracer-spanid", "10932")])
            .unwrap();
        assert_eq!(ctx, SpanContext::new(12345, 67890));
        let ctx = extract_text_map([("Trace-Id", "24680"), ("Span-Id", "13579")]).unwrap();
        assert_eq!(ctx, SpanContext::new(24680, 13579));
        let err = extract_text_map([("foo", "1"), ("bar", "2")]).unwrap_err();
        assert!(matches!(err, ExtractError::MissingIds));
        assert!(
            err.to_string()
                .starts_with("error parsing fields from text map")
        );
    }

    #[test]
    fn empty_carrier_is_an_error() {
        let empty: [(&str, &str); 0] = [];
        assert!(matches!(
            extract_text_map(empty),
            Err(ExtractError::MissingIds)
        ));
    }

    #[test]
    fn partial_groups_are_rejected_alike() {
        for partial in [
            &[("ot-tracer-traceid", "5")][..],
            &[("Trace-Id", "5")],
            &[("X-Span-Id", "5")],
            &[("Traceid", "5")],
            &[("ot-tracer-traceid", "5"), ("Span-Id", "6")],
            &[("Traceid", "5"), ("Spanid", "0")],
        ] {
            assert!(extract_text_map_from(partial).is_err(), "{partial:?}");
        }
    }

    #[test]
    fn invalid_group_falls_through_to_the_next() {
        let ctx = extract_text_map([
            ("ot-tracer-traceid", "zz"),
            ("ot-tracer-spanid", "1"),
            ("traceid", "3"),
            ("spanid", "4"),
        ])
        .unwrap();
        assert_eq!((ctx.trace_id, ctx.span_id), (3, 4));
    }

    #[test]
    fn earlier_groups_win() {
        let ctx = extract_text_map([
            ("traceid", "3"),
            ("spanid", "4"),
            ("Trace-Id", "10"),
            ("Span-Id", "11"),
            ("ot-tracer-traceid", "ff"),
            ("ot-tracer-spanid", "fe"),
        ])
        .unwrap();
        assert_eq!((ctx.trace_id, ctx.span_id), (255, 254));
    }

    #[test]
    fn out_of_range_is_rejected_not_clamped() {
        assert!(extract_text_map([("traceid", "9223372036854775808"), ("spanid", "1")]).is_err());
        assert!(
            extract_text_map([
                ("ot-tracer-traceid", "1ffffffffffffffff"),
                ("ot-tracer-spanid", "1")
            ])
            .is_err()
        );
    }

    #[test]
    fn full_width_hex_keeps_its_bits_and_negatives_are_accepted() {
        let ctx = extract_text_map([
            ("ot-tracer-traceid", "ffffffffffffffff"),
            ("ot-tracer-spanid", "-ff"),
        ])
        .unwrap();
        assert_eq!((ctx.trace_id, ctx.span_id), (-1, -255));
        let ctx = extract_text_map([("traceid", "-5"), ("spanid", "-6")]).unwrap();
        assert_eq!((ctx.trace_id, ctx.span_id), (-5, -6));
    }

    #[test]
    fn first_duplicate_wins() {
        let pairs = vec![
            ("traceid".to_owned(), "1".to_owned()),
            ("TraceId".to_owned(), "2".to_owned()),
            ("spanid".to_owned(), "bad".to_owned()),
            ("SPANID".to_owned(), "3".to_owned()),
        ];
        // The first `spanid` does not parse, and the later one is not consulted.
        assert!(extract_text_map_from(&pairs).is_err());
        let pairs = vec![
            ("TRACEID", "1"),
            ("traceid", "2"),
            ("spanid", "3"),
            ("resource", "a"),
            ("Resource", "b"),
        ];
        assert_eq!(
            extract_text_map_from(&pairs).unwrap(),
            SpanContext::new(1, 3).with_resource("a")
        );
    }

    #[test]
    fn round_trip_through_every_writer() {
        let ctx = SpanContext::new(-42, i64::MAX)
            .with_parent_id(i64::MIN)
            .with_resource("GET /cart");

        let mut hash = HashMap::new();
        inject_text_map(&ctx, &mut hash);
        assert_eq!(extract_text_map(&hash).unwrap(), ctx);
        assert_eq!(extract_text_map_from(&hash).unwrap(), ctx);

        let mut tree = BTreeMap::new();
        inject_text_map(&ctx, &mut tree);
        assert_eq!(extract_text_map_from(&tree).unwrap(), ctx);

        let mut pairs = Vec::new();
        inject_text_map(&ctx, &mut pairs);
        assert_eq!(pairs.len(), 4);
        assert_eq!(extract_text_map_from(&pairs).unwrap(), ctx);

        let mut headers = HeaderMap::new();
        inject_text_map(&ctx, &mut headers);
        assert_eq!(extract_text_map_from(&headers).unwrap(), ctx);
    }

    #[test]
    fn injected_values_are_decimal() {
        let mut map = HashMap::new();
        inject_text_map(&SpanContext::new(255, 16).with_resource("r"), &mut map);
        assert_eq!(map["traceid"], "255");
        assert_eq!(map["spanid"], "16");
        assert_eq!(map["parentid"], "0");
        assert_eq!(map["resource"], "r");
        let mut map = HashMap::new();
        inject_text_map(&SpanContext::new(1, 2), &mut map);
        assert!(!map.contains_key("resource"));
    }

    #[test]
    fn bad_parent_id_is_zero() {
        let ctx = extract_text_map([("traceid", "1"), ("spanid", "2"), ("parentid", "x")]).unwrap();
        assert_eq!(ctx.parent_id, 0);
    }

    #[test]
    fn header_writer_skips_invalid_values() {
        let mut headers = HeaderMap::new();
        inject_text_map(&SpanContext::new(1, 2).with_resource("a\nb"), &mut headers);
        assert!(headers.get("resource").is_none());
        assert_eq!(headers["traceid"], "1");
        let mut headers = HeaderMap::new();
        inject_text_map(&SpanContext::new(1, 2).with_resource("café"), &mut headers);
        assert_eq!(extract_text_map_from(&headers).unwrap().resource, "café");
    }

    #[test]
    fn sampled_and_baggage_round_trip() {
        let mut ctx = SpanContext::new(1, 2).with_sampled(false);
        ctx.baggage.set("tenant", "acme corp, 50%").unwrap();
        let mut map = BTreeMap::new();
        inject_text_map(&ctx, &mut map);
        assert_eq!(map["ot-tracer-sampled"], "false");
        assert_eq!(map["ot-baggage-tenant"], "acme corp, 50%");
        let back = extract_text_map(&map).unwrap();
        assert_eq!((back.sampled, back.baggage), (Some(false), ctx.baggage));
        // Over the limits: the baggage is left out, the trace kept.
        let mut many: Vec<(String, String)> = vec![
            ("traceid".into(), "1".into()),
            ("spanid".into(), "2".into()),
        ];
        many.extend((0..100).map(|i| (format!("OT-Baggage-k{i}"), "v".to_owned())));
        let back = extract_text_map(many).unwrap();
        assert_eq!((back.trace_id, back.baggage.len()), (1, 0));
    }
}
