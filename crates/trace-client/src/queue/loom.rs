//! Loom models of the ring and of the wake protocol: every interleaving of a few threads
//! (and every value each load may return), within a bound on the forced thread switches
//! of each execution. Run by `scripts/loom.sh`.
//!
//! * The ring: values arrive exactly once, in each producer's order; `Full` only when
//!   it is full; closing refuses every later push and loses no earlier one; a panic
//!   while a slot is filled or emptied leaves the ring working. Two producers with one
//!   consumer (capacity 1 and 2) or two (capacity 2); a producer racing `close`. A
//!   producer's look at the tail's slot before it encodes (`Ring::tail_is_free`) never
//!   sees room that its push then does not find.
//! * The wake protocol, with the real [`Queue`] (its ring and its [`Wake`]) and without
//!   the timed rechecks of a sleeping worker (`recheck == false`): every pushed value is
//!   taken with no further push. A lost wake-up leaves a worker asleep on a queued value
//!   forever, which loom reports as a deadlock. Two producers, one worker or two.
//!   Producers waiting for room (`Queue::push`, on a tokio `Notify` that is not
//!   modelled) are not part of them.
//!
//! The bounds: three preemptions where that is cheap, two for most models, one for two
//! workers (each execution there has hundreds of steps). Unbounded, even the close and
//! panic models did not finish in two minutes. Yielding does not count as a preemption,
//! so a thread that waits for another (the ring's `snooze`, the models' waits) may
//! switch at every round.
//!
//! Bookkeeping that needs no ordering (how many values the workers took) is kept in std
//! atomics, which loom does not schedule around: fewer interleavings to explore.
//!
//! [`Wake`]: super::wake::Wake

use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use loom::sync::Arc;
use loom::sync::atomic::Ordering;
use loom::sync::{Condvar, Mutex, MutexGuard};
use loom::thread;
use ssf_proto::SsfSpan;

use super::ring::{PopError, PushError, Ring};
use super::{Popped, Queue};
use crate::message::Message;

type Values = Ring<Option<u64>>;

fn push(r: &Values, v: u64) -> Result<(), PushError<u64>> {
    r.push_with(v, |slot, v| *slot = Some(v))
}

fn pop(r: &Values) -> Result<Option<u64>, PopError> {
    r.pop_with(Option::take)
}

/// Pushes into a ring that never fills up in the model.
fn push_ok(r: &Values, v: u64) {
    push(r, v).unwrap_or_else(|e| panic!("refused: {e:?}"));
}

/// Runs `f` with every interleaving, with at most `preemptions` forced thread switches
/// (`None`: no bound) in each; `LOOM_MAX_PREEMPTIONS` overrides it.
fn model(preemptions: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = preemptions;
    }
    b.check(f);
}

/// What the threads of a ring model did: pushes claimed (begun and not refused), pushes
/// and pops done. It checks that `Full` is only reported when the ring is full, and it
/// lets a thread that found the ring full (or empty) block until a pop (or a push)
/// rather than spin: loom explores two threads that yield to each other while they wait
/// for a third one without end (a limit of its scheduler), and blocked threads are not
/// scheduled at all.
struct Progress {
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Counts {
    claimed: usize,
    pushed: usize,
    popped: usize,
    /// Threads blocked in `changed`.
    waiting: usize,
}

impl Progress {
    fn new() -> Self {
        Progress {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap()
    }

    /// Before a push: the pops done so far.
    fn claim(&self) -> usize {
        let mut c = self.counts();
        c.claimed += 1;
        c.popped
    }

    fn pushed(&self) {
        let mut c = self.counts();
        c.pushed += 1;
        if c.waiting > 0 {
            self.changed.notify_all();
        }
    }

    /// Before a pop: the pushes done so far.
    fn pushes(&self) -> usize {
        self.counts().pushed
    }

    fn popped(&self) {
        let mut c = self.counts();
        c.popped += 1;
        if c.waiting > 0 {
            self.changed.notify_all();
        }
    }

    fn wait<'a>(&self, mut c: MutexGuard<'a, Counts>) -> MutexGuard<'a, Counts> {
        c.waiting += 1;
        let mut c = self.changed.wait(c).unwrap();
        c.waiting -= 1;
        c
    }

    /// After a push refused as full, begun after `popped_before` pops: checks that the
    /// ring can have been full, then waits for a pop.
    fn refused_full(&self, popped_before: usize, capacity: usize) {
        let mut c = self.counts();
        c.claimed -= 1;
        // When the push was refused, the ring held at most the pushes claimed by now
        // (each one claimed before it was made) less the pops done before it began.
        let at_most = c.claimed - popped_before;
        assert!(
            at_most >= capacity,
            "full with at most {at_most} of {capacity}"
        );
        while c.popped == popped_before {
            c = self.wait(c);
        }
    }

    /// After a pop that found the ring empty, begun after `pushed_before` pushes: waits
    /// for a push, unless all `total` values were popped (then true).
    fn found_empty(&self, pushed_before: usize, total: usize) -> bool {
        let mut c = self.counts();
        while c.pushed == pushed_before && c.popped < total {
            c = self.wait(c);
        }
        c.popped == total
    }
}

/// Two producers push `per[p]` values each (`10 * p + i`) into a ring of `capacity`
/// (which first had `skip` values pushed and popped), `consumers` consumers pop them all
/// (the main thread is one of them).
fn producers_and_consumers(
    capacity: usize,
    per: [u64; 2],
    skip: u64,
    consumers: usize,
    preemptions: Option<usize>,
) {
    let total = per.iter().sum::<u64>() as usize;
    model(preemptions, move || {
        let ring = Arc::new(Values::new(capacity));
        for v in 0..skip {
            push_ok(&ring, 100 + v);
            assert_eq!(pop(&ring), Ok(Some(100 + v)));
        }
        let progress = Arc::new(Progress::new());
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let (ring, progress) = (ring.clone(), progress.clone());
                thread::spawn(move || {
                    for i in 0..per[p as usize] {
                        let mut v = 10 * p + i;
                        loop {
                            let popped_before = progress.claim();
                            match push(&ring, v) {
                                Ok(()) => break progress.pushed(),
                                Err(PushError::Full(back)) => {
                                    progress.refused_full(popped_before, capacity);
                                    v = back;
                                }
                                Err(PushError::Closed(_)) => panic!("closed"),
                            }
                        }
                    }
                })
            })
            .collect();
        let consume = {
            let (ring, progress) = (ring.clone(), progress.clone());
            move || {
                let mut got = Vec::new();
                loop {
                    let pushed_before = progress.pushes();
                    match pop(&ring) {
                        Ok(Some(v)) => {
                            got.push(v);
                            progress.popped();
                        }
                        Ok(None) => panic!("an empty slot was published"),
                        Err(PopError::Empty) => {
                            if progress.found_empty(pushed_before, total) {
                                return got;
                            }
                        }
                        Err(PopError::Closed) => panic!("closed"),
                    }
                }
            }
        };
        let others: Vec<_> = (1..consumers)
            .map(|_| thread::spawn(consume.clone()))
            .collect();
        let mut seen = vec![consume()];
        seen.extend(others.into_iter().map(|c| c.join().unwrap()));
        for p in producers {
            p.join().unwrap();
        }
        let mut all = Vec::new();
        for got in &seen {
            // Each consumer sees each producer's values in the order they were pushed.
            for p in 0..2 {
                let mine: Vec<_> = got.iter().filter(|&&v| v / 10 == p).collect();
                assert!(mine.is_sorted(), "out of order: {got:?}");
            }
            all.extend_from_slice(got);
        }
        all.sort_unstable();
        let want: Vec<u64> = (0..2)
            .flat_map(|p| (0..per[p as usize]).map(move |i| 10 * p + i))
            .collect();
        assert_eq!(all, want, "every value exactly once");
        assert_eq!(pop(&ring), Err(PopError::Empty));
        assert!(ring.is_empty());
        assert_eq!(ring.len(), 0);
    })
}

#[test]
fn ring_two_producers_one_consumer_capacity_1() {
    producers_and_consumers(1, [2, 2], 0, 1, Some(2));
}

/// A producer looks at the tail's slot before it encodes (`Queue::refuses_full`): a
/// slot seen free is room that a push then finds, when that producer is the only one
/// (with others, one may take it first, and the push says full, as it should).
#[test]
fn ring_a_free_tail_is_room_for_its_one_producer() {
    for capacity in [1, 2] {
        model(Some(3), move || {
            let ring = Arc::new(Values::new(capacity));
            let consumer = {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < 3 {
                        match pop(&ring) {
                            Ok(Some(v)) => got.push(v),
                            _ => thread::yield_now(),
                        }
                    }
                    got
                })
            };
            for v in 0..3 {
                while !ring.tail_is_free() {
                    thread::yield_now();
                }
                push_ok(&ring, v);
            }
            assert_eq!(consumer.join().unwrap(), [0, 1, 2]);
        });
    }
}

#[test]
fn ring_two_producers_one_consumer_capacity_2() {
    producers_and_consumers(2, [2, 2], 0, 1, Some(2));
    // Fewer values, one more preemption.
    producers_and_consumers(2, [2, 1], 0, 1, Some(3));
}

#[test]
fn ring_two_producers_two_consumers_capacity_2() {
    // Starting at the second slot: the second value goes round to the first one.
    producers_and_consumers(2, [1, 1], 1, 2, Some(2));
}

#[test]
fn ring_close_races_a_producer_and_the_ring_drains() {
    model(Some(4), || {
        let ring = Arc::new(Values::new(2));
        // Three pushes into two slots: the last may be refused as full, and any may be
        // refused as closed (and then every later one too).
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut pushed = Vec::new();
                for v in 0..3 {
                    match push(&ring, v) {
                        Ok(()) => pushed.push(v),
                        Err(PushError::Full(_)) => assert_eq!(v, 2, "full with room"),
                        Err(PushError::Closed(_)) => {
                            assert!(ring.is_closed());
                            assert!(matches!(push(&ring, 9), Err(PushError::Closed(9))));
                            break;
                        }
                    }
                }
                pushed
            })
        };
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match pop(&ring) {
                        Ok(Some(v)) => got.push(v),
                        Ok(None) => panic!("an empty slot was published"),
                        Err(PopError::Empty) => thread::yield_now(),
                        Err(PopError::Closed) => break,
                    }
                }
                // Closed and empty is for good.
                assert_eq!(pop(&ring), Err(PopError::Closed));
                got
            })
        };
        assert!(ring.close(), "closed once");
        let pushed = producer.join().unwrap();
        let got = consumer.join().unwrap();
        assert_eq!(got, pushed, "every push taken once, in order");
        assert!(!ring.close());
        assert!(matches!(push(&ring, 9), Err(PushError::Closed(9))));
        assert_eq!(pop(&ring), Err(PopError::Closed));
    })
}

/// The payload of the panics the models cause.
const MODEL_PANIC: &str = "a panic the loom model causes";

/// Keeps the panics the models cause (and catch) out of the test output.
fn quiet_model_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&MODEL_PANIC) {
                default(info);
            }
        }));
    });
}

#[test]
fn ring_a_panic_in_fill_leaves_the_ring_working() {
    quiet_model_panics();
    model(Some(3), || {
        // Room for all three: the consumer is the only thread that waits.
        let ring = Arc::new(Values::new(4));
        let a = {
            let ring = ring.clone();
            thread::spawn(move || {
                let filled = panic::catch_unwind(AssertUnwindSafe(|| {
                    ring.push_with(1, |_, _| panic::panic_any(MODEL_PANIC))
                }));
                assert!(filled.is_err());
                push_ok(&ring, 3);
            })
        };
        let b = {
            let ring = ring.clone();
            thread::spawn(move || push_ok(&ring, 2))
        };
        // The slot claimed by the panicking push comes out empty, before 3.
        let (mut got, mut empty) = (Vec::new(), 0);
        while got.len() < 2 {
            match pop(&ring) {
                Ok(Some(v)) => {
                    assert!(v != 3 || empty == 1, "the empty slot came after 3");
                    got.push(v);
                }
                Ok(None) => empty += 1,
                Err(PopError::Empty) => thread::yield_now(),
                Err(PopError::Closed) => panic!("closed"),
            }
        }
        a.join().unwrap();
        b.join().unwrap();
        got.sort_unstable();
        assert_eq!((got, empty), (vec![2, 3], 1));
        push(&ring, 4).unwrap();
        assert_eq!(pop(&ring), Ok(Some(4)));
        assert_eq!(pop(&ring), Err(PopError::Empty));
    })
}

#[test]
fn ring_a_panic_in_take_leaves_the_ring_working() {
    quiet_model_panics();
    model(None, || {
        let ring = Arc::new(Values::new(2));
        push(&ring, 1).unwrap();
        let a = {
            let ring = ring.clone();
            thread::spawn(move || {
                let taken = panic::catch_unwind(AssertUnwindSafe(|| {
                    ring.pop_with(|_| -> () { panic::panic_any(MODEL_PANIC) })
                }));
                assert!(taken.is_err());
            })
        };
        let b = {
            let ring = ring.clone();
            thread::spawn(move || push_ok(&ring, 2))
        };
        a.join().unwrap();
        b.join().unwrap();
        // 1 went with the panicking consumer; the slot is free for the next lap.
        push(&ring, 3).unwrap();
        assert_eq!(pop(&ring), Ok(Some(2)));
        assert_eq!(pop(&ring), Ok(Some(3)));
        assert_eq!(pop(&ring), Err(PopError::Empty));
    })
}

#[test]
fn the_notify_model_keeps_tokios_semantics() {
    use std::pin::pin;
    use std::task::{Context, Waker};

    use crate::sync::Notify;

    fn ready(f: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        f.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    model(None, || {
        let n = Notify::new();
        // One permit, however many `notify_one`s; `enable` takes it.
        n.notify_one();
        n.notify_one();
        let mut a = pin!(n.notified());
        a.as_mut().enable();
        assert!(ready(a.as_mut()));
        let mut b = pin!(n.notified());
        b.as_mut().enable();
        assert!(!ready(b.as_mut()), "one permit only");
        // `notify_waiters` wakes the registered waiters, and those made before it, and
        // stores nothing.
        let mut c = pin!(n.notified());
        n.notify_waiters();
        assert!(ready(b.as_mut()) && ready(c.as_mut()));
        let mut d = Box::pin(n.notified());
        d.as_mut().enable();
        assert!(!ready(d.as_mut()), "no permit from notify_waiters");
        // A waiter chosen by `notify_one` and dropped unconsumed hands it on: to the next
        // waiter, or back to the permit.
        let mut e = pin!(n.notified());
        e.as_mut().enable();
        n.notify_one();
        drop(d);
        assert!(ready(e.as_mut()), "handed on to the next waiter");
        {
            let mut f = pin!(n.notified());
            f.as_mut().enable();
            n.notify_one();
        }
        let mut g = pin!(n.notified());
        g.as_mut().enable();
        assert!(ready(g.as_mut()), "handed back to the permit");
    });
}

fn span(id: u64, urgent: bool) -> Message {
    Message::Span {
        span: SsfSpan {
            id: id as i64,
            ..Default::default()
        },
        receipt: urgent.then(|| tokio::sync::oneshot::channel().0),
    }
}

fn id(m: &Message) -> u64 {
    match m {
        Message::Span { span, .. } => span.id as u64,
        Message::Frame { .. } | Message::Flush(_) => panic!("not a span"),
    }
}

/// Who closes the queue in a wake model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The worker that takes the last value: until then only wake-ups get the workers
    /// to the values, so a lost one leaves a worker asleep on a queued value.
    AllTaken,
    /// The producer that pushes last, right after its push: the workers drain the
    /// queue, then stop.
    LastPush,
}

/// A worker: waits for work (without the timed rechecks) and takes batches of
/// `batch` until the queue is closed; what it took.
fn worker(
    q: &Queue,
    first: bool,
    batch: usize,
    total: usize,
    taken: &StdAtomicUsize,
    close: Close,
) -> Vec<u64> {
    let mut got = Vec::new();
    let mut out = Vec::new();
    loom::future::block_on(async {
        loop {
            let has_work = || q.has_work();
            let has_batch = || q.has_batch();
            let searching = q
                .wake
                .wait_for_work(first, false, has_work, has_batch)
                .await;
            let mut searching = Some(searching);
            loop {
                match q.pop_batch(&mut out, batch, searching.take()) {
                    Popped::Some(n) => {
                        got.extend(out.drain(..).map(|m| id(&m)));
                        let all = taken.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
                        if all == total && close == Close::AllTaken {
                            q.close();
                        }
                        // Less than a batch: the worker waits for work again.
                        if n < batch {
                            break;
                        }
                    }
                    Popped::Empty => break,
                    Popped::Closed => return,
                }
            }
        }
    });
    got
}

/// Two producers push one value each into a queue of `capacity` (the first urgent if
/// `urgent`) while `workers` workers wait for work and take batches of `batch`; every
/// value is taken once and every worker stops once the queue is closed.
fn wake_model(
    capacity: usize,
    batches: bool,
    urgent: bool,
    workers: usize,
    batch: usize,
    close: Close,
    preemptions: Option<usize>,
) {
    const PRODUCERS: usize = 2;
    model(preemptions, move || {
        let q = Arc::new(if batches {
            Queue::batching(capacity)
        } else {
            Queue::new(capacity)
        });
        let taken = Arc::new(StdAtomicUsize::new(0));
        let pushed = Arc::new(StdAtomicUsize::new(0));
        let workers: Vec<_> = (0..workers)
            .map(|w| {
                let (q, taken) = (q.clone(), taken.clone());
                thread::spawn(move || worker(&q, w == 0, batch, PRODUCERS, &taken, close))
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (q, pushed) = (q.clone(), pushed.clone());
                thread::spawn(move || {
                    q.try_push(span(p as u64, urgent && p == 0)).unwrap();
                    let all = pushed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if all == PRODUCERS && close == Close::LastPush {
                        q.close();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1], "every value taken once");
        assert_eq!(q.wake.workers.load(Ordering::SeqCst), 0, "guards balanced");
    })
}

#[test]
fn wake_one_worker_takes_every_value_without_the_recheck() {
    // Capacity 8: a dozing worker is woken at 2 queued values, or for an urgent one.
    wake_model(8, false, false, 1, 1, Close::AllTaken, Some(2));
    wake_model(8, false, true, 1, 1, Close::AllTaken, Some(2));
    // Capacity 4: every push wakes a dozing worker.
    wake_model(4, false, false, 1, 1, Close::AllTaken, Some(2));
    // Waiting for batches of 2: one value is left for the doze.
    wake_model(8, true, false, 1, 1, Close::AllTaken, Some(2));
}

#[test]
fn wake_two_workers_take_every_value_without_the_recheck() {
    // Batches of 1: a worker that leaves a value behind wakes the other.
    wake_model(8, false, true, 2, 1, Close::AllTaken, Some(1));
    // Waiting for batches of 2, without an urgent value: a worker that finds one value
    // while the other dozes sleeps and leaves it to the dozer.
    wake_model(8, true, false, 2, 1, Close::AllTaken, Some(1));
}

#[test]
fn wake_the_worker_drains_and_stops_when_the_last_producer_closes() {
    wake_model(8, false, false, 1, 1, Close::LastPush, Some(2));
}
