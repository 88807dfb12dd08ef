//! Building traces: span IDs ([`id`]), the current span context carried across tasks
//! ([`context`]), the [`Span`](span::Span) handle and the `span!` macros ([`macros`]).

pub mod baggage;
pub(crate) mod clock;
pub mod context;
pub(crate) mod fields;
pub mod id;
pub(crate) mod macros;
pub(crate) mod span;
