//! `ssf bench`: an end-to-end load generator. Producer tasks record typical spans through
//! a [`Client`]; the report says how many were attempted, accepted, refused, sent,
//! dropped (by reason) and, with an in-process receiver, delivered, with the throughput
//! and the process's CPU time and peak memory.
//!
//! Besides the client run there are three reference modes, so every figure can be set
//! against a ceiling measured the same way: `--raw` (a pre-encoded span written in a
//! plain loop, no client), `--encode-only` (encoding alone, no I/O) and `--idle` (a
//! client whose receiver is absent, to show it costs nothing while it waits).

mod raw;
mod sink;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use clap::{Args, ValueEnum};
use serde::Serialize;
use ssf_codec::SsfCodec;
use ssf_codec::addr::Address;
use ssf_proto::SsfSpan;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use trace_client::{Client, DropCounts, DropReason, Span, TryRecordError};

use crate::emit::chain;
use crate::{Failure, args, usage};

use sink::Local;

/// The most producer tasks `--producers` accepts.
const MAX_PRODUCERS: usize = 4096;

/// The most backends (connections) `--backends` accepts.
const MAX_BACKENDS: usize = 1024;

/// How long the client may take to send what is queued when production ends.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// How long an `--idle` client may take to shut down: its receiver is absent, so what it
/// holds is dropped at this deadline.
const IDLE_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(1);

/// Span indexes an unpaced producer claims at once (fewer contended atomic operations).
const CLAIM: u64 = 64;

/// Spans a producer records between two voluntary yields, so that producers never keep
/// a runtime thread from the client's backends for long.
const YIELD_EVERY: u64 = 256;

/// How many times in a row a producer yields on a full queue before it waits for room
/// with [`Client::record`]. Measured with two producers, a few yields give 30–45 % more
/// throughput than waiting at once; many yields make the producers spin against the
/// backends for the CPUs.
const MAX_YIELDS: u32 = 4;

/// Options of `ssf bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each span is typical of a service: a name, a service, 5 tags, a counter and a timing \
sample (about 280 bytes encoded), fresh IDs and timestamps. Producers build each span \
from a template (the allocations of an application's span) and record it with try_record; \
with --reuse each producer keeps one span, gives it fresh IDs and timestamps and records \
it with try_record_ref (nothing allocated per span). Without --addr, a receiver is \
started in this process (--in-process, UDP by default) and the spans it receives are \
counted as delivered; --count-only makes it count frames or datagrams without decoding \
them (reading datagrams with recvmmsg), so the run measures the client rather than the \
receiver (--sink-rate makes that receiver slow, for overload runs). spans_per_sec is sent \
spans divided by the time from the first span to the end of the client's shutdown \
(everything written).

When the queue is full, producers yield to the runtime and try again, then wait with \
record (record_ref) if it stays full (--no-wait counts the refusal and moves on instead).

Reference modes: --raw writes one pre-encoded span in a plain loop on blocking sockets \
(64 KiB writes of repeated frames on streams, one datagram per span in sendmmsg batches \
on UDP), the ceiling for the transport; --encode-only runs a producer's loop on one \
thread without the client (each span made as the producers make it, with or without \
--reuse, and encoded as the client encodes it), the most spans one thread could hand \
over; --idle SECS points a client at a receiver that is absent, offers it --spans spans, \
then reports the CPU time it used over SECS seconds.")]
pub(crate) struct BenchArgs {
    /// Send to this address (veneur, `ssf tail`, ...) instead of an in-process receiver.
    #[arg(long, value_name = "URL", value_parser = args::address, conflicts_with = "in_process")]
    addr: Option<Address>,
    /// Start a receiver in this process on this transport [default: udp].
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    in_process: Option<Transport>,
    /// Make the in-process receiver count frames or datagrams without decoding them.
    #[arg(long, conflicts_with = "addr")]
    count_only: bool,
    /// Make the counting receiver take at most this many spans per second, a slow
    /// receiver: streams push back on the client, UDP loses what the kernel cannot hold.
    #[arg(long, value_name = "SPANS_PER_SEC", value_parser = args::rate, requires = "count_only")]
    sink_rate: Option<f64>,
    /// How many spans to send (ignored with --duration).
    #[arg(long, value_name = "N", default_value = "100000", value_parser = args::positive)]
    spans: u64,
    /// Pace the stream at this many spans per second in all (default: as fast as possible).
    #[arg(long, value_name = "SPANS_PER_SEC", value_parser = args::rate)]
    rate: Option<f64>,
    /// Send for this many seconds instead of a number of spans.
    #[arg(long, value_name = "SECS", value_parser = args::seconds)]
    duration: Option<Duration>,
    /// How many producer tasks record spans at once (with --raw: writer threads, each
    /// with its own connection).
    #[arg(long, value_name = "N", default_value = "1", value_parser = args::positive_usize)]
    producers: usize,
    /// Buffer writes on stream connections (flushed when full and at shutdown).
    #[arg(long)]
    buffered: bool,
    /// The client's queue capacity, in spans [default: the client's default].
    #[arg(long, value_name = "SPANS", value_parser = args::positive_usize)]
    capacity: Option<usize>,
    /// The client's number of parallel backends [default: the client's default].
    #[arg(long, value_name = "N", value_parser = args::positive_usize)]
    backends: Option<usize>,
    /// With a grpc:// address, the calls each backend keeps in flight (1 to 1024)
    /// [default: the client's default, 64].
    #[arg(long, value_name = "N", value_parser = args::positive_usize)]
    grpc_calls: Option<usize>,
    /// Count refusals instead of waiting for room in the queue.
    #[arg(long)]
    no_wait: bool,
    /// Each producer records one span over and over, changing its IDs and timestamps,
    /// with try_record_ref (nothing allocated per span), instead of building each span.
    #[arg(long, conflicts_with = "span_api")]
    reuse: bool,
    /// Each producer builds every span through the public Span API, as an application
    /// does: a child of the producer's request span, five set_tag, a count and a timing
    /// sample, finish_with (static strings; see --owned-tags).
    #[arg(long)]
    span_api: bool,
    /// With --span-api, the five tag values are owned `String`s (one allocation each).
    #[arg(long, requires = "span_api")]
    owned_tags: bool,
    /// Make the client's backends encode the spans, instead of the recording task.
    #[arg(long)]
    encode_in_backend: bool,
    /// Write a pre-encoded span in a plain loop, without the client: the ceiling.
    #[arg(long, conflicts_with_all = [
        "rate", "buffered", "capacity", "backends", "no_wait", "reuse", "encode_in_backend",
        "span_api", "grpc_calls",
    ])]
    raw: bool,
    /// Run a producer's loop without the client: make and encode --spans spans (or for
    /// --duration) on one thread, as the producers and the client would.
    #[arg(long, conflicts_with_all = [
        "addr", "in_process", "count_only", "rate", "producers", "buffered", "capacity",
        "backends", "no_wait", "raw", "encode_in_backend", "grpc_calls",
    ])]
    encode_only: bool,
    /// Offer --spans spans to a client whose receiver is absent, then report the CPU
    /// time it uses over this many seconds.
    #[arg(long, value_name = "SECS", value_parser = args::positive_seconds, conflicts_with_all = [
        "count_only", "rate", "duration", "producers", "no_wait", "raw", "encode_only",
    ])]
    idle: Option<Duration>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Where an in-process receiver listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// UDP on 127.0.0.1, a free port.
    Udp,
    /// A unix stream socket in a fresh temporary directory.
    Unix,
    /// TCP on 127.0.0.1, a free port.
    Tcp,
    /// gRPC (`ssf.SSFGRPC/SendSpan` over HTTP/2) on 127.0.0.1, a free port. Needs the
    /// decoding receiver (not --count-only); --raw has no gRPC mode.
    #[cfg(feature = "grpc")]
    Grpc,
}

impl Transport {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            #[cfg(feature = "grpc")]
            Transport::Grpc => "grpc",
        }
    }
}

/// Counters shared by the producers.
#[derive(Debug, Default)]
struct Tally {
    /// Span indexes claimed.
    claimed: AtomicU64,
    attempted: AtomicU64,
    /// `Full` refusals that were tried again (the client counts them as refusals).
    retried: AtomicU64,
}

/// The work every producer shares.
#[derive(Debug)]
struct Load {
    client: Client,
    template: SsfSpan,
    tally: Tally,
    /// Stop after this many spans (none with `--duration`).
    limit: Option<u64>,
    /// Stop at this time (with `--duration`).
    deadline: Option<Instant>,
    /// Seconds between two spans in all, when paced.
    interval: Option<f64>,
    start: Instant,
    wait: bool,
    source: Source,
}

/// How the producers make their spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A clone of the template per span, recorded with `try_record`.
    Built,
    /// One span per producer, refreshed and recorded with `try_record_ref`.
    Reused,
    /// Built through the Span API (owned tag values or not), `finish_with`.
    SpanApi { owned: bool },
}

impl Source {
    fn of(a: &BenchArgs) -> Source {
        if a.span_api {
            Source::SpanApi {
                owned: a.owned_tags,
            }
        } else if a.reuse {
            Source::Reused
        } else {
            Source::Built
        }
    }

    /// The report's name for it.
    fn name(self) -> &'static str {
        match self {
            Source::Built => "built",
            Source::Reused => "reused",
            Source::SpanApi { owned: false } => "span_api",
            Source::SpanApi { owned: true } => "span_api_owned",
        }
    }
}

/// The request span a producer's spans are children of.
fn request_span() -> Span {
    let mut root = Span::root("request");
    root.set_finish_on_drop(false);
    root
}

/// The typical span (see [`template`]) built through the Span API as an application
/// builds one per request: a child of `parent`, the service, five tags (owned `String`
/// values with `owned`), a counter with a tag and a timing sample.
#[inline]
fn api_span(parent: &Span, owned: bool) -> Span {
    trace_client::testing::typical_request_span(parent, owned)
}

/// Runs `ssf bench`.
pub(crate) async fn run(a: BenchArgs) -> Result<ExitCode, Failure> {
    if a.producers > MAX_PRODUCERS {
        return Err(Failure::Usage(format!(
            "--producers must be at most {MAX_PRODUCERS}"
        )));
    }
    if a.backends.is_some_and(|n| n > MAX_BACKENDS) {
        return Err(Failure::Usage(format!(
            "--backends must be at most {MAX_BACKENDS}"
        )));
    }
    let report = if a.encode_only {
        encode_only(&a).await?
    } else if let Some(idle) = a.idle {
        idle_client(&a, idle).await?
    } else if a.raw {
        raw_run(&a).await?
    } else {
        client_run(&a).await?
    };
    let text = if a.json {
        let mut line = serde_json::to_string(&report)
            .map_err(|e| Failure::Runtime(format!("cannot render the report: {e}")))?;
        line.push('\n');
        line
    } else {
        report.human()
    };
    let mut out = tokio::io::stdout();
    out.write_all(text.as_bytes())
        .await
        .and(out.flush().await)
        .map_err(|e| Failure::Runtime(format!("cannot write output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// The in-process receiver's transport, when there is one.
fn local_transport(a: &BenchArgs) -> Option<Transport> {
    a.addr
        .is_none()
        .then(|| a.in_process.unwrap_or(Transport::Udp))
}

/// Starts the in-process receiver (unless `--addr`) and says where to send.
async fn destination(a: &BenchArgs) -> Result<(Address, Option<Local>), Failure> {
    match (&a.addr, local_transport(a)) {
        (Some(addr), _) => Ok((addr.clone(), None)),
        (None, Some(t)) => {
            let sink = match (a.count_only, a.sink_rate) {
                (false, _) => sink::Kind::Receiver,
                (true, rate) => sink::Kind::Counting { rate },
            };
            let local = Local::start(t, sink).await?;
            Ok((local.addr.clone(), Some(local)))
        }
        (None, None) => Err(Failure::Runtime("no address to send to".to_owned())),
    }
}

fn build_client(a: &BenchArgs, addr: Address) -> Result<Client, Failure> {
    let mut builder = Client::from_address(addr)
        .buffered(a.buffered)
        .encode_in_backend(a.encode_in_backend);
    if let Some(n) = a.capacity {
        builder = builder.capacity(n);
    }
    if let Some(n) = a.backends {
        builder = builder.parallel_backends(n);
    }
    if let Some(n) = a.grpc_calls {
        builder = builder.grpc_calls_in_flight(n);
    }
    builder
        .build()
        .map_err(|e| Failure::Usage(format!("cannot build the client: {}", chain(&e))))
}

/// The client under load: producers record spans, then the client shuts down.
async fn client_run(a: &BenchArgs) -> Result<Report, Failure> {
    let (addr, local) = destination(a).await?;
    let client = build_client(a, addr.clone())?;

    let start = Instant::now();
    let load = Arc::new(Load {
        client: client.clone(),
        template: template(),
        tally: Tally::default(),
        limit: a.duration.is_none().then_some(a.spans),
        deadline: a.duration.map(|d| start + d),
        interval: a.rate.map(|r| 1.0 / r),
        start,
        wait: !a.no_wait,
        source: Source::of(a),
    });
    let mut producers = JoinSet::new();
    for _ in 0..a.producers {
        producers.spawn(produce(Arc::clone(&load)));
    }
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(Arc::clone(&load))));
    let ticker = Ticker::start();
    while producers.join_next().await.is_some() {}
    let shutdown = client.shutdown(SHUTDOWN_DEADLINE).await;
    let elapsed = start.elapsed();
    let delivered = match local {
        Some(l) => Some(l.finish(shutdown.sent()).await),
        None => None,
    };
    end_progress(progress).await;
    let max_tick_late = ticker.stop();

    let stats = shutdown.stats();
    let secs = elapsed.as_secs_f64();
    let mut report = Report::new("client", a, Some(addr.to_string()));
    let retried = load.tally.retried.load(Ordering::Relaxed);
    report.attempted = load.tally.attempted.load(Ordering::Relaxed);
    report.accepted = Some(stats.accepted());
    report.refused = Some(stats.refused().saturating_sub(retried));
    report.full_retries = Some(retried);
    report.sent = stats.sent();
    report.dropped = Some(Dropped::from(stats.dropped()));
    report.delivered = delivered;
    report.timed_out = Some(shutdown.timed_out());
    report.elapsed_s = round(secs, 6);
    report.spans_per_sec = round(per_sec(stats.sent(), secs), 1);
    report.max_tick_late_ms = Some(round(max_tick_late.as_secs_f64() * 1e3, 3));
    Ok(report.with_usage())
}

/// `--raw`: the transport's ceiling, without the client.
async fn raw_run(a: &BenchArgs) -> Result<Report, Failure> {
    let (addr, local) = destination(a).await?;
    let span = reference_span();
    let frame = if addr.is_udp() {
        ssf_proto::wire::encode_to_vec(&span)
    } else {
        let mut buf = BytesMut::new();
        SsfCodec::new()
            .encode_frame(&span, &mut buf)
            .map_err(|e| Failure::Runtime(format!("cannot encode the span: {e}")))?;
        buf.to_vec()
    };
    let start = std::time::Instant::now();
    let until = raw::Until {
        spans: a.duration.is_none().then_some(a.spans),
        deadline: a.duration.map(|d| start + d),
    };
    let outcome = raw::run(&addr, frame, a.producers, until).await;
    let elapsed = start.elapsed();
    let sent = outcome.as_ref().map_or(0, |o| o.sent);
    let delivered = match local {
        Some(l) => Some(l.finish(sent).await),
        None => None,
    };
    let outcome = outcome.map_err(|e| Failure::Runtime(format!("cannot write to {addr}: {e}")))?;

    let secs = elapsed.as_secs_f64();
    let mut report = Report::new("raw", a, Some(addr.to_string()));
    report.attempted = outcome.sent + outcome.refused;
    report.refused = (outcome.refused > 0).then_some(outcome.refused);
    report.sent = outcome.sent;
    report.delivered = delivered;
    report.elapsed_s = round(secs, 6);
    report.spans_per_sec = round(per_sec(outcome.sent, secs), 1);
    Ok(report.with_usage())
}

/// `--encode-only`: a producer's loop without the client, on one thread: each span is
/// made as the producers make it (built from the template, or with `--reuse` the same
/// span with fresh IDs and timestamps) and encoded as the client encodes it when
/// recording (one pass into a reused buffer, then the frame header). The most spans one
/// thread could ever hand to a socket.
async fn encode_only(a: &BenchArgs) -> Result<Report, Failure> {
    let limit = a.duration.is_none().then_some(a.spans);
    let duration = a.duration;
    let source = Source::of(a);
    let template = template();
    let (encoded, secs) = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reused = template.clone();
        let parent = request_span();
        let start = std::time::Instant::now();
        let deadline = duration.map(|d| start + d);
        let mut n: u64 = 0;
        loop {
            if limit.is_some_and(|l| n >= l) {
                break;
            }
            if n % 1024 == 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                break;
            }
            let len = match source {
                Source::Reused => {
                    refresh(&mut reused);
                    encode_frame(std::hint::black_box(&reused), &mut buf)
                }
                Source::Built => {
                    let span = next_span(&template);
                    encode_frame(std::hint::black_box(&span), &mut buf)
                }
                Source::SpanApi { owned } => {
                    let mut span = api_span(&parent, owned);
                    span.set_finish_on_drop(false);
                    span.set_end(std::time::SystemTime::now());
                    encode_frame(std::hint::black_box(&span), &mut buf)
                }
            };
            // The typical span is far below the buffer's size; a failure ends the loop.
            if len == 0 {
                break;
            }
            std::hint::black_box(&buf[..len]);
            n += 1;
        }
        (n, start.elapsed().as_secs_f64())
    })
    .await
    .map_err(|e| Failure::Runtime(format!("the encoding thread failed: {e}")))?;
    let mut report = Report::new("encode", a, None);
    report.attempted = encoded;
    report.sent = encoded;
    report.elapsed_s = round(secs, 6);
    report.spans_per_sec = round(per_sec(encoded, secs), 1);
    Ok(report.with_usage())
}

/// Encodes `span` as one stream frame at the start of `buf`, as the client does when a
/// span is recorded; returns the frame's length (0 if it does not fit).
fn encode_frame<S: ssf_proto::wire::SpanFields>(span: &S, buf: &mut [u8]) -> usize {
    ssf_codec::encode_frame_to_slice(span, buf).unwrap_or(0)
}

/// An address on `transport` where nothing listens: a unix path in a fresh directory,
/// or a loopback port that was just free.
async fn absent(transport: Transport) -> Result<(Address, Option<std::path::PathBuf>), Failure> {
    let io = |e: std::io::Error| Failure::Runtime(format!("cannot find a free address: {e}"));
    match transport {
        Transport::Unix => {
            let dir = sink::socket_dir()?;
            Ok((Address::unix(dir.join("absent.sock")), Some(dir)))
        }
        Transport::Tcp => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io)?;
            Ok((Address::tcp(l.local_addr().map_err(io)?), None))
        }
        #[cfg(feature = "grpc")]
        Transport::Grpc => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io)?;
            Ok((Address::grpc(l.local_addr().map_err(io)?), None))
        }
        Transport::Udp => {
            let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(io)?;
            Ok((Address::udp(s.local_addr().map_err(io)?), None))
        }
    }
}

/// `--idle SECS`: a client offered `--spans` spans while its receiver is absent; the
/// CPU time it uses over the following SECS seconds is reported.
async fn idle_client(a: &BenchArgs, idle: Duration) -> Result<Report, Failure> {
    let (addr, dir) = match (&a.addr, local_transport(a)) {
        (Some(addr), _) => (addr.clone(), None),
        (None, t) => absent(t.unwrap_or(Transport::Udp)).await?,
    };
    let client = build_client(a, addr.clone())?;
    let template = template();
    let start = Instant::now();
    let mut attempted = 0;
    for i in 0..a.spans {
        attempted += 1;
        if let Err(TryRecordError::Closed(_)) = client.try_record(next_span(&template)) {
            break;
        }
        if i % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
    }
    let ticker = Ticker::start();
    let cpu_before = usage::cpu_seconds();
    tokio::time::sleep(idle).await;
    let cpu_after = usage::cpu_seconds();
    let max_tick_late = ticker.stop();
    let shutdown = client.shutdown(IDLE_SHUTDOWN_DEADLINE).await;
    let elapsed = start.elapsed();
    if let Some(d) = &dir {
        let _ = std::fs::remove_dir_all(d);
    }

    let stats = shutdown.stats();
    let mut report = Report::new("idle", a, Some(addr.to_string()));
    report.attempted = attempted;
    report.accepted = Some(stats.accepted());
    report.refused = Some(stats.refused());
    report.sent = stats.sent();
    report.dropped = Some(Dropped::from(stats.dropped()));
    report.timed_out = Some(shutdown.timed_out());
    report.elapsed_s = round(elapsed.as_secs_f64(), 6);
    report.spans_per_sec = round(per_sec(stats.sent(), elapsed.as_secs_f64()), 1);
    report.idle_s = Some(round(idle.as_secs_f64(), 6));
    report.max_tick_late_ms = Some(round(max_tick_late.as_secs_f64() * 1e3, 3));
    report.idle_cpu_s = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| round((a - b).max(0.0), 6));
    Ok(report.with_usage())
}

/// A typical span: name, service, 5 tags, a counter and a timing sample; the span the
/// client's benchmarks send. IDs and timestamps are filled in per span.
fn template() -> SsfSpan {
    SsfSpan {
        trace_id: 0,
        id: 0,
        start_timestamp: 0,
        end_timestamp: 0,
        ..trace_client::testing::typical_span(0)
    }
}

/// The typical span with fixed, full-size IDs and timestamps: what `--raw` writes and
/// `--encode-only` encodes (276 bytes).
fn reference_span() -> SsfSpan {
    SsfSpan {
        trace_id: 4_611_686_018_427_387_903,
        id: 2_305_843_009_213_693_951,
        parent_id: 1_152_921_504_606_846_975,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_250_000_000,
        ..template()
    }
}

fn next_span(template: &SsfSpan) -> SsfSpan {
    let mut span = template.clone();
    refresh(&mut span);
    span
}

/// Gives `span` a fresh ID and timestamps, as a new span would have.
fn refresh(span: &mut SsfSpan) {
    let id = trace_client::new_id();
    let end = ssf_proto::time::now_nanos();
    span.trace_id = id;
    span.id = id;
    span.start_timestamp = end.saturating_sub(1_250_000);
    span.end_timestamp = end;
}

/// Claims the next span indexes: `(first, end)`, or `None` when there are none left.
fn claim(load: &Load) -> Option<(u64, u64)> {
    let t = &load.tally;
    // Paced spans have their own due times: claim them one by one.
    let n = if load.interval.is_some() { 1 } else { CLAIM };
    let first = t.claimed.fetch_add(n, Ordering::Relaxed);
    let end = match load.limit {
        Some(limit) => first.saturating_add(n).min(limit),
        None => first.saturating_add(n),
    };
    (first < end).then_some((first, end))
}

async fn produce(load: Arc<Load>) {
    let t = &load.tally;
    let mut recorded: u64 = 0;
    // With --reuse: the one span this producer records over and over.
    let mut reused = (load.source == Source::Reused).then(|| load.template.clone());
    let parent = request_span();
    while let Some((first, end)) = claim(&load) {
        for i in first..end {
            if let Some(interval) = load.interval {
                // A span due beyond the clock's range, or after the deadline, is never
                // sent.
                let due = Duration::try_from_secs_f64(i as f64 * interval)
                    .ok()
                    .and_then(|d| load.start.checked_add(d));
                let Some(due) = due.filter(|&due| load.deadline.is_none_or(|d| due < d)) else {
                    return;
                };
                if due > Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
            }
            if load.deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            t.attempted.fetch_add(1, Ordering::Relaxed);
            let offered = match (&mut reused, load.source) {
                (Some(span), _) => {
                    refresh(span);
                    offer_ref(&load, span).await
                }
                (None, Source::SpanApi { owned }) => {
                    match offer_api(&load, api_span(&parent, owned)) {
                        Ok(offered) => offered,
                        Err(refused) => {
                            t.retried.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            offer(&load, refused).await
                        }
                    }
                }
                (None, _) => offer(&load, next_span(&load.template)).await,
            };
            if !offered {
                return;
            }
            recorded += 1;
            if recorded % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Records one span; false once the client is closed. The client counts acceptances and
/// refusals itself.
///
/// Waiting for room is `try_record` and, on a full queue, a yield to the runtime (where
/// the backends make room) before trying again; a queue that stays full through
/// [`MAX_YIELDS`] yields is waited for with [`Client::record`], so a slow or stalled
/// client does not make the producers spin.
async fn offer(load: &Load, mut span: SsfSpan) -> bool {
    let mut yields = 0;
    loop {
        match load.client.try_record(span) {
            Ok(()) => return true,
            // A queue that stays full: wait without spinning.
            Err(TryRecordError::Full(s)) if load.wait && yields >= MAX_YIELDS => {
                load.tally.retried.fetch_add(1, Ordering::Relaxed);
                return load.client.record(s).await.is_ok();
            }
            Err(TryRecordError::Full(s)) if load.wait => {
                span = s;
                yields += 1;
                load.tally.retried.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            Err(TryRecordError::Full(_)) => {
                // Let the backends (maybe on this thread) make room.
                tokio::task::yield_now().await;
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// [`offer`] for `--span-api`: the span is finished on the client (encoded straight
/// from the span); a refused span comes back in its SSF form, which [`offer`] retries.
/// Not async itself, so that the span is finished where it was built (as in a request
/// handler), not first moved into a future.
#[inline]
// The refused span is handed back by value, as `TryRecordError` does.
#[allow(clippy::result_large_err)]
fn offer_api(load: &Load, span: Span) -> Result<bool, SsfSpan> {
    match span.finish_with(&load.client) {
        Ok(()) => Ok(true),
        Err(TryRecordError::Full(ssf)) if load.wait => Err(ssf),
        Err(TryRecordError::Full(_)) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// [`offer`] for `--reuse`: the span is encoded and stays with the producer.
async fn offer_ref(load: &Load, span: &SsfSpan) -> bool {
    let mut yields = 0;
    loop {
        match load.client.try_record_ref(span) {
            Ok(()) => return true,
            Err(TryRecordError::Full(())) if load.wait && yields >= MAX_YIELDS => {
                load.tally.retried.fetch_add(1, Ordering::Relaxed);
                return load.client.record_ref(span).await.is_ok();
            }
            Err(TryRecordError::Full(())) if load.wait => {
                yields += 1;
                load.tally.retried.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            Err(TryRecordError::Full(())) => {
                tokio::task::yield_now().await;
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// Rewrites one status line on the terminal twice a second.
async fn progress(load: Arc<Load>) {
    let mut err = tokio::io::stderr();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.tick().await;
    loop {
        tick.tick().await;
        let stats = load.client.stats();
        let secs = load.start.elapsed().as_secs_f64();
        let line = format!(
            "\r\x1b[K{} attempted, {} sent, {} refused, {} dropped, {:.0} spans/s",
            load.tally.attempted.load(Ordering::Relaxed),
            stats.sent(),
            stats.refused(),
            stats.dropped_total(),
            per_sec(stats.sent(), secs),
        );
        let _ = err.write_all(line.as_bytes()).await;
        let _ = err.flush().await;
    }
}

/// A task ticking every [`TICK`], recording how late it woke up at worst: whether the
/// runtime stays responsive while the client works.
struct Ticker {
    max_late_us: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The period of [`Ticker`].
const TICK: Duration = Duration::from_millis(10);

impl Ticker {
    fn start() -> Ticker {
        let max_late_us = Arc::new(AtomicU64::new(0));
        let max = Arc::clone(&max_late_us);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let due = tick.tick().await;
                let late = Instant::now().saturating_duration_since(due);
                let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
                max.fetch_max(us, Ordering::Relaxed);
            }
        });
        Ticker { max_late_us, task }
    }

    /// Stops the ticker and returns the worst lateness.
    fn stop(self) -> Duration {
        self.task.abort();
        Duration::from_micros(self.max_late_us.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("max_late_us", &self.max_late_us.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Stops the progress line and clears it.
async fn end_progress(progress: Option<tokio::task::JoinHandle<()>>) {
    if let Some(p) = progress {
        p.abort();
        let mut err = tokio::io::stderr();
        let _ = err.write_all(b"\r\x1b[K").await;
        let _ = err.flush().await;
    }
}

/// What `ssf bench` reports, in the order printed by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// `client`, `raw`, `encode` or `idle`.
    mode: &'static str,
    /// Where spans went; absent with `--encode-only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    /// The in-process receiver's transport; absent with `--addr` and `--encode-only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    /// `receiver` (decodes every span) or `count-only`; absent without an in-process
    /// receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    sink: Option<&'static str>,
    producers: usize,
    buffered: bool,
    /// Producers recorded one span over and over (`--reuse`) instead of building each.
    reuse: bool,
    /// How each span was made: `built` (a clone of the template), `reused`, `span_api`
    /// or `span_api_owned` (through the Span API, static or owned tag values).
    spans: &'static str,
    /// Where the client encoded spans: `record` (the producers) or `backend`.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoded_in: Option<&'static str>,
    attempted: u64,
    /// Client counters; absent where no client ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<u64>,
    /// Spans refused for good (`--no-wait`: the queue was full; otherwise: the client
    /// closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<u64>,
    /// Times a producer found the queue full and tried the same span again.
    #[serde(skip_serializing_if = "Option::is_none")]
    full_retries: Option<u64>,
    sent: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<Dropped>,
    /// Spans the in-process receiver got; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timed_out: Option<bool>,
    elapsed_s: f64,
    spans_per_sec: f64,
    /// `--idle`: the idle period and the CPU time used in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_cpu_s: Option<f64>,
    /// How late, at worst, a task ticking every 10 ms woke up while the client ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tick_late_ms: Option<f64>,
    cpu_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
}

/// Dropped spans by reason.
#[derive(Debug, Serialize)]
struct Dropped {
    closed: u64,
    write_error: u64,
    write_timeout: u64,
    connect_timeout: u64,
    oversize: u64,
    panicked: u64,
    grpc_status: u64,
    /// Every reason, these and any the client adds.
    total: u64,
}

impl From<DropCounts> for Dropped {
    fn from(d: DropCounts) -> Self {
        Dropped {
            closed: d.closed(),
            write_error: d.write_error(),
            write_timeout: d.get(DropReason::WriteTimeout),
            connect_timeout: d.connect_timeout(),
            oversize: d.oversize(),
            panicked: d.panicked(),
            grpc_status: d.grpc_status(),
            total: d.total(),
        }
    }
}

impl Report {
    fn new(mode: &'static str, a: &BenchArgs, address: Option<String>) -> Report {
        let local = address.is_some() && a.idle.is_none();
        let transport = local.then(|| local_transport(a)).flatten();
        Report {
            mode,
            address,
            transport: transport.map(Transport::as_str),
            sink: transport.map(|_| {
                if a.count_only {
                    "count-only"
                } else {
                    "receiver"
                }
            }),
            producers: a.producers,
            buffered: a.buffered,
            reuse: a.reuse,
            spans: Source::of(a).name(),
            encoded_in: (mode == "client" || mode == "idle").then_some(if a.encode_in_backend {
                "backend"
            } else {
                "record"
            }),
            attempted: 0,
            accepted: None,
            refused: None,
            full_retries: None,
            sent: 0,
            dropped: None,
            delivered: None,
            timed_out: None,
            elapsed_s: 0.0,
            spans_per_sec: 0.0,
            idle_s: None,
            idle_cpu_s: None,
            max_tick_late_ms: None,
            cpu_s: None,
            peak_rss_bytes: None,
        }
    }

    fn with_usage(mut self) -> Report {
        self.cpu_s = usage::cpu_seconds().map(|c| round(c, 6));
        self.peak_rss_bytes = usage::peak_rss_bytes();
        self
    }

    fn human(&self) -> String {
        let mut text = match (self.mode, &self.address) {
            ("encode", _) | (_, None) => format!(
                "encoded {} spans in {:.3}s: {:.0} spans/s\n",
                self.sent, self.elapsed_s, self.spans_per_sec
            ),
            (mode, Some(addr)) => format!(
                "{}sent {} spans to {addr} in {:.3}s: {:.0} spans/s\n",
                if mode == "raw" { "raw: " } else { "" },
                self.sent,
                self.elapsed_s,
                self.spans_per_sec,
            ),
        };
        if let (Some(accepted), Some(refused), Some(d)) =
            (self.accepted, self.refused, &self.dropped)
        {
            let _ = writeln!(
                text,
                "attempted {}, accepted {accepted}, refused {refused}, dropped {} \
                 (closed {}, write_error {}, write_timeout {}, connect_timeout {}, oversize {}, \
                 panicked {}, grpc_status {})",
                self.attempted,
                d.total,
                d.closed,
                d.write_error,
                d.write_timeout,
                d.connect_timeout,
                d.oversize,
                d.panicked,
                d.grpc_status,
            );
            if let Some(n) = self.full_retries.filter(|&n| n > 0) {
                let _ = writeln!(
                    text,
                    "the queue was full {n} times; those spans were offered again"
                );
            }
        } else if let Some(refused) = self.refused {
            let _ = writeln!(text, "{refused} datagrams refused by the kernel");
        }
        if let Some(n) = self.delivered {
            let _ = writeln!(text, "delivered {n} to the in-process receiver");
        }
        if self.timed_out == Some(true) {
            text.push_str("the client's shutdown timed out\n");
        }
        if let (Some(s), Some(c)) = (self.idle_s, self.idle_cpu_s) {
            let _ = writeln!(text, "idle for {s:.1}s using {c:.3}s of cpu");
        }
        if let Some(ms) = self.max_tick_late_ms {
            let _ = writeln!(text, "a 10 ms ticker ran at most {ms:.1} ms late");
        }
        let cpu = self.cpu_s.map_or("?".to_owned(), |c| format!("{c:.3}s"));
        let rss = self.peak_rss_bytes.map_or("?".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
        });
        let _ = writeln!(text, "cpu {cpu}, peak rss {rss}");
        text
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_typical_and_fresh() {
        let t = template();
        assert_eq!(t.tags.len(), 5);
        assert_eq!(t.metrics.len(), 2);
        let a = next_span(&t);
        let b = next_span(&t);
        assert!(ssf_proto::is_valid_trace(&a));
        assert_ne!(a.id, b.id);
        assert_eq!(a.end_timestamp - a.start_timestamp, 1_250_000);
        let len = ssf_proto::wire::encoded_len(&reference_span());
        assert!((230..=280).contains(&len), "{len} bytes");
    }

    #[test]
    fn rounding_and_rates() {
        assert_eq!(round(1.234_567_89, 3), 1.235);
        assert_eq!(per_sec(10, 2.0), 5.0);
        assert_eq!(per_sec(10, 0.0), 0.0);
    }
}
