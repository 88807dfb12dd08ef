use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;
use trace_client::propagation::{DEFAULT_EXTRACT_FORMATS, HeaderFormat};
use trace_client::{Client, SpanContext};

use super::ServerTrace;
use crate::common::{default_span_name, exclude_nothing};

/// The default span-name function of [`ServerTraceLayer`] and
/// [`ClientTraceLayer`](crate::ClientTraceLayer): [`default_span_name`].
pub type DefaultSpanName = fn(&Parts) -> String;

/// The default exclusion predicate of [`ServerTraceLayer`]: excludes nothing.
pub type DefaultExclude = fn(&Parts) -> bool;

/// The type of [`ServerTraceLayer`]'s [`enter_with`](ServerTraceLayer::enter_with) hook
/// while none is set.
pub type DefaultEnter = fn(&SpanContext) -> fn();

/// A [`Layer`] that traces the requests of a server; it makes [`ServerTrace`] services.
///
/// See the [module docs](crate::server) for what it does.
///
/// | setting | default |
/// |---|---|
/// | [`extract_formats`](Self::extract_formats) | veneur's four header groups, [`DEFAULT_EXTRACT_FORMATS`] |
/// | [`span_name`](Self::span_name) | [`default_span_name`]: `METHOD /path` |
/// | [`exclude`](Self::exclude) | nothing is excluded |
/// | [`client`](Self::client) | the [default client](trace_client::default) |
/// | [`record_at_body_end`](Self::record_at_body_end) | `false`: record when the response head is ready |
/// | [`enter_with`](Self::enter_with) | none: the request's span is the handler's [`trace_client::context::current`] only |
#[derive(Clone)]
pub struct ServerTraceLayer<N = DefaultSpanName, E = DefaultExclude, H = DefaultEnter> {
    pub(crate) formats: Arc<[HeaderFormat]>,
    pub(crate) span_name: N,
    pub(crate) exclude: E,
    pub(crate) client: Option<Client>,
    pub(crate) body_end: bool,
    pub(crate) enter: Option<H>,
}

impl ServerTraceLayer {
    /// A layer with the default settings (see the table above).
    pub fn new() -> Self {
        ServerTraceLayer {
            formats: Arc::from(DEFAULT_EXTRACT_FORMATS),
            span_name: default_span_name,
            exclude: exclude_nothing,
            client: None,
            body_end: false,
            enter: None,
        }
    }
}

impl Default for ServerTraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<N, E, H> ServerTraceLayer<N, E, H> {
    /// The header formats to extract the caller's span context from, tried in order; the
    /// first one with a complete, valid pair of IDs wins. An empty list makes every span a
    /// root.
    ///
    /// W3C `traceparent` is accepted only when [`HeaderFormat::W3c`] is in the list.
    pub fn extract_formats(mut self, formats: &[HeaderFormat]) -> Self {
        self.formats = Arc::from(formats);
        self
    }

    /// The function naming each request's span, called with the request's head.
    pub fn span_name<N2>(self, span_name: N2) -> ServerTraceLayer<N2, E, H>
    where
        N2: Fn(&Parts) -> String + Clone,
    {
        ServerTraceLayer {
            formats: self.formats,
            span_name,
            exclude: self.exclude,
            client: self.client,
            body_end: self.body_end,
            enter: self.enter,
        }
    }

    /// A predicate choosing requests not to trace (health checks, metrics scrapes): they
    /// get no span, no span context in their extensions and no current span.
    pub fn exclude<E2>(self, exclude: E2) -> ServerTraceLayer<N, E2, H>
    where
        E2: Fn(&Parts) -> bool + Clone,
    {
        ServerTraceLayer {
            formats: self.formats,
            span_name: self.span_name,
            exclude,
            client: self.client,
            body_end: self.body_end,
            enter: self.enter,
        }
    }

    /// The client to record the spans on, instead of the
    /// [default client](trace_client::default).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Whether a span ends when the response body has been sent (`true`) or as soon as
    /// the inner service returns the response head (`false`, the default). With `true`, a
    /// body dropped before its end (the connection closed) still records the span then.
    pub fn record_at_body_end(mut self, at_body_end: bool) -> Self {
        self.body_end = at_body_end;
        self
    }

    /// Makes each request's span current for another instrumentation as well, such as
    /// `tracing`: `hook` is called once per traced request with the span's context and
    /// returns an `enter` function; `enter()` is called around the inner service's `call`
    /// and each poll of its future, and what it returns (a guard) is dropped right after.
    ///
    /// With [`tracing-ssf`](https://docs.rs/tracing-ssf),
    /// `enter_with(tracing_ssf::enter_context)` makes the request's span the current
    /// `tracing` span of the handler (a stand-in that `tracing-ssf` does not export, since
    /// this middleware records the span), so `tracing` spans opened by the handler are its
    /// children even when the connection's task runs inside another `tracing` span, and
    /// `tracing::Span::current()` carries the request's context.
    ///
    /// Without it, `tracing` spans still join the request's trace through
    /// [`trace_client::context::current`] when no exported `tracing` span encloses them.
    pub fn enter_with<H2, P, G>(self, hook: H2) -> ServerTraceLayer<N, E, H2>
    where
        H2: Fn(&SpanContext) -> P + Clone,
        P: FnMut() -> G,
    {
        ServerTraceLayer {
            formats: self.formats,
            span_name: self.span_name,
            exclude: self.exclude,
            client: self.client,
            body_end: self.body_end,
            enter: Some(hook),
        }
    }
}

impl<S, N: Clone, E: Clone, H: Clone> Layer<S> for ServerTraceLayer<N, E, H> {
    type Service = ServerTrace<S, N, E, H>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace {
            inner,
            formats: Arc::clone(&self.formats),
            span_name: self.span_name.clone(),
            exclude: self.exclude.clone(),
            client: self.client.clone(),
            body_end: self.body_end,
            enter: self.enter.clone(),
        }
    }
}

impl<N, E, H> fmt::Debug for ServerTraceLayer<N, E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerTraceLayer");
        debug_config::<N, E, H>(
            &mut d,
            &self.formats,
            &self.client,
            self.body_end,
            &self.enter,
        );
        d.finish()
    }
}

/// The configuration's fields, for the layer's `Debug` and its service's.
pub(crate) fn debug_config<N, E, H>(
    d: &mut fmt::DebugStruct<'_, '_>,
    formats: &[HeaderFormat],
    client: &Option<Client>,
    body_end: bool,
    enter: &Option<H>,
) {
    d.field("formats", &formats)
        .field("span_name", &std::any::type_name::<N>())
        .field("exclude", &std::any::type_name::<E>())
        .field("client", client)
        .field("record_at_body_end", &body_end)
        .field(
            "enter_with",
            &enter.as_ref().map(|_| std::any::type_name::<H>()),
        );
}
