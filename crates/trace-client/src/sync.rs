//! The synchronisation primitives the queue is built on, in one place, so that the loom
//! models (`cfg(loom)`) can put their own in: loom's atomics, cell and thread, and a
//! model of tokio's `Notify`, sleeping and yielding. Normal builds use std and tokio.

#[cfg(not(loom))]
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

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

    pub(crate) use super::model::{Notify, sleep, yield_now};

    /// Under loom, waiting for another thread is a yield to it.
    #[inline]
    pub(crate) fn snooze(_spins: &mut u32) {
        loom::thread::yield_now();
    }
}

/// Loom's stand-ins for tokio's `Notify`, `sleep` and `yield_now`.
#[cfg(loom)]
mod model;

pub(crate) use imp::*;
