//! Support for the reliability scenarios in `tests/*.rs`: spans with known IDs, receivers
//! that can be killed and restarted on the same address, a paced producer that can be
//! paused, bounds on what the kernel can hold for a dead receiver, and probes of the
//! process's resources (open file descriptors, CPU time, resident memory).
//!
//! Every scenario runs over real loopback sockets with `trace-client` on one side and
//! `ssf-receiver` on the other. The scenarios and the guarantees they prove are listed in
//! `RELIABILITY.md` at the root of the workspace.

use std::io;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ssf_proto::SsfSpan;
use ssf_receiver::{Receiver, ReceiverHandle};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trace_client::Client;

/// A generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The receive buffer asked for on UDP receivers (the kernel caps it at
/// `net.core.rmem_max`), so that a busy reader loses no datagram in a burst.
pub const UDP_RECV_BUFFER: usize = 8 << 20;

/// The span channel of the scenarios' receivers.
pub const RECEIVER_CAPACITY: usize = 4096;

/// Serialises the tests of one test binary that count the process's open file
/// descriptors or tasks, which other tests running at the same time would change.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ===== spans =====

/// A typical span (name, service, 5 tags, a counter and a timing sample) whose trace
/// and span IDs are `id`.
pub fn span(id: i64) -> SsfSpan {
    trace_client::testing::typical_span(id)
}

/// The smallest encoded size (bytes on the wire, frame header included) of [`span`]:
/// dividing a byte bound by it gives a bound on spans.
pub fn min_span_len() -> usize {
    ssf_proto::wire::encoded_len(&span(1))
}

// ===== transports and receivers =====

/// A transport of the scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagrams on 127.0.0.1.
    Udp,
    /// A framed TCP stream on 127.0.0.1.
    Tcp,
    /// A framed unix stream in a temporary directory.
    Unix,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Unix];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }

    /// Whether it is a stream (framed, connection-based) transport.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}

/// Which spans arrived, by ID, across every incarnation of a receiver.
#[derive(Debug)]
pub struct Seen {
    counts: Vec<AtomicU8>,
    strays: AtomicU64,
}

impl Seen {
    /// Room for IDs 1 to `n`.
    pub fn new(n: usize) -> Arc<Seen> {
        Arc::new(Seen {
            counts: (0..=n).map(|_| AtomicU8::new(0)).collect(),
            strays: AtomicU64::new(0),
        })
    }

    fn add(&self, id: i64) {
        match usize::try_from(id).ok().and_then(|i| self.counts.get(i)) {
            Some(c) if id > 0 => {
                let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_add(1))
                });
            }
            _ => {
                self.strays.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many distinct IDs arrived.
    pub fn unique(&self) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) > 0)
            .count() as u64
    }

    /// How many spans arrived more than once (each extra arrival counted).
    pub fn duplicates(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed).saturating_sub(1)))
            .sum()
    }

    /// Spans that arrived with an ID out of range.
    pub fn strays(&self) -> u64 {
        self.strays.load(Ordering::Relaxed)
    }

    /// Whether the span with this ID arrived.
    pub fn has(&self, id: i64) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.counts.get(i))
            .is_some_and(|c| c.load(Ordering::Relaxed) > 0)
    }
}

/// The address a scenario's receiver listens on; it stays the same across restarts.
#[derive(Debug)]
pub struct Endpoint {
    transport: Transport,
    url: String,
    seen: Arc<Seen>,
    /// Seconds per span when the consumer is held to a rate.
    interval: Option<f64>,
    _dir: Option<tempfile::TempDir>,
}

/// One life of a receiver: the [`Receiver`] and the task recording what it yields.
#[derive(Debug)]
pub struct Incarnation {
    handle: ReceiverHandle,
    consumer: JoinHandle<Receiver>,
    received: Arc<AtomicU64>,
}

async fn bind(transport: Transport, url: &str) -> io::Result<Receiver> {
    let mut builder = Receiver::builder()
        .listen(url)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        .capacity(RECEIVER_CAPACITY);
    if transport == Transport::Udp {
        builder = builder.recv_buffer_size(UDP_RECV_BUFFER);
    }
    builder.bind().await
}

impl Endpoint {
    /// Starts the first receiver on a fresh address of `transport`; spans it and its
    /// successors receive are recorded in `seen`.
    ///
    /// # Panics
    ///
    /// When no receiver can be bound.
    pub async fn start(transport: Transport, seen: Arc<Seen>) -> (Endpoint, Incarnation) {
        Self::start_at_rate(transport, seen, None).await
    }

    /// As [`start`](Self::start), with a consumer that takes at most `rate` spans per
    /// second, when given: a slow receiver (its readers wait when its channel is full,
    /// so stream clients are pushed back).
    ///
    /// # Panics
    ///
    /// When no receiver can be bound.
    pub async fn start_at_rate(
        transport: Transport,
        seen: Arc<Seen>,
        rate: Option<f64>,
    ) -> (Endpoint, Incarnation) {
        let (dir, url) = match transport {
            Transport::Udp => (None, "udp://127.0.0.1:0".to_owned()),
            Transport::Tcp => (None, "tcp://127.0.0.1:0".to_owned()),
            Transport::Unix => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("unix://{}", dir.path().join("ssf.sock").display());
                (Some(dir), url)
            }
        };
        let receiver = bind(transport, &url)
            .await
            .expect("the first receiver binds");
        let url = receiver.local_addr().to_string();
        let endpoint = Endpoint {
            transport,
            url,
            seen,
            interval: rate.map(|r| 1.0 / r),
            _dir: dir,
        };
        let incarnation = endpoint.run(receiver);
        (endpoint, incarnation)
    }

    /// The address clients send to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Datagrams the kernel dropped because the UDP receiver's socket had no room (the
    /// `drops` column of `/proc/net/udp` for its port); 0 for streams and where it
    /// cannot be read.
    pub fn kernel_drops(&self) -> u64 {
        let Some(port) = self
            .url
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            return 0;
        };
        if self.transport != Transport::Udp {
            return 0;
        }
        udp_drops(port)
    }

    /// Starts a new receiver on the same address (retrying while the old socket is
    /// still being closed).
    ///
    /// # Panics
    ///
    /// When the address cannot be bound again within [`PATIENCE`].
    pub async fn restart(&self) -> Incarnation {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match bind(self.transport, &self.url).await {
                Ok(r) => return self.run(r),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("cannot bind {} again: {e}", self.url),
            }
        }
    }

    fn run(&self, mut receiver: Receiver) -> Incarnation {
        let handle = receiver.handle();
        let received = Arc::new(AtomicU64::new(0));
        let (seen, count) = (Arc::clone(&self.seen), Arc::clone(&received));
        let interval = self.interval;
        let consumer = tokio::spawn(async move {
            let start = Instant::now();
            while let Some(span) = receiver.recv().await {
                seen.add(span.id);
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(i) = interval {
                    let due = start + Duration::from_secs_f64(n as f64 * i);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                    }
                }
            }
            receiver
        });
        Incarnation {
            handle,
            consumer,
            received,
        }
    }
}

impl Incarnation {
    /// Spans this receiver has yielded so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Kills the receiver abruptly: its sockets close with whatever the kernel and its
    /// channel still hold. Returns how many spans it yielded.
    pub async fn kill(self) -> u64 {
        self.consumer.abort();
        // The receiver (and with it every socket and reader task) is dropped with the
        // consumer.
        let _ = self.consumer.await;
        self.received.load(Ordering::Relaxed)
    }

    /// Stops the receiver gracefully: it takes what the kernel already holds for it,
    /// yields it, and closes. Returns how many spans it yielded.
    pub async fn stop(self) -> u64 {
        self.handle.shutdown();
        if let Ok(receiver) = self.consumer.await {
            receiver.shutdown().await;
        }
        self.received.load(Ordering::Relaxed)
    }
}

// ===== a paced producer that can be paused =====

/// Lets a controller pause a [`pace`]d producer at a span boundary and resume it.
#[derive(Debug, Clone)]
pub struct Gate {
    wanted: watch::Sender<bool>,
    parked: watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            wanted: watch::Sender::new(false),
            parked: watch::Sender::new(false),
        }
    }
}

impl Gate {
    /// Asks the producer to pause and waits until it stopped recording (or finished).
    pub async fn pause(&self) {
        self.wanted.send_replace(true);
        let mut parked = self.parked.subscribe();
        let _ = parked.wait_for(|p| *p).await;
    }

    /// Lets the producer go on.
    pub fn resume(&self) {
        self.wanted.send_replace(false);
    }
}

/// Records spans with IDs `1..=n` through `client` at `rate` spans per second in all,
/// waiting for room in the queue ([`Client::record`]); `recorded` follows its progress.
/// While the [`Gate`] is paused it records nothing; the pace starts over on resuming.
/// Returns how many spans were refused (the client closed).
pub async fn pace(client: Client, n: u64, rate: f64, gate: Gate, recorded: Arc<AtomicU64>) -> u64 {
    let mut wanted = gate.wanted.subscribe();
    let mut start = Instant::now();
    let mut since = 0u64;
    let mut refused = 0;
    for i in 1..=n {
        if *wanted.borrow_and_update() {
            gate.parked.send_replace(true);
            let _ = wanted.wait_for(|w| !*w).await;
            gate.parked.send_replace(false);
            start = Instant::now();
            since = i - 1;
        }
        let due = start + Duration::from_secs_f64((i - since) as f64 / rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let id = i64::try_from(i).unwrap_or(i64::MAX);
        if client.record(span(id)).await.is_err() {
            refused += 1;
        }
        recorded.store(i, Ordering::Relaxed);
    }
    // A controller waiting for a pause need not wait for a producer that is done.
    gate.parked.send_replace(true);
    refused
}

/// Waits until `f()` holds, checking every 5 ms, for at most `limit`; returns whether
/// it held.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `drops` of the UDP sockets bound to `port` on 127.0.0.1 (`/proc/net/udp`).
fn udp_drops(port: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

// ===== what the kernel can hold =====

fn sysctl(path: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().map(|w| w.parse().ok()).collect()
}

fn sysctl_max(path: &str, fallback: u64) -> u64 {
    sysctl(path)
        .and_then(|v| v.into_iter().max())
        .unwrap_or(fallback)
}

/// How many bytes the kernel can hold, at most, for one connection (or one UDP socket)
/// of a receiver that dies without reading them, plus what one reader buffers.
///
/// * unix stream: the sender's send buffer bounds the unread data of a connection (the
///   client does not set `SO_SNDBUF`); the receive default is added for good measure;
/// * TCP: the largest send buffer and the largest receive buffer (autotuning stays within
///   `tcp_wmem` and `tcp_rmem`);
/// * UDP: the receive buffer, twice the largest request (Linux doubles it).
pub fn kernel_hold_bytes(transport: Transport) -> u64 {
    const FALLBACK: u64 = 8 << 20;
    const READER: u64 = 256 << 10;
    READER
        + match transport {
            Transport::Unix => {
                sysctl_max("/proc/sys/net/core/wmem_default", FALLBACK)
                    + sysctl_max("/proc/sys/net/core/rmem_default", FALLBACK)
            }
            Transport::Tcp => {
                sysctl_max("/proc/sys/net/ipv4/tcp_wmem", FALLBACK)
                    + sysctl_max("/proc/sys/net/ipv4/tcp_rmem", FALLBACK)
            }
            Transport::Udp => {
                2 * sysctl_max("/proc/sys/net/core/rmem_max", FALLBACK)
                    .max(sysctl_max("/proc/sys/net/core/rmem_default", FALLBACK))
            }
        }
}

/// How many [`span`]s a receiver killed abruptly can lose: what the kernel holds for each
/// of `connections` connections (one socket for UDP), and the receiver's own channel.
pub fn kill_bound(transport: Transport, connections: usize) -> u64 {
    let sockets = if transport.is_stream() {
        connections as u64
    } else {
        1
    };
    sockets * kernel_hold_bytes(transport) / min_span_len() as u64 + RECEIVER_CAPACITY as u64
}

// ===== probes of this process =====

/// Open file descriptors of this process (sockets included).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The resident set size of this process in bytes (`VmRSS`), where it can be read.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// The peak resident set size of this process in bytes (`VmHWM`), where it can be read.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn rusage(who: libc::c_int) -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` only writes a `rusage` through the pointer, which points to
    // memory of that type that we own; it is read only when the call succeeded.
    #[allow(unsafe_code)]
    let usage = unsafe {
        if libc::getrusage(who, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let t = |tv: libc::timeval| {
        Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
    };
    Some(t(usage.ru_utime) + t(usage.ru_stime))
}

/// CPU time (user + system) used by the calling thread so far (Linux).
pub fn thread_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        rusage(libc::RUSAGE_THREAD)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// CPU time (user + system) used by this process so far.
pub fn process_cpu() -> Option<Duration> {
    rusage(libc::RUSAGE_SELF)
}

/// Builds a runtime: `current_thread`, or `multi_thread` with two workers.
///
/// # Panics
///
/// When the runtime cannot be built.
pub fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("a tokio runtime")
}

/// Waits until the runtime's live tasks are down to `baseline` and the process's open
/// file descriptors to `fds`; returns the last counts seen `(tasks, fds)`.
pub async fn settle(baseline_tasks: usize, fds: usize) -> (usize, usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut last = (usize::MAX, usize::MAX);
    eventually(Duration::from_secs(10), || {
        last = (metrics.num_alive_tasks(), open_fds());
        last.0 <= baseline_tasks && last.1 <= fds
    })
    .await;
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_unique_duplicate_and_stray_ids() {
        let seen = Seen::new(3);
        for id in [1, 2, 2, 9, 0, -1] {
            seen.add(id);
        }
        assert_eq!(seen.unique(), 2);
        assert_eq!(seen.duplicates(), 1);
        assert_eq!(seen.strays(), 3);
        assert!(seen.has(2) && !seen.has(3));
    }

    #[test]
    fn spans_are_typical() {
        let len = min_span_len();
        assert!((150..=300).contains(&len), "{len}");
        assert!(ssf_proto::is_valid_trace(&span(7)));
    }

    #[test]
    fn udp_drops_are_read_for_a_bound_port() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("addr").port();
        // A fresh socket has dropped nothing; the table has a line for it (on Linux).
        assert_eq!(udp_drops(port), 0);
        if cfg!(target_os = "linux") {
            let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
            assert!(table.contains(&format!("0100007F:{port:04X}")), "{table}");
        }
    }

    #[test]
    fn probes_read_this_process() {
        assert!(open_fds() >= 3);
        let rss = rss_bytes();
        assert!(rss.is_some_and(|b| b > 0));
        // Read after the current size, so the high-water mark covers it; other tests'
        // threads allocate and free meanwhile, hence the slack.
        let peak = peak_rss_bytes();
        assert!(peak.is_some_and(|b| b > 0));
        assert!(peak >= rss.map(|b| b / 2));
        assert!(process_cpu().is_some());
        assert!(kill_bound(Transport::Unix, 2) > kill_bound(Transport::Unix, 1));
    }
}
