//! Per-request overhead of the server middleware: the same trivial service called with
//! `oneshot`, with and without `ServerTraceLayer`, spans recorded into a channel client
//! that is drained between requests.
//!
//! `cargo bench -p trace-http --bench server`

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};
use trace_client::Client;
use trace_http::ServerTraceLayer;

fn request(traced: bool) -> Request<()> {
    let builder = Request::get("/api/items/42?page=2");
    let builder = if traced {
        builder
            .header("ot-tracer-traceid", "3039")
            .header("ot-tracer-spanid", "10932")
            .header("ot-tracer-sampled", "true")
    } else {
        builder
    };
    builder.body(()).expect("a valid request")
}

fn server(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let inner =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let (client, mut spans) = Client::channel(1024);
    let traced = ServerTraceLayer::new().client(client).layer(inner);

    let mut group = c.benchmark_group("server");
    group.bench_function("without_layer", |b| {
        b.to_async(&runtime)
            .iter(|| black_box(inner).oneshot(request(true)))
    });
    group.bench_function("with_layer_root", |b| {
        b.to_async(&runtime).iter(|| {
            while spans.try_recv().is_ok() {}
            traced.clone().oneshot(request(false))
        })
    });
    group.bench_function("with_layer_continued", |b| {
        b.to_async(&runtime).iter(|| {
            while spans.try_recv().is_ok() {}
            traced.clone().oneshot(request(true))
        })
    });
    group.finish();
    while spans.try_recv().is_ok() {}

    // A network client (UDP to a socket nobody reads), the path a service takes: the
    // span is encoded when it is recorded; the backends run on their own thread.
    let net = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = format!("udp://{}", sink.local_addr().expect("addr"));
    let client = net
        .block_on(async { Client::builder(&addr).capacity(1 << 16).build() })
        .expect("a client");
    let traced = ServerTraceLayer::new().client(client.clone()).layer(inner);
    let mut group = c.benchmark_group("server");
    group.bench_function("with_layer_root_udp", |b| {
        b.to_async(&runtime)
            .iter(|| traced.clone().oneshot(request(false)))
    });
    group.finish();
    net.block_on(client.shutdown(std::time::Duration::from_secs(5)));
}

// The macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::server);
}
criterion_main!(group::benches);
