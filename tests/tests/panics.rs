//! Panics in user code are contained, counted and reported, and the client keeps
//! working, on `current_thread` and multi-thread runtimes:
//!
//! * a sample normaliser and a statistics sink that panic, on a network client sending
//!   to a live receiver: every span is still delivered, every panic counted (and a sink
//!   called directly: one panic counted per report);
//! * a user [`Backend`] that panics while sending (in the call and in a later poll), while
//!   flushing and while closing: the spans it panicked on are dropped as `panicked`, the
//!   others sent in order, the failed flush and close reported, the panics counted.
//!
//! (Panics print their message on standard error; that is expected here.)

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::*;
use ssf_proto::SsfSpan;
use trace_client::{Backend, Client, DropReason, StatsCounter};

const N: u64 = 1000;

/// The normaliser panics on every `NORMALISER_PANIC_EVERY`-th span.
const NORMALISER_PANIC_EVERY: u64 = 10;

async fn normaliser_and_stats_sink(transport: Transport) {
    let seen = Seen::new(N as usize);
    let (endpoint, receiver) = Endpoint::start(transport, Arc::clone(&seen)).await;
    let calls = Arc::new(AtomicU64::new(0));
    let normaliser_calls = Arc::clone(&calls);
    let sink_calls = Arc::new(AtomicU64::new(0));
    let sink_seen = Arc::clone(&sink_calls);
    let sink: Arc<dyn StatsCounter + Send + Sync> =
        Arc::new(move |_: &str, _: i64, _: &[&str], _: f64| {
            sink_seen.fetch_add(1, Ordering::Relaxed);
            panic!("statistics sink bug");
        });
    let client = Client::builder(endpoint.url())
        .capacity(128)
        .normalize_samples(move |s| {
            // Two samples per span: count the spans by their counter sample.
            if s.name == "charges.created" {
                let n = normaliser_calls.fetch_add(1, Ordering::Relaxed) + 1;
                if n % NORMALISER_PANIC_EVERY == 0 {
                    panic!("normaliser bug");
                }
            }
        })
        .report_statistics(sink, Duration::from_millis(20), ["scenario:panics"])
        .build()
        .expect("client");

    for id in 1..=N {
        client.record(span(id as i64)).await.expect("open client");
    }
    client
        .flush()
        .await
        .expect("panics in the normaliser drop nothing");
    // Let the statistics sink be called (and panic) a few times.
    assert!(
        eventually(PATIENCE, || sink_calls.load(Ordering::Relaxed) >= 3).await,
        "the statistics sink is called again after panicking"
    );
    let report = client.shutdown(PATIENCE).await;
    eventually(PATIENCE, || receiver.received() >= N).await;
    let received = receiver.stop().await;

    let what = format!("{}: {report:?}", transport.name());
    assert!(!report.timed_out(), "{what}");
    assert_eq!((report.sent(), report.dropped_total()), (N, 0), "{what}");
    assert_eq!((received, seen.unique()), (N, N), "{what}");
    let normaliser_panics = N / NORMALISER_PANIC_EVERY;
    // Each sink call panics at its first counter, ending that report. Reports go on in
    // the background (maybe one while the shutdown's counters were read): the first two
    // were counted before the third began, none is counted that did not happen.
    let panics = report.stats().panics();
    let sink_panics = sink_calls.load(Ordering::Relaxed);
    assert!(
        (normaliser_panics + 2..=normaliser_panics + sink_panics).contains(&panics),
        "{panics} panics, {sink_panics} sink calls; {what}"
    );
    assert_eq!(calls.load(Ordering::Relaxed), N, "{what}");

    // The runtime is fine.
    assert_eq!(tokio::spawn(async { 7 }).await.expect("a task runs"), 7);
}

#[test]
fn a_panicking_statistics_sink_is_counted_once_per_report() {
    runtime(false).block_on(async {
        let (client, _rx) = Client::channel(8);
        let sink = |_: &str, _: i64, _: &[&str], _: f64| panic!("statistics sink bug");
        for _ in 0..3 {
            trace_client::report_statistics(&client, &sink, &["scenario:panics"]);
        }
        assert_eq!(client.stats().panics(), 3);
        client
            .try_record(span(1))
            .expect("the client still records");
    });
}

#[test]
fn normaliser_and_statistics_sink_panics_current_thread() {
    runtime(false).block_on(normaliser_and_stats_sink(Transport::Unix));
}

#[test]
fn normaliser_and_statistics_sink_panics_multi_thread() {
    runtime(true).block_on(normaliser_and_stats_sink(Transport::Tcp));
}

/// Panics on every 7th span (in the call when the ID is even, in a later poll when it is
/// odd), on its first flush and on close; keeps the IDs of the spans it sent.
struct Faulty {
    sent: Arc<Mutex<Vec<i64>>>,
    flushes: u64,
}

impl Backend for Faulty {
    fn send(&mut self, span: &SsfSpan) -> impl Future<Output = io::Result<()>> + Send {
        let id = span.id;
        if id % 7 == 0 && id % 2 == 0 {
            panic!("backend bug in send");
        }
        let sent = Arc::clone(&self.sent);
        async move {
            tokio::task::yield_now().await;
            if id % 7 == 0 {
                panic!("backend bug in a send future");
            }
            sent.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            Ok(())
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        if self.flushes == 1 {
            panic!("backend bug in flush");
        }
        Ok(())
    }

    async fn close(&mut self) -> io::Result<()> {
        panic!("backend bug in close");
    }
}

async fn faulty_backend() {
    const SPANS: i64 = 700;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let client = Client::with_backend(Faulty {
        sent: Arc::clone(&sent),
        flushes: 0,
    })
    .capacity(16)
    .build()
    .expect("client");
    for id in 1..=SPANS {
        client.record(span(id)).await.expect("open client");
    }
    let first = client.flush().await;
    let err = first.expect_err("the first flush panics");
    assert!(err.to_string().contains("panicked"), "{err}");
    // The second flush reports nothing new: the drops went to the first one.
    client.flush().await.expect("the backend keeps working");
    let report = client.shutdown(PATIENCE).await;

    let expected: Vec<i64> = (1..=SPANS).filter(|id| id % 7 != 0).collect();
    let panicked = (SPANS / 7) as u64;
    assert!(!report.timed_out(), "{report:?}");
    assert_eq!(
        *sent.lock().unwrap_or_else(|p| p.into_inner()),
        expected,
        "the other spans are sent, in order"
    );
    assert_eq!(report.sent(), expected.len() as u64, "{report:?}");
    assert_eq!(report.dropped().get(DropReason::Panicked), panicked);
    assert_eq!(report.dropped_total(), panicked, "{report:?}");
    // Sends, the first flush, the close.
    assert_eq!(report.stats().panics(), panicked + 2, "{report:?}");
    assert!(
        report
            .errors()
            .iter()
            .any(|e| e.to_string().contains("panicked while closing")),
        "{report:?}"
    );
    assert_eq!(tokio::spawn(async { 7 }).await.expect("a task runs"), 7);
}

#[test]
fn backend_panics_current_thread() {
    runtime(false).block_on(faulty_backend());
}

#[test]
fn backend_panics_multi_thread() {
    runtime(true).block_on(faulty_backend());
}
