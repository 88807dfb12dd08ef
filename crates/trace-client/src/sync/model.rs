//! Loom's stand-ins for tokio's `Notify`, `sleep` and `yield_now`: the part of their API
//! the queue uses, with tokio's semantics, built from loom's `Mutex` so that loom sees
//! every hand-over (and explores each interleaving of them).
//!
//! * [`Notify`]: `notify_one` wakes the oldest registered waiter not yet notified, or,
//!   with none, stores one permit (two calls store one); `notify_waiters` wakes every
//!   registered waiter, and every `Notified` created before it, and stores nothing.
//!   [`Notified::enable`] registers the waiter, or takes the permit (the future is then
//!   ready, and the permit is gone even if the future is dropped unpolled, as in tokio).
//!   A `Notified` dropped after a `notify_one` chose it, before it returned ready, hands
//!   the wake-up on to the next waiter or back to the permit, as tokio's does.
//! * [`sleep`]: ready at once. In the model, time passing is nothing but a timer that
//!   fires, and the protocol never depends on when: a doze (`select!`, biased, on the
//!   notification, then the timer) ends by itself unless the notification came first,
//!   and loom runs every interleaving of the wake-up with the worker's steps, so both
//!   outcomes are explored. A timer that could stay pending for ever would model a doze
//!   that never ends, which no runtime does. (The models run `wait_for_work` without its
//!   timed rechecks, the other use of `sleep`.)
//! * [`yield_now`]: yields the loom thread, so that loom runs another thread before this
//!   one goes on, as a worker on a current-thread runtime lets the producers' tasks run.
//!   tokio's is pending once (waking itself first); in the models each worker is the
//!   only task of its thread (`loom::future::block_on`), so that round trip would add
//!   steps to interleave and nothing else.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::sync::Mutex;

/// tokio's `Notify`, modelled.
#[derive(Debug)]
pub(crate) struct Notify {
    state: Mutex<State>,
    /// How many times `notify_waiters` was called: a `Notified` created before the last
    /// call is ready. Written under the lock; read without it by `notified` (which takes
    /// no lock, as tokio's takes none): in the model's one OS thread that read is the
    /// count as of this step, and `enable` or `poll` then take the lock.
    waiters_calls: StdAtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// One stored `notify_one`.
    permit: bool,
    /// Registered waiters, oldest first.
    waiters: Vec<Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    waker: Option<Waker>,
    /// Whether it was notified, and by which.
    notified: Option<By>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    One,
    All,
}

impl State {
    /// `notify_one` under the lock: the waker to wake once it is released.
    fn notify_one(&mut self) -> Option<Waker> {
        match self.waiters.iter_mut().find(|w| w.notified.is_none()) {
            Some(w) => {
                w.notified = Some(By::One);
                w.waker.take()
            }
            None => {
                self.permit = true;
                None
            }
        }
    }
}

impl Notify {
    pub(crate) fn new() -> Self {
        Notify {
            state: Mutex::new(State::default()),
            waiters_calls: StdAtomicU64::new(0),
        }
    }

    fn lock(&self) -> loom::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub(crate) fn notify_one(&self) {
        let waker = self.lock().notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn notify_waiters(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            self.waiters_calls.fetch_add(1, StdOrdering::Relaxed);
            state
                .waiters
                .iter_mut()
                .filter(|w| w.notified.is_none())
                .filter_map(|w| {
                    w.notified = Some(By::All);
                    w.waker.take()
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn notified(&self) -> Notified<'_> {
        let waiters_calls = self.waiters_calls.load(StdOrdering::Relaxed);
        Notified {
            notify: self,
            waiters_calls,
            stage: Stage::Init,
        }
    }
}

/// tokio's `Notified`, modelled.
#[derive(Debug)]
pub(crate) struct Notified<'a> {
    notify: &'a Notify,
    /// `notify_waiters` calls when it was created.
    waiters_calls: u64,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Neither enabled nor polled.
    Init,
    /// Registered, with this id.
    Waiting(u64),
    /// Ready (notified, or took the permit).
    Done,
}

impl Notified<'_> {
    /// Registers the waiter (or takes the stored permit) without waiting.
    pub(crate) fn enable(self: Pin<&mut Self>) {
        self.get_mut().register(None);
    }

    /// Moves on from `Init` or `Waiting`; true once ready.
    fn register(&mut self, waker: Option<&Waker>) -> bool {
        let mut state = self.notify.lock();
        match self.stage {
            Stage::Init => {
                let woken_all =
                    self.notify.waiters_calls.load(StdOrdering::Relaxed) != self.waiters_calls;
                if woken_all || state.permit {
                    if !woken_all {
                        state.permit = false;
                    }
                    self.stage = Stage::Done;
                    return true;
                }
                let id = state.next_id;
                state.next_id += 1;
                state.waiters.push(Waiter {
                    id,
                    waker: waker.cloned(),
                    notified: None,
                });
                self.stage = Stage::Waiting(id);
                false
            }
            Stage::Waiting(id) => {
                let at = state
                    .waiters
                    .iter()
                    .position(|w| w.id == id)
                    .expect("a registered waiter stays listed until it is done");
                if state.waiters[at].notified.is_some() {
                    state.waiters.remove(at);
                    self.stage = Stage::Done;
                    return true;
                }
                if let Some(waker) = waker {
                    state.waiters[at].waker = Some(waker.clone());
                }
                false
            }
            Stage::Done => true,
        }
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.get_mut().register(Some(cx.waker())) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Stage::Waiting(id) = self.stage else {
            return;
        };
        let waker = {
            let mut state = self.notify.lock();
            let at = state.waiters.iter().position(|w| w.id == id);
            let Some(at) = at else { return };
            let waiter = state.waiters.remove(at);
            // A `notify_one` that chose this waiter goes on to another (or the permit).
            if waiter.notified == Some(By::One) {
                state.notify_one()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// tokio's `sleep`, modelled: ready at once (see the module docs).
pub(crate) async fn sleep(_duration: Duration) {}

/// tokio's `yield_now`, modelled: lets loom run another thread (see the module docs).
pub(crate) async fn yield_now() {
    loom::thread::yield_now();
}
