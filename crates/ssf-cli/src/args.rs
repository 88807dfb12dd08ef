//! Value parsers for command-line arguments. Each returns a one-line message on error,
//! which clap prints after the argument's name.

use std::time::Duration;

use ssf_codec::addr::Address;
use ssf_proto::{SsfSample, sample};

/// The longest time any option accepts: about a year.
const MAX_SECS: f64 = 366.0 * 24.0 * 3600.0;

/// An SSF address URL, or a bare `host:port` meaning UDP.
pub(crate) fn address(text: &str) -> Result<Address, String> {
    Address::parse(text).map_err(|e| e.to_string())
}

/// A number of seconds, fractions allowed (`2`, `0.5`), from 0 to about a year.
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of seconds, like 2 or 0.5".to_owned())?;
    if !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!("must be between 0 and {MAX_SECS} seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// Like [`seconds`], but more than 0.
pub(crate) fn positive_seconds(text: &str) -> Result<Duration, String> {
    match seconds(text)? {
        d if d.is_zero() => Err("must be more than 0 seconds".to_owned()),
        d => Ok(d),
    }
}

/// A positive whole number (`--spans`, `--producers`, `--capacity`, ...).
pub(crate) fn positive(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a positive whole number".to_owned()),
    }
}

/// A positive whole number that fits a `usize`.
pub(crate) fn positive_usize(text: &str) -> Result<usize, String> {
    let n = positive(text)?;
    usize::try_from(n).map_err(|_| "too large".to_owned())
}

/// A positive rate (spans per second), fractions allowed.
pub(crate) fn rate(text: &str) -> Result<f64, String> {
    let r: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of spans per second".to_owned())?;
    if !(r.is_finite() && r > 0.0) {
        return Err("must be a positive number".to_owned());
    }
    Ok(r)
}

/// Splits `NAME:VALUE` at the last colon (a value never holds one), refusing an empty
/// name or value.
fn name_value(text: &str) -> Result<(&str, &str), String> {
    let (name, value) = text
        .rsplit_once(':')
        .ok_or_else(|| "expected NAME:VALUE".to_owned())?;
    if name.is_empty() {
        return Err("the metric name is empty".to_owned());
    }
    if value.is_empty() {
        return Err("the value after ':' is empty".to_owned());
    }
    Ok((name, value))
}

/// `--count NAME:VALUE`: a counter incremented by a whole number (as veneur-emit, which
/// reads an integer and sends it as a 32-bit float).
pub(crate) fn count(text: &str) -> Result<SsfSample, String> {
    let (name, value) = name_value(text)?;
    let n: i64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))?;
    Ok(sample::count(name, n as f32))
}

/// `--gauge NAME:VALUE`: a gauge set to a finite number.
pub(crate) fn gauge(text: &str) -> Result<SsfSample, String> {
    let (name, value) = name_value(text)?;
    let v: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    let v = v as f32;
    if !v.is_finite() {
        return Err(format!("{value:?} is not a finite 32-bit number"));
    }
    Ok(sample::gauge(name, v))
}

/// `--timing NAME:MILLIS`: a timing in milliseconds (fractions allowed), sent as a
/// histogram with unit `ms`.
pub(crate) fn timing(text: &str) -> Result<SsfSample, String> {
    let (name, value) = name_value(text)?;
    let ms: f64 = value
        .strip_suffix("ms")
        .unwrap_or(value)
        .parse()
        .map_err(|_| format!("{value:?} is not a number of milliseconds"))?;
    if !(0.0..=MAX_SECS * 1000.0).contains(&ms) {
        return Err(format!("{value:?} is not a duration in milliseconds"));
    }
    let d = Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| e.to_string())?;
    Ok(sample::timing(name, d, Duration::from_millis(1)))
}

/// `--set NAME:MEMBER`: one member of a set; split at the first colon, so the member may
/// hold colons.
pub(crate) fn set(text: &str) -> Result<SsfSample, String> {
    let (name, member) = text
        .split_once(':')
        .ok_or_else(|| "expected NAME:MEMBER".to_owned())?;
    if name.is_empty() {
        return Err("the set name is empty".to_owned());
    }
    Ok(sample::set(name, member))
}

#[cfg(test)]
mod tests {
    use ssf_proto::Metric;

    use super::*;

    #[test]
    fn metrics_parse() {
        let c = count("hits:3").unwrap();
        assert_eq!(
            (c.metric(), c.name.as_str(), c.value),
            (Metric::Counter, "hits", 3.0)
        );
        let c = count("a:b:-2").unwrap();
        assert_eq!((c.name.as_str(), c.value), ("a:b", -2.0));
        let g = gauge("temp:21.5").unwrap();
        assert_eq!((g.metric(), g.value), (Metric::Gauge, 21.5));
        let t = timing("db:1.5").unwrap();
        assert_eq!(
            (t.metric(), t.value, t.unit.as_str()),
            (Metric::Histogram, 1.5, "ms")
        );
        assert_eq!(timing("db:250ms").unwrap().value, 250.0);
        let s = set("users:a:b").unwrap();
        assert_eq!(
            (s.metric(), s.name.as_str(), s.message.as_str()),
            (Metric::Set, "users", "a:b")
        );
        assert_eq!(set("users:").unwrap().message, "");
    }

    #[test]
    fn bad_metrics_are_refused() {
        for bad in ["hits", "hits:", ":3", "hits:x", "hits:1.5", ""] {
            assert!(count(bad).is_err(), "{bad}");
        }
        for bad in ["temp", "temp:NaN", "temp:inf", "temp:1e40", "temp:abc"] {
            assert!(gauge(bad).is_err(), "{bad}");
        }
        for bad in ["db", "db:-1", "db:x", "db:NaN", "db:1e300"] {
            assert!(timing(bad).is_err(), "{bad}");
        }
        for bad in ["users", ":m"] {
            assert!(set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_and_addresses() {
        assert_eq!(seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["-1", "x", "NaN", "inf", "1e30"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds("0").unwrap(), Duration::ZERO);
        assert!(positive_seconds("0").is_err());
        assert!(positive_seconds("1e-12").is_err());
        assert_eq!(
            positive_seconds("1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(positive("5"), Ok(5));
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert!(rate("0").is_err());
        assert!(rate("inf").is_err());
        assert_eq!(rate("2.5"), Ok(2.5));
        assert!(address("127.0.0.1:8128").unwrap().is_udp());
        assert!(address("tcp://127.0.0.1:1").unwrap().is_tcp());
        assert!(address("bogus://x").is_err());
        assert!(address("").is_err());
    }
}
