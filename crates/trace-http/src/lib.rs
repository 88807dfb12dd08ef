//! Tower middleware that carries SSF traces across HTTP, for veneur.
//!
//! * [`ServerTraceLayer`] (server side): continues the caller's trace from the request
//!   headers (veneur's four header groups, W3C `traceparent` on request), records one span
//!   per request tagged with method, path and status, and makes that span the current span
//!   of the handler and the [`SpanContext`](trace_client::SpanContext) of the request's
//!   extensions. See [`server`].
//! * [`ClientTraceLayer`] (client side): writes the current span into outgoing request
//!   headers (by default as veneur does: Envoy `ot-tracer-*` headers in hex), optionally
//!   recording a client span per request. See [`client`].
//!
//! Both work with any [`tower_service::Service`] over [`http`] requests whose errors can be
//! displayed: hyper 1.x servers (through `hyper::service::service_fn`) and hyper-util's
//! client, axum routers. The crate depends only on
//! `http`, `http-body`, `tower-layer`, `tower-service` and `pin-project-lite` besides
//! `trace-client`; spans are recorded on a [`trace_client::Client`] without ever waiting.
//!
//! # Quick start
//!
//! A service B traced by the server layer, called by code that runs inside a span through
//! the client layer. In real programs the two stacks sit on either side of an HTTP
//! connection (see `examples/hyper_pair.rs` in the repository).
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use trace_client::{Client, Span, context};
//! use trace_http::{ClientTraceLayer, ServerTraceLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut spans) = Client::channel(16);
//! let service_b = ServiceBuilder::new()
//!     .layer(ServerTraceLayer::new().client(client.clone()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! let to_b = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::new().spans(true).client(client.clone()))
//!     .service(service_b);
//!
//! let root = Span::root("checkout").with_client(client);
//! let request = Request::get("http://b/stock").body(())?;
//! context::in_span(root.context(), to_b.oneshot(request)).await?;
//! root.finish()?;
//!
//! let server = spans.try_recv()?; // B's span, recorded first
//! let client_span = spans.try_recv()?;
//! let root = spans.try_recv()?;
//! assert_eq!(server.parent_id, client_span.id);
//! assert_eq!(client_span.parent_id, root.id);
//! assert!([server.trace_id, client_span.trace_id].iter().all(|&t| t == root.trace_id));
//! # Ok(())
//! # }
//! ```
//!
//! # Tags
//!
//! | tag | server span | client span |
//! |---|---|---|
//! | [`http.method`](tags::HTTP_METHOD) | yes | yes |
//! | [`http.path`](tags::HTTP_PATH) (no query string) | yes | yes |
//! | [`http.status_code`](tags::HTTP_STATUS_CODE) | when a response came | when a response came |
//! | [`span.kind`](tags::SPAN_KIND) | `server` | `client` |
//! | [`http.canceled`](tags::HTTP_CANCELED) | `true` if the response future was dropped | same |
//! | `error.msg`, `error.type`, `error.stack` | on 5xx or a service error (see [`trace_client::Span::error`]) | same |
//!
//! Methods and paths longer than [`MAX_TAG_LEN`] bytes are cut, in tags and in the default
//! span name.
//!
//! # With `tracing`
//!
//! The crate does not depend on `tracing`; with `tracing-ssf` exporting `tracing` spans,
//! the two meet both ways:
//!
//! * server side, `tracing` spans opened by a handler are children of the request's span:
//!   `tracing-ssf` continues the task's [current span](trace_client::context::current)
//!   when no exported `tracing` span encloses them. With
//!   [`ServerTraceLayer::enter_with`]`(tracing_ssf::enter_context)` the request's span is
//!   also the handler's current `tracing` span, which holds even when the connection's task
//!   runs inside another `tracing` span;
//! * client side, [`ClientTraceLayer::context_from`]`(tracing_ssf::current_context)` injects
//!   the current `tracing` span into outgoing requests.
//!
//! # Feature flags
//!
//! None.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

mod common;
mod macros;

pub mod client;
pub mod server;

pub use client::{ClientTrace, ClientTraceLayer};
pub use common::{MAX_TAG_LEN, default_span_name};
pub use server::{ResponseBody, ServerTrace, ServerTraceLayer};

/// The names of the tags the middleware sets.
pub mod tags {
    /// The request method, as in `GET`.
    pub const HTTP_METHOD: &str = "http.method";
    /// The request path, without the query string, as in `/users/42`.
    pub const HTTP_PATH: &str = "http.path";
    /// The response status code, as in `200`.
    pub const HTTP_STATUS_CODE: &str = "http.status_code";
    /// `true` when the response future was dropped before the response came.
    pub const HTTP_CANCELED: &str = "http.canceled";
    /// `server` or `client`, as in OpenTracing.
    pub const SPAN_KIND: &str = "span.kind";
    /// The [`SPAN_KIND`] of server spans.
    pub const KIND_SERVER: &str = "server";
    /// The [`SPAN_KIND`] of client spans.
    pub const KIND_CLIENT: &str = "client";
}
