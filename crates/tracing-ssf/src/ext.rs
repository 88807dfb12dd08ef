//! Reaching a span's SSF state from a `tracing::Span` handle.
//!
//! A `tracing::Span` only knows its ID and its dispatcher. The layer, when it is attached to
//! a subscriber of type `S`, stores a [`WithContext`] function table that knows `S`; the
//! extension trait asks the dispatcher for that table (`Dispatch::downcast_ref`, which the
//! layer answers in `Layer::downcast_raw`) and calls it with the span's ID.

use ssf_proto::SsfSample;
use trace_client::SpanContext;
use tracing_core::{Dispatch, span};
use tracing_subscriber::registry::LookupSpan;

use crate::data::SpanData;
use crate::stats::LayerStats;

/// A function running a closure on the [`SpanData`] of a span, if it has any.
type WithDataFn = fn(&Dispatch, &span::Id, &mut dyn FnMut(&mut SpanData));

/// The layer's function table: runs a closure on the [`SpanData`] of span `id`, if the
/// subscriber knows the span and the layer exports it; with the layer's sample cap and
/// counters.
#[derive(Clone)]
pub(crate) struct WithContext {
    with_data: WithDataFn,
    max_samples: usize,
    stats: LayerStats,
}

impl WithContext {
    /// The table for a layer attached to a subscriber of type `S`.
    pub(crate) fn new<S>(max_samples: usize, stats: LayerStats) -> Self
    where
        S: tracing_core::Subscriber + for<'a> LookupSpan<'a>,
    {
        WithContext {
            with_data: with_data::<S>,
            max_samples,
            stats,
        }
    }

    /// The table of a layer not attached to any subscriber: it finds nothing.
    pub(crate) fn detached() -> Self {
        WithContext {
            with_data: |_, _, _| {},
            max_samples: 0,
            stats: LayerStats::default(),
        }
    }

    fn with_data(&self, dispatch: &Dispatch, id: &span::Id, f: &mut dyn FnMut(&mut SpanData)) {
        (self.with_data)(dispatch, id, f);
    }
}

fn with_data<S>(dispatch: &Dispatch, id: &span::Id, f: &mut dyn FnMut(&mut SpanData))
where
    S: tracing_core::Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(subscriber) = dispatch.downcast_ref::<S>() else {
        return;
    };
    let Some(span) = subscriber.span(id) else {
        return;
    };
    let mut extensions = span.extensions_mut();
    if let Some(data) = extensions.get_mut::<SpanData>() {
        f(data);
    }
}

/// Runs `f` on the SSF state of `span`; returns `None` when the span is disabled, closed,
/// filtered out of the layer, or no [`SsfLayer`](crate::SsfLayer) is installed.
fn with_span_data<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanData, &WithContext) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut result = None;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(table) = dispatch.downcast_ref::<WithContext>() {
            table.with_data(dispatch, id, &mut |data| {
                if let Some(f) = f.take() {
                    result = Some(f(data, table));
                }
            });
        }
    });
    result
}

/// SSF methods on [`tracing::Span`], for spans exported by an [`SsfLayer`](crate::SsfLayer).
///
/// Each method does nothing (or returns `None`) when the span is disabled, already closed,
/// filtered out of the layer, or when the span's subscriber has no `SsfLayer`.
pub trait SsfSpanExt {
    /// The span's SSF identity: trace ID, span ID, parent ID and the trace's resource, for
    /// injecting into an outgoing request with
    /// [`trace_client::propagation`](trace_client::propagation).
    ///
    /// # Examples
    ///
    /// ```
    /// use tracing_ssf::{SsfLayer, SsfSpanExt};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let (client, _rx) = trace_client::Client::channel(16);
    /// let subscriber = tracing_subscriber::registry().with(SsfLayer::new(client));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let parent = tracing::info_span!("request");
    ///     let child = parent.in_scope(|| tracing::info_span!("query"));
    ///     let (p, c) = (parent.ssf_context().unwrap(), child.ssf_context().unwrap());
    ///     assert_eq!(c.trace_id, p.trace_id);
    ///     assert_eq!(c.parent_id, p.span_id);
    ///
    ///     let mut headers = http::HeaderMap::new();
    ///     trace_client::propagation::inject_headers(
    ///         &c,
    ///         &mut headers,
    ///         trace_client::propagation::HeaderFormat::Envoy,
    ///     );
    ///     assert!(headers.contains_key("ot-tracer-traceid"));
    /// });
    /// ```
    fn ssf_context(&self) -> Option<SpanContext>;

    /// Makes the span a child of `parent`, usually a span of another process extracted
    /// from a request's headers: the span takes `parent`'s trace ID, its parent ID becomes
    /// `parent.span_id`, and a non-empty `parent.resource` becomes the trace's resource.
    ///
    /// Call it right after creating the span, before creating children: children created
    /// earlier keep the trace they started in. A context that is not
    /// [valid](SpanContext::is_valid) is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use tracing_ssf::{SsfLayer, SsfSpanExt};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let (client, _rx) = trace_client::Client::channel(16);
    /// let subscriber = tracing_subscriber::registry().with(SsfLayer::new(client));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let mut headers = http::HeaderMap::new();
    ///     headers.insert("ot-tracer-traceid", "3039".parse().unwrap());
    ///     headers.insert("ot-tracer-spanid", "10932".parse().unwrap());
    ///     let remote = trace_client::propagation::extract_headers(
    ///         &headers,
    ///         trace_client::propagation::DEFAULT_EXTRACT_FORMATS,
    ///     )
    ///     .unwrap();
    ///
    ///     let span = tracing::info_span!("handle");
    ///     span.set_ssf_parent(remote);
    ///     let ctx = span.ssf_context().unwrap();
    ///     assert_eq!((ctx.trace_id, ctx.parent_id), (12345, 67890));
    /// });
    /// ```
    fn set_ssf_parent(&self, parent: SpanContext);

    /// Adds an SSF sample (a metric) to the span, sent with it when it closes.
    ///
    /// A span holds at most [`SsfLayer::max_samples`](crate::SsfLayer::max_samples)
    /// samples; beyond that the sample is dropped and counted in
    /// [`LayerStats::samples_dropped`](crate::LayerStats::samples_dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use tracing_ssf::{SsfLayer, SsfSpanExt};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (client, mut rx) = trace_client::Client::channel(16);
    /// let subscriber = tracing_subscriber::registry().with(SsfLayer::new(client));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let span = tracing::info_span!("upload");
    ///     span.add_ssf_sample(ssf_proto::sample::count("upload.bytes", 512.0));
    /// });
    /// let sent = rx.recv().await.unwrap();
    /// assert_eq!(sent.metrics[0].name, "upload.bytes");
    /// # }
    /// ```
    fn add_ssf_sample(&self, sample: SsfSample);
}

impl SsfSpanExt for tracing::Span {
    fn ssf_context(&self) -> Option<SpanContext> {
        with_span_data(self, |data, _| data.context())
    }

    fn set_ssf_parent(&self, parent: SpanContext) {
        if parent.is_valid() {
            with_span_data(self, |data, _| data.set_parent(&parent));
        }
    }

    fn add_ssf_sample(&self, sample: SsfSample) {
        with_span_data(self, |data, table| {
            if !data.push_sample(sample, table.max_samples) {
                table.stats.add_samples_dropped(1);
            }
        });
    }
}
