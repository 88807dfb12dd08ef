//! What the layer keeps in a span's extensions, and how `tracing` fields become SSF tags.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use ssf_proto::sample::{self, SampleExt};
use ssf_proto::wire::SpanFields;
use ssf_proto::{Metric, SsfSample, SsfSpan};
use trace_client::{Baggage, SpanContext, W3cTrace};
use tracing_core::field::{Field, Visit};

/// The field that sets the error flag (`bool`) or carries the error itself (any other value).
pub(crate) const ERROR_FIELD: &str = "error";
/// The field that sets the indicator flag.
pub(crate) const INDICATOR_FIELD: &str = "indicator";
/// The fields that replace the span's name.
pub(crate) const NAME_FIELDS: [&str; 2] = ["ssf.name", "otel.name"];
/// The field `tracing`'s macros put an event's message in.
const MESSAGE_FIELD: &str = "message";

/// The SSF state of one `tracing` span, stored in its extensions from creation to close.
#[derive(Debug)]
pub(crate) struct SpanData {
    pub(crate) trace_id: i64,
    pub(crate) span_id: i64,
    pub(crate) parent_id: i64,
    /// The trace's resource, shared with the children; `None` when unknown.
    pub(crate) resource: Option<Arc<str>>,
    /// Creation time, in nanoseconds since the Unix epoch.
    pub(crate) start: i64,
    /// A name given by a `ssf.name`/`otel.name` field, replacing the `tracing` span name.
    pub(crate) name: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) error: bool,
    pub(crate) indicator: bool,
    pub(crate) samples: Vec<SsfSample>,
    /// `false` for a span standing for an SSF span recorded elsewhere
    /// ([`SpanData::stand_for`]): the layer does not export it.
    pub(crate) export: bool,
    /// What the trace carries besides IDs (sampling decision, baggage, W3C trace), from
    /// the context it continues; shared with the children. `None` when nothing.
    pub(crate) carried: Option<Arc<Carried>>,
}

/// The parts of a [`SpanContext`] beyond the IDs and the resource.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Carried {
    sampled: Option<bool>,
    baggage: Baggage,
    w3c: Option<W3cTrace>,
}

impl Carried {
    /// What `ctx` carries, if anything.
    pub(crate) fn of(ctx: &SpanContext) -> Option<Arc<Carried>> {
        (ctx.sampled.is_some() || !ctx.baggage.is_empty() || ctx.w3c.is_some()).then(|| {
            Arc::new(Carried {
                sampled: ctx.sampled,
                baggage: ctx.baggage.clone(),
                w3c: ctx.w3c.clone(),
            })
        })
    }
}

impl SpanData {
    pub(crate) fn new(
        trace_id: i64,
        span_id: i64,
        parent_id: i64,
        resource: Option<Arc<str>>,
        start: i64,
    ) -> Self {
        SpanData {
            trace_id,
            span_id,
            parent_id,
            resource,
            start,
            name: None,
            tags: BTreeMap::new(),
            error: false,
            indicator: false,
            samples: Vec::new(),
            export: true,
            carried: None,
        }
    }

    /// The trace's sampling decision, if it carries one.
    pub(crate) fn sampled(&self) -> Option<bool> {
        self.carried.as_ref().and_then(|c| c.sampled)
    }

    /// The context children and carriers see.
    pub(crate) fn context(&self) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            resource: self.resource.as_deref().unwrap_or_default().to_owned(),
            sampled: self.sampled(),
            baggage: self
                .carried
                .as_ref()
                .map(|c| c.baggage.clone())
                .unwrap_or_default(),
            w3c: self.carried.as_ref().and_then(|c| c.w3c.clone()),
        }
    }

    /// Makes the span a child of `parent`, which usually lives in another process.
    pub(crate) fn set_parent(&mut self, parent: &SpanContext) {
        self.trace_id = parent.trace_id;
        self.parent_id = parent.span_id;
        if !parent.resource.is_empty() {
            self.resource = Some(Arc::from(parent.resource.as_str()));
        }
        self.carried = Carried::of(parent);
    }

    /// Makes the span stand for `ctx`, an SSF span recorded elsewhere: it takes `ctx`'s
    /// identity, its children become `ctx`'s children, and it is not exported.
    pub(crate) fn stand_for(&mut self, ctx: &SpanContext) {
        self.trace_id = ctx.trace_id;
        self.span_id = ctx.span_id;
        self.parent_id = ctx.parent_id;
        self.resource = (!ctx.resource.is_empty()).then(|| Arc::from(ctx.resource.as_str()));
        self.carried = Carried::of(ctx);
        self.export = false;
    }

    /// Sets the error flag and the error tags as `trace_client::Span::error` does for an
    /// error whose type has no name.
    pub(crate) fn set_error_tags(&mut self, message: &str) {
        self.error = true;
        self.tags.insert("error.msg".to_owned(), message.to_owned());
        self.tags
            .insert("error.type".to_owned(), ERROR_FIELD.to_owned());
        self.tags
            .insert("error.stack".to_owned(), message.to_owned());
    }

    /// Adds `sample` unless the span already holds `max` samples; returns whether it was
    /// added.
    /// The span as SSF, moving its strings, maps and samples.
    pub(crate) fn into_ssf(self, default_name: &str, service: String, end: i64) -> SsfSpan {
        SsfSpan {
            trace_id: self.trace_id,
            id: self.span_id,
            parent_id: self.parent_id,
            start_timestamp: self.start,
            end_timestamp: end,
            error: self.error,
            service,
            metrics: self.samples,
            tags: self.tags,
            indicator: self.indicator,
            name: self.name.unwrap_or_else(|| default_name.to_owned()),
            ..Default::default()
        }
    }

    pub(crate) fn push_sample(&mut self, sample: SsfSample, max: usize) -> bool {
        if self.samples.len() < max {
            self.samples.push(sample);
            true
        } else {
            false
        }
    }
}

/// A `fmt::Write` into a string that keeps at most `max` bytes and silently drops the rest,
/// cutting at a character boundary. Rendering a huge value costs no more memory than `max`.
/// A finished span's data, with what it is finished with: the view the client encodes
/// it through.
pub(crate) struct Finished<'a> {
    pub(crate) data: &'a SpanData,
    /// The name when the span did not set one (the `tracing` span's name).
    pub(crate) default_name: &'a str,
    pub(crate) service: &'a str,
    pub(crate) end: i64,
}

impl Finished<'_> {
    /// The span as SSF, for clients that need one.
    pub(crate) fn to_ssf(&self) -> SsfSpan {
        SsfSpan {
            trace_id: self.data.trace_id,
            id: self.data.span_id,
            parent_id: self.data.parent_id,
            start_timestamp: self.data.start,
            end_timestamp: self.end,
            error: self.data.error,
            service: self.service.to_owned(),
            metrics: self.data.samples.clone(),
            tags: self.data.tags.clone(),
            indicator: self.data.indicator,
            name: SpanFields::name(self).to_owned(),
            ..Default::default()
        }
    }
}

impl SpanFields for Finished<'_> {
    type Sample = SsfSample;

    fn trace_id(&self) -> i64 {
        self.data.trace_id
    }
    fn id(&self) -> i64 {
        self.data.span_id
    }
    fn parent_id(&self) -> i64 {
        self.data.parent_id
    }
    fn start_timestamp(&self) -> i64 {
        self.data.start
    }
    fn end_timestamp(&self) -> i64 {
        self.end
    }
    fn is_error(&self) -> bool {
        self.data.error
    }
    fn service(&self) -> &str {
        self.service
    }
    fn samples(&self) -> &[SsfSample] {
        &self.data.samples
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.data.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    fn indicator(&self) -> bool {
        self.data.indicator
    }
    fn name(&self) -> &str {
        self.data.name.as_deref().unwrap_or(self.default_name)
    }
}

struct Bounded<'a> {
    buf: &'a mut String,
    max: usize,
}

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max.saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf.push_str(&s[..cut]);
            // Nothing more fits, not even a one-byte character after a cut wider one.
            self.max = self.buf.len();
        }
        Ok(())
    }
}

/// Replaces `buf`'s contents with `value` rendered by `render`, keeping at most `max` bytes.
fn render_into(buf: &mut String, max: usize, value: impl fmt::Display) {
    buf.clear();
    // `Bounded` never fails; a failing `Display` impl leaves what it wrote so far.
    let _ = write!(Bounded { buf, max }, "{value}");
}

/// `value` rendered into a new string of at most `max` bytes.
pub(crate) fn render(max: usize, value: impl fmt::Display) -> String {
    let mut s = String::new();
    render_into(&mut s, max, value);
    s
}

/// Shows a `Debug` value through `Display`.
struct AsDebug<'a>(&'a dyn fmt::Debug);

impl fmt::Display for AsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

/// Records span fields into [`SpanData`]; see the crate docs for the mapping.
pub(crate) struct FieldVisitor<'a> {
    data: &'a mut SpanData,
    max_len: usize,
}

impl<'a> FieldVisitor<'a> {
    pub(crate) fn new(data: &'a mut SpanData, max_len: usize) -> Self {
        FieldVisitor { data, max_len }
    }

    /// Stores a rendered value under the field's name, reusing the key and the buffer when
    /// the field is recorded again.
    fn tag(&mut self, field: &Field, value: impl fmt::Display) {
        let name = field.name();
        if NAME_FIELDS.contains(&name) {
            let buf = self.data.name.get_or_insert_with(String::new);
            render_into(buf, self.max_len, value);
        } else if name == ERROR_FIELD {
            let message = render(self.max_len, value);
            self.data.set_error_tags(&message);
        } else if let Some(buf) = self.data.tags.get_mut(name) {
            render_into(buf, self.max_len, value);
        } else {
            let rendered = render(self.max_len, value);
            self.data.tags.insert(name.to_owned(), rendered);
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            ERROR_FIELD => self.data.error = value,
            INDICATOR_FIELD => self.data.indicator = value,
            _ => self.tag(field, value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.tag(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.tag(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.tag(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.tag(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.tag(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.tag(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.tag(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.tag(field, AsDebug(value));
    }
}

/// The field-name prefixes that make an event field a sample, and the metric each makes,
/// after the naming convention of `tracing-opentelemetry`'s `MetricsLayer`. The longer
/// `monotonic_counter.` comes before `counter.`, which is not a prefix of it anyway.
const METRIC_PREFIXES: [(&str, Metric); 4] = [
    ("monotonic_counter.", Metric::Counter),
    ("counter.", Metric::Counter),
    ("histogram.", Metric::Histogram),
    ("gauge.", Metric::Gauge),
];

/// The metric and the sample name of a field name with a metric prefix; `None` for other
/// fields and for a bare prefix with nothing after it.
pub(crate) fn metric_field(name: &str) -> Option<(Metric, &str)> {
    METRIC_PREFIXES.iter().find_map(|&(prefix, metric)| {
        name.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty())
            .map(|rest| (metric, rest))
    })
}

/// Reads an event: its message and `error` field (for an error-level event), its metric
/// fields and, when it has any, its other fields as the samples' tags.
#[derive(Debug)]
pub(crate) struct EventVisitor {
    max_len: usize,
    /// Whether to keep the message and the `error` field.
    errors: bool,
    /// Whether to read metric fields and the tags that go with them.
    metrics: bool,
    message: Option<String>,
    error: Option<String>,
    /// The numeric metric fields: metric, sample name (borrowed from the field's static
    /// name), value.
    values: Vec<(Metric, &'static str, f32)>,
    /// The other fields, but the message; they tag each sample.
    tags: BTreeMap<String, String>,
}

impl EventVisitor {
    pub(crate) fn new(max_len: usize, errors: bool, metrics: bool) -> Self {
        EventVisitor {
            max_len,
            errors,
            metrics,
            message: None,
            error: None,
            values: Vec::new(),
            tags: BTreeMap::new(),
        }
    }

    /// The text for `error.msg`, if the event had one: its message, else its `error` field.
    pub(crate) fn take_message(&mut self) -> Option<String> {
        self.message.take().or_else(|| self.error.take())
    }

    /// How many samples [`into_samples`](Self::into_samples) makes.
    pub(crate) fn sample_count(&self) -> usize {
        self.values.len()
    }

    /// The samples the event's metric fields make, each tagged with the other fields.
    pub(crate) fn into_samples(self) -> impl Iterator<Item = SsfSample> {
        let tags = self.tags;
        self.values.into_iter().map(move |(metric, name, value)| {
            let sample = match metric {
                Metric::Gauge => sample::gauge(name, value),
                Metric::Histogram => sample::histogram(name, value),
                _ => sample::count(name, value),
            };
            sample.with_tags(tags.clone())
        })
    }

    /// Keeps a numeric value of a metric field; a value that is not finite as an `f32`
    /// (NaN, infinities, beyond `f32::MAX`) is ignored.
    fn number(&mut self, field: &Field, value: f64) {
        if !self.metrics {
            return;
        }
        if let Some((metric, name)) = metric_field(field.name()) {
            let value = value as f32;
            if value.is_finite() {
                self.values.push((metric, name, value));
            }
        } else {
            self.keep(field, value);
        }
    }

    /// Keeps a field as a sample tag, unless it is the message or a metric field (whose
    /// value is not a number, so it is ignored).
    fn tag(&mut self, field: &Field, value: impl fmt::Display) {
        let name = field.name();
        if self.metrics && name != MESSAGE_FIELD && metric_field(name).is_none() {
            let rendered = render(self.max_len, value);
            self.tags.insert(name.to_owned(), rendered);
        }
    }

    /// Keeps a field of any type: as the message or the error, and as a tag.
    fn keep(&mut self, field: &Field, value: impl fmt::Display) {
        if self.errors {
            match field.name() {
                MESSAGE_FIELD => self.message = Some(render(self.max_len, &value)),
                ERROR_FIELD => self.error = Some(render(self.max_len, &value)),
                _ => {}
            }
        }
        self.tag(field, value);
    }
}

impl Visit for EventVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value as f64);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value as f64);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value as f64);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value as f64);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.keep(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(field, AsDebug(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_rendering_cuts_at_char_boundaries() {
        assert_eq!(render(5, "hello world"), "hello");
        assert_eq!(render(100, "short"), "short");
        assert_eq!(render(0, "x"), "");
        // "é" is two bytes: cutting at 2 would split it.
        assert_eq!(render(2, "aé"), "a");
        assert_eq!(render(3, "aé"), "aé");
        // Nothing is appended after a cut, even if it would fit.
        assert_eq!(render(3, format_args!("{}{}", "aéé", "b")), "aé");
        assert_eq!(render(4, 1234567), "1234");
    }

    #[test]
    fn metric_field_names() {
        assert_eq!(
            metric_field("counter.hits"),
            Some((Metric::Counter, "hits"))
        );
        assert_eq!(
            metric_field("monotonic_counter.a.b"),
            Some((Metric::Counter, "a.b"))
        );
        assert_eq!(
            metric_field("histogram.latency"),
            Some((Metric::Histogram, "latency"))
        );
        assert_eq!(metric_field("gauge.depth"), Some((Metric::Gauge, "depth")));
        for name in [
            "counter.",
            "gauge",
            "counters.x",
            "my.counter.x",
            "message",
            "",
        ] {
            assert_eq!(metric_field(name), None, "{name}");
        }
    }

    #[test]
    fn rerendering_replaces_the_value() {
        let mut s = String::from("old value");
        render_into(&mut s, 10, "new");
        assert_eq!(s, "new");
    }

    #[test]
    fn debug_values_render_as_debug() {
        assert_eq!(render(64, AsDebug(&"q")), "\"q\"");
        assert_eq!(render(64, AsDebug(&Some(3))), "Some(3)");
    }

    #[test]
    fn context_and_remote_parent() {
        let mut data = SpanData::new(1, 2, 0, None, 10);
        assert_eq!(data.context(), SpanContext::new(1, 2));
        data.set_parent(&SpanContext::new(7, 8).with_resource("GET /"));
        assert_eq!(
            data.context(),
            SpanContext::new(7, 2)
                .with_parent_id(8)
                .with_resource("GET /")
        );
        // An empty remote resource keeps the one we had.
        data.set_parent(&SpanContext::new(9, 10));
        assert_eq!(data.context().resource, "GET /");
        assert_eq!((data.trace_id, data.parent_id), (9, 10));
    }

    #[test]
    fn standing_for_a_context() {
        let mut data = SpanData::new(1, 2, 0, Some(Arc::from("old")), 10);
        let ctx = SpanContext::new(7, 8)
            .with_parent_id(6)
            .with_resource("GET /");
        data.stand_for(&ctx);
        assert_eq!(data.context(), ctx);
        assert!(!data.export);
        data.stand_for(&SpanContext::new(7, 9));
        assert_eq!(data.context(), SpanContext::new(7, 9));
    }

    #[test]
    fn a_finished_span_uses_the_name_override_and_encodes_as_its_ssf_form() {
        let finished = |data: &SpanData, service: &'static str| -> SsfSpan {
            let view = Finished {
                data,
                default_name: "default",
                service,
                end: 20,
            };
            let ssf = view.to_ssf();
            let mut out = vec![0u8; 1024];
            let n = ssf_proto::wire::encode_fields_to_slice(&view, &mut out).unwrap();
            assert_eq!(&out[..n], &ssf_proto::wire::encode_to_vec(&ssf)[..]);
            ssf
        };
        let mut data = SpanData::new(1, 2, 3, None, 10);
        data.tags.insert("k".into(), "v".into());
        data.set_error_tags("boom");
        data.samples.push(sample::count("c", 1.0));
        let span = finished(&data, "svc");
        assert_eq!(span.name, "default");
        assert_eq!((span.trace_id, span.id, span.parent_id), (1, 2, 3));
        assert_eq!((span.start_timestamp, span.end_timestamp), (10, 20));
        assert!(span.error);
        assert_eq!(span.service, "svc");
        assert_eq!(span.tags["error.msg"], "boom");
        assert_eq!(span.tags["error.type"], "error");
        assert_eq!(span.tags["k"], "v");

        let mut data = SpanData::new(1, 2, 3, None, 10);
        data.name = Some("custom".into());
        assert_eq!(finished(&data, "").name, "custom");
    }
}
