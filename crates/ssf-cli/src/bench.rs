//! `ssf bench`: an end-to-end load generator. Producer tasks record typical spans through
//! a [`Client`]; the report says how many were attempted, accepted, refused, sent,
//! dropped (by reason) and, with an in-process receiver, delivered, with the throughput
//! and the process's CPU time and peak memory.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use ssf_codec::addr::Address;
use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use ssf_receiver::Receiver;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use trace_client::{Client, DropCounts, TryRecordError};

use crate::emit::chain;
use crate::{Failure, args, usage};

/// The most producer tasks `--producers` accepts.
const MAX_PRODUCERS: usize = 4096;

/// The most backends (connections) `--backends` accepts.
const MAX_BACKENDS: usize = 1024;

/// The in-process receiver's span channel: room for bursts without holding so many
/// spans that the receiver dominates the memory figure.
const RECEIVER_CAPACITY: usize = 4096;

/// How long the client may take to send what is queued when production ends.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// How long an in-process receiver may stay idle before the spans it has not received
/// are taken as lost (UDP may lose datagrams).
const DELIVERY_IDLE: Duration = Duration::from_millis(500);

/// Options of `ssf bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each span is typical of a service: a name, a service, 5 tags, a counter and a timing \
sample, fresh IDs and timestamps. Without --addr, a receiver is started in this process \
(--in-process, UDP by default) and the spans it receives are counted as delivered. \
spans_per_sec is sent spans divided by the time from the first span to the end of the \
client's shutdown (everything written).")]
pub(crate) struct BenchArgs {
    /// Send to this address (veneur, `ssf tail`, ...) instead of an in-process receiver.
    #[arg(long, value_name = "URL", value_parser = args::address, conflicts_with = "in_process")]
    addr: Option<Address>,
    /// Start a receiver in this process on this transport [default: udp].
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    in_process: Option<Transport>,
    /// How many spans to send (ignored with --duration).
    #[arg(long, value_name = "N", default_value = "100000", value_parser = args::positive)]
    spans: u64,
    /// Pace the stream at this many spans per second in all (default: as fast as possible).
    #[arg(long, value_name = "SPANS_PER_SEC", value_parser = args::rate)]
    rate: Option<f64>,
    /// Send for this many seconds instead of a number of spans.
    #[arg(long, value_name = "SECS", value_parser = args::seconds)]
    duration: Option<Duration>,
    /// How many producer tasks record spans at once.
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
    /// Use try_record and count refusals instead of waiting for room in the queue.
    #[arg(long)]
    no_wait: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Where an in-process receiver listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// UDP on 127.0.0.1, a free port.
    Udp,
    /// A unix stream socket in a fresh temporary directory.
    Unix,
    /// TCP on 127.0.0.1, a free port.
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
        }
    }
}

/// Counters shared by the producers.
#[derive(Debug, Default)]
struct Tally {
    /// Span indexes claimed (= attempted).
    claimed: AtomicU64,
    attempted: AtomicU64,
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
    let local_transport = a
        .addr
        .is_none()
        .then(|| a.in_process.unwrap_or(Transport::Udp).as_str());
    let mut local = match (&a.addr, a.in_process) {
        (Some(_), _) => None,
        (None, t) => Some(Local::start(t.unwrap_or(Transport::Udp)).await?),
    };
    let addr = match (&a.addr, &local) {
        (Some(addr), _) => addr.clone(),
        (None, Some(l)) => l.addr.clone(),
        (None, None) => return Err(Failure::Runtime("no address to send to".to_owned())),
    };

    let mut builder = Client::from_address(addr.clone()).buffered(a.buffered);
    if let Some(n) = a.capacity {
        builder = builder.capacity(n);
    }
    if let Some(n) = a.backends {
        builder = builder.parallel_backends(n);
    }
    let client = builder
        .build()
        .map_err(|e| Failure::Usage(format!("cannot build the client: {}", chain(&e))))?;

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
    });
    let mut producers = JoinSet::new();
    for _ in 0..a.producers {
        producers.spawn(produce(Arc::clone(&load)));
    }
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(Arc::clone(&load))));
    while producers.join_next().await.is_some() {}
    let report = client.shutdown(SHUTDOWN_DEADLINE).await;
    let elapsed = start.elapsed();
    let delivered = match local.take() {
        Some(l) => Some(l.finish(report.sent()).await),
        None => None,
    };
    if let Some(p) = progress {
        p.abort();
        let mut err = tokio::io::stderr();
        let _ = err.write_all(b"\r\x1b[K").await;
        let _ = err.flush().await;
    }

    let stats = report.stats();
    let t = &load.tally;
    let attempted = t.attempted.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let report = Report {
        address: addr.to_string(),
        transport: local_transport,
        attempted,
        accepted: stats.accepted(),
        refused: stats.refused(),
        sent: stats.sent(),
        dropped: Dropped::from(stats.dropped()),
        delivered,
        timed_out: report.timed_out(),
        elapsed_s: round(secs, 6),
        spans_per_sec: round(per_sec(stats.sent(), secs), 1),
        cpu_s: usage::cpu_seconds().map(|c| round(c, 6)),
        peak_rss_bytes: usage::peak_rss_bytes(),
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

/// A typical span: name, service, 5 tags, a counter and a timing sample.
fn template() -> SsfSpan {
    let tags = sample::tags([
        ("env", "bench"),
        ("region", "local"),
        ("route", "/checkout"),
        ("method", "POST"),
        ("status", "200"),
    ]);
    SsfSpan {
        name: "bench.request".into(),
        service: "ssf-bench".into(),
        tags: tags.clone(),
        metrics: vec![
            sample::count("bench.requests", 1.0).with_tags(tags.clone()),
            sample::timing(
                "bench.latency",
                Duration::from_micros(1250),
                Duration::from_millis(1),
            )
            .with_tags(tags),
        ],
        ..Default::default()
    }
}

fn next_span(template: &SsfSpan) -> SsfSpan {
    let mut span = template.clone();
    let id = trace_client::new_id();
    let end = ssf_proto::time::now_nanos();
    span.trace_id = id;
    span.id = id;
    span.start_timestamp = end.saturating_sub(1_250_000);
    span.end_timestamp = end;
    span
}

async fn produce(load: Arc<Load>) {
    let t = &load.tally;
    loop {
        let i = t.claimed.fetch_add(1, Ordering::Relaxed);
        if load.limit.is_some_and(|n| i >= n) {
            break;
        }
        if let Some(interval) = load.interval {
            // A span due beyond the clock's range, or after the deadline, is never sent.
            let due = Duration::try_from_secs_f64(i as f64 * interval)
                .ok()
                .and_then(|d| load.start.checked_add(d));
            let Some(due) = due.filter(|&due| load.deadline.is_none_or(|d| due < d)) else {
                break;
            };
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        if load.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let span = next_span(&load.template);
        t.attempted.fetch_add(1, Ordering::Relaxed);
        // The client counts acceptances and refusals itself.
        if load.wait {
            if load.client.record(span).await.is_err() {
                break;
            }
        } else {
            match load.client.try_record(span) {
                Ok(()) => {}
                // Let the backends (maybe on this thread) make room.
                Err(TryRecordError::Full(_)) => tokio::task::yield_now().await,
                Err(_) => break,
            }
        }
        if i % 256 == 255 {
            tokio::task::yield_now().await;
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

/// An in-process receiver and the task counting what it receives.
struct Local {
    addr: Address,
    handle: ssf_receiver::ReceiverHandle,
    delivered: Arc<AtomicU64>,
    counter: tokio::task::JoinHandle<()>,
    dir: Option<std::path::PathBuf>,
}

impl Local {
    async fn start(transport: Transport) -> Result<Local, Failure> {
        let mut dir = None;
        let url = match transport {
            Transport::Udp => "udp://127.0.0.1:0".to_owned(),
            Transport::Tcp => "tcp://127.0.0.1:0".to_owned(),
            Transport::Unix => {
                let d = std::env::temp_dir().join(format!(
                    "ssf-bench-{}-{:x}",
                    std::process::id(),
                    trace_client::new_id()
                ));
                std::fs::create_dir(&d)
                    .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", d.display())))?;
                let url = format!("unix://{}", d.join("ssf.sock").display());
                dir = Some(d);
                url
            }
        };
        let bound = async {
            Receiver::builder()
                .listen(&url)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
                .capacity(RECEIVER_CAPACITY)
                .bind()
                .await
        };
        let mut receiver = match bound.await {
            Ok(r) => r,
            Err(e) => {
                if let Some(d) = &dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(Failure::Runtime(format!("cannot listen on {url}: {e}")));
            }
        };
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
            handle,
            delivered,
            counter,
            dir,
        })
    }

    /// Waits until `sent` spans arrived or none arrived for a while, stops the receiver
    /// and returns how many arrived.
    async fn finish(self, sent: u64) -> u64 {
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
        self.handle.shutdown();
        let _ = self.counter.await;
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        self.delivered.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What `ssf bench` reports, in the order printed by `--json`.
#[derive(Debug, Serialize)]
struct Report {
    address: String,
    /// The in-process receiver's transport; absent with `--addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    attempted: u64,
    accepted: u64,
    refused: u64,
    sent: u64,
    dropped: Dropped,
    /// Spans the in-process receiver got; absent with `--addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered: Option<u64>,
    timed_out: bool,
    elapsed_s: f64,
    spans_per_sec: f64,
    cpu_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
}

/// Dropped spans by reason.
#[derive(Debug, Serialize)]
struct Dropped {
    closed: u64,
    write_error: u64,
    connect_timeout: u64,
    oversize: u64,
    panicked: u64,
}

impl From<DropCounts> for Dropped {
    fn from(d: DropCounts) -> Self {
        Dropped {
            closed: d.closed(),
            write_error: d.write_error(),
            connect_timeout: d.connect_timeout(),
            oversize: d.oversize(),
            panicked: d.panicked(),
        }
    }
}

impl Dropped {
    fn total(&self) -> u64 {
        self.closed + self.write_error + self.connect_timeout + self.oversize + self.panicked
    }
}

impl Report {
    fn human(&self) -> String {
        let d = &self.dropped;
        let mut text = format!(
            "sent {} spans to {} in {:.3}s: {:.0} spans/s\n\
             attempted {}, accepted {}, refused {}, dropped {} \
             (closed {}, write_error {}, connect_timeout {}, oversize {}, panicked {})\n",
            self.sent,
            self.address,
            self.elapsed_s,
            self.spans_per_sec,
            self.attempted,
            self.accepted,
            self.refused,
            d.total(),
            d.closed,
            d.write_error,
            d.connect_timeout,
            d.oversize,
            d.panicked,
        );
        if let Some(n) = self.delivered {
            let _ = writeln!(text, "delivered {n} to the in-process receiver");
        }
        if self.timed_out {
            text.push_str("the client's shutdown timed out\n");
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
    }

    #[test]
    fn rounding_and_rates() {
        assert_eq!(round(1.234_567_89, 3), 1.235);
        assert_eq!(per_sec(10, 2.0), 5.0);
        assert_eq!(per_sec(10, 0.0), 0.0);
    }
}
