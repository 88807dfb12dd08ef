//! A counting global allocator. A test binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: ssf_test_support::alloc::Counting = ssf_test_support::alloc::Counting;
//! ```
//!
//! and measures a closure with [`allocations`]. Only the current thread's allocations
//! are counted, so other threads (a runtime's workers, the test harness) do not disturb
//! the count.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting allocations (and reallocations) and frees per thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static FREES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator with the caller's arguments;
// the only addition is a thread-local counter, which allocates nothing (a `const`
// thread local) and is skipped while the thread is being torn down (`try_with`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = FREES.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System.dealloc`'s; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System.realloc`'s; `ptr` came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// How many times `f` allocated (or reallocated) on this thread. Meaningful only in a
/// binary whose global allocator is [`Counting`].
pub fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// How many times `f` allocated and how many times it freed, on this thread: equal when
/// `f` freed everything it allocated (a reallocation counts as an allocation only).
/// Meaningful only in a binary whose global allocator is [`Counting`].
pub fn allocations_and_frees(f: impl FnOnce()) -> (usize, usize) {
    let before = (ALLOCS.with(Cell::get), FREES.with(Cell::get));
    f();
    (
        ALLOCS.with(Cell::get) - before.0,
        FREES.with(Cell::get) - before.1,
    )
}
