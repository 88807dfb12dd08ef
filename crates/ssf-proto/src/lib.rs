//! Protobuf types and helpers for SSF, the Sensor Sensibility Format of Stripe's veneur.
//!
//! This crate holds the wire types generated from `proto/ssf/sample.proto` ([`SsfSpan`],
//! [`SsfSample`] and the sample enums), plus what every SSF producer and consumer needs
//! around them:
//!
//! * [`sample`]: constructors for counters, gauges, histograms, sets, timings and status
//!   checks, with options for unit, timestamp, scope and sample rate, a name prefix and
//!   random sampling of a batch;
//! * [`span`]: the validity check veneur applies to trace spans and the normalisation it
//!   applies on ingest;
//! * [`time`]: conversions between [`std::time::SystemTime`] / [`std::time::Duration`] and
//!   the `i64` nanoseconds used on the wire that never overflow silently;
//! * [`wire`]: the canonical encoder, byte-for-byte what veneur's own Go code writes;
//! * `json` (feature `json`): spans rendered as JSON the way veneur's tools print them.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `json` | no | `json` module: conversion, with `serde` and `serde_json` |
//!
//! # Quick start
//!
//! ```
//! use ssf_proto::sample::{self, SampleExt};
//! use ssf_proto::{wire, SsfSpan};
//!
//! let span = SsfSpan {
//!     trace_id: 1,
//!     id: 1,
//!     start_timestamp: 1_700_000_000_000_000_000,
//!     end_timestamp: 1_700_000_000_250_000_000,
//!     service: "checkout".into(),
//!     name: "charge".into(),
//!     metrics: vec![sample::count("charges", 1.0).with_tag("currency", "eur")],
//!     ..Default::default()
//! };
//! assert!(ssf_proto::span::is_valid_trace(&span));
//!
//! let bytes = wire::encode_to_vec(&span);
//! assert_eq!(wire::decode(&bytes[..]).unwrap(), span);
//! ```
//!
//! # Encoding: canonical versus prost
//!
//! The generated types implement [`prost::Message`], so `span.encode_to_vec()` works and
//! any SSF peer can read what it writes. It is not byte-identical with veneur for map
//! entries whose key or value is empty (prost omits them inside the entry, veneur writes
//! both). [`wire::encode`] writes exactly what veneur writes, with map entries in key
//! order, so the same span always gives the same bytes. Use it (the codec does) when bytes
//! matter.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

#[rustfmt::skip]
#[path = "gen/ssf.rs"]
#[allow(
    missing_docs,
    clippy::all,
    unreachable_pub,
    missing_debug_implementations
)]
mod generated;

pub mod grpc;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub mod json;
#[cfg(test)]
mod reference;
pub mod sample;
mod slice;
pub mod span;
pub mod text;
pub mod time;
pub mod wire;

pub use generated::{SsfSample, SsfSpan, ssf_sample};
pub use ssf_sample::{Metric, Scope, Status};

pub use prost;

pub use span::{InvalidTrace, is_valid_metric, is_valid_trace, normalize, validate_trace};
