//! The client's queue: a bounded lock-free ring between the producers (every handle of
//! the client) and the backend workers, and how idle workers sleep and are woken.
//!
//! The ring ([`Ring`], a bounded MPMC array queue of [`Entry`] slots) costs a producer
//! one compare-and-swap on the tail and the write of its slot (for an encoded span, its
//! frame is copied in; a backend copies it out into its write buffer); its storage is
//! allocated when the client is built, so recording allocates nothing. Closing it is
//! atomic with pushes: once closed, no push succeeds, and workers drain what is in it.
//!
//! Waking a sleeping task costs a producer microseconds (a system call when the worker's
//! thread is parked, and on a busy machine the woken thread may take the producer's CPU
//! for a while), so producers avoid it:
//!
//! * a worker that found the queue empty yields to the runtime and looks once more, then
//!   *dozes*: it looks again every millisecond, a few times, before it sleeps. One
//!   worker at a time dozes; a steady stream of spans finds it coming back by itself;
//! * a producer wakes a dozing worker only when the queue holds a quarter of its
//!   capacity, or for a message someone waits for (a flush, a span with a receipt); it
//!   wakes a sleeping worker only when no worker is awake or dozing, and no wake-up is
//!   already on its way; a worker that takes a batch and leaves more than a batch behind
//!   wakes the next one itself.
//!
//! So an idle client costs next to nothing (after a few milliseconds every worker sleeps;
//! the first one looks ten times a second, the others once), and a
//! span waits at most about a millisecond for a dozing worker.
//!
//! Lost wake-ups are excluded by ordering: a producer pushes (a sequentially consistent
//! compare-and-swap in the ring) and then reads the workers' state (sequentially
//! consistent); a worker going to sleep changes that state (sequentially consistent)
//! and then checks the ring (sequentially consistent loads). One of the two sees the
//! other.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::frame::INLINE;
use crate::message::{Message, ReceiptSender};
use crate::ring::{PopError, PushError, Ring};

/// How long a dozing worker sleeps between looks at the queue.
const DOZE: Duration = Duration::from_millis(1);
/// How many times a dozing worker looks before it sleeps.
const DOZES: u32 = 4;
/// How often the first worker, asleep, looks at the queue even without a wake-up.
const RECHECK: Duration = Duration::from_millis(100);
/// How often the other workers, asleep, do (the first one finds anything they would).
const RECHECK_OTHERS: Duration = Duration::from_secs(1);

/// One sleeping worker, in [`Queue::workers`].
const SLEEPER: u64 = 1;
/// One dozing worker, in [`Queue::workers`].
const DOZER: u64 = 1 << 16;
/// One searching (awake, looking for work) worker, in [`Queue::workers`].
const SEARCHER: u64 = 1 << 32;
const SLEEPERS: u64 = DOZER - 1;
const DOZERS: u64 = (SEARCHER - 1) & !SLEEPERS;

/// Keeps a value alone on its cache line(s).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why a push failed; the message is handed back.
pub(crate) type Refused = PushError<Message>;

/// One slot of the queue, allocated when the client is built and reused for good. An
/// encoded span takes a few fields (its frame copied into `frame` when it is recorded
/// and out of it when a backend takes it), so that moving it in and out of the slot
/// copies little more than the frame; a span or a flush marker goes in `other`.
pub(crate) struct Entry {
    kind: Kind,
    /// The length of the frame in `frame` (0 when the frame is on the heap).
    len: u16,
    frame: [u8; INLINE],
    heap: Option<Box<[u8]>>,
    receipt: Option<ReceiptSender>,
    other: Option<Message>,
}

/// What an [`Entry`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing (taken, or never filled).
    Empty,
    /// An encoded span: `len`, `frame`, `heap`, `receipt`.
    Frame,
    /// `other`.
    Other,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            kind: Kind::Empty,
            len: 0,
            frame: [0; INLINE],
            heap: None,
            receipt: None,
            other: None,
        }
    }
}

impl Entry {
    /// Fills an empty entry with `msg` and, for an encoded span, its inline frame.
    #[inline]
    fn fill(&mut self, msg: Message, inline: &[u8]) {
        match msg {
            Message::Frame { mut heap, receipt } => {
                // Callers give at most `INLINE` bytes; more would be a bug, which must
                // cost an allocation, not the frame (nor a panic while the slot is
                // claimed).
                match self.frame.get_mut(..inline.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(inline);
                        self.len = inline.len() as u16;
                    }
                    None => heap = Some(inline.into()),
                }
                self.heap = heap;
                self.receipt = receipt;
                self.kind = Kind::Frame;
            }
            other => {
                self.other = Some(other);
                self.kind = Kind::Other;
            }
        }
    }

    /// Empties the entry: its message and, for an encoded span, its inline frame (empty
    /// otherwise), valid until the entry is filled again.
    #[inline]
    fn take(&mut self) -> Option<(Message, &[u8])> {
        let kind = std::mem::replace(&mut self.kind, Kind::Empty);
        let len = usize::from(std::mem::take(&mut self.len));
        match kind {
            Kind::Empty => None,
            Kind::Frame => Some((
                Message::Frame {
                    heap: self.heap.take(),
                    receipt: self.receipt.take(),
                },
                self.frame.get(..len).unwrap_or_default(),
            )),
            Kind::Other => self.other.take().map(|m| (m, &[][..])),
        }
    }
}

/// What [`Queue::pop_with`] did with a slot.
enum Taken {
    /// Handed its message on while it was held: whether to go on.
    Done(bool),
    /// Took its message out, to hand it on once the slot is released.
    Later(Message),
    /// It held nothing.
    Nothing,
}

/// What [`Queue::pop_batch`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Popped {
    /// This many messages were appended.
    Some(usize),
    /// Nothing now.
    Empty,
    /// Closed and empty: nothing ever again.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Queue {
    ring: Ring<Entry>,
    /// Sleeping workers (bits 0-15), dozing workers (bits 16-31) and searching workers
    /// (bits 32-63). Read by every producer after each push; written only when workers
    /// change state.
    workers: Padded<AtomicU64>,
    /// The backlog at which a producer wakes a dozing worker.
    doze_limit: usize,
    /// A wake-up was sent and its worker has not started searching yet.
    wake_pending: AtomicBool,
    work: Notify,
    /// Producers waiting for room ([`push`](Self::push)).
    room_waiters: Padded<AtomicUsize>,
    room: Notify,
    /// Handles that may push (see [`QueueTx`](crate::client)); the last one leaving
    /// closes the ring.
    senders: AtomicUsize,
}

impl Queue {
    /// A queue of `capacity` (at least 1) messages; its storage is allocated here.
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            ring: Ring::new(capacity),
            workers: Padded(AtomicU64::new(0)),
            doze_limit: (capacity / 4).max(1),
            wake_pending: AtomicBool::new(false),
            work: Notify::new(),
            room_waiters: Padded(AtomicUsize::new(0)),
            room: Notify::new(),
            senders: AtomicUsize::new(0),
        }
    }

    /// Pushes without waiting.
    #[inline]
    pub(crate) fn try_push(&self, msg: Message) -> Result<(), Refused> {
        self.try_push_inline(msg, &[])
    }

    /// Pushes without waiting, with `inline` (at most [`INLINE`] bytes: the frame of a
    /// [`Message::Frame`] without a heap buffer) copied into the slot.
    #[inline]
    pub(crate) fn try_push_inline(&self, msg: Message, inline: &[u8]) -> Result<(), Refused> {
        // Someone waits for these: a dozing worker is woken for them at once.
        let urgent = match &msg {
            Message::Span { receipt, .. } | Message::Frame { receipt, .. } => receipt.is_some(),
            Message::Flush(_) => true,
        };
        let pushed = self
            .ring
            .push_with(msg, |entry, msg| entry.fill(msg, inline));
        if let Err(e) = pushed {
            if matches!(e, PushError::Full(_)) {
                self.refused_full();
            }
            return Err(e);
        }
        // Sequentially consistent, after the push's compare-and-swap: see the module
        // docs.
        let w = self.workers.load(Ordering::SeqCst);
        if w < SEARCHER && w != 0 {
            self.wake_if_needed(w, urgent);
        }
        Ok(())
    }

    /// Whether the queue is full, so that a push now would be refused (counted as
    /// [`try_push`](Self::try_push) counts it). Lets a producer skip work for a span that
    /// would be refused.
    #[inline]
    pub(crate) fn refuses_full(&self) -> bool {
        if self.ring.is_full() {
            self.refused_full();
            true
        } else {
            false
        }
    }

    /// Nobody is searching; someone dozes or sleeps.
    #[cold]
    fn wake_if_needed(&self, w: u64, urgent: bool) {
        let wake = if w & DOZERS != 0 {
            urgent || self.ring.len() >= self.doze_limit
        } else {
            w & SLEEPERS != 0
        };
        if wake {
            self.wake_one();
        }
    }

    /// A full queue with every worker asleep should not happen; if it ever does, the
    /// refused producer wakes one, whatever `wake_pending` says.
    #[cold]
    fn refused_full(&self) {
        let w = self.workers.load(Ordering::SeqCst);
        if w & SLEEPERS != 0 && w & !SLEEPERS == 0 {
            self.wake_pending.store(true, Ordering::Release);
            self.work.notify_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        // A plain load first: while a woken worker is on its way, every push gets here.
        if !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.work.notify_one();
        }
    }

    /// Pushes, waiting for room. `Err` hands the message back when the queue is closed.
    /// Cancel safe: dropping the future leaves the message unqueued.
    pub(crate) async fn push(&self, msg: Message) -> Result<(), Message> {
        self.push_with(msg, |m| self.try_push(m)).await
    }

    /// [`push`](Self::push), with each attempt made by `attempt` (which calls
    /// [`try_push`](Self::try_push) and may count around it).
    pub(crate) async fn push_with(
        &self,
        mut msg: Message,
        mut attempt: impl FnMut(Message) -> Result<(), Refused>,
    ) -> Result<(), Message> {
        loop {
            match attempt(msg) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(m)) => return Err(m),
                Err(PushError::Full(m)) => msg = m,
            }
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            let _waiting = Counted::new(&self.room_waiters);
            match attempt(msg) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(m)) => return Err(m),
                Err(PushError::Full(m)) => msg = m,
            }
            room.await;
        }
    }

    /// Takes up to `limit` messages without waiting; then ends the caller's search (if it
    /// was searching) and, if work is left, makes sure another worker looks at it.
    /// Inline frames are left behind: for discarding messages, and for tests.
    pub(crate) fn pop_batch(
        &self,
        out: &mut Vec<Message>,
        limit: usize,
        searching: Option<Searching<'_>>,
    ) -> Popped {
        self.pop_with(limit, searching, |m, _| {
            out.push(m);
            true
        })
    }

    /// Takes up to `limit` messages without waiting, handing each to `take` with its
    /// slot's inline frame (empty if it has none): `take` copies what it needs while the
    /// slot is held, and returns false to stop after this message. Then ends the
    /// caller's search (if it was searching) and, if more than `limit` messages are
    /// left, makes sure another worker looks at them: with less, this worker takes the
    /// rest itself once done (it looks again before it waits).
    #[inline]
    pub(crate) fn pop_with(
        &self,
        limit: usize,
        searching: Option<Searching<'_>>,
        mut take: impl FnMut(Message, &[u8]) -> bool,
    ) -> Popped {
        let mut n = 0;
        let mut closed = false;
        while n < limit {
            // Only an inline frame is handled while the slot is held (it is copied out of
            // it); anything else is handed on once the slot is released, so that
            // producers never wait for a backend to encode a span.
            let popped = self.ring.pop_with(|entry| match entry.take() {
                Some((msg @ Message::Frame { heap: None, .. }, inline)) => {
                    Taken::Done(take(msg, inline))
                }
                Some((msg, _)) => Taken::Later(msg),
                None => Taken::Nothing,
            });
            let more = match popped {
                Ok(Taken::Done(more)) => Some(more),
                Ok(Taken::Later(msg)) => Some(take(msg, &[])),
                // A slot whose producer panicked while filling it: nothing in it.
                Ok(Taken::Nothing) => None,
                Err(PopError::Empty) => break,
                Err(PopError::Closed) => {
                    closed = true;
                    break;
                }
            };
            if let Some(more) = more {
                n += 1;
                if !more {
                    break;
                }
            }
        }
        drop(searching);
        if n == 0 {
            return if closed {
                Popped::Closed
            } else {
                Popped::Empty
            };
        }
        if self.room_waiters.load(Ordering::SeqCst) != 0 {
            self.room.notify_waiters();
        }
        if self.ring.len() >= limit {
            // More than a batch left: another worker should help.
            let w = self.workers.load(Ordering::SeqCst);
            if w < SEARCHER && w != 0 {
                self.wake_one();
            }
        }
        Popped::Some(n)
    }

    /// Resolves when there may be work (or the queue is closed). The returned guard
    /// marks this worker as searching until it is dropped, which the worker does once
    /// it took its batch: meanwhile producers leave the other workers asleep.
    pub(crate) async fn wait_for_work(&self, first: bool) -> Searching<'_> {
        // Wake-ups are only ever received in here (awaited, or taken by `enable` from a
        // stored permit). Leaving, however that happens, clears `wake_pending`: a wake-up
        // taken without being waited for then cannot hold back the next one. (A wake-up
        // still on its way to another worker may be doubled: harmless.)
        let _clear = ClearWake(self);
        let mut searching = Searching::new(self);
        if self.has_work() {
            return searching;
        }
        // Look once more after letting the runtime run other tasks (the producers, on a
        // current-thread runtime), then doze, if no other worker does: a steady stream
        // of spans then finds a worker that comes back by itself. (Looking again and
        // again instead, for some microseconds, cost a third more CPU per span on two
        // cores, for no more throughput.)
        if self.workers.load(Ordering::Relaxed) < 2 * SEARCHER {
            tokio::task::yield_now().await;
            if self.has_work() {
                return searching;
            }
            if self.workers.load(Ordering::Relaxed) & DOZERS == 0 {
                searching.set(DOZER);
                for _ in 0..DOZES {
                    let mut notified = pin!(self.work.notified());
                    notified.as_mut().enable();
                    if self.has_work() {
                        break;
                    }
                    let woken = tokio::select! {
                        biased;
                        _ = &mut notified => true,
                        _ = tokio::time::sleep(DOZE) => false,
                    };
                    if woken {
                        // A wake-up was spent on this worker: leave, so that
                        // `wake_pending` is cleared (a dozer that slept on with it set
                        // would keep every later push from waking anyone).
                        searching.set(SEARCHER);
                        return searching;
                    }
                    if self.has_work() {
                        break;
                    }
                }
                searching.set(SEARCHER);
                if self.has_work() {
                    return searching;
                }
            }
        }
        // Sleep. The waiter is registered before the worker counts as sleeping, so a
        // producer that sees it sleeping finds a waiter to wake.
        let mut notified = pin!(self.work.notified());
        notified.as_mut().enable();
        searching.set(SLEEPER);
        if !self.has_work() {
            // A sleeping worker still looks again now and then: should a wake-up ever go
            // missing, spans wait at most this long instead of forever. The first
            // worker looks ten times a second, the others once (every look costs a
            // thread wake-up).
            let recheck = if first { RECHECK } else { RECHECK_OTHERS };
            tokio::select! {
                biased;
                _ = notified => {}
                _ = tokio::time::sleep(recheck) => {}
            }
        }
        searching.set(SEARCHER);
        searching
    }

    fn has_work(&self) -> bool {
        !self.ring.is_empty() || self.ring.is_closed()
    }

    /// Refuses every later push; wakes the workers (to drain and stop) and the producers
    /// waiting for room (to be refused).
    pub(crate) fn close(&self) {
        self.ring.close();
        self.work.notify_waiters();
        self.room.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Adds a sender.
    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a sender unless there is none left (the queue then stays closed).
    pub(crate) fn upgrade_sender(&self) -> bool {
        self.senders
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n > 0).then_some(n + 1)
            })
            .is_ok()
    }

    /// Removes a sender; the last one closes the queue.
    pub(crate) fn remove_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}

/// Clears [`Queue::wake_pending`] when dropped.
struct ClearWake<'a>(&'a Queue);

impl Drop for ClearWake<'_> {
    fn drop(&mut self) {
        self.0.wake_pending.store(false, Ordering::Release);
    }
}

/// Counts one in an atomic while alive.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Counted(c)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A worker awake and looking for work (see [`Queue::wait_for_work`]), or dozing or
/// asleep while waiting for it: counted in [`Queue::workers`] as long as it lives.
#[derive(Debug)]
pub(crate) struct Searching<'a> {
    q: &'a Queue,
    /// [`SEARCHER`], [`DOZER`] or [`SLEEPER`].
    counted: u64,
}

impl<'a> Searching<'a> {
    fn new(q: &'a Queue) -> Self {
        q.workers.fetch_add(SEARCHER, Ordering::SeqCst);
        Searching {
            q,
            counted: SEARCHER,
        }
    }

    /// Changes state ([`SEARCHER`], [`DOZER`] or [`SLEEPER`]) in one step.
    fn set(&mut self, state: u64) {
        self.q
            .workers
            .fetch_add(state.wrapping_sub(self.counted), Ordering::SeqCst);
        self.counted = state;
    }
}

impl Drop for Searching<'_> {
    fn drop(&mut self) {
        // Also when cancelled while asleep (the worker's other branches won).
        self.q.workers.fetch_sub(self.counted, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssf_proto::SsfSpan;
    use std::sync::Arc;

    /// A worker: waits for work and takes batches of `batch`, counting what it takes in
    /// `taken`, until the queue is closed.
    async fn worker_loop(q: Arc<Queue>, taken: Arc<AtomicU64>, first: bool, batch: usize) {
        let mut out = Vec::new();
        loop {
            let searching = q.wait_for_work(first).await;
            match q.pop_batch(&mut out, batch, Some(searching)) {
                Popped::Some(n) => {
                    taken.fetch_add(n as u64, Ordering::Relaxed);
                    out.clear();
                }
                Popped::Empty => {}
                Popped::Closed => return,
            }
        }
    }

    fn span(id: i64) -> Message {
        Message::Span {
            span: SsfSpan {
                id,
                ..Default::default()
            },
            receipt: None,
        }
    }

    fn id(m: &Message) -> i64 {
        match m {
            Message::Span { span, .. } => span.id,
            Message::Frame { .. } | Message::Flush(_) => -1,
        }
    }

    #[test]
    fn a_slot_takes_576_bytes() {
        // The documented memory of the queue: capacity x (the entry + the ring's stamp).
        assert_eq!(std::mem::size_of::<Entry>() + 8, 576);
    }

    #[test]
    fn bounded_fifo_with_close() {
        let q = Queue::new(3);
        for i in 0..3 {
            q.try_push(span(i)).unwrap();
        }
        assert!(matches!(q.try_push(span(3)), Err(PushError::Full(_))));
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 2, None), Popped::Some(2));
        q.close();
        assert!(matches!(q.try_push(span(4)), Err(PushError::Closed(_))));
        assert_eq!(q.pop_batch(&mut out, 8, None), Popped::Some(1));
        assert_eq!(q.pop_batch(&mut out, 8, None), Popped::Closed);
        assert_eq!(out.iter().map(id).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn the_last_sender_closes() {
        let q = Queue::new(1);
        q.add_sender();
        q.add_sender();
        q.remove_sender();
        assert!(!q.is_closed());
        assert!(q.upgrade_sender());
        q.remove_sender();
        q.remove_sender();
        assert!(q.is_closed());
        assert!(!q.upgrade_sender());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_push_is_ever_left_unseen() {
        // Two workers sleep and wake around a producer on another thread; every span is
        // taken, none waits forever.
        const N: i64 = 50_000;
        let q = Arc::new(Queue::new(64));
        let taken = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (q, taken) = (q.clone(), taken.clone());
            workers.push(tokio::spawn(worker_loop(q, taken, true, 16)));
        }
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let mut m = span(i);
                    loop {
                        match q.try_push(m) {
                            Ok(()) => break,
                            Err(PushError::Full(back)) => {
                                m = back;
                                std::thread::yield_now();
                            }
                            Err(PushError::Closed(_)) => panic!("closed"),
                        }
                    }
                    if i % 1000 == 0 {
                        // Let the workers fall asleep now and then.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        producer.join().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while taken.load(Ordering::Relaxed) < N as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "spans left in the queue"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.close();
        for w in workers {
            w.await.unwrap();
        }
        assert_eq!(q.workers.load(Ordering::SeqCst), 0, "guards balanced");
    }

    #[test]
    fn bursts_and_pauses_never_leave_a_worker_asleep_on_a_queued_span() {
        // Producers on their own threads push in bursts with pauses, short ones (the
        // worker dozes) and now and then long ones (it sleeps for good), with
        // some urgent messages. After each long pause every span pushed so far must be
        // taken without any further push: a lost wake-up leaves it queued.
        const ROUNDS: usize = 60;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // A small queue: nearly every push during a doze wakes the dozer.
        let q = Arc::new(Queue::new(16));
        let taken = Arc::new(AtomicU64::new(0));
        let worker = {
            let (q, taken) = (q.clone(), taken.clone());
            rt.spawn(worker_loop(q, taken, true, 8))
        };
        let pushed = AtomicU64::new(0);
        for round in 0..ROUNDS {
            std::thread::scope(|s| {
                for p in 0..2 {
                    let (q, pushed) = (&q, &pushed);
                    s.spawn(move || {
                        for b in 0..100 {
                            for i in 0..(3 + (b * 7 + p + round) % 9) {
                                let mut m = span(i as i64);
                                if (b + p + round + i) % 3 == 0 {
                                    let (tx, _rx) = tokio::sync::oneshot::channel();
                                    m = Message::Span {
                                        span: SsfSpan::default(),
                                        receipt: Some(tx),
                                    };
                                }
                                if q.try_push(m).is_ok() {
                                    pushed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            let pause = 12 + (b * 13 + round) % 30;
                            std::thread::sleep(Duration::from_micros(pause as u64));
                        }
                    });
                }
            });
            // No more pushes: the worker must take what is queued by itself.
            let want = pushed.load(Ordering::Relaxed);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while taken.load(Ordering::Relaxed) < want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: {} of {want} taken; the worker sleeps on queued spans",
                    taken.load(Ordering::Relaxed)
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            // Long enough for the worker to go from dozing to sleeping.
            std::thread::sleep(DOZE * (DOZES + 2));
        }
        q.close();
        rt.block_on(worker).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_spent_on_a_dozer_is_not_left_pending() {
        // A dozing worker is woken for an urgent message that somebody else takes first.
        // It must not go to sleep with the wake-up still marked as on its way: the next
        // push, finding it asleep, has to wake it (long before its 1 s recheck).
        let q = Arc::new(Queue::new(16));
        let taken = Arc::new(AtomicU64::new(0));
        let worker = {
            let (q, taken) = (q.clone(), taken.clone());
            tokio::spawn(worker_loop(q, taken, false, 8))
        };
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(
            q.workers.load(Ordering::SeqCst) & DOZERS != 0,
            "the worker dozes"
        );
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let urgent = Message::Span {
            span: SsfSpan::default(),
            receipt: Some(tx),
        };
        q.try_push(urgent).unwrap();
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 8, None), Popped::Some(1));
        // The worker wakes to nothing, dozes again and falls asleep.
        tokio::time::sleep(DOZE * (DOZES + 5)).await;
        assert!(
            q.workers.load(Ordering::SeqCst) & SLEEPERS != 0,
            "the worker sleeps"
        );
        q.try_push(span(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(taken.load(Ordering::Relaxed), 1, "the push woke the worker");
        q.close();
        worker.await.unwrap();
    }

    #[test]
    fn an_inline_frame_too_large_for_the_slot_moves_to_the_heap() {
        let mut e = Entry::default();
        let bytes: Vec<u8> = (0..INLINE as u32 + 10).map(|i| i as u8).collect();
        let msg = Message::Frame {
            heap: None,
            receipt: None,
        };
        e.fill(msg, &bytes);
        let (msg, inline) = e.take().unwrap();
        assert!(inline.is_empty());
        match msg {
            Message::Frame { heap: Some(h), .. } => assert_eq!(&h[..], &bytes[..]),
            other => panic!("{other:?}"),
        }
        assert!(e.take().is_none(), "taken once");
    }

    #[tokio::test]
    async fn push_waits_for_room_and_is_refused_once_closed() {
        let q = Arc::new(Queue::new(1));
        q.try_push(span(0)).unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.push(span(1)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 1, None), Popped::Some(1));
        assert!(waiter.await.unwrap(), "pushed once there was room");
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.push(span(2)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        q.close();
        assert!(!waiter.await.unwrap(), "refused when closed");
    }
}
