//! Shutdown and drop: draining, deadlines, accounting, intake.
#![cfg(unix)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssf_receiver::Receiver;
use support::*;
use tokio::time::Instant;
use trace_client::testing::ChannelBackend;
use trace_client::{Client, StatsCounter};

const MANY: i64 = 10_000;

/// Records `n` spans (waiting for room), shuts down and checks that the receiver got each
/// exactly once and that the report accounts for all of them.
async fn deliver_all(url: String, buffered: bool, n: i64) {
    let mut receiver = Receiver::bind(&url).await.unwrap();
    let mut builder = Client::from_address(receiver.local_addr().clone());
    if buffered {
        builder = builder.buffered(true);
    }
    let client = builder.build().unwrap();
    let collector = tokio::spawn(async move { receiver.collect(n as usize, PATIENCE).await });
    for id in 0..n {
        client.record(span(id)).await.unwrap();
    }
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out(), "{report:?}");
    assert!(report.errors().is_empty(), "{report:?}");
    assert_eq!(report.accepted(), n as u64);
    assert_eq!(report.sent(), n as u64, "{report:?}");
    assert_report_settled(&report);
    let got = collector.await.unwrap().expect("every span");
    assert_ids(&got, 0..n);
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn unix_delivers_everything_current_thread() {
    let (_dir, path) = socket_path();
    current_thread().block_on(deliver_all(unix_url(&path), false, MANY));
}

#[test]
fn unix_delivers_everything_multi_thread() {
    let (_dir, path) = socket_path();
    multi_thread().block_on(deliver_all(unix_url(&path), false, MANY));
}

#[test]
fn unix_buffered_delivers_everything_current_thread() {
    let (_dir, path) = socket_path();
    current_thread().block_on(deliver_all(unix_url(&path), true, MANY));
}

#[test]
fn unix_buffered_delivers_everything_multi_thread() {
    let (_dir, path) = socket_path();
    multi_thread().block_on(deliver_all(unix_url(&path), true, MANY));
}

#[test]
fn tcp_delivers_everything_current_thread() {
    current_thread().block_on(deliver_all("tcp://127.0.0.1:0".into(), false, MANY));
}

#[test]
fn tcp_delivers_everything_multi_thread() {
    multi_thread().block_on(deliver_all("tcp://127.0.0.1:0".into(), false, MANY));
}

#[test]
fn tcp_buffered_delivers_everything_multi_thread() {
    multi_thread().block_on(deliver_all("tcp://127.0.0.1:0".into(), true, MANY));
}

#[tokio::test(start_paused = true)]
async fn without_a_receiver_shutdown_returns_at_its_deadline_with_drops_counted() {
    let (_dir, path) = socket_path(); // nothing listens there
    let client = Client::builder(unix_url(&path)).build().unwrap();
    let mut accepted = 0;
    for id in 0..100 {
        if client.try_record(span(id)).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted >= 64, "the queue holds 64 spans");
    let deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = client.shutdown(deadline).await;
    // Paused clock: exact. The backends were all waiting to connect (10 s budget).
    assert_eq!(start.elapsed(), deadline);
    assert!(report.timed_out());
    assert_eq!(report.accepted(), accepted);
    assert_eq!(report.sent(), 0);
    assert_eq!(report.dropped().closed(), accepted, "{report:?}");
    assert_report_settled(&report);
    assert_eq!(client.stats().refused_full(), 100 - accepted);
}

#[tokio::test]
async fn without_a_tcp_receiver_shutdown_returns_with_drops_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // connections are refused
    let client = Client::builder(format!("tcp://{addr}")).build().unwrap();
    for id in 0..30 {
        client.try_record(span(id)).unwrap();
    }
    let report = client.shutdown(Duration::from_millis(300)).await;
    assert!(report.timed_out());
    assert_eq!(report.sent(), 0);
    assert_eq!(report.dropped_total(), 30, "{report:?}");
    assert_report_settled(&report);
}

#[tokio::test]
async fn buffered_spans_are_written_at_shutdown() {
    let (_dir, path) = socket_path();
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    let client = Client::builder(unix_url(&path))
        .buffered(true)
        .parallel_backends(2)
        .build()
        .unwrap();
    for id in 0..10 {
        record_retrying(&client, span(id)).await;
    }
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), 10);
    assert_eq!(
        ids(&receiver.collect(10, PATIENCE).await.unwrap()),
        (0..10).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn shutdown_stops_intake_for_every_handle() {
    let (backend, _rx) = ChannelBackend::pair(16);
    let client = Client::with_backend(backend).capacity(4).build().unwrap();
    let other = client.clone();
    client.try_record(span(1)).unwrap();
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out());
    assert_eq!(report.sent(), 1);
    assert!(other.is_closed());
    let refused = other.try_record(span(2)).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_span().id, 2, "the span is handed back");
    let refused = other.record(span(3)).await.unwrap_err();
    assert_eq!(refused.into_span().id, 3);
    assert!(other.record_with_receipt(span(4)).unwrap_err().is_closed());
    assert!(other.flush().await.unwrap_err().is_closed());
    let stats = other.stats();
    assert_eq!(stats.refused_closed(), 3);
    assert_eq!(stats.flushes_failed(), 1);
    // A second shutdown waits for the same (finished) one.
    let again = other.shutdown(Duration::from_millis(1)).await;
    assert!(!again.timed_out());
    assert_eq!(again.sent(), 1);
}

#[tokio::test]
async fn dropping_the_last_handle_lets_the_workers_send_what_is_queued() {
    let (backend, mut rx) = ChannelBackend::pair(1);
    let client = Client::with_backend(backend).capacity(8).build().unwrap();
    for id in 0..8 {
        client.try_record(span(id)).unwrap();
    }
    let clone = client.clone();
    drop(client);
    drop(clone); // never waits
    let mut got = Vec::new();
    while let Some(s) = rx.recv().await {
        got.push(s.id);
    }
    // Every queued span was sent, then the worker dropped the backend (closing the
    // channel): the queue closed with the last handle.
    assert_eq!(got, (0..8).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stuck_client_never_blocks_and_the_workers_exit() {
    let (_dir, path) = socket_path(); // nothing listens: every span waits to connect
    let reports = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let sink = {
        let reports = reports.clone();
        move |name: &str, value: i64, _: &[&str], _: f64| {
            reports.lock().unwrap().push((name.to_owned(), value));
        }
    };
    let sink: Arc<dyn StatsCounter + Send + Sync> = Arc::new(sink);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(2)
        .capacity(4)
        .connect_timeout(Duration::from_secs(5))
        .report_statistics(sink, Duration::from_secs(3600), ["t:1"])
        .build()
        .unwrap();
    let accepted = (0..6)
        .filter(|id| client.try_record(span(*id)).is_ok())
        .count() as i64;
    let start = Instant::now();
    drop(client);
    assert_eq!(start.elapsed(), Duration::ZERO);
    // The statistics task reports a last time once every worker has exited: each span
    // waited out its connect timeout (5 s each, 2 backends).
    loop {
        if !reports.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "workers never exited"
        );
    }
    let got = reports.lock().unwrap().clone();
    let expected = ("trace_client.records_succeeded_total".to_owned(), accepted);
    assert!(got.contains(&expected), "{got:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn neutralizing_a_live_client_drops_what_it_holds_and_refuses_the_rest() {
    let (_dir, path) = socket_path();
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .buffered(true)
        .build()
        .unwrap();
    // Delivered before: these stay delivered.
    client.try_record(span(1)).unwrap();
    client.flush().await.unwrap();
    assert_ids(&receiver.collect(1, PATIENCE).await.unwrap(), [1]);
    // Queued or buffered, never flushed.
    for id in 10..20 {
        client.try_record(span(id)).unwrap();
    }
    let clone = client.clone();
    clone.neutralize();
    assert!(client.is_closed());
    assert!(client.try_record(span(30)).unwrap_err().is_closed());
    assert!(client.flush().await.unwrap_err().is_closed());
    // The backends are already stopping; shutdown only waits for them.
    let report = client.shutdown(Duration::from_secs(5)).await;
    assert_report_settled(&report);
    let stats = client.stats();
    assert_eq!(stats.accepted(), 11, "{stats:?}");
    assert_eq!(stats.sent(), 1, "{stats:?}");
    assert_eq!(stats.dropped().closed(), 10, "{stats:?}");
    assert_eq!(stats.refused_closed(), 1, "{stats:?}");
    let more = tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await;
    assert!(!matches!(more, Ok(Some(_))), "{more:?}");
}
