//! Constructors for the samples a span carries: counters, gauges, histograms, sets,
//! timings and status checks.
//!
//! Every constructor sets `sample_rate` to 1, as veneur's helpers do, and leaves the
//! timestamp unset (0) and the scope `DEFAULT`. The [`SampleExt`] methods add tags, a unit,
//! a timestamp, a scope or a sample rate; [`Prefix`] prepends a name prefix without any
//! global state; [`random_sample`] keeps a random subset of a batch and scales the
//! survivors' sample rates.
//!
//! ```
//! use std::time::Duration;
//! use ssf_proto::sample::{self, SampleExt};
//! use ssf_proto::{Metric, Scope};
//!
//! let c = sample::count("requests", 1.0).with_tag("route", "/").with_scope(Scope::Global);
//! assert_eq!(c.metric(), Metric::Counter);
//! assert_eq!(c.sample_rate, 1.0);
//!
//! let t = sample::timing("latency", Duration::from_micros(1_500), Duration::from_millis(1));
//! assert_eq!((t.value, t.unit.as_str()), (1.5, "ms"));
//! ```
//!
//! # Timing and truncation
//!
//! veneur's `Timing` divides the duration by the resolution with integer division, so
//! 1.5 ms at millisecond resolution is reported as 1. [`timing`] keeps the fraction
//! (1.5); [`timing_truncated`] reproduces veneur's value exactly when that is needed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Metric, Scope, SsfSample, Status};

fn base(metric: Metric, name: String, value: f32) -> SsfSample {
    SsfSample {
        metric: metric as i32,
        name,
        value,
        sample_rate: 1.0,
        ..Default::default()
    }
}

/// A counter sample: `value` is added to the counter called `name`.
pub fn count(name: impl Into<String>, value: f32) -> SsfSample {
    base(Metric::Counter, name.into(), value)
}

/// A gauge sample: the gauge called `name` is set to `value`.
pub fn gauge(name: impl Into<String>, value: f32) -> SsfSample {
    base(Metric::Gauge, name.into(), value)
}

/// A histogram sample: `value` is one observation of the distribution `name`.
pub fn histogram(name: impl Into<String>, value: f32) -> SsfSample {
    base(Metric::Histogram, name.into(), value)
}

/// A set sample: `member` is counted once in the set of unique values called `name`.
pub fn set(name: impl Into<String>, member: impl Into<String>) -> SsfSample {
    let mut s = base(Metric::Set, name.into(), 0.0);
    s.message = member.into();
    s
}

/// A status-check sample reporting `state` for the check called `name`.
pub fn status(name: impl Into<String>, state: Status) -> SsfSample {
    let mut s = base(Metric::Status, name.into(), 0.0);
    s.status = state as i32;
    s
}

/// A histogram sample of `duration` counted in units of `resolution`, keeping the
/// fraction (1.5 ms at millisecond resolution is 1.5), with the unit set by
/// [`time_unit`] (`ns`, `µs`, `ms`, `s`, `min` or `h`; no unit for other resolutions).
///
/// A zero resolution is taken as one nanosecond.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let t = ssf_proto::sample::timing("db.query", Duration::from_micros(20), Duration::from_micros(1));
/// assert_eq!(t.value, 20.0);
/// assert_eq!(t.unit, "\u{b5}s");
/// ```
pub fn timing(name: impl Into<String>, duration: Duration, resolution: Duration) -> SsfSample {
    let resolution = nonzero(resolution);
    histogram(name, timing_value(duration, resolution)).with_time_unit(resolution)
}

/// The value [`timing`] gives `duration` at `resolution` (a zero resolution is one
/// nanosecond): the quotient of their nanoseconds, fraction kept.
///
/// ```
/// use std::time::Duration;
/// let v = ssf_proto::sample::timing_value(Duration::from_micros(1500), Duration::from_millis(1));
/// assert_eq!(v, 1.5);
/// ```
#[inline]
pub fn timing_value(duration: Duration, resolution: Duration) -> f32 {
    (nanos_f64(duration) / nanos_f64(nonzero(resolution))) as f32
}

/// `d` in nanoseconds, as the nearest `f64`: through `u64` (a cheap conversion, and the
/// same value) for anything under 584 years.
#[inline]
fn nanos_f64(d: Duration) -> f64 {
    match u64::try_from(d.as_nanos()) {
        Ok(n) => n as f64,
        Err(_) => d.as_nanos() as f64,
    }
}

/// Like [`timing`], but with veneur's integer division: the value is the number of whole
/// `resolution`s in `duration` (1.5 ms at millisecond resolution is 1).
pub fn timing_truncated(
    name: impl Into<String>,
    duration: Duration,
    resolution: Duration,
) -> SsfSample {
    let resolution = nonzero(resolution);
    let value = duration.as_nanos() / resolution.as_nanos();
    histogram(name, value as f32).with_time_unit(resolution)
}

#[inline]
fn nonzero(resolution: Duration) -> Duration {
    if resolution.is_zero() {
        Duration::from_nanos(1)
    } else {
        resolution
    }
}

/// The unit name veneur uses for a timing resolution: `ns`, `µs` (U+00B5 MICRO SIGN),
/// `ms`, `s`, `min` or `h` for exactly one of those, `None` for any other resolution.
pub fn time_unit(resolution: Duration) -> Option<&'static str> {
    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    match resolution {
        d if d == Duration::from_nanos(1) => Some("ns"),
        d if d == Duration::from_micros(1) => Some("\u{b5}s"),
        d if d == Duration::from_millis(1) => Some("ms"),
        d if d == Duration::from_secs(1) => Some("s"),
        MIN => Some("min"),
        HOUR => Some("h"),
        _ => None,
    }
}

/// Builder-style options for a sample, the equivalent of veneur's sample options.
///
/// Options apply in call order, so the last one wins.
pub trait SampleExt: Sized {
    /// Adds one tag, replacing an earlier value for the same key.
    fn with_tag(self, key: impl Into<String>, value: impl Into<String>) -> Self;
    /// Adds several tags.
    fn with_tags<K, V>(self, tags: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>;
    /// Sets the free-form unit.
    fn with_unit(self, unit: impl Into<String>) -> Self;
    /// Sets the timestamp. A time outside SSF's range (years 1677 to 2262) leaves the
    /// timestamp unset rather than writing a wrapped value.
    fn with_timestamp(self, at: SystemTime) -> Self;
    /// Sets the aggregation scope.
    fn with_scope(self, scope: Scope) -> Self;
    /// Sets the sample rate when `0 < rate <= 1`; any other value changes nothing.
    fn with_sample_rate(self, rate: f32) -> Self;
    /// Sets the unit to the name of `resolution` (see [`time_unit`]); any other
    /// resolution changes nothing.
    fn with_time_unit(self, resolution: Duration) -> Self;
}

impl SampleExt for SsfSample {
    fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn with_tags<K, V>(mut self, tags: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.tags
            .extend(tags.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    fn with_timestamp(mut self, at: SystemTime) -> Self {
        if let Ok(ns) = crate::time::to_nanos(at) {
            self.timestamp = ns;
        }
        self
    }

    fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope as i32;
        self
    }

    fn with_sample_rate(mut self, rate: f32) -> Self {
        if rate > 0.0 && rate <= 1.0 {
            self.sample_rate = rate;
        }
        self
    }

    fn with_time_unit(mut self, resolution: Duration) -> Self {
        if let Some(unit) = time_unit(resolution) {
            self.unit = unit.to_owned();
        }
        self
    }
}

/// Sample constructors that prepend a fixed prefix to every name, by plain
/// concatenation (no separator is added), instead of veneur's mutable global.
///
/// ```
/// use ssf_proto::sample::Prefix;
/// let p = Prefix::new("checkout.");
/// assert_eq!(p.count("charges", 1.0).name, "checkout.charges");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefix {
    prefix: String,
}

impl Prefix {
    /// Constructors whose names start with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Prefix {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    fn name(&self, name: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + name.len());
        s.push_str(&self.prefix);
        s.push_str(name);
        s
    }

    /// A prefixed [`count`].
    pub fn count(&self, name: &str, value: f32) -> SsfSample {
        count(self.name(name), value)
    }

    /// A prefixed [`gauge`].
    pub fn gauge(&self, name: &str, value: f32) -> SsfSample {
        gauge(self.name(name), value)
    }

    /// A prefixed [`histogram`].
    pub fn histogram(&self, name: &str, value: f32) -> SsfSample {
        histogram(self.name(name), value)
    }

    /// A prefixed [`set`].
    pub fn set(&self, name: &str, member: impl Into<String>) -> SsfSample {
        set(self.name(name), member)
    }

    /// A prefixed [`status`].
    pub fn status(&self, name: &str, state: Status) -> SsfSample {
        status(self.name(name), state)
    }

    /// A prefixed [`timing`].
    pub fn timing(&self, name: &str, duration: Duration, resolution: Duration) -> SsfSample {
        timing(self.name(name), duration, resolution)
    }
}

/// A batch of samples, the equivalent of veneur's `Samples`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    samples: Vec<SsfSample>,
}

impl Samples {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends samples to the batch.
    pub fn add(&mut self, samples: impl IntoIterator<Item = SsfSample>) -> &mut Self {
        self.samples.extend(samples);
        self
    }

    /// The samples in the batch.
    pub fn as_slice(&self) -> &[SsfSample] {
        &self.samples
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, consuming the batch.
    pub fn into_vec(self) -> Vec<SsfSample> {
        self.samples
    }
}

impl From<Vec<SsfSample>> for Samples {
    fn from(samples: Vec<SsfSample>) -> Self {
        Samples { samples }
    }
}

impl Extend<SsfSample> for Samples {
    fn extend<I: IntoIterator<Item = SsfSample>>(&mut self, iter: I) {
        self.samples.extend(iter);
    }
}

impl FromIterator<SsfSample> for Samples {
    fn from_iter<I: IntoIterator<Item = SsfSample>>(iter: I) -> Self {
        Samples {
            samples: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for Samples {
    type Item = SsfSample;
    type IntoIter = std::vec::IntoIter<SsfSample>;
    fn into_iter(self) -> Self::IntoIter {
        self.samples.into_iter()
    }
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(
        SmallRng::try_from_os_rng().unwrap_or_else(|_| SmallRng::seed_from_u64(fallback_seed())),
    );
}

fn fallback_seed() -> u64 {
    let t = crate::time::now_nanos() as u64;
    let here = &t as *const u64 as u64;
    t ^ here.rotate_left(32)
}

/// Keeps each sample with probability `rate` and multiplies the sample rate of every
/// kept sample by `rate`, so aggregated values stay unbiased.
///
/// As in veneur: a `rate` of 1 or more keeps everything (above 1 without touching the
/// sample rates), a negative `rate` drops everything, and a sample whose rate was 0
/// (absent) keeps 0. Draws come from a per-thread generator seeded by the OS.
///
/// ```
/// use ssf_proto::sample::{count, random_sample};
/// let kept = random_sample(1.0, vec![count("a", 1.0), count("b", 1.0)]);
/// assert_eq!(kept.len(), 2);
/// assert!(random_sample(-1.0, vec![count("a", 1.0)]).is_empty());
/// ```
pub fn random_sample(rate: f32, samples: impl IntoIterator<Item = SsfSample>) -> Vec<SsfSample> {
    RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        samples
            .into_iter()
            .filter_map(|mut s| {
                let draw: f32 = rng.random();
                if draw > rate {
                    return None;
                }
                if rate > 0.0 && rate <= 1.0 {
                    s.sample_rate *= rate;
                }
                Some(s)
            })
            .collect()
    })
}

/// Tags from `(key, value)` pairs, for use in struct literals.
pub fn tags<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> BTreeMap<String, String>
where
    K: Into<String>,
    V: Into<String>,
{
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purpose() -> BTreeMap<String, String> {
        tags([("purpose", "testing")])
    }

    #[test]
    fn count_gauge_histogram_carry_name_value_tags() {
        for (s, metric) in [
            (count("foo", 1.0), Metric::Counter),
            (gauge("foo", 1.0), Metric::Gauge),
            (histogram("foo", 1.0), Metric::Histogram),
        ] {
            let s = s.with_tags(purpose());
            assert_eq!(s.metric(), metric);
            assert_eq!(s.name, "foo");
            assert_eq!(s.value, 1.0);
            assert_eq!(s.tags, purpose());
            assert_eq!(s.sample_rate, 1.0);
            assert_eq!(s.timestamp, 0);
        }
    }

    #[test]
    fn timing_units_for_each_resolution() {
        let cases = [
            (Duration::from_nanos(1), "ns"),
            (Duration::from_micros(1), "\u{b5}s"),
            (Duration::from_millis(1), "ms"),
            (Duration::from_secs(1), "s"),
            (Duration::from_secs(60), "min"),
            (Duration::from_secs(3600), "h"),
        ];
        for (res, unit) in cases {
            let t = timing("foo", res * 20, res);
            assert_eq!(t.value, 20.0, "{unit}");
            assert_eq!(t.unit, unit);
            assert_eq!(t.metric(), Metric::Histogram);
        }
        assert_eq!("\u{b5}s".as_bytes(), [0xc2, 0xb5, b's']);
    }

    #[test]
    fn timing_values_are_the_quotient_of_the_nanoseconds() {
        let durations = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(1500),
            Duration::new(12_345, 678_901_234),
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1),
            Duration::from_secs(u64::MAX / 3),
            Duration::MAX,
        ];
        for d in durations {
            for r in [
                Duration::ZERO,
                Duration::from_nanos(3),
                Duration::from_millis(1),
                d,
            ] {
                let r1 = if r.is_zero() {
                    Duration::from_nanos(1)
                } else {
                    r
                };
                let want = (d.as_nanos() as f64 / r1.as_nanos() as f64) as f32;
                assert_eq!(
                    timing_value(d, r).to_bits(),
                    want.to_bits(),
                    "{d:?} / {r:?}"
                );
            }
        }
    }

    #[test]
    fn timing_keeps_fraction_unless_truncated() {
        let d = Duration::from_micros(1500);
        assert_eq!(timing("t", d, Duration::from_millis(1)).value, 1.5);
        assert_eq!(
            timing_truncated("t", d, Duration::from_millis(1)).value,
            1.0
        );
        // Other resolutions set no unit; zero resolution counts nanoseconds.
        assert_eq!(timing("t", d, Duration::from_millis(2)).unit, "");
        assert_eq!(timing("t", d, Duration::ZERO).value, 1_500_000.0);
    }

    #[test]
    fn unit_and_timestamp_options() {
        let at = crate::time::from_nanos(1_136_239_445_000_000_000);
        for s in [
            count("foo", 1.0),
            gauge("foo", 1.0),
            histogram("foo", 1.0),
            set("foo", "bar"),
        ] {
            let s = s.with_unit("frobnizzles").with_timestamp(at);
            assert_eq!(s.unit, "frobnizzles");
            assert_eq!(s.timestamp, 1_136_239_445_000_000_000);
        }
    }

    #[test]
    fn prefix_applies_to_all_constructors() {
        let p = Prefix::new("testing.the.prefix.");
        for s in [
            p.count("foo", 1.0),
            p.gauge("foo", 1.0),
            p.histogram("foo", 1.0),
            p.set("foo", "x"),
            p.status("foo", Status::Ok),
            p.timing("foo", Duration::from_secs(1), Duration::from_secs(1)),
        ] {
            assert_eq!(s.name, "testing.the.prefix.foo");
        }
    }

    #[test]
    fn set_and_status_fields() {
        let s = set("users", "alice");
        assert_eq!(
            (s.metric(), s.message.as_str(), s.value),
            (Metric::Set, "alice", 0.0)
        );
        let s = status("check", Status::Warning);
        assert_eq!((s.metric(), s.status()), (Metric::Status, Status::Warning));
    }

    #[test]
    fn sample_rate_option_ignores_out_of_range() {
        assert_eq!(count("a", 1.0).with_sample_rate(0.5).sample_rate, 0.5);
        assert_eq!(count("a", 1.0).with_sample_rate(0.0).sample_rate, 1.0);
        assert_eq!(count("a", 1.0).with_sample_rate(1.5).sample_rate, 1.0);
        assert_eq!(count("a", 1.0).with_sample_rate(f32::NAN).sample_rate, 1.0);
    }

    #[test]
    fn random_sample_scales_rates() {
        let batch: Vec<_> = (0..2000).map(|i| count(format!("c{i}"), 1.0)).collect();
        let kept = random_sample(0.25, batch.clone());
        assert!(kept.len() > 300 && kept.len() < 700, "{}", kept.len());
        assert!(kept.iter().all(|s| s.sample_rate == 0.25));
        // Order is kept.
        let names: Vec<_> = kept.iter().map(|s| &s.name).collect();
        let mut sorted_by_index = names.clone();
        sorted_by_index.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
        assert_eq!(names, sorted_by_index);
        let all = random_sample(2.0, batch.clone());
        assert!(all.len() == 2000 && all.iter().all(|s| s.sample_rate == 1.0));
        let absent = random_sample(1.0, vec![count("a", 1.0).with_sample_rate(0.0)]);
        assert_eq!(absent[0].sample_rate, 1.0);
        let mut zero = count("z", 1.0);
        zero.sample_rate = 0.0;
        assert_eq!(
            random_sample(0.5, vec![zero; 50])
                .iter()
                .map(|s| s.sample_rate)
                .sum::<f32>(),
            0.0
        );
    }
}
