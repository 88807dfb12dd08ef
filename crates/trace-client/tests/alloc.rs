//! `try_record` allocates nothing: the queue's slots are allocated when the client is
//! built.

mod support;

use std::io;
use std::sync::Arc;

use ssf_proto::SsfSpan;
use ssf_test_support::alloc::{Counting, allocations};
use support::*;
use tokio::sync::Semaphore;
use trace_client::{Backend, Client};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends one span per permit.
struct Gated(Arc<Semaphore>);

impl Backend for Gated {
    async fn send(&mut self, _: &SsfSpan) -> io::Result<()> {
        self.0.acquire().await.expect("open").forget();
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn try_record_allocates_nothing_per_span() {
    const N: usize = 1024;
    let gate = Arc::new(Semaphore::new(0));
    let client = Client::with_backend(Gated(gate.clone()))
        .capacity(N + 64)
        .build()
        .unwrap();
    for round in 0..3 {
        let spans: Vec<SsfSpan> = (0..N as i64).map(span).collect();
        // The worker runs on this thread only when the test yields: it does not run here.
        let n = allocations(|| {
            for s in spans {
                client.try_record(s).unwrap();
            }
        });
        assert_eq!(n, 0, "round {round}: {n} allocations for {N} spans");
        gate.add_permits(N);
        while client.stats().queued() > 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(client.stats().sent(), 3 * N as u64);
}

/// A typical span of a service, with a full-size parent ID.
fn typical(id: i64) -> SsfSpan {
    SsfSpan {
        parent_id: 1_152_921_504_606_846_975,
        ..trace_client::testing::typical_span(id)
    }
}

/// A network client encodes spans into the queue's slots when they are recorded: recording
/// a typical span allocates nothing, by value or by reference; a span too large for a
/// slot gets one buffer of its own.
#[tokio::test(flavor = "current_thread")]
async fn network_clients_encode_into_the_slot_without_allocating() {
    const N: usize = 512;
    // Nothing listens there and nothing is sent: the backends run only when this test
    // yields, which it does not while counting.
    for addr in ["udp://127.0.0.1:9", "tcp://127.0.0.1:9"] {
        let client = Client::builder(addr).capacity(4 * N).build().unwrap();
        let spans: Vec<SsfSpan> = (1..=N as i64).map(typical).collect();
        let n = allocations(|| {
            for s in spans {
                client.try_record(s).unwrap();
            }
        });
        assert_eq!(n, 0, "{addr}: try_record: {n} allocations for {N} spans");

        let mut span = typical(1);
        let n = allocations(|| {
            for id in 1..=N as i64 {
                span.id = id;
                client.try_record_ref(&span).unwrap();
            }
        });
        assert_eq!(
            n, 0,
            "{addr}: try_record_ref: {n} allocations for {N} spans"
        );

        let large = big_span(1, 1000);
        let n = allocations(|| {
            for _ in 0..N {
                client.try_record_ref(&large).unwrap();
            }
        });
        assert_eq!(n, N, "{addr}: one buffer per large span");
        assert_eq!(client.stats().accepted(), 3 * N as u64);
        client.close();
    }
}

/// `record(..).await` and `flush().await` are state machines polled in place: a record
/// that finds room allocates nothing (a typical span, by value or by reference), and one
/// that waits for room only registers its waker.
#[tokio::test(flavor = "current_thread")]
async fn record_futures_allocate_nothing_per_span() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    const N: usize = 256;
    let client = Client::builder("udp://127.0.0.1:9")
        .capacity(4 * N)
        .build()
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let spans: Vec<SsfSpan> = (1..=N as i64).map(typical).collect();
    let n = allocations(|| {
        for s in spans {
            let mut f = pin!(client.record(s));
            assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        }
    });
    assert_eq!(n, 0, "record: {n} allocations for {N} spans");
    let span = typical(1);
    let n = allocations(|| {
        for _ in 0..N {
            let mut f = pin!(client.record_ref(&span));
            assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        }
    });
    assert_eq!(n, 0, "record_ref: {n} allocations for {N} spans");
    client.close();

    // A full queue: the future waits (a registered waker), and is woken once a backend
    // makes room.
    let gate = Arc::new(Semaphore::new(0));
    let client = Client::with_backend(Gated(gate.clone()))
        .capacity(1)
        .build()
        .unwrap();
    client.try_record(span.clone()).unwrap();
    tokio::task::yield_now().await; // the worker takes it and waits for a permit
    client.try_record(span.clone()).unwrap();
    let mut waiting = Box::pin(client.record(span.clone()));
    let mut polls = 0;
    let n = allocations(|| {
        for _ in 0..10 {
            polls += 1;
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
    });
    // The first poll may give the wait list its slot; later polls reuse it.
    assert!(
        n <= 1,
        "a waiting record allocated {n} times in {polls} polls"
    );
    gate.add_permits(3);
    assert!(waiting.await.is_ok());
    let report = client.shutdown(std::time::Duration::from_secs(5)).await;
    assert_eq!((report.sent(), report.dropped_total()), (3, 0));
}

/// The path a service takes: a span per request built through the public API (a root
/// and a child, five tags, a count and a timing sample, `finish_with`), with static
/// strings, allocates nothing: the span keeps its strings borrowed and its tags and
/// samples inline, and a network client encodes it straight into a queue slot.
#[tokio::test(flavor = "current_thread")]
async fn the_span_api_allocates_nothing_per_span_with_static_strings() {
    use std::time::Duration;
    use trace_client::{Span, SpanSample};

    const N: usize = 256;
    for addr in ["udp://127.0.0.1:9", "tcp://127.0.0.1:9"] {
        let client = Client::builder(addr).capacity(8 * N).build().unwrap();
        let request = || {
            let mut root = Span::root("checkout");
            root.set_tag("route", "/checkout")
                .set_tag("method", "GET")
                .set_tag("shop", "eu-1")
                .set_tag("version", "42")
                .set_tag("kind", "server");
            root.add_sample(SpanSample::count("requests", 1.0))
                .add_sample(SpanSample::timing(
                    "latency",
                    Duration::from_micros(1500),
                    Duration::from_millis(1),
                ));
            let mut child = root.child("charge");
            child.set_tag("currency", "eur");
            child.finish_with(&client).unwrap();
            root.finish_with(&client).unwrap();
        };
        request(); // the thread's ID generator is set up on first use
        let n = allocations(|| {
            for _ in 0..N {
                request();
            }
        });
        assert_eq!(n, 0, "{addr}: {n} allocations for {N} requests of 2 spans");
        // Owned strings cost their own allocation only: one per owned value.
        let n = allocations(|| {
            for i in 0..N {
                let mut span = Span::root("op");
                span.set_tag("user", format!("u{}", i % 10));
                span.finish_with(&client).unwrap();
            }
        });
        assert_eq!(n, N, "{addr}: one allocation per owned tag value");
        assert_eq!(client.stats().accepted(), (2 * (N + 1) + N) as u64);
        client.close();
    }
}

/// A span that owns strings frees each of them, however it ends (owned tag keys and
/// values are freed as soon as they are copied into the span, a sample once it is
/// added): owned keys, values and sample strings, tags and samples spilled to the heap,
/// and spans finished, converted or dropped.
#[tokio::test(flavor = "current_thread")]
#[expect(
    clippy::unnecessary_to_owned,
    reason = "owned strings handed to the span are what is tested"
)]
async fn spans_free_every_string_they_own() {
    use ssf_test_support::alloc::allocations_and_frees;
    use trace_client::{Span, SpanSample};

    let client = Client::builder("udp://127.0.0.1:9")
        .capacity(1024)
        .build()
        .unwrap();
    type Shape = (&'static str, fn(&mut Span));
    let shapes: [Shape; 7] = [
        ("owned value", |s| {
            s.set_tag("k", "v".to_owned());
        }),
        ("owned key", |s| {
            s.set_tag("k".to_owned(), "v");
        }),
        ("spilled static tags", |s| {
            for k in ["a", "b", "c", "d", "e", "f", "g", "h"] {
                s.set_tag(k, "v");
            }
        }),
        ("replaced owned value", |s| {
            s.set_tag("k", "1".to_owned()).set_tag("k", "2");
        }),
        ("owned sample name and tag", |s| {
            s.add_sample(SpanSample::count("c".to_owned(), 1.0).with_tag("t", "x".to_owned()));
        }),
        ("spilled static samples", |s| {
            for name in ["a", "b", "c", "d"] {
                s.add_sample(SpanSample::gauge(name, 1.0).with_tag("t", "x"));
            }
        }),
        ("sample from SSF", |s| {
            s.add_sample(ssf_proto::sample::count("c", 1.0).with_tag("t", "x"));
        }),
    ];
    use ssf_proto::sample::SampleExt;
    for (shape, build) in shapes {
        let (allocs, frees) = allocations_and_frees(|| {
            for end in 0..3 {
                let mut span = Span::root("op");
                build(&mut span);
                match end {
                    0 => span.finish_with(&client).unwrap(),
                    1 => drop(span.into_ssf()),
                    _ => {
                        span.set_finish_on_drop(false);
                        drop(span);
                    }
                }
            }
        });
        assert!(allocs > 0, "{shape}: nothing owned");
        assert_eq!(
            allocs, frees,
            "{shape}: {allocs} allocations, {frees} frees"
        );
    }
    client.close();
}
