//! [`ClientBuilder`]: options, their defaults and validation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ssf_codec::addr::{Address, Scheme};
use ssf_proto::SsfSample;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{Backend, UserTransport};
use crate::client::Tx;
use crate::client::{Client, Encoding, Kind, Normalizer};
use crate::error::BuildError;
use crate::message::{FlushRound, Shared, run_flush};
use crate::stats::{StatsCounter, report_counters};
use crate::transport::{NetConfig, StreamTransport, Transport, UdpTransport};
use crate::worker::Worker;

/// Default queue capacity of a network client, in spans: 1024, as veneur's server uses
/// for its own client (veneur's library default is 64, which refuses most of a burst).
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default queue capacity of a client with a user backend: 1, as in veneur.
pub const DEFAULT_BACKEND_CAPACITY: usize = 1;
/// Default number of backends (each with its own connection): 8, as in veneur.
pub const DEFAULT_PARALLEL_BACKENDS: usize = 8;
/// Default write-buffer size of buffered stream backends: 64 KiB (veneur: 16 MiB + 5 bytes
/// per connection).
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;
/// Default first reconnect delay: 20 ms, as in veneur.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(20);
/// Default cap on the reconnect delay: 1 s, as in veneur (where the cap does not work).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Default time budget of one connect sequence: 10 s, as in veneur.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default write timeout: 5 s during which the receiver takes no byte (veneur has none:
/// a receiver that stops reading holds its connection forever).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time limit of [`Client::flush`]: 15 s, enough for a connect sequence and a
/// stalled write with the default timeouts.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit on a UDP span's encoded size: 16 384 bytes.
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = ssf_codec::DEFAULT_MAX_DATAGRAM_SIZE;
/// The largest queue capacity [`ClientBuilder::build`] accepts: 1 048 576 spans, whose
/// slots take 576 MiB (see [`ClientBuilder::capacity`]).
pub const MAX_CAPACITY: usize = 1 << 20;

/// Spawns the worker of a user backend.
type SpawnUser = Box<
    dyn FnOnce(
            Arc<Shared>,
            mpsc::UnboundedReceiver<Arc<FlushRound>>,
            usize,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

enum Target {
    Text(String),
    Address(Address),
    User(SpawnUser),
}

struct StatsReporting {
    sink: Arc<dyn StatsCounter + Send + Sync>,
    interval: Duration,
    tags: Vec<String>,
}

/// Configures and builds a [`Client`]. Start from [`Client::builder`] (an address
/// string), [`Client::from_address`] or [`Client::with_backend`].
///
/// | option | default | applies to |
/// |---|---|---|
/// | [`capacity`](Self::capacity) | 1024 spans ([`DEFAULT_CAPACITY`]); 1 with a user backend | all |
/// | [`parallel_backends`](Self::parallel_backends) | 8 ([`DEFAULT_PARALLEL_BACKENDS`]) | network |
/// | [`buffered`](Self::buffered) | `false` | network (streams; ignored for UDP) |
/// | [`buffer_size`](Self::buffer_size) | 64 KiB ([`DEFAULT_BUFFER_SIZE`]) | network (streams; ignored for UDP) |
/// | [`flush_interval`](Self::flush_interval) | none | all |
/// | [`backoff`](Self::backoff) | 20 ms ([`DEFAULT_BACKOFF`]) | network |
/// | [`max_backoff`](Self::max_backoff) | 1 s ([`DEFAULT_MAX_BACKOFF`]) | network |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s ([`DEFAULT_CONNECT_TIMEOUT`]) | network |
/// | [`write_timeout`](Self::write_timeout) | 5 s ([`DEFAULT_WRITE_TIMEOUT`]) | network |
/// | [`flush_timeout`](Self::flush_timeout) | 15 s ([`DEFAULT_FLUSH_TIMEOUT`]) | all |
/// | [`max_datagram_size`](Self::max_datagram_size) | 16 384 bytes ([`DEFAULT_MAX_DATAGRAM_SIZE`]) | network (UDP) |
/// | [`normalize_samples`](Self::normalize_samples) | none | all |
/// | [`report_statistics`](Self::report_statistics) | none | all |
///
/// Setting a network option on a user-backend builder makes [`build`](Self::build) fail
/// with [`BuildError::NotNetworked`]. Options are only checked in `build`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trace_client::Client;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), trace_client::BuildError> {
/// let client = Client::builder("unix:///var/run/veneur/ssf.sock")
///     .capacity(1024)
///     .parallel_backends(2)
///     .buffered(true)
///     .flush_interval(Some(Duration::from_millis(500)))
///     .build()?; // never touches the network
/// assert_eq!(client.stats().bytes_written(), 0);
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ClientBuilder {
    target: Target,
    capacity: Option<usize>,
    parallel_backends: Option<usize>,
    buffered: bool,
    buffer_size: Option<usize>,
    flush_interval: Option<Duration>,
    backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    connect_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    flush_timeout: Option<Duration>,
    max_datagram_size: Option<usize>,
    normalizer: Option<Normalizer>,
    stats: Option<StatsReporting>,
    network_option: Option<&'static str>,
    encode_in_backend: bool,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target: &dyn fmt::Debug = match &self.target {
            Target::Text(s) => s,
            Target::Address(a) => a,
            Target::User(_) => &"<user backend>",
        };
        f.debug_struct("ClientBuilder")
            .field("target", target)
            .field("capacity", &self.capacity)
            .field("parallel_backends", &self.parallel_backends)
            .field("buffered", &self.buffered)
            .field("buffer_size", &self.buffer_size)
            .field("flush_interval", &self.flush_interval)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("flush_timeout", &self.flush_timeout)
            .field("max_datagram_size", &self.max_datagram_size)
            .field("normalize_samples", &self.normalizer.is_some())
            .field("report_statistics", &self.stats.is_some())
            .finish()
    }
}

impl ClientBuilder {
    fn new(target: Target) -> Self {
        ClientBuilder {
            target,
            capacity: None,
            parallel_backends: None,
            buffered: false,
            buffer_size: None,
            flush_interval: None,
            backoff: None,
            max_backoff: None,
            connect_timeout: None,
            write_timeout: None,
            flush_timeout: None,
            max_datagram_size: None,
            normalizer: None,
            stats: None,
            network_option: None,
            encode_in_backend: false,
        }
    }

    pub(crate) fn for_text(addr: String) -> Self {
        Self::new(Target::Text(addr))
    }

    pub(crate) fn for_address(addr: Address) -> Self {
        Self::new(Target::Address(addr))
    }

    pub(crate) fn for_backend<B: Backend>(backend: B) -> Self {
        let spawn: SpawnUser = Box::new(move |shared, control, batch| {
            let worker = Worker {
                index: 0,
                transport: UserTransport::new(backend, shared.clone()),
                shared,
                control,
                batch,
            };
            Box::pin(worker.run())
        });
        Self::new(Target::User(spawn))
    }

    fn network(&mut self, option: &'static str) {
        self.network_option.get_or_insert(option);
    }

    /// Queue capacity, in spans: how many accepted spans may wait for a backend before
    /// [`try_record`](Client::try_record) refuses with `Full`. At least 1 (veneur's 0, a
    /// hand-off, is refused by `build`), at most [`MAX_CAPACITY`].
    ///
    /// The queue's slots are allocated when the client is built, 576 bytes each: a
    /// network client encodes each span into its slot when it is recorded (a span whose
    /// encoding is over 360 bytes gets a heap buffer of its own); a user backend's slots
    /// hold the spans themselves (whose strings, samples and tags are the caller's
    /// allocations, held while they wait). That is 576 KiB for the default 1024, 36 MiB
    /// for 65 536. Recording then allocates nothing.
    ///
    /// veneur's default is 64, which refuses most of a burst (a loop recording as fast
    /// as it can saw 85–90 % of its spans refused); veneur's own server uses 1024 for its
    /// internal client, as this client does by default.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Number of backends, each a worker task with its own connection. At least 1
    /// (veneur accepts 0, and then never sends anything). Network only.
    pub fn parallel_backends(mut self, n: usize) -> Self {
        self.network("parallel_backends");
        self.parallel_backends = Some(n);
        self
    }

    /// Gives each stream backend a write buffer of [`buffer_size`](Self::buffer_size)
    /// bytes: frames collect in it and are written together when it is full, on
    /// [`flush`](Client::flush), on a [`flush_interval`](Self::flush_interval) tick and at
    /// shutdown. Without [`flush`](Client::flush) or a flush interval, spans may wait in
    /// the buffer indefinitely. UDP clients ignore it (one datagram per span). Network
    /// only.
    pub fn buffered(mut self, buffered: bool) -> Self {
        self.network("buffered");
        self.buffered = buffered;
        self
    }

    /// Size of the write buffer of [`buffered`](Self::buffered) stream backends, in bytes
    /// (setting it turns buffering on). A span larger than the buffer is written on its
    /// own. Network only.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.network("buffer_size");
        self.buffered = true;
        self.buffer_size = Some(bytes);
        self
    }

    /// Flushes every `interval` (`None`: never). A tick that comes while the previous
    /// flush is still running is skipped, not queued. Results are counted in the
    /// statistics, not reported otherwise.
    pub fn flush_interval(mut self, interval: Option<Duration>) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The first delay between connect attempts; later delays double up to
    /// [`max_backoff`](Self::max_backoff), each drawn at random from the upper half of
    /// its range ("equal jitter"). The first attempt is immediate. Network only.
    pub fn backoff(mut self, delay: Duration) -> Self {
        self.network("backoff");
        self.backoff = Some(delay);
        self
    }

    /// The cap on the delay between connect attempts. Network only.
    pub fn max_backoff(mut self, delay: Duration) -> Self {
        self.network("max_backoff");
        self.max_backoff = Some(delay);
        self
    }

    /// How long one connect sequence may take before the span waiting for it is dropped
    /// ([`DropReason::ConnectTimeout`](crate::DropReason::ConnectTimeout)). After a
    /// failed sequence every backend without a connection is *down*: spans are dropped
    /// at once (same reason) instead of waiting, and a single connect attempt is made at
    /// each backoff time until one succeeds. Network only.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.network("connect_timeout");
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a write may wait without the receiver taking a single byte. When it
    /// passes, the spans being written are dropped
    /// ([`DropReason::WriteTimeout`](crate::DropReason::WriteTimeout)), the connection
    /// is closed and the backend is down until its next backoff time (see
    /// [`connect_timeout`](Self::connect_timeout)). A slow receiver that keeps reading
    /// never trips it. Network only.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.network("write_timeout");
        self.write_timeout = Some(timeout);
        self
    }

    /// The time limit of [`Client::flush`]: when it passes, the flush fails, listing
    /// the backends that had not finished (they go on with what they hold; nothing is
    /// dropped because of it). [`Client::flush_with_deadline`] sets another limit for
    /// one call.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = Some(timeout);
        self
    }

    /// The largest span, encoded, that a UDP backend sends; larger spans are dropped
    /// ([`DropReason::Oversize`](crate::DropReason::Oversize)), never truncated. At most
    /// 65 507. Network only.
    pub fn max_datagram_size(mut self, bytes: usize) -> Self {
        self.network("max_datagram_size");
        self.max_datagram_size = Some(bytes);
        self
    }

    /// Where spans are encoded: by default (`false`) on the recording task, when
    /// [`try_record`](Client::try_record) queues them, so the queue carries bytes and the
    /// span is freed by the task that made it; with `true`, by the backends, so
    /// recording costs the caller only the queue (the backends encode and free the
    /// spans). Network only.
    ///
    /// Encoding on record gives the higher throughput (the backends only copy bytes, and
    /// no span's memory moves between threads) and allows
    /// [`try_record_ref`](Client::try_record_ref) without a clone; encoding in the
    /// backends gives the lowest latency per call for spans with many heap parts. The
    /// project's `BENCHMARKS.md` has both measured.
    pub fn encode_in_backend(mut self, yes: bool) -> Self {
        self.network("encode_in_backend");
        self.encode_in_backend = yes;
        self
    }

    /// A function run on every sample of every span as it is recorded, before it is
    /// queued (once per record call, on the span the client now owns; a refused span is
    /// handed back normalised). A panic in it is caught and counted in
    /// [`ClientStats::panics`](crate::ClientStats::panics); the span is recorded as the
    /// function left it.
    pub fn normalize_samples(mut self, f: impl Fn(&mut SsfSample) + Send + Sync + 'static) -> Self {
        self.normalizer = Some(Arc::new(f));
        self
    }

    /// Reports veneur's four client counters to `sink` every `interval` (see
    /// [`report_statistics`](crate::report_statistics)), and once more when the client's
    /// workers have stopped.
    pub fn report_statistics<I, T>(
        mut self,
        sink: Arc<dyn StatsCounter + Send + Sync>,
        interval: Duration,
        tags: I,
    ) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.stats = Some(StatsReporting {
            sink,
            interval,
            tags: tags.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Builds the client and spawns its tasks on the current tokio runtime, which needs
    /// its I/O and time drivers (`enable_all`, as `#[tokio::main]` sets up). Nothing is
    /// connected yet: each backend connects when it first has something to write.
    ///
    /// # Errors
    ///
    /// * [`BuildError::Address`]: the address does not parse;
    /// * [`BuildError::UnsupportedScheme`]: `unixgram`/`unixpacket` (veneur does not read
    ///   SSF from them), or unix sockets on a platform without them;
    /// * [`BuildError::Invalid`]: a zero capacity, backend count, buffer size, backoff,
    ///   connect, write or flush timeout, flush or statistics interval; a backoff above the maximum; a
    ///   datagram limit of 0 or above 65 507 bytes;
    /// * [`BuildError::NotNetworked`]: a network option on a user-backend client;
    /// * [`BuildError::NoRuntime`]: called outside a tokio runtime.
    pub fn build(self) -> Result<Client, BuildError> {
        let user = matches!(self.target, Target::User(_));
        if user {
            if let Some(option) = self.network_option {
                return Err(BuildError::NotNetworked(option));
            }
        }
        let capacity = self.capacity.unwrap_or(if user {
            DEFAULT_BACKEND_CAPACITY
        } else {
            DEFAULT_CAPACITY
        });
        if capacity == 0 {
            return Err(BuildError::Invalid("capacity must be at least 1"));
        }
        if capacity > MAX_CAPACITY {
            return Err(BuildError::Invalid("capacity is over MAX_CAPACITY"));
        }
        let workers =
            self.parallel_backends
                .unwrap_or(if user { 1 } else { DEFAULT_PARALLEL_BACKENDS });
        if workers == 0 {
            return Err(BuildError::Invalid("parallel_backends must be at least 1"));
        }
        let backoff = self.backoff.unwrap_or(DEFAULT_BACKOFF);
        let max_backoff = self.max_backoff.unwrap_or(DEFAULT_MAX_BACKOFF);
        if backoff.is_zero() {
            return Err(BuildError::Invalid("backoff must be greater than zero"));
        }
        if max_backoff < backoff {
            return Err(BuildError::Invalid("max_backoff must be at least backoff"));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout.is_zero() {
            return Err(BuildError::Invalid(
                "connect_timeout must be greater than zero",
            ));
        }
        let write_timeout = self.write_timeout.unwrap_or(DEFAULT_WRITE_TIMEOUT);
        if write_timeout.is_zero() {
            return Err(BuildError::Invalid(
                "write_timeout must be greater than zero",
            ));
        }
        let flush_timeout = self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT);
        if flush_timeout.is_zero() {
            return Err(BuildError::Invalid(
                "flush_timeout must be greater than zero",
            ));
        }
        let buffer_size = self.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE);
        if self.buffered && buffer_size == 0 {
            return Err(BuildError::Invalid("buffer_size must be greater than zero"));
        }
        let max_datagram_size = self.max_datagram_size.unwrap_or(DEFAULT_MAX_DATAGRAM_SIZE);
        if max_datagram_size == 0 || max_datagram_size > ssf_codec::MAX_UDP_PAYLOAD {
            return Err(BuildError::Invalid(
                "max_datagram_size must be between 1 and 65507 bytes",
            ));
        }
        if self.flush_interval.is_some_and(|d| d.is_zero()) {
            return Err(BuildError::Invalid(
                "flush_interval must be greater than zero",
            ));
        }
        if self.stats.as_ref().is_some_and(|s| s.interval.is_zero()) {
            return Err(BuildError::Invalid(
                "the statistics interval must be greater than zero",
            ));
        }
        let config = NetConfig {
            backoff,
            max_backoff,
            connect_timeout,
            write_timeout,
            buffer_size: self.buffered.then_some(buffer_size),
            max_datagram_size,
        };

        enum Plan {
            Udp(Address),
            Stream(Address),
            User(SpawnUser),
        }
        let plan = match self.target {
            Target::User(spawn) => Plan::User(spawn),
            Target::Text(s) => plan_for(Address::parse(&s)?)?,
            Target::Address(a) => plan_for(a)?,
        };
        fn plan_for(a: Address) -> Result<Plan, BuildError> {
            match a.scheme() {
                Scheme::Udp | Scheme::Udp4 | Scheme::Udp6 => Ok(Plan::Udp(a)),
                Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 => Ok(Plan::Stream(a)),
                #[cfg(unix)]
                Scheme::Unix => Ok(Plan::Stream(a)),
                other => Err(BuildError::UnsupportedScheme(other)),
            }
        }

        let handle = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;

        let mut controls = Vec::with_capacity(workers);
        let mut control_rxs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (c_tx, c_rx) = mpsc::unbounded_channel();
            controls.push(c_tx);
            control_rxs.push(c_rx);
        }
        let shared = Arc::new(Shared::new(capacity, controls).with_flush_timeout(flush_timeout));
        let tx = Tx::new(shared.clone());
        // Each worker takes its share of a full queue at once, within limits: large
        // batches mean large writes, small ones let the backends share the work.
        let batch = capacity.clamp(1, 512);

        fn spawn<T: Transport>(
            handle: &tokio::runtime::Handle,
            index: usize,
            transport: T,
            shared: &Arc<Shared>,
            control: mpsc::UnboundedReceiver<Arc<FlushRound>>,
            batch: usize,
        ) {
            let worker = Worker {
                index,
                transport,
                shared: shared.clone(),
                control,
                batch,
            };
            handle.spawn(worker.run());
        }
        let encoding = match (&plan, self.encode_in_backend) {
            (Plan::User(_), _) => Encoding::None,
            (_, true) => Encoding::InBackend,
            (Plan::Udp(_), false) => Encoding::OnRecord {
                max: max_datagram_size,
            },
            (Plan::Stream(_), false) => Encoding::OnRecord {
                max: ssf_codec::MAX_FRAME_LENGTH,
            },
        };
        match plan {
            Plan::User(spawn_user) => {
                // `workers` is 1: parallel_backends is a network option.
                if let Some(control) = control_rxs.into_iter().next() {
                    handle.spawn(spawn_user(shared.clone(), control, batch));
                }
            }
            Plan::Udp(addr) => {
                for (i, control) in control_rxs.into_iter().enumerate() {
                    let t = UdpTransport::new(&addr, &config, shared.clone());
                    spawn(&handle, i, t, &shared, control, batch);
                }
            }
            Plan::Stream(addr) => {
                for (i, control) in control_rxs.into_iter().enumerate() {
                    let Some(t) = StreamTransport::new(&addr, &config, shared.clone()) else {
                        return Err(BuildError::UnsupportedScheme(addr.scheme()));
                    };
                    spawn(&handle, i, t, &shared, control, batch);
                }
            }
        }

        if let Some(every) = self.flush_interval {
            handle.spawn(periodic_flush(shared.clone(), every));
        }
        if let Some(stats) = self.stats {
            handle.spawn(periodic_stats(shared.clone(), stats));
        }
        Ok(Client::from_parts(
            Kind::Queue(tx),
            shared,
            self.normalizer,
            encoding,
        ))
    }
}

async fn periodic_flush(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shared.draining.wait() => return,
            _ = ticker.tick() => {}
        }
        // Holds the queue open only while the flush runs: the last handle dropped
        // closes it.
        let Some(tx) = Tx::upgrade(&shared) else {
            return;
        };
        // Wait for this flush before the next tick, so slow flushes do not pile up.
        let deadline = Instant::now() + shared.flush_timeout;
        let _ = run_flush(&shared, deadline).await;
        drop(tx);
    }
}

async fn periodic_stats(shared: Arc<Shared>, stats: StatsReporting) {
    let tags: Vec<&str> = stats.tags.iter().map(String::as_str).collect();
    let mut ticker = tokio::time::interval_at(Instant::now() + stats.interval, stats.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            biased;
            _ = shared.wait_workers_done() => true,
            _ = ticker.tick() => false,
        };
        report_counters(&shared.counters, &*stats.sink, &tags);
        if last {
            return;
        }
    }
}
