//! The synchronisation primitives the queue is built on, in one place, so that the loom
//! models (`cfg(ssf_loom)`) can put their own in: loom's atomics, cell and thread, and a
//! model of tokio's `Notify`, sleeping and yielding. Normal builds use std and tokio.
//!
//! The cfg is the crate's own, `ssf_loom`, not `loom`: tokio reads `cfg(loom)` as its
//! own and leaves `tokio::net` out under it, which the codec needs.

#[cfg(not(ssf_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use tokio::sync::Notify;
    pub(crate) use tokio::task::yield_now;
    pub(crate) use tokio::time::sleep;

    /// Waits a moment for another thread to finish with a slot it claimed.
    #[inline]
    pub(crate) fn snooze(spins: &mut u32) {
        if *spins < 16 {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }

    /// `std`'s `UnsafeCell`, with loom's way in ([`with_mut`](Self::with_mut)).
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer to the value; the caller answers for exclusive access.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(ssf_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{Ordering, fence};

    /// Loom's atomics, made with a sequentially consistent store of their initial value.
    ///
    /// Loom takes an atomic's initial value for a release store, so a `SeqCst` load may
    /// return it even after later `SeqCst` stores by threads the loading thread has not
    /// synchronised with (loom reads a `SeqCst` load as the latest `SeqCst` store only).
    /// C11 forbids that: the initialisation happens before those stores. The models
    /// would report lost wake-ups that cannot happen (a producer's `SeqCst` load of the
    /// workers' state finding it as it was made, after a worker counted itself asleep).
    /// Storing the value again, `SeqCst`, before the atomic is shared, gives loom's
    /// answer C11's.
    macro_rules! seq_cst_made {
        ($($name:ident: $t:ty),*) => {$(
            #[derive(Debug)]
            pub(crate) struct $name(loom::sync::atomic::$name);

            impl $name {
                pub(crate) fn new(value: $t) -> Self {
                    let a = loom::sync::atomic::$name::new(value);
                    a.store(value, Ordering::SeqCst);
                    $name(a)
                }
            }

            impl std::ops::Deref for $name {
                type Target = loom::sync::atomic::$name;

                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }
        )*};
    }
    seq_cst_made!(AtomicBool: bool, AtomicU64: u64, AtomicUsize: usize);

    pub(crate) use super::model::{Notify, sleep, yield_now};

    /// Under loom, waiting for another thread is a yield to it.
    ///
    /// Two threads that wait for a third one (a consumer and a producer both waiting
    /// for the producer that claimed a slot to publish it) can yield to each other for
    /// ever, and loom explores that without end (a limit of its scheduler, which counts
    /// no switch at a yield as a preemption). Waiting longer adds no outcome: the
    /// waiter only reads, and whatever the others do meanwhile they also do in the
    /// executions where it waited less. So past [`SNOOZES`] rounds of one wait, loom
    /// stops branching in this execution (`skip_branch`) and runs it to its end, the
    /// thread that yielded least (the one waited for) first.
    #[inline]
    pub(crate) fn snooze(spins: &mut u32) {
        *spins += 1;
        if *spins > SNOOZES {
            loom::skip_branch();
        }
        loom::thread::yield_now();
    }

    /// Rounds of [`snooze`] in one wait that loom branches from.
    const SNOOZES: u32 = 2;
}

/// Loom's stand-ins for tokio's `Notify`, `sleep` and `yield_now`.
#[cfg(ssf_loom)]
mod model;

pub(crate) use imp::*;
