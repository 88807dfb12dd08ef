//! A receiver that is absent (nothing listens) or black-holed (it accepts connections
//! and never reads them):
//!
//! * recording never waits: a task ticking every 10 ms on the same single-threaded
//!   runtime is never late by a second, and a full queue refuses (counted);
//! * memory stays flat (resident memory grows by less than a generous bound);
//! * once nothing is offered, the client costs next to no CPU (it does not spin on
//!   reconnects): the runtime thread uses less than a generous bound over 3 s;
//! * flush and shutdown return by their deadlines (plus a generous margin), flush with an
//!   error naming the drops;
//! * the accounting stays exact: accepted = sent + dropped.
//!
//! Each client runs on a `current_thread` runtime, so the CPU time of the test's thread
//! is the client's. The tests of this file run one at a time, so that the resident
//! memory measured is theirs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use integration_tests::*;
use tokio::time::Instant;
use trace_client::{Client, DropReason};

/// How long a client is offered spans.
const OFFER: Duration = Duration::from_secs(1);

/// How long a client is left alone before its CPU time is read.
const IDLE: Duration = Duration::from_secs(3);

/// The most CPU time the runtime thread may use while the client is left alone (a
/// client spinning on reconnects would use all of it).
const IDLE_CPU_LIMIT: Duration = Duration::from_millis(300);

/// The most resident memory a scenario may add.
const RSS_GROWTH_LIMIT: u64 = 64 << 20;

/// How late the ticker may be, at worst.
const LATENESS_LIMIT: Duration = Duration::from_secs(1);

/// Added to a deadline when checking that something returned by it: scheduling noise.
const MARGIN: Duration = Duration::from_secs(5);

const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(1);

/// The clients' queue capacity.
const CAPACITY: usize = 256;

/// Records spans in bursts of twice the queue's capacity, sleeping a millisecond between
/// bursts (when the backends and the ticker run), for `OFFER`, while a ticker measures
/// how late it wakes up. Returns (offered, worst lateness).
///
/// A burst larger than the queue fills it whatever the backends do meanwhile: a backend
/// that is down drops spans as fast as it takes them, and the kernel's buffers for a
/// black-holed stream take megabytes before a write blocks.
async fn offer(client: &Client) -> (u64, Duration) {
    let max_late_us = Arc::new(AtomicU64::new(0));
    let late = Arc::clone(&max_late_us);
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = tick.tick().await;
            let l = Instant::now().saturating_duration_since(due);
            late.fetch_max(l.as_micros() as u64, Ordering::Relaxed);
        }
    });
    let start = Instant::now();
    let mut offered = 0u64;
    while start.elapsed() < OFFER {
        offered += 1;
        let _ = client.try_record(span(offered as i64));
        if offered % (2 * CAPACITY as u64) == 0 {
            // Let the backends and the ticker run; a full queue keeps refusing meanwhile.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    ticker.abort();
    (
        offered,
        Duration::from_micros(max_late_us.load(Ordering::Relaxed)),
    )
}

/// Offers spans to `client`, leaves it alone, flushes and shuts it down, checking every
/// guarantee; returns the shutdown report's drop counts for scenario-specific checks.
async fn unreachable(client: Client, what: &str) -> trace_client::DropCounts {
    let rss_before = rss_bytes().expect("VmRSS");
    let (offered, late) = offer(&client).await;
    let rss_offered = rss_bytes().unwrap_or(0);
    let stats = client.stats();
    assert_eq!(
        offered,
        stats.accepted() + stats.refused(),
        "{what}: {stats:?}"
    );
    // Datagrams to a closed port leave at once: only streams fill the queue.
    if !what.contains("udp") {
        assert!(
            stats.refused_full() > 0,
            "{what}: the queue never filled: {stats:?}"
        );
    }
    assert!(
        late < LATENESS_LIMIT,
        "{what}: the ticker was {late:?} late"
    );

    let cpu_before = thread_cpu().expect("thread cpu time");
    tokio::time::sleep(IDLE).await;
    let idle_cpu = thread_cpu().expect("thread cpu time") - cpu_before;
    let rss_idle = rss_bytes().unwrap_or(0);
    assert!(
        idle_cpu < IDLE_CPU_LIMIT,
        "{what}: {idle_cpu:?} of cpu over {IDLE:?} of idleness"
    );

    let start = Instant::now();
    let flushed = client.flush().await;
    let flush_took = start.elapsed();
    assert!(
        flush_took < FLUSH_TIMEOUT + MARGIN,
        "{what}: flush took {flush_took:?}"
    );
    let err = flushed.expect_err("a flush reports the drops");
    assert!(
        err.is_timed_out() || err.failures().iter().any(|f| f.dropped() > 0),
        "{what}: {err}"
    );

    let start = Instant::now();
    let report = client.shutdown(SHUTDOWN_DEADLINE).await;
    let shutdown_took = start.elapsed();
    assert!(
        shutdown_took < SHUTDOWN_DEADLINE + MARGIN,
        "{what}: shutdown took {shutdown_took:?}"
    );
    assert_eq!(
        report.accepted(),
        report.sent() + report.dropped_total(),
        "{what}: {report:?}"
    );
    let growth = rss_offered.max(rss_idle).saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_LIMIT,
        "{what}: resident memory grew by {growth} bytes"
    );
    report.dropped()
}

fn builder(url: &str) -> trace_client::ClientBuilder {
    Client::builder(url)
        .parallel_backends(2)
        .capacity(CAPACITY)
        .flush_timeout(FLUSH_TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .write_timeout(Duration::from_millis(300))
        .max_backoff(Duration::from_millis(200))
}

/// An address of `transport` where nothing listens, and the guard keeping it so.
fn absent(transport: Transport) -> (String, Option<tempfile::TempDir>) {
    match transport {
        Transport::Unix => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("unix://{}", dir.path().join("absent.sock").display());
            (url, Some(dir))
        }
        Transport::Tcp => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            (format!("tcp://{}", l.local_addr().expect("addr")), None)
        }
        Transport::Udp => {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            (format!("udp://{}", s.local_addr().expect("addr")), None)
        }
    }
}

fn absent_receiver(transport: Transport) {
    let _serial = serial();
    runtime(false).block_on(async {
        let (url, _guard) = absent(transport);
        let client = builder(&url).build().expect("client");
        let what = format!("absent {}", transport.name());
        let dropped = unreachable(client, &what).await;
        if transport.is_stream() {
            assert!(
                dropped.get(DropReason::ConnectTimeout) > 0,
                "{what}: {dropped:?}"
            );
        } else {
            // Datagrams to a closed port are lost; the errors the kernel reports for
            // them drop later ones.
            assert!(dropped.write_error() > 0, "{what}: {dropped:?}");
        }
    });
}

#[test]
fn absent_unix_receiver() {
    absent_receiver(Transport::Unix);
}

#[test]
fn absent_tcp_receiver() {
    absent_receiver(Transport::Tcp);
}

#[test]
fn absent_udp_receiver() {
    absent_receiver(Transport::Udp);
}

/// Accepts connections and holds them open without ever reading. Its connections have a
/// small receive buffer, so that they fill up quickly.
async fn black_hole_tcp() -> (String, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let l = socket.listen(16).expect("listen");
    let url = format!("tcp://{}", l.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = l.accept().await {
            held.push(conn);
        }
    });
    (url, task)
}

/// As [`black_hole_tcp`], on a unix socket.
async fn black_hole_unix(dir: &std::path::Path) -> (String, tokio::task::JoinHandle<()>) {
    let path = dir.join("hole.sock");
    let l = tokio::net::UnixListener::bind(&path).expect("bind");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = l.accept().await {
            held.push(conn);
        }
    });
    (format!("unix://{}", path.display()), task)
}

fn black_holed_receiver(transport: Transport, buffered: bool) {
    let _serial = serial();
    runtime(false).block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, hole) = match transport {
            Transport::Tcp => black_hole_tcp().await,
            _ => black_hole_unix(dir.path()).await,
        };
        let client = builder(&url).buffered(buffered).build().expect("client");
        let what = format!("black-holed {} buffered={buffered}", transport.name());
        let dropped = unreachable(client, &what).await;
        assert!(
            dropped.get(DropReason::WriteTimeout) > 0,
            "{what}: {dropped:?}"
        );
        hole.abort();
    });
}

#[test]
fn black_holed_unix_receiver() {
    black_holed_receiver(Transport::Unix, false);
}

#[test]
fn black_holed_unix_receiver_buffered() {
    black_holed_receiver(Transport::Unix, true);
}

#[test]
fn black_holed_tcp_receiver() {
    black_holed_receiver(Transport::Tcp, false);
}
