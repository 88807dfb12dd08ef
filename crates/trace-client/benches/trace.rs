//! Benchmarks of the span API: IDs, span creation, finishing into a channel client (no
//! I/O), and header propagation.
//!
//! `cargo bench -p trace-client --bench trace`

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use http::HeaderMap;
use trace_client::propagation::{
    DEFAULT_EXTRACT_FORMATS, HeaderFormat, extract_headers, inject_headers,
};
use trace_client::{Client, Span, new_id};

fn ids(c: &mut Criterion) {
    c.bench_function("new_id", |b| b.iter(new_id));
    // Two threads drawing at once: each has its own generator, so there is no lock to
    // contend on and the time per ID stays that of one thread.
    c.bench_function("new_id_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(move || {
                        for _ in 0..iters {
                            black_box(new_id());
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    group.bench_function("root", |b| {
        b.iter(|| {
            let mut span = Span::root(black_box("checkout"));
            span.set_finish_on_drop(false);
            span
        })
    });

    let mut root = Span::root("checkout");
    root.set_finish_on_drop(false);
    group.bench_function("child", |b| {
        b.iter(|| {
            let mut span = root.child(black_box("charge"));
            span.set_finish_on_drop(false);
            span
        })
    });

    // Create a child, finish it into a channel client and take it out of the channel
    // again, so the channel never fills: the whole cost of a span apart from I/O.
    let (client, mut rx) = Client::channel(1024);
    group.bench_function("child_finish_try_record", |b| {
        b.iter(|| {
            let result = root.child(black_box("charge")).finish_with(&client);
            black_box(result.is_ok());
            rx.try_recv().ok()
        })
    });
    group.finish();
}

fn headers(c: &mut Criterion) {
    let mut root = Span::root("checkout");
    root.set_finish_on_drop(false);
    let ctx = root.context();
    let mut group = c.benchmark_group("headers");
    group.bench_function("inject_envoy", |b| {
        let mut map = HeaderMap::new();
        b.iter(|| inject_headers(black_box(&ctx), &mut map, HeaderFormat::Envoy))
    });
    let mut map = HeaderMap::new();
    map.insert("x-trace-id", "1234567890".parse().expect("valid value"));
    map.insert("x-span-id", "987654321".parse().expect("valid value"));
    group.bench_function("extract_ruby_after_misses", |b| {
        b.iter(|| extract_headers(black_box(&map), DEFAULT_EXTRACT_FORMATS).ok())
    });
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::{headers, ids, spans};
    criterion::criterion_group!(benches, ids, spans, headers);
}
criterion_main!(group::benches);
