use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;
use trace_client::propagation::{self, HeaderFormat};
use trace_client::{Client, Span, SpanContext, context};

use super::{
    DefaultEnter, DefaultExclude, DefaultSpanName, ResponseBody, ResponseFuture, ServerTraceLayer,
};
use crate::common::tag_request;
use crate::macros::define_inner_service_accessors;
use crate::tags;

/// Middleware that traces each request of a server; made by [`ServerTraceLayer`].
///
/// See the [module docs](crate::server) for what it does.
#[derive(Clone)]
pub struct ServerTrace<S, N = DefaultSpanName, E = DefaultExclude, H = DefaultEnter> {
    pub(crate) inner: S,
    pub(crate) formats: Arc<[HeaderFormat]>,
    pub(crate) span_name: N,
    pub(crate) exclude: E,
    pub(crate) client: Option<Client>,
    pub(crate) body_end: bool,
    pub(crate) enter: Option<H>,
}

impl<S> ServerTrace<S> {
    /// Wraps `inner` with the default settings of [`ServerTraceLayer::new`].
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&ServerTraceLayer::new(), inner)
    }
}

impl ServerTrace<()> {
    /// A [`ServerTraceLayer`] with the default settings, to configure: the same as
    /// [`ServerTraceLayer::new`], callable as `ServerTrace::layer()`.
    pub fn layer() -> ServerTraceLayer {
        ServerTraceLayer::new()
    }
}

impl<S, N, E, H> ServerTrace<S, N, E, H> {
    define_inner_service_accessors!();
}

impl<S, N, E, H> ServerTrace<S, N, E, H>
where
    N: Fn(&Parts) -> String,
{
    /// Starts the request's span: a child of the caller's span when the headers name one,
    /// else a root (with the request's baggage, if any), its sampling decision made.
    fn start_span(&self, parts: &Parts) -> Span {
        let name = (self.span_name)(parts);
        let found = propagation::extract_headers_checked(&parts.headers, &self.formats);
        let mut span = match found.context {
            Ok(remote) => {
                let mut span = Span::child_of(&remote, name);
                if span.resource().is_empty() {
                    let resource = span.name().to_owned();
                    span.set_resource(resource);
                }
                span
            }
            Err(_) => {
                let mut span = Span::root(name);
                // W3C baggage travels without a trace context too.
                if let Ok(baggage) = found.baggage.as_ref() {
                    span.set_baggage(baggage.clone());
                }
                span
            }
        };
        tag_request(&mut span, parts, tags::KIND_SERVER);
        let client = self.client.clone().or_else(trace_client::default::get);
        if let Some(client) = &client {
            if found.baggage.is_err() {
                client.count_refused_baggage();
            }
            span.sample_with(client);
        }
        match &self.client {
            Some(client) => span.with_client(client.clone()),
            None => span,
        }
    }
}

impl<S, N, E, H, P, G, ReqBody, ResBody> Service<Request<ReqBody>> for ServerTrace<S, N, E, H>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
    N: Fn(&Parts) -> String,
    E: Fn(&Parts) -> bool,
    H: Fn(&SpanContext) -> P,
    P: FnMut() -> G,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        if (self.exclude)(&parts) {
            let future = self.inner.call(Request::from_parts(parts, body));
            return ResponseFuture::untraced(future);
        }
        let span = self.start_span(&parts);
        let ctx = span.context();
        parts.extensions.insert(ctx.clone());
        let req = Request::from_parts(parts, body);
        let mut enter = self.enter.as_ref().map(|hook| hook(&ctx));
        // Some services do their work in `call` itself: make the span current there too.
        let inner = &mut self.inner;
        let future = ctx.clone().in_scope(|| {
            let _entered = enter.as_mut().map(|enter| enter());
            inner.call(req)
        });
        ResponseFuture::traced(context::in_span(ctx, future), span, self.body_end, enter)
    }
}

impl<S: fmt::Debug, N, E, H> fmt::Debug for ServerTrace<S, N, E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerTrace");
        d.field("inner", &self.inner);
        super::layer::debug_config::<N, E, H>(
            &mut d,
            &self.formats,
            &self.client,
            self.body_end,
            &self.enter,
        );
        d.finish()
    }
}
