//! Server middleware: continue the caller's trace and record one span per request.
//!
//! For each request, [`ServerTrace`]:
//!
//! 1. asks the [exclusion predicate](ServerTraceLayer::exclude) whether to trace it at all;
//! 2. extracts the caller's span context from the request headers, trying the
//!    [configured formats](ServerTraceLayer::extract_formats) in order (by default veneur's
//!    four header groups; W3C `traceparent` on request);
//! 3. starts a span named by the [span-name function](ServerTraceLayer::span_name)
//!    (default `METHOD /path`): a child of the caller's span, or a new root when the
//!    headers hold no complete, valid context (missing, malformed, zero, mixed groups).
//!    It inherits the caller's baggage (`ot-baggage-*`, W3C `baggage`; a root too) and
//!    W3C trace, and its sampling decision is made at once with the client's
//!    [`Sampler`](trace_client::Sampler), following the caller's when the sampler is
//!    parent-based. Baggage over its limits or malformed is left out and counted in
//!    [`ClientStats::baggage_refused`](trace_client::ClientStats::baggage_refused);
//!    the trace is kept;
//! 4. puts the span's [`SpanContext`](trace_client::SpanContext) in the request's
//!    extensions and makes it the [current span](trace_client::context::current) while
//!    the inner service's `call` and its future run, so spans started by the handler
//!    ([`Span::child_of_current`](trace_client::Span::child_of_current),
//!    [`span!`](trace_client::span!)) and the [client middleware](crate::client) are its
//!    children; [`enter_with`](ServerTraceLayer::enter_with) makes it current for another
//!    instrumentation too, such as `tracing`;
//! 5. tags it `http.method`, `http.path`, `span.kind: server` and, once the response is
//!    ready, `http.status_code`; a 5xx status or a service error marks it as an error;
//! 6. records it on the [configured client](ServerTraceLayer::client) (else the default
//!    client) when the response is ready, or
//!    [when the body ends](ServerTraceLayer::record_at_body_end).
//!
//! Recording never waits: a full queue drops the span and the client counts it.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use trace_client::{Client, SpanContext, context};
//! use trace_http::ServerTraceLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut spans) = Client::channel(16);
//! let service = ServiceBuilder::new()
//!     .layer(
//!         ServerTraceLayer::new()
//!             .client(client)
//!             .exclude(|req| req.uri.path() == "/healthz"),
//!     )
//!     .service(service_fn(|req: Request<String>| async move {
//!         let from_extensions = req.extensions().get::<SpanContext>().cloned();
//!         assert_eq!(from_extensions, context::current());
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let request = Request::get("/hello")
//!     .header("ot-tracer-traceid", "3039")
//!     .header("ot-tracer-spanid", "10932")
//!     .body(String::new())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! let span = spans.try_recv()?;
//! assert_eq!(span.name, "GET /hello");
//! assert_eq!((span.trace_id, span.parent_id), (12345, 67890));
//! assert_eq!(span.tags["http.status_code"], "200");
//!
//! let health = Request::get("/healthz").body(String::new())?;
//! service.oneshot(health).await?;
//! assert!(spans.try_recv().is_err());
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use self::body::ResponseBody;
pub use self::future::ResponseFuture;
pub use self::layer::{DefaultEnter, DefaultExclude, DefaultSpanName, ServerTraceLayer};
pub use self::service::ServerTrace;
