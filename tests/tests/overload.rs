//! Overload: producers offer ten times the rate the client sustains to a slow unix
//! receiver (its consumer takes 10 000 spans per second; the receiver pushes back). The
//! client refuses what does not fit (and counts it), its memory stays bounded by the
//! queue capacity, the accounting stays exact, everything accepted is delivered, and the
//! process stays responsive: a task ticking every 10 ms on the same runtime is never
//! late by a second.
//!
//! The default run lasts 3 seconds; the minute-long run is ignored:
//! `cargo test -p integration-tests --release --test overload -- --ignored`.
//!
//! This file holds one test run by default, so the resident memory measured is this
//! scenario's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use integration_tests::*;
use tokio::task::JoinSet;
use tokio::time::Instant;
use trace_client::Client;

const PRODUCERS: u64 = 2;

/// Spans per second the receiver's consumer takes.
const RECEIVER_RATE: f64 = 10_000.0;

/// The most resident memory the scenario may add, client and receiver together: the
/// client holds at most its queue (64 spans by default) and the batches its backends
/// took from it, the receiver its channel (4096 spans); the rest is allocator slack.
const RSS_GROWTH_LIMIT: u64 = 64 << 20;

/// How late the ticker may be, at worst: very generous, to stay clear of CI noise.
const LATENESS_LIMIT: Duration = Duration::from_secs(1);

/// The rate the client sustains: spans sent per second while one producer records
/// for `secs` seconds, waiting for room, after half a second filling the buffers on the
/// way.
async fn sustained_rate(client: &Client, secs: f64) -> f64 {
    let mut id = 0i64;
    let mut record_for = async |secs: f64| {
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < secs {
            id += 1;
            client.record(span(id)).await.expect("open client");
        }
    };
    record_for(0.5).await;
    let start = Instant::now();
    let sent_before = client.stats().sent();
    record_for(secs).await;
    (client.stats().sent() - sent_before) as f64 / start.elapsed().as_secs_f64()
}

/// Records at `rate` spans per second (or as fast as it can, if that is less) for
/// `duration` without ever waiting for room; returns how many spans it offered.
async fn offer(client: Client, rate: f64, duration: Duration) -> u64 {
    let start = Instant::now();
    let mut i = 0u64;
    loop {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // A producer behind its schedule stops at the end all the same.
        if due >= start + duration || Instant::now() >= start + duration {
            return i;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        i += 1;
        // A refusal is counted by the client; the span is dropped here.
        let _ = client.try_record(span(i as i64));
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

fn overload(duration: Duration) {
    runtime(true).block_on(async {
        let seen = Seen::new(0);
        let (endpoint, receiver) =
            Endpoint::start_at_rate(Transport::Unix, Arc::clone(&seen), Some(RECEIVER_RATE)).await;
        let client = Client::builder(endpoint.url()).build().expect("client");

        let sustained = sustained_rate(&client, 1.0).await;
        let rate = 10.0 * sustained;
        let before = client.stats();
        let rss_before = rss_bytes().expect("VmRSS");

        // Watchers: the ticker's lateness, the queue's length, the resident memory.
        let max_late_us = Arc::new(AtomicU64::new(0));
        let max_queued = Arc::new(AtomicU64::new(0));
        let max_rss = Arc::new(AtomicU64::new(rss_before));
        let ticker = {
            let (late, queued, rss) = (
                Arc::clone(&max_late_us),
                Arc::clone(&max_queued),
                Arc::clone(&max_rss),
            );
            let client = client.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let due = tick.tick().await;
                    let l = Instant::now().saturating_duration_since(due);
                    late.fetch_max(l.as_micros() as u64, Ordering::Relaxed);
                    queued.fetch_max(client.stats().queued(), Ordering::Relaxed);
                    if let Some(b) = rss_bytes() {
                        rss.fetch_max(b, Ordering::Relaxed);
                    }
                }
            })
        };

        let mut producers = JoinSet::new();
        for _ in 0..PRODUCERS {
            producers.spawn(offer(client.clone(), rate / PRODUCERS as f64, duration));
        }
        let mut offered = 0;
        while let Some(n) = producers.join_next().await {
            offered += n.expect("a producer ran");
        }
        ticker.abort();
        let report = client.shutdown(PATIENCE).await;
        eventually(PATIENCE, || receiver.received() >= report.sent()).await;
        let received = receiver.stop().await;

        let stats = report.stats();
        let accepted = stats.accepted() - before.accepted();
        let refused = stats.refused() - before.refused();
        let sent_rate = (stats.sent() - before.sent()) as f64 / duration.as_secs_f64();
        let late = Duration::from_micros(max_late_us.load(Ordering::Relaxed));
        let growth = max_rss.load(Ordering::Relaxed).saturating_sub(rss_before);
        let summary = format!(
            "sustained {sustained:.0}/s, offered {offered} ({:.0}/s, paced at {rate:.0}/s), \
             accepted {accepted}, \
             refused {refused}, sent {sent_rate:.0}/s, max queued {}, rss +{} KiB, \
             ticker late {late:?}; {report:?}",
            offered as f64 / duration.as_secs_f64(),
            max_queued.load(Ordering::Relaxed),
            growth / 1024,
        );

        // Refused spans are counted; accounting is exact; all accepted spans arrive.
        assert_eq!(offered, accepted + refused, "{summary}");
        // Many times the sustained rate was offered (ten times, unless the producers
        // could not keep that pace), and the excess refused.
        assert!(
            offered as f64 >= 5.0 * sustained * duration.as_secs_f64(),
            "the producers did not offer ten times the rate: {summary}"
        );
        assert!(
            refused as f64 >= 0.5 * offered as f64,
            "the client was not overloaded: {summary}"
        );
        assert_eq!(
            refused,
            stats.refused_full() - before.refused_full(),
            "{summary}"
        );
        assert!(!report.timed_out(), "{summary}");
        assert_eq!(
            stats.accepted(),
            stats.sent() + stats.dropped_total(),
            "{summary}"
        );
        assert_eq!(stats.dropped_total(), 0, "{summary}");
        assert_eq!(received, stats.sent(), "{summary}");
        // Bounded memory (an unbounded queue would hold about a gigabyte by now) and a
        // responsive runtime. The queue length sampled is only reported: a snapshot of
        // the counters may overstate it while spans are sent between two reads.
        assert!(growth < RSS_GROWTH_LIMIT, "{summary}");
        assert!(late < LATENESS_LIMIT, "{summary}");
        eprintln!("overload: {summary}");
    });
}

#[test]
fn overload_for_three_seconds() {
    overload(Duration::from_secs(3));
}

#[test]
#[ignore = "a minute long; run with --release -- --ignored"]
fn overload_for_a_minute() {
    overload(Duration::from_secs(60));
}
