//! Trace and span IDs.
//!
//! IDs are signed 64-bit integers on the wire. Locally generated IDs are uniform in
//! `[1, 2^63 − 1]`: never zero (zero means "absent" in SSF and in every carrier) and never
//! negative. IDs received from other processes may be negative and are accepted everywhere.
//!
//! Each thread owns its own small, fast generator seeded from the operating system's
//! random source the first time the thread asks for an ID, so creating spans on many
//! threads at once never contends on a lock. If the operating system cannot provide
//! randomness, the generator is seeded from the clock and the thread instead.

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(seeded());
}

fn seeded() -> SmallRng {
    SmallRng::try_from_os_rng().unwrap_or_else(|_| SmallRng::seed_from_u64(fallback_seed()))
}

/// A seed for when the OS random source fails: the clock mixed with an address that differs
/// between threads.
fn fallback_seed() -> u64 {
    let nanos = ssf_proto::time::now_nanos() as u64;
    let local = 0u8;
    let here = std::ptr::addr_of!(local) as usize as u64;
    nanos ^ here.rotate_left(32)
}

/// A fresh, non-zero trace or span ID, uniform in `[1, 2^63 − 1]`.
///
/// Draws from a per-thread generator seeded by the OS; it never blocks and never takes a
/// global lock.
///
/// # Examples
///
/// ```
/// let id = trace_client::new_id();
/// assert!(id > 0);
/// assert_ne!(id, trace_client::new_id());
/// ```
pub fn new_id() -> i64 {
    // `random_range` on an inclusive range is uniform (no modulo bias).
    // 63 random bits, drawn again in the one case in 2^63 that they are all zero:
    // uniform in [1, 2^63 − 1], without a range's widening multiply.
    let draw = |rng: &mut SmallRng| loop {
        let id = (rng.next_u64() >> 1) as i64;
        if id != 0 {
            break id;
        }
    };
    RNG.try_with(|rng| draw(&mut rng.borrow_mut()))
        // The thread-local is gone only while the thread is being torn down (an ID asked
        // for from another thread-local's destructor): use a one-off generator then.
        .unwrap_or_else(|_| draw(&mut seeded()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::Rng;

    use super::*;

    #[test]
    fn ids_are_positive_and_distinct() {
        let ids: HashSet<i64> = (0..10_000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|&id| id >= 1));
        // 10 000 draws from 2^63 values collide with probability ~5e-12.
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn ids_use_the_high_bits() {
        // With 1000 uniform draws, some ID is above 2^62 except with probability 2^-1000.
        assert!((0..1000).map(|_| new_id()).any(|id| id > 1 << 62));
    }

    #[test]
    fn threads_get_different_streams() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..8).map(|_| new_id()).collect::<Vec<_>>()))
            .collect();
        let streams: HashSet<Vec<i64>> = handles
            .into_iter()
            .map(|h| h.join().expect("id thread panicked"))
            .collect();
        assert_eq!(streams.len(), 4);
    }

    #[test]
    fn fallback_seed_differs_between_calls_in_time() {
        let a = SmallRng::seed_from_u64(fallback_seed()).random::<u64>();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let b = SmallRng::seed_from_u64(fallback_seed()).random::<u64>();
        assert_ne!(a, b);
    }
}
