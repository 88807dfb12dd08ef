//! How idle workers sleep and how producers wake them, without a lost wake-up and
//! without a producer paying for a wake-up a steady stream of spans does not need.
//!
//! Waking a sleeping task costs a producer microseconds (a system call when the worker's
//! thread is parked, and on a busy machine the woken thread may take the producer's CPU
//! for a while), so producers avoid it:
//!
//! * a worker that found the queue empty yields to the runtime and looks once more, then
//!   *dozes*: it looks again every millisecond, a few times, before it sleeps, and then
//!   takes whatever is there. One worker at a time dozes; a steady stream of spans finds
//!   it coming back by itself;
//! * where the workers wait for batches (a queue made with
//!   [`Queue::batching`](super::Queue::batching), for stream backends, which copy spans
//!   into one buffer and write many at once), "empty" above means less than a batch
//!   waiting ([`BATCH_MIN`] messages, or a quarter of the capacity when that is less)
//!   and no message someone waits for, and a worker that finds less than a batch while
//!   another dozes leaves it to the dozer and sleeps. (Taking a few spans whenever there
//!   were any, stream backends kept up with a fast producer a handful of spans at a
//!   time, each handful costing a look at the queue's shared words and often a wake-up:
//!   a span cost a fifth more CPU end to end. Datagram and gRPC backends pay a send for
//!   each span, and several of them sending at once is what counts there: waiting for
//!   batches cost a third of the UDP throughput);
//! * a producer wakes a dozing worker only when the queue holds a quarter of its
//!   capacity, or for a message someone waits for (a flush, a span with a receipt); it
//!   wakes a sleeping worker only when no worker is awake or dozing, and no wake-up is
//!   already on its way; a worker that takes a batch and leaves more than a batch behind
//!   wakes the next one itself.
//!
//! So an idle client costs next to nothing (after a few milliseconds every worker
//! sleeps), and a span waits at most about a millisecond for a dozing worker.
//!
//! Lost wake-ups are excluded by ordering: a producer pushes (a sequentially consistent
//! compare-and-swap in the ring) and then reads the workers' state (sequentially
//! consistent); a worker going to sleep registers its waiter, changes that state
//! (sequentially consistent) and then checks the ring (sequentially consistent loads).
//! One of the two sees the other. The loom models in `queue/loom.rs` check this with
//! every interleaving of two producers and one or two workers (within a bound on
//! preemptions: two with one worker, one with two), the timed rechecks left out: no
//! wake-up is lost, the rechecks are not needed for correctness. A sleeping worker
//! still looks again now and then (the first one ten times a second, the others once),
//! which bounds the wait should a wake-up ever be lost by a bug outside the model (a
//! runtime that drops a woken task, say).

use std::pin::pin;
use std::time::Duration;

use crate::padded::Padded;
use crate::sync::{AtomicBool, AtomicU64, Notify, Ordering, sleep, yield_now};

/// How long a dozing worker sleeps between looks at the queue.
pub(super) const DOZE: Duration = Duration::from_millis(1);
/// How many times a dozing worker looks before it sleeps.
#[cfg(not(ssf_loom))]
pub(super) const DOZES: u32 = 4;
/// Under loom, two: every look runs the same steps, and a second one after a doze that
/// ended by itself is all that more of them would show (each costs the models dozens of
/// steps to interleave).
#[cfg(ssf_loom)]
pub(super) const DOZES: u32 = 2;
/// The least a worker takes at once when it need not (see the module docs): a
/// datagram backend's `sendmmsg` sends 64 at once.
const BATCH_MIN: usize = 64;
/// How often the first worker, asleep, looks at the queue even without a wake-up.
const RECHECK: Duration = Duration::from_millis(100);
/// How often the other workers, asleep, do (the first one finds anything they would).
const RECHECK_OTHERS: Duration = Duration::from_secs(1);

/// One sleeping worker, in [`Wake::workers`].
pub(super) const SLEEPER: u64 = 1;
/// One dozing worker, in [`Wake::workers`].
pub(super) const DOZER: u64 = 1 << 16;
/// One searching (awake, looking for work) worker, in [`Wake::workers`].
pub(super) const SEARCHER: u64 = 1 << 32;
pub(super) const SLEEPERS: u64 = DOZER - 1;
pub(super) const DOZERS: u64 = (SEARCHER - 1) & !SLEEPERS;

/// The workers' state, as producers see it, and the wake-ups between them.
#[derive(Debug)]
pub(crate) struct Wake {
    /// Sleeping workers (bits 0-15), dozing workers (bits 16-31) and searching workers
    /// (bits 32-63). Read by every producer after each push; written only when workers
    /// change state.
    pub(super) workers: Padded<AtomicU64>,
    /// The backlog at which a producer wakes a dozing worker.
    doze_limit: usize,
    /// What a worker that need not take less waits for (1: whatever is there).
    batch_min: usize,
    /// A wake-up was sent and its worker has not started searching yet.
    pending: AtomicBool,
    /// An urgent message was pushed since a worker last looked for one: a worker
    /// takes it without waiting for a batch.
    urgent: AtomicBool,
    work: Notify,
}

impl Wake {
    /// For a queue of `capacity` messages whose workers take what is there (see the
    /// module docs), or wait for a batch (`batches`).
    pub(crate) fn new(capacity: usize, batches: bool) -> Self {
        let doze_limit = (capacity / 4).max(1);
        Wake {
            workers: Padded(AtomicU64::new(0)),
            doze_limit,
            batch_min: if batches {
                doze_limit.min(BATCH_MIN)
            } else {
                1
            },
            pending: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            work: Notify::new(),
        }
    }

    /// Whether an urgent message was pushed since a worker last asked (which clears
    /// it): a worker takes it without waiting for a batch.
    pub(crate) fn take_urgent(&self) -> bool {
        self.urgent.load(Ordering::SeqCst) && self.urgent.swap(false, Ordering::SeqCst)
    }

    /// What a worker waits for, dozing, before it takes a batch (see the module docs).
    pub(crate) fn batch_min(&self) -> usize {
        self.batch_min
    }

    /// Called by a producer after each successful push (`urgent`: someone waits for the
    /// message); `len` tells how much the queue holds.
    #[inline]
    pub(crate) fn pushed(&self, urgent: bool, len: impl FnOnce() -> usize) {
        if urgent && self.batch_min > 1 {
            // Only workers that wait for batches ask for it. Before the workers' state
            // is read: a worker that starts dozing after that read sees it (sequentially
            // consistent, both).
            self.urgent.store(true, Ordering::SeqCst);
        }
        // Sequentially consistent, after the push's compare-and-swap: see the module docs.
        let w = self.workers.load(Ordering::SeqCst);
        if w < SEARCHER && w != 0 {
            self.wake_if_needed(w, urgent, len);
        }
    }

    /// Nobody is searching; someone dozes or sleeps.
    #[cold]
    fn wake_if_needed(&self, w: u64, urgent: bool, len: impl FnOnce() -> usize) {
        let wake = if w & DOZERS != 0 {
            urgent || len() >= self.doze_limit
        } else {
            w & SLEEPERS != 0
        };
        if wake {
            self.wake_one();
        }
    }

    /// Called by a worker that took a batch and left at least a batch behind: another
    /// worker should help.
    pub(crate) fn more_left(&self) {
        let w = self.workers.load(Ordering::SeqCst);
        if w < SEARCHER && w != 0 {
            self.wake_one();
        }
    }

    /// A full queue with every worker asleep should not happen; if it ever does, the
    /// refused producer wakes one, whatever `pending` says.
    #[cold]
    pub(crate) fn refused_full(&self) {
        let w = self.workers.load(Ordering::SeqCst);
        if w & SLEEPERS != 0 && w & !SLEEPERS == 0 {
            self.pending.store(true, Ordering::Release);
            self.work.notify_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        // A plain load first: while a woken worker is on its way, every push gets here.
        if !self.pending.load(Ordering::Relaxed) && !self.pending.swap(true, Ordering::AcqRel) {
            self.work.notify_one();
        }
    }

    /// Wakes every worker (the queue closed).
    pub(crate) fn wake_all(&self) {
        self.work.notify_waiters();
    }

    /// Resolves when there may be work (`has_work`, which also says true once the queue
    /// is closed; a worker that may doze waits for `has_batch` first). The returned guard marks this worker as searching until it is dropped,
    /// which the worker does once it took its batch: meanwhile producers leave the other
    /// workers asleep. `recheck` (false only in the models) keeps the timed looks of a
    /// sleeping worker.
    pub(crate) async fn wait_for_work(
        &self,
        first: bool,
        recheck: bool,
        has_work: impl Fn() -> bool,
        has_batch: impl Fn() -> bool,
    ) -> Searching<'_> {
        // Wake-ups are only ever received in here (awaited, or taken by `enable` from a
        // stored permit). Leaving, however that happens, clears `pending`: a wake-up
        // taken without being waited for then cannot hold back the next one. (A wake-up
        // still on its way to another worker may be doubled: harmless.)
        let _clear = ClearPending(self);
        let mut searching = Searching::new(self);
        if has_batch() {
            return searching;
        }
        // Look once more after letting the runtime run other tasks (the producers, on a
        // current-thread runtime), then doze, if no other worker does: a steady stream
        // of spans then finds a worker that comes back by itself. (Looking again and
        // again instead, for some microseconds, cost a third more CPU per span on two
        // cores, for no more throughput.)
        if self.workers.load(Ordering::Relaxed) < 2 * SEARCHER {
            yield_now().await;
            if has_batch() {
                return searching;
            }
            if self.workers.load(Ordering::Relaxed) & DOZERS == 0 {
                searching.set(DOZER);
                for doze in 0..DOZES {
                    let mut notified = pin!(self.work.notified());
                    notified.as_mut().enable();
                    if if doze == 0 { has_batch() } else { has_work() } {
                        // Leave for the work at once: a wake-up `enable` took is then
                        // not lost (`has_batch` may say yes for an urgent message
                        // already taken; looking again and sleeping would drop it).
                        searching.set(SEARCHER);
                        return searching;
                    }
                    let woken = tokio::select! {
                        biased;
                        _ = &mut notified => true,
                        _ = sleep(DOZE) => false,
                    };
                    if woken {
                        // A wake-up was spent on this worker: leave, so that `pending`
                        // is cleared (a dozer that slept on with it set would keep every
                        // later push from waking anyone).
                        searching.set(SEARCHER);
                        return searching;
                    }
                    if has_work() {
                        break;
                    }
                }
                searching.set(SEARCHER);
                if has_work() {
                    return searching;
                }
            }
        }
        // Sleep. The waiter is registered before the worker counts as sleeping, so a
        // producer that sees it sleeping finds a waiter to wake.
        let mut notified = pin!(self.work.notified());
        notified.as_mut().enable();
        searching.set(SLEEPER);
        // Less than a batch is left to a dozer: whichever way a dozer stops dozing, it
        // looks at the queue after it (a sequentially consistent change of state, then
        // loads), so it finds what this worker saw.
        let dozer = self.workers.load(Ordering::SeqCst) & DOZERS != 0;
        if !(if dozer { has_batch() } else { has_work() }) {
            if recheck {
                // Every look costs a thread wake-up: the first worker looks ten times a
                // second, the others once.
                let every = if first { RECHECK } else { RECHECK_OTHERS };
                tokio::select! {
                    biased;
                    _ = notified => {}
                    _ = sleep(every) => {}
                }
            } else {
                notified.await;
            }
        }
        searching.set(SEARCHER);
        searching
    }
}

/// Clears [`Wake::pending`] when dropped.
struct ClearPending<'a>(&'a Wake);

impl Drop for ClearPending<'_> {
    fn drop(&mut self) {
        self.0.pending.store(false, Ordering::Release);
    }
}

/// A worker awake and looking for work (see [`Wake::wait_for_work`]), or dozing or
/// asleep while waiting for it: counted in [`Wake::workers`] as long as it lives.
#[derive(Debug)]
pub(crate) struct Searching<'a> {
    wake: &'a Wake,
    /// [`SEARCHER`], [`DOZER`] or [`SLEEPER`].
    counted: u64,
}

impl<'a> Searching<'a> {
    fn new(wake: &'a Wake) -> Self {
        wake.workers.fetch_add(SEARCHER, Ordering::SeqCst);
        Searching {
            wake,
            counted: SEARCHER,
        }
    }

    /// Changes state ([`SEARCHER`], [`DOZER`] or [`SLEEPER`]) in one step.
    fn set(&mut self, state: u64) {
        self.wake
            .workers
            .fetch_add(state.wrapping_sub(self.counted), Ordering::SeqCst);
        self.counted = state;
    }
}

impl Drop for Searching<'_> {
    fn drop(&mut self) {
        // Also when cancelled while asleep (the worker's other branches won).
        self.wake.workers.fetch_sub(self.counted, Ordering::SeqCst);
    }
}
