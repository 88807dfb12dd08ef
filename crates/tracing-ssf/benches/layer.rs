//! The cost of a `tracing` span exported through `SsfLayer`, beside the same span on a bare
//! registry with no layer.
//!
//! Exported spans go into a `Client::channel` whose receiver a separate thread drains, so
//! the numbers are the cost on the instrumented thread: creating, entering, exiting and
//! closing the span, building the SSF span and queueing it.
//!
//! ```text
//! cargo bench -p tracing-ssf --bench layer -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::thread;

use criterion::{Criterion, criterion_main};
use trace_client::Client;
use tracing_ssf::SsfLayer;
use tracing_subscriber::layer::SubscriberExt;

/// A layer over a channel client, and the thread draining the channel.
fn layer() -> (SsfLayer, thread::JoinHandle<u64>) {
    let (client, mut rx) = Client::channel(1 << 16);
    let drain = thread::spawn(move || {
        let mut n = 0u64;
        while let Some(span) = rx.blocking_recv() {
            black_box(span);
            n += 1;
        }
        n
    });
    (SsfLayer::new(client).service("bench"), drain)
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");

    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("bare_registry", |b| {
            b.iter(|| tracing::info_span!("op", id = 42, kind = "read").in_scope(|| black_box(1)))
        });
    });

    let (ssf, drain) = layer();
    let stats = ssf.stats();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(ssf), || {
        group.bench_function("ssf_layer", |b| {
            b.iter(|| tracing::info_span!("op", id = 42, kind = "read").in_scope(|| black_box(1)))
        });
        group.bench_function("ssf_layer_child", |b| {
            let parent = tracing::info_span!("parent");
            let _entered = parent.enter();
            b.iter(|| tracing::info_span!("op", id = 42, kind = "read").in_scope(|| black_box(1)))
        });
    });
    group.finish();
    // The subscriber (and with it the client) is gone: the drain thread ends.
    let drained = drain.join().unwrap_or(0);
    eprintln!(
        "ssf_layer: {} spans exported, {} refused, {} drained",
        stats.exported(),
        stats.refused(),
        drained
    );
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::spans;
    criterion::criterion_group!(benches, spans);
}
criterion_main!(group::benches);
