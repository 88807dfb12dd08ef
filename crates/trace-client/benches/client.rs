//! Benchmarks of the client core's hot paths:
//!
//! * `try_record/*`: the producer's cost with 1 and 2 producer threads while a backend
//!   drains the queue on a runtime thread (a user backend: the span itself is queued);
//!   refusals (queue full) and a bare tokio channel for comparison. After the timed runs,
//!   a sampler prints the median and 99th percentile of single calls (every 16th call
//!   timed on its own).
//! * `try_record_network/*`: the same for a network client, which encodes each span into
//!   its queue slot when it is recorded: a flat span (no heap parts) and a typical one,
//!   recorded by value (`try_record`, the span dropped in the call) and by reference
//!   (`try_record_ref`).
//! * `encode/*`: encoding spans as recording does (one pass into a slot), framing them
//!   into one buffer as a backend that encodes does, and with `ssf-codec`'s encoder.
//! * `end_to_end/*`: record 10 000 spans, flush, and wait until a sink on its own thread
//!   has them all: unix and TCP streams to a sink that only walks the 5-byte frame
//!   headers, UDP to a socket nobody reads (measured up to the flush: every datagram
//!   handed to the kernel), and beside it the `sendmmsg` ceiling: the same datagrams,
//!   encoded beforehand, sent 64 per system call.
//!
//! `cargo bench -p trace-client --bench client` (add a filter such as `end_to_end` to run
//! a part; `SSF_BENCH_RUNTIME_THREADS=2` gives the end-to-end runs a runtime of two
//! threads instead of one). The machine's other load shows in every number: compare
//! runs made together.
#![allow(missing_docs, clippy::result_large_err)]

use std::hint::black_box;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ssf_codec::Address;
use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use tokio::runtime::Runtime;
use trace_client::{Backend, Client};

/// A typical small span: a name, a service, one metric with a tag (about 90 bytes).
fn span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 1,
        id,
        parent_id: 1,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_000_100_000,
        service: "bench".into(),
        name: "op".into(),
        metrics: vec![sample::count("hits", 1.0).with_tag("k", "v")],
        ..Default::default()
    }
}

/// A span that owns no heap memory: cloning and dropping it cost nothing, so the
/// `try_record` numbers are the client's alone and the draining backend keeps up.
fn flat_span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 1,
        id,
        parent_id: 1,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_000_100_000,
        ..Default::default()
    }
}

/// The typical span of `ssf bench`, with a full-size parent ID (about 280 bytes encoded,
/// in a queue slot when recorded).
fn typical_span(id: i64) -> SsfSpan {
    SsfSpan {
        parent_id: 1_152_921_504_606_846_975,
        ..trace_client::testing::typical_span(id)
    }
}

/// Throws spans away: the worker costs as little as possible.
struct Discard;

impl Backend for Discard {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        black_box(span);
        Ok(())
    }
}

/// Never returns: keeps the queue of its client full.
struct Stuck;

impl Backend for Stuck {
    async fn send(&mut self, _: &SsfSpan) -> io::Result<()> {
        std::future::pending().await
    }
}

fn runtime(threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `per_thread` calls of `op` on each of `threads` threads at once, each on a span
/// cloned from `template` beforehand (outside the timing, 1024 at a time); returns the
/// mean time one thread spent in `op`.
fn on_threads(
    threads: usize,
    per_thread: u64,
    template: &SsfSpan,
    op: &(dyn Fn(SsfSpan) + Sync),
) -> Duration {
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut timed = Duration::ZERO;
                    let mut left = per_thread;
                    while left > 0 {
                        let n = left.min(1024);
                        left -= n;
                        let spans: Vec<SsfSpan> = (0..n).map(|_| template.clone()).collect();
                        let start = Instant::now();
                        for s in spans {
                            op(s);
                        }
                        timed += start.elapsed();
                    }
                    timed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total / threads as u32
}

/// Calls per thread of a latency sample.
const SAMPLED_CALLS: usize = 196 * 1024;

/// The `i`-th call of a latency-sampling thread: after a sleep of `pace` every 64 calls,
/// and timed on its own (into `samples`) every 16th.
fn sampled_call(
    i: usize,
    pace: Duration,
    samples: &mut Vec<u64>,
    call: impl FnOnce() -> bool,
) -> bool {
    if !pace.is_zero() && i % 64 == 0 {
        std::thread::sleep(pace);
    }
    if i % 16 != 0 {
        return call();
    }
    let t = Instant::now();
    let ok = call();
    samples.push(t.elapsed().as_nanos() as u64);
    ok
}

/// Runs `sample` on `threads` threads at once (each returns its timed calls and how
/// many of its [`SAMPLED_CALLS`] calls were accepted), then prints the median and tail
/// of the single calls.
fn report_latency(
    label: &str,
    threads: usize,
    pace: Duration,
    sample: &(dyn Fn() -> (Vec<u64>, u64) + Sync),
) {
    let (mut samples, accepted) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(sample)).collect();
        let mut all = Vec::new();
        let mut accepted = 0;
        for h in handles {
            let (v, a) = h.join().expect("thread");
            all.extend(v);
            accepted += a;
        }
        (all, accepted)
    });
    samples.sort_unstable();
    let clock = {
        let t = Instant::now();
        for _ in 0..1000 {
            black_box(Instant::now());
        }
        t.elapsed().as_nanos() / 1000
    };
    let paced = if pace.is_zero() {
        "unpaced".to_owned()
    } else {
        format!("bursts of 64, {pace:?} sleeps between")
    };
    eprintln!(
        "{label} ({paced}): single call median {} ns, p99 {} ns, p99.9 {} ns (a clock \
         read, ~{clock} ns, included); {:.1}% accepted",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples[samples.len() * 999 / 1000],
        100.0 * accepted as f64 / (SAMPLED_CALLS * threads) as f64,
    );
}

/// Median and 99th percentile of single calls (every 16th call of about 200 000 per thread,
/// timed on its own, so the clock's cost is in each sample; spans cloned beforehand).
/// `pace`: a sleep after every 64 calls, so that the consumer gets a core and keeps up
/// (the queue stays drained), as in application threads that do other work between
/// spans. Without it, two producer threads spinning on a two-core machine leave the
/// consumer little CPU, and most calls are refused.
fn sample_latency(
    label: &str,
    threads: usize,
    pace: Duration,
    template: &SsfSpan,
    op: &(dyn Fn(SsfSpan) -> bool + Sync),
) {
    report_latency(label, threads, pace, &|| {
        let mut v = Vec::with_capacity(SAMPLED_CALLS / 16 + 1);
        let mut accepted = 0u64;
        for chunk in 0..SAMPLED_CALLS / 1024 {
            let spans: Vec<SsfSpan> = (0..1024).map(|_| template.clone()).collect();
            for (i, s) in spans.into_iter().enumerate() {
                accepted += sampled_call(chunk * 1024 + i, pace, &mut v, || op(s)) as u64;
            }
        }
        (v, accepted)
    });
}

/// [`sample_latency`] for recording by reference: each thread records its own copy of
/// `template` over and over (nothing is cloned or dropped per call).
fn sample_latency_ref(
    label: &str,
    threads: usize,
    pace: Duration,
    template: &SsfSpan,
    op: &(dyn Fn(&SsfSpan) -> bool + Sync),
) {
    report_latency(label, threads, pace, &|| {
        let span = template.clone();
        let mut v = Vec::with_capacity(SAMPLED_CALLS / 16 + 1);
        let mut accepted = 0u64;
        for i in 0..SAMPLED_CALLS {
            accepted += sampled_call(i, pace, &mut v, || op(&span)) as u64;
        }
        (v, accepted)
    });
}

/// Runs `per_thread` calls of `op` on each of `threads` threads at once, each thread on
/// its own copy of `template`; returns the mean time one thread spent.
fn on_threads_ref(
    threads: usize,
    per_thread: u64,
    template: &SsfSpan,
    op: &(dyn Fn(&SsfSpan) + Sync),
) -> Duration {
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let span = template.clone();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        op(&span);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total / threads as u32
}

/// `try_record` and `try_record_ref` of a network client, which encodes each span into
/// its queue slot: a unix stream client whose backend writes to a sink that only walks
/// frame headers (on threads of its own), so the queue keeps draining.
fn try_record_network(c: &mut Criterion) {
    let rt = runtime(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("try_record_network");
    for (kind, template) in [("flat", flat_span(1)), ("typical", typical_span(1))] {
        for threads in [1, 2] {
            let path = dir.path().join(format!("{kind}-{threads}.sock"));
            let (addr, _counter) = frame_sink(&format!("unix://{}", path.display()));
            let client = rt.block_on(async {
                Client::from_address(addr)
                    .capacity(1 << 14)
                    .buffered(true)
                    .build()
                    .expect("client")
            });
            // Spans cloned beforehand (outside the timing) and dropped by the call.
            let record = |s: SsfSpan| {
                let _ = black_box(client.try_record(s));
            };
            group.bench_function(format!("{kind}_owned_{threads}_thread"), |b| {
                b.iter_custom(|iters| on_threads(threads, iters, &template, &record))
            });
            let record_ref = |s: &SsfSpan| {
                let _ = black_box(client.try_record_ref(s));
            };
            group.bench_function(format!("{kind}_ref_{threads}_thread"), |b| {
                b.iter_custom(|iters| on_threads_ref(threads, iters, &template, &record_ref))
            });
            for pace in [Duration::ZERO, Duration::from_micros(50)] {
                sample_latency_ref(
                    &format!("try_record_network/{kind}_ref_{threads}_thread"),
                    threads,
                    pace,
                    &template,
                    &|s| client.try_record_ref(s).is_ok(),
                );
            }
            sample_latency(
                &format!("try_record_network/{kind}_owned_{threads}_thread"),
                threads,
                Duration::from_micros(50),
                &template,
                &|s| client.try_record(s).is_ok(),
            );
            let stats = client.stats();
            eprintln!(
                "try_record_network/{kind}/{threads}: {} accepted, {} refused (queue full)",
                stats.accepted(),
                stats.refused()
            );
            rt.block_on(client.shutdown(Duration::from_secs(10)));

            // The same client with the encoding (and the freeing) left to the backend:
            // recording is the queue alone.
            let path = dir.path().join(format!("{kind}-{threads}-backend.sock"));
            let (addr, _counter) = frame_sink(&format!("unix://{}", path.display()));
            let client = rt.block_on(async {
                Client::from_address(addr)
                    .capacity(1 << 14)
                    .buffered(true)
                    .encode_in_backend(true)
                    .build()
                    .expect("client")
            });
            let record = |s: SsfSpan| {
                let _ = black_box(client.try_record(s));
            };
            group.bench_function(
                format!("{kind}_owned_encoded_in_backend_{threads}_thread"),
                |b| b.iter_custom(|iters| on_threads(threads, iters, &template, &record)),
            );
            sample_latency(
                &format!("try_record_network/{kind}_owned_encoded_in_backend_{threads}_thread"),
                threads,
                Duration::from_micros(50),
                &template,
                &|s| client.try_record(s).is_ok(),
            );
            rt.block_on(client.shutdown(Duration::from_secs(10)));
        }
    }
    // Switched off (`Client::disable`): the span is discarded before it is encoded.
    let path = dir.path().join("disabled.sock");
    let (addr, _counter) = frame_sink(&format!("unix://{}", path.display()));
    let client = rt.block_on(async { Client::from_address(addr).build().expect("client") });
    client.disable();
    let template = typical_span(1);
    group.bench_function("typical_ref_disabled", |b| {
        b.iter(|| black_box(client.try_record_ref(black_box(&template))))
    });
    group.bench_function("typical_owned_disabled", |b| {
        b.iter_batched(
            || template.clone(),
            |s| black_box(client.try_record(s)),
            BatchSize::SmallInput,
        )
    });
    assert_eq!(client.stats().sent(), 0, "a disabled client sent spans");
    rt.block_on(client.shutdown(Duration::from_secs(10)));
    // Left out by the sampler (`Sampler::never`): discarded before it is encoded.
    let path = dir.path().join("unsampled.sock");
    let (addr, _counter) = frame_sink(&format!("unix://{}", path.display()));
    let client = rt.block_on(async {
        Client::from_address(addr)
            .sampler(trace_client::Sampler::never())
            .build()
            .expect("client")
    });
    group.bench_function("typical_ref_unsampled", |b| {
        b.iter(|| black_box(client.try_record_ref(black_box(&template))))
    });
    assert_eq!(client.stats().sent(), 0, "an unsampled trace was sent");
    rt.block_on(client.shutdown(Duration::from_secs(10)));
    group.finish();
}

fn try_record(c: &mut Criterion) {
    let rt = runtime(1);
    let template = flat_span(1);
    let mut group = c.benchmark_group("try_record");

    for threads in [1, 2] {
        // A backend on the runtime's thread drains the queue while the producers record.
        let client = rt.block_on(async {
            Client::with_backend(Discard)
                .capacity(1 << 14)
                .build()
                .expect("client")
        });
        let record = |s: SsfSpan| {
            let _ = black_box(client.try_record(s));
        };
        group.bench_function(format!("{threads}_thread_drained"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, &template, &record))
        });
        let stats = client.stats();
        eprintln!(
            "try_record/{threads}_thread_drained: {} accepted, {} refused (queue full)",
            stats.accepted(),
            stats.refused()
        );
        for pace in [Duration::ZERO, Duration::from_micros(50)] {
            sample_latency(
                &format!("try_record/{threads}_thread_drained"),
                threads,
                pace,
                &template,
                &|s| client.try_record(s).is_ok(),
            );
        }
        rt.block_on(client.shutdown(Duration::from_secs(10)));
    }

    // Refused: the queue is full and stays full.
    let full = rt.block_on(async {
        Client::with_backend(Stuck)
            .capacity(1)
            .build()
            .expect("client")
    });
    while full.try_record(flat_span(0)).is_ok() {
        std::thread::sleep(Duration::from_millis(1));
    }
    group.bench_function("refused_full", |b| {
        b.iter_batched(
            || template.clone(),
            |s| black_box(full.try_record(s)),
            BatchSize::SmallInput,
        )
    });

    // For comparison: a bare tokio channel drained by a task on the runtime's thread.
    for threads in [1, 2] {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SsfSpan>(1 << 14);
        rt.spawn(async move {
            let mut buf = Vec::with_capacity(64);
            while rx.recv_many(&mut buf, 64).await > 0 {
                buf.clear();
            }
        });
        let send = |s: SsfSpan| {
            let _ = black_box(tx.try_send(s));
        };
        group.bench_function(
            format!("baseline_tokio_mpsc_{threads}_thread_drained"),
            |b| b.iter_custom(|iters| on_threads(threads, iters, &template, &send)),
        );
        for pace in [Duration::ZERO, Duration::from_micros(50)] {
            sample_latency(
                &format!("baseline_tokio_mpsc_{threads}_thread_drained"),
                threads,
                pace,
                &template,
                &|s| tx.try_send(s).is_ok(),
            );
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    const N: usize = 1000;
    let spans: Vec<SsfSpan> = (0..N as i64).map(span).collect();
    let codec = ssf_codec::SsfCodec::new();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(N as u64));
    // What recording does with each span of a network client: one pass into a slot.
    group.bench_function("as_recorded_into_a_slot", |b| {
        b.iter(|| {
            let mut n = 0;
            for s in &spans {
                n += trace_client::__bench::encode_as_recorded(black_box(s));
            }
            black_box(n)
        })
    });
    // What a stream backend does with a batch: frames, back to back, in one buffer.
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut frames = Vec::with_capacity(256 * 1024);
    group.bench_function("frames_into_one_buffer", |b| {
        b.iter(|| {
            frames.clear();
            trace_client::__bench::encode_frames(&spans, &mut frames);
            black_box(frames.len())
        })
    });
    // The same with ssf-codec's `encode_frame`.
    group.bench_function("frames_into_one_buffer_codec", |b| {
        b.iter(|| {
            buf.clear();
            for s in &spans {
                codec.encode_frame(s, &mut buf).expect("fits");
            }
            black_box(buf.len())
        })
    });
    let mut bytes = Vec::with_capacity(128 * 1024);
    group.bench_function("datagrams_into_one_buffer_wire", |b| {
        b.iter(|| {
            bytes.clear();
            for s in &spans {
                ssf_proto::wire::encode(s, &mut bytes);
            }
            black_box(bytes.len())
        })
    });
    group.finish();
}

/// Counts spans arriving at a sink.
#[derive(Clone, Default)]
struct Counter {
    count: Arc<AtomicU64>,
    /// The number a waiter waits for (0: nobody waits).
    target: Arc<AtomicU64>,
    reached: Arc<tokio::sync::Notify>,
}

impl Counter {
    fn add(&self, n: u64) {
        let now = self.count.fetch_add(n, Ordering::AcqRel) + n;
        let target = self.target.load(Ordering::Acquire);
        if target != 0 && now >= target {
            self.reached.notify_one();
        }
    }

    /// Waits until `target` spans arrived.
    async fn wait_for(&self, target: u64) {
        self.target.store(target, Ordering::Release);
        while self.count.load(Ordering::Acquire) < target {
            let notified = self.reached.notified();
            if self.count.load(Ordering::Acquire) >= target {
                break;
            }
            // `notify_one` leaves a permit if it comes before this wait.
            notified.await;
        }
        self.target.store(0, Ordering::Release);
    }
}

/// Reads a stream and counts its frames by walking their 5-byte headers; decodes
/// nothing.
fn count_frames(mut s: impl Read, counter: Counter) {
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match s.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        let mut frames = 0;
        while end - start >= 5 {
            let len = u32::from_be_bytes([
                buf[start + 1],
                buf[start + 2],
                buf[start + 3],
                buf[start + 4],
            ]) as usize;
            if end - start < 5 + len {
                if 5 + len > buf.len() {
                    buf.resize(5 + len, 0);
                }
                break;
            }
            start += 5 + len;
            frames += 1;
        }
        if start == end {
            (start, end) = (0, 0);
        }
        counter.add(frames);
    }
}

/// A count-only stream sink on its own threads (one per connection). `listen` is
/// `unix://<path>` or `tcp`.
fn frame_sink(listen: &str) -> (Address, Counter) {
    let counter = Counter::default();
    if let Some(path) = listen.strip_prefix("unix://") {
        let l = std::os::unix::net::UnixListener::bind(path).expect("bind");
        let c = counter.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let c = c.clone();
                std::thread::spawn(move || count_frames(s, c));
            }
        });
        (Address::unix(path), counter)
    } else {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let c = counter.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let c = c.clone();
                std::thread::spawn(move || count_frames(s, c));
            }
        });
        (Address::tcp(addr), counter)
    }
}

/// Records every span, waiting for room only when the queue is full.
async fn record_all(client: &Client, spans: Vec<SsfSpan>) {
    for s in spans {
        if let Err(e) = client.try_record(s) {
            assert!(e.is_full(), "{e}");
            client.record(e.into_span()).await.expect("record");
        }
    }
}

fn end_to_end(c: &mut Criterion) {
    const N: u64 = 10_000;
    // The client's workers run on a runtime of this many threads (the producer is the
    // bench's own thread, the sink has threads of its own).
    let threads = std::env::var("SSF_BENCH_RUNTIME_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = runtime(threads);
    let dir = tempfile::tempdir().expect("tempdir");
    let spans: Vec<SsfSpan> = (0..N as i64).map(span).collect();
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));

    // (name, sink, buffered, backends)
    let cases: [(&str, &str, bool, usize); 11] = [
        ("unix_buffered", "unix", true, 8),
        ("unix_buffered_1_backend", "unix", true, 1),
        ("unix_buffered_2_backends", "unix", true, 2),
        ("tcp_buffered_2_backends", "tcp", true, 2),
        ("unix", "unix", false, 8),
        ("tcp_buffered", "tcp", true, 8),
        ("tcp_buffered_1_backend", "tcp", true, 1),
        ("tcp", "tcp", false, 8),
        ("udp", "udp", false, 8),
        ("udp_1_backend", "udp", false, 1),
        ("udp_2_backends", "udp", false, 2),
    ];
    for (i, (name, sink, buffered, backends)) in cases.into_iter().enumerate() {
        let (addr, counter, _udp_sink) = match sink {
            "unix" => {
                let path = dir.path().join(format!("{i}.sock"));
                let (a, c) = frame_sink(&format!("unix://{}", path.display()));
                (a, Some(c), None)
            }
            "tcp" => {
                let (a, c) = frame_sink("tcp");
                (a, Some(c), None)
            }
            _ => {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                (Address::udp(s.local_addr().expect("addr")), None, Some(s))
            }
        };
        let client = rt.block_on(async {
            Client::from_address(addr)
                .capacity(4096)
                .parallel_backends(backends)
                .buffered(buffered)
                .build()
                .expect("client")
        });
        let mut expected = 0;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || spans.clone(),
                |batch| {
                    expected += N;
                    let target = expected;
                    let (client, counter) = (&client, &counter);
                    async move {
                        record_all(client, batch).await;
                        client.flush().await.expect("flush");
                        if let Some(counter) = counter {
                            counter.wait_for(target).await;
                        }
                    }
                },
                BatchSize::PerIteration,
            )
        });
        let stats = client.stats();
        assert_eq!(stats.dropped_total(), 0, "{name}: {stats:?}");
        rt.block_on(client.shutdown(Duration::from_secs(10)));
    }

    // The UDP ceiling: the same datagrams, encoded beforehand, 64 per `sendmmsg`.
    #[cfg(target_os = "linux")]
    {
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .connect(sink.local_addr().expect("addr"))
            .expect("connect");
        let datagrams: Vec<Vec<u8>> = spans.iter().map(ssf_proto::wire::encode_to_vec).collect();
        group.bench_function("udp_sendmmsg_ceiling", |b| {
            b.iter(|| {
                for chunk in datagrams.chunks(64) {
                    let mut sent = 0;
                    while sent < chunk.len() {
                        sent += sendmmsg(&socket, &chunk[sent..]);
                    }
                }
            })
        });
    }
    group.finish();
}

/// Sends the datagrams (blocking socket) with the client's `sendmmsg` wrapper; returns
/// how many went.
#[cfg(target_os = "linux")]
fn sendmmsg(socket: &std::net::UdpSocket, datagrams: &[Vec<u8>]) -> usize {
    use std::os::fd::AsFd;
    trace_client::__sys::send_batch(socket.as_fd(), datagrams.len(), false, |k| &datagrams[k])
        .expect("sendmmsg")
}

/// Idle cost: clients with 8 backends and nothing to send, each for a second; prints the
/// CPU time the process used meanwhile (it should be about nothing): one connected to a
/// sink, one pointed at nothing (down after a failed connect sequence).
fn idle(_: &mut Criterion) {
    let rt = runtime(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, counter) = frame_sink(&format!(
        "unix://{}",
        dir.path().join("idle.sock").display()
    ));
    let nowhere = Address::unix(dir.path().join("nobody.sock"));
    for (label, addr) in [("connected", addr), ("receiver absent", nowhere)] {
        let client = rt.block_on(async {
            Client::from_address(addr)
                .connect_timeout(Duration::from_millis(100))
                .build()
                .expect("client")
        });
        // Some traffic first, so that every backend has been active.
        for id in 0..64 {
            let _ = client.try_record(span(id));
        }
        let _ = rt.block_on(client.flush());
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_time().saturating_sub(before);
        eprintln!("idle ({label}): {used:?} of CPU time in 1 s, 8 backends");
        rt.block_on(client.shutdown(Duration::from_secs(1)));
    }
    drop(counter);
}

fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields 14 and 15 (utime, stime), after the command name in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

criterion_group!(
    benches,
    try_record,
    try_record_network,
    encode,
    end_to_end,
    idle
);
criterion_main!(benches);
