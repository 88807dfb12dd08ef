//! User backends, channel and neutralised clients, statistics, build errors.

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssf_proto::SsfSpan;
use support::*;
use trace_client::testing::{ChannelBackend, FlushingBackend};
use trace_client::{
    Backend, BuildError, Client, DropReason, STATISTICS_NAMES, StatsCounter, report_statistics,
};

fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}

#[test]
fn client_is_a_cheap_shareable_handle() {
    assert_traits::<Client>();
    let (client, _rx) = Client::channel(1);
    assert!(format!("{client:?}").contains("channel"));
}

#[tokio::test]
async fn backend_client_delivers_every_accepted_span() {
    // veneur: capacity 5, an unbuffered receiving channel; record until it would block.
    let (backend, mut rx) = ChannelBackend::pair(1);
    let client = Client::with_backend(backend).capacity(5).build().unwrap();
    let mut receipts = Vec::new();
    let mut id = 0;
    loop {
        match client.record_with_receipt(span(id)) {
            Ok(r) => receipts.push(r),
            Err(e) if e.is_full() => break,
            Err(e) => panic!("{e}"),
        }
        id += 1;
        tokio::task::yield_now().await;
    }
    let accepted = receipts.len() as i64;
    assert!(accepted >= 5, "{accepted}");
    for expected in 0..accepted {
        assert_eq!(rx.recv().await.unwrap().id, expected, "in order");
    }
    for r in receipts {
        r.await.expect("sent");
    }
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), accepted as u64);
    assert!(report.errors().is_empty());
    assert_report_settled(&report);
    assert_eq!(client.stats().refused_full(), 1);
}

#[tokio::test]
async fn send_errors_drop_the_span_and_tell_the_receipt() {
    let (backend, mut rx) = ChannelBackend::pair(8);
    let backend = backend.send_errors(|s| (s.id == 2).then(|| io::Error::other("no 2")));
    let client = Client::with_backend(backend).capacity(8).build().unwrap();
    let r1 = client.record_with_receipt(span(1)).unwrap();
    let r2 = client.record_with_receipt(span(2)).unwrap();
    let r3 = client.record_with_receipt(span(3)).unwrap();
    r1.await.unwrap();
    let e = r2.await.unwrap_err();
    assert_eq!(e.reason(), DropReason::WriteError);
    assert_eq!(e.io_error().unwrap().to_string(), "no 2");
    r3.await.unwrap();
    assert_eq!(rx.recv().await.unwrap().id, 1);
    assert_eq!(rx.recv().await.unwrap().id, 3);
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.dropped().write_error()), (2, 1));
    assert_settled(&stats);
}

struct Panicky {
    sent: Arc<Mutex<Vec<i64>>>,
}

impl Backend for Panicky {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        if span.id == 2 {
            panic!("backend bug");
        }
        self.sent.lock().unwrap().push(span.id);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        panic!("flush bug");
    }
}

#[tokio::test]
async fn a_panicking_backend_is_contained_counted_and_keeps_working() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let client = Client::with_backend(Panicky { sent: sent.clone() })
        .capacity(8)
        .build()
        .unwrap();
    let receipts: Vec<_> = (1..=3)
        .map(|id| client.record_with_receipt(span(id)).unwrap())
        .collect();
    let results: Vec<_> = futures_util::future::join_all(receipts).await;
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().reason(),
        DropReason::Panicked
    );
    assert_eq!(*sent.lock().unwrap(), [1, 3]);
    let err = client.flush().await.unwrap_err();
    assert!(err.to_string().contains("panicked while flushing"), "{err}");
    let stats = client.stats();
    assert_eq!((stats.panics(), stats.dropped().panicked()), (2, 1));
    assert_settled(&stats);
}

#[tokio::test]
async fn statistics_report_veneur_counters_and_reset() {
    // veneur's statistics test, adapted: the backend blocks once its channel is full.
    let (backend, mut rx) = ChannelBackend::pair(1);
    let (flushing, _batches) = FlushingBackend::pair(1);
    let flushing = flushing.flush_errors(|_| Some(io::Error::other("flush refused")));
    let failing = Client::with_backend(flushing).build().unwrap();
    let client = Client::with_backend(backend).capacity(1).build().unwrap();
    let seen = Mutex::new(Vec::<(String, i64, Vec<String>, f64)>::new());
    let sink = |name: &str, value: i64, tags: &[&str], rate: f64| {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        seen.lock()
            .unwrap()
            .push((name.to_owned(), value, tags, rate));
    };
    let take = || std::mem::take(&mut *seen.lock().unwrap());
    let tags = ["ssf_format:internal"];

    report_statistics(&client, &sink, &tags); // reset
    take();

    client.flush().await.unwrap();
    report_statistics(&client, &sink, &tags);
    let got = take();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.as_str(), got[0].1), (STATISTICS_NAMES[1], 1));
    assert_eq!((got[1].0.as_str(), got[1].1), (STATISTICS_NAMES[3], 0));
    assert_eq!(got[0].2, ["ssf_format:internal"]);
    assert_eq!(got[0].3, 1.0);

    // One span goes through into the channel (now full), the next blocks the backend,
    // the next waits in the queue, and then the queue is full.
    client.try_record(span(1)).unwrap();
    let mut accepted = 1;
    loop {
        tokio::task::yield_now().await;
        match client.try_record(span(accepted + 1)) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(e.is_full());
                break;
            }
        }
        assert!(accepted < 10);
    }
    report_statistics(&client, &sink, &tags);
    let got: Vec<(String, i64)> = take().into_iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(
        got,
        [
            (STATISTICS_NAMES[1].to_owned(), 0),
            (STATISTICS_NAMES[2].to_owned(), 1),
            (STATISTICS_NAMES[3].to_owned(), accepted),
        ]
    );

    // A failed flush.
    failing.try_record(span(1)).unwrap();
    failing.flush().await.unwrap_err();
    report_statistics(&failing, &sink, &tags);
    let got: Vec<(String, i64)> = take().into_iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(
        got,
        [
            (STATISTICS_NAMES[0].to_owned(), 1),
            (STATISTICS_NAMES[1].to_owned(), 0),
            (STATISTICS_NAMES[3].to_owned(), 1),
        ]
    );
    while rx.try_recv().is_ok() {}
}

#[tokio::test(start_paused = true)]
async fn statistics_are_reported_periodically_and_once_more_at_the_end() {
    let seen = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let sink: Arc<dyn StatsCounter + Send + Sync> = {
        let seen = seen.clone();
        Arc::new(move |name: &str, value: i64, tags: &[&str], _: f64| {
            assert_eq!(tags, ["a:b"]);
            seen.lock().unwrap().push((name.to_owned(), value));
        })
    };
    let (backend, _rx) = ChannelBackend::pair(16);
    let client = Client::with_backend(backend)
        .capacity(8)
        .report_statistics(sink, Duration::from_secs(1), ["a:b"])
        .build()
        .unwrap();
    client.try_record(span(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        std::mem::take(&mut *seen.lock().unwrap()),
        [
            (STATISTICS_NAMES[1].to_owned(), 0),
            (STATISTICS_NAMES[3].to_owned(), 1),
        ]
    );
    client.try_record(span(2)).unwrap();
    client.shutdown(PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        std::mem::take(&mut *seen.lock().unwrap()),
        [
            (STATISTICS_NAMES[1].to_owned(), 0),
            (STATISTICS_NAMES[3].to_owned(), 1),
        ],
        "the final report"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(seen.lock().unwrap().is_empty(), "the reporter stopped");
}

#[tokio::test]
async fn channel_client() {
    let (client, mut rx) = Client::channel(2);
    client.record_with_receipt(span(1)).unwrap().await.unwrap();
    client.record(span(2)).await.unwrap();
    assert!(client.try_record(span(3)).unwrap_err().is_full());
    assert_eq!(rx.recv().await.unwrap().id, 1);
    client.flush().await.unwrap();
    drop(rx);
    assert!(client.is_closed());
    assert!(client.try_record(span(4)).unwrap_err().is_closed());
    let stats = client.stats();
    assert_eq!((stats.accepted(), stats.sent(), stats.refused()), (2, 2, 2));
    let report = client.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.sent(), 2);
}

#[tokio::test]
async fn neutralized_client_refuses_everything_and_flushes() {
    let client = Client::neutralized();
    assert!(client.is_closed());
    let e = client.try_record(span(1)).unwrap_err();
    assert!(e.is_closed());
    assert!(client.record(span(2)).await.is_err());
    client.flush().await.unwrap();
    let stats = client.stats();
    assert_eq!(
        (stats.refused(), stats.accepted(), stats.flushes_ok()),
        (2, 0, 1)
    );
}

#[tokio::test]
async fn clients_without_workers_fail_flushes_once_shut_down() {
    let (channel, _rx) = Client::channel(2);
    for client in [channel, Client::neutralized()] {
        client.flush().await.unwrap();
        let report = client.shutdown(Duration::from_secs(1)).await;
        assert!(!report.timed_out());
        let e = client.flush().await.unwrap_err();
        assert!(e.is_closed(), "{client:?}: {e}");
        assert!(client.try_record(span(1)).unwrap_err().is_closed());
        let stats = client.stats();
        assert_eq!(
            (stats.flushes_ok(), stats.flushes_failed()),
            (1, 1),
            "{client:?}"
        );
    }
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Client::builder("udp://127.0.0.1:8128").build().unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime), "{err}");
}

#[tokio::test]
async fn invalid_options_are_rejected_by_build() {
    let invalid = |b: trace_client::ClientBuilder| match b.build() {
        Err(BuildError::Invalid(what)) => what,
        other => panic!("{other:?}"),
    };
    let udp = || Client::builder("udp://127.0.0.1:8128");
    assert!(invalid(udp().capacity(0)).contains("capacity"));
    assert!(invalid(udp().parallel_backends(0)).contains("parallel_backends"));
    assert!(invalid(udp().backoff(Duration::ZERO)).contains("backoff"));
    assert!(invalid(udp().backoff(Duration::from_secs(2))).contains("max_backoff"));
    assert!(invalid(udp().connect_timeout(Duration::ZERO)).contains("connect_timeout"));
    assert!(invalid(udp().buffer_size(0)).contains("buffer_size"));
    assert!(invalid(udp().max_datagram_size(70_000)).contains("max_datagram_size"));
    assert!(invalid(udp().flush_interval(Some(Duration::ZERO))).contains("flush_interval"));

    let e = Client::builder("unixgram:///tmp/x.sock")
        .build()
        .unwrap_err();
    assert_eq!(e.to_string(), "can not connect to unixgram addresses");
    let e = Client::builder("foo://bar").build().unwrap_err();
    assert!(matches!(e, BuildError::Address(_)));
    assert!(std::error::Error::source(&e).is_some());

    let (backend, _rx) = ChannelBackend::pair(1);
    let e = Client::with_backend(backend)
        .buffered(true)
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::NotNetworked("buffered")), "{e}");
    assert!(
        e.to_string()
            .starts_with("client is not using a network backend")
    );

    // Building touches no network: a client for an address nobody listens on is fine.
    let client = Client::builder("tcp://127.0.0.1:9").build().unwrap();
    assert_eq!(client.stats().bytes_written(), 0);
}

#[tokio::test]
async fn the_default_client_can_be_set_replaced_and_unset() {
    use trace_client::default;
    assert!(default::get().is_none());
    assert!(default::try_record(span(1)).unwrap_err().is_no_client());

    let (first, mut first_rx) = Client::channel(4);
    assert!(default::set(Some(first.clone())).is_none());
    default::try_record(span(1)).unwrap();
    assert_eq!(first_rx.recv().await.unwrap().id, 1);
    // Setting the same client again does not close it.
    let same = default::set(Some(first.clone())).unwrap();
    assert!(!same.is_closed());

    let (second, _second_rx) = Client::channel(4);
    let old = default::set(Some(second)).unwrap();
    assert!(
        old.is_closed() && first.is_closed(),
        "replacing closes the old client"
    );
    default::try_record(span(2)).unwrap();

    let old = default::set(None).unwrap();
    assert!(old.is_closed());
    assert!(default::try_record(span(3)).unwrap_err().is_no_client());
}

#[cfg(feature = "cadence")]
#[test]
fn cadence_client_counts_with_tags() {
    let (rx, sink) = cadence::SpyMetricSink::new();
    let statsd = cadence::StatsdClient::from_sink("prefix", sink);
    let (client, _spans) = Client::channel(1);
    client.try_record(span(1)).unwrap();
    report_statistics(&client, &statsd, &["ssf_format:internal", "bare"]);
    let lines: Vec<String> = rx
        .try_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "prefix.trace_client.flushes_succeeded_total:0|c|#ssf_format:internal,bare",
            "prefix.trace_client.records_succeeded_total:1|c|#ssf_format:internal,bare",
        ]
    );
}
