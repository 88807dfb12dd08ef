//! Benchmarks of the client core: the cost of `try_record`, and end-to-end throughput to
//! an in-process receiver over unix, TCP and UDP sockets.
//!
//! `cargo bench -p trace-client --bench client`
#![allow(missing_docs, clippy::result_large_err)]

use std::hint::black_box;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use ssf_receiver::Receiver;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use trace_client::{Backend, Client};

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

/// Throws spans away: the worker costs as little as possible.
struct Discard;

impl Backend for Discard {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        black_box(span);
        Ok(())
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Sends one span per permit.
struct Gated(Arc<tokio::sync::Semaphore>);

impl Backend for Gated {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        self.0.acquire().await.expect("open").forget();
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

fn try_record(c: &mut Criterion) {
    const CHUNK: u64 = 1 << 10;
    let rt = runtime();
    let template = span(1);
    let mut group = c.benchmark_group("try_record");

    // The producer's own cost: a queue with room and no consumer competing for it. The
    // worker waits at a gate while a chunk is recorded, then drains it untimed.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let client = rt.block_on(async {
        Client::with_backend(Gated(gate.clone()))
            .capacity(CHUNK as usize + 256)
            .build()
            .expect("client")
    });
    group.bench_function("uncontended", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let spans: Vec<SsfSpan> = (0..n).map(|_| template.clone()).collect();
                let start = std::time::Instant::now();
                for s in spans {
                    let _ = black_box(client.try_record(s));
                }
                total += start.elapsed();
                gate.add_permits(n as usize);
                while client.stats().queued() > 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            total
        })
    });
    assert_eq!(client.stats().refused(), 0);

    // With a worker on another thread draining the queue at the same time (cross-core
    // traffic on the channel; refusals when the worker falls behind are counted).
    let client = rt.block_on(async {
        Client::with_backend(Discard)
            .capacity(1 << 16)
            .build()
            .expect("client")
    });
    group.bench_function("with_consumer", |b| {
        b.iter_batched(
            || template.clone(),
            |s| black_box(client.try_record(s)),
            BatchSize::SmallInput,
        )
    });
    let stats = client.stats();
    eprintln!(
        "try_record/with_consumer: {} accepted, {} refused (queue full)",
        stats.accepted(),
        stats.refused()
    );

    // Refused: the queue is full and stays full. The refused span is dropped outside the
    // timing.
    let full = rt.block_on(async {
        Client::with_backend(Stuck)
            .capacity(1)
            .build()
            .expect("client")
    });
    while full.try_record(span(0)).is_ok() {
        std::thread::sleep(Duration::from_millis(1));
    }
    group.bench_function("refused_full", |b| {
        b.iter_batched(
            || template.clone(),
            |s| black_box(full.try_record(s)),
            BatchSize::SmallInput,
        )
    });

    // Baseline: a bare tokio channel of spans, without and with a consumer.
    group.bench_function("baseline_tokio_mpsc_uncontended", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let (tx, rx) = tokio::sync::mpsc::channel::<SsfSpan>(CHUNK as usize);
                let spans: Vec<SsfSpan> = (0..n).map(|_| template.clone()).collect();
                let start = std::time::Instant::now();
                for s in spans {
                    let _ = black_box(tx.try_send(s));
                }
                total += start.elapsed();
                drop(rx);
            }
            total
        })
    });
    // The same gate as `uncontended`: the consumer (on the runtime's thread) drains each
    // chunk after it was timed, so the channel's memory was last touched by another core.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SsfSpan>(CHUNK as usize + 256);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let drained = Arc::new(AtomicU64::new(0));
    {
        let (gate, drained) = (gate.clone(), drained.clone());
        rt.spawn(async move {
            while let Some(s) = rx.recv().await {
                gate.acquire().await.expect("open").forget();
                drop(s);
                drained.fetch_add(1, Ordering::Release);
            }
        });
    }
    group.bench_function("baseline_tokio_mpsc_gated", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let spans: Vec<SsfSpan> = (0..n).map(|_| template.clone()).collect();
                let target = drained.load(Ordering::Acquire) + n;
                let start = std::time::Instant::now();
                for s in spans {
                    let _ = black_box(tx.try_send(s));
                }
                total += start.elapsed();
                gate.add_permits(n as usize);
                while drained.load(Ordering::Acquire) < target {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            total
        })
    });
    drop(tx);

    let (tx, mut rx) = tokio::sync::mpsc::channel::<SsfSpan>(1 << 16);
    rt.spawn(async move {
        let mut buf = Vec::with_capacity(64);
        while rx.recv_many(&mut buf, 64).await > 0 {
            buf.clear();
        }
    });
    group.bench_function("baseline_tokio_mpsc_with_consumer", |b| {
        b.iter_batched(
            || template.clone(),
            |s| black_box(tx.try_send(s)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Counts spans arriving somewhere and wakes a waiter.
#[derive(Clone, Default)]
struct Counter {
    count: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

impl Counter {
    fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn wait_for(&self, target: u64) {
        loop {
            let notified = self.notify.notified();
            if self.count.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }
}

/// Counts what an `ssf_receiver::Receiver` yields (decoded, normalised spans).
fn count_receiver(mut receiver: Receiver) -> Counter {
    let counter = Counter::default();
    let c = counter.clone();
    tokio::spawn(async move {
        while receiver.recv().await.is_some() {
            c.add(1);
        }
    });
    counter
}

/// A minimal stream sink: splits frames without decoding them, to show the client's own
/// throughput apart from the receiver's protobuf decoding.
async fn frame_counter(listen: &str) -> (ssf_codec::Address, Counter) {
    use tokio::io::AsyncReadExt;
    let counter = Counter::default();
    let c = counter.clone();
    async fn count<S: tokio::io::AsyncRead + Unpin>(mut s: S, c: Counter) {
        let mut codec = ssf_codec::SsfCodec::new();
        let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
        loop {
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut n = 0;
            while let Ok(Some(_)) = codec.decode_frame(&mut buf) {
                n += 1;
            }
            c.add(n);
            buf.reserve(64 * 1024);
        }
    }
    if let Some(path) = listen.strip_prefix("unix://") {
        let l = tokio::net::UnixListener::bind(path).expect("bind");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(count(s, c.clone()));
            }
        });
        (ssf_codec::Address::unix(path), counter)
    } else {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(count(s, c.clone()));
            }
        });
        (ssf_codec::Address::tcp(addr), counter)
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

fn throughput(c: &mut Criterion) {
    const N: u64 = 10_000;
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = |name: &str| format!("unix://{}", dir.path().join(name).display());
    let spans: Vec<SsfSpan> = (0..N as i64).map(span).collect();
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);

    // (name, listen address, buffered, sink): sink "receiver" is ssf-receiver (decodes
    // and normalises every span), "frames" only splits frames, "none" does not wait (UDP
    // may lose datagrams when its reader falls behind, so it is measured up to the
    // client's flush: every datagram handed to the kernel).
    let cases = [
        ("unix_buffered/receiver", sock("a.sock"), true, "receiver"),
        ("unix_buffered/frames", sock("b.sock"), true, "frames"),
        ("unix/frames", sock("c.sock"), false, "frames"),
        (
            "tcp_buffered/receiver",
            "tcp://127.0.0.1:0".to_owned(),
            true,
            "receiver",
        ),
        (
            "tcp_buffered/frames",
            "tcp://127.0.0.1:0".to_owned(),
            true,
            "frames",
        ),
        (
            "tcp/frames",
            "tcp://127.0.0.1:0".to_owned(),
            false,
            "frames",
        ),
        ("udp/sent", "udp://127.0.0.1:0".to_owned(), false, "none"),
    ];
    for (name, listen, buffered, sink) in cases {
        let (client, counter) = rt.block_on(async {
            let (addr, counter) = match sink {
                "frames" => frame_counter(&listen).await,
                _ => {
                    let receiver = Receiver::builder()
                        .listen(&listen)
                        .expect("address")
                        .capacity(8192)
                        .bind()
                        .await
                        .expect("bind");
                    let addr = receiver.local_addr().clone();
                    (addr, count_receiver(receiver))
                }
            };
            let builder = Client::from_address(addr).capacity(4096);
            let builder = if buffered {
                builder.buffered(true)
            } else {
                builder
            };
            (builder.build().expect("client"), counter)
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
                        if sink != "none" {
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
    group.finish();
}

criterion_group!(benches, try_record, throughput);
criterion_main!(benches);
