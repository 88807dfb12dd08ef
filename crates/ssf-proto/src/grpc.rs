//! What `proto/ssf/grpc.proto` declares: veneur's `ssf.SSFGRPC` service, whose one
//! unary method `SendSpan` takes an [`SsfSpan`](crate::SsfSpan) and answers [`Empty`].
//!
//! The client (`trace-client`, feature `grpc`) and the receiver (`ssf-receiver`, feature
//! `grpc`) speak it over tonic; this crate holds only the message and the method path,
//! so it needs no gRPC dependency.
//!
//! ```
//! use ssf_proto::grpc::{Empty, SEND_SPAN_PATH};
//! use ssf_proto::prost::Message;
//!
//! assert_eq!(SEND_SPAN_PATH, "/ssf.SSFGRPC/SendSpan");
//! // The reply carries no field at all.
//! assert!(Empty {}.encode_to_vec().is_empty());
//! ```

pub use crate::generated::Empty;

/// The HTTP/2 path of `SendSpan`: `/` package `.` service `/` method.
pub const SEND_SPAN_PATH: &str = "/ssf.SSFGRPC/SendSpan";
