//! gRPC: one unary `SendSpan` call per span (veneur's `ssf.SSFGRPC` service) over one
//! HTTP/2 connection per backend, the calls of a batch in flight together.
//!
//! The connection is ours: [`Link`] opens the TCP stream and runs the HTTP/2 handshake
//! (hyper's connection API), so connecting follows the client's backoff and connect
//! timeout like every other transport, and a broken connection is forgotten and opened
//! again by the next batch. tonic frames each call; its encoder writes the bytes encoded
//! when the span was recorded (the same bare protobuf a UDP client sends), so nothing is
//! decoded or encoded again here.
//!
//! A span is sent once its call answered OK. Any other answer drops it with
//! [`DropReason::GrpcStatus`]; a call that failed on the connection (reset, the receiver
//! going away) with [`DropReason::WriteError`]; no answer within the write timeout with
//! [`DropReason::WriteTimeout`]. A call that HTTP/2 says the receiver never processed
//! (never sent, its stream refused, or beyond the last stream of a graceful GOAWAY), and
//! the batch's calls not yet started when the connection broke, are sent once more on a
//! new connection before they count as dropped: a receiver restarting gracefully loses
//! none of them, and none can arrive twice.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ssf_codec::addr::Address;
use tokio::net::TcpStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::error::DropReason;
use crate::message::{Message, ReceiptSender};
use crate::shared::Shared;
use crate::transport::api::{NetConfig, Transport};
use crate::transport::backoff::Backoff;
use crate::transport::ledger::Ledger;
use crate::transport::link::{Connect, ConnectFuture, Link};
use crate::transport::staged::{Staged, span_range};

/// The largest span a gRPC client sends: 4 MiB, the message limit gRPC servers apply by
/// default (veneur's included).
pub(crate) const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The longest answer read: `Empty` is no bytes, but a newer receiver may add fields.
const MAX_ANSWER: usize = 64 * 1024;

/// Encoded spans held before their calls start, at most (bytes).
const STAGED_BYTES: usize = 256 * 1024;

// ===== the codec =====

/// Sends spans already encoded; reads the `Empty` answer (whose bytes are not needed).
#[derive(Debug, Clone, Copy, Default)]
struct EncodedSpanCodec;

#[derive(Debug)]
struct EncodedSpanEncoder;

#[derive(Debug)]
struct EmptyDecoder;

impl Encoder for EncodedSpanEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for EmptyDecoder {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        // `Empty` has no field; a newer receiver's unknown fields are skipped, as
        // protobuf would.
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

impl Codec for EncodedSpanCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = EncodedSpanEncoder;
    type Decoder = EmptyDecoder;

    fn encoder(&mut self) -> EncodedSpanEncoder {
        EncodedSpanEncoder
    }

    fn decoder(&mut self) -> EmptyDecoder {
        EmptyDecoder
    }
}

// ===== the connection =====

/// One HTTP/2 connection, as the service tonic's calls go through.
#[derive(Debug, Clone)]
pub(crate) struct H2Conn {
    send: http2::SendRequest<tonic::body::Body>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<hyper::body::Incoming>, BoxError>> + Send>>;

/// A request the connection never sent (it was closed, or closing, before the request
/// left): safe to send again on another connection.
#[derive(Debug)]
struct NotSent(hyper::Error);

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the call was not sent: {}", self.0)
    }
}

impl std::error::Error for NotSent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Not ready means closed: nothing was sent.
        self.send
            .poll_ready(cx)
            .map_err(|e| Box::new(NotSent(e)) as BoxError)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> ResponseFuture {
        let sent = self.send.try_send_request(req);
        Box::pin(async move {
            sent.await.map_err(|mut e| {
                // hyper hands the request back when it never reached the connection.
                if e.take_message().is_some() {
                    Box::new(NotSent(e.into_error())) as BoxError
                } else {
                    Box::new(e.into_error()) as BoxError
                }
            })
        })
    }
}

#[derive(Debug)]
struct GrpcTarget(Address);

async fn connect_grpc(addr: Address) -> io::Result<H2Conn> {
    let mut last = None;
    for a in addr.resolve().await? {
        match TcpStream::connect(a).await {
            Ok(s) => {
                // Latency only: a socket that refuses the option still carries calls.
                let _ = s.set_nodelay(true);
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(s))
                    .await
                    .map_err(|e| io::Error::other(format!("http/2 handshake failed: {e}")))?;
                // Runs the connection until it breaks or every handle to it is gone.
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                return Ok(H2Conn { send });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

impl Connect for GrpcTarget {
    type Conn = H2Conn;

    fn connect(&self) -> ConnectFuture<H2Conn> {
        Box::pin(connect_grpc(self.0.clone()))
    }
}

// ===== status codes =====

/// The status code's name as gRPC writes it, lowercase.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

fn code_kind(code: Code) -> io::ErrorKind {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::DataLoss => io::ErrorKind::InvalidData,
        Code::DeadlineExceeded => io::ErrorKind::TimedOut,
        Code::NotFound | Code::Unimplemented => io::ErrorKind::Unsupported,
        Code::PermissionDenied | Code::Unauthenticated => io::ErrorKind::PermissionDenied,
        Code::ResourceExhausted => io::ErrorKind::QuotaExceeded,
        Code::Unavailable => io::ErrorKind::ConnectionRefused,
        Code::Cancelled | Code::Aborted => io::ErrorKind::Interrupted,
        _ => io::ErrorKind::Other,
    }
}

/// Whether a failed call's error shows that the receiver never processed it, so that
/// sending it again cannot make a duplicate: it never left ([`NotSent`]), the receiver
/// refused its stream (`REFUSED_STREAM`), or its stream came after the last one a
/// graceful GOAWAY let through (HTTP/2, RFC 9113 §6.8 and §8.7).
fn unprocessed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<NotSent>() {
            return true;
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away()
                    && h2.is_remote()
                    && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = e.source();
    }
    false
}

/// A failed call as a drop reason and an error: a status the receiver sent, or a
/// failure of the connection (a status tonic made from an HTTP/2 error, with its
/// source), and whether the receiver can not have processed it.
fn classify(status: &Status) -> Failure {
    let code = code_name(status.code());
    if let Some(source) = std::error::Error::source(status) {
        let e = io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("the grpc call failed on its connection ({code}): {source}"),
        );
        return Failure {
            reason: DropReason::WriteError,
            error: e,
            unprocessed: unprocessed(source),
        };
    }
    let e = if status.message().is_empty() {
        io::Error::new(
            code_kind(status.code()),
            format!("the receiver answered grpc status {code}"),
        )
    } else {
        io::Error::new(
            code_kind(status.code()),
            format!(
                "the receiver answered grpc status {code}: {}",
                status.message()
            ),
        )
    };
    Failure {
        reason: DropReason::GrpcStatus,
        error: e,
        unprocessed: false,
    }
}

// ===== the transport =====

/// Why a call failed.
#[derive(Debug)]
struct Failure {
    reason: DropReason,
    error: io::Error,
    /// The receiver can not have processed it: it may be sent again.
    unprocessed: bool,
}

/// The outcome of one call.
type Outcome = Result<(), Failure>;

/// A batch's calls cut short by an abort.
struct Aborted;

/// One unary call per span over one HTTP/2 connection; the calls of a batch run
/// together (at most `in_flight` at a time), and `send_staged` returns once each has
/// its answer.
#[derive(Debug)]
pub(crate) struct GrpcTransport {
    link: Link<GrpcTarget>,
    /// `http://host:port`, the origin of each call.
    origin: http::Uri,
    /// The spans of the batch.
    staged: Staged,
    write_timeout: Duration,
    /// Calls in flight at once, at most.
    in_flight: usize,
    ledger: Ledger,
}

impl GrpcTransport {
    /// `None` when the address is not a `grpc://` address.
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Option<Self> {
        let (host, port) = addr.host_port()?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else if host.is_empty() {
            "localhost".to_owned()
        } else {
            host.to_owned()
        };
        let origin = format!("http://{host}:{port}").parse().ok()?;
        Some(GrpcTransport {
            link: Link::new(
                GrpcTarget(addr.clone()),
                Backoff::new(config.backoff, config.max_backoff),
                config.connect_timeout,
                config.max_backoff,
                shared.clone(),
            ),
            origin,
            staged: Staged::default(),
            write_timeout: config.write_timeout,
            in_flight: config.grpc_calls_in_flight,
            ledger: Ledger::new(shared),
        })
    }

    /// Calls `SendSpan` for each staged span, counting each as its answer comes.
    async fn send_calls(&mut self) -> Result<(), Aborted> {
        if self.staged.ends.is_empty() {
            return Ok(());
        }
        // The calls share the bytes (each sends a slice of them) while the buffer starts
        // again for the next batch.
        let room = STAGED_BYTES.min(self.staged.buf.len());
        let buf = std::mem::replace(&mut self.staged.buf, Vec::with_capacity(room));
        let bytes = Bytes::from(buf);
        let mut ends = std::mem::take(&mut self.staged.ends);
        let mut receipts = std::mem::take(&mut self.staged.receipts);
        let result = self.calls(&bytes, &ends, &mut receipts).await;
        ends.clear();
        receipts.clear();
        // The vectors keep their room for the next batch.
        self.staged.ends = ends;
        self.staged.receipts = receipts;
        result
    }

    async fn calls(
        &mut self,
        bytes: &Bytes,
        ends: &[usize],
        receipts: &mut [Option<ReceiptSender>],
    ) -> Result<(), Aborted> {
        let all: Vec<usize> = (0..ends.len()).collect();
        let again = self.round(bytes, ends, receipts, &all, true).await?;
        if !again.is_empty() {
            // Calls the receiver can not have processed (the connection closed or went
            // away under them) go once more, on a new connection: a receiver restarting
            // gracefully loses none of them, and none can arrive twice.
            self.round(bytes, ends, receipts, &again, false).await?;
        }
        Ok(())
    }

    /// Calls `SendSpan` for the spans `todo` (indices into `ends`) on the backend's
    /// connection, settling each as its answer comes; except, when `retry` is set, the
    /// calls the receiver can not have processed, which are left unsettled and returned.
    async fn round(
        &mut self,
        bytes: &Bytes,
        ends: &[usize],
        receipts: &mut [Option<ReceiptSender>],
        todo: &[usize],
        retry: bool,
    ) -> Result<Vec<usize>, Aborted> {
        let mut again = Vec::new();
        // A connection the receiver closed since the last batch (an idle timeout, a
        // GOAWAY) is replaced before any call is lost on it.
        self.link.forget_closed(|c| c.send.is_closed());
        let conn = match self.link.get().await {
            Ok(c) => c.clone(),
            Err(e) => {
                let aborting = self.ledger.aborting().is_set();
                let reason = if aborting {
                    DropReason::Closed
                } else {
                    DropReason::ConnectTimeout
                };
                for &i in todo {
                    self.ledger.settle(receipts[i].take(), Err((reason, &e)));
                }
                return if aborting { Err(Aborted) } else { Ok(again) };
            }
        };
        // `Empty` answers: anything longer than this is refused before it is buffered.
        let grpc = tonic::client::Grpc::with_origin(conn.clone(), self.origin.clone())
            .max_decoding_message_size(MAX_ANSWER);
        let timeout = self.write_timeout;
        let call = |i: usize| {
            let span = bytes.slice(span_range(ends, i));
            let mut grpc = grpc.clone();
            async move {
                let path = http::uri::PathAndQuery::from_static(ssf_proto::grpc::SEND_SPAN_PATH);
                let call = async {
                    grpc.ready()
                        .await
                        .map_err(|e| classify(&Status::from_error(e)))?;
                    let request = tonic::Request::new(span);
                    match grpc.unary(request, path, EncodedSpanCodec).await {
                        Ok(_) => Ok(()),
                        Err(s) => Err(classify(&s)),
                    }
                };
                let outcome: Outcome = match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(Failure {
                        reason: DropReason::WriteTimeout,
                        error: io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the receiver did not answer within {timeout:?}"),
                        ),
                        unprocessed: false,
                    }),
                };
                (i, outcome)
            }
        };
        let max_in_flight = self.in_flight;
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        let mut settled = vec![false; ends.len()];
        let mut broken = false;
        let mut stalled = false;
        // Once the receiver stalls or the connection breaks, no more calls start on it:
        // the round's other spans are dropped at once, for the same reason, instead of
        // each waiting out its own timeout on a connection known to be bad (or, after a
        // break, sent again on a new one).
        let mut given_up: Option<(DropReason, String)> = None;
        let mut sent_bytes = 0;
        let aborted = loop {
            while given_up.is_none() && next < todo.len() && in_flight.len() < max_in_flight {
                in_flight.push(call(todo[next]));
                next += 1;
            }
            let answered = tokio::select! {
                biased;
                _ = self.ledger.aborting().wait() => break true,
                a = in_flight.next() => a,
            };
            let Some((i, outcome)) = answered else {
                break false;
            };
            match outcome {
                Ok(()) => {
                    settled[i] = true;
                    sent_bytes += span_range(ends, i).len();
                    self.ledger.settle(receipts[i].take(), Ok(()));
                }
                Err(f) => {
                    match f.reason {
                        DropReason::WriteTimeout => stalled = true,
                        DropReason::WriteError => broken = true,
                        _ => {}
                    }
                    let bad = stalled || (broken && conn.send.is_closed());
                    if bad && given_up.is_none() {
                        given_up = Some((f.reason, f.error.to_string()));
                    }
                    if retry && f.unprocessed {
                        again.push(i);
                    } else {
                        settled[i] = true;
                        self.ledger
                            .settle(receipts[i].take(), Err((f.reason, &f.error)));
                    }
                }
            }
        };
        drop(in_flight);
        self.ledger.shared().counters.wrote(sent_bytes);
        if aborted {
            let e = io::Error::other("the client shut down before the receiver answered");
            for &i in todo {
                if !settled[i] {
                    self.ledger
                        .settle(receipts[i].take(), Err((DropReason::Closed, &e)));
                }
            }
            drop(self.link.take());
            return Err(Aborted);
        }
        if let Some((reason, why)) = given_up {
            let rest = &todo[next..];
            if retry && !stalled {
                // Never started, so never sent: they go again with the others.
                again.extend_from_slice(rest);
            } else {
                let kind = if reason == DropReason::WriteTimeout {
                    io::ErrorKind::TimedOut
                } else {
                    io::ErrorKind::ConnectionReset
                };
                let e = io::Error::new(kind, format!("not sent: an earlier call failed ({why})"));
                for &i in rest {
                    self.ledger.settle(receipts[i].take(), Err((reason, &e)));
                }
            }
        }
        if stalled {
            self.link.stalled();
        } else if broken || conn.send.is_closed() {
            self.link.reset();
        }
        Ok(again)
    }
}

impl Transport for GrpcTransport {
    #[inline]
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool {
        self.staged
            .stage(&mut self.ledger, msg, inline, MAX_MESSAGE, STAGED_BYTES)
    }

    async fn send_staged(&mut self) {
        let _ = self.send_calls().await;
    }

    async fn flush(&mut self) -> io::Result<()> {
        // Nothing is held between batches: every span of a batch has its answer when
        // `send_staged` returns.
        Ok(())
    }

    async fn close(&mut self) -> io::Result<()> {
        // Dropping the last handle closes the HTTP/2 connection (GOAWAY, then the end of
        // the stream).
        drop(self.link.take());
        Ok(())
    }

    fn abort(&mut self) -> u64 {
        drop(self.link.take());
        self.staged.abort()
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_from_the_receiver_is_a_grpc_status_drop() {
        let f = classify(&Status::resource_exhausted("queue full"));
        assert_eq!(f.reason, DropReason::GrpcStatus);
        assert!(
            !f.unprocessed,
            "the receiver answered: it processed the call"
        );
        assert_eq!(f.error.kind(), io::ErrorKind::QuotaExceeded);
        assert_eq!(
            f.error.to_string(),
            "the receiver answered grpc status resource_exhausted: queue full"
        );
        let f = classify(&Status::unimplemented(""));
        assert_eq!(
            f.error.to_string(),
            "the receiver answered grpc status unimplemented"
        );
    }

    #[test]
    fn a_status_with_a_source_is_a_connection_failure() {
        let s = Status::from_error(Box::new(io::Error::from(io::ErrorKind::BrokenPipe)));
        let f = classify(&s);
        assert_eq!(f.reason, DropReason::WriteError);
        assert!(!f.unprocessed, "a broken pipe says nothing of the receiver");
    }

    #[test]
    fn a_refused_stream_is_unprocessed_other_resets_are_not() {
        let refused = Status::from_error(Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)));
        let f = classify(&refused);
        assert_eq!(f.reason, DropReason::WriteError);
        assert!(f.unprocessed);
        for reason in [
            h2::Reason::INTERNAL_ERROR,
            h2::Reason::CANCEL,
            h2::Reason::NO_ERROR,
        ] {
            let s = Status::from_error(Box::new(h2::Error::from(reason)));
            assert!(!classify(&s).unprocessed, "{reason:?}");
        }
    }
}
