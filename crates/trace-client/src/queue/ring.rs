//! The queue's ring: a bounded multi-producer, multi-consumer array queue whose slots
//! stay initialised, so that a producer fills a slot in place and a consumer empties it
//! in place. A span is encoded into its slot and its frame copied out of it once,
//! however large the slot's type is.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue with a close bit (as the
//! `concurrent-queue` crate's bounded queue has it). Each slot has a stamp: `tail + 1`
//! once a producer filled it for the lap of `tail`, `head + one_lap` once a consumer
//! emptied it. A producer claims the slot at the tail with a compare-and-swap on the
//! tail when the slot's stamp says it is empty for this lap, fills it, then publishes
//! the new stamp (release); a consumer does the same at the head. Between the claim and
//! the publication the claimant is the only thread that touches the slot's value. The
//! close bit in the tail refuses every later push, atomically with them.

#![allow(unsafe_code)]

use crate::padded::Padded;
use crate::sync::{AtomicUsize, Ordering, UnsafeCell, fence, snooze};

/// Why a push failed; the value is handed back.
#[derive(Debug)]
pub(crate) enum PushError<T> {
    /// Every slot holds a value.
    Full(T),
    /// The ring is closed.
    Closed(T),
}

impl<T> PushError<T> {
    pub(crate) fn into_inner(self) -> T {
        match self {
            PushError::Full(v) | PushError::Closed(v) => v,
        }
    }
}

/// Why a pop found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopError {
    /// Empty now.
    Empty,
    /// Closed and empty: nothing ever again.
    Closed,
}

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<T>,
}

/// A bounded MPMC ring of always-initialised `T`s.
pub(crate) struct Ring<T> {
    head: Padded<AtomicUsize>,
    tail: Padded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// A power of two above the capacity: the close bit of the tail. Positions are
    /// `lap | index`, with `index < capacity`.
    mark_bit: usize,
    /// Twice `mark_bit`: the increment of the lap part of a position.
    one_lap: usize,
}

// SAFETY: a slot's value is reached only by the thread that claimed the slot (see
// `push_with` and `pop_with`), one at a time, with the stamp's release and acquire
// ordering each hand-over; values move between threads, so `T: Send` is what is needed.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.slots.len())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Publishes a slot's stamp when dropped, so that a claimed slot is handed on even if
/// the code filling or emptying it panics.
struct Publish<'a> {
    stamp: &'a AtomicUsize,
    value: usize,
}

impl Drop for Publish<'_> {
    fn drop(&mut self) {
        self.stamp.store(self.value, Ordering::Release);
    }
}

impl<T: Default> Ring<T> {
    /// A ring of `capacity` (at least 1) slots, each holding `T::default()`; all the
    /// memory is allocated here.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(T::default()),
            })
            .collect();
        let mark_bit = (capacity + 1).next_power_of_two();
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots,
            mark_bit,
            one_lap: mark_bit * 2,
        }
    }
}

impl<T> Ring<T> {
    /// Claims the slot at the tail and runs `fill` on its value with `value`, returning
    /// what `fill` returns; refused (handing `value` back) when the ring is full or closed.
    ///
    /// `fill` should be short: consumers that reach the slot meanwhile wait for it.
    #[inline]
    pub(crate) fn push_with<V, R>(
        &self,
        value: V,
        fill: impl FnOnce(&mut T, V) -> R,
    ) -> Result<R, PushError<V>> {
        let mut spins = 0;
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        loop {
            if tail & self.mark_bit != 0 {
                return Err(PushError::Closed(value));
            }
            let index = tail & (self.mark_bit - 1);
            let lap = tail & !(self.one_lap - 1);
            let new_tail = if index + 1 < self.slots.len() {
                tail + 1
            } else {
                lap.wrapping_add(self.one_lap)
            };
            let slot = &self.slots[index];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if tail == stamp {
                // The slot is empty for this lap: claim it.
                match self.tail.0.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let _publish = Publish {
                            stamp: &slot.stamp,
                            value: tail + 1,
                        };
                        // SAFETY: the compare-and-swap made this thread the only claimant
                        // of the slot for this lap: consumers wait for the stamp published
                        // by `_publish`, and the consumer of the previous lap published
                        // its stamp (acquired above) after its last access.
                        return Ok(slot.value.with_mut(|v| fill(unsafe { &mut *v }, value)));
                    }
                    Err(t) => tail = t,
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds the previous lap's value: full, unless a consumer
                // moved the head meanwhile.
                fence(Ordering::SeqCst);
                let head = self.head.0.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(PushError::Full(value));
                }
                // A consumer claimed the slot and is emptying it.
                snooze(&mut spins);
                tail = self.tail.0.load(Ordering::Relaxed);
            } else {
                // Another producer claimed the slot and has not published it yet.
                snooze(&mut spins);
                tail = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Claims the slot at the head and runs `take` on its value (which should leave it
    /// empty for the next lap); `Empty` or `Closed` when there is nothing to take.
    #[inline]
    pub(crate) fn pop_with<R>(&self, take: impl FnOnce(&mut T) -> R) -> Result<R, PopError> {
        let mut spins = 0;
        let mut head = self.head.0.load(Ordering::Relaxed);
        loop {
            let index = head & (self.mark_bit - 1);
            let lap = head & !(self.one_lap - 1);
            let slot = &self.slots[index];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head + 1 == stamp {
                // A producer published the slot for this lap: claim it.
                let new_head = if index + 1 < self.slots.len() {
                    head + 1
                } else {
                    lap.wrapping_add(self.one_lap)
                };
                match self.head.0.compare_exchange_weak(
                    head,
                    new_head,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let _release = Publish {
                            stamp: &slot.stamp,
                            value: head.wrapping_add(self.one_lap),
                        };
                        // SAFETY: the compare-and-swap made this thread the only claimant
                        // of the slot: its producer published it (the stamp, acquired
                        // above) after its last access, and the next lap's producer waits
                        // for the stamp published by `_release`.
                        return Ok(slot.value.with_mut(|v| take(unsafe { &mut *v })));
                    }
                    Err(h) => head = h,
                }
            } else if stamp == head {
                // Not filled for this lap: empty, unless a producer claimed it and is
                // filling it.
                fence(Ordering::SeqCst);
                let tail = self.tail.0.load(Ordering::Relaxed);
                if tail & !self.mark_bit == head {
                    return Err(if tail & self.mark_bit != 0 {
                        PopError::Closed
                    } else {
                        PopError::Empty
                    });
                }
                snooze(&mut spins);
                head = self.head.0.load(Ordering::Relaxed);
            } else {
                // Another consumer claimed the slot and has not released it yet.
                snooze(&mut spins);
                head = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// How many values the ring holds.
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.0.load(Ordering::SeqCst);
            let head = self.head.0.load(Ordering::SeqCst);
            // A consistent pair: the tail did not move while the head was read.
            if self.tail.0.load(Ordering::SeqCst) == tail {
                let hix = head & (self.mark_bit - 1);
                let tix = tail & (self.mark_bit - 1);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.slots.len() - hix + tix
                } else if tail & !self.mark_bit == head {
                    0
                } else {
                    self.slots.len()
                };
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.0.load(Ordering::SeqCst);
        let tail = self.tail.0.load(Ordering::SeqCst);
        tail & !self.mark_bit == head
    }

    /// Whether the slot at the tail is empty for this lap, so that the ring is not full
    /// now. It reads the two words a push reads first (the tail and its slot's stamp),
    /// not the head, which every pop writes: a producer that asks before pushing pays
    /// for no cache line the push would not fetch anyway.
    #[inline]
    pub(crate) fn tail_is_free(&self) -> bool {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let index = tail & (self.mark_bit - 1);
        // A closed tail carries the mark bit, which no stamp has: not free.
        self.slots
            .get(index)
            .is_some_and(|slot| slot.stamp.load(Ordering::Relaxed) == tail)
    }

    pub(crate) fn is_full(&self) -> bool {
        let tail = self.tail.0.load(Ordering::SeqCst);
        let head = self.head.0.load(Ordering::SeqCst);
        head.wrapping_add(self.one_lap) == tail & !self.mark_bit
    }

    /// Refuses every later push; returns false if it was closed already.
    pub(crate) fn close(&self) -> bool {
        self.tail.0.fetch_or(self.mark_bit, Ordering::SeqCst) & self.mark_bit == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.0.load(Ordering::SeqCst) & self.mark_bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn push(r: &Ring<Option<u64>>, v: u64) -> Result<(), PushError<u64>> {
        r.push_with(v, |slot, v| *slot = Some(v))
    }

    fn pop(r: &Ring<Option<u64>>) -> Result<Option<u64>, PopError> {
        r.pop_with(Option::take)
    }

    #[test]
    fn fifo_full_and_closed() {
        let r = Ring::<Option<u64>>::new(3);
        assert!(r.is_empty() && !r.is_full());
        for v in 0..3 {
            push(&r, v).unwrap();
        }
        assert!(r.is_full());
        assert_eq!(r.len(), 3);
        assert!(matches!(push(&r, 9), Err(PushError::Full(9))));
        assert!(!r.tail_is_free());
        assert_eq!(pop(&r), Ok(Some(0)));
        push(&r, 3).unwrap();
        assert!(r.close());
        assert!(!r.close(), "closed once");
        assert!(matches!(push(&r, 10), Err(PushError::Closed(10))));
        assert_eq!(
            (pop(&r), pop(&r), pop(&r)),
            (Ok(Some(1)), Ok(Some(2)), Ok(Some(3)))
        );
        assert_eq!(pop(&r), Err(PopError::Closed));
        assert_eq!(r.len(), 0);
        assert!(!r.tail_is_free(), "a closed ring has no room");
    }

    #[test]
    fn many_laps_of_one_slot_and_of_odd_sizes() {
        for cap in [1, 2, 3, 5, 8, 100] {
            let r = Ring::<Option<u64>>::new(cap);
            let mut next_out = 0;
            for v in 0..10_000u64 {
                // The tail's slot is free exactly when the ring is not full.
                assert_eq!(r.tail_is_free(), !r.is_full(), "capacity {cap}, push {v}");
                if push(&r, v).is_err() {
                    assert_eq!(pop(&r), Ok(Some(next_out)));
                    next_out += 1;
                    push(&r, v).unwrap();
                }
                assert!(r.len() <= cap);
            }
            while let Ok(Some(v)) = pop(&r) {
                assert_eq!(v, next_out);
                next_out += 1;
            }
            assert_eq!(next_out, 10_000, "capacity {cap}");
            assert_eq!(pop(&r), Err(PopError::Empty));
        }
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_with_it() {
        let token = Arc::new(());
        let r = Ring::<Option<Arc<()>>>::new(4);
        for _ in 0..3 {
            r.push_with(token.clone(), |slot, t| *slot = Some(t))
                .unwrap();
        }
        assert_eq!(Arc::strong_count(&token), 4);
        drop(r);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn a_panic_while_filling_or_emptying_hands_the_slot_on() {
        let r = Arc::new(Ring::<Option<u64>>::new(2));
        let r2 = r.clone();
        let filled = std::thread::spawn(move || {
            let _ = r2.push_with(1u64, |_, _| panic!("filling"));
        })
        .join();
        assert!(filled.is_err());
        // The slot was published (empty): the ring goes on.
        assert_eq!(pop(&r), Ok(None));
        push(&r, 2).unwrap();
        let r2 = r.clone();
        let emptied = std::thread::spawn(move || {
            let _ = r2.pop_with(|_| panic!("emptying"));
        })
        .join();
        assert!(emptied.is_err());
        push(&r, 3).unwrap();
        push(&r, 4).unwrap();
        assert_eq!(pop(&r), Ok(Some(3)));
        assert_eq!(pop(&r), Ok(Some(4)));
    }

    #[test]
    fn producers_and_consumers_on_threads_lose_and_repeat_nothing() {
        // Four producers push distinct values through a small ring to three consumers;
        // every value arrives exactly once, in each producer's order.
        const PER: u64 = 100_000;
        const PRODUCERS: u64 = 4;
        let r = Arc::new(Ring::<Option<u64>>::new(16));
        let done = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let (r, done) = (r.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match pop(&r) {
                            Ok(Some(v)) => got.push(v),
                            Ok(None) => panic!("an empty slot was published"),
                            Err(PopError::Closed) => return got,
                            Err(PopError::Empty) => {
                                if done.load(Ordering::Acquire) == PRODUCERS as usize {
                                    r.close();
                                }
                                std::hint::spin_loop();
                            }
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (r, done) = (r.clone(), done.clone());
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut v = p * PER + i;
                        loop {
                            match push(&r, v) {
                                Ok(()) => break,
                                Err(PushError::Full(back)) => {
                                    v = back;
                                    std::thread::yield_now();
                                }
                                Err(PushError::Closed(_)) => panic!("closed early"),
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Release);
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all = HashSet::new();
        for c in consumers {
            let got = c.join().unwrap();
            // Per producer, one consumer sees values in increasing order.
            let mut last = vec![None; PRODUCERS as usize];
            for &v in &got {
                let p = (v / PER) as usize;
                assert!(last[p].is_none_or(|l| l < v), "out of order: {v}");
                last[p] = Some(v);
                assert!(all.insert(v), "{v} twice");
            }
        }
        assert_eq!(all.len() as u64, PRODUCERS * PER, "values lost");
    }
}
