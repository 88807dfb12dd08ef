//! Benchmarks of the span API: IDs, span creation, finishing into a channel client (no
//! I/O), the span a service builds per request recorded on a network client, and
//! header propagation.
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

/// The span a service builds per request, through the public API
/// (`testing::typical_request_span`: a child of the request's span, five tags, a counter
/// with a tag and a timing sample), finished on a network client (encoded straight into
/// the queue; the backends drain it between measured stretches). Static tag values,
/// then owned (`String`) ones.
fn request_span(c: &mut Criterion) {
    use std::time::Duration;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // A UDP socket nobody reads: the backends send, the kernel drops.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = format!("udp://{}", sink.local_addr().expect("addr"));
    let client = rt.block_on(async { Client::builder(&addr).capacity(4096).build() });
    let client = client.expect("client");
    // The same client with a sampler that leaves every trace out.
    let unsampled = rt.block_on(async {
        Client::builder(&addr)
            .capacity(4096)
            .sampler(trace_client::Sampler::never())
            .build()
    });
    let unsampled = unsampled.expect("client");
    let mut parent = Span::root("request");
    parent.set_finish_on_drop(false);
    let mut group = c.benchmark_group("span");
    for (owned, client, name) in [
        (false, &client, "typical_request"),
        (true, &client, "typical_request_owned_tags"),
        (false, &unsampled, "typical_request_unsampled"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(2048);
                    let start = std::time::Instant::now();
                    for _ in 0..n {
                        let span = trace_client::testing::typical_request_span(&parent, owned);
                        black_box(span.finish_with(client).is_ok());
                    }
                    timed += start.elapsed();
                    left -= n;
                    // Not timed: the backends empty the queue.
                    rt.block_on(client.flush()).ok();
                }
                timed
            })
        });
    }
    group.finish();
    rt.block_on(client.shutdown(Duration::from_secs(5)));
    assert_eq!(unsampled.stats().sent(), 0, "an unsampled trace was sent");
    rt.block_on(unsampled.shutdown(Duration::from_secs(5)));
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

    // Three baggage items, and a W3C caller's traceparent and tracestate.
    let mut span = root.child("charge");
    span.set_finish_on_drop(false);
    for (k, v) in [
        ("tenant", "acme"),
        ("region", "eu-west-1"),
        ("plan", "gold tier"),
    ] {
        span.set_baggage_item(k, v).expect("a valid item");
    }
    let ctx = span.context();
    for (name, format) in [("envoy", HeaderFormat::Envoy), ("w3c", HeaderFormat::W3c)] {
        group.bench_function(format!("inject_{name}_baggage"), |b| {
            let mut map = HeaderMap::new();
            b.iter(|| inject_headers(black_box(&ctx), &mut map, format))
        });
        let mut map = HeaderMap::new();
        inject_headers(&ctx, &mut map, format);
        if format == HeaderFormat::W3c {
            map.insert(
                "tracestate",
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
                    .parse()
                    .expect("value"),
            );
        }
        map.insert("user-agent", "bench/1.0".parse().expect("valid value"));
        map.insert("accept", "*/*".parse().expect("valid value"));
        let formats = [HeaderFormat::Envoy, HeaderFormat::W3c];
        group.bench_function(format!("extract_{name}_baggage"), |b| {
            b.iter(|| extract_headers(black_box(&map), &formats).ok())
        });
    }
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::{headers, ids, request_span, spans};
    criterion::criterion_group!(benches, ids, spans, request_span, headers);
}
criterion_main!(group::benches);
