//! The built-in transports: UDP datagrams and framed unix/TCP streams.
//!
//! A transport belongs to one worker and owns at most one connection, opened lazily and
//! re-opened (with backoff, within the connect timeout) after it breaks. A transport does
//! its own accounting: when `send` returns, the span has been counted as sent, as dropped
//! or as held in the write buffer; only a cancelled `send` leaves that to the worker.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ssf_codec::addr::Address;
use ssf_codec::{DatagramCodec, SsfCodec};
use ssf_proto::SsfSpan;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::error::{DeliveryError, DropReason, Dropped};
use crate::link::{Connect, ConnectFuture, Link};
use crate::message::Shared;

/// What a worker drives. Implemented by the built-in transports and, through an adapter,
/// by user [`Backend`](crate::Backend)s.
pub(crate) trait Transport: Send + 'static {
    /// Sends one span and counts it.
    fn send(&mut self, span: &SsfSpan) -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// Writes out what is buffered (counting it as sent or dropped).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Flushes, then closes the connection (the peer sees the end of the stream).
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Forgets the connection and the buffer; returns how many spans the buffer held, for
    /// the worker to count as dropped.
    fn abort(&mut self) -> u64;

    /// This backend's accounting.
    fn ledger(&mut self) -> &mut Ledger;
}

/// One backend's accounting: the client's counters, and what this backend dropped since
/// it last reported to a flush.
#[derive(Debug)]
pub(crate) struct Ledger {
    shared: Arc<Shared>,
    since_flush: Option<Dropped>,
}

impl Ledger {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Ledger {
            shared,
            since_flush: None,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    #[inline]
    pub(crate) fn sent(&self, n: u64) {
        self.shared.counters.sent(n);
    }

    /// Counts `n` dropped spans; delivery failures are kept for the next flush.
    pub(crate) fn dropped(&mut self, reason: DropReason, n: u64, error: Option<&io::Error>) {
        if n == 0 {
            return;
        }
        self.shared.counters.dropped(reason, n);
        if matches!(reason, DropReason::Oversize | DropReason::Closed) {
            // Not a delivery failure: the span could never be sent, or the client is
            // going away (a flush cannot be waiting).
            return;
        }
        match &mut self.since_flush {
            Some(d) => d.add(n),
            None => self.since_flush = Some(Dropped::new(reason, n, error)),
        }
    }

    /// What was dropped since the last report, for a flush.
    pub(crate) fn take(&mut self) -> Option<Dropped> {
        self.since_flush.take()
    }

    /// Puts back what a flush that timed out did not receive.
    pub(crate) fn restore(&mut self, d: Dropped) {
        match &mut self.since_flush {
            Some(now) => now.add(d.count()),
            None => self.since_flush = Some(d),
        }
    }
}

/// Connection settings shared by the network transports.
#[derive(Debug, Clone)]
pub(crate) struct NetConfig {
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
    /// Write-buffer size for streams; `None` = every frame is written on its own.
    pub(crate) buffer_size: Option<usize>,
    pub(crate) max_datagram_size: usize,
}

/// Keeps a scratch buffer from staying huge after one very large span.
fn shrink(buf: &mut BytesMut, normal: usize) {
    let normal = normal.max(64 * 1024);
    if buf.is_empty() && buf.capacity() > 4 * normal {
        *buf = BytesMut::with_capacity(normal);
    }
}

fn oversize(e: ssf_codec::Error) -> DeliveryError {
    DeliveryError::new(
        DropReason::Oversize,
        Some(io::Error::new(io::ErrorKind::InvalidData, e)),
    )
}

// ===== writes with a stall timeout =====

/// A socket that can be written without waiting, and waited on until writable.
pub(crate) trait TryWrite {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Why a write failed.
pub(crate) fn write_failed(e: WriteFailure) -> (DropReason, io::Error) {
    match e {
        WriteFailure::Io(e) => (DropReason::WriteError, e),
        WriteFailure::Stalled(t) => (
            DropReason::WriteTimeout,
            io::Error::new(io::ErrorKind::TimedOut, WriteStalled(t)),
        ),
    }
}

#[derive(Debug)]
pub(crate) enum WriteFailure {
    Io(io::Error),
    Stalled(Duration),
}

/// The error inside the `TimedOut` I/O error of a stalled write.
#[derive(Debug)]
struct WriteStalled(Duration);

impl std::fmt::Display for WriteStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the receiver took nothing for {:?} (write timeout)",
            self.0
        )
    }
}

impl std::error::Error for WriteStalled {}

/// Writes all of `buf`, failing if the socket takes nothing for `timeout`. The timer is
/// only set up when the socket is full.
pub(crate) async fn write_all<W: TryWrite>(
    w: &W,
    mut buf: &[u8],
    timeout: Duration,
) -> Result<(), WriteFailure> {
    let mut deadline: Option<Instant> = None;
    while !buf.is_empty() {
        match w.try_write(buf) {
            Ok(0) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                buf = &buf[n..];
                deadline = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                match tokio::time::timeout_at(at, w.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(WriteFailure::Io(e)),
                    Err(_) => return Err(WriteFailure::Stalled(timeout)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteFailure::Io(e)),
        }
    }
    Ok(())
}

// ===== streams =====

#[derive(Debug, Clone)]
enum StreamTarget {
    Tcp(Address),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

#[derive(Debug)]
pub(crate) enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl TryWrite for Conn {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_write(buf),
            #[cfg(unix)]
            Conn::Unix(s) => s.try_write(buf),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.writable().await,
            #[cfg(unix)]
            Conn::Unix(s) => s.writable().await,
        }
    }
}

impl Conn {
    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown().await,
            #[cfg(unix)]
            Conn::Unix(s) => s.shutdown().await,
        }
    }
}

async fn connect_stream(target: StreamTarget) -> io::Result<Conn> {
    match target {
        StreamTarget::Tcp(addr) => {
            let mut last = None;
            for a in addr.resolve().await? {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        // Frames and buffers are written whole; do not hold them back.
                        s.set_nodelay(true)?;
                        return Ok(Conn::Tcp(s));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
        }
        #[cfg(unix)]
        StreamTarget::Unix(path) => Ok(Conn::Unix(tokio::net::UnixStream::connect(path).await?)),
    }
}

impl Connect for StreamTarget {
    type Conn = Conn;

    fn connect(&self) -> ConnectFuture<Conn> {
        Box::pin(connect_stream(self.clone()))
    }
}

/// A framed stream (unix or TCP), unbuffered or with a write buffer.
#[derive(Debug)]
pub(crate) struct StreamTransport {
    link: Link<StreamTarget>,
    /// Unbuffered: scratch space for one frame. Buffered: the frames not yet written.
    buf: BytesMut,
    buffer_size: Option<usize>,
    /// Spans in `buf` (buffered mode).
    pending: u64,
    codec: SsfCodec,
    write_timeout: Duration,
    ledger: Ledger,
}

impl StreamTransport {
    /// `None` when the address is not a stream the client supports.
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Option<Self> {
        let target = stream_target(addr)?;
        Some(StreamTransport {
            link: Link::new(
                target,
                Backoff::new(config.backoff, config.max_backoff),
                config.connect_timeout,
                config.max_backoff,
                shared.clone(),
            ),
            buf: BytesMut::new(),
            buffer_size: config.buffer_size,
            pending: 0,
            codec: SsfCodec::new(),
            write_timeout: config.write_timeout,
            ledger: Ledger::new(shared),
        })
    }

    /// Connects if needed, then writes `self.buf` in one go.
    async fn write_out(&mut self) -> Result<(), (DropReason, io::Error)> {
        let conn = match self.link.get().await {
            Ok(c) => c,
            Err(e) => return Err((DropReason::ConnectTimeout, e)),
        };
        match write_all(conn, &self.buf, self.write_timeout).await {
            Ok(()) => {
                self.ledger.shared().counters.wrote(self.buf.len());
                Ok(())
            }
            Err(e) => {
                let (reason, e) = write_failed(e);
                if reason == DropReason::WriteTimeout {
                    self.link.stalled();
                } else {
                    self.link.reset();
                }
                Err((reason, e))
            }
        }
    }

    /// Writes the whole buffer in one go and counts its spans.
    async fn write_buffer(&mut self) -> Result<(), (DropReason, io::Error)> {
        if self.buffer_size.is_none() || self.buf.is_empty() {
            return Ok(());
        }
        let result = self.write_out().await;
        let n = std::mem::take(&mut self.pending);
        match &result {
            Ok(()) => self.ledger.sent(n),
            Err((reason, e)) => self.ledger.dropped(*reason, n, Some(e)),
        }
        self.buf.clear();
        shrink(&mut self.buf, self.buffer_size.unwrap_or(0));
        result
    }

    async fn send_unbuffered(&mut self, span: &SsfSpan) -> Result<(), DeliveryError> {
        self.buf.clear();
        shrink(&mut self.buf, 0);
        if let Err(e) = self.codec.encode_frame(span, &mut self.buf) {
            self.ledger.dropped(DropReason::Oversize, 1, None);
            return Err(oversize(e));
        }
        let result = self.write_out().await;
        // The scratch frame must not look like buffered data to `flush`/`close`.
        self.buf.clear();
        match result {
            Ok(()) => {
                self.ledger.sent(1);
                Ok(())
            }
            Err((reason, e)) => {
                self.ledger.dropped(reason, 1, Some(&e));
                Err(DeliveryError::new(reason, Some(e)))
            }
        }
    }

    async fn send_buffered(&mut self, span: &SsfSpan, size: usize) -> Result<(), DeliveryError> {
        let len = ssf_codec::HEADER_LEN + ssf_proto::wire::encoded_len(span);
        if !self.buf.is_empty() && self.buf.len() + len > size {
            // Errors here belong to the spans already buffered; they are counted there.
            let _ = self.write_buffer().await;
        }
        if let Err(e) = self.codec.encode_frame(span, &mut self.buf) {
            self.ledger.dropped(DropReason::Oversize, 1, None);
            return Err(oversize(e));
        }
        self.pending += 1;
        if self.buf.len() >= size {
            // This span is in the buffer being written: its fate is the buffer's.
            self.write_buffer()
                .await
                .map_err(|(reason, e)| DeliveryError::new(reason, Some(e)))?;
        }
        Ok(())
    }
}

fn stream_target(addr: &Address) -> Option<StreamTarget> {
    use ssf_codec::addr::Scheme;
    match addr.scheme() {
        Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 => Some(StreamTarget::Tcp(addr.clone())),
        #[cfg(unix)]
        Scheme::Unix => {
            if let Some(p) = addr.unix_path() {
                Some(StreamTarget::Unix(p.to_path_buf()))
            } else {
                // tokio reads a path starting with a NUL byte as an abstract name (Linux).
                use std::os::unix::ffi::OsStringExt;
                let name = addr.abstract_name()?;
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name.as_bytes());
                Some(StreamTarget::Unix(
                    std::ffi::OsString::from_vec(bytes).into(),
                ))
            }
        }
        _ => None,
    }
}

impl Transport for StreamTransport {
    async fn send(&mut self, span: &SsfSpan) -> Result<(), DeliveryError> {
        match self.buffer_size {
            None => self.send_unbuffered(span).await,
            Some(size) => self.send_buffered(span, size).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.write_buffer().await.map_err(|(_, e)| e)
    }

    async fn close(&mut self) -> io::Result<()> {
        let flushed = self.write_buffer().await.map_err(|(_, e)| e);
        let closed = match self.link.take() {
            Some(mut c) => c.shutdown().await,
            None => Ok(()),
        };
        flushed.and(closed)
    }

    fn abort(&mut self) -> u64 {
        drop(self.link.take());
        self.buf.clear();
        std::mem::take(&mut self.pending)
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}

// ===== UDP =====

#[derive(Debug)]
struct UdpTarget(Address);

async fn connect_udp(addr: Address) -> io::Result<UdpSocket> {
    let mut last = None;
    for a in addr.resolve().await? {
        let local = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let attempt = async {
            let s = UdpSocket::bind(local).await?;
            s.connect(a).await?;
            Ok::<_, io::Error>(s)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

impl Connect for UdpTarget {
    type Conn = UdpSocket;

    fn connect(&self) -> ConnectFuture<UdpSocket> {
        Box::pin(connect_udp(self.0.clone()))
    }
}

/// One span per datagram, size-checked, over a connected UDP socket.
#[derive(Debug)]
pub(crate) struct UdpTransport {
    link: Link<UdpTarget>,
    buf: Vec<u8>,
    codec: DatagramCodec,
    write_timeout: Duration,
    ledger: Ledger,
}

impl UdpTransport {
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Self {
        UdpTransport {
            link: Link::new(
                UdpTarget(addr.clone()),
                Backoff::new(config.backoff, config.max_backoff),
                config.connect_timeout,
                config.max_backoff,
                shared.clone(),
            ),
            buf: Vec::new(),
            codec: DatagramCodec::with_max_size(config.max_datagram_size),
            write_timeout: config.write_timeout,
            ledger: Ledger::new(shared),
        }
    }
}

/// Sends one datagram, failing if the socket stays full for `timeout`.
async fn send_datagram(
    socket: &UdpSocket,
    buf: &[u8],
    timeout: Duration,
) -> Result<usize, WriteFailure> {
    let mut deadline: Option<Instant> = None;
    loop {
        match socket.try_send(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                match tokio::time::timeout_at(at, socket.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(WriteFailure::Io(e)),
                    Err(_) => return Err(WriteFailure::Stalled(timeout)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteFailure::Io(e)),
        }
    }
}

impl Transport for UdpTransport {
    async fn send(&mut self, span: &SsfSpan) -> Result<(), DeliveryError> {
        self.buf.clear();
        if let Err(e) = self.codec.encode(span, &mut self.buf) {
            self.ledger.dropped(DropReason::Oversize, 1, None);
            return Err(oversize(e));
        }
        let socket = match self.link.get().await {
            Ok(s) => s,
            Err(e) => {
                self.ledger.dropped(DropReason::ConnectTimeout, 1, Some(&e));
                return Err(DeliveryError::new(DropReason::ConnectTimeout, Some(e)));
            }
        };
        match send_datagram(socket, &self.buf, self.write_timeout).await {
            Ok(n) => {
                self.ledger.sent(1);
                self.ledger.shared().counters.wrote(n);
                Ok(())
            }
            Err(e) => {
                let (reason, e) = write_failed(e);
                match reason {
                    DropReason::WriteTimeout => self.link.stalled(),
                    // "Connection refused" reports an earlier datagram's ICMP error; the
                    // socket itself is fine. Anything else: start over with a fresh
                    // socket (and a fresh name lookup).
                    _ if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    _ => self.link.reset(),
                }
                self.ledger.dropped(reason, 1, Some(&e));
                Err(DeliveryError::new(reason, Some(e)))
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn close(&mut self) -> io::Result<()> {
        drop(self.link.take());
        Ok(())
    }

    fn abort(&mut self) -> u64 {
        drop(self.link.take());
        0
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}
