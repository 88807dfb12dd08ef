use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;
use trace_client::propagation::{DEFAULT_INJECT_FORMAT, HeaderFormat};
use trace_client::{Client, SpanContext};

use super::ClientTrace;
use crate::common::default_span_name;
use crate::server::DefaultSpanName;

/// A [`Layer`] that carries the current trace into outgoing requests; it makes
/// [`ClientTrace`] services.
///
/// See the [module docs](crate::client) for what it does.
///
/// | setting | default |
/// |---|---|
/// | [`format`](Self::format) / [`formats`](Self::formats) | [`HeaderFormat::Envoy`], as veneur: `ot-tracer-traceid`, `ot-tracer-spanid` in hex and `ot-tracer-sampled`, baggage as `ot-baggage-*` |
/// | [`spans`](Self::spans) | `false`: inject the caller's span, start none |
/// | [`span_name`](Self::span_name) | [`default_span_name`]: `METHOD /path` (implies `spans(true)`) |
/// | [`client`](Self::client) | the [default client](trace_client::default) |
/// | [`context_from`](Self::context_from) | none: the caller's span comes from the request's extensions or [`trace_client::context::current`] |
#[derive(Clone)]
pub struct ClientTraceLayer<N = DefaultSpanName> {
    pub(crate) formats: Arc<[HeaderFormat]>,
    pub(crate) spans: bool,
    pub(crate) span_name: N,
    pub(crate) client: Option<Client>,
    pub(crate) context_from: Option<ContextFn>,
}

/// A function returning the caller's span context, for [`ClientTraceLayer::context_from`].
pub type ContextFn = fn() -> Option<SpanContext>;

impl ClientTraceLayer {
    /// A layer with the default settings (see the table above).
    pub fn new() -> Self {
        ClientTraceLayer {
            formats: Arc::from([DEFAULT_INJECT_FORMAT]),
            spans: false,
            span_name: default_span_name,
            client: None,
            context_from: None,
        }
    }
}

impl Default for ClientTraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<N> ClientTraceLayer<N> {
    /// The header format written into outgoing requests. Existing headers of that format
    /// are replaced.
    pub fn format(mut self, format: HeaderFormat) -> Self {
        self.formats = Arc::from([format]);
        self
    }

    /// Several header formats written into outgoing requests, each as
    /// [`format`](Self::format) writes it: for a service whose callees read different
    /// formats, or to keep a W3C trace whole through services that read veneur's headers
    /// (`[HeaderFormat::W3c, HeaderFormat::Envoy]`). An empty list injects nothing.
    pub fn formats(mut self, formats: &[HeaderFormat]) -> Self {
        self.formats = Arc::from(formats);
        self
    }

    /// Whether to start a client span per request: a child of the caller's span (or a
    /// root when there is none), injected instead of the caller's span so that the
    /// server's span becomes its child, and recorded when the response head arrives.
    pub fn spans(mut self, spans: bool) -> Self {
        self.spans = spans;
        self
    }

    /// The function naming each client span, called with the request's head; also turns
    /// client spans on.
    pub fn span_name<N2>(self, span_name: N2) -> ClientTraceLayer<N2>
    where
        N2: Fn(&Parts) -> String + Clone,
    {
        ClientTraceLayer {
            formats: self.formats,
            spans: true,
            span_name,
            client: self.client,
            context_from: self.context_from,
        }
    }

    /// The client to record client spans on, instead of the
    /// [default client](trace_client::default).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// A function giving the caller's span context when the request's extensions hold
    /// none, asked before [`trace_client::context::current`]: the way to carry the spans of
    /// another instrumentation into requests. With
    /// [`tracing-ssf`](https://docs.rs/tracing-ssf), `context_from(tracing_ssf::current_context)`
    /// injects the current `tracing` span.
    ///
    /// The caller's span is, in this order: a [`SpanContext`] in the request's extensions;
    /// else what `f` returns; else the task's current span
    /// ([`trace_client::context::current`]). `f` comes before the task's current span
    /// because a span of the other instrumentation is usually the more recent one: inside a
    /// handler traced by the [server middleware](crate::server), the task's current span is
    /// the request's span, and the `tracing` spans the handler opens are its descendants.
    ///
    /// `f` is called once per request, in [`Service::call`](tower_service::Service::call),
    /// on the caller's task.
    pub fn context_from(mut self, f: ContextFn) -> Self {
        self.context_from = Some(f);
        self
    }
}

impl<S, N: Clone> Layer<S> for ClientTraceLayer<N> {
    type Service = ClientTrace<S, N>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace {
            inner,
            formats: self.formats.clone(),
            spans: self.spans,
            span_name: self.span_name.clone(),
            client: self.client.clone(),
            context_from: self.context_from,
        }
    }
}

impl<N> fmt::Debug for ClientTraceLayer<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientTraceLayer");
        let context_from = self.context_from.is_some();
        debug_config::<N>(
            &mut d,
            &self.formats,
            self.spans,
            &self.client,
            context_from,
        );
        d.finish()
    }
}

/// The configuration's fields, for the layer's `Debug` and its service's.
pub(crate) fn debug_config<N>(
    d: &mut fmt::DebugStruct<'_, '_>,
    formats: &[HeaderFormat],
    spans: bool,
    client: &Option<Client>,
    context_from: bool,
) {
    d.field("formats", &formats)
        .field("spans", &spans)
        .field("span_name", &std::any::type_name::<N>())
        .field("client", client)
        .field("context_from", &context_from);
}
