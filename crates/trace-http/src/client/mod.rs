//! Client middleware: carry the current trace into outgoing requests.
//!
//! For each request, [`ClientTrace`]:
//!
//! 1. finds the caller's span context: a [`SpanContext`](trace_client::SpanContext) in
//!    the request's extensions, else what the
//!    [`context_from`](ClientTraceLayer::context_from) function returns (if one is set:
//!    `tracing_ssf::current_context` gives the current `tracing` span), else the task's
//!    [current span](trace_client::context::current) (set by the
//!    [server middleware](crate::server) for a handler's future, or by
//!    [`in_span`](trace_client::context::in_span));
//! 2. optionally ([`ClientTraceLayer::spans`]) starts a client span as its child (a root
//!    when there is none), tagged `http.method`, `http.path` and `span.kind: client`;
//! 3. writes the client span's context, else the caller's, into the request headers in the
//!    [configured format](ClientTraceLayer::format) (by default veneur's: Envoy
//!    `ot-tracer-traceid` and `ot-tracer-spanid` in hex plus `ot-tracer-sampled`, and
//!    the baggage as `ot-baggage-*`; several formats with
//!    [`formats`](ClientTraceLayer::formats)), with the trace's sampling decision (made
//!    now with the client's [`Sampler`](trace_client::Sampler) if none was made yet);
//!    with neither span, the request is sent unchanged;
//! 4. records the client span, tagged `http.status_code` (an error on 5xx or a service
//!    error), when the response head arrives.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use trace_client::{Client, SpanContext, context};
//! use trace_http::ClientTraceLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut spans) = Client::channel(16);
//! // Stands for an HTTP client such as hyper-util's: echoes the trace headers it got.
//! let http_client = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::new().spans(true).client(client))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let mut response = Response::new(());
//!         *response.headers_mut() = req.headers().clone();
//!         Ok::<_, Infallible>(response)
//!     }));
//!
//! let caller = SpanContext::new(12345, 67890);
//! let request = Request::get("http://inventory/items").body(())?;
//! let response = context::in_span(caller, http_client.oneshot(request)).await?;
//!
//! let span = spans.try_recv()?;
//! assert_eq!((span.trace_id, span.parent_id, span.name.as_str()), (12345, 67890, "GET /items"));
//! // The server sees the client span as its caller.
//! assert_eq!(response.headers()["ot-tracer-traceid"], "3039");
//! assert_eq!(response.headers()["ot-tracer-spanid"], format!("{:x}", span.id));
//! assert_eq!(response.headers()["ot-tracer-sampled"], "true");
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::{ClientTraceLayer, ContextFn};
pub use self::service::ClientTrace;
