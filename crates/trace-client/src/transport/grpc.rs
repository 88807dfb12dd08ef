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
//! [`DropReason::GrpcStatus`]; a call that failed on the connection (reset, refused
//! stream, the receiver going away) with [`DropReason::WriteError`]; no answer within the
//! write timeout with [`DropReason::WriteTimeout`].

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

use crate::encode::Framing;
use crate::error::DropReason;
use crate::message::{Message, ReceiptSender};
use crate::shared::Shared;
use crate::transport::api::{NetConfig, Transport};
use crate::transport::backoff::Backoff;
use crate::transport::ledger::Ledger;
use crate::transport::link::{Connect, ConnectFuture, Link};

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

type ResponseFuture =
    Pin<Box<dyn Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> ResponseFuture {
        Box::pin(self.send.send_request(req))
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

/// A failed call as a drop reason and an error: a status the receiver sent, or a
/// failure of the connection (a status tonic made from an HTTP/2 error, with its
/// source).
fn classify(status: &Status) -> (DropReason, io::Error) {
    let code = code_name(status.code());
    if let Some(source) = std::error::Error::source(status) {
        let e = io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("the grpc call failed on its connection ({code}): {source}"),
        );
        return (DropReason::WriteError, e);
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
    (DropReason::GrpcStatus, e)
}

// ===== the transport =====

/// The outcome of one call.
type Outcome = Result<(), (DropReason, io::Error)>;

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
    /// Encoded spans, back to back.
    buf: Vec<u8>,
    /// End offset in `buf` of each span.
    ends: Vec<usize>,
    /// The receipt of each span.
    receipts: Vec<Option<ReceiptSender>>,
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
            buf: Vec::new(),
            ends: Vec::new(),
            receipts: Vec::new(),
            write_timeout: config.write_timeout,
            in_flight: config.grpc_calls_in_flight,
            ledger: Ledger::new(shared),
        })
    }

    /// Calls `SendSpan` for each staged span, counting each as its answer comes.
    async fn send_calls(&mut self) -> Result<(), Aborted> {
        let n = self.ends.len();
        if n == 0 {
            return Ok(());
        }
        let room = STAGED_BYTES.min(self.buf.len());
        let bytes = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(room)));
        let mut ends = std::mem::take(&mut self.ends);
        let mut receipts = std::mem::take(&mut self.receipts);
        let result = self.calls(&bytes, &ends, &mut receipts).await;
        ends.clear();
        receipts.clear();
        // The vectors keep their room for the next batch.
        self.ends = ends;
        self.receipts = receipts;
        result
    }

    async fn calls(
        &mut self,
        bytes: &Bytes,
        ends: &[usize],
        receipts: &mut [Option<ReceiptSender>],
    ) -> Result<(), Aborted> {
        let n = ends.len();
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
                for r in receipts.iter_mut() {
                    self.ledger.settle(r.take(), Err((reason, &e)));
                }
                return if aborting { Err(Aborted) } else { Ok(()) };
            }
        };
        // `Empty` answers: anything longer than this is refused before it is buffered.
        let grpc = tonic::client::Grpc::with_origin(conn.clone(), self.origin.clone())
            .max_decoding_message_size(MAX_ANSWER);
        let timeout = self.write_timeout;
        let call = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let span = bytes.slice(start..ends[i]);
            let mut grpc = grpc.clone();
            async move {
                let path = http::uri::PathAndQuery::from_static(ssf_proto::grpc::SEND_SPAN_PATH);
                let call = async {
                    grpc.ready().await.map_err(|e| {
                        let s = Status::from_error(Box::new(e));
                        classify(&s)
                    })?;
                    let request = tonic::Request::new(span);
                    match grpc.unary(request, path, EncodedSpanCodec).await {
                        Ok(_) => Ok(()),
                        Err(s) => Err(classify(&s)),
                    }
                };
                let outcome: Outcome = match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err((
                        DropReason::WriteTimeout,
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the receiver did not answer within {timeout:?}"),
                        ),
                    )),
                };
                (i, outcome)
            }
        };
        let max_in_flight = self.in_flight;
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        let mut settled = vec![false; n];
        let mut broken = false;
        let mut stalled = false;
        // Once the receiver stalls or the connection breaks, no more calls start on it:
        // the batch's other spans are dropped at once, for the same reason, instead of
        // each waiting out its own timeout on a connection known to be bad.
        let mut given_up: Option<(DropReason, String)> = None;
        let mut sent_bytes = 0;
        let aborted = loop {
            while given_up.is_none() && next < n && in_flight.len() < max_in_flight {
                in_flight.push(call(next));
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
            settled[i] = true;
            let r = receipts[i].take();
            match outcome {
                Ok(()) => {
                    let start = if i == 0 { 0 } else { ends[i - 1] };
                    sent_bytes += ends[i] - start;
                    self.ledger.settle(r, Ok(()));
                }
                Err((reason, e)) => {
                    match reason {
                        DropReason::WriteTimeout => stalled = true,
                        DropReason::WriteError => broken = true,
                        _ => {}
                    }
                    let bad = stalled || (broken && conn.send.is_closed());
                    if bad && given_up.is_none() {
                        given_up = Some((reason, e.to_string()));
                    }
                    self.ledger.settle(r, Err((reason, &e)));
                }
            }
        };
        drop(in_flight);
        self.ledger.shared().counters.wrote(sent_bytes);
        if aborted {
            let e = io::Error::other("the client shut down before the receiver answered");
            for (i, r) in receipts.iter_mut().enumerate() {
                if !settled[i] {
                    self.ledger.settle(r.take(), Err((DropReason::Closed, &e)));
                }
            }
            drop(self.link.take());
            return Err(Aborted);
        }
        if let Some((reason, why)) = given_up {
            let kind = if reason == DropReason::WriteTimeout {
                io::ErrorKind::TimedOut
            } else {
                io::ErrorKind::ConnectionReset
            };
            let e = io::Error::new(kind, format!("not sent: an earlier call failed ({why})"));
            for r in receipts[next..].iter_mut() {
                self.ledger.settle(r.take(), Err((reason, &e)));
            }
        }
        if stalled {
            self.link.stalled();
        } else if broken || conn.send.is_closed() {
            self.link.reset();
        }
        Ok(())
    }
}

impl Transport for GrpcTransport {
    #[inline]
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool {
        let Some(receipt) =
            self.ledger
                .stage(msg, inline, Framing::Datagram, MAX_MESSAGE, &mut self.buf)
        else {
            return true;
        };
        self.ends.push(self.buf.len());
        self.receipts.push(receipt);
        self.buf.len() < STAGED_BYTES
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
        let n = self.ends.len();
        self.buf.clear();
        self.ends.clear();
        // Their receipts resolve as dropped (closed) when their senders go.
        self.receipts.clear();
        n as u64
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
        let (reason, e) = classify(&Status::resource_exhausted("queue full"));
        assert_eq!(reason, DropReason::GrpcStatus);
        assert_eq!(e.kind(), io::ErrorKind::QuotaExceeded);
        assert_eq!(
            e.to_string(),
            "the receiver answered grpc status resource_exhausted: queue full"
        );
        let (_, e) = classify(&Status::unimplemented(""));
        assert_eq!(
            e.to_string(),
            "the receiver answered grpc status unimplemented"
        );
    }

    #[test]
    fn a_status_with_a_source_is_a_connection_failure() {
        let s = Status::from_error(Box::new(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert_eq!(classify(&s).0, DropReason::WriteError);
    }
}
