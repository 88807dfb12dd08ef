//! [`ClientBuilder`]: the options ([`config`] holds their defaults and validates them
//! into a plain configuration) and the spawning of a client's tasks ([`spawn`]). This is
//! the one module that knows every part of the client.

mod config;
mod spawn;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use ssf_codec::addr::Address;
use ssf_proto::{SsfSample, SsfSpan};
use tokio::sync::mpsc;

pub use config::{
    DEFAULT_BACKEND_CAPACITY, DEFAULT_BACKOFF, DEFAULT_BUFFER_SIZE, DEFAULT_CAPACITY,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT, DEFAULT_GRPC_CALLS_IN_FLIGHT,
    DEFAULT_MAX_BACKOFF, DEFAULT_MAX_DATAGRAM_SIZE, DEFAULT_PARALLEL_BACKENDS,
    DEFAULT_WRITE_TIMEOUT, MAX_CAPACITY, MAX_GRPC_CALLS_IN_FLIGHT,
};
use config::{Destination, Options};
use spawn::{FlushTicks, SpawnUser, StatsReporting};

use crate::client::{Client, Kind, Normalizer};
use crate::error::BuildError;
use crate::sampling::Sampler;
use crate::stats::StatsCounter;
use crate::transport::{Backend, UserTransport};
use crate::worker::Worker;

enum Target {
    Text(String),
    Address(Address),
    User(SpawnUser),
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
/// | [`grpc_calls_in_flight`](Self::grpc_calls_in_flight) | 64 per backend ([`DEFAULT_GRPC_CALLS_IN_FLIGHT`]) | network (gRPC) |
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
    options: Options,
    normalizer: Option<Normalizer>,
    stats: Option<StatsReporting>,
    service: Option<Arc<str>>,
    flush_ticks: Option<FlushTicks>,
    sampler: Sampler,
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
            .field("capacity", &self.options.capacity)
            .field("parallel_backends", &self.options.parallel_backends)
            .field("buffered", &self.options.buffered)
            .field("buffer_size", &self.options.buffer_size)
            .field("flush_interval", &self.options.flush_interval)
            .field("backoff", &self.options.backoff)
            .field("max_backoff", &self.options.max_backoff)
            .field("connect_timeout", &self.options.connect_timeout)
            .field("write_timeout", &self.options.write_timeout)
            .field("flush_timeout", &self.options.flush_timeout)
            .field("max_datagram_size", &self.options.max_datagram_size)
            .field("normalize_samples", &self.normalizer.is_some())
            .field("report_statistics", &self.stats.is_some())
            .field("service", &self.service)
            .field("flush_on", &self.flush_ticks.is_some())
            .field("sampler", &self.sampler)
            .finish()
    }
}

impl ClientBuilder {
    fn new(target: Target) -> Self {
        ClientBuilder {
            target,
            options: Options::default(),
            normalizer: None,
            stats: None,
            service: None,
            flush_ticks: None,
            sampler: Sampler::always(),
        }
    }

    fn for_backend<B: Backend>(backend: B) -> Self {
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
        self.options.network_option.get_or_insert(option);
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
        self.options.capacity = Some(capacity);
        self
    }

    /// Number of backends, each a worker task with its own connection. At least 1
    /// (veneur accepts 0, and then never sends anything). Network only.
    pub fn parallel_backends(mut self, n: usize) -> Self {
        self.network("parallel_backends");
        self.options.parallel_backends = Some(n);
        self
    }

    /// Gives each stream backend a write buffer of [`buffer_size`](Self::buffer_size)
    /// bytes: frames collect in it and are written together when it is full, on
    /// [`flush`](Client::flush), on a [`flush_interval`](Self::flush_interval) tick and at
    /// shutdown. Without [`flush`](Client::flush) or a flush interval, spans may wait in
    /// the buffer indefinitely. UDP clients ignore it (one datagram per span), and so do
    /// gRPC clients (one call per span, all of a batch answered before it ends). Network
    /// only.
    pub fn buffered(mut self, buffered: bool) -> Self {
        self.network("buffered");
        self.options.buffered = buffered;
        self
    }

    /// Size of the write buffer of [`buffered`](Self::buffered) stream backends, in bytes
    /// (setting it turns buffering on). A span larger than the buffer is written on its
    /// own. UDP and gRPC clients ignore it. Network only.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.network("buffer_size");
        self.options.buffered = true;
        self.options.buffer_size = Some(bytes);
        self
    }

    /// Flushes every `interval` (`None`: never). A tick that comes while the previous
    /// flush is still running is skipped, not queued. Results are counted in the
    /// statistics, not reported otherwise.
    pub fn flush_interval(mut self, interval: Option<Duration>) -> Self {
        self.options.flush_interval = interval;
        self
    }

    /// Flushes on every item of `ticks` (veneur's `FlushChannel`): any [`Stream`], such as
    /// tokio-stream's `IntervalStream`, a channel's receiver wrapped as a stream, or a
    /// stream of signals. Each flush is waited for before the next item is taken, so
    /// items that come during a flush wait (or are skipped, as the stream decides).
    /// Results are counted in the statistics. The stream is dropped when it ends or when
    /// the client shuts down; [`flush_interval`](Self::flush_interval) works beside it.
    ///
    /// ```
    /// use futures_util::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (tick, mut ticks) = tokio::sync::mpsc::channel::<()>(1);
    /// let client = trace_client::Client::builder("udp://127.0.0.1:8128")
    ///     .flush_on(stream::poll_fn(move |cx| ticks.poll_recv(cx)))
    ///     .build()?;
    /// tick.send(()).await?; // a flush
    /// client.shutdown(std::time::Duration::from_secs(1)).await;
    /// tick.closed().await; // the stream was dropped
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush_on<S>(mut self, ticks: S) -> Self
    where
        S: Stream + Send + 'static,
    {
        self.flush_ticks = Some(Box::pin(ticks.map(drop)));
        self
    }

    /// The first delay between connect attempts; later delays double up to
    /// [`max_backoff`](Self::max_backoff), each drawn at random from the upper half of
    /// its range ("equal jitter"). The first attempt is immediate. Network only.
    pub fn backoff(mut self, delay: Duration) -> Self {
        self.network("backoff");
        self.options.backoff = Some(delay);
        self
    }

    /// The cap on the delay between connect attempts. Network only.
    pub fn max_backoff(mut self, delay: Duration) -> Self {
        self.network("max_backoff");
        self.options.max_backoff = Some(delay);
        self
    }

    /// How long one connect sequence may take before the span waiting for it is dropped
    /// ([`DropReason::ConnectTimeout`](crate::DropReason::ConnectTimeout)). After a
    /// failed sequence every backend without a connection is *down*: spans are dropped
    /// at once (same reason) instead of waiting, and a single connect attempt is made at
    /// each backoff time until one succeeds. Network only.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.network("connect_timeout");
        self.options.connect_timeout = Some(timeout);
        self
    }

    /// How long a write may wait without the receiver taking a single byte. When it
    /// passes, the spans being written are dropped
    /// ([`DropReason::WriteTimeout`](crate::DropReason::WriteTimeout)), the connection
    /// is closed and the backend is down until its next backoff time (see
    /// [`connect_timeout`](Self::connect_timeout)). A slow receiver that keeps reading
    /// never trips it. Network only.
    ///
    /// Over `grpc://` it is the time a call may wait for its answer, so a receiver that
    /// reads but answers late (its queue full) does trip it; the calls of the batch not
    /// yet started are then dropped at once, for the same reason.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.network("write_timeout");
        self.options.write_timeout = Some(timeout);
        self
    }

    /// The time limit of [`Client::flush`]: when it passes, the flush fails, listing
    /// the backends that had not finished (they go on with what they hold; nothing is
    /// dropped because of it). [`Client::flush_with_deadline`] sets another limit for
    /// one call.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.options.flush_timeout = Some(timeout);
        self
    }

    /// The largest span, encoded, that a UDP backend sends; larger spans are dropped
    /// ([`DropReason::Oversize`](crate::DropReason::Oversize)), never truncated. At most
    /// 65 507. Network only.
    pub fn max_datagram_size(mut self, bytes: usize) -> Self {
        self.network("max_datagram_size");
        self.options.max_datagram_size = Some(bytes);
        self
    }

    /// How many `SendSpan` calls each backend keeps in flight on its HTTP/2 connection,
    /// 1 to [`MAX_GRPC_CALLS_IN_FLIGHT`]; with
    /// [`parallel_backends`](Self::parallel_backends) (one connection each) it sets how
    /// many spans are on their way at once. Keep it at or under the receiver's
    /// concurrent-stream limit, or the calls over it wait for a stream (and for their
    /// write timeout). Only `grpc://` clients use it. Network only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), trace_client::BuildError> {
    /// let client = trace_client::Client::builder("grpc://127.0.0.1:8126")
    ///     .parallel_backends(2)
    ///     .grpc_calls_in_flight(32)
    ///     .build()?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_calls_in_flight(mut self, calls: usize) -> Self {
        self.network("grpc_calls_in_flight");
        self.options.grpc_calls_in_flight = Some(calls);
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
        self.options.encode_in_backend = yes;
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

    /// The service name of spans recorded on this client without one of their own: an
    /// `SsfSpan` whose `service` is empty, a [`Span`](crate::Span) without
    /// [`set_service`](crate::Span::set_service) (this name then comes before the
    /// process-wide [`service_name`](crate::service_name)). Written into the encoding, so
    /// the spans themselves are not changed; an empty name changes nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = trace_client::Client::builder("udp://127.0.0.1:8128")
    ///     .service("checkout")
    ///     .build()?;
    /// assert_eq!(client.service(), Some("checkout"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn service(mut self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        self.service = (!name.is_empty()).then(|| Arc::from(name));
        self
    }

    /// Which traces the client records (default [`Sampler::always`], as veneur's client).
    /// The spans of a trace the sampler leaves out are discarded before they are encoded
    /// and counted as [`unsampled`](crate::ClientStats::unsampled). With
    /// [`Span::sample_with`](crate::Span::sample_with) the decision is made early and
    /// travels to children and into injected headers; the trace-http middleware does
    /// that for every request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use trace_client::{Client, Sampler};
    ///
    /// // Follow the caller's decision; record 10 % of the traces that start here.
    /// let client = Client::builder("udp://127.0.0.1:8128")
    ///     .sampler(Sampler::ratio(0.1).parent_based())
    ///     .build()?;
    /// assert!(client.sampler().is_parent_based());
    /// # Ok(())
    /// # }
    /// ```
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
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
    ///   SSF from them), unix sockets on a platform without them, or `grpc://` without
    ///   the `grpc` feature;
    /// * [`BuildError::Invalid`]: a zero capacity, backend count, buffer size, backoff,
    ///   connect, write or flush timeout, flush or statistics interval; a backoff above the maximum; a
    ///   datagram limit of 0 or above 65 507 bytes;
    /// * [`BuildError::NotNetworked`]: a network option on a user-backend client;
    /// * [`BuildError::NoRuntime`]: called outside a tokio runtime.
    pub fn build(self) -> Result<Client, BuildError> {
        let (dest, user) = match self.target {
            Target::User(spawn) => (Destination::User, Some(spawn)),
            Target::Text(s) => (Destination::of(Address::parse(&s)?)?, None),
            Target::Address(a) => (Destination::of(a)?, None),
        };
        let config = self
            .options
            .validate(&dest, self.stats.as_ref().map(|s| s.interval))?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let parts = spawn::Parts {
            normalizer: self.normalizer,
            stats: self.stats,
            service: self.service,
            flush_ticks: self.flush_ticks,
            sampler: self.sampler,
        };
        spawn::start(&handle, config, dest, user, parts)
    }
}

/// The ways to start building a client.
impl Client {
    /// A builder for a client sending to `addr`, an SSF address URL such as
    /// `udp://127.0.0.1:8128`, `tcp://collector:8128`, `unix:///run/veneur/ssf.sock` or
    /// (feature `grpc`) `grpc://veneur.internal:8126`
    /// (see [`ssf_codec::addr`]). The address is parsed by
    /// [`build`](ClientBuilder::build).
    pub fn builder(addr: impl AsRef<str>) -> ClientBuilder {
        ClientBuilder::new(Target::Text(addr.as_ref().to_owned()))
    }

    /// A builder for a client sending to an already parsed address.
    pub fn from_address(addr: Address) -> ClientBuilder {
        ClientBuilder::new(Target::Address(addr))
    }

    /// A builder for a client handing spans to your own [`Backend`], with one worker and
    /// a default capacity of 1. Network options make [`build`](ClientBuilder::build)
    /// fail.
    pub fn with_backend<B: Backend>(backend: B) -> ClientBuilder {
        ClientBuilder::for_backend(backend)
    }

    /// A client whose queue is a channel you read: every recorded span is pushed into it
    /// without waiting (`Full` when it is full, `Closed` once the receiver is dropped).
    ///
    /// There are no backends: a span counts as sent once it is in the channel, a receipt
    /// resolves to `Ok` at once (before anybody read the span), and flushing always
    /// succeeds. After [`shutdown`](Client::shutdown) or [`close`](Client::close) records
    /// are refused; the channel itself closes when the last handle is dropped. A capacity
    /// of 0 is raised to 1. Needs no runtime.
    ///
    /// ```
    /// use ssf_proto::SsfSpan;
    /// use trace_client::Client;
    ///
    /// let (client, mut rx) = Client::channel(8);
    /// client.try_record(SsfSpan { id: 5, ..Default::default() })?;
    /// assert_eq!(rx.try_recv().unwrap().id, 5);
    /// # Ok::<(), trace_client::TryRecordError>(())
    /// ```
    pub fn channel(capacity: usize) -> (Client, mpsc::Receiver<SsfSpan>) {
        Client::channel_sampled(capacity, Sampler::always())
    }

    /// A [`channel`](Client::channel) client that records only the traces `sampler`
    /// takes (see [`ClientBuilder::sampler`]).
    pub fn channel_sampled(capacity: usize, sampler: Sampler) -> (Client, mpsc::Receiver<SsfSpan>) {
        let (tx, rx) = mpsc::channel(capacity.clamp(1, MAX_CAPACITY));
        (
            Client::without_workers(Kind::Channel(tx)).with_sampler(sampler),
            rx,
        )
    }
}
