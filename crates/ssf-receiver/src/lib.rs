//! An in-process, async SSF receiver: it listens the way veneur's ingest does and yields
//! the decoded spans, for tests, tools and collectors of one's own.
//!
//! * UDP (`udp://`, `udp4://`, `udp6://`): one bare protobuf span per datagram; empty,
//!   undecodable and over-long datagrams are counted and dropped;
//! * unix stream sockets (`unix:///path`, `unix:@abstract` on Linux) and TCP (`tcp://`, a
//!   convenience veneur does not offer): SSF framing, one reader per connection. A corrupt
//!   frame body is counted and skipped; a framing error closes that connection only;
//! * gRPC (`grpc://host:port`, feature `grpc`): veneur's `ssf.SSFGRPC` service, one span
//!   per `SendSpan` call, with the stream listeners' limits (message size, connections);
//!   a call is answered once its span is in the channel. As in veneur, these spans are
//!   not normalised;
//! * every other span is normalised as veneur's ingest normalises it
//!   ([`ssf_proto::normalize`]), unless [`ReceiverBuilder::normalize`] turns it off;
//! * spans go through a bounded channel: a slow consumer makes the readers wait
//!   (backpressure), so memory stays bounded;
//! * [`ReceiverStats`] counts everything, and [`ReceiverBuilder::on_reject`] reports each
//!   rejected input with its reason.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use ssf_receiver::Receiver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mut receiver = Receiver::bind("udp://127.0.0.1:0").await?;
//! let addr = receiver.local_addr().to_string(); // udp://127.0.0.1:<port>
//!
//! // Anything that sends SSF datagrams will do; here, a bare socket.
//! let (_, port) = receiver.local_addr().host_port().expect("an ip address");
//! let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
//! let span = ssf_proto::SsfSpan { id: 1, trace_id: 1, name: "op".into(), ..Default::default() };
//! sock.send_to(&ssf_proto::wire::encode_to_vec(&span), ("127.0.0.1", port)).await?;
//!
//! let got = receiver.collect(1, Duration::from_secs(5)).await.expect("one span");
//! assert_eq!(got[0].name, "op");
//! assert!(addr.starts_with("udp://127.0.0.1:"));
//!
//! let stats = receiver.shutdown().await;
//! assert_eq!((stats.datagrams, stats.spans), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # Hostile input
//!
//! Whatever arrives, the receiver does not panic, counts the input under its
//! [`RejectReason`], and goes on serving the other connections and datagrams:
//!
//! * a stream connection's read buffer holds at most one frame, and an announced length
//!   over [`max_frame_length`](ReceiverBuilder::max_frame_length) closes the connection
//!   before any of its body is read; with
//!   [`max_connections`](ReceiverBuilder::max_connections) per listener, memory is bounded
//!   by the frame limit times the connections (16 MiB × 1024 by default; lower both for an
//!   exposed listener);
//! * a gRPC connection's calls hold at most the frame limit of messages between them
//!   (a call that does not fit is refused with `resource_exhausted`, counted, before its
//!   message is read), so the bound above holds for `grpc://` listeners too, plus
//!   HTTP/2's flow-control window (1 MiB) per connection;
//! * a connection over the limit is closed on arrival, and
//!   [`read_timeout`](ReceiverBuilder::read_timeout) closes connections that idle or
//!   dribble a frame too slowly, so that they cannot hold the places for ever;
//! * wrong versions, lengths up to `u32::MAX` and frames cut short close their connection
//!   only; bodies that are not spans (invalid UTF-8 in a string, say) are skipped;
//! * empty, over-long and undecodable datagrams are dropped; the UDP receive buffer is
//!   sized by [`recv_buffer_size`](ReceiverBuilder::recv_buffer_size) so that bursts wait
//!   in the kernel instead of being lost.
//!
//! # Shutdown
//!
//! [`Receiver::shutdown`] stops every listener and reader, removes the unix socket files
//! it created and returns the final counts. [`ReceiverHandle::shutdown`] does the same from
//! elsewhere while the [`Receiver`] keeps yielding: the readers stop waiting for input,
//! still take what is already queued (datagrams the kernel holds, bytes already readable on
//! a connection) and hand it over; once they are done, [`Receiver::recv`] returns `None`.
//! Dropping the [`Receiver`] stops everything at once.
//! A gRPC connection answers the calls it has in flight (for at most 2 s) and then closes.
//!
//! # Feature flags
//!
//! * `grpc`: the `grpc://` listener (tonic's call layer over hyper's HTTP/2 server; no
//!   TLS).
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85 (edition 2024).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

mod bind;
#[cfg(feature = "grpc")]
mod grpc;
mod reject;
mod stats;
mod task;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ssf_codec::{Address, DEFAULT_MAX_DATAGRAM_SIZE, MAX_FRAME_LENGTH};
use ssf_proto::SsfSpan;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use reject::{Reject, RejectReason};
pub use stats::ReceiverStats;

use crate::bind::Bound;
use crate::stats::Counters;
use crate::task::{Ctx, StreamListener};

/// The default capacity of the span channel.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The default limit on open connections per stream listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The default permissions of a unix socket file: world-writable, as veneur makes it.
pub const DEFAULT_UNIX_MODE: u32 = 0o666;

/// The largest datagram size limit that can be configured: the largest UDP payload.
pub const MAX_DATAGRAM_SIZE: usize = 65_535;

/// The default receive buffer (`SO_RCVBUF`) asked for UDP listeners: 4 MiB, room for
/// about a thousand 1 KiB datagrams or a few milliseconds of a fast sender while the
/// reader is busy. The kernel may grant less (on Linux, at most `net.core.rmem_max`).
pub const DEFAULT_RECV_BUFFER_SIZE: usize = 4 * 1024 * 1024;

/// Configures and binds a [`Receiver`]. Made by [`Receiver::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`listen`](Self::listen) | none; at least one is needed |
/// | [`capacity`](Self::capacity) | [`DEFAULT_CAPACITY`] (1024 spans) |
/// | [`max_frame_length`](Self::max_frame_length) | [`MAX_FRAME_LENGTH`] (16 MiB) |
/// | [`max_datagram_size`](Self::max_datagram_size) | [`DEFAULT_MAX_DATAGRAM_SIZE`] (16 384 bytes) |
/// | [`max_connections`](Self::max_connections) | [`DEFAULT_MAX_CONNECTIONS`] (1024 per listener) |
/// | [`read_timeout`](Self::read_timeout) | none: connections may idle for ever |
/// | [`recv_buffer_size`](Self::recv_buffer_size) | [`DEFAULT_RECV_BUFFER_SIZE`] (4 MiB, as the kernel allows) |
/// | [`unix_mode`](Self::unix_mode) | [`DEFAULT_UNIX_MODE`] (`0o666`) |
/// | [`normalize`](Self::normalize) | `true` |
/// | [`on_reject`](Self::on_reject) | none |
///
/// ```
/// use ssf_receiver::Receiver;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let sock = dir.path().join("ssf.sock");
/// let receiver = Receiver::builder()
///     .listen("udp://127.0.0.1:0")?
///     .listen(format!("unix://{}", sock.display()))?
///     .capacity(64)
///     .on_reject(|r| eprintln!("{r}"))
///     .bind()
///     .await?;
/// assert_eq!(receiver.local_addrs().len(), 2);
/// assert!(sock.exists());
/// receiver.shutdown().await;
/// assert!(!sock.exists());
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until bind() is awaited"]
pub struct ReceiverBuilder {
    addrs: Vec<Address>,
    capacity: usize,
    max_frame_length: usize,
    max_datagram_size: usize,
    max_connections: usize,
    read_timeout: Option<Duration>,
    recv_buffer_size: usize,
    unix_mode: u32,
    normalize: bool,
    on_reject: Option<reject::RejectHook>,
}

impl Default for ReceiverBuilder {
    fn default() -> Self {
        ReceiverBuilder {
            addrs: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            max_frame_length: MAX_FRAME_LENGTH,
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            read_timeout: None,
            recv_buffer_size: DEFAULT_RECV_BUFFER_SIZE,
            unix_mode: DEFAULT_UNIX_MODE,
            normalize: true,
            on_reject: None,
        }
    }
}

impl fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("addrs", &self.addrs)
            .field("capacity", &self.capacity)
            .field("max_frame_length", &self.max_frame_length)
            .field("max_datagram_size", &self.max_datagram_size)
            .field("max_connections", &self.max_connections)
            .field("read_timeout", &self.read_timeout)
            .field("recv_buffer_size", &self.recv_buffer_size)
            .field("unix_mode", &format_args!("{:#o}", self.unix_mode))
            .field("normalize", &self.normalize)
            .field("on_reject", &self.on_reject.is_some())
            .finish()
    }
}

impl ReceiverBuilder {
    /// Adds a listen address URL (see [`ssf_codec::addr`]): `udp://host:port` (also
    /// `udp4`, `udp6`), `unix:///path`, `unix:@name`, `tcp://host:port` or (feature `grpc`)
    /// `grpc://host:port`. Port 0 picks a
    /// free port. Can be called several times; the listeners are reported in this order
    /// by [`Receiver::local_addrs`].
    ///
    /// # Errors
    ///
    /// The [`AddrError`](ssf_codec::addr::AddrError) when the URL does not parse.
    /// Schemes that cannot carry SSF (`unixgram`, `unixpacket`) parse here and fail in
    /// [`bind`](Self::bind).
    pub fn listen(self, addr: impl AsRef<str>) -> Result<Self, ssf_codec::addr::AddrError> {
        let addr = Address::parse(addr.as_ref())?;
        Ok(self.listen_address(addr))
    }

    /// Adds an already parsed listen address; see [`listen`](Self::listen).
    pub fn listen_address(mut self, addr: Address) -> Self {
        self.addrs.push(addr);
        self
    }

    /// How many decoded spans may wait for the consumer before the readers wait too.
    /// At least 1.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// The largest frame body accepted on stream connections, in bytes; a longer
    /// announced length is a framing error that closes the connection. At most (and by
    /// default) [`MAX_FRAME_LENGTH`]. A connection's read buffer holds at most one frame,
    /// so this (plus a few KiB) bounds the memory each connection can make the receiver
    /// use; with [`max_connections`](Self::max_connections) it bounds the total.
    ///
    /// On a `grpc://` listener it is the largest message (a longer one is refused with
    /// `out_of_range` from its length prefix) and also what all of one connection's calls
    /// may hold at once while their messages arrive: a call whose message does not fit
    /// beside the others' is refused with `resource_exhausted` before any of it is read.
    /// Both are counted as `rejected_calls`. A connection also holds up to hyper's HTTP/2
    /// flow-control window (1 MiB) of bytes not yet read.
    pub fn max_frame_length(mut self, n: usize) -> Self {
        self.max_frame_length = n.min(MAX_FRAME_LENGTH);
        self
    }

    /// The largest UDP datagram accepted, in bytes; longer ones are counted as
    /// `truncated_datagrams` and dropped. Values above [`MAX_DATAGRAM_SIZE`] are lowered to
    /// it.
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n.min(MAX_DATAGRAM_SIZE);
        self
    }

    /// How many connections each stream or gRPC listener reads at once; a connection
    /// beyond that is closed on arrival and counted as `connections_rejected`. At least 1.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a stream connection may take to deliver each whole frame, or a gRPC
    /// connection each whole message (of any of its calls); `None` (the default) for no
    /// limit.
    ///
    /// The clock starts when the connection is accepted and again each time a frame is
    /// complete, so this closes a connection that sends nothing for that long as well as
    /// one that dribbles a frame too slowly to finish it in time (a "slow loris"), however
    /// steadily it sends bytes. Time spent waiting for the consumer to take spans does not
    /// count. A closed connection is counted in `timeouts` and reported as
    /// [`RejectReason::Timeout`]; senders such as `trace-client` reconnect when they next
    /// have something to send. Pick a value well above the time the largest expected frame
    /// takes to arrive on the slowest link, and above the pause between spans of a quiet
    /// client, as an idle connection is closed too. A zero duration counts as `None`.
    ///
    /// With [`max_connections`](Self::max_connections), this bounds how long idle or
    /// slow connections can hold the listener's places.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssf_receiver::Receiver;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let receiver = Receiver::builder()
    ///     .listen("tcp://127.0.0.1:0")?
    ///     .max_connections(256)
    ///     .read_timeout(Duration::from_secs(60))
    ///     .bind()
    ///     .await?;
    /// # receiver.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.read_timeout = timeout.into().filter(|t| !t.is_zero());
        self
    }

    /// The receive buffer (`SO_RCVBUF`) to ask for each UDP listener, in bytes; 0 keeps
    /// the system's default. The kernel holds datagrams there while the reader is busy,
    /// and drops what does not fit, so a larger buffer loses fewer datagrams in bursts.
    ///
    /// The kernel may grant less than asked: Linux caps the request at
    /// `net.core.rmem_max` (raise it with `sysctl -w net.core.rmem_max=...`) and reports
    /// twice the granted value, the rest being its bookkeeping.
    /// [`Receiver::recv_buffer_sizes`] tells what each listener got. A request the system
    /// refuses is ignored rather than failing [`bind`](Self::bind).
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = bytes;
        self
    }

    /// The permissions given to unix socket files (not to abstract sockets).
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = mode;
        self
    }

    /// Whether to apply veneur's ingest normalisation ([`ssf_proto::normalize`]) to every
    /// span. Turn it off to see spans exactly as they were sent.
    ///
    /// Spans received over gRPC are normalised too, where veneur hands them on as they
    /// came (so there a sample rate of 0 stays 0 and an empty name is not taken from the
    /// `name` tag).
    pub fn normalize(mut self, yes: bool) -> Self {
        self.normalize = yes;
        self
    }

    /// Calls `f` for every rejected input (empty, undecodable or over-long datagram,
    /// corrupt frame, framing error, connection over the limit or timed out), on the
    /// reader's task.
    /// `f` should be quick; it runs on the runtime.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use ssf_receiver::{Receiver, RejectReason};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let mut receiver = Receiver::builder()
    ///     .listen("udp://127.0.0.1:0")?
    ///     .on_reject(move |r| log.lock().unwrap().push(r.reason))
    ///     .bind()
    ///     .await?;
    /// let (_, port) = receiver.local_addr().host_port().unwrap();
    /// let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// sock.send_to(&[], ("127.0.0.1", port)).await?;
    /// receiver.handle().shutdown();
    /// assert!(receiver.recv().await.is_none());
    /// assert_eq!(*seen.lock().unwrap(), [RejectReason::EmptyDatagram]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_reject(mut self, f: impl Fn(&Reject) + Send + Sync + 'static) -> Self {
        self.on_reject = Some(Arc::new(f));
        self
    }

    /// Binds every listen address and starts reading.
    ///
    /// # Errors
    ///
    /// An I/O error naming the address when any of them cannot be bound (nothing is left
    /// listening then): `InvalidInput` without any address, `Unsupported` for `unixgram`
    /// and `unixpacket`, `AddrInUse` for a port in use or a unix socket another listener
    /// is serving (a stale socket file is replaced; a file that is not a socket is
    /// left alone and reported as `AddrInUse` too).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub async fn bind(self) -> io::Result<Receiver> {
        if self.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address given",
            ));
        }
        let mut bound = Vec::with_capacity(self.addrs.len());
        for addr in &self.addrs {
            bound.push(bind::bind(addr, self.unix_mode, self.recv_buffer_size).await?);
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        let shared = Arc::new(Shared {
            counters: Arc::new(Counters::default()),
            cancel: CancellationToken::new(),
        });
        let ctx = Ctx {
            tx,
            counters: Arc::clone(&shared.counters),
            cancel: shared.cancel.clone(),
            on_reject: self.on_reject,
            normalize: self.normalize,
            max_frame_length: self.max_frame_length,
            max_datagram_size: self.max_datagram_size,
            max_connections: self.max_connections,
            read_timeout: self.read_timeout,
        };
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::with_capacity(bound.len());
        let mut recv_buffers = Vec::new();
        #[cfg(unix)]
        let mut files = Vec::new();
        for (b, local) in bound {
            let ctx = ctx.clone();
            match b {
                Bound::Udp(sock) => {
                    if let Ok(size) = socket2::SockRef::from(&sock).recv_buffer_size() {
                        recv_buffers.push((local.clone(), size));
                    }
                    tasks.spawn(task::run_udp(sock, ctx));
                }
                Bound::Tcp(l) => {
                    tasks.spawn(task::run_listener(StreamListener::Tcp(l), ctx));
                }
                #[cfg(feature = "grpc")]
                Bound::Grpc(l) => {
                    tasks.spawn(grpc::run_grpc(l, ctx));
                }
                #[cfg(unix)]
                Bound::Unix(listener, file) => {
                    if let Some(f) = &file {
                        files.push(Arc::clone(f));
                    }
                    let l = StreamListener::Unix {
                        listener,
                        name: local.to_string(),
                        file,
                    };
                    tasks.spawn(task::run_listener(l, ctx));
                }
            }
            addrs.push(local);
        }
        Ok(Receiver {
            rx,
            addrs,
            recv_buffers,
            shared,
            tasks,
            #[cfg(unix)]
            files,
        })
    }
}

#[derive(Debug)]
struct Shared {
    counters: Arc<Counters>,
    cancel: CancellationToken,
}

/// A running SSF receiver: bound sockets, their reader tasks, and the channel of decoded
/// spans. Made by [`Receiver::bind`] or [`Receiver::builder`].
///
/// It is a [`Stream`](futures_core::Stream) of [`SsfSpan`]s as well, ending after shutdown
/// once drained. Dropping it stops every task and removes the unix socket files it
/// created.
pub struct Receiver {
    rx: mpsc::Receiver<SsfSpan>,
    addrs: Vec<Address>,
    recv_buffers: Vec<(Address, usize)>,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    #[cfg(unix)]
    files: Vec<Arc<bind::SocketFile>>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("local_addrs", &self.addrs)
            .field("stats", &self.stats())
            .field("shutdown", &self.shared.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A builder, for several addresses or settings other than the defaults.
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::default()
    }

    /// Binds one listen address URL with the default settings.
    ///
    /// # Errors
    ///
    /// An I/O error (`InvalidInput` for a URL that does not parse); see
    /// [`ReceiverBuilder::bind`].
    pub async fn bind(addr: &str) -> io::Result<Receiver> {
        Receiver::builder()
            .listen(addr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .bind()
            .await
    }

    /// The bound addresses with their real ports (`udp://127.0.0.1:45123`), in the order
    /// they were given.
    pub fn local_addrs(&self) -> &[Address] {
        &self.addrs
    }

    /// The first bound address.
    pub fn local_addr(&self) -> &Address {
        // A receiver is only built with at least one address.
        &self.addrs[0]
    }

    /// The receive buffer size of each UDP listener, as the system reports it (on Linux,
    /// twice what was granted; see [`ReceiverBuilder::recv_buffer_size`]), in the order of
    /// [`local_addrs`](Self::local_addrs). Stream listeners are not listed.
    ///
    /// ```
    /// use ssf_receiver::Receiver;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let receiver = Receiver::builder()
    ///     .listen("udp://127.0.0.1:0")?
    ///     .recv_buffer_size(256 * 1024)
    ///     .bind()
    ///     .await?;
    /// let (addr, size) = &receiver.recv_buffer_sizes()[0];
    /// assert_eq!(addr, receiver.local_addr());
    /// assert!(*size > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_buffer_sizes(&self) -> &[(Address, usize)] {
        &self.recv_buffers
    }

    /// The next span; `None` once every reader has stopped after shutdown and the
    /// channel is drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled call takes no span.
    pub async fn recv(&mut self) -> Option<SsfSpan> {
        self.rx.recv().await
    }

    /// The next span if one is waiting.
    pub fn try_recv(&mut self) -> Option<SsfSpan> {
        self.rx.try_recv().ok()
    }

    /// Waits for `n` spans, for at most `timeout` in all.
    ///
    /// # Errors
    ///
    /// A [`CollectError`] holding the spans received so far when time runs out or the
    /// receiver shuts down first.
    pub async fn collect(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SsfSpan>, CollectError> {
        let mut spans = Vec::with_capacity(n.min(DEFAULT_CAPACITY));
        let now = tokio::time::Instant::now();
        // A timeout too far away for the clock is as good as none.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        while spans.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(span)) => spans.push(span),
                Ok(None) => {
                    return Err(CollectError {
                        spans,
                        expected: n,
                        closed: true,
                    });
                }
                Err(_elapsed) => {
                    return Err(CollectError {
                        spans,
                        expected: n,
                        closed: false,
                    });
                }
            }
        }
        Ok(spans)
    }

    /// Takes spans until none arrives for `idle`, or the receiver has shut down and is
    /// drained.
    pub async fn collect_until_idle(&mut self, idle: Duration) -> Vec<SsfSpan> {
        let mut spans = Vec::new();
        while let Ok(Some(span)) = tokio::time::timeout(idle, self.rx.recv()).await {
            spans.push(span);
        }
        spans
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ReceiverStats {
        self.shared.counters.snapshot()
    }

    /// A handle for reading the counters and requesting shutdown from elsewhere.
    pub fn handle(&self) -> ReceiverHandle {
        ReceiverHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting and reading, closes every socket and connection, removes the unix
    /// socket files this receiver created, and returns the final counts. Spans still in
    /// the channel are dropped; take them first (or use [`ReceiverHandle::shutdown`] and
    /// read until `None`) to keep them.
    pub async fn shutdown(mut self) -> ReceiverStats {
        self.shared.cancel.cancel();
        // Readers waiting for room see the channel closed and stop.
        self.rx.close();
        while self.tasks.join_next().await.is_some() {}
        self.remove_files();
        self.stats()
    }

    fn remove_files(&self) {
        #[cfg(unix)]
        for f in &self.files {
            f.remove();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.remove_files();
        // Dropping the JoinSet aborts the tasks.
    }
}

impl futures_core::Stream for Receiver {
    type Item = SsfSpan;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SsfSpan>> {
        self.rx.poll_recv(cx)
    }
}

/// A cheap, clonable handle on a [`Receiver`]: counters and shutdown from another task.
#[derive(Debug, Clone)]
pub struct ReceiverHandle {
    shared: Arc<Shared>,
}

impl ReceiverHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> ReceiverStats {
        self.shared.counters.snapshot()
    }

    /// Asks the receiver to stop: listeners stop accepting, readers stop waiting for
    /// input, hand over what is already queued, and end; then [`Receiver::recv`] returns
    /// `None`. Unix socket files are removed as their listeners end. Returns at once.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    /// Whether shutdown has been requested.
    pub fn is_shutdown(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }
}

/// [`Receiver::collect`] got fewer spans than it waited for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CollectError {
    /// The spans received before giving up.
    pub spans: Vec<SsfSpan>,
    /// How many spans were expected.
    pub expected: usize,
    /// `true` when the receiver shut down, `false` when time ran out.
    pub closed: bool,
}

impl CollectError {
    /// The spans received before giving up.
    pub fn into_spans(self) -> Vec<SsfSpan> {
        self.spans
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = if self.closed {
            "the receiver shut down"
        } else {
            "the time limit"
        };
        write!(
            f,
            "received {} of {} expected spans before {why}",
            self.spans.len(),
            self.expected
        )
    }
}

impl std::error::Error for CollectError {}
