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

use crate::backoff::{Backoff, connect_with_backoff};
use crate::error::{DeliveryError, DropReason};
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
}

/// Connection settings shared by the network transports.
#[derive(Debug, Clone)]
pub(crate) struct NetConfig {
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) connect_timeout: Duration,
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

// ===== streams =====

#[derive(Debug, Clone)]
enum StreamTarget {
    Tcp(Address),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Conn {
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(buf).await,
            #[cfg(unix)]
            Conn::Unix(s) => s.write_all(buf).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown().await,
            #[cfg(unix)]
            Conn::Unix(s) => s.shutdown().await,
        }
    }
}

async fn connect_stream(target: &StreamTarget) -> io::Result<Conn> {
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

/// A framed stream (unix or TCP), unbuffered or with a write buffer.
#[derive(Debug)]
pub(crate) struct StreamTransport {
    target: StreamTarget,
    conn: Option<Conn>,
    connected_before: bool,
    /// Unbuffered: scratch space for one frame. Buffered: the frames not yet written.
    buf: BytesMut,
    buffer_size: Option<usize>,
    /// Spans in `buf` (buffered mode).
    pending: u64,
    codec: SsfCodec,
    backoff: Backoff,
    connect_timeout: Duration,
    shared: Arc<Shared>,
}

impl StreamTransport {
    /// `None` when the address is not a stream the client supports.
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Option<Self> {
        let target = stream_target(addr)?;
        Some(StreamTransport {
            target,
            conn: None,
            connected_before: false,
            buf: BytesMut::new(),
            buffer_size: config.buffer_size,
            pending: 0,
            codec: SsfCodec::new(),
            backoff: Backoff::new(config.backoff, config.max_backoff),
            connect_timeout: config.connect_timeout,
            shared,
        })
    }

    async fn ensure_conn(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            let target = &self.target;
            let conn = connect_with_backoff(&mut self.backoff, self.connect_timeout, || {
                connect_stream(target)
            })
            .await?;
            if self.connected_before {
                self.shared.counters.reconnected();
            }
            self.connected_before = true;
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Connects if needed, then writes `self.buf` in one go.
    async fn write_out(&mut self) -> Result<(), (DropReason, io::Error)> {
        if let Err(e) = self.ensure_conn().await {
            return Err((DropReason::ConnectTimeout, e));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err((
                DropReason::ConnectTimeout,
                io::ErrorKind::NotConnected.into(),
            ));
        };
        match conn.write_all(&self.buf).await {
            Ok(()) => {
                self.shared.counters.wrote(self.buf.len());
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                Err((DropReason::WriteError, e))
            }
        }
    }

    /// Writes the whole buffer in one go and counts its spans.
    async fn write_buffer(&mut self) -> Result<(), (DropReason, io::Error)> {
        if self.buffer_size.is_none() || self.buf.is_empty() {
            return Ok(());
        }
        let result = self.write_out().await;
        let counters = &self.shared.counters;
        let n = std::mem::take(&mut self.pending);
        match &result {
            Ok(()) => counters.sent(n),
            Err((reason, _)) => counters.dropped(*reason, n),
        }
        self.buf.clear();
        shrink(&mut self.buf, self.buffer_size.unwrap_or(0));
        result
    }

    async fn send_unbuffered(&mut self, span: &SsfSpan) -> Result<(), DeliveryError> {
        let counters = &self.shared.counters;
        self.buf.clear();
        shrink(&mut self.buf, 0);
        if let Err(e) = self.codec.encode_frame(span, &mut self.buf) {
            counters.dropped(DropReason::Oversize, 1);
            return Err(oversize(e));
        }
        let result = self.write_out().await;
        // The scratch frame must not look like buffered data to `flush`/`close`.
        self.buf.clear();
        match result {
            Ok(()) => {
                self.shared.counters.sent(1);
                Ok(())
            }
            Err((reason, e)) => {
                self.shared.counters.dropped(reason, 1);
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
            self.shared.counters.dropped(DropReason::Oversize, 1);
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
        let closed = match self.conn.take() {
            Some(mut c) => c.shutdown().await,
            None => Ok(()),
        };
        flushed.and(closed)
    }

    fn abort(&mut self) -> u64 {
        self.conn = None;
        self.buf.clear();
        std::mem::take(&mut self.pending)
    }
}

// ===== UDP =====

/// One span per datagram, size-checked, over a connected UDP socket.
#[derive(Debug)]
pub(crate) struct UdpTransport {
    addr: Address,
    socket: Option<UdpSocket>,
    connected_before: bool,
    buf: Vec<u8>,
    codec: DatagramCodec,
    backoff: Backoff,
    connect_timeout: Duration,
    shared: Arc<Shared>,
}

async fn connect_udp(addr: &Address) -> io::Result<UdpSocket> {
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

impl UdpTransport {
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Self {
        UdpTransport {
            addr: addr.clone(),
            socket: None,
            connected_before: false,
            buf: Vec::new(),
            codec: DatagramCodec::with_max_size(config.max_datagram_size),
            backoff: Backoff::new(config.backoff, config.max_backoff),
            connect_timeout: config.connect_timeout,
            shared,
        }
    }
}

impl Transport for UdpTransport {
    async fn send(&mut self, span: &SsfSpan) -> Result<(), DeliveryError> {
        self.buf.clear();
        if let Err(e) = self.codec.encode(span, &mut self.buf) {
            self.shared.counters.dropped(DropReason::Oversize, 1);
            return Err(oversize(e));
        }
        if self.socket.is_none() {
            let addr = &self.addr;
            match connect_with_backoff(&mut self.backoff, self.connect_timeout, || {
                connect_udp(addr)
            })
            .await
            {
                Ok(s) => {
                    if self.connected_before {
                        self.shared.counters.reconnected();
                    }
                    self.connected_before = true;
                    self.socket = Some(s);
                }
                Err(e) => {
                    self.shared.counters.dropped(DropReason::ConnectTimeout, 1);
                    return Err(DeliveryError::new(DropReason::ConnectTimeout, Some(e)));
                }
            }
        }
        let Some(socket) = self.socket.as_ref() else {
            return Err(DeliveryError::closed());
        };
        let counters = &self.shared.counters;
        match socket.send(&self.buf).await {
            Ok(n) => {
                counters.sent(1);
                counters.wrote(n);
                Ok(())
            }
            Err(e) => {
                // "Connection refused" reports an earlier datagram's ICMP error; the socket
                // itself is fine. Anything else: start over with a fresh socket (and a
                // fresh name lookup).
                if e.kind() != io::ErrorKind::ConnectionRefused {
                    self.socket = None;
                }
                counters.dropped(DropReason::WriteError, 1);
                Err(DeliveryError::new(DropReason::WriteError, Some(e)))
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn close(&mut self) -> io::Result<()> {
        self.socket = None;
        Ok(())
    }

    fn abort(&mut self) -> u64 {
        self.socket = None;
        0
    }
}
