//! Framing and addressing for SSF, the Sensor Sensibility Format of Stripe's veneur.
//!
//! * [`SsfCodec`]: a [`tokio_util::codec`] [`Decoder`](tokio_util::codec::Decoder) and
//!   [`Encoder`](tokio_util::codec::Encoder) for the stream framing used on unix (and
//!   TCP) sockets: a version byte 0, a 4-byte big-endian length, the protobuf body;
//! * [`DatagramCodec`]: one bare protobuf span per UDP datagram, size-checked;
//! * [`addr`]: veneur-style address URLs.
//!
//! # Wire format
//!
//! ```text
//! stream:   | 00 | len: u32 BE | body (len bytes) | 00 | len | body | ...
//! datagram: | body |
//! ```
//!
//! The body is the protobuf `SSFSpan`; a frame's body is at most 16 MiB
//! ([`MAX_FRAME_LENGTH`]). A stream has no resynchronisation marker: a bad version byte, a
//! length over the limit or the end of input inside a frame ends it
//! ([`Error::is_framing`]). A body that is not a valid span only loses that span.
//!
//! # Reading a stream
//!
//! ```
//! use futures_util::StreamExt;
//! use ssf_codec::SsfCodec;
//! use tokio_util::codec::FramedRead;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // One frame holding span{id: 1}, then a frame whose body is garbage, then span{id: 2}.
//! let bytes: &[u8] = &[0, 0, 0, 0, 2, 0x18, 1, 0, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 2, 0x18, 2];
//! let mut frames = FramedRead::new(bytes, SsfCodec::new());
//! assert_eq!(frames.next().await.unwrap().unwrap().unwrap().id, 1);
//! assert!(frames.next().await.unwrap().unwrap().is_err()); // corrupt body: skipped
//! assert_eq!(frames.next().await.unwrap().unwrap().unwrap().id, 2);
//! assert!(frames.next().await.is_none());
//! # }
//! ```
//!
//! # Differences from veneur's Go implementation
//!
//! * The writer enforces the frame limit (veneur's only checks it when reading) and writes
//!   each frame as one contiguous buffer (veneur makes three writes, which splits a frame
//!   into three datagrams on `unixgram` sockets).
//! * A zero-length frame at the very end of the input decodes to the empty span (veneur's
//!   in-memory reader mistakes it for the end of the input).
//! * Error messages follow Rust conventions (lowercase, no trailing period, the cause in
//!   [`std::error::Error::source`]): `ssf framing error: unexpected version number 1`
//!   rather than veneur's `SSF framing error: ...`; the classification
//!   ([`Error::is_framing`]) is the same.
//! * Strings must be UTF-8: a span carrying invalid UTF-8 is a decode error (a corrupt
//!   frame, skipped) where veneur accepts the bytes verbatim.
//! * Address parsing accepts a bare `host:port` as UDP everywhere (veneur's library only
//!   takes URLs; its `veneur-emit` tool adds the `udp://`).
//!
//! # Fuzzing
//!
//! `crates/ssf-codec/fuzz` holds cargo-fuzz targets; on the stable toolchain run them with
//! `cargo install cargo-fuzz` and
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decode_stream -- -max_total_time=600` from that folder.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

pub mod addr;
mod codec;
mod datagram;
mod error;

pub use addr::{Address, DEFAULT_ADDRESS};
pub use codec::{
    HEADER_LEN, MAX_FRAME_LENGTH, SsfCodec, VERSION, encode_frame_to_slice, frame_header,
};
pub use datagram::{DEFAULT_MAX_DATAGRAM_SIZE, DatagramCodec, MAX_UDP_PAYLOAD};
pub use error::{DecodeError, Error};
