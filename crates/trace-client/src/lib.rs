//! The async SSF tracing client (work in progress).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]
// `TryRecordError` hands the refused span back by value, as tokio's `TrySendError<T>` does;
// boxing it would allocate on the refusal path, exactly when the client is overloaded.
#![allow(clippy::result_large_err)]

// --- client core (issue 4): modules and re-exports below this line ---

mod backend;
mod backoff;
mod builder;
mod client;
pub mod default;
mod error;
mod future;
mod message;
mod stats;
pub mod testing;
mod transport;
mod worker;

pub use backend::Backend;
pub use builder::{
    ClientBuilder, DEFAULT_BACKEND_CAPACITY, DEFAULT_BACKOFF, DEFAULT_BUFFER_SIZE,
    DEFAULT_CAPACITY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_DATAGRAM_SIZE,
    DEFAULT_PARALLEL_BACKENDS, MAX_CAPACITY,
};
pub use client::Client;
pub use error::{
    BackendError, BuildError, DeliveryError, DropReason, FlushError, RecordError, TryRecordError,
};
pub use future::{FlushFuture, Receipt, RecordFuture, ShutdownFuture, ShutdownReport};
pub use stats::{ClientStats, DropCounts, STATISTICS_NAMES, StatsCounter, report_statistics};

// --- end of client core ---

// --- trace API pure parts (issue 5): modules and re-exports below this line ---

pub mod context;
pub mod id;
mod macros;
pub mod metrics;
pub mod propagation;
mod span;

pub use context::{InSpan, SpanContext, WithSpan};
pub use id::new_id;
pub use span::{Span, service_name, set_service_name};

#[doc(hidden)]
pub mod __private {
    pub use crate::macros::function_name_of;
}

// --- end of trace API ---
