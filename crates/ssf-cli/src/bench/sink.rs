//! Receivers of `ssf bench` that run in this process: the SSF receiver (decodes and
//! normalises every span) or a counting sink (`--count-only`: walks frame headers or
//! counts datagrams and decodes nothing), so that a run can measure the client rather
//! than the receiver.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ssf_codec::addr::Address;
use ssf_codec::{HEADER_LEN, MAX_FRAME_LENGTH, VERSION};
use ssf_receiver::Receiver;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Transport;
use crate::Failure;

/// The SSF receiver's span channel: room for bursts without holding so many spans that
/// the receiver dominates the memory figure.
const RECEIVER_CAPACITY: usize = 4096;

/// How long an in-process receiver may stay idle before the spans it has not received
/// are taken as lost (UDP may lose datagrams).
const DELIVERY_IDLE: Duration = Duration::from_millis(500);

/// The read buffer of each counting-sink connection, and the largest datagram read.
const READ_BUFFER: usize = 64 * 1024;

/// The most connections a counting sink reads at once; more are closed on arrival.
const MAX_SINK_CONNECTIONS: usize = 1024;

/// The receive buffer asked for on UDP sockets of the in-process receivers (the kernel
/// caps it at `net.core.rmem_max`).
const UDP_RECV_BUFFER: usize = 8 << 20;

/// A receiver running in this process and the count of spans it received.
pub(crate) struct Local {
    pub(crate) addr: Address,
    delivered: Arc<AtomicU64>,
    stop: Stop,
    dir: Option<PathBuf>,
}

enum Stop {
    /// The SSF receiver and the task counting what it yields.
    Receiver {
        handle: ssf_receiver::ReceiverHandle,
        counter: tokio::task::JoinHandle<()>,
    },
    /// The counting sink's tasks, aborted at the end.
    Counting(JoinSet<()>),
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("addr", &self.addr)
            .field("delivered", &self.delivered.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A fresh directory for a unix socket, removed by [`Local::finish`].
pub(crate) fn socket_dir() -> Result<PathBuf, Failure> {
    let d = std::env::temp_dir().join(format!(
        "ssf-bench-{}-{:x}",
        std::process::id(),
        trace_client::new_id()
    ));
    std::fs::create_dir(&d)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", d.display())))?;
    Ok(d)
}

/// Which receiver runs in this process.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// The SSF receiver: decodes and normalises every span.
    Receiver,
    /// Counts frames or datagrams without decoding them, at most `rate` per second.
    Counting { rate: Option<f64> },
}

/// Holds a counting sink to a rate: readers take turns, and each waits until the spans it
/// read are due before counting them (and reading again), so the count never runs ahead
/// of the rate, however many connections there are.
#[derive(Debug)]
struct Limiter {
    start: Instant,
    /// Seconds per span.
    interval: f64,
    /// Spans let through so far.
    total: tokio::sync::Mutex<u64>,
}

impl Limiter {
    fn new(rate: f64) -> Limiter {
        Limiter {
            start: Instant::now(),
            interval: 1.0 / rate,
            total: tokio::sync::Mutex::new(0),
        }
    }

    /// Waits until `n` more spans are due.
    async fn take(&self, n: u64) {
        let mut total = self.total.lock().await;
        *total += n;
        // A total due beyond the clock's range is waited for a day at a time.
        let due = Duration::try_from_secs_f64(*total as f64 * self.interval)
            .ok()
            .and_then(|d| self.start.checked_add(d))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
    }
}

impl Local {
    /// Starts a receiver of `kind` on `transport`.
    pub(crate) async fn start(transport: Transport, kind: Kind) -> Result<Local, Failure> {
        let dir = match transport {
            Transport::Unix => Some(socket_dir()?),
            _ => None,
        };
        let started = match kind {
            Kind::Counting { rate } => Self::start_counting(transport, dir.clone(), rate).await,
            Kind::Receiver => Self::start_receiver(transport, dir.clone()).await,
        };
        match started {
            Ok(local) => Ok(local),
            Err(e) => {
                if let Some(d) = &dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                Err(Failure::Runtime(format!(
                    "cannot listen on {}: {e}",
                    transport.as_str()
                )))
            }
        }
    }

    async fn start_receiver(transport: Transport, dir: Option<PathBuf>) -> io::Result<Local> {
        let url = match (&dir, transport) {
            (Some(d), _) => format!("unix://{}", d.join("ssf.sock").display()),
            (None, Transport::Tcp) => "tcp://127.0.0.1:0".to_owned(),
            #[cfg(feature = "grpc")]
            (None, Transport::Grpc) => "grpc://127.0.0.1:0".to_owned(),
            (None, _) => "udp://127.0.0.1:0".to_owned(),
        };
        let mut receiver = Receiver::builder()
            .listen(&url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .capacity(RECEIVER_CAPACITY)
            .recv_buffer_size(UDP_RECV_BUFFER)
            .bind()
            .await?;
        let addr = receiver.local_addr().clone();
        let handle = receiver.handle();
        let delivered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&delivered);
        let counter = tokio::spawn(async move {
            while receiver.recv().await.is_some() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            receiver.shutdown().await;
        });
        Ok(Local {
            addr,
            delivered,
            stop: Stop::Receiver { handle, counter },
            dir,
        })
    }

    async fn start_counting(
        transport: Transport,
        dir: Option<PathBuf>,
        rate: Option<f64>,
    ) -> io::Result<Local> {
        let delivered = Arc::new(AtomicU64::new(0));
        let count = Arc::new(Counter {
            count: Arc::clone(&delivered),
            limiter: rate.map(Limiter::new),
        });
        let mut tasks = JoinSet::new();
        let addr = match (&dir, transport) {
            (Some(d), _) => {
                let path = d.join("ssf.sock");
                let listener = UnixListener::bind(&path)?;
                tasks.spawn(accept_all(listener, count));
                Address::unix(path)
            }
            (None, Transport::Tcp) => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let local = listener.local_addr()?;
                tasks.spawn(accept_all(listener, count));
                Address::tcp(local)
            }
            #[cfg(feature = "grpc")]
            (None, Transport::Grpc) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a grpc receiver decodes every span: drop --count-only",
                ));
            }
            (None, _) => {
                let socket = UdpSocket::bind("127.0.0.1:0").await?;
                // A larger buffer only makes kernel drops rarer; it is not needed.
                let _ = super::raw::set_recv_buffer(&socket, UDP_RECV_BUFFER);
                let local = socket.local_addr()?;
                tasks.spawn(count_datagrams(socket, count));
                Address::udp(local)
            }
        };
        Ok(Local {
            addr,
            delivered,
            stop: Stop::Counting(tasks),
            dir,
        })
    }

    /// Waits until `sent` spans arrived or none arrived for a while, stops the receiver
    /// and returns how many arrived.
    pub(crate) async fn finish(self, sent: u64) -> u64 {
        let mut last = self.delivered.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while last < sent && since.elapsed() < DELIVERY_IDLE {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.delivered.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        match self.stop {
            Stop::Receiver { handle, counter } => {
                handle.shutdown();
                let _ = counter.await;
            }
            Stop::Counting(mut tasks) => tasks.shutdown().await,
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        self.delivered.load(Ordering::Relaxed)
    }
}

/// Where a counting sink counts, and its rate limit.
#[derive(Debug)]
struct Counter {
    count: Arc<AtomicU64>,
    limiter: Option<Limiter>,
}

impl Counter {
    async fn add(&self, n: u64) {
        if let Some(l) = &self.limiter {
            l.take(n).await;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reads one connection in its own task if the connection limit allows; otherwise the
/// connection is closed at once.
/// A stream listener of the sink.
trait Accept: Send + 'static {
    type Conn: tokio::io::AsyncRead + Unpin + Send + 'static;
    fn accept_conn(&self) -> impl std::future::Future<Output = io::Result<Self::Conn>> + Send;
}

impl Accept for UnixListener {
    type Conn = tokio::net::UnixStream;
    async fn accept_conn(&self) -> io::Result<Self::Conn> {
        self.accept().await.map(|(c, _)| c)
    }
}

impl Accept for TcpListener {
    type Conn = tokio::net::TcpStream;
    async fn accept_conn(&self) -> io::Result<Self::Conn> {
        self.accept().await.map(|(c, _)| c)
    }
}

/// Accepts connections (at most [`MAX_SINK_CONNECTIONS`] at once) and counts the frames
/// each one carries.
async fn accept_all(listener: impl Accept, count: Arc<Counter>) {
    let limit = Arc::new(Semaphore::new(MAX_SINK_CONNECTIONS));
    let mut readers = JoinSet::new();
    while let Ok(conn) = listener.accept_conn().await {
        spawn_reader(&mut readers, &limit, conn, &count);
        while readers.try_join_next().is_some() {}
    }
}

fn spawn_reader<S>(readers: &mut JoinSet<()>, limit: &Arc<Semaphore>, conn: S, count: &Arc<Counter>)
where
    S: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
        return;
    };
    let count = Arc::clone(count);
    readers.spawn(async move {
        let _permit = permit;
        count_frames(conn, &count).await;
    });
}

/// Counts the frames of one stream until it ends, fails, or breaks the framing.
async fn count_frames<S: tokio::io::AsyncRead + Unpin>(mut conn: S, count: &Counter) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut walker = FrameWalker::default();
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Some(bytes) = buf.get(..n) else { return };
        match walker.feed(bytes) {
            Ok(frames) => count.add(frames).await,
            Err(_) => return,
        }
    }
}

/// Counts the non-empty datagrams arriving on `socket`, reading them in batches
/// (`recvmmsg` on Linux), so that the sink costs little beside the client.
async fn count_datagrams(socket: UdpSocket, count: Arc<Counter>) {
    let mut bufs = vec![0u8; super::raw::RECV_BATCH * super::raw::RECV_SLOT];
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        loop {
            let read = socket.try_io(tokio::io::Interest::READABLE, || {
                super::raw::recv_batch(&socket, &mut bufs)
            });
            match read {
                Ok((non_empty, _)) => count.add(non_empty as u64).await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error for something this socket never sent; keep reading.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// A broken stream: not SSF framing, or a frame over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// The version byte is not 0.
    Version(u8),
    /// A body length over [`MAX_FRAME_LENGTH`].
    TooLarge(u32),
}

/// Walks SSF frames across reads without holding their bodies: it keeps the header being
/// read (5 bytes) and how much body is left to skip, so its memory never grows.
#[derive(Debug, Default)]
pub(crate) struct FrameWalker {
    header: [u8; HEADER_LEN],
    /// Header bytes read so far.
    have: usize,
    /// Body bytes of the current frame still to skip.
    skip: u64,
    /// Whether a header was read and its body is being skipped.
    in_body: bool,
}

impl FrameWalker {
    /// Consumes `bytes` and returns how many frames ended in them.
    ///
    /// # Errors
    ///
    /// A [`FramingError`] when a header is not SSF's; the stream cannot go on.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<u64, FramingError> {
        let mut frames = 0;
        loop {
            if self.in_body {
                let left = usize::try_from(self.skip).unwrap_or(usize::MAX);
                let n = left.min(bytes.len());
                bytes = &bytes[n..];
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(frames);
                }
                self.in_body = false;
                frames += 1;
            }
            if bytes.is_empty() {
                return Ok(frames);
            }
            let n = (HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.header[0] != VERSION {
                return Err(FramingError::Version(self.header[0]));
            }
            if self.have < HEADER_LEN {
                return Ok(frames);
            }
            let [_, a, b, c, d] = self.header;
            let len = u32::from_be_bytes([a, b, c, d]);
            if len as usize > MAX_FRAME_LENGTH {
                return Err(FramingError::TooLarge(len));
            }
            self.have = 0;
            self.skip = u64::from(len);
            self.in_body = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(body_len: usize) -> Vec<u8> {
        let mut f = vec![VERSION];
        f.extend_from_slice(&(body_len as u32).to_be_bytes());
        f.extend(std::iter::repeat_n(0xab, body_len));
        f
    }

    #[test]
    fn counts_whole_frames_only() {
        let mut w = FrameWalker::default();
        let mut bytes = frame(3);
        bytes.extend(frame(0));
        bytes.extend(frame(10));
        assert_eq!(w.feed(&bytes[..bytes.len() - 1]), Ok(2));
        assert_eq!(w.feed(&bytes[bytes.len() - 1..]), Ok(1));
        assert_eq!(w.feed(&[]), Ok(0));
    }

    #[test]
    fn refuses_other_framing() {
        assert_eq!(
            FrameWalker::default().feed(&[1, 0, 0, 0, 0]),
            Err(FramingError::Version(1))
        );
        let too_long = (MAX_FRAME_LENGTH as u32 + 1).to_be_bytes();
        let mut w = FrameWalker::default();
        assert_eq!(w.feed(&[0, too_long[0]]), Ok(0));
        assert_eq!(
            w.feed(&too_long[1..]),
            Err(FramingError::TooLarge(MAX_FRAME_LENGTH as u32 + 1))
        );
    }

    proptest! {
        #[test]
        fn any_split_counts_the_same(
            lens in proptest::collection::vec(0usize..300, 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let stream: Vec<u8> = lens.iter().flat_map(|&n| frame(n)).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            let mut w = FrameWalker::default();
            let mut total = 0;
            for pair in at.windows(2) {
                total += w.feed(&stream[pair[0]..pair[1]]).expect("valid framing");
            }
            prop_assert_eq!(total, lens.len() as u64);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = FrameWalker::default().feed(&bytes);
        }
    }
}
