//! The reader tasks: one per UDP socket, one per stream listener and one per accepted
//! connection.

use std::error::Error as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ssf_codec::{Error as CodecError, SsfCodec};
use ssf_proto::{SsfSpan, wire};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::reject::{Reject, RejectHook, RejectReason};
use crate::stats::{Counters, add, incr};

/// After shutdown is requested, a UDP reader still takes up to this many datagrams that
/// are already queued in the kernel, without waiting for more.
const DRAIN_DATAGRAMS: usize = 4096;

/// After shutdown is requested, a stream reader still takes up to this many bytes that are
/// already readable, without waiting for more.
const DRAIN_BYTES: usize = 1 << 20;

/// Room kept free in a stream's read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// How long an accept loop pauses after an accept error (for instance out of file
/// descriptors) or a UDP reader after a receive error.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What every reader task shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) tx: mpsc::Sender<SsfSpan>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) cancel: CancellationToken,
    pub(crate) on_reject: Option<RejectHook>,
    pub(crate) normalize: bool,
    pub(crate) max_frame_length: usize,
    pub(crate) max_datagram_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) read_timeout: Option<Duration>,
}

impl Ctx {
    pub(crate) fn reject(
        &self,
        reason: RejectReason,
        peer: &dyn Fn() -> String,
        detail: &dyn Fn() -> String,
    ) {
        if let Some(hook) = &self.on_reject {
            hook(&Reject {
                reason,
                peer: peer(),
                detail: detail(),
            });
        }
    }

    /// Whether a connection just accepted from `peer` may be served beside the open
    /// ones in `conns` (whose finished tasks are reaped first, so that only open
    /// connections count): counted as accepted, or as rejected and reported.
    pub(crate) fn admit(&self, conns: &mut JoinSet<()>, peer: &str) -> bool {
        while conns.try_join_next().is_some() {}
        if conns.len() >= self.max_connections {
            incr(&self.counters.connections_rejected);
            self.reject(RejectReason::ConnectionLimit, &|| peer.to_owned(), &|| {
                format!(
                    "closed on arrival: {} connections are open on this listener",
                    self.max_connections
                )
            });
            return false;
        }
        incr(&self.counters.connections_accepted);
        true
    }

    /// Normalises and queues a span, waiting for room. `false` when the consumer is gone.
    pub(crate) async fn deliver(&self, mut span: SsfSpan) -> bool {
        if self.normalize {
            ssf_proto::normalize(&mut span);
        }
        if self.tx.send(span).await.is_ok() {
            incr(&self.counters.spans);
            true
        } else {
            false
        }
    }

    /// Checks and decodes one datagram, counting and reporting what is wrong with it.
    fn datagram(&self, data: &[u8], peer: SocketAddr) -> Option<SsfSpan> {
        let c = &self.counters;
        incr(&c.datagrams);
        add(&c.bytes, data.len() as u64);
        let peer = &|| peer.to_string();
        if data.is_empty() {
            incr(&c.empty_datagrams);
            self.reject(RejectReason::EmptyDatagram, peer, &|| {
                "zero-length datagram".to_owned()
            });
            return None;
        }
        if data.len() > self.max_datagram_size {
            incr(&c.truncated_datagrams);
            self.reject(RejectReason::TruncatedDatagram, peer, &|| {
                format!(
                    "datagram longer than the limit of {} bytes",
                    self.max_datagram_size
                )
            });
            return None;
        }
        match wire::decode(data) {
            Ok(span) => Some(span),
            Err(e) => {
                incr(&c.undecodable_datagrams);
                self.reject(RejectReason::UndecodableDatagram, peer, &|| {
                    format!("{} bytes are not a span: {e}", data.len())
                });
                None
            }
        }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("normalize", &self.normalize)
            .field("max_frame_length", &self.max_frame_length)
            .field("max_datagram_size", &self.max_datagram_size)
            .field("max_connections", &self.max_connections)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// Reads datagrams until shutdown, then takes what the kernel already holds.
pub(crate) async fn run_udp(sock: UdpSocket, ctx: Ctx) {
    // One byte more than the limit, so that a longer datagram shows.
    let mut buf = vec![0u8; ctx.max_datagram_size + 1];
    loop {
        let received = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        match received {
            Ok((n, peer)) => {
                if let Some(span) = ctx.datagram(&buf[..n], peer) {
                    if !ctx.deliver(span).await {
                        return;
                    }
                }
            }
            Err(_) => {
                // Receive errors on an unconnected socket are transient; do not spin.
                tokio::select! {
                    () = ctx.cancel.cancelled() => break,
                    () = tokio::time::sleep(ERROR_PAUSE) => {}
                }
            }
        }
    }
    // The runtime may not have seen the socket become readable yet, so read the
    // datagrams already queued through a duplicate of the descriptor, without waiting.
    let Some(direct) = dup_udp(&sock) else {
        return;
    };
    for _ in 0..DRAIN_DATAGRAMS {
        let Ok((n, peer)) = direct.recv_from(&mut buf) else {
            break;
        };
        if let Some(span) = ctx.datagram(&buf[..n], peer) {
            if !ctx.deliver(span).await {
                return;
            }
        }
    }
}

/// A stream listener.
#[derive(Debug)]
pub(crate) enum StreamListener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        /// The reported address, used to name connections.
        name: String,
        /// Removed when this task ends (shutdown through a handle).
        file: Option<Arc<crate::bind::SocketFile>>,
    },
}

/// Accepts connections until shutdown, one reader task each, at most
/// `max_connections` at a time; then waits for the readers to finish.
pub(crate) async fn run_listener(listener: StreamListener, ctx: Ctx) {
    let mut conns = JoinSet::new();
    let mut serial: u64 = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            a = accept(&listener, &mut serial) => a,
        };
        let Some((conn, peer)) = accepted else {
            tokio::select! {
                () = ctx.cancel.cancelled() => break,
                () = tokio::time::sleep(ERROR_PAUSE) => {}
            }
            continue;
        };
        if !ctx.admit(&mut conns, &peer) {
            drop(conn);
            continue;
        }
        let ctx = ctx.clone();
        match conn {
            Conn::Tcp(s) => conns.spawn(run_stream(s, peer, ctx)),
            #[cfg(unix)]
            Conn::Unix(s) => conns.spawn(run_stream(s, peer, ctx)),
        };
    }
    // Close the socket and remove its file before the readers finish, so that once the
    // consumer sees the end of the spans, nothing is left behind.
    match listener {
        StreamListener::Tcp(l) => drop(l),
        #[cfg(unix)]
        StreamListener::Unix { listener, file, .. } => {
            drop(listener);
            if let Some(f) = file {
                f.remove();
            }
        }
    }
    while conns.join_next().await.is_some() {}
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &StreamListener, serial: &mut u64) -> Option<(Conn, String)> {
    *serial += 1;
    match listener {
        StreamListener::Tcp(l) => {
            let (s, peer) = l.accept().await.ok()?;
            Some((Conn::Tcp(s), peer.to_string()))
        }
        #[cfg(unix)]
        StreamListener::Unix { listener, name, .. } => {
            let (s, _) = listener.accept().await.ok()?;
            Some((Conn::Unix(s), format!("{name} (connection {serial})")))
        }
    }
}

/// What ended a stream.
enum End {
    /// The consumer is gone, or shutdown ended the reading.
    Stop,
    /// Clean end of input between frames.
    Eof,
    /// A framing or I/O error.
    Framing(CodecError),
    /// No whole frame within the read timeout `after`; `buffered` bytes of a partial
    /// frame were waiting.
    Timeout { after: Duration, buffered: usize },
}

/// Reads frames from one connection until it ends, a framing error, or shutdown; after
/// shutdown is requested it still takes the bytes that are already readable.
pub(crate) async fn run_stream<S: AsyncRead + Dup + Unpin>(io: S, peer: String, ctx: Ctx) {
    match read_stream(io, &peer, &ctx).await {
        End::Stop => {}
        End::Eof => incr(&ctx.counters.disconnects),
        End::Framing(e) => {
            incr(&ctx.counters.framing_errors);
            ctx.reject(
                RejectReason::Framing,
                &|| peer.clone(),
                &|| match e.source() {
                    Some(cause) => format!("{e}: {cause}; connection closed"),
                    None => format!("{e}; connection closed"),
                },
            );
        }
        End::Timeout { after, buffered } => {
            incr(&ctx.counters.timeouts);
            ctx.reject(RejectReason::Timeout, &|| peer.clone(), &|| {
                if buffered == 0 {
                    format!("no frame within {after:?}; connection closed")
                } else {
                    format!(
                        "frame not complete within {after:?} ({buffered} bytes of it \
                         received); connection closed"
                    )
                }
            });
        }
    }
}

/// The read timeout's clock: reset at each whole frame, it fires when the next one takes
/// too long.
pub(crate) struct Deadline {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    pub(crate) fn new(timeout: Option<Duration>) -> Option<Deadline> {
        let timeout = timeout?;
        // A timeout beyond the clock's range is no timeout.
        let at = Instant::now().checked_add(timeout)?;
        Some(Deadline {
            timeout,
            sleep: Box::pin(tokio::time::sleep_until(at)),
        })
    }

    pub(crate) fn restart(&mut self) {
        if let Some(at) = Instant::now().checked_add(self.timeout) {
            self.sleep.as_mut().reset(at);
        }
    }
}

/// Waits for the deadline, if there is one, for ever otherwise.
pub(crate) async fn expired(deadline: &mut Option<Deadline>) -> Duration {
    match deadline {
        Some(d) => {
            d.sleep.as_mut().await;
            d.timeout
        }
        None => std::future::pending().await,
    }
}

async fn read_stream<S: AsyncRead + Dup + Unpin>(mut io: S, peer: &str, ctx: &Ctx) -> End {
    let mut codec = SsfCodec::with_max_frame_length(ctx.max_frame_length);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut draining = false;
    let mut drained = 0usize;
    let mut direct: Option<std::fs::File> = None;
    let mut deadline = Deadline::new(ctx.read_timeout);
    loop {
        let mut progressed = false;
        loop {
            match codec.decode_frame(&mut buf) {
                Ok(Some(body)) => {
                    progressed = true;
                    incr(&ctx.counters.frames);
                    let len = body.len();
                    match wire::decode(body.freeze()) {
                        Ok(span) => {
                            if !ctx.deliver(span).await {
                                return End::Stop;
                            }
                        }
                        Err(e) => {
                            incr(&ctx.counters.corrupt_frames);
                            ctx.reject(RejectReason::CorruptFrame, &|| peer.to_owned(), &|| {
                                format!("frame body of {len} bytes is not a span: {e}")
                            });
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return End::Framing(e),
            }
        }
        // The clock restarts after the spans are delivered: waiting for the consumer
        // does not count against the sender.
        if progressed {
            if let Some(d) = deadline.as_mut() {
                d.restart();
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let read = if draining {
            if drained >= DRAIN_BYTES {
                return End::Stop;
            }
            // Read what is already readable through a duplicate of the descriptor: the
            // runtime may not have seen it become readable yet.
            if direct.is_none() {
                direct = io.dup();
            }
            let Some(file) = direct.as_mut() else {
                return End::Stop;
            };
            let mut chunk = [0u8; READ_CHUNK];
            match file.read(&mut chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return End::Stop,
                Err(e) => Err(e),
            }
        } else {
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => {
                    draining = true;
                    continue;
                }
                r = io.read_buf(&mut buf) => r,
                after = expired(&mut deadline) => {
                    return End::Timeout { after, buffered: buf.len() };
                }
            }
        };
        match read {
            Ok(0) if buf.is_empty() => return End::Eof,
            Ok(0) => {
                return End::Framing(CodecError::UnexpectedEof {
                    buffered: buf.len(),
                });
            }
            Ok(n) => {
                add(&ctx.counters.bytes, n as u64);
                if draining {
                    drained += n;
                }
            }
            Err(e) => return End::Framing(CodecError::Io(e)),
        }
    }
}

/// A socket whose descriptor can be duplicated, to read what is already queued without
/// the runtime's readiness tracking.
pub(crate) trait Dup {
    /// A duplicate of the descriptor (non-blocking, like the original), if possible.
    fn dup(&self) -> Option<std::fs::File>;
}

#[cfg(unix)]
fn dup_fd(fd: &impl std::os::fd::AsFd) -> Option<std::fs::File> {
    fd.as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
}

impl Dup for tokio::net::TcpStream {
    fn dup(&self) -> Option<std::fs::File> {
        #[cfg(unix)]
        return dup_fd(self);
        #[cfg(not(unix))]
        return None;
    }
}

#[cfg(unix)]
impl Dup for tokio::net::UnixStream {
    fn dup(&self) -> Option<std::fs::File> {
        dup_fd(self)
    }
}

fn dup_udp(sock: &UdpSocket) -> Option<std::net::UdpSocket> {
    #[cfg(unix)]
    return std::os::fd::AsFd::as_fd(sock)
        .try_clone_to_owned()
        .ok()
        .map(std::net::UdpSocket::from);
    #[cfg(not(unix))]
    return None;
}
