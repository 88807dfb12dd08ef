use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use tower_service::Service;
use trace_client::propagation::{self, HeaderFormat};
use trace_client::{Client, Span, SpanContext, context};

use super::{ClientTraceLayer, ContextFn, ResponseFuture};
use crate::common::tag_request;
use crate::macros::define_inner_service_accessors;
use crate::server::DefaultSpanName;
use crate::tags;

/// Middleware that carries the current trace into outgoing requests; made by
/// [`ClientTraceLayer`].
///
/// See the [module docs](crate::client) for what it does.
#[derive(Clone)]
pub struct ClientTrace<S, N = DefaultSpanName> {
    pub(crate) inner: S,
    pub(crate) formats: Arc<[HeaderFormat]>,
    pub(crate) spans: bool,
    pub(crate) span_name: N,
    pub(crate) client: Option<Client>,
    pub(crate) context_from: Option<ContextFn>,
}

impl<S> ClientTrace<S> {
    /// Wraps `inner` with the default settings of [`ClientTraceLayer::new`].
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&ClientTraceLayer::new(), inner)
    }
}

impl ClientTrace<()> {
    /// A [`ClientTraceLayer`] with the default settings, to configure: the same as
    /// [`ClientTraceLayer::new`], callable as `ClientTrace::layer()`.
    pub fn layer() -> ClientTraceLayer {
        ClientTraceLayer::new()
    }
}

impl<S, N> ClientTrace<S, N> {
    define_inner_service_accessors!();
}

impl<S, N, ReqBody, ResBody> Service<Request<ReqBody>> for ClientTrace<S, N>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    N: Fn(&Parts) -> String,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let parent = parts
            .extensions
            .get::<SpanContext>()
            .cloned()
            .or_else(|| self.context_from.and_then(|f| f()))
            .or_else(context::current);
        let mut span = self.spans.then(|| {
            let name = (self.span_name)(&parts);
            let mut span = match &parent {
                Some(parent) => Span::child_of(parent, name),
                None => Span::root(name),
            };
            tag_request(&mut span, &parts, tags::KIND_CLIENT);
            match &self.client {
                Some(client) => span.with_client(client.clone()),
                None => span,
            }
        });
        let injected = match span {
            Some(ref mut span) => {
                // The decision travels with the request: make it now.
                if let Some(client) = self.client.clone().or_else(trace_client::default::get) {
                    span.sample_with(&client);
                }
                Some(span.context())
            }
            None => parent.map(|mut ctx| {
                if ctx.sampled.is_none() {
                    if let Some(client) = self.client.clone().or_else(trace_client::default::get) {
                        ctx.sampled = Some(client.sampler().samples(ctx.trace_id, None));
                    }
                }
                ctx
            }),
        };
        if let Some(ctx) = &injected {
            for &format in self.formats.iter() {
                propagation::inject_headers(ctx, &mut parts.headers, format);
            }
        }
        ResponseFuture::new(self.inner.call(Request::from_parts(parts, body)), span)
    }
}

impl<S: fmt::Debug, N> fmt::Debug for ClientTrace<S, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientTrace");
        d.field("inner", &self.inner);
        let context_from = self.context_from.is_some();
        super::layer::debug_config::<N>(
            &mut d,
            &self.formats,
            self.spans,
            &self.client,
            context_from,
        );
        d.finish()
    }
}
