//! The async SSF tracing client (work in progress).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

// --- client core (issue 4): modules and re-exports below this line ---

// --- end of client core ---

// --- trace API pure parts (issue 5): modules and re-exports below this line ---

pub mod context;
pub mod id;
mod macros;
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
