//! The cost of a `tracing` span exported through `SsfLayer`, beside the same span on a bare
//! registry with no layer.
//!
//! ```text
//! cargo bench -p tracing-ssf --bench layer -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Every span has two fields and is created, entered, exited and closed; with the layer,
//! closing it builds the SSF span and queues it in a `Client::channel`.
//!
//! * `span/bare_registry`: the span on a registry with no layer, the floor;
//! * `span/ssf_layer`, `span/ssf_layer_child` (a child of an entered span): the cost on the
//!   instrumented thread. The channel is drained between timed batches of at most
//!   [`BATCH`] spans, so the time covers what the instrumented thread does and nothing
//!   the consumer does (freeing the spans, waking up);
//! * `span/ssf_layer_thread_drain`: the same span while a tokio task on another thread
//!   drains the channel with `recv_many`, as a client worker would. This adds what
//!   sharing a queue and an allocator with a consumer costs (waking it up, freeing memory
//!   allocated on another thread), which depends on the allocator, the scheduler and the
//!   number of cores more than on the layer. With glibc's allocator most of the extra
//!   time is its arena lock, contended by the two threads (the consumer frees what the
//!   instrumented thread allocated). At this rate the consumer may not keep up, so the
//!   bench prints how many spans the channel refused (a refused span is cheaper than an
//!   accepted one).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use trace_client::Client;
use tracing_ssf::SsfLayer;
use tracing_subscriber::layer::SubscriberExt;

/// Spans per timed batch in the same-thread benchmarks; the channel holds twice as many.
const BATCH: u64 = 4096;

fn span() {
    tracing::info_span!("op", id = 42, kind = "read").in_scope(|| black_box(1));
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");

    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("bare_registry", |b| b.iter(span));
    });

    let (client, mut rx) = Client::channel(2 * BATCH as usize);
    let layer = SsfLayer::new(client).service("bench");
    let stats = layer.stats();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Times `iters` spans in batches, draining the channel between batches, untimed.
        let mut batched = |iters: u64| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let start = Instant::now();
                for _ in 0..n {
                    span();
                }
                timed += start.elapsed();
                while let Ok(sent) = rx.try_recv() {
                    black_box(sent);
                }
                left -= n;
            }
            timed
        };
        group.bench_function("ssf_layer", |b| b.iter_custom(&mut batched));
        let parent = tracing::info_span!("parent");
        parent.in_scope(|| {
            group.bench_function("ssf_layer_child", |b| b.iter_custom(&mut batched));
        });
    });
    assert_eq!(stats.refused(), 0, "the channel never fills: {stats:?}");

    let (client, mut rx) = Client::channel(1 << 16);
    let drain = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut n = 0u64;
            let mut buf = Vec::with_capacity(1024);
            while rx.recv_many(&mut buf, 1024).await > 0 {
                n += buf.len() as u64;
                buf.clear();
            }
            n
        })
    });
    let layer = SsfLayer::new(client).service("bench");
    let stats = layer.stats();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        group.bench_function("ssf_layer_thread_drain", |b| b.iter(span));
    });
    // The subscriber and with it the client are gone: the drain thread ends.
    let drained = drain.join().unwrap_or(0);
    eprintln!(
        "ssf_layer_thread_drain: {} spans exported, {} refused, {drained} drained",
        stats.exported(),
        stats.refused(),
    );

    // A network client (UDP to a socket nobody reads), the path a service takes: the
    // span is encoded when it is recorded; the backends run on their own thread and
    // empty the queue between measured batches.
    let net = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = format!("udp://{}", sink.local_addr().expect("addr"));
    let client = net
        .block_on(async { Client::builder(&addr).capacity(2 * BATCH as usize).build() })
        .expect("client");
    let layer = SsfLayer::new(client.clone()).service("bench");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        group.bench_function("ssf_layer_udp", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    let start = Instant::now();
                    for _ in 0..n {
                        span();
                    }
                    timed += start.elapsed();
                    net.block_on(client.flush()).ok();
                    left -= n;
                }
                timed
            })
        });
    });
    group.finish();
    net.block_on(client.shutdown(Duration::from_secs(5)));
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::spans;
    criterion::criterion_group!(benches, spans);
}
criterion_main!(group::benches);
