//! Reconnect backoff: capped exponential growth with "equal jitter", and the connect loop.

use std::future::Future;
use std::io;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// The delay before retry number `attempt` (0-based), for a uniform `unit` in `[0, 1]`.
///
/// The ceiling doubles from `min` with each attempt and is capped at `max`; the delay is
/// drawn uniformly from the upper half of the ceiling, never below `min`:
/// `min <= delay <= max` for every input with `min <= max`.
pub(crate) fn delay_for(min: Duration, max: Duration, attempt: u32, unit: f64) -> Duration {
    let ceiling = min
        .checked_mul(2u32.saturating_pow(attempt))
        .unwrap_or(max)
        .min(max);
    let floor = (ceiling / 2).max(min).min(ceiling);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    floor + (ceiling - floor).mul_f64(unit)
}

/// Backoff state of one backend.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// `min` must be non-zero and at most `max` (the builder validates this).
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let rng = SmallRng::try_from_os_rng().unwrap_or_else(|_| {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x5eed);
            SmallRng::seed_from_u64(seed)
        });
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng,
        }
    }

    /// The next delay; each call moves one attempt further.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let unit: f64 = self.rng.random();
        let d = delay_for(self.min, self.max, self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Starts over after a successful connect.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Tries `connect` until it succeeds or `timeout` has passed since the first attempt.
///
/// The first attempt is immediate; between failed attempts the backoff's delays are
/// slept (never past the deadline). Each attempt is itself cut off at the deadline. On
/// giving up, the last attempt's error is returned as the source of a `TimedOut` error.
pub(crate) async fn connect_with_backoff<T, F, Fut>(
    backoff: &mut Backoff,
    timeout: Duration,
    mut connect: F,
) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut last: Option<io::Error> = None;
    loop {
        match tokio::time::timeout_at(deadline, connect()).await {
            Ok(Ok(conn)) => {
                backoff.reset();
                return Ok(conn);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => break,
        }
        let wake = Instant::now() + backoff.next_delay();
        if wake >= deadline {
            tokio::time::sleep_until(deadline).await;
            break;
        }
        tokio::time::sleep_until(wake).await;
    }
    Err(match last {
        Some(e) => io::Error::new(
            io::ErrorKind::TimedOut,
            ConnectTimedOut {
                timeout,
                last: Some(e),
            },
        ),
        None => io::Error::new(
            io::ErrorKind::TimedOut,
            ConnectTimedOut {
                timeout,
                last: None,
            },
        ),
    })
}

/// The error inside the `TimedOut` I/O error of a failed connect sequence.
#[derive(Debug)]
struct ConnectTimedOut {
    timeout: Duration,
    last: Option<io::Error>,
}

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no connection within {:?}", self.timeout)?;
        if let Some(e) = &self.last {
            write!(f, " (last attempt: {e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectTimedOut {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    proptest! {
        #[test]
        fn delay_is_between_min_and_max(
            min_us in 1u64..5_000_000,
            extra_us in 0u64..50_000_000,
            attempt in 0u32..200,
            unit in proptest::num::f64::ANY,
        ) {
            let min = Duration::from_micros(min_us);
            let max = min + Duration::from_micros(extra_us);
            let d = delay_for(min, max, attempt, unit);
            prop_assert!(min <= d && d <= max, "{min:?} <= {d:?} <= {max:?}");
        }

        #[test]
        fn ceiling_grows_then_caps(min_ms in 1u64..100, attempt in 0u32..64) {
            let min = Duration::from_millis(min_ms);
            let max = Duration::from_secs(1).max(min);
            let hi = delay_for(min, max, attempt, 1.0);
            let expected = min.checked_mul(2u32.saturating_pow(attempt)).unwrap_or(max).min(max);
            prop_assert_eq!(hi, expected);
        }
    }

    #[test]
    fn defaults_reach_the_cap() {
        // veneur's defaults: 20 ms increments, 1 s cap.
        let (min, max) = (20 * MS, 1000 * MS);
        assert_eq!(delay_for(min, max, 0, 0.0), 20 * MS);
        assert_eq!(delay_for(min, max, 0, 1.0), 20 * MS);
        assert_eq!(delay_for(min, max, 1, 0.0), 20 * MS);
        assert_eq!(delay_for(min, max, 1, 1.0), 40 * MS);
        assert_eq!(delay_for(min, max, 3, 0.5), 120 * MS);
        assert_eq!(delay_for(min, max, 6, 1.0), max);
        assert_eq!(delay_for(min, max, 100, 0.0), max / 2);
        assert_eq!(delay_for(min, max, u32::MAX, 1.0), max);
    }

    #[test]
    fn next_delay_advances_and_resets() {
        let mut b = Backoff::new(10 * MS, 80 * MS);
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], 10 * MS);
        assert!(delays[5] >= 40 * MS && delays[5] <= 80 * MS);
        b.reset();
        assert_eq!(b.next_delay(), 10 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_loop_caps_the_wait_and_gives_up_at_the_timeout() {
        let (min, max, timeout) = (20 * MS, 100 * MS, Duration::from_secs(10));
        let mut backoff = Backoff::new(min, max);
        let start = Instant::now();
        let mut attempts = Vec::new();
        let err = connect_with_backoff(&mut backoff, timeout, || {
            attempts.push(Instant::now());
            async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused)) }
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("no connection within 10s"),
            "{err}"
        );
        // Gave up exactly at the connect timeout, not earlier and not later.
        assert_eq!(start.elapsed(), timeout);
        assert_eq!(attempts[0], start, "the first attempt is immediate");
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= min && *g <= max), "{gaps:?}");
        // veneur's uncapped waits (0, 20, 40, ... ms) allow ~32 attempts in 10 s; a cap of
        // 100 ms means at least 100.
        assert!(attempts.len() >= 100, "{} attempts", attempts.len());
        assert!(gaps.iter().rev().take(50).all(|g| *g >= max / 2));
    }

    #[tokio::test(start_paused = true)]
    async fn connect_loop_succeeds_after_failures_and_resets() {
        let mut backoff = Backoff::new(20 * MS, 1000 * MS);
        let mut n = 0;
        let start = Instant::now();
        let got = connect_with_backoff(&mut backoff, Duration::from_secs(10), || {
            n += 1;
            let ok = n == 4;
            async move {
                if ok {
                    Ok(n)
                } else {
                    Err(io::Error::from(io::ErrorKind::NotFound))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 4);
        // Waits 20, 20..40, 40..80 ms.
        let e = start.elapsed();
        assert!(e >= 80 * MS && e <= 140 * MS, "{e:?}");
        assert_eq!(backoff.next_delay(), 20 * MS, "reset after success");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_off_at_the_deadline() {
        let mut backoff = Backoff::new(20 * MS, 1000 * MS);
        let start = Instant::now();
        let err = connect_with_backoff(&mut backoff, Duration::from_secs(3), || {
            std::future::pending::<io::Result<()>>()
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
