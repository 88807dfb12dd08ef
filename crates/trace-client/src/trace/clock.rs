//! The wall clock a span reads when it starts and when it ends, in SSF nanoseconds.
//!
//! Reading the system clock (`SystemTime::now`, a vDSO `clock_gettime`) costs about
//! 25 ns on a virtual machine, twice per span. Where the kernel itself keeps time with
//! the CPU's invariant time-stamp counter (x86_64 Linux with the `tsc` clocksource), a
//! thread reads the counter instead (about 9 ns there) and scales it from its last
//! reading of the system clock:
//!
//! * Each thread keeps an anchor, a reading of the system clock and the counter taken
//!   together, and the counter's rate measured between its last two anchors.
//! * An anchor is good for [`RESYNC`] (100 ms): a span read after that reads the system
//!   clock again, so a step of the clock (NTP, an administrator) shows within 100 ms,
//!   and the rate follows the clock's slewing. A thread that records seldom reads the
//!   system clock every time, as without this module.
//! * Until a thread has two anchors at least [`MIN_CALIBRATION`] (20 ms) apart, and
//!   whenever a reading was disturbed (the two counter reads around the system clock's
//!   are far apart: the thread was preempted), the system clock's own value is used. A
//!   rate far from the last one (a step of the clock) is measured afresh.
//!
//! Between anchors the scaled time is off the system clock by the rate's error over at
//! most 100 ms: a few microseconds after the first 20 ms measurement, well under one
//! after that (each later rate is measured over 100 ms). A span started on one thread
//! and finished on another reads two anchors; its end is never put before its start.
//! Elsewhere (other systems, other clocksources, or a counter that is not invariant)
//! every reading is the system clock's. Unlike a crate that calibrates once at start-up
//! (fastant, for one, spins for 20 ms or more in every process that links it, then
//! anchors once for good), nothing runs until a span is made, and wall time never
//! drifts from the system clock by more than one anchor's interval allows.

use std::cell::Cell;

/// How long an anchor serves before the system clock is read again (nanoseconds).
const RESYNC: i64 = 100_000_000;

/// The shortest and longest intervals between anchors a rate is measured over
/// (nanoseconds).
const MIN_CALIBRATION: i64 = 20_000_000;
const MAX_CALIBRATION: i64 = 60_000_000_000;

/// The most counter ticks a reading of the system clock may take between the counter
/// reads around it for the pair to be an anchor (under a microsecond at 2 GHz and more;
/// a clean read takes a tenth of that, and more means the thread was interrupted).
const MAX_READ_TICKS: u64 = 2_000;

/// The system clock, in SSF nanoseconds.
#[inline]
fn system_now() -> i64 {
    ssf_proto::time::now_nanos()
}

/// A thread's anchor: the system clock and the counter read together, and the counter's
/// rate (0 until measured).
#[derive(Clone, Copy)]
struct Anchor {
    ticks: u64,
    nanos: i64,
    nanos_per_tick: f64,
    /// Ticks after `ticks` for which the anchor serves.
    serves: u64,
}

thread_local! {
    static ANCHOR: Cell<Anchor> = const {
        Cell::new(Anchor { ticks: 0, nanos: 0, nanos_per_tick: 0.0, serves: 0 })
    };
}

/// The current time in SSF nanoseconds, as a span keeps its start and end.
#[inline]
pub(crate) fn now() -> i64 {
    match counter() {
        Some(ticks) => match ANCHOR.try_with(|a| scaled(a.get(), ticks)) {
            Ok(Some(now)) => now,
            _ => resync(),
        },
        None => system_now(),
    }
}

/// Reads the system clock, and makes it the thread's anchor when the reading was not
/// disturbed, measuring the counter's rate against the previous anchor.
#[cold]
fn resync() -> i64 {
    let (Some(before), nanos, Some(after)) = (counter(), system_now(), counter()) else {
        return system_now();
    };
    let _ = ANCHOR.try_with(|cell| {
        if let Some(anchor) = next_anchor(cell.get(), before, nanos, after) {
            cell.set(anchor);
        }
    });
    nanos
}

/// The time at counter reading `ticks` scaled from `anchor`, if the anchor serves it.
#[inline]
fn scaled(anchor: Anchor, ticks: u64) -> Option<i64> {
    let since = ticks.wrapping_sub(anchor.ticks);
    (since < anchor.serves).then(|| {
        anchor
            .nanos
            .saturating_add((since as f64 * anchor.nanos_per_tick) as i64)
    })
}

/// The anchor after a reading `nanos` of the system clock between counter readings
/// `before` and `after`, given the thread's anchor `old`; `None` keeps `old` (the
/// reading was disturbed, or came too soon after `old` to measure a rate over).
fn next_anchor(old: Anchor, before: u64, nanos: i64, after: u64) -> Option<Anchor> {
    let read = after.wrapping_sub(before);
    if read > MAX_READ_TICKS {
        return None;
    }
    // The middle of the two counter reads stands for the system clock's.
    let ticks = before.wrapping_add(read / 2);
    let first = old.ticks == 0 && old.nanos == 0;
    let elapsed = nanos.saturating_sub(old.nanos);
    if !first && (0..MIN_CALIBRATION).contains(&elapsed) {
        return None;
    }
    let ticked = ticks.wrapping_sub(old.ticks);
    let nanos_per_tick = (!first && elapsed <= MAX_CALIBRATION && ticked > 0)
        .then(|| elapsed as f64 / ticked as f64)
        // Between 10 MHz and 10 GHz, and near the last rate: anything else is a step of
        // the clock (or a counter gone wrong), and the rate is measured afresh.
        .filter(|r| (0.1..=100.0).contains(r))
        .filter(|r| old.nanos_per_tick == 0.0 || (r / old.nanos_per_tick - 1.0).abs() < 1e-3)
        .unwrap_or(0.0);
    let serves = if nanos_per_tick > 0.0 {
        (RESYNC as f64 / nanos_per_tick) as u64
    } else {
        0
    };
    Some(Anchor {
        ticks,
        nanos,
        nanos_per_tick,
        serves,
    })
}

/// The time-stamp counter, where the kernel keeps time with it; `None` elsewhere.
#[inline]
fn counter() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(ssf_loom)))]
    {
        if tsc_is_the_clock() {
            return Some(rdtsc());
        }
    }
    None
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(ssf_loom)))]
#[inline]
#[allow(unsafe_code)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter into registers; it touches no memory
    // and every x86_64 processor has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Whether the kernel's clocksource is the time-stamp counter (which it uses only when
/// the counter is invariant and synchronised across CPUs). Read once per process.
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(ssf_loom)))]
#[inline]
fn tsc_is_the_clock() -> bool {
    static TSC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TSC.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_follow_the_system_clock() {
        // Over a quarter of a second, with resyncs and calibration on the way, every
        // reading lies between the system clock's readings around it (give or take the
        // error allowed between anchors) and readings never go back by more than that.
        const SLACK: i64 = 50_000;
        let end = system_now() + 250_000_000;
        let mut last = i64::MIN;
        let mut n = 0u64;
        loop {
            let before = system_now();
            let t = now();
            let after = system_now();
            assert!(
                before - SLACK <= t && t <= after + SLACK,
                "{t} outside {before}..{after}"
            );
            assert!(
                t >= last.saturating_sub(SLACK),
                "went back from {last} to {t}"
            );
            last = t;
            n += 1;
            if after > end {
                break;
            }
        }
        assert!(n > 1000, "{n} readings");
        if counter().is_some() {
            // Where the counter is the clock, the readings were scaled from an anchor.
            let anchor = ANCHOR.with(Cell::get);
            assert!(anchor.nanos_per_tick > 0.0 && anchor.serves > 0);
        }
    }

    /// Readings of a 3 GHz counter (a third of a nanosecond per tick) and a clock.
    const GHZ3: f64 = 1.0 / 3.0;
    const T0: u64 = 5_000_000_000;
    const N0: i64 = 1_700_000_000_000_000_000;

    fn anchored() -> Anchor {
        let first = next_anchor(ANY, T0, N0, T0 + 100).expect("a first anchor");
        // 100 ms later: 300 million ticks.
        next_anchor(first, T0 + 300_000_000, N0 + 100_000_000, T0 + 300_000_100)
            .expect("a measured anchor")
    }

    const ANY: Anchor = Anchor {
        ticks: 0,
        nanos: 0,
        nanos_per_tick: 0.0,
        serves: 0,
    };

    #[test]
    fn a_thread_measures_the_rate_then_scales_for_100_ms() {
        let first = next_anchor(ANY, T0, N0, T0 + 100).unwrap();
        assert_eq!((first.nanos_per_tick, first.serves), (0.0, 0));
        assert_eq!(
            scaled(first, T0 + 1),
            None,
            "no rate yet: the system clock is read"
        );
        // Too soon after it to measure a rate over: the first anchor stays.
        assert!(next_anchor(first, T0 + 3_000_000, N0 + 1_000_000, T0 + 3_000_100).is_none());
        let a = anchored();
        assert!(
            (a.nanos_per_tick - GHZ3).abs() < 1e-9,
            "{}",
            a.nanos_per_tick
        );
        assert_eq!(a.ticks, T0 + 300_000_050, "the middle of the counter reads");
        // 30 ms on: scaled; 100 ms on: the system clock again.
        assert_eq!(scaled(a, a.ticks + 90_000_000), Some(a.nanos + 30_000_000));
        assert_eq!(scaled(a, a.ticks + 300_000_000), None);
    }

    #[test]
    fn a_reading_interrupted_between_the_counter_reads_is_no_anchor() {
        let a = anchored();
        let later = a.ticks + 300_000_000;
        assert!(next_anchor(a, later, a.nanos + 100_000_000, later + MAX_READ_TICKS + 1).is_none());
        assert!(next_anchor(a, later, a.nanos + 100_000_000, later + MAX_READ_TICKS).is_some());
    }

    #[test]
    fn a_step_of_the_clock_starts_the_measurement_again() {
        let a = anchored();
        let later = a.ticks + 300_000_000;
        for step in [1_000_000_000, -1_000_000_000, -200_000_000, 1_000_000] {
            let b = next_anchor(a, later, a.nanos + 100_000_000 + step, later + 10).unwrap();
            assert_eq!(
                b.nanos,
                a.nanos + 100_000_000 + step,
                "the system clock's reading"
            );
            assert_eq!((b.nanos_per_tick, b.serves), (0.0, 0), "step {step}");
        }
        // A slewing clock (0.05 % fast) keeps its rate, measured anew.
        let b = next_anchor(a, later, a.nanos + 100_050_000, later + 10).unwrap();
        assert!(b.nanos_per_tick > GHZ3 && b.serves > 0);
    }

    #[test]
    fn a_counter_that_went_back_is_not_scaled() {
        let a = anchored();
        assert_eq!(scaled(a, a.ticks - 1), None);
        let b = next_anchor(
            a,
            a.ticks - 1_000_000,
            a.nanos + 100_000_000,
            a.ticks - 999_990,
        );
        assert_eq!(b.map(|b| b.nanos_per_tick), Some(0.0));
    }
}
