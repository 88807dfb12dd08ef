//! Export spans made with the [`tracing`] crate as SSF spans.
//!
//! [`SsfLayer`] is a [`tracing_subscriber::Layer`]: install it on a
//! [`Registry`](tracing_subscriber::Registry) and every `tracing` span it sees becomes one
//! SSF span, sent with [`trace_client::Client::try_record`] when the `tracing` span closes.
//! Sending never blocks and never panics: a span the client refuses (queue full, client
//! shut down) is dropped and counted in [`LayerStats`].
//!
//! [`SsfSpanExt`] adds SSF methods to [`tracing::Span`]: read a span's
//! [`SpanContext`](trace_client::SpanContext) to inject into outgoing requests, continue a
//! remote trace extracted from incoming headers, make a span stand for an SSF span recorded
//! elsewhere, attach SSF samples. [`current_context`] and [`enter_context`] connect the
//! layer to trace-http's middleware (see [With trace-http](#with-trace-http)).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use tracing::Instrument;
//! use tracing_ssf::SsfLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! #[tracing::instrument]
//! async fn charge(amount: u64) {
//!     tokio::task::yield_now().await;
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut receiver = ssf_receiver::Receiver::bind("udp://127.0.0.1:0").await?;
//! let client = trace_client::Client::builder(receiver.local_addr().to_string()).build()?;
//!
//! let layer = SsfLayer::new(client.clone()).service("checkout");
//! let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
//!
//! async {
//!     charge(42).await;
//! }
//! .instrument(tracing::info_span!("checkout"))
//! .await;
//!
//! client.flush().await?;
//! let spans = receiver.collect(2, Duration::from_secs(5)).await?;
//! let (charge, checkout) = (&spans[0], &spans[1]);
//! assert_eq!((charge.name.as_str(), checkout.name.as_str()), ("charge", "checkout"));
//! assert_eq!(charge.parent_id, checkout.id);
//! assert_eq!(charge.tags["amount"], "42");
//! assert_eq!(charge.service, "checkout");
//! # Ok(())
//! # }
//! ```
//!
//! # How `tracing` maps to SSF
//!
//! | `tracing` | SSF span |
//! |---|---|
//! | span name | `name` |
//! | span creation, span close | `start_timestamp`, `end_timestamp` (so a span that is never entered is still exported, with its whole lifetime) |
//! | the nearest ancestor span this layer exports | `trace_id` and `parent_id` |
//! | no such ancestor, but the task runs inside a [`trace_client::context`] scope (and the span is not an explicit root, `parent: None`) | continues that context's trace |
//! | [`SsfSpanExt::set_ssf_parent`] | continues the given (usually remote) trace |
//! | [`SsfSpanExt::set_ssf_context`] (and [`context_span`], [`enter_context`]) | not exported: the span stands for the given SSF span, recorded by its owner; its children are that span's children |
//! | none of the above | a new trace: `trace_id` = `id` |
//! | [`SsfLayer::service`] | `service` (default: [`trace_client::service_name`]) |
//! | field `error` with a `bool` value | the `error` flag |
//! | field `error` with any other value (`error = &err as &dyn Error`, `error = %err`) | the `error` flag and the tags `error.msg` (the value), `error.type` (`error`) and `error.stack` (the value again), as [`trace_client::Span::error`] sets them |
//! | field `indicator` with a `bool` value | the `indicator` flag |
//! | field `ssf.name` or `otel.name` | replaces `name` |
//! | any other field | a tag named after the field: strings, numbers, booleans and errors as displayed, `?value` with `Debug`, `%value` with `Display`; recording a field again replaces the tag |
//! | a field declared [`Empty`](tracing::field::Empty) and never recorded | nothing |
//! | an error-level event inside the span | the `error` flag and the `error.msg` tag (the event's message, or else its `error` field); turn off with [`SsfLayer::with_event_errors`] |
//! | an event inside the span with a field named `counter.NAME`, `monotonic_counter.NAME`, `histogram.NAME` or `gauge.NAME` | one sample in `metrics` per such field; see [below](#events-as-samples) |
//! | any other event | nothing (see [below](#events-as-samples)) |
//! | [`SsfSpanExt::add_ssf_sample`] | `metrics` |
//!
//! Tag values, the replacement name and error messages are cut to
//! [`SsfLayer::max_value_len`] bytes (default [`DEFAULT_MAX_VALUE_LEN`]), so a huge value
//! costs no more memory than that. The trace's resource is not part of SSF: it travels in
//! [`SpanContext::resource`](trace_client::SpanContext::resource) from a remote parent or a
//! trace-client context to the children.
//!
//! # Events as samples
//!
//! An event is a sample when one of its fields is named after the convention of
//! `tracing-opentelemetry`'s `MetricsLayer`:
//!
//! | field | SSF sample |
//! |---|---|
//! | `monotonic_counter.NAME = value` | a `COUNTER` named `NAME` |
//! | `counter.NAME = value` | a `COUNTER` named `NAME` |
//! | `histogram.NAME = value` | a `HISTOGRAM` named `NAME` |
//! | `gauge.NAME = value` | a `GAUGE` named `NAME` |
//!
//! ```
//! use ssf_proto::Metric;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let (client, mut rx) = trace_client::Client::channel(16);
//! let subscriber = tracing_subscriber::registry().with(tracing_ssf::SsfLayer::new(client));
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info_span!("upload").in_scope(|| {
//!         let bytes = 512u64;
//!         tracing::info!(counter.uploads = 1, histogram.upload_bytes = bytes, kind = "image");
//!         tracing::debug!(gauge.queue_len = 3.5);
//!     });
//! });
//! let span = rx.try_recv().unwrap();
//! let samples: Vec<_> = span.metrics.iter().map(|m| (m.metric(), m.name.as_str(), m.value)).collect();
//! assert_eq!(samples, [
//!     (Metric::Counter, "uploads", 1.0),
//!     (Metric::Histogram, "upload_bytes", 512.0),
//!     (Metric::Gauge, "queue_len", 3.5),
//! ]);
//! assert_eq!(span.metrics[0].tags["kind"], "image");
//! ```
//!
//! * The value is the field's number (`u64`, `i64`, `f64`, and `u128`/`i128` too), as the
//!   `f32` SSF samples carry: large integers lose precision. A metric field with any other
//!   value (a string, a `bool`, `?value`), or whose value is not finite as an `f32` (NaN,
//!   infinities, beyond `f32::MAX`), is ignored; so is a bare prefix (`counter.` alone).
//! * The event's other fields, but its message, become the tags of each of its samples
//!   (cut to [`SsfLayer::max_value_len`]); the sample rate is 1 and the timestamp unset,
//!   so the samples take their span's time.
//! * The samples go into the `metrics` of the span the event belongs to (its explicit
//!   `parent:`, else the current span; with filters, the nearest span this layer exports)
//!   and are sent with it when it closes. An event outside any exported span has no span
//!   to travel in and is ignored: record such metrics with trace-client's samples instead.
//! * A span carries at most [`SsfLayer::max_samples`] samples (default
//!   [`DEFAULT_MAX_SAMPLES`]), from events and [`SsfSpanExt::add_ssf_sample`] together;
//!   the samples beyond are dropped and counted in [`LayerStats::samples_dropped`], so a
//!   long-lived span in a loop never grows without bound.
//! * An error-level event with metric fields also sets the error flag, as any error-level
//!   event does. [`SsfLayer::with_event_metrics`] turns the mapping off.
//!
//! Any other event (the usual log line, `info!("request done")`) produces nothing: an SSF
//! span has no place for log records, and turning every event into tags would have later
//! events overwrite earlier ones and each span grow with its logging. Send logs to a log
//! pipeline (a `fmt` layer beside this one) instead.
//!
//! # With trace-http
//!
//! trace-http's tower middleware records one span per HTTP request with trace-client; the
//! two meet both ways:
//!
//! * **Server**: its `ServerTraceLayer` makes the request's span the task's
//!   [`trace_client::context::current`] span for the handler, and a `tracing` span with no
//!   exported ancestor continues that span (see the table above), so the handler's
//!   `tracing` spans are its children. When the connection's task runs inside an exported
//!   `tracing` span of its own, that span would be their parent instead: add
//!   `.enter_with(tracing_ssf::enter_context)` to the layer, and the request's span is
//!   also the handler's current `tracing` span (a [`context_span`] standing for it).
//! * **Client**: its `ClientTraceLayer` injects the request's extensions' context or the
//!   task's trace-client span; add `.context_from(tracing_ssf::current_context)` and it
//!   injects the current `tracing` span, so the server called becomes its child.
//!
//! ```
//! use trace_http::{ClientTraceLayer, ServerTraceLayer};
//!
//! let server = ServerTraceLayer::new().enter_with(tracing_ssf::enter_context);
//! let client = ClientTraceLayer::new().context_from(tracing_ssf::current_context);
//! # let _ = (server, client);
//! ```
//!
//! # Across `.await` and `tokio::spawn`
//!
//! A future instrumented with [`tracing::Instrument`] (or an `async fn` with
//! `#[tracing::instrument]`) keeps its span across `.await` points. A task started with
//! `tokio::spawn` starts without a current span: pass it on with
//! `tokio::spawn(fut.in_current_span())` or `fut.instrument(Span::current())`, and the
//! task's spans join the trace.
//!
//! # Filtering
//!
//! The layer works with the usual `tracing-subscriber` filters, global or per layer:
//! `SsfLayer::new(client).with_filter(LevelFilter::INFO)` exports only spans of level
//! `INFO` and above; the children of a span filtered out become children of its nearest
//! exported ancestor.
//!
//! The layer reports its own trouble (spans refused by the client: the 1st, 2nd, 4th, 8th…)
//! as `tracing` events with the target [`INTERNAL_TARGET`], and ignores every span and
//! event with that target, so its diagnostics never feed back into SSF.
//!
//! # One layer per subscriber
//!
//! The layer keeps its state in the span's extensions; with two `SsfLayer`s on one
//! subscriber, only the first one exports spans.
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

mod data;
mod ext;
mod layer;
mod stats;

pub use ext::{CONTEXT_TARGET, SsfSpanExt, context_span, current_context, enter_context};
pub use layer::{DEFAULT_MAX_SAMPLES, DEFAULT_MAX_VALUE_LEN, SsfLayer};
pub use stats::LayerStats;

/// The `tracing` target of the layer's own diagnostics. The layer ignores spans and events
/// with this target (or a target below it, `tracing_ssf::internal::…`).
pub const INTERNAL_TARGET: &str = "tracing_ssf::internal";
