//! Receiver restarts during a paced stream, over each transport: the receiver is killed
//! (abruptly, twice) and restarted gracefully (once) while the client records spans at a
//! fixed rate.
//!
//! * the accounting is exact: every span offered is accepted, and accepted = sent +
//!   dropped;
//! * every span counted as sent arrived, except what the kernel held for a receiver that
//!   was killed (bounded by socket buffer sizes) and, on UDP, what was sent while nobody
//!   listened; nothing arrived twice;
//! * across the graceful restart nothing is lost on unix sockets and UDP; on TCP at most
//!   one write per connection (the write that meets the closed peer and is answered with
//!   a reset);
//! * after each restart the client delivers again (within its maximum backoff; no timing
//!   is asserted);
//! * afterwards no task and no file descriptor is left behind.
//!
//! By default 20 000 spans at 10 000 spans/s per transport; the full-size runs (100 000
//! spans at 50 000 spans/s) are ignored, run them with
//! `cargo test -p integration-tests --release --test restart -- --ignored`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use integration_tests::*;
use trace_client::Client;

/// How long a receiver stays dead before its successor binds.
const DOWNTIME: Duration = Duration::from_millis(50);

const BACKENDS: usize = 2;

/// The client's queue capacity.
const QUEUE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// The receiver dies with whatever it holds.
    Kill,
    /// The producer pauses, the client flushes, the receiver drains and stops.
    Graceful,
}

/// When to restart (fraction of the spans recorded) and how.
const PLAN: [(f64, Restart); 3] = [
    (0.2, Restart::Kill),
    (0.45, Restart::Graceful),
    (0.7, Restart::Kill),
];

/// Up to 10 IDs from 1 to `upto` that did not arrive and are in no window around a
/// restart.
fn missing(seen: &Seen, upto: u64, windows: &[(u64, u64)]) -> Vec<u64> {
    (1..=upto)
        .filter(|&id| !seen.has(id as i64))
        .filter(|id| !windows.iter().any(|(lo, hi)| (lo..=hi).contains(&id)))
        .take(10)
        .collect()
}

fn scenario(transport: Transport, n: u64, rate: f64) {
    let _serial = serial();
    runtime(true).block_on(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let (tasks_before, fds_before) = (metrics.num_alive_tasks(), open_fds());

        let seen = Seen::new(n as usize);
        let (endpoint, mut receiver) = Endpoint::start(transport, Arc::clone(&seen)).await;
        let client = Client::builder(endpoint.url())
            .parallel_backends(BACKENDS)
            .capacity(QUEUE)
            .backoff(Duration::from_millis(5))
            .max_backoff(Duration::from_millis(100))
            .build()
            .expect("client");

        let gate = Gate::default();
        let recorded = Arc::new(AtomicU64::new(0));
        let producer = tokio::spawn(pace(
            client.clone(),
            n,
            rate,
            gate.clone(),
            Arc::clone(&recorded),
        ));

        // Spans that may be lost, the ID ranges they may come from, and what each
        // incarnation received.
        let mut allowance = 0u64;
        let mut windows = Vec::new();
        let mut lives = Vec::new();
        for (at, how) in PLAN {
            let target = (n as f64 * at) as u64;
            assert!(
                eventually(PATIENCE, || recorded.load(Ordering::Relaxed) >= target).await,
                "the producer got stuck before {target} spans"
            );
            match how {
                Restart::Kill => {
                    let sent_before = client.stats().sent();
                    let cut = recorded.load(Ordering::Relaxed);
                    lives.push(receiver.kill().await);
                    tokio::time::sleep(DOWNTIME).await;
                    receiver = endpoint.restart().await;
                    let bound = kill_bound(transport, BACKENDS);
                    allowance += bound;
                    // Lost: what the dead receiver held (recorded before the kill) and
                    // what went to its closed sockets (recorded before the restart, or
                    // still queued then).
                    windows.push((
                        cut.saturating_sub(bound),
                        recorded.load(Ordering::Relaxed) + QUEUE as u64 + BACKENDS as u64,
                    ));
                    if transport == Transport::Udp {
                        // Datagrams sent while nobody listened are gone.
                        allowance += client.stats().sent() - sent_before;
                    }
                }
                Restart::Graceful => {
                    gate.pause().await;
                    // Errors here report spans dropped at the previous kill.
                    let flushed = client.flush().await;
                    assert!(
                        !flushed.as_ref().is_err_and(|e| e.is_timed_out()),
                        "{flushed:?}"
                    );
                    // Everything recorded is written; let it all arrive (on TCP some may
                    // still be in the client's send buffer), then stop.
                    let cut = recorded.load(Ordering::Relaxed);
                    assert!(
                        eventually(PATIENCE, || missing(&seen, cut, &windows).is_empty()).await,
                        "spans missing before a graceful restart: {:?}",
                        missing(&seen, cut, &windows)
                    );
                    lives.push(receiver.stop().await);
                    tokio::time::sleep(DOWNTIME).await;
                    receiver = endpoint.restart().await;
                    let cut = recorded.load(Ordering::Relaxed);
                    gate.resume();
                    // Each connection's first write after the pause meets the closed
                    // peer: on unix it fails (dropped, counted), on TCP it may be taken
                    // by the kernel and answered with a reset.
                    allowance += if transport == Transport::Tcp {
                        BACKENDS as u64
                    } else {
                        0
                    };
                    windows.push((cut + 1, cut + BACKENDS as u64));
                }
            }
        }
        let refused = producer.await.expect("the producer ran");
        let report = client.shutdown(PATIENCE).await;
        // The client closed its connections after its last write; let the receiver read
        // to their end before stopping it.
        eventually(PATIENCE, || missing(&seen, n, &windows).is_empty()).await;
        lives.push(receiver.stop().await);

        // Exact accounting.
        assert_eq!(refused, 0, "{report:?}");
        assert!(!report.timed_out(), "{report:?}");
        assert_eq!(report.accepted(), n, "{report:?}");
        assert_eq!(
            report.accepted(),
            report.sent() + report.dropped_total(),
            "{report:?}"
        );
        assert_eq!(report.dropped().closed(), 0, "{report:?}");

        // Delivery: nothing twice, nothing unknown, only the allowance lost.
        assert_eq!(seen.duplicates(), 0);
        assert_eq!(seen.strays(), 0);
        let received = seen.unique();
        assert!(received <= report.sent(), "{received} > {report:?}");
        let lost = report.sent() - received;
        assert!(
            lost <= allowance,
            "{}: {lost} sent spans lost, at most {allowance} allowed; {report:?}, lives {lives:?}",
            transport.name()
        );
        // Every span missing (dropped or lost) went missing around a restart.
        let strays = missing(&seen, n, &windows);
        assert!(
            strays.is_empty(),
            "spans missing away from any restart: {strays:?}; windows {windows:?}"
        );
        // The client came back after every restart.
        for (i, got) in lives.iter().enumerate().skip(1) {
            assert!(*got > 0, "nothing delivered after restart {i}: {lives:?}");
        }
        // The last spans, recorded long after the last restart, all arrived.
        assert!(seen.has(n as i64), "the last span was lost: {lives:?}");

        drop(client);
        drop(endpoint);
        let (tasks, fds) = settle(tasks_before, fds_before).await;
        assert!(
            tasks <= tasks_before,
            "{tasks} tasks alive, {tasks_before} before"
        );
        assert!(fds <= fds_before, "{fds} open fds, {fds_before} before");
    });
}

#[test]
fn unix_receiver_restarts() {
    scenario(Transport::Unix, 20_000, 10_000.0);
}

#[test]
fn tcp_receiver_restarts() {
    scenario(Transport::Tcp, 20_000, 10_000.0);
}

#[test]
fn udp_receiver_restarts() {
    scenario(Transport::Udp, 20_000, 10_000.0);
}

#[test]
#[ignore = "full size (100 000 spans per transport); run with --release -- --ignored"]
fn unix_receiver_restarts_full_size() {
    scenario(Transport::Unix, 100_000, 50_000.0);
}

#[test]
#[ignore = "full size (100 000 spans per transport); run with --release -- --ignored"]
fn tcp_receiver_restarts_full_size() {
    scenario(Transport::Tcp, 100_000, 50_000.0);
}

#[test]
#[ignore = "full size (100 000 spans per transport); run with --release -- --ignored"]
fn udp_receiver_restarts_full_size() {
    scenario(Transport::Udp, 100_000, 50_000.0);
}
