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

/// A function running a closure on the [`SpanData`] of a span, if it has any; with
/// `nearest`, on that of the span or else of its nearest ancestor that has one.
type WithDataFn = fn(&Dispatch, &span::Id, bool, &mut dyn FnMut(&mut SpanData));

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
            with_data: |_, _, _, _| {},
            max_samples: 0,
            stats: LayerStats::default(),
        }
    }

    fn with_data(
        &self,
        dispatch: &Dispatch,
        id: &span::Id,
        nearest: bool,
        f: &mut dyn FnMut(&mut SpanData),
    ) {
        (self.with_data)(dispatch, id, nearest, f);
    }
}

fn with_data<S>(dispatch: &Dispatch, id: &span::Id, nearest: bool, f: &mut dyn FnMut(&mut SpanData))
where
    S: tracing_core::Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(subscriber) = dispatch.downcast_ref::<S>() else {
        return;
    };
    let Some(span) = subscriber.span(id) else {
        return;
    };
    if !nearest {
        if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
            f(data);
        }
        return;
    }
    for span in span.scope() {
        if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
            f(data);
            return;
        }
    }
}

/// Runs `f` on the SSF state of `span` (with `nearest`, of `span` or else of its nearest
/// exported ancestor); returns `None` when there is none: the span is disabled, closed,
/// filtered out of the layer, or no [`SsfLayer`](crate::SsfLayer) is installed.
fn with_span_data<R>(
    span: &tracing::Span,
    nearest: bool,
    f: impl FnOnce(&mut SpanData, &WithContext) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut result = None;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(table) = dispatch.downcast_ref::<WithContext>() {
            table.with_data(dispatch, id, nearest, &mut |data| {
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

    /// Makes the span stand for an SSF span recorded elsewhere, usually the request span
    /// of trace-http's server middleware or a `trace_client::Span`: the span takes `ctx`'s
    /// trace ID, span ID, parent ID and resource, `tracing` spans created inside it become
    /// children of `ctx`, and the layer does **not** export it, since its owner records it.
    ///
    /// Fields recorded on the span, samples added to it and events inside it (metric or
    /// error-level) are dropped with it: put them on the span's owner or on a child span.
    /// Call it right after creating the span, before creating children. A context that is
    /// not [valid](SpanContext::is_valid) is ignored. [`context_span`] creates such a span.
    ///
    /// # Examples
    ///
    /// ```
    /// use trace_client::SpanContext;
    /// use tracing_ssf::{SsfLayer, SsfSpanExt};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let (client, mut rx) = trace_client::Client::channel(16);
    /// let subscriber = tracing_subscriber::registry().with(SsfLayer::new(client));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let request = tracing::info_span!("request");
    ///     let owner = SpanContext::new(12345, 67890); // recorded by someone else
    ///     request.set_ssf_context(owner.clone());
    ///     assert_eq!(request.ssf_context(), Some(owner));
    ///     request.in_scope(|| tracing::info_span!("query").in_scope(|| {}));
    /// });
    /// let query = rx.try_recv().unwrap();
    /// assert_eq!((query.name.as_str(), query.trace_id, query.parent_id), ("query", 12345, 67890));
    /// assert!(rx.try_recv().is_err(), "the stand-in is not exported");
    /// ```
    fn set_ssf_context(&self, ctx: SpanContext);

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
        with_span_data(self, false, |data, _| data.context())
    }

    fn set_ssf_parent(&self, parent: SpanContext) {
        if parent.is_valid() {
            with_span_data(self, false, |data, _| data.set_parent(&parent));
        }
    }

    fn set_ssf_context(&self, ctx: SpanContext) {
        if ctx.is_valid() {
            with_span_data(self, false, |data, _| data.stand_for(&ctx));
        }
    }

    fn add_ssf_sample(&self, sample: SsfSample) {
        with_span_data(self, false, |data, table| {
            if !data.push_sample(sample, table.max_samples) {
                table.stats.add_samples_dropped(1);
            }
        });
    }
}

/// The target of the spans [`context_span`] creates.
pub const CONTEXT_TARGET: &str = "tracing_ssf::context";

/// The SSF context of the current `tracing` span, or of its nearest ancestor an
/// [`SsfLayer`](crate::SsfLayer) exports (spans filtered out of the layer are skipped, as
/// when exporting); `None` outside every exported span or without the layer.
///
/// It is [`tracing::Span::current()`]`.`[`ssf_context()`](SsfSpanExt::ssf_context), but
/// for a current span filtered out of the layer. Its signature fits trace-http's
/// `ClientTraceLayer::context_from`, so that outgoing requests carry the current `tracing`
/// span: `ClientTraceLayer::new().context_from(tracing_ssf::current_context)`.
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
///     assert_eq!(tracing_ssf::current_context(), None);
///     let span = tracing::info_span!("work");
///     let _entered = span.enter();
///     assert_eq!(tracing_ssf::current_context(), span.ssf_context());
///     assert!(tracing_ssf::current_context().is_some());
/// });
/// ```
pub fn current_context() -> Option<SpanContext> {
    with_span_data(&tracing::Span::current(), true, |data, _| data.context())
}

/// A new `tracing` span standing for `ctx`, an SSF span recorded elsewhere (see
/// [`SsfSpanExt::set_ssf_context`]): entering it makes `tracing` spans created inside it
/// children of `ctx`; the layer does not export it.
///
/// It is an `INFO` span named `ssf.context` with the target [`CONTEXT_TARGET`]; a filter
/// that hides it (a level above `INFO`, a target list without `tracing_ssf`) makes it
/// disabled, and entering it then does nothing.
pub fn context_span(ctx: SpanContext) -> tracing::Span {
    let span = tracing::info_span!(target: "tracing_ssf::context", "ssf.context");
    span.set_ssf_context(ctx);
    span
}

/// For trace-http's `ServerTraceLayer::enter_with`: makes each request's span the current
/// `tracing` span of its handler.
///
/// Called with the request span's context, it creates a [`context_span`] for it and
/// returns a function entering that span (the server middleware calls it around each poll
/// of the handler and drops the guard after). `tracing` spans the handler opens are then
/// children of the request's span, even when the connection's task runs inside another
/// exported `tracing` span, and [`current_context`] in the handler is the request's
/// context.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
///
/// use http::{Request, Response};
/// use tower::{Layer, ServiceExt, service_fn};
/// use tracing::Instrument;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (client, mut rx) = trace_client::Client::channel(16);
/// let layer = tracing_ssf::SsfLayer::new(client.clone());
/// let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
///
/// let service = trace_http::ServerTraceLayer::new()
///     .client(client)
///     .enter_with(tracing_ssf::enter_context)
///     .layer(service_fn(|_req: Request<()>| async {
///         let _query = tracing::info_span!("query").entered();
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
/// // The connection is served inside a `tracing` span of its own.
/// let request = Request::get("/users").body(())?;
/// service.oneshot(request).instrument(tracing::info_span!("connection")).await?;
///
/// let (query, request, connection) = (rx.try_recv()?, rx.try_recv()?, rx.try_recv()?);
/// assert_eq!(request.name, "GET /users");
/// assert_eq!((query.trace_id, query.parent_id), (request.trace_id, request.id));
/// assert_eq!(connection.name, "connection");
/// # Ok(())
/// # }
/// ```
pub fn enter_context(
    ctx: &SpanContext,
) -> impl FnMut() -> tracing::span::EnteredSpan + Send + Sync + use<> {
    let span = context_span(ctx.clone());
    move || span.clone().entered()
}
