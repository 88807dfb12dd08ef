//! The client's queue: a bounded lock-free ring between the producers (every handle of
//! the client) and the backend workers, and how idle workers sleep and are woken.
//!
//! * [`ring`]: the ring, a bounded MPMC array queue whose slots stay initialised; a
//!   producer costs one compare-and-swap on the tail and the write of its slot. Its
//!   storage is allocated when the client is built, so recording allocates nothing.
//!   Closing it is atomic with pushes: once closed, no push succeeds, and workers drain
//!   what is in it.
//! * [`slot`]: what a slot holds (for an encoded span, its frame is encoded into it; a
//!   backend copies it out into its write buffer).
//! * [`wake`]: how idle workers doze and sleep, and when producers wake them.
//! * this module: the [`Queue`] that puts them together, and the producers that wait for
//!   room.

mod ring;
mod slot;
mod wake;

#[cfg(all(ssf_loom, test))]
mod loom;

use crate::encode::INLINE;
use crate::message::{Message, ReceiptSender};
use crate::sync::{AtomicUsize, Ordering};
use crate::waiters::WaitList;

pub(crate) use ring::PushError;
use ring::{PopError, Ring};
use slot::Slot;
pub(crate) use slot::Written;
pub(crate) use wake::Searching;
use wake::Wake;

/// Why a push failed; the message is handed back.
pub(crate) type Refused = PushError<Message>;

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
    ring: Ring<Slot>,
    wake: Wake,
    /// Producers waiting for room (record and flush futures).
    room: WaitList,
    /// Handles that may push (the client's senders); the last one leaving
    /// closes the ring.
    senders: AtomicUsize,
}

impl Queue {
    /// A queue of `capacity` (at least 1) messages whose workers take what is there;
    /// its storage is allocated here.
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with(capacity, false)
    }

    /// A queue of `capacity` messages whose workers wait for a batch when they need
    /// not take less (see [`wake`]): for backends that write many spans at once.
    pub(crate) fn batching(capacity: usize) -> Self {
        Self::with(capacity, true)
    }

    fn with(capacity: usize, batches: bool) -> Self {
        Queue {
            ring: Ring::new(capacity),
            wake: Wake::new(capacity, batches),
            room: WaitList::default(),
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
        let urgent = msg.is_urgent();
        self.push_waking(msg, urgent, |entry, msg| entry.fill(msg, inline))
    }

    /// Pushes an encoded span, with `receipt`, that `write` encodes straight into the
    /// slot it claims, as [`Message::Frame`] is queued, without the message's moves.
    /// When `write` says [`Written::Nothing`] (a span too large to send) the slot is left
    /// empty, which the workers skip: `Ok(Err(receipt))`.
    ///
    /// `write` runs while the slot is claimed: it should only encode.
    #[inline]
    pub(crate) fn try_push_written(
        &self,
        receipt: Option<ReceiptSender>,
        write: impl FnOnce(&mut [u8; INLINE]) -> Written,
    ) -> Result<Result<(), Option<ReceiptSender>>, PushError<Option<ReceiptSender>>> {
        let urgent = receipt.is_some();
        self.push_waking(receipt, urgent, |entry, receipt| {
            entry.write_frame(receipt, write)
        })
    }

    /// Pushes `value` with `fill`, returning what `fill` returns, then wakes a worker if
    /// one is needed (for an `urgent` message at once); a refusal because the queue is
    /// full may wake a sleeping one.
    #[inline]
    fn push_waking<V, R>(
        &self,
        value: V,
        urgent: bool,
        fill: impl FnOnce(&mut Slot, V) -> R,
    ) -> Result<R, PushError<V>> {
        match self.ring.push_with(value, fill) {
            Ok(r) => {
                self.wake.pushed(urgent, || self.ring.len());
                Ok(r)
            }
            Err(e) => {
                if matches!(e, PushError::Full(_)) {
                    self.wake.refused_full();
                }
                Err(e)
            }
        }
    }

    /// Whether the queue is full, so that a push now would be refused (counted as
    /// [`try_push`](Self::try_push) counts it). Lets a producer skip work for a span that
    /// would be refused.
    #[inline]
    pub(crate) fn refuses_full(&self) -> bool {
        // Mostly answered by the tail's slot, which the push reads next anyway.
        if self.ring.tail_is_free() {
            return false;
        }
        if self.ring.is_full() {
            self.wake.refused_full();
            true
        } else {
            false
        }
    }

    /// The producers waiting for room: they register here, try again, and are woken
    /// when a worker takes messages or the queue closes.
    pub(crate) fn room(&self) -> &WaitList {
        &self.room
    }

    /// Pushes, waiting for room. `Err` hands the message back when the queue is closed.
    /// Cancel safe: dropping the future leaves the message unqueued.
    #[cfg(test)]
    pub(crate) async fn push(&self, msg: Message) -> Result<(), Message> {
        let mut msg = Some(msg);
        let mut key = crate::waiters::WaitKey::default();
        let result = std::future::poll_fn(|cx| {
            for registered in [false, true] {
                let Some(m) = msg.take() else {
                    return std::task::Poll::Ready(Ok(()));
                };
                match self.try_push(m) {
                    Ok(()) => return std::task::Poll::Ready(Ok(())),
                    Err(PushError::Closed(m)) => return std::task::Poll::Ready(Err(m)),
                    Err(PushError::Full(m)) => msg = Some(m),
                }
                if !registered {
                    self.room.register(&mut key, cx.waker());
                }
            }
            std::task::Poll::Pending
        })
        .await;
        self.room.deregister(&mut key);
        result
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
        // After the pops (sequentially consistent compare-and-swaps): see `WaitList`.
        self.room.wake_all();
        if self.ring.len() >= limit {
            // More than a batch left: another worker should help.
            self.wake.more_left();
        }
        Popped::Some(n)
    }

    /// Resolves when there may be work (or the queue is closed); see [`wake`]. The
    /// returned guard marks this worker as searching until it is dropped.
    pub(crate) async fn wait_for_work(&self, first: bool) -> Searching<'_> {
        self.wake
            .wait_for_work(first, true, || self.has_work(), || self.has_batch())
            .await
    }

    fn has_work(&self) -> bool {
        !self.ring.is_empty() || self.ring.is_closed()
    }

    /// Whether a worker that need not take less has a batch to take (see [`wake`]).
    fn has_batch(&self) -> bool {
        match self.wake.batch_min() {
            1 => self.has_work(),
            batch => self.wake.take_urgent() || self.ring.len() >= batch || self.ring.is_closed(),
        }
    }

    /// Refuses every later push; wakes the workers (to drain and stop) and the producers
    /// waiting for room (to be refused).
    pub(crate) fn close(&self) {
        self.ring.close();
        self.wake.wake_all();
        self.room.wake_all();
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

#[cfg(test)]
mod tests {
    use super::wake::{DOZE, DOZERS, DOZES, SLEEPERS};
    use super::*;
    use crate::encode::INLINE;
    use ssf_proto::SsfSpan;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

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
        assert_eq!(std::mem::size_of::<Slot>() + 8, 576);
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
        no_push_left_unseen(Queue::new(64)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_push_is_ever_left_unseen_by_workers_waiting_for_batches() {
        // A worker that finds less than a batch while the other dozes sleeps.
        no_push_left_unseen(Queue::batching(64)).await;
    }

    async fn no_push_left_unseen(q: Queue) {
        // Two workers sleep and wake around a producer on another thread; every span is
        // taken, none waits forever.
        const N: i64 = 50_000;
        let q = Arc::new(q);
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
        assert_eq!(q.wake.workers.load(Ordering::SeqCst), 0, "guards balanced");
    }

    #[test]
    fn bursts_and_pauses_never_leave_a_worker_asleep_on_a_queued_span() {
        // A small queue: nearly every push during a doze wakes the dozer.
        bursts_and_pauses(Queue::new(16));
    }

    #[test]
    fn bursts_and_pauses_never_leave_a_worker_waiting_for_batches_asleep_on_a_span() {
        // Batches of 4: most bursts leave less than a batch behind.
        bursts_and_pauses(Queue::batching(16));
    }

    fn bursts_and_pauses(q: Queue) {
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
        let q = Arc::new(q);
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
            q.wake.workers.load(Ordering::SeqCst) & DOZERS != 0,
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
            q.wake.workers.load(Ordering::SeqCst) & SLEEPERS != 0,
            "the worker sleeps"
        );
        q.try_push(span(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(taken.load(Ordering::Relaxed), 1, "the push woke the worker");
        q.close();
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_waits_for_a_batch_unless_someone_waits_for_a_message() {
        // A worker that finds less than a batch (64 here) dozes before it takes it; a
        // batch, or a message someone waits for, is taken at once.
        async fn took_at_once(q: &Arc<Queue>, want: u64) -> bool {
            let taken = Arc::new(AtomicU64::new(0));
            let worker = tokio::spawn(worker_loop(q.clone(), taken.clone(), true, 512));
            // Yielding lets the worker run without the (paused) clock moving.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            let at_once = taken.load(Ordering::Relaxed) == want;
            tokio::time::sleep(DOZE * 2).await;
            assert_eq!(taken.load(Ordering::Relaxed), want, "taken after a doze");
            q.close();
            worker.await.unwrap();
            at_once
        }
        assert_eq!(
            Queue::new(1024).wake.batch_min(),
            1,
            "datagrams: no waiting"
        );
        let q = Arc::new(Queue::batching(1024));
        assert_eq!(q.wake.batch_min(), 64);
        for i in 0..3 {
            q.try_push(span(i)).unwrap();
        }
        assert!(!took_at_once(&q, 3).await, "three spans wait for the doze");

        let q = Arc::new(Queue::batching(1024));
        for i in 0..64 {
            q.try_push(span(i)).unwrap();
        }
        assert!(took_at_once(&q, 64).await, "a batch is taken at once");

        let q = Arc::new(Queue::batching(1024));
        q.try_push(span(1)).unwrap();
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let urgent = Message::Span {
            span: SsfSpan::default(),
            receipt: Some(tx),
        };
        q.try_push(urgent).unwrap();
        assert!(
            took_at_once(&q, 2).await,
            "a span with a receipt is taken at once"
        );
    }

    #[test]
    fn an_inline_frame_too_large_for_the_slot_moves_to_the_heap() {
        let mut e = Slot::default();
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

    #[test]
    fn written_frames_come_out_as_written_and_a_slot_left_empty_is_skipped() {
        let q = Queue::new(4);
        let inline = |b: u8| {
            move |frame: &mut [u8; INLINE]| {
                frame[..3].fill(b);
                Written::Inline(3)
            }
        };
        assert!(matches!(q.try_push_written(None, inline(1)), Ok(Ok(()))));
        // Not queued: the receipt comes back and the slot holds nothing.
        let (tx, _rx) = tokio::sync::oneshot::channel();
        match q.try_push_written(Some(tx), |_| Written::Nothing) {
            Ok(Err(Some(_))) => {}
            other => panic!("{other:?}"),
        }
        // A length over the slot is not taken as a frame either.
        assert!(matches!(
            q.try_push_written(None, |_| Written::Inline(INLINE + 1)),
            Ok(Err(None))
        ));
        let heap: Box<[u8]> = vec![7; INLINE * 2].into();
        assert!(matches!(
            q.try_push_written(None, |_| Written::Heap(heap)),
            Ok(Ok(()))
        ));
        // Full: four slots claimed, two of them left empty until a worker passes them.
        assert!(matches!(
            q.try_push_written(None, inline(9)),
            Err(PushError::Full(None))
        ));
        let mut got = Vec::new();
        let popped = q.pop_with(8, None, |m, inline| {
            got.push((m, inline.to_vec()));
            true
        });
        assert_eq!(popped, Popped::Some(2), "the empty slots are not messages");
        assert_eq!(got[0].1, [1, 1, 1]);
        assert!(matches!(
            &got[0].0,
            Message::Frame {
                heap: None,
                receipt: None
            }
        ));
        match &got[1].0 {
            Message::Frame { heap: Some(h), .. } => assert_eq!(h.len(), INLINE * 2),
            other => panic!("{other:?}"),
        }
        assert!(got[1].1.is_empty());
        // The slots are reused, an inline frame after a heap one included.
        for b in 2..6 {
            assert!(matches!(q.try_push_written(None, inline(b)), Ok(Ok(()))));
        }
        got.clear();
        assert_eq!(
            q.pop_with(8, None, |m, inline| {
                assert!(matches!(m, Message::Frame { heap: None, .. }));
                got.push((m, inline.to_vec()));
                true
            }),
            Popped::Some(4)
        );
        let firsts: Vec<u8> = got.iter().map(|(_, b)| b[0]).collect();
        assert_eq!(firsts, [2, 3, 4, 5]);
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
