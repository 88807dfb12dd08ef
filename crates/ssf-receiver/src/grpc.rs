//! The gRPC listener (`grpc://`, feature `grpc`): veneur's `ssf.SSFGRPC` service, one
//! HTTP/2 connection per accepted TCP connection, one span per `SendSpan` call.
//!
//! Limits are the stream listener's: at most `max_connections` connections at once (one
//! over is closed on arrival and counted), a message over `max_frame_length` is refused
//! from its length prefix before its body is buffered (tonic's
//! `max_decoding_message_size`), the messages a connection's calls are reading hold at
//! most `max_frame_length` bytes together (a call that does not fit is refused with
//! `resource_exhausted`; see `budget.rs`), `read_timeout` closes a connection on which no
//! message arrived in time (waiting for the consumer does not count), and a call waits
//! for room in the span channel before it is answered, so a slow consumer slows the
//! senders down. Spans are normalised as the stream listener's are (veneur skips this for
//! gRPC, so a sample rate of 0 stays 0 there).

mod budget;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ssf_proto::SsfSpan;
use ssf_proto::grpc::SEND_SPAN_PATH;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::reject::RejectReason;
use crate::stats::{add, incr};
use crate::task::{Ctx, Deadline, ERROR_PAUSE, expired};
use budget::{Budget, OVER_BUDGET};

/// Concurrent calls per connection, at most (the HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`
/// the listener announces).
const MAX_STREAMS: u32 = 256;

/// After shutdown is requested, how long a connection's calls in flight may take to
/// finish before the connection is closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accepts connections until shutdown, at most `max_connections` at a time, and serves
/// each; then lets the calls in flight finish.
pub(crate) async fn run_grpc(listener: TcpListener, ctx: Ctx) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::select! {
                () = ctx.cancel.cancelled() => break,
                () = tokio::time::sleep(ERROR_PAUSE) => {}
            }
            continue;
        };
        let peer = peer.to_string();
        if !ctx.admit(&mut conns, &peer) {
            drop(stream);
            continue;
        }
        conns.spawn(serve(stream, peer, ctx.clone()));
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Serves one connection until the peer closes it, until no message arrives within the
/// read timeout, or until shutdown (a graceful one: the calls in flight are answered).
async fn serve(stream: TcpStream, peer: String, ctx: Ctx) {
    let _ = stream.set_nodelay(true);
    let mut deadline = Deadline::new(ctx.read_timeout);
    // The calls waiting for room in the span channel; every change (and every message
    // decoded) is progress that restarts the read timeout. Without a timeout the calls
    // track nothing (and the receiving end is never polled).
    let (progress, mut progress_rx) = watch::channel(0usize);
    let service = SendSpanService {
        ctx: ctx.clone(),
        peer: peer.clone(),
        budget: Budget::new(ctx.max_frame_length),
        progress: Progress(deadline.is_some().then_some(progress)),
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut delivering = false;
    let ended = loop {
        tokio::select! {
            r = conn.as_mut() => break Some(r),
            () = ctx.cancel.cancelled() => break None,
            Ok(()) = progress_rx.changed(), if deadline.is_some() => {
                delivering = *progress_rx.borrow_and_update() > 0;
                if let Some(d) = deadline.as_mut() {
                    d.restart();
                }
            }
            after = expired(&mut deadline), if !delivering => {
                incr(&ctx.counters.timeouts);
                ctx.reject(RejectReason::Timeout, &|| peer.clone(), &|| {
                    format!("no grpc message within {after:?}; connection closed")
                });
                break None;
            }
        }
    };
    let ended = match ended {
        Some(r) => r,
        None => {
            // GOAWAY, then the calls in flight finish; a peer that never completes its
            // handshake (or holds a call open) is cut off after the grace period.
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    // A peer that goes away without a goodbye is an I/O error to hyper; either way the
    // connection is over.
    let _ = ended;
    incr(&ctx.counters.disconnects);
}

/// The service of one connection: `SendSpan`, and `unimplemented` for any other path.
#[derive(Clone)]
struct SendSpanService {
    ctx: Ctx,
    peer: String,
    budget: Budget,
    progress: Progress,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl tower_service::Service<http::Request<Incoming>> for SendSpanService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Incoming>) -> ResponseFuture {
        let ctx = self.ctx.clone();
        let peer = self.peer.clone();
        let progress = self.progress.clone();
        let limit = ctx.max_frame_length;
        let req = req.map(|body| self.budget.wrap(body, limit));
        Box::pin(async move {
            let path = req.uri().path();
            if path != SEND_SPAN_PATH {
                incr(&ctx.counters.rejected_calls);
                let detail = format!("no method {path}: this listener serves {SEND_SPAN_PATH}");
                ctx.reject(RejectReason::RejectedCall, &|| peer.clone(), &|| {
                    detail.clone()
                });
                return Ok(Status::unimplemented(detail).into_http());
            }
            let codec = SpanCodec {
                ctx: ctx.clone(),
                peer: peer.clone(),
                progress: progress.clone(),
            };
            let mut grpc = tonic::server::Grpc::new(codec).max_decoding_message_size(limit);
            let deliver = Deliver {
                ctx: ctx.clone(),
                progress,
            };
            let response = grpc.unary(deliver, req).await;
            // Each refusal is counted once: here those of tonic (a length over the limit,
            // or its own checks) and of the budget, which answer before our code runs.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(Code::from_i32);
            if let Some(code) = code.filter(|c| !counted_elsewhere(*c)) {
                incr(&ctx.counters.rejected_calls);
                ctx.reject(
                    RejectReason::RejectedCall,
                    &|| peer.clone(),
                    &|| match code {
                        Code::OutOfRange => {
                            format!(
                                "message over the limit of {limit} bytes; refused before reading it"
                            )
                        }
                        c if c == OVER_BUDGET => format!(
                            "message refused before reading it: the connection's calls already \
                         hold {limit} bytes of messages"
                        ),
                        // What tonic refused on its own: a compressed message, an unknown
                        // encoding, a call without its message.
                        _ => {
                            let message = response
                                .headers()
                                .get("grpc-message")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            format!("call refused with grpc status {code:?}: {message}")
                        }
                    },
                );
            }
            Ok(response)
        })
    }
}

/// Whether an answer's status was counted where it was made, or is no refusal: `Ok` (a
/// span), `InvalidArgument` (a corrupt span, counted by the decoder), `Unavailable` (the
/// receiver shutting down, not the peer's fault).
fn counted_elsewhere(code: Code) -> bool {
    matches!(code, Code::Ok | Code::InvalidArgument | Code::Unavailable)
}

/// Decodes each message as a span (counting it as a frame, or as a corrupt one);
/// encodes the empty answer.
struct SpanCodec {
    ctx: Ctx,
    peer: String,
    progress: Progress,
}

struct SpanDecoder {
    ctx: Ctx,
    peer: String,
    progress: Progress,
}

struct EmptyEncoder;

impl Codec for SpanCodec {
    type Encode = ();
    type Decode = SsfSpan;
    type Encoder = EmptyEncoder;
    type Decoder = SpanDecoder;

    fn encoder(&mut self) -> EmptyEncoder {
        EmptyEncoder
    }

    fn decoder(&mut self) -> SpanDecoder {
        SpanDecoder {
            ctx: self.ctx.clone(),
            peer: self.peer.clone(),
            progress: self.progress.clone(),
        }
    }
}

impl Encoder for EmptyEncoder {
    type Item = ();
    type Error = Status;

    fn encode(&mut self, (): (), _: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // `Empty` encodes to no bytes.
        Ok(())
    }
}

impl Decoder for SpanDecoder {
    type Item = SsfSpan;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<SsfSpan>, Status> {
        let c = &self.ctx.counters;
        let len = src.remaining();
        incr(&c.frames);
        add(&c.bytes, len as u64);
        self.progress.message();
        // tonic hands over one whole message, already checked against the limit.
        match ssf_proto::wire::decode(&mut *src) {
            Ok(span) => Ok(Some(span)),
            Err(e) => {
                incr(&c.corrupt_frames);
                self.ctx
                    .reject(RejectReason::CorruptFrame, &|| self.peer.clone(), &|| {
                        format!("{len} bytes are not a span: {e}")
                    });
                Err(Status::invalid_argument(format!(
                    "the message is not an ssf span: {e}"
                )))
            }
        }
    }
}

/// Hands a decoded span to the consumer (normalised, as the stream listener's are),
/// waiting for room; answers once it is queued.
struct Deliver {
    ctx: Ctx,
    progress: Progress,
}

/// A connection's progress, for its read timeout (none without one): each message
/// decoded, and the number of calls waiting for room in the span channel (while one
/// waits, the connection is not idle).
#[derive(Clone)]
struct Progress(Option<watch::Sender<usize>>);

impl Progress {
    /// A whole message arrived.
    fn message(&self) {
        if let Some(tx) = &self.0 {
            tx.send_modify(|_| {});
        }
    }

    /// Counts a call as waiting for the consumer while the guard lives.
    fn waiting(&self) -> Waiting {
        if let Some(tx) = &self.0 {
            tx.send_modify(|n| *n += 1);
        }
        Waiting(self.0.clone())
    }
}

struct Waiting(Option<watch::Sender<usize>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(tx) = &self.0 {
            tx.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl tonic::server::UnaryService<SsfSpan> for Deliver {
    type Response = ();
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<()>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<SsfSpan>) -> Self::Future {
        let ctx = self.ctx.clone();
        let progress = self.progress.clone();
        Box::pin(async move {
            let _waiting = progress.waiting();
            if ctx.deliver(request.into_inner()).await {
                Ok(tonic::Response::new(()))
            } else {
                Err(Status::unavailable("the receiver is shutting down"))
            }
        })
    }
}
