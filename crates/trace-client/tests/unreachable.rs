//! A receiver that is absent or stops reading: recording stays non-blocking, flush and
//! shutdown return within their limits with errors, and every span is accounted for.
#![cfg(unix)]

mod support;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ssf_proto::SsfSpan;
use support::*;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use trace_client::{
    Backend, Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT, DropReason, FlushError,
};

/// Records `n` spans with `try_record`; returns how many were accepted. Never waits.
fn record_burst(client: &Client, ids: std::ops::Range<i64>) -> u64 {
    let mut accepted = 0;
    for id in ids {
        match client.try_record(span(id)) {
            Ok(()) => accepted += 1,
            Err(e) => assert!(e.is_full(), "{e}"),
        }
    }
    accepted
}

fn dropped_in(err: &FlushError) -> u64 {
    err.failures().iter().map(|f| f.dropped()).sum()
}

#[tokio::test(start_paused = true)]
async fn absent_unix_receiver_flush_fails_within_its_limit_and_later_spans_fail_fast() {
    let (_dir, path) = socket_path(); // nothing listens there, ever
    let client = Client::builder(unix_url(&path)).build().unwrap(); // all defaults
    let first = record_burst(&client, 0..100);
    assert!(first >= 64, "the queue holds 64 spans");

    let start = Instant::now();
    let err = client.flush().await.expect_err("every span was dropped");
    // One connect sequence (all backends try in parallel), then the rest fail fast.
    assert_eq!(start.elapsed(), DEFAULT_CONNECT_TIMEOUT);
    assert!(start.elapsed() < DEFAULT_FLUSH_TIMEOUT);
    assert!(!err.is_timed_out(), "{err}");
    assert_eq!(dropped_in(&err), first, "{err}");
    assert!(
        err.to_string().contains("dropped since the previous flush"),
        "{err}"
    );
    assert_eq!(
        err.failures()[0].error().kind(),
        io::ErrorKind::TimedOut,
        "the first drop's cause: the connect sequence ran out"
    );

    // The backends are down: a new burst is taken and dropped at once, the queue does
    // not stay full, and the next flush says so without waiting for a connect timeout.
    let start = Instant::now();
    let second = record_burst(&client, 100..164);
    assert_eq!(second, 64);
    let err = client.flush().await.expect_err("dropped again");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(dropped_in(&err), second, "{err}");

    let report = client.shutdown(Duration::from_secs(5)).await;
    assert!(!report.timed_out(), "nothing is left waiting: {report:?}");
    assert_eq!(report.accepted(), first + second);
    assert_eq!(report.sent(), 0);
    assert_eq!(report.dropped().connect_timeout(), first + second);
    assert_report_settled(&report);
    let stats = report.stats();
    assert_eq!((stats.flushes_ok(), stats.flushes_failed()), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_flush_during_the_first_connect_sequence_gives_up_at_its_deadline() {
    let (_dir, path) = socket_path();
    let client = Client::builder(unix_url(&path))
        .flush_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let accepted = record_burst(&client, 0..10);
    let start = Instant::now();
    let err = client.flush().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(err.is_timed_out(), "{err}");
    assert!(err.to_string().starts_with("flush timed out on "), "{err}");
    assert!(
        err.failures()
            .iter()
            .all(|f| f.error().kind() == io::ErrorKind::TimedOut)
    );
    // A shutdown within the connect sequence: the spans are counted as closed.
    let report = client.shutdown(Duration::from_secs(1)).await;
    assert!(report.timed_out());
    assert_eq!(report.dropped().closed(), accepted);
    assert_report_settled(&report);
}

#[tokio::test]
async fn absent_tcp_receiver_flush_and_shutdown_report_the_drops() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // the port is closed: connections are refused
    let client = Client::builder(format!("tcp://{addr}"))
        .parallel_backends(2)
        .connect_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let first = record_burst(&client, 0..100);
    let err = tokio::time::timeout(PATIENCE, client.flush())
        .await
        .expect("the flush returns")
        .unwrap_err();
    assert!(!err.is_timed_out(), "{err}");
    assert_eq!(dropped_in(&err), first, "{err}");

    // Down: later bursts drain at once instead of filling the queue.
    let second = record_burst(&client, 100..164);
    assert_eq!(second, 64);
    let err = client.flush().await.unwrap_err();
    assert_eq!(dropped_in(&err), second, "{err}");

    let report = tokio::time::timeout(PATIENCE, client.shutdown(PATIENCE))
        .await
        .expect("shutdown returns");
    assert!(!report.timed_out());
    assert_eq!(report.dropped().connect_timeout(), first + second);
    assert_report_settled(&report);
}

/// Accepts every connection and never reads from it; keeps them open until dropped.
fn black_hole(listener: tokio::net::UnixListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_stops_reading_trips_the_write_timeout() {
    let (_dir, path) = socket_path();
    let hole = black_hole(unix_listener(&path));
    let write_timeout = Duration::from_secs(1);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(2)
        .capacity(16)
        .write_timeout(write_timeout)
        .build()
        .unwrap();
    // 1 MiB spans: a unix socket's buffers hold far less, so the first write stalls.
    let mut accepted = 0;
    for id in 0..16 {
        if client.try_record(big_span(id, 1 << 20)).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 16);
    let start = Instant::now();
    let err = client.flush().await.expect_err("the writes stalled");
    assert!(!err.is_timed_out(), "{err}");
    // Each backend stalls once, for the write timeout, then is down: its other spans
    // fail fast (both backends stall at the same time).
    assert_eq!(start.elapsed(), write_timeout);
    let stats = client.stats();
    assert_eq!(stats.dropped().write_timeout(), 2, "{stats:?}");
    assert_eq!(stats.dropped().connect_timeout(), 14, "{stats:?}");
    assert_eq!(dropped_in(&err), 16);
    let timeouts: Vec<_> = err.failures().iter().map(|f| f.error().kind()).collect();
    assert_eq!(timeouts, [io::ErrorKind::TimedOut; 2], "{err}");
    assert!(err.to_string().contains("write_timeout"), "{err}");
    assert_settled(&stats);

    let report = client.shutdown(Duration::from_secs(5)).await;
    assert!(!report.timed_out());
    assert_report_settled(&report);
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_receiver_that_stops_reading_bounds_flush_and_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let client = Client::builder(format!("tcp://{addr}"))
        .parallel_backends(2)
        .capacity(64)
        .buffered(true)
        .write_timeout(Duration::from_millis(200))
        .max_backoff(Duration::from_millis(50))
        .build()
        .unwrap();
    // 256 KiB spans, 256 of them: more than loopback TCP buffers hold.
    let mut accepted = 0;
    for id in 0..256 {
        let mut s = big_span(id, 256 << 10);
        loop {
            match client.try_record(s) {
                Ok(()) => {
                    accepted += 1;
                    break;
                }
                Err(e) if e.is_full() => {
                    s = e.into_span();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let err = tokio::time::timeout(PATIENCE, client.flush())
        .await
        .expect("the flush returns")
        .expect_err("writes stalled");
    assert!(dropped_in(&err) > 0, "{err}");
    let report = tokio::time::timeout(PATIENCE, client.shutdown(Duration::from_secs(2)))
        .await
        .expect("shutdown returns");
    assert_eq!(report.accepted(), accepted);
    assert!(report.dropped().write_timeout() > 0, "{report:?}");
    assert!(report.sent() < accepted, "{report:?}");
    // Unless the deadline cut a stalled write short, every span is sent or dropped.
    if !report.timed_out() {
        assert_report_settled(&report);
    }
    hole.abort();
}

/// Fails span 1; every other span waits for a permit.
struct FailThenGate(Arc<Semaphore>);

impl Backend for FailThenGate {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        if span.id == 1 {
            return Err(io::Error::other("span 1 refused"));
        }
        self.0.acquire().await.expect("open").forget();
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn drops_reach_the_next_flush_once_even_across_a_flush_that_timed_out() {
    let gate = Arc::new(Semaphore::new(0));
    let client = Client::with_backend(FailThenGate(gate.clone()))
        .capacity(8)
        .build()
        .unwrap();
    client.try_record(span(1)).unwrap();
    client.try_record(span(2)).unwrap();
    // The backend is stuck on span 2: the flush gives up at its deadline.
    let start = Instant::now();
    let err = client
        .flush_with_deadline(Duration::from_secs(3))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert!(err.is_timed_out());
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].dropped(), 0);

    // Released: span 1's failure is reported by the next flush, and only by it.
    gate.add_permits(1);
    let err = client.flush().await.unwrap_err();
    assert!(!err.is_timed_out());
    assert_eq!(err.failures()[0].dropped(), 1);
    assert!(err.to_string().contains("span 1 refused"), "{err}");
    client.flush().await.expect("nothing dropped since");
    let stats = client.stats();
    assert_eq!((stats.flushes_ok(), stats.flushes_failed()), (1, 2));
    assert_eq!(stats.dropped().write_error(), 1);
    assert_settled(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_user_backend_bounds_flush_and_shutdown() {
    struct Stuck;
    impl Backend for Stuck {
        async fn send(&mut self, _: &SsfSpan) -> io::Result<()> {
            std::future::pending().await
        }
    }
    let client = Client::with_backend(Stuck)
        .capacity(4)
        .flush_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let accepted = record_burst(&client, 0..10);
    assert!(accepted >= 4);
    let start = Instant::now();
    let err = client.flush().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(err.is_timed_out());
    let start = Instant::now();
    let report = client.shutdown(Duration::from_secs(2)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(report.timed_out());
    assert_eq!(report.dropped().closed(), accepted);
    assert_report_settled(&report);
    let stats = report.stats();
    assert_eq!(stats.flushes_failed(), 1);
}

#[tokio::test]
async fn write_timeout_and_flush_timeout_must_be_positive() {
    let err = Client::builder("udp://127.0.0.1:8128")
        .write_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("write_timeout"), "{err}");
    let err = Client::builder("udp://127.0.0.1:8128")
        .flush_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("flush_timeout"), "{err}");
    let (backend, _rx) = trace_client::testing::ChannelBackend::pair(1);
    let err = Client::with_backend(backend)
        .write_timeout(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("write_timeout"), "{err}");
    assert_eq!(DropReason::WriteTimeout.as_str(), "write_timeout");
}
