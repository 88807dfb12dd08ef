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
//! * every span that went missing (dropped, or lost as above) went missing around a
//!   kill, or in the first write of a connection after a restart (a backend finds its
//!   connection closed only when it next writes to it, which may be much later: on unix
//!   that write fails and its spans are dropped and counted; a UDP socket reports the
//!   kernel's "connection refused" for datagrams sent while nobody listened at its next
//!   send, which fails), or was dropped by the kernel for lack of room (UDP); none in
//!   steady state before the first restart;
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

/// The spans that the first write of each connection after a restart may carry (a write
/// carries at most one batch, at most a queue's worth).
const STALE_WRITES: u64 = (BACKENDS * QUEUE) as u64;

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

/// The IDs from 1 to `upto` that did not arrive and are in no window around a restart.
fn missing(seen: &Seen, upto: u64, windows: &[(u64, u64)]) -> Vec<u64> {
    (1..=upto)
        .filter(|&id| !seen.has(id as i64))
        .filter(|id| !windows.iter().any(|(lo, hi)| (lo..=hi).contains(&id)))
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

        // Spans that may be lost, the ID ranges they may come from, what each
        // incarnation received, and the datagrams the kernel dropped for lack of room
        // (UDP has no flow control: a reader held up by a busy machine loses datagrams
        // at any time; they may go missing anywhere).
        let mut allowance = 0u64;
        let mut kernel_drops = 0u64;
        // Spans of the first write of each connection after each restart.
        let mut stale_writes = 0u64;
        let mut first_cut = None;
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
                    first_cut.get_or_insert(cut);
                    kernel_drops += endpoint.kernel_drops();
                    lives.push(receiver.kill().await);
                    tokio::time::sleep(DOWNTIME).await;
                    receiver = endpoint.restart().await;
                    let bound = kill_bound(transport, BACKENDS);
                    allowance += bound;
                    // Streams: the first write of each connection. UDP: "connection
                    // refused" for datagrams sent while nobody listened, reported by each
                    // socket at its next send, which it fails (maybe much later).
                    stale_writes += STALE_WRITES;
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
                    let settled = || {
                        missing(&seen, cut, &windows).len() as u64
                            <= kernel_drops + endpoint.kernel_drops() + stale_writes
                    };
                    assert!(
                        eventually(PATIENCE, settled).await,
                        "spans missing before a graceful restart: {:?}",
                        missing(&seen, cut, &windows)
                            .iter()
                            .take(10)
                            .collect::<Vec<_>>()
                    );
                    kernel_drops += endpoint.kernel_drops();
                    lives.push(receiver.stop().await);
                    tokio::time::sleep(DOWNTIME).await;
                    receiver = endpoint.restart().await;
                    gate.resume();
                    // Each connection's first write after the pause meets the closed
                    // peer: on unix it fails (its spans dropped, counted), on TCP it may
                    // be taken by the kernel and answered with a reset.
                    if transport.is_stream() {
                        stale_writes += STALE_WRITES;
                    }
                    if transport == Transport::Tcp {
                        allowance += STALE_WRITES;
                    }
                }
            }
        }
        let refused = producer.await.expect("the producer ran");
        let report = client.shutdown(PATIENCE).await;
        // The client closed its connections after its last write; let the receiver read
        // to their end before stopping it.
        eventually(PATIENCE, || {
            missing(&seen, n, &windows).len() as u64
                <= kernel_drops + endpoint.kernel_drops() + stale_writes
        })
        .await;
        kernel_drops += endpoint.kernel_drops();
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
            lost <= allowance + kernel_drops,
            "{}: {lost} sent spans lost, at most {allowance} allowed; {report:?}, lives {lives:?}",
            transport.name()
        );
        // Every span missing (dropped or lost) went missing around a kill, in a stale
        // first write after a restart, or was dropped by the kernel for lack of room;
        // nothing went missing before the first restart but for the kernel.
        let strays = missing(&seen, n, &windows);
        let early = strays
            .iter()
            .filter(|&&id| first_cut.is_some_and(|c| id <= c))
            .count() as u64;
        assert!(
            strays.len() as u64 <= kernel_drops + stale_writes && early <= kernel_drops,
            "{} spans missing away from any kill ({early} before the first restart; \
             {kernel_drops} dropped by the kernel, {stale_writes} allowed in stale \
             writes): {:?}...; windows {windows:?}; {report:?}",
            strays.len(),
            &strays[..strays.len().min(10)]
        );
        // The client came back after every restart.
        for (i, got) in lives.iter().enumerate().skip(1) {
            assert!(*got > 0, "nothing delivered after restart {i}: {lives:?}");
        }
        // The last span, recorded long after the last restart, arrived (unless the kernel
        // dropped datagrams, maybe this one, or, on UDP, a stale "connection refused" from
        // a kill failed the send that carried it: counted as a write error, as above).
        let stale_refusal = transport == Transport::Udp && report.dropped().write_error() > 0;
        assert!(
            seen.has(n as i64) || kernel_drops > 0 || stale_refusal,
            "the last span was lost: {lives:?}; {report:?}"
        );

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
