//! Delivery accounting: [`ClientStats`], [`DropCounts`] and veneur's statistics report.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::DropReason;
use crate::padded::Padded;

/// Counters, padded so that the producers' counter and the workers' counters do not
/// share a cache line.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Incremented by producers before queueing (and taken back when the queue refuses),
    /// so that `accepted >= sent + dropped` in every snapshot. Spread over shards, a
    /// cache line each, one per producer thread (taken in turn: threads share one only
    /// past eight), so that producers on several cores do not pass one line back and
    /// forth at every span. The count is the sum of the shards.
    accepted: [Padded<AtomicU64>; ACCEPTED_SHARDS],
    refused: Padded<[AtomicU64; 2]>,
    sent: Padded<AtomicU64>,
    dropped: [AtomicU64; DROP_REASONS],
    flushes_ok: AtomicU64,
    flushes_failed: AtomicU64,
    reconnects: AtomicU64,
    bytes_written: AtomicU64,
    panics: AtomicU64,
    baggage_refused: AtomicU64,
    /// veneur's flush counters, reset when reported (§4.8 order).
    report: [AtomicU64; 2],
    /// What veneur's record counters last reported: they report the growth of
    /// `accepted` and `refused` since, which costs the record path nothing extra.
    reported_records: [AtomicU64; 2],
}

const DROP_REASONS: usize = 9;
/// How many shards the `accepted` count is spread over (a power of two).
const ACCEPTED_SHARDS: usize = 8;
const REFUSED_FULL: usize = 0;
const REFUSED_CLOSED: usize = 1;
const REPORT_FLUSHES_FAILED: usize = 0;
const REPORT_FLUSHES_OK: usize = 1;
const REPORT_RECORDS_FAILED: usize = 2;
const REPORT_RECORDS_OK: usize = 3;

fn drop_index(reason: DropReason) -> usize {
    match reason {
        DropReason::Closed => 0,
        DropReason::WriteError => 1,
        DropReason::ConnectTimeout => 2,
        DropReason::Oversize => 3,
        DropReason::Panicked => 4,
        DropReason::WriteTimeout => 5,
        DropReason::Disabled => 6,
        DropReason::Unsampled => 7,
        DropReason::GrpcStatus => 8,
    }
}

/// This thread's shard of [`Counters::accepted`] (the same for every client): threads
/// take the shards in turn, the first time they record.
#[inline]
fn accepted_shard() -> usize {
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let shard = SHARD
        .try_with(|s| match s.get() {
            usize::MAX => {
                let next = next_shard();
                s.set(next);
                next
            }
            shard => shard,
        })
        // A thread-local destructor recording a span while its thread ends: any shard
        // keeps the sum right.
        .unwrap_or(0);
    shard & (ACCEPTED_SHARDS - 1)
}

#[cold]
fn next_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) % ACCEPTED_SHARDS
}

impl Counters {
    /// Called before a span is handed to the queue.
    #[inline]
    pub(crate) fn pre_accept(&self) {
        self.accepted[accepted_shard()].fetch_add(1, Ordering::Relaxed);
    }

    /// The accepted count: the sum of its shards (wrapping, so that a span taken back
    /// on another shard than the one that counted it still leaves the sum right; every
    /// caller takes back on the thread that counted).
    fn accepted(&self, order: Ordering) -> u64 {
        self.accepted
            .iter()
            .fold(0u64, |sum, shard| sum.wrapping_add(shard.load(order)))
    }

    /// The queue refused a span after [`pre_accept`](Self::pre_accept).
    #[inline]
    pub(crate) fn unaccept(&self, full: bool) {
        self.take_back();
        self.refused(full);
    }

    /// Undoes [`pre_accept`](Self::pre_accept) without counting a refusal (the caller
    /// tries again).
    #[inline]
    pub(crate) fn take_back(&self) {
        self.accepted[accepted_shard()].fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn refused(&self, full: bool) {
        let i = if full { REFUSED_FULL } else { REFUSED_CLOSED };
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn sent(&self, n: u64) {
        if n > 0 {
            self.sent.fetch_add(n, Ordering::Release);
        }
    }

    /// A span handed to a disabled client: accepted and dropped at once, with one
    /// increment (snapshots count it in `accepted` too).
    #[inline]
    pub(crate) fn disabled(&self) {
        self.dropped[drop_index(DropReason::Disabled)].fetch_add(1, Ordering::Relaxed);
    }

    /// A span its client's sampler left out: accepted and dropped at once, as
    /// [`disabled`](Self::disabled).
    #[inline]
    pub(crate) fn unsampled(&self) {
        self.dropped[drop_index(DropReason::Unsampled)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn baggage_refused(&self) {
        self.baggage_refused.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped[drop_index(reason)].fetch_add(n, Ordering::Release);
        }
    }

    pub(crate) fn flushed(&self, ok: bool) {
        if ok {
            self.flushes_ok.fetch_add(1, Ordering::Relaxed);
            self.report[REPORT_FLUSHES_OK].fetch_add(1, Ordering::Relaxed);
        } else {
            self.flushes_failed.fetch_add(1, Ordering::Relaxed);
            self.report[REPORT_FLUSHES_FAILED].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn wrote(&self, bytes: usize) {
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        // Read what the workers count first and what the producers count last: a span is
        // counted as accepted before it can be sent or dropped, so `queued` never underflows.
        let sent = self.sent.load(Ordering::Acquire);
        let d = |r| self.dropped[drop_index(r)].load(Ordering::Acquire);
        let dropped = DropCounts {
            closed: d(DropReason::Closed),
            write_error: d(DropReason::WriteError),
            connect_timeout: d(DropReason::ConnectTimeout),
            oversize: d(DropReason::Oversize),
            panicked: d(DropReason::Panicked),
            write_timeout: d(DropReason::WriteTimeout),
            disabled: d(DropReason::Disabled),
            unsampled: d(DropReason::Unsampled),
            grpc_status: d(DropReason::GrpcStatus),
        };
        // Spans discarded while disabled or unsampled were never queued: counted once, in
        // both.
        let accepted = self.accepted(Ordering::Acquire) + dropped.disabled + dropped.unsampled;
        ClientStats {
            accepted,
            refused_full: self.refused[REFUSED_FULL].load(Ordering::Relaxed),
            refused_closed: self.refused[REFUSED_CLOSED].load(Ordering::Relaxed),
            sent,
            queued: accepted.saturating_sub(sent.saturating_add(dropped.total())),
            dropped,
            flushes_ok: self.flushes_ok.load(Ordering::Relaxed),
            flushes_failed: self.flushes_failed.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
            baggage_refused: self.baggage_refused.load(Ordering::Relaxed),
        }
    }

    fn take_report(&self, i: usize) -> u64 {
        match i {
            REPORT_RECORDS_FAILED | REPORT_RECORDS_OK => {
                let now = if i == REPORT_RECORDS_OK {
                    self.accepted(Ordering::Relaxed)
                        + self.dropped[drop_index(DropReason::Disabled)].load(Ordering::Relaxed)
                        + self.dropped[drop_index(DropReason::Unsampled)].load(Ordering::Relaxed)
                } else {
                    self.refused[REFUSED_FULL].load(Ordering::Relaxed)
                        + self.refused[REFUSED_CLOSED].load(Ordering::Relaxed)
                };
                // `fetch_max`: concurrent reports never count the same growth twice.
                // (`accepted` dips while a refused span is taken back; a report seeing
                // the higher value counts that span early and later growth late.)
                let before = self.reported_records[i - REPORT_RECORDS_FAILED]
                    .fetch_max(now, Ordering::Relaxed);
                now.saturating_sub(before)
            }
            _ => self.report[i].swap(0, Ordering::Relaxed),
        }
    }
}

/// How many accepted spans were dropped, by [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropCounts {
    closed: u64,
    write_error: u64,
    connect_timeout: u64,
    oversize: u64,
    panicked: u64,
    write_timeout: u64,
    disabled: u64,
    unsampled: u64,
    grpc_status: u64,
}

impl DropCounts {
    /// Dropped because the client shut down (or its deadline passed) first.
    pub fn closed(&self) -> u64 {
        self.closed
    }

    /// Dropped because writing them failed.
    pub fn write_error(&self) -> u64 {
        self.write_error
    }

    /// Dropped because there was no connection: a connect sequence ran out its timeout,
    /// or the backend was down after one.
    pub fn connect_timeout(&self) -> u64 {
        self.connect_timeout
    }

    /// Dropped because the receiver took nothing for the write timeout.
    pub fn write_timeout(&self) -> u64 {
        self.write_timeout
    }

    /// Dropped because they were too large to send.
    pub fn oversize(&self) -> u64 {
        self.oversize
    }

    /// Dropped because a user backend panicked while sending them.
    pub fn panicked(&self) -> u64 {
        self.panicked
    }

    /// Discarded because recording was disabled ([`Client::disable`](crate::Client::disable)
    /// or the process-wide [`disable`](crate::disable)): never encoded nor queued.
    pub fn disabled(&self) -> u64 {
        self.disabled
    }

    /// Left out by the client's [sampler](crate::Sampler): never encoded nor queued.
    pub fn unsampled(&self) -> u64 {
        self.unsampled
    }

    /// Dropped because the receiver answered their gRPC call with an error status.
    pub fn grpc_status(&self) -> u64 {
        self.grpc_status
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Closed => self.closed,
            DropReason::WriteError => self.write_error,
            DropReason::ConnectTimeout => self.connect_timeout,
            DropReason::Oversize => self.oversize,
            DropReason::Panicked => self.panicked,
            DropReason::WriteTimeout => self.write_timeout,
            DropReason::Disabled => self.disabled,
            DropReason::Unsampled => self.unsampled,
            DropReason::GrpcStatus => self.grpc_status,
        }
    }

    /// All dropped spans.
    pub fn total(&self) -> u64 {
        self.closed
            + self.write_error
            + self.connect_timeout
            + self.oversize
            + self.panicked
            + self.write_timeout
            + self.disabled
            + self.unsampled
            + self.grpc_status
    }
}

/// A snapshot of a client's counters, from [`Client::stats`](crate::Client::stats).
///
/// Every span handed to the client is either *refused* (handed back by `try_record` or
/// `record`) or *accepted*. Every accepted span is, at any moment, exactly one of *queued*
/// (in the queue, being written, or held in a backend's write buffer), *sent* (written to
/// its connection) or *dropped* (with a [`DropReason`]):
///
/// ```text
/// accepted == sent + dropped_total + queued
/// ```
///
/// The counters are read one after the other, so a snapshot taken while spans are moving
/// may count a span as queued that is an instant from being sent; after
/// [`flush`](crate::Client::flush) or [`shutdown`](crate::Client::shutdown) returns (and nothing else
/// records meanwhile) the numbers are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    accepted: u64,
    refused_full: u64,
    refused_closed: u64,
    sent: u64,
    queued: u64,
    dropped: DropCounts,
    flushes_ok: u64,
    flushes_failed: u64,
    reconnects: u64,
    bytes_written: u64,
    panics: u64,
    baggage_refused: u64,
}

impl ClientStats {
    /// Spans taken into the queue (veneur's successful records).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Spans refused and handed back (veneur's failed records): queue full plus closed.
    pub fn refused(&self) -> u64 {
        self.refused_full + self.refused_closed
    }

    /// Spans refused because the queue was full.
    pub fn refused_full(&self) -> u64 {
        self.refused_full
    }

    /// Spans refused because the client was closed or neutralised.
    pub fn refused_closed(&self) -> u64 {
        self.refused_closed
    }

    /// Accepted spans written to their connection (for buffered streams: when the buffer
    /// holding them was written; for a channel client: pushed into the channel; for a
    /// user backend: its `send` returned `Ok`).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Accepted spans dropped, by reason.
    pub fn dropped(&self) -> DropCounts {
        self.dropped
    }

    /// Accepted spans dropped, all reasons together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.total()
    }

    /// Spans discarded because recording was disabled, as
    /// [`dropped().disabled()`](DropCounts::disabled): they count as accepted and dropped.
    pub fn disabled(&self) -> u64 {
        self.dropped.disabled
    }

    /// Spans left out by the client's [sampler](crate::Sampler), as
    /// [`dropped().unsampled()`](DropCounts::unsampled): they count as accepted and
    /// dropped.
    pub fn unsampled(&self) -> u64 {
        self.dropped.unsampled
    }

    /// Carriers' baggage refused for going over the limits or being malformed, as counted
    /// by [`Client::count_refused_baggage`](crate::Client::count_refused_baggage) (the
    /// trace-http server middleware counts there). The trace itself was kept.
    pub fn baggage_refused(&self) -> u64 {
        self.baggage_refused
    }

    /// Accepted spans neither sent nor dropped yet: in the queue, being written, or in a
    /// write buffer.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Flushes that succeeded (per [`flush`](crate::Client::flush) call, not per backend).
    pub fn flushes_ok(&self) -> u64 {
        self.flushes_ok
    }

    /// Flushes that failed on at least one backend, or found the client closed.
    pub fn flushes_failed(&self) -> u64 {
        self.flushes_failed
    }

    /// Connections made after a backend's first one (after a write error, a closed peer or
    /// a failed connect).
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Bytes written to sockets (frame headers included).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Panics caught in user code: backends, the sample normaliser, statistics sinks.
    pub fn panics(&self) -> u64 {
        self.panics
    }
}

/// Anything that can count a named, tagged value: the receiving end of
/// [`report_statistics`](crate::report_statistics). veneur passes its statsd client here.
///
/// Implemented for closures `Fn(&str, i64, &[&str], f64)` and, with the `cadence` feature,
/// for `cadence::StatsdClient`.
///
/// ```
/// use std::sync::Mutex;
/// use trace_client::{Client, report_statistics};
///
/// let seen = Mutex::new(Vec::new());
/// let sink = |name: &str, value: i64, _tags: &[&str], _rate: f64| {
///     seen.lock().unwrap().push((name.to_owned(), value));
/// };
/// let (client, _rx) = Client::channel(4);
/// client.try_record(Default::default()).unwrap();
/// report_statistics(&client, &sink, &["ssf_format:internal"]);
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [
///         ("trace_client.flushes_succeeded_total".to_owned(), 0),
///         ("trace_client.records_succeeded_total".to_owned(), 1),
///     ]
/// );
/// ```
pub trait StatsCounter {
    /// Counts `value` under `name` with `tags` (`key:value` strings) at sample `rate`.
    fn count(&self, name: &str, value: i64, tags: &[&str], rate: f64);
}

impl<F> StatsCounter for F
where
    F: Fn(&str, i64, &[&str], f64),
{
    fn count(&self, name: &str, value: i64, tags: &[&str], rate: f64) {
        self(name, value, tags, rate)
    }
}

#[cfg(feature = "cadence")]
#[cfg_attr(docsrs, doc(cfg(feature = "cadence")))]
impl StatsCounter for cadence::StatsdClient {
    /// Sends a counter; `key:value` tags become cadence key/value tags, other tags bare
    /// values. Send errors go to the client's error handler.
    fn count(&self, name: &str, value: i64, tags: &[&str], rate: f64) {
        use cadence::prelude::*;
        let mut metric = self.count_with_tags(name, value);
        for tag in tags {
            metric = match tag.split_once(':') {
                Some((k, v)) => metric.with_tag(k, v),
                None => metric.with_tag_value(tag),
            };
        }
        if rate < 1.0 {
            metric = metric.with_sampling_rate(rate);
        }
        metric.send();
    }
}

/// Metric names of [`report_statistics`](crate::report_statistics), in the order they are reported.
pub const STATISTICS_NAMES: [&str; 4] = [
    "trace_client.flushes_failed_total",
    "trace_client.flushes_succeeded_total",
    "trace_client.records_failed_total",
    "trace_client.records_succeeded_total",
];

pub(crate) fn report_counters(c: &Counters, sink: &dyn StatsCounter, tags: &[&str]) {
    let values = [
        c.take_report(REPORT_FLUSHES_FAILED),
        c.take_report(REPORT_FLUSHES_OK),
        c.take_report(REPORT_RECORDS_FAILED),
        c.take_report(REPORT_RECORDS_OK),
    ];
    let result = catch_unwind(AssertUnwindSafe(|| {
        for (i, (name, value)) in STATISTICS_NAMES.iter().zip(values).enumerate() {
            let always = i % 2 == 1;
            if always || value != 0 {
                sink.count(name, i64::try_from(value).unwrap_or(i64::MAX), tags, 1.0);
            }
        }
    }));
    if result.is_err() {
        c.panicked();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keeps_the_invariant() {
        let c = Counters::default();
        for _ in 0..5 {
            c.pre_accept();
        }
        c.pre_accept();
        c.unaccept(true);
        c.refused(false);
        c.sent(2);
        c.dropped(DropReason::WriteError, 1);
        let s = c.snapshot();
        assert_eq!(s.accepted(), 5);
        assert_eq!(s.refused(), 2);
        assert_eq!((s.refused_full(), s.refused_closed()), (1, 1));
        assert_eq!(s.queued(), 2);
        assert_eq!(s.accepted(), s.sent() + s.dropped_total() + s.queued());
        assert_eq!(s.dropped().get(DropReason::WriteError), 1);
    }

    #[test]
    fn threads_counting_on_their_shards_keep_the_invariant_and_the_sum() {
        const THREADS: u64 = 4;
        const SPANS: u64 = 20_000;
        let c = Counters::default();
        let running = AtomicUsize::new(THREADS as usize);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    let shard = accepted_shard();
                    for i in 0..SPANS {
                        c.pre_accept();
                        if i % 5 == 0 {
                            c.unaccept(true);
                        } else {
                            c.sent(1);
                        }
                    }
                    assert_eq!(accepted_shard(), shard, "a thread keeps its shard");
                    running.fetch_sub(1, Ordering::Release);
                });
            }
            // Snapshots taken meanwhile never count a span sent before it was accepted.
            while running.load(Ordering::Acquire) > 0 {
                let s = c.snapshot();
                assert!(s.accepted() >= s.sent() + s.dropped_total(), "{s:?}");
            }
        });
        let s = c.snapshot();
        assert_eq!(s.accepted(), THREADS * SPANS * 4 / 5);
        assert_eq!((s.sent(), s.queued()), (s.accepted(), 0));
        assert_eq!(s.refused_full(), THREADS * SPANS / 5);
    }

    #[test]
    fn a_span_taken_back_on_another_shard_leaves_the_sum_right() {
        let c = Counters::default();
        c.pre_accept();
        c.pre_accept();
        // As if the second were taken back on another thread's shard.
        let other = (accepted_shard() + 1) % ACCEPTED_SHARDS;
        c.accepted[other].fetch_sub(1, Ordering::Relaxed);
        assert_eq!(c.snapshot().accepted(), 1);
    }

    #[test]
    fn report_resets_and_skips_zero_failures() {
        let c = Counters::default();
        let seen = std::cell::RefCell::new(Vec::new());
        let sink = |name: &str, value: i64, tags: &[&str], rate: f64| {
            assert_eq!(tags, ["a:b"]);
            assert_eq!(rate, 1.0);
            seen.borrow_mut().push((name.to_owned(), value));
        };
        c.flushed(true);
        c.flushed(false);
        c.refused(true);
        c.pre_accept();
        c.pre_accept();
        // Taken back before the report: not counted.
        c.pre_accept();
        c.take_back();
        report_counters(&c, &sink, &["a:b"]);
        let expected: Vec<(String, i64)> = STATISTICS_NAMES
            .iter()
            .map(|n| n.to_string())
            .zip([1, 1, 1, 2])
            .collect();
        assert_eq!(*seen.borrow(), expected);
        seen.borrow_mut().clear();
        report_counters(&c, &sink, &["a:b"]);
        assert_eq!(
            *seen.borrow(),
            [
                ("trace_client.flushes_succeeded_total".to_owned(), 0),
                ("trace_client.records_succeeded_total".to_owned(), 0)
            ]
        );
        seen.borrow_mut().clear();
        c.pre_accept();
        c.unaccept(false);
        c.pre_accept();
        report_counters(&c, &sink, &["a:b"]);
        assert_eq!(
            *seen.borrow(),
            [
                ("trace_client.flushes_succeeded_total".to_owned(), 0),
                ("trace_client.records_failed_total".to_owned(), 1),
                ("trace_client.records_succeeded_total".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_panicking_sink_is_counted() {
        let c = Counters::default();
        let sink = |_: &str, _: i64, _: &[&str], _: f64| panic!("sink broke");
        report_counters(&c, &sink, &[]);
        assert_eq!(c.snapshot().panics(), 1);
    }
}
