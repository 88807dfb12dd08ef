//! An async SSF tracing client for tokio: spans and their metrics go to a veneur (or any
//! SSF receiver) over UDP, unix or TCP stream sockets, without ever costing the caller a
//! wait, unbounded memory or a deadlock, and with an exact account of every span.
//!
//! * [`Client`]: a bounded queue drained by backend tasks, each owning one connection.
//!   [`try_record`](Client::try_record) never waits (a full queue hands the span back),
//!   [`try_record_ref`](Client::try_record_ref) records a span the caller keeps (and
//!   reuses) without allocating, [`record`](Client::record) waits for room,
//!   [`flush`](Client::flush) is a barrier across every backend,
//!   [`shutdown`](Client::shutdown) drains within a deadline and reports;
//!   [`stats`](Client::stats) says where every span went.
//! * [`Span`], [`context`], [`propagation`], [`metrics`]: building traces, carrying the
//!   current span across tasks and processes, and sending bare metrics.
//! * [`Sampler`] ([`ClientBuilder::sampler`]): head sampling by trace ID, following the
//!   caller's decision when asked; [`Baggage`]: bounded key-value items a trace carries
//!   to every descendant span, here and in other services.
//! * [`Backend`] for your own destination, `testing` backends for tests (feature `test-util`), a process-wide
//!   [`default`] client, and veneur's client statistics ([`report_statistics`]).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use ssf_proto::SsfSpan;
//! use ssf_receiver::Receiver;
//! use trace_client::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A receiver standing in for veneur.
//! let mut receiver = Receiver::bind("udp://127.0.0.1:0").await?;
//! let address = receiver.local_addr().to_string(); // udp://127.0.0.1:<port>
//!
//! let client = Client::builder(&address).build()?; // connects lazily
//! let span = SsfSpan { trace_id: 1, id: 1, name: "checkout".into(), ..Default::default() };
//! client.try_record(span)?; // never waits; a full queue hands the span back
//! client.flush().await?; // every span recorded so far is written
//!
//! assert_eq!(receiver.collect(1, Duration::from_secs(5)).await?[0].name, "checkout");
//! let report = client.shutdown(Duration::from_secs(5)).await;
//! assert_eq!((report.sent(), report.dropped_total()), (1, 0));
//! # Ok(())
//! # }
//! ```
//!
//! # Addresses and transports
//!
//! | address | transport |
//! |---|---|
//! | `udp://host:port` (`udp4`, `udp6`; bare `host:port`) | one unframed span per datagram; spans over [`max_datagram_size`](ClientBuilder::max_datagram_size) are dropped, never truncated |
//! | `unix:///path`, `unix:@abstract` | stream with SSF framing (5-byte header per span) |
//! | `tcp://host:port` (`tcp4`, `tcp6`) | the same framing over TCP (veneur reads SSF over TCP only as gRPC; other receivers, such as `ssf-receiver`, read it) |
//! | `grpc://host:port` (feature `grpc`) | veneur's `ssf.SSFGRPC` service over HTTP/2 (no TLS): one unary `SendSpan` call per span, the calls of a batch in flight together on one connection per backend; a span is sent once the receiver answered OK, dropped with [`DropReason::GrpcStatus`] on any other status. The transport for a veneur on another host |
//! | `unixgram://`, `unixpacket://` | refused by [`build`](ClientBuilder::build): veneur does not read SSF from them |
//!
//! A frame is never split across writes of its own: a backend writes the frames of all the
//! spans it took from the queue at once together, with one write per ~128 KiB
//! (unbuffered) or per full buffer ([buffered](ClientBuilder::buffered)); UDP datagrams
//! go out 64 per `sendmmsg` call on Linux. Host names are resolved each time a backend
//! connects, so a moved receiver is found again after a reconnect.
//!
//! # Cost
//!
//! * **Recording**: a network client encodes the span on the caller's task, in one pass,
//!   and frees it there, while it is still in that core's cache; a compare-and-swap then
//!   claims a slot of a bounded lock-free queue whose slots were allocated when the
//!   client was built (576 bytes each), and the span is encoded into it (a span whose
//!   encoding is over 360 bytes gets a heap buffer instead). No lock, no allocation for a typical span, no system
//!   call in the common case. [`try_record_ref`](Client::try_record_ref) encodes a span
//!   the caller keeps, so recording the same span value again and again allocates
//!   nothing at all. A producer wakes a backend only when none is awake or about to come
//!   back by itself (see below), so a steady stream of spans does not pay for wake-ups;
//!   refusals are cheaper still (a full queue is refused before encoding). With
//!   [`encode_in_backend`](ClientBuilder::encode_in_backend) the span itself is queued
//!   and the backend encodes and frees it.
//! * **Sending**: each backend takes what is queued in batches (up to 512 spans),
//!   copying each frame straight from the queue into one buffer, and writes it. A
//!   stream backend (unix, TCP) that finds less than 64 spans waiting (or a quarter of
//!   a smaller queue), and nothing someone waits for, naps as on an empty queue (below)
//!   before it takes them: under a steady stream it takes spans by the batch, not a few
//!   at a time. UDP and gRPC backends, which send each span on its own, take what is
//!   there, several at once.
//! * **Idle**: a backend that finds the queue empty looks again once after letting other
//!   tasks run, then every millisecond a few times (one backend at a time), then sleeps
//!   until a span comes. An idle client, connected or not, uses next to no CPU (the
//!   first backend, asleep, looks at the queue ten times a second, the others once); a span
//!   recorded while a backend naps waits at most about a millisecond (a flush, a span
//!   with a [`Receipt`], or a quarter of the queue filling up wakes it at once).
//! * **Memory**: the queue's slots (576 KiB with the default capacity), the heap buffers
//!   of large spans while queued, and each backend's buffer (see
//!   [`buffer_size`](ClientBuilder::buffer_size); unbuffered backends use up to ~128 KiB
//!   while writing). However many spans are offered, nothing else grows.
//!
//! `cargo bench -p trace-client --bench client` measures each of these.
//!
//! # Defaults
//!
//! | option | default |
//! |---|---|
//! | [`capacity`](ClientBuilder::capacity) | 1024 spans (1 for a user backend) |
//! | [`parallel_backends`](ClientBuilder::parallel_backends) | 8 connections |
//! | [`buffered`](ClientBuilder::buffered) / [`buffer_size`](ClientBuilder::buffer_size) | off / 64 KiB per connection |
//! | [`flush_interval`](ClientBuilder::flush_interval) | none |
//! | [`backoff`](ClientBuilder::backoff) / [`max_backoff`](ClientBuilder::max_backoff) | 20 ms / 1 s |
//! | [`connect_timeout`](ClientBuilder::connect_timeout) | 10 s |
//! | [`write_timeout`](ClientBuilder::write_timeout) | 5 s without the receiver taking a byte |
//! | [`flush_timeout`](ClientBuilder::flush_timeout) | 15 s |
//! | [`max_datagram_size`](ClientBuilder::max_datagram_size) | 16 384 bytes |
//!
//! # What happens to a span
//!
//! A span handed to the client is **refused** (given back in the error: queue full, client
//! closed) or **accepted**. An accepted span is then **queued** (in the queue, being
//! written, or in a write buffer), **sent** (written to its connection) or **dropped**
//! with a [`DropReason`]: the write failed (the connection is reset and the next span
//! reconnects), the receiver took nothing for the write timeout, there was no connection
//! (see below), it is too large, a user backend panicked, or the client shut down first.
//! Nothing is retried, nothing is lost without being counted:
//! `accepted == sent + dropped + queued` ([`ClientStats`]).
//!
//! A [`Receipt`] ([`record_with_receipt`](Client::record_with_receipt)) tells one span's
//! fate. For buffered streams it resolves when the span is in the buffer; the buffer
//! reaches the socket when it is full, on [`flush`](Client::flush), on a
//! [flush interval](ClientBuilder::flush_interval) tick or at shutdown.
//!
//! # When the receiver is absent or stops reading
//!
//! Connecting: the first attempt is immediate; after a failure a backend waits a delay
//! that doubles from [`backoff`](ClientBuilder::backoff) up to
//! [`max_backoff`](ClientBuilder::max_backoff), drawn at random from the upper half of its
//! range, and gives up (dropping the span it holds) once
//! [`connect_timeout`](ClientBuilder::connect_timeout) has passed. While a backend waits,
//! the others keep working and the queue fills up; nothing spins.
//!
//! Once a connect sequence has failed, the client's backends are **down**: instead of
//! each span waiting for a connect timeout of its own (veneur), spans are dropped at once
//! ([`DropReason::ConnectTimeout`]), so the queue drains and
//! [`try_record`](Client::try_record) keeps being accepted. At each backoff time a down
//! backend makes one connect attempt, with the span that starts it waiting for it at most
//! `max_backoff`; the first success brings the backends back. A write that the receiver
//! does not take a byte of for [`write_timeout`](ClientBuilder::write_timeout) drops the
//! spans being written ([`DropReason::WriteTimeout`]), closes the connection and puts
//! that backend down until its next backoff time.
//!
//! So with nothing listening (default settings): records never wait, memory stays within
//! the queue and buffers, an idle client does nothing at all, the first
//! [`flush`](Client::flush) fails after one connect timeout (10 s) and later ones at
//! once, each listing the spans dropped, and [`shutdown`](Client::shutdown) returns
//! without waiting for its deadline unless a connect sequence is under way.
//!
//! # Flush, shutdown, drop
//!
//! * [`flush`](Client::flush) resolves once every span recorded before it was written by
//!   its backend (a backend busy writing is waited for, not skipped) and every buffer was
//!   written, or when its [time limit](ClientBuilder::flush_timeout) passes. It fails,
//!   listing each backend concerned, when a buffer could not be written, when a backend
//!   dropped spans since its previous flush (no connection, write error, write timeout),
//!   or when the time limit passed first.
//! * [`shutdown(deadline)`](Client::shutdown) stops intake for every handle (later records
//!   are refused as closed), lets the backends send what is queued, write their buffers
//!   and close their connections (stream receivers see the end of the stream), then
//!   reports what was sent and dropped. At the deadline the backends stop where they are;
//!   what they held is counted as dropped and the report says it timed out.
//!   [`close`](Client::close) starts the same without waiting.
//! * Dropping the last handle never blocks: the queue closes, the backends send what is
//!   already queued (each span still within its connect timeout), write out their
//!   buffers, close their connections and exit in the background; nothing waits for them.
//!
//! # Panics
//!
//! None from this crate's code on any input. A panic in user code (a [`Backend`], the
//! [sample normaliser](ClientBuilder::normalize_samples), a [`StatsCounter`]) is caught,
//! counted in [`ClientStats::panics`] and, for a backend, reported as a dropped span or a
//! failed flush; the client keeps working. [`ClientBuilder::build`] outside a tokio
//! runtime returns [`BuildError::NoRuntime`]. Everything works on a `current_thread`
//! runtime. The library prints nothing.
//!
//! # Differences from veneur's Go client
//!
//! Deliberate fixes of the original's behaviour (its quirks are listed in the project's
//! specification):
//!
//! * **Close** flushed nothing and returned at once, losing buffered and queued spans;
//!   here [`shutdown`](Client::shutdown) drains, flushes and closes within a deadline and
//!   reports every span, and records after it are refused instead of silently accepted.
//! * **Backoff cap**: the original compared the increment, not the wait, with the maximum,
//!   so waits grew 0, 20, 40, 60 ms... without limit; here the wait is capped at
//!   [`max_backoff`](ClientBuilder::max_backoff), grows exponentially and is jittered.
//! * **Flush** skipped backends that were busy (callers had to retry on "would block")
//!   and flushed them one after the other; here it waits for every backend, all in
//!   parallel, and is a barrier for every span recorded before it.
//! * **Result channels** were written with a blocking send, so a caller that never read
//!   one stalled a backend forever; [`Receipt`]s can be dropped freely.
//! * **`ParallelBackends(0)`** (never send anything) and **`Capacity(0)`** were accepted;
//!   here both are build errors.
//! * The default **capacity** was 64 spans, so that a burst was mostly refused; here
//!   1024 (576 KiB), as veneur's server configures its own client.
//! * **Encoding** happened in the backends, which also freed the spans; here the
//!   recording task encodes into the queue's slot, and a span can be recorded by
//!   reference ([`try_record_ref`](Client::try_record_ref)).
//! * **Buffers** were 16 MiB + 5 bytes per connection (128 MiB with the defaults); here 64
//!   KiB, configurable, and a span larger than the buffer is written on its own.
//! * **TCP** was refused; here it is a stream transport. **unixgram/unixpacket** were
//!   accepted and then sent each frame as three datagrams; here they are refused.
//! * **Oversize UDP spans** went to the kernel (and failed or were truncated by the
//!   reader); here they are dropped and counted.
//! * **DNS** was resolved once, at client creation; here at each connect.
//! * The **sample normaliser** mutated the caller's samples and ran again on each retry;
//!   here it runs once, on the span the client owns.
//! * **Statistics** were read with "load, then swap"; here each counter is taken and reset
//!   in one atomic step, so no count is lost between reports.
//! * Building a client no longer reseeds a process-global random generator, and a
//!   [neutralised](Client::neutralized) client says it is closed.
//! * A receiver that stopped reading held a backend forever, and with the receiver
//!   down every span waited out a connect timeout of its own; here writes have a
//!   [timeout](ClientBuilder::write_timeout) and a down client drops spans at once.
//!   **Flush** returned success although spans had been dropped; here it reports them,
//!   within a [time limit](ClientBuilder::flush_timeout).
//! * **Enable / Disable** were a flag nothing read; here [`disable`] (the process) and
//!   [`Client::disable`] (one client) switch recording off for real: spans are discarded
//!   before they are encoded, counted as dropped with [`DropReason::Disabled`], and
//!   recording resumes on [`enable`] without a restart.
//! * The **service name** was process-wide only; a client can also have its own
//!   ([`ClientBuilder::service`]), for spans recorded on it without one.
//! * `NeutralizeClient` was a test helper that was not safe to call concurrently; here
//!   [`Client::neutralize`] can be called from any clone at any time, drops what the
//!   client still holds (counted) and makes its flushes fail as closed, as veneur's
//!   documentation (not its code) said.
//! * **Baggage** was a no-op (`SetBaggageItem` wrote into a throw-away context, and
//!   `BaggageItem` answered only the IDs); here [`Span::set_baggage_item`] sets items
//!   that children inherit and the carriers propagate (`ot-baggage-*`, the W3C `baggage`
//!   header), within limits, refusing hostile headers without losing the trace.
//! * The client had **no sampling**: `ot-tracer-sampled` was always written `true` and
//!   never read; here a [`Sampler`] decides per trace, the decision is read from and
//!   written to the headers, and unsampled spans are counted
//!   ([`ClientStats::unsampled`]).
//! * Deliberately kept: records never wait ([`try_record`](Client::try_record)), a failed
//!   write drops the span (no endless retries), the connect timeout bounds each connect
//!   sequence, veneur's statistics names and reporting order.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `cadence` | no | [`StatsCounter`] for `cadence::StatsdClient` |
//! | `grpc` | no | `grpc://` addresses (tonic's call layer over hyper's HTTP/2 client; no TLS) |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]
// `TryRecordError` hands the refused span back by value, as tokio's `TrySendError<T>` does;
// boxing it would allocate on the refusal path, exactly when the client is overloaded.
#![allow(clippy::result_large_err)]

// The modules, in layers (ARCHITECTURE.md draws them; tests/layers.rs checks that a
// module uses only modules of lower layers), lowest first:
//   sync, padded, waiters | error | stats | encode | message | queue | shared |
//   transport | worker | future | client | builder | default, metrics | trace |
//   propagation | testing
mod builder;
mod client;
pub mod default;
mod encode;
mod error;
mod future;
mod message;
pub mod metrics;
mod padded;
pub mod propagation;
mod queue;
mod sampling;
mod shared;
mod stats;
mod sync;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod trace;
mod transport;
mod waiters;
mod worker;

pub use builder::{
    ClientBuilder, DEFAULT_BACKEND_CAPACITY, DEFAULT_BACKOFF, DEFAULT_BUFFER_SIZE,
    DEFAULT_CAPACITY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT, DEFAULT_GRPC_CALLS_IN_FLIGHT,
    DEFAULT_MAX_BACKOFF, DEFAULT_MAX_DATAGRAM_SIZE, DEFAULT_PARALLEL_BACKENDS,
    DEFAULT_WRITE_TIMEOUT, MAX_CAPACITY, MAX_GRPC_CALLS_IN_FLIGHT,
};
pub use client::{Client, report_statistics};
pub use error::{
    BackendError, BuildError, DeliveryError, DropReason, FlushError, RecordError, TryRecordError,
};
pub use future::{FlushFuture, Receipt, RecordFuture, ShutdownFuture, ShutdownReport};
pub use sampling::Sampler;
pub use shared::{disable, enable, is_disabled};
pub use stats::{ClientStats, DropCounts, STATISTICS_NAMES, StatsCounter};
pub use trace::baggage::{self, Baggage, BaggageError};
pub use trace::context::{InSpan, SpanContext, W3cTrace, WithSpan};
pub use trace::fields::{SpanSample, Str, Tags};
pub use trace::id::new_id;
pub use trace::span::{Span, service_name, set_service_name};
pub use trace::{context, id};
pub use transport::Backend;

/// Internals exposed for the crate's benchmarks only; not part of the API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::encode::encode_frames;

    /// Encodes `span` as recording does for a stream client (into a queue slot's
    /// buffer); returns the frame's length.
    pub fn encode_as_recorded(span: &ssf_proto::SsfSpan) -> usize {
        use crate::encode::{Encoded, Framing, INLINE, encode};
        let mut buf = [0u8; INLINE];
        match encode(span, Framing::Stream, ssf_codec::MAX_FRAME_LENGTH, &mut buf) {
            Ok(Encoded::Inline(len)) => len,
            Ok(Encoded::Heap(bytes)) => bytes.len(),
            Err(_) => 0,
        }
    }
}

/// The one wrapper of `sendmmsg`/`recvmmsg` (Linux), for the benchmarks and `ssf bench`;
/// not part of the API.
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod __sys {
    pub use crate::transport::sys_linux::{DATAGRAMS_PER_CALL, recv_batch, send_batch};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::trace::macros::function_name_of;
}
