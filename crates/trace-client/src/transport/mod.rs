//! The built-in transports: UDP datagrams and framed unix/TCP streams.
//!
//! A transport belongs to one worker and owns at most one connection (see
//! [`Link`]). The worker hands it *runs*: the consecutive spans of a batch taken from the
//! queue. A stream transport encodes a run into one buffer and writes it with as few
//! writes as possible; a UDP transport sends a run's datagrams with `sendmmsg` (Linux) or
//! one `send` each. A transport does its own accounting: when `send_run` returns, each
//! span of the run has been counted as sent, as dropped or as held in the write buffer,
//! and its receipt resolved (or kept, with the span, until the buffer is written). Every
//! wait (connecting, a full socket) ends when the client aborts (its shutdown deadline
//! passed): what is left is counted as dropped with reason `closed`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ssf_codec::addr::Address;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::encode;
use crate::error::{DeliveryError, DropReason, Dropped};
use crate::link::{Connect, ConnectFuture, Link};
use crate::message::{Message, ReceiptSender, Shared, Signal};

/// What a worker drives. Implemented by the built-in transports and, through an adapter,
/// by user [`Backend`](crate::Backend)s.
pub(crate) trait Transport: Send + 'static {
    /// Takes one span message (never a flush marker) of the batch being taken from the
    /// queue, with its slot's inline frame (`inline`, for a [`Message::Frame`] without a
    /// heap buffer): an encoded frame is copied into the write buffer, a span encoded
    /// into it (or kept, for a user backend). Returns false when the transport holds enough to
    /// write: the worker then ends the batch and calls
    /// [`send_staged`](Self::send_staged).
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool;

    /// Sends (or, buffered, keeps in the buffer) what [`stage`](Self::stage) took; counts
    /// each span and resolves its receipt. What is left staged when the client aborts is
    /// counted by [`abort`](Self::abort).
    fn send_staged(&mut self) -> impl Future<Output = ()> + Send;

    /// Writes out what is buffered (counting it as sent or dropped).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Flushes, then closes the connection (the peer sees the end of the stream).
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Forgets the connection and the buffer; returns how many spans the buffer (or the
    /// staged batch) held, for the worker to count as dropped.
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

    /// Set once the client's shutdown deadline passed.
    pub(crate) fn aborting(&self) -> &Signal {
        &self.shared.aborting
    }

    /// Counts one span of a run and resolves its receipt.
    pub(crate) fn settle(
        &mut self,
        receipt: Option<ReceiptSender>,
        result: Result<(), (DropReason, &io::Error)>,
    ) {
        match result {
            Ok(()) => self.sent(1),
            Err((reason, e)) => self.dropped(reason, 1, Some(e)),
        }
        if let Some(r) = receipt {
            let _ = r.send(result.map_err(|(reason, e)| copy_error(reason, e)));
        }
    }

    /// Counts the spans of `rest` as dropped because the client aborted, and resolves
    /// their receipts.
    pub(crate) fn abandon(&mut self, rest: &mut [Message]) {
        let mut n = 0;
        for msg in rest.iter_mut().filter(|m| m.is_span()) {
            n += 1;
            if let Some(r) = msg.take_receipt() {
                let _ = r.send(Err(DeliveryError::closed()));
            }
        }
        self.dropped(DropReason::Closed, n, None);
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

/// An I/O error for a second receipt (`io::Error` is not `Clone`).
fn copy_error(reason: DropReason, e: &io::Error) -> DeliveryError {
    DeliveryError::new(reason, Some(io::Error::new(e.kind(), e.to_string())))
}

/// Keeps a scratch buffer from staying huge after one very large span.
fn shrink(buf: &mut BytesMut, normal: usize) {
    let normal = normal.max(64 * 1024);
    if buf.is_empty() && buf.capacity() > 4 * normal {
        *buf = BytesMut::with_capacity(normal);
    }
}

/// Unbuffered streams coalesce the spans of one run into writes of about this size.
const COALESCE: usize = 128 * 1024;

/// UDP: datagrams sent with one `sendmmsg` call, at most.
const DATAGRAMS_PER_CALL: usize = 64;

/// UDP: encoded datagrams held before they are sent, at most (bytes).
const DATAGRAM_BYTES: usize = 256 * 1024;

pub(crate) fn oversize_error(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the span's encoding is {len} bytes, over the limit of {max}"),
    )
}

// ===== writes with a stall timeout =====

/// A socket that can be written without waiting, and waited on until writable.
pub(crate) trait TryWrite {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    Io(io::Error),
    Stalled(Duration),
    /// The client's shutdown deadline passed.
    Aborted,
}

impl WriteFailure {
    fn into_drop(self) -> (DropReason, io::Error) {
        match self {
            WriteFailure::Io(e) => (DropReason::WriteError, e),
            WriteFailure::Stalled(t) => (
                DropReason::WriteTimeout,
                io::Error::new(io::ErrorKind::TimedOut, WriteStalled(t)),
            ),
            WriteFailure::Aborted => (DropReason::Closed, shut_down()),
        }
    }
}

fn shut_down() -> io::Error {
    io::Error::other("the client shut down before the write finished")
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

/// Waits until `w` is writable, at most until `deadline`, and not past an abort.
async fn wait_writable<W: TryWrite>(
    w: &W,
    deadline: Instant,
    timeout: Duration,
    aborting: &Signal,
) -> Result<(), WriteFailure> {
    tokio::select! {
        biased;
        _ = aborting.wait() => Err(WriteFailure::Aborted),
        r = tokio::time::timeout_at(deadline, w.writable()) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailure::Io(e)),
            Err(_) => Err(WriteFailure::Stalled(timeout)),
        },
    }
}

/// Writes all of `buf`, failing if the socket takes nothing for `timeout`. The timer is
/// only set up when the socket is full. `written` tells how much the socket took, also
/// when the write fails.
pub(crate) async fn write_all<W: TryWrite>(
    w: &W,
    buf: &[u8],
    written: &mut usize,
    timeout: Duration,
    aborting: &Signal,
) -> Result<(), WriteFailure> {
    let mut deadline: Option<Instant> = None;
    *written = 0;
    while *written < buf.len() {
        match w.try_write(&buf[*written..]) {
            Ok(0) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                *written += n;
                deadline = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                wait_writable(w, at, timeout, aborting).await?;
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
///
/// Unbuffered, the frames of a run are written together (in pieces of about
/// [`COALESCE`] bytes) before `send_run` returns. Buffered, they stay in the buffer until
/// it is full, flushed or closed.
#[derive(Debug)]
pub(crate) struct StreamTransport {
    link: Link<StreamTarget>,
    /// Frames not yet written.
    buf: BytesMut,
    buffer_size: Option<usize>,
    /// Where each frame in `buf` ends: a write that fails halfway still sent the frames
    /// before the failure.
    ends: Vec<usize>,
    /// Receipts of frames in `buf` (by index in `ends`) that resolve when it is written.
    waiting: Vec<(usize, ReceiptSender)>,
    write_timeout: Duration,
    ledger: Ledger,
}

/// A write of the buffer was cut short by an abort.
struct Aborted;

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
            ends: Vec::new(),
            waiting: Vec::new(),
            write_timeout: config.write_timeout,
            ledger: Ledger::new(shared),
        })
    }

    fn limit(&self) -> usize {
        self.buffer_size.unwrap_or(COALESCE)
    }

    /// Connects if needed, then writes `self.buf` in one go.
    async fn write_out(&mut self, written: &mut usize) -> Result<(), (DropReason, io::Error)> {
        *written = 0;
        let conn = match self.link.get().await {
            Ok(c) => c,
            Err(e) if self.ledger.aborting().is_set() => return Err((DropReason::Closed, e)),
            Err(e) => return Err((DropReason::ConnectTimeout, e)),
        };
        let aborting = &self.ledger.shared.aborting;
        match write_all(conn, &self.buf, written, self.write_timeout, aborting).await {
            Ok(()) => {
                self.ledger.shared().counters.wrote(self.buf.len());
                Ok(())
            }
            Err(e) => {
                let (reason, e) = e.into_drop();
                match reason {
                    DropReason::WriteTimeout => self.link.stalled(),
                    _ => self.link.reset(),
                }
                Err((reason, e))
            }
        }
    }

    /// Writes the buffer, counts its spans and resolves their waiting receipts.
    async fn write_buffer(&mut self) -> Result<(), (DropReason, io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut written = 0;
        let result = self.write_out(&mut written).await;
        let n = self.ends.len();
        // Frames the socket took whole are sent, also when the write failed later on.
        let sent = match &result {
            Ok(()) => n,
            Err(_) => self.ends.partition_point(|end| *end <= written),
        };
        self.ledger.sent(sent as u64);
        if let Err((reason, e)) = &result {
            self.ledger.dropped(*reason, (n - sent) as u64, Some(e));
        }
        for (i, r) in self.waiting.drain(..) {
            let _ = r.send(match &result {
                Err((reason, e)) if i >= sent => Err(copy_error(*reason, e)),
                _ => Ok(()),
            });
        }
        self.ends.clear();
        self.buf.clear();
        shrink(&mut self.buf, self.buffer_size.unwrap_or(0));
        result
    }

    /// [`write_buffer`](Self::write_buffer) for a run: errors are counted there; only an
    /// abort stops the run.
    async fn spill(&mut self) -> Result<(), Aborted> {
        match self.write_buffer().await {
            Err((DropReason::Closed, _)) => Err(Aborted),
            _ => Ok(()),
        }
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
    #[inline]
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool {
        let receipt = match msg {
            // Encoded when recorded: a copy.
            Message::Frame { heap, receipt } => {
                self.buf
                    .extend_from_slice(heap.as_deref().unwrap_or(inline));
                receipt
            }
            Message::Span { span, receipt } => {
                let max = ssf_codec::MAX_FRAME_LENGTH;
                if let Err(len) = encode::frame(&span, &mut self.buf, max) {
                    let e = oversize_error(len, max);
                    self.ledger.settle(receipt, Err((DropReason::Oversize, &e)));
                    return true;
                }
                receipt
            }
            Message::Flush(_) => return true,
        };
        if let Some(r) = receipt {
            self.waiting.push((self.ends.len(), r));
        }
        self.ends.push(self.buf.len());
        // Full (this frame included: the buffer goes over its size by at most one
        // frame): to be written.
        self.buf.len() < self.limit()
    }

    async fn send_staged(&mut self) {
        if self.buffer_size.is_none() || self.buf.len() >= self.limit() {
            // Unbuffered: nothing stays behind. Buffered: the buffer is full.
            let _ = self.spill().await;
        }
        if self.buffer_size.is_some() {
            // Buffered: "written" means "in the buffer".
            for (_, r) in self.waiting.drain(..) {
                let _ = r.send(Ok(()));
            }
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
        // Their receipts resolve as dropped (closed) when their senders go.
        self.waiting.clear();
        let n = self.ends.len();
        self.ends.clear();
        n as u64
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

impl TryWrite for UdpSocket {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_send(buf)
    }

    async fn writable(&self) -> io::Result<()> {
        UdpSocket::writable(self).await
    }
}

/// One span per datagram, size-checked, over a connected UDP socket. The datagrams of a
/// run are encoded into one buffer and sent in groups.
#[derive(Debug)]
pub(crate) struct UdpTransport {
    link: Link<UdpTarget>,
    /// Encoded datagrams, back to back.
    buf: Vec<u8>,
    /// End offset in `buf` of each datagram.
    ends: Vec<usize>,
    /// The receipt of each datagram.
    receipts: Vec<Option<ReceiptSender>>,
    max_size: usize,
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
            ends: Vec::new(),
            receipts: Vec::new(),
            max_size: config.max_datagram_size,
            write_timeout: config.write_timeout,
            ledger: Ledger::new(shared),
        }
    }

    /// Sends the encoded datagrams, counting each. `Err` when the client aborted (the
    /// datagrams not sent are counted as closed).
    async fn send_datagrams(&mut self) -> Result<(), Aborted> {
        let n = self.ends.len();
        let mut i = 0;
        let mut deadline: Option<Instant> = None;
        let result = loop {
            if i == n {
                break Ok(());
            }
            let socket = match self.link.get().await {
                Ok(s) => s,
                Err(e) => {
                    let reason = if self.ledger.aborting().is_set() {
                        DropReason::Closed
                    } else {
                        DropReason::ConnectTimeout
                    };
                    self.settle_from(i, reason, &e);
                    break if reason == DropReason::Closed {
                        Err(Aborted)
                    } else {
                        Ok(())
                    };
                }
            };
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            let group = &self.ends[i..n.min(i + DATAGRAMS_PER_CALL)];
            match sys::send_datagrams(socket, &self.buf, start, group) {
                Ok(k) => {
                    let bytes = self.ends[i + k - 1] - start;
                    self.ledger.shared().counters.wrote(bytes);
                    self.ledger.sent(k as u64);
                    for r in self.receipts[i..i + k].iter_mut().filter_map(Option::take) {
                        let _ = r.send(Ok(()));
                    }
                    i += k;
                    deadline = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let at = *deadline.get_or_insert_with(|| Instant::now() + self.write_timeout);
                    let aborting = &self.ledger.shared.aborting;
                    if let Err(f) = wait_writable(socket, at, self.write_timeout, aborting).await {
                        let (reason, e) = f.into_drop();
                        if reason == DropReason::WriteTimeout {
                            self.link.stalled();
                        }
                        self.settle_from(i, reason, &e);
                        break if reason == DropReason::Closed {
                            Err(Aborted)
                        } else {
                            Ok(())
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // "Connection refused" reports an earlier datagram's ICMP error; the
                    // socket itself is fine. Anything else: start over with a fresh
                    // socket (and a fresh name lookup). Either way this datagram is lost.
                    if e.kind() != io::ErrorKind::ConnectionRefused {
                        self.link.reset();
                    }
                    let r = self.receipts[i].take();
                    self.ledger.settle(r, Err((DropReason::WriteError, &e)));
                    i += 1;
                }
            }
        };
        self.buf.clear();
        self.ends.clear();
        self.receipts.clear();
        if self.buf.capacity() > 4 * DATAGRAM_BYTES {
            self.buf = Vec::new();
        }
        result
    }

    /// Counts datagrams `from..` as dropped.
    fn settle_from(&mut self, from: usize, reason: DropReason, e: &io::Error) {
        for j in from..self.ends.len() {
            let r = self.receipts[j].take();
            self.ledger.settle(r, Err((reason, e)));
        }
    }
}

impl Transport for UdpTransport {
    #[inline]
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool {
        let receipt = match msg {
            // Encoded (and size-checked) when recorded: a copy, without the header.
            Message::Frame { heap, receipt } => {
                let frame = heap.as_deref().unwrap_or(inline);
                self.buf
                    .extend_from_slice(frame.get(ssf_codec::HEADER_LEN..).unwrap_or_default());
                receipt
            }
            Message::Span { span, receipt } => {
                if let Err(len) = encode::datagram(&span, &mut self.buf, self.max_size) {
                    let e = oversize_error(len, self.max_size);
                    self.ledger.settle(receipt, Err((DropReason::Oversize, &e)));
                    return true;
                }
                receipt
            }
            Message::Flush(_) => return true,
        };
        self.ends.push(self.buf.len());
        self.receipts.push(receipt);
        self.buf.len() < DATAGRAM_BYTES
    }

    async fn send_staged(&mut self) {
        let _ = self.send_datagrams().await;
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
        // Their receipts resolve as dropped (closed) when their senders go.
        let n = self.ends.len();
        self.buf.clear();
        self.ends.clear();
        self.receipts.clear();
        n as u64
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}

/// Sending a group of datagrams with one system call.
mod sys {
    use std::io;

    use tokio::net::UdpSocket;

    /// Sends the datagrams `buf[start..ends[0]]`, `buf[ends[0]..ends[1]]`, ... on a
    /// connected socket without waiting; returns how many were sent (at least 1), or the
    /// first one's error (`WouldBlock` when the socket is full).
    #[cfg(target_os = "linux")]
    pub(super) fn send_datagrams(
        socket: &UdpSocket,
        buf: &[u8],
        start: usize,
        ends: &[usize],
    ) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        const MAX: usize = super::DATAGRAMS_PER_CALL;
        let count = ends.len().min(MAX);
        if count == 0 {
            return Ok(0);
        }
        let fd = socket.as_raw_fd();
        socket.try_io(tokio::io::Interest::WRITABLE, || {
            sendmmsg(fd, buf, start, &ends[..count])
        })
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn sendmmsg(
        fd: std::os::fd::RawFd,
        buf: &[u8],
        start: usize,
        ends: &[usize],
    ) -> io::Result<usize> {
        const MAX: usize = super::DATAGRAMS_PER_CALL;
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX];
        // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers, for which
        // all-zero bytes are a valid value (null pointers, zero lengths and flags).
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
        let mut from = start;
        let count = ends.len().min(MAX);
        for (k, &end) in ends.iter().take(count).enumerate() {
            let datagram = &buf[from..end];
            iovecs[k] = libc::iovec {
                iov_base: datagram.as_ptr() as *mut libc::c_void,
                iov_len: datagram.len(),
            };
            from = end;
        }
        for (msg, iov) in msgs.iter_mut().zip(iovecs.iter_mut()).take(count) {
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..count]` are initialised headers, each pointing to one `iovec`
        // of `iovecs`, which points into `buf`; all of them outlive the call, which only
        // reads the data (and writes `msg_len` into `msgs`). The socket is connected, so
        // no address is given. `count <= 64`, well under the kernel's limit of 1024.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else if n == 0 {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n as usize)
        }
    }

    /// Elsewhere: one `send` per datagram, for as long as the socket takes them.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn send_datagrams(
        socket: &UdpSocket,
        buf: &[u8],
        start: usize,
        ends: &[usize],
    ) -> io::Result<usize> {
        let mut from = start;
        for (k, &end) in ends.iter().enumerate() {
            match socket.try_send(&buf[from..end]) {
                Ok(_) => from = end,
                Err(e) if k == 0 => return Err(e),
                Err(_) => return Ok(k),
            }
        }
        Ok(ends.len())
    }
}
