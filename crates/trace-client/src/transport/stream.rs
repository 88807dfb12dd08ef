//! Framed streams, unix or TCP, unbuffered or with a write buffer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ssf_codec::addr::Address;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::encode::Framing;
use crate::error::DropReason;
use crate::message::{Message, ReceiptSender};
use crate::shared::Shared;
use crate::transport::api::{NetConfig, Transport, shrink};
use crate::transport::backoff::Backoff;
use crate::transport::ledger::{Ledger, copy_error};
use crate::transport::link::{Connect, ConnectFuture, Link};
use crate::transport::write::{TryWrite, write_all};

/// Unbuffered streams coalesce the spans of one run into writes of about this size.
const COALESCE: usize = 128 * 1024;

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
/// [`COALESCE`] bytes) before `send_staged` returns. Buffered, they stay in the buffer until
/// it is full, flushed or closed.
#[derive(Debug)]
pub(crate) struct StreamTransport {
    link: Link<StreamTarget>,
    /// Frames not yet written.
    buf: Vec<u8>,
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
            buf: Vec::new(),
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
        let aborting = self.ledger.aborting();
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
        let max = ssf_codec::MAX_FRAME_LENGTH;
        let Some(receipt) = self
            .ledger
            .stage(msg, inline, Framing::Stream, max, &mut self.buf)
        else {
            return true;
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
