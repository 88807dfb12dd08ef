//! What a worker drives: the [`Transport`] trait, and the settings the network
//! transports share.

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::message::Message;
use crate::transport::ledger::Ledger;

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
    /// gRPC calls of one backend in flight at once, at most.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) grpc_calls_in_flight: usize,
}

/// Keeps a scratch buffer from staying huge after one very large span.
pub(crate) fn shrink(buf: &mut Vec<u8>, normal: usize) {
    let normal = normal.max(64 * 1024);
    if buf.is_empty() && buf.capacity() > 4 * normal {
        *buf = Vec::with_capacity(normal);
    }
}
