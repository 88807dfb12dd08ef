//! The gRPC listener (`grpc://`, feature `grpc`): veneur's `ssf.SSFGRPC` service, one
//! HTTP/2 connection per accepted TCP connection, one span per `SendSpan` call.
//!
//! Limits are the stream listener's: at most `max_connections` connections at once (one
//! over is closed on arrival and counted), a message over `max_frame_length` is refused
//! from its length prefix before its body is buffered (tonic's
//! `max_decoding_message_size`), and a call waits for room in the span channel before it
//! is answered, so a slow consumer slows the senders down. As veneur does, spans received
//! over gRPC are not normalised.

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
use tokio::task::JoinSet;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::reject::RejectReason;
use crate::stats::{add, incr};
use crate::task::{Ctx, ERROR_PAUSE};

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
        while conns.try_join_next().is_some() {}
        if conns.len() >= ctx.max_connections {
            incr(&ctx.counters.connections_rejected);
            ctx.reject(RejectReason::ConnectionLimit, &|| peer.clone(), &|| {
                format!(
                    "closed on arrival: {} connections are open on this listener",
                    ctx.max_connections
                )
            });
            drop(stream);
            continue;
        }
        incr(&ctx.counters.connections_accepted);
        conns.spawn(serve(stream, peer, ctx.clone()));
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Serves one connection until the peer closes it, or until shutdown (a graceful one:
/// the calls in flight are answered).
async fn serve(stream: TcpStream, peer: String, ctx: Ctx) {
    let _ = stream.set_nodelay(true);
    let service = SendSpanService {
        ctx: ctx.clone(),
        peer,
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = ctx.cancel.cancelled() => None,
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
            };
            let mut grpc =
                tonic::server::Grpc::new(codec).max_decoding_message_size(ctx.max_frame_length);
            let response = grpc.unary(Deliver { ctx: ctx.clone() }, req).await;
            // A message over the limit is answered by tonic before our decoder runs.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(Code::from_i32);
            if code == Some(Code::OutOfRange) {
                incr(&ctx.counters.rejected_calls);
                ctx.reject(RejectReason::RejectedCall, &|| peer.clone(), &|| {
                    format!(
                        "message over the limit of {} bytes; refused before reading it",
                        ctx.max_frame_length
                    )
                });
            }
            Ok(response)
        })
    }
}

/// Decodes each message as a span (counting it as a frame, or as a corrupt one);
/// encodes the empty answer.
struct SpanCodec {
    ctx: Ctx,
    peer: String,
}

struct SpanDecoder {
    ctx: Ctx,
    peer: String,
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

/// Hands a decoded span to the consumer, waiting for room; answers once it is queued.
struct Deliver {
    ctx: Ctx,
}

impl tonic::server::UnaryService<SsfSpan> for Deliver {
    type Response = ();
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<()>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<SsfSpan>) -> Self::Future {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            if ctx.tx.send(request.into_inner()).await.is_ok() {
                incr(&ctx.counters.spans);
                Ok(tonic::Response::new(()))
            } else {
                Err(Status::unavailable("the receiver is shutting down"))
            }
        })
    }
}
