//! `try_record` allocates nothing: the queue's slots are allocated when the client is
//! built.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::Arc;

use ssf_proto::SsfSpan;
use support::*;
use tokio::sync::Semaphore;
use trace_client::{Backend, Client};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on this thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// Sends one span per permit.
struct Gated(Arc<Semaphore>);

impl Backend for Gated {
    async fn send(&mut self, _: &SsfSpan) -> io::Result<()> {
        self.0.acquire().await.expect("open").forget();
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn try_record_allocates_nothing_per_span() {
    const N: usize = 1024;
    let gate = Arc::new(Semaphore::new(0));
    let client = Client::with_backend(Gated(gate.clone()))
        .capacity(N + 64)
        .build()
        .unwrap();
    for round in 0..3 {
        let spans: Vec<SsfSpan> = (0..N as i64).map(span).collect();
        // The worker runs on this thread only when the test yields: it does not run here.
        let n = allocations(|| {
            for s in spans {
                client.try_record(s).unwrap();
            }
        });
        assert_eq!(n, 0, "round {round}: {n} allocations for {N} spans");
        gate.add_permits(N);
        while client.stats().queued() > 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(client.stats().sent(), 3 * N as u64);
}

/// A typical span of a service, with a full-size parent ID.
fn typical(id: i64) -> SsfSpan {
    SsfSpan {
        parent_id: 1_152_921_504_606_846_975,
        ..trace_client::testing::typical_span(id)
    }
}

/// A network client encodes spans into the queue's slots when they are recorded: recording
/// a typical span allocates nothing, by value or by reference; a span too large for a
/// slot gets one buffer of its own.
#[tokio::test(flavor = "current_thread")]
async fn network_clients_encode_into_the_slot_without_allocating() {
    const N: usize = 512;
    // Nothing listens there and nothing is sent: the backends run only when this test
    // yields, which it does not while counting.
    for addr in ["udp://127.0.0.1:9", "tcp://127.0.0.1:9"] {
        let client = Client::builder(addr).capacity(4 * N).build().unwrap();
        let spans: Vec<SsfSpan> = (1..=N as i64).map(typical).collect();
        let n = allocations(|| {
            for s in spans {
                client.try_record(s).unwrap();
            }
        });
        assert_eq!(n, 0, "{addr}: try_record: {n} allocations for {N} spans");

        let mut span = typical(1);
        let n = allocations(|| {
            for id in 1..=N as i64 {
                span.id = id;
                client.try_record_ref(&span).unwrap();
            }
        });
        assert_eq!(
            n, 0,
            "{addr}: try_record_ref: {n} allocations for {N} spans"
        );

        let large = big_span(1, 1000);
        let n = allocations(|| {
            for _ in 0..N {
                client.try_record_ref(&large).unwrap();
            }
        });
        assert_eq!(n, N, "{addr}: one buffer per large span");
        assert_eq!(client.stats().accepted(), 3 * N as u64);
        client.close();
    }
}
