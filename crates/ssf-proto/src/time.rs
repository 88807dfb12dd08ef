//! Conversions between Rust time types and SSF timestamps.
//!
//! SSF timestamps are signed 64-bit nanoseconds since the Unix epoch, which covers the
//! years 1677 to 2262. Every conversion here is checked: a time outside that range is a
//! [`TimestampOutOfRange`] error (or `None`), never a silently wrapped value like the
//! original Go client's `-6795364578871345152` for an unset time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time or duration that does not fit SSF's `i64` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOutOfRange;

impl fmt::Display for TimestampOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("time does not fit in i64 nanoseconds since the unix epoch")
    }
}

impl std::error::Error for TimestampOutOfRange {}

/// Nanoseconds since the Unix epoch of `time`; negative before 1970.
///
/// # Errors
///
/// [`TimestampOutOfRange`] when `time` is before 1677-09-21 or after 2262-04-11.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ssf_proto::time::to_nanos;
///
/// assert_eq!(to_nanos(UNIX_EPOCH + Duration::from_secs(2)), Ok(2_000_000_000));
/// assert_eq!(to_nanos(UNIX_EPOCH - Duration::from_nanos(5)), Ok(-5));
/// assert!(to_nanos(UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400)).is_err());
/// ```
pub fn to_nanos(time: SystemTime) -> Result<i64, TimestampOutOfRange> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => duration_to_nanos(after),
        Err(before) => {
            let n = before.duration().as_nanos();
            // i64::MIN's magnitude is one more than i64::MAX.
            if n <= i64::MAX as u128 + 1 {
                Ok((n as i128).wrapping_neg() as i64)
            } else {
                Err(TimestampOutOfRange)
            }
        }
    }
}

/// Nanoseconds since the Unix epoch of now, saturating at the ends of the range (the
/// clock would have to be set before 1677 or after 2262 to saturate).
#[inline]
pub fn now_nanos() -> i64 {
    saturating_nanos(SystemTime::now())
}

/// [`to_nanos`], saturating at the ends of the range (`i64::MIN` before 1677, `i64::MAX`
/// after 2262) instead of failing.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ssf_proto::time::saturating_nanos;
///
/// assert_eq!(saturating_nanos(UNIX_EPOCH + Duration::new(2, 5)), 2_000_000_005);
/// assert_eq!(saturating_nanos(UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400)), i64::MAX);
/// assert_eq!(saturating_nanos(UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400)), i64::MIN);
/// ```
#[inline]
pub fn saturating_nanos(time: SystemTime) -> i64 {
    // The common case, a time after 1970 and before 2262, without `to_nanos`'s
    // conversions through u128.
    if let Ok(d) = time.duration_since(UNIX_EPOCH) {
        if d.as_secs() < MAX_SECS {
            return d.as_secs() as i64 * 1_000_000_000 + i64::from(d.subsec_nanos());
        }
    }
    saturating_nanos_slow(time)
}

/// Whole seconds since the epoch below which any time fits an `i64` of nanoseconds.
const MAX_SECS: u64 = i64::MAX as u64 / 1_000_000_000;

#[cold]
fn saturating_nanos_slow(time: SystemTime) -> i64 {
    to_nanos(time).unwrap_or(if time > UNIX_EPOCH {
        i64::MAX
    } else {
        i64::MIN
    })
}

/// The length of `d` in nanoseconds.
///
/// # Errors
///
/// [`TimestampOutOfRange`] when `d` is longer than `i64::MAX` nanoseconds (about 292 years).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ssf_proto::time::duration_to_nanos(Duration::from_millis(3)), Ok(3_000_000));
/// assert!(ssf_proto::time::duration_to_nanos(Duration::MAX).is_err());
/// ```
pub fn duration_to_nanos(d: Duration) -> Result<i64, TimestampOutOfRange> {
    i64::try_from(d.as_nanos()).map_err(|_| TimestampOutOfRange)
}

/// The [`SystemTime`] of an SSF timestamp. Every `i64` is representable on the platforms
/// Rust supports, so this does not fail.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(ssf_proto::time::from_nanos(1_500), UNIX_EPOCH + Duration::from_nanos(1_500));
/// ```
pub fn from_nanos(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_convert_and_saturate() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(saturating_nanos(t), 1_700_000_000_000_000_123);
        assert_eq!(saturating_nanos(UNIX_EPOCH - Duration::from_nanos(5)), -5);
        assert_eq!(
            saturating_nanos(UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400)),
            i64::MAX
        );
        assert_eq!(
            saturating_nanos(UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400)),
            i64::MIN
        );
    }

    #[test]
    fn round_trips_extremes() {
        for n in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            1_700_000_000_000_000_000,
            i64::MAX,
        ] {
            assert_eq!(to_nanos(from_nanos(n)), Ok(n), "{n}");
        }
    }

    #[test]
    fn out_of_range_is_an_error() {
        let too_late = from_nanos(i64::MAX) + Duration::from_nanos(1);
        assert_eq!(to_nanos(too_late), Err(TimestampOutOfRange));
        let too_early = from_nanos(i64::MIN) - Duration::from_nanos(1);
        assert_eq!(to_nanos(too_early), Err(TimestampOutOfRange));
    }

    #[test]
    fn now_is_positive() {
        assert!(now_nanos() > 1_600_000_000_000_000_000);
    }
}
