//! [`WaitList`]: tasks waiting for a condition another task makes true (room in the
//! queue, the workers' exit), woken all at once. A waiter is a plain [`Waker`] kept in a
//! list that reuses its slots, so that a named future (a record waiting for room, a
//! shutdown waiting for the workers) waits without allocating and without borrowing
//! the list: it keeps a [`WaitKey`] instead.
//!
//! The protocol that excludes a lost wake-up is the caller's: a waiter registers, then
//! checks its condition again before it returns `Pending`; the task that makes the
//! condition true does so, then calls [`WaitList::wake_all`]. Registering and the check
//! of [`has_waiters`](WaitList::has_waiters) in `wake_all` are sequentially consistent,
//! as must be the condition's own write and read, so one of the two sees the other.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Wakers waiting for one condition.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    /// How many wakers are registered; read without the lock by [`wake_all`](Self::wake_all).
    registered: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Incremented by every [`WaitList::wake_all`]: keys of an older generation were
    /// woken and hold no slot any more.
    generation: u64,
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

/// A waiter's place in a [`WaitList`], kept by the waiting future; deregister it (or
/// let the guard of [`WaitList::wait_until`] do so) when the future is done or dropped.
#[derive(Debug, Default)]
pub(crate) struct WaitKey(Option<(u64, usize)>);

impl WaitList {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `waker` under `key` (replacing the waker it holds, if it is still
    /// registered). Sequentially consistent: check the condition after this.
    pub(crate) fn register(&self, key: &mut WaitKey, waker: &Waker) {
        let mut inner = self.lock();
        if let Some((generation, index)) = key.0 {
            if generation == inner.generation {
                if let Some(slot) = inner.slots.get_mut(index) {
                    match slot {
                        Some(w) if w.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                    return;
                }
            }
        }
        let index = match inner.free.pop() {
            Some(i) => {
                inner.slots[i] = Some(waker.clone());
                i
            }
            None => {
                inner.slots.push(Some(waker.clone()));
                inner.slots.len() - 1
            }
        };
        key.0 = Some((inner.generation, index));
        self.registered.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes `key`'s waker, if it is still registered.
    pub(crate) fn deregister(&self, key: &mut WaitKey) {
        let Some((generation, index)) = key.0.take() else {
            return;
        };
        let mut inner = self.lock();
        if generation == inner.generation {
            if let Some(slot) = inner.slots.get_mut(index) {
                if slot.take().is_some() {
                    inner.free.push(index);
                    self.registered.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Whether anyone waits (sequentially consistent).
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.registered.load(Ordering::SeqCst) != 0
    }

    /// Wakes every registered waiter; costs one atomic load when there is none.
    #[inline]
    pub(crate) fn wake_all(&self) {
        if self.has_waiters() {
            self.wake_all_slow();
        }
    }

    #[cold]
    fn wake_all_slow(&self) {
        let mut woken = Vec::new();
        {
            let mut inner = self.lock();
            inner.generation = inner.generation.wrapping_add(1);
            let Inner { slots, free, .. } = &mut *inner;
            // Keeps the list's memory for the next waiters; the wakers are called
            // outside the lock.
            woken.extend(slots.drain(..).flatten());
            free.clear();
            self.registered.store(0, Ordering::SeqCst);
        }
        for w in woken {
            w.wake();
        }
    }

    /// Resolves once `ready()` is true; cancel safe.
    pub(crate) async fn wait_until(&self, ready: impl Fn() -> bool) {
        let mut key = Deregister(self, WaitKey::default());
        poll_fn(|cx| self.poll_until(&mut key.1, cx, &ready)).await;
    }

    /// One poll of a wait for `ready()`: `Ready` once it is true (the key is then
    /// deregistered), else registered and `Pending`.
    pub(crate) fn poll_until(
        &self,
        key: &mut WaitKey,
        cx: &mut Context<'_>,
        ready: impl Fn() -> bool,
    ) -> Poll<()> {
        if ready() {
            self.deregister(key);
            return Poll::Ready(());
        }
        self.register(key, cx.waker());
        if ready() {
            self.deregister(key);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Deregisters its key when dropped.
struct Deregister<'a>(&'a WaitList, WaitKey);

impl Drop for Deregister<'_> {
    fn drop(&mut self) {
        self.0.deregister(&mut self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag::default());
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn wakes_every_registered_waiter_once_and_reuses_slots() {
        let list = WaitList::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let (mut ka, mut kb) = (WaitKey::default(), WaitKey::default());
        list.register(&mut ka, &wa);
        list.register(&mut ka, &wa); // again: still one waiter
        list.register(&mut kb, &wb);
        assert_eq!(list.registered.load(Ordering::SeqCst), 2);
        list.wake_all();
        assert!(a.0.load(Ordering::SeqCst) && b.0.load(Ordering::SeqCst));
        assert!(!list.has_waiters());
        // Keys of the old generation are stale: deregistering them changes nothing, and
        // registering again takes a slot of the new generation.
        list.deregister(&mut ka);
        list.register(&mut kb, &wb);
        assert_eq!(list.registered.load(Ordering::SeqCst), 1);
        list.deregister(&mut kb);
        assert!(!list.has_waiters());
        for _ in 0..100 {
            let mut k = WaitKey::default();
            list.register(&mut k, &wa);
            list.deregister(&mut k);
        }
        assert!(list.lock().slots.len() <= 2, "slots are reused");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wait_until_sees_a_condition_set_before_or_after_it_registers() {
        let list = Arc::new(WaitList::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (l, f) = (list.clone(), flag.clone());
        let waiter = tokio::spawn(async move { l.wait_until(|| f.load(Ordering::SeqCst)).await });
        tokio::task::yield_now().await;
        flag.store(true, Ordering::SeqCst);
        list.wake_all();
        waiter.await.unwrap();
        list.wait_until(|| flag.load(Ordering::SeqCst)).await;
        assert!(!list.has_waiters());
    }
}
