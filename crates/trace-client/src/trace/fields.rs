//! How a [`Span`](super::span::Span) keeps its strings, tags and samples without touching
//! the allocator in the common case: strings are [`Cow<'static, str>`] (a `&'static str`
//! is borrowed, a `String` is moved in), tags and samples sit in small inline vectors,
//! and the trace's resource is shared by every span of the trace.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use ssf_proto::wire::SampleFields;
use ssf_proto::{Metric, SsfSample, Status};

/// A string of a span: borrowed when `'static` (no allocation), owned otherwise.
pub type Str = Cow<'static, str>;

/// Tags held inline before a span spills them to the heap.
const INLINE_TAGS: usize = 6;

/// Whether `s` owns its text (a `String` moved in) rather than borrowing a static one.
#[inline]
fn is_owned(s: &Str) -> bool {
    matches!(s, Cow::Owned(_))
}

/// Empties `v` without running its elements' drops, when that frees nothing: it holds
/// only borrowed strings (`holds_owned` false) and has not spilled to the heap. Dropping
/// a span of static strings then costs no walk over its tags and samples.
#[inline]
#[expect(
    clippy::mem_forget,
    reason = "only inline storage and borrowed static strings are forgotten: nothing to free"
)]
pub(crate) fn forget_if_static<A: smallvec::Array>(v: &mut SmallVec<A>, holds_owned: bool) {
    if !holds_owned && !v.spilled() {
        std::mem::forget(std::mem::take(v));
    }
}

/// Whether two strings are equal, trying the cheap answers first (lengths, then the
/// same static string).
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// A span's tags, each key once, in the order they were first set. That is the order
/// they are encoded in: a protobuf map's order is free (every decoder accepts any
/// order; veneur's Go client writes its map in random order), and keeping them in
/// order as they come costs nothing. [`Tags::to_map`] gives them in key order.
#[derive(Clone, Default)]
pub struct Tags {
    list: SmallVec<[(Str, Str); INLINE_TAGS]>,
    /// One bit per key length (modulo 64) among the keys: a key whose length's bit is
    /// clear is new, without comparing it to every key (a span's keys mostly differ in
    /// length).
    lengths: u64,
    /// Whether a key or value set here was ever owned (see [`forget_if_static`]).
    owned: bool,
}

impl Tags {
    /// Sets `key` to `value`, replacing an earlier value (in its place).
    // Always inlined: with the strings' kinds known where it is called, the checks
    // fold away (out of line it cost twice as much, callgrind).
    #[inline(always)]
    pub(crate) fn set(&mut self, key: Str, value: Str) {
        self.owned |= is_owned(&key) | is_owned(&value);
        let bit = 1u64 << (key.len() % 64);
        if self.lengths & bit != 0 {
            if let Some(slot) = self.list.iter_mut().find(|(k, _)| same(k, &key)) {
                slot.1 = value;
                return;
            }
        }
        self.lengths |= bit;
        self.list.push((key, value));
    }

    /// Empties the tags without walking them when they hold only static strings.
    #[inline]
    pub(crate) fn forget_if_static(&mut self) {
        forget_if_static(&mut self.list, self.owned);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(k, _)| same(k, key))
            .map(|(_, v)| v.as_ref())
    }

    /// The tags, in the order they were first set.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.list.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The tags as an SSF map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The tags as an SSF map, moving the owned strings.
    pub(crate) fn take_map(&mut self) -> BTreeMap<String, String> {
        self.lengths = 0;
        std::mem::take(&mut self.list)
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

impl PartialEq for Tags {
    fn eq(&self, other: &Tags) -> bool {
        self.list == other.list
    }
}

impl Eq for Tags {}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&str> for Tags {
    type Output = str;

    /// The value of `key`.
    ///
    /// # Panics
    ///
    /// When there is no such tag (as a map's `Index` does).
    fn index(&self, key: &str) -> &str {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no tag `{key}`"),
        }
    }
}

impl PartialEq<BTreeMap<String, String>> for Tags {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|o| o == v))
    }
}

/// A sample (metric) sent with a span, kept as compactly as the span itself: strings
/// are [`Str`]s, so a sample with a static name costs no allocation.
///
/// Made with the constructors below (as [`ssf_proto::sample`]'s, with `sample_rate` 1), or
/// from an [`SsfSample`].
///
/// ```
/// use std::time::Duration;
/// use trace_client::SpanSample;
///
/// let c = SpanSample::count("requests", 1.0).with_tag("route", "/checkout");
/// let t = SpanSample::timing("latency", Duration::from_micros(1500), Duration::from_millis(1));
/// assert_eq!((t.value(), t.unit()), (1.5, "ms"));
/// assert_eq!(c.to_ssf(), ssf_proto::sample::count("requests", 1.0).with_tag("route", "/checkout"));
/// # use ssf_proto::sample::SampleExt;
/// ```
#[derive(Debug, Clone)]
pub struct SpanSample {
    metric: Metric,
    name: Str,
    value: f32,
    timestamp: i64,
    message: Str,
    status: i32,
    sample_rate: f32,
    tags: SmallVec<[(Str, Str); 1]>,
    unit: Str,
    scope: i32,
    /// Whether any of its strings is owned (see [`forget_if_static`]).
    owned: bool,
}

impl SpanSample {
    #[inline]
    fn base(metric: Metric, name: Str, value: f32) -> Self {
        SpanSample {
            owned: is_owned(&name),
            metric,
            name,
            value,
            timestamp: 0,
            message: Str::Borrowed(""),
            status: 0,
            sample_rate: 1.0,
            tags: SmallVec::new(),
            unit: Str::Borrowed(""),
            scope: 0,
        }
    }

    /// Whether freeing the sample frees nothing: its strings are all static and its tags
    /// inline.
    #[inline]
    pub(crate) fn is_static(&self) -> bool {
        !self.owned && !self.tags.spilled()
    }

    /// A counter sample: `value` is added to the counter called `name`.
    #[inline]
    pub fn count(name: impl Into<Str>, value: f32) -> Self {
        Self::base(Metric::Counter, name.into(), value)
    }

    /// A gauge sample: the gauge called `name` is set to `value`.
    #[inline]
    pub fn gauge(name: impl Into<Str>, value: f32) -> Self {
        Self::base(Metric::Gauge, name.into(), value)
    }

    /// A histogram sample: `value` is one observation of the distribution `name`.
    #[inline]
    pub fn histogram(name: impl Into<Str>, value: f32) -> Self {
        Self::base(Metric::Histogram, name.into(), value)
    }

    /// A set sample: `member` is counted once in the set of unique values called `name`.
    #[inline]
    pub fn set(name: impl Into<Str>, member: impl Into<Str>) -> Self {
        let mut s = Self::base(Metric::Set, name.into(), 0.0);
        s.message = member.into();
        s.owned |= is_owned(&s.message);
        s
    }

    /// A status-check sample reporting `state` for the check called `name`.
    #[inline]
    pub fn status(name: impl Into<Str>, state: Status) -> Self {
        let mut s = Self::base(Metric::Status, name.into(), 0.0);
        s.status = state as i32;
        s
    }

    /// A histogram of `duration` in units of `resolution`, keeping the fraction, with
    /// the unit [`ssf_proto::sample::time_unit`] names (as [`ssf_proto::sample::timing`]).
    #[inline]
    pub fn timing(name: impl Into<Str>, duration: Duration, resolution: Duration) -> Self {
        let resolution = if resolution.is_zero() {
            Duration::from_nanos(1)
        } else {
            resolution
        };
        let value = ssf_proto::sample::timing_value(duration, resolution);
        let mut s = Self::histogram(name, value);
        if let Some(unit) = ssf_proto::sample::time_unit(resolution) {
            s.unit = Str::Borrowed(unit);
        }
        s
    }

    /// Adds a tag (a later value for the same key replaces the earlier one).
    #[must_use]
    #[inline]
    pub fn with_tag(mut self, key: impl Into<Str>, value: impl Into<Str>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.owned |= is_owned(&key) | is_owned(&value);
        match self.tags.iter_mut().find(|(k, _)| same(k, &key)) {
            Some(slot) => slot.1 = value,
            None => self.tags.push((key, value)),
        }
        self
    }

    /// Sets the unit.
    #[must_use]
    #[inline]
    pub fn with_unit(mut self, unit: impl Into<Str>) -> Self {
        self.unit = unit.into();
        self.owned |= is_owned(&self.unit);
        self
    }

    /// Sets the sample rate.
    #[must_use]
    pub fn with_sample_rate(mut self, rate: f32) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Sets the timestamp (nanoseconds since the Unix epoch).
    #[must_use]
    pub fn with_timestamp(mut self, nanos: i64) -> Self {
        self.timestamp = nanos;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value.
    pub fn value(&self) -> f32 {
        self.value
    }

    /// The unit.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// The sample as SSF.
    pub fn to_ssf(&self) -> SsfSample {
        SsfSample {
            metric: self.metric as i32,
            name: self.name.to_string(),
            value: self.value,
            timestamp: self.timestamp,
            message: self.message.to_string(),
            status: self.status,
            sample_rate: self.sample_rate,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unit: self.unit.to_string(),
            scope: self.scope,
        }
    }

    /// The sample as SSF, moving the owned strings.
    pub fn into_ssf(self) -> SsfSample {
        SsfSample {
            metric: self.metric as i32,
            name: self.name.into_owned(),
            value: self.value,
            timestamp: self.timestamp,
            message: self.message.into_owned(),
            status: self.status,
            sample_rate: self.sample_rate,
            tags: self
                .tags
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            unit: self.unit.into_owned(),
            scope: self.scope,
        }
    }
}

/// Equal when every field is (whether the strings are owned does not matter).
impl PartialEq for SpanSample {
    fn eq(&self, o: &SpanSample) -> bool {
        self.metric == o.metric
            && self.name == o.name
            && self.value == o.value
            && self.timestamp == o.timestamp
            && self.message == o.message
            && self.status == o.status
            && self.sample_rate == o.sample_rate
            && self.tags == o.tags
            && self.unit == o.unit
            && self.scope == o.scope
    }
}

impl From<SsfSample> for SpanSample {
    fn from(s: SsfSample) -> Self {
        SpanSample {
            owned: true,
            metric: Metric::try_from(s.metric).unwrap_or(Metric::Counter),
            name: Str::Owned(s.name),
            value: s.value,
            timestamp: s.timestamp,
            message: Str::Owned(s.message),
            status: s.status,
            sample_rate: s.sample_rate,
            tags: s
                .tags
                .into_iter()
                .map(|(k, v)| (Str::Owned(k), Str::Owned(v)))
                .collect(),
            unit: Str::Owned(s.unit),
            scope: s.scope,
        }
    }
}

impl SampleFields for SpanSample {
    #[inline]
    fn metric(&self) -> i32 {
        self.metric as i32
    }
    #[inline]
    fn name(&self) -> &str {
        &self.name
    }
    #[inline]
    fn value(&self) -> f32 {
        self.value
    }
    #[inline]
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    #[inline]
    fn message(&self) -> &str {
        &self.message
    }
    #[inline]
    fn status(&self) -> i32 {
        self.status
    }
    #[inline]
    fn sample_rate(&self) -> f32 {
        self.sample_rate
    }
    #[inline]
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
    #[inline]
    fn unit(&self) -> &str {
        &self.unit
    }
    #[inline]
    fn scope(&self) -> i32 {
        self.scope
    }
}

/// The samples of a span: two inline, more on the heap.
pub(crate) type Samples = SmallVec<[SpanSample; 2]>;

/// The resource of a trace, shared by its spans: a static string, or one allocation
/// shared by every span of the trace.
#[derive(Clone)]
pub(crate) enum Resource {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Resource {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Resource::Static(s) => s,
            Resource::Shared(s) => s,
        }
    }
}

impl From<Str> for Resource {
    fn from(s: Str) -> Self {
        match s {
            Cow::Borrowed(s) => Resource::Static(s),
            Cow::Owned(s) => Resource::Shared(s.into()),
        }
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_their_order_and_are_unique() {
        let mut t = Tags::default();
        for (k, v) in [("b", "1"), ("a", "2"), ("c", "3"), ("a", "4")] {
            t.set(Str::Borrowed(k), Str::Borrowed(v));
        }
        // An owned key equal to a static one is the same key.
        t.set(Str::Owned("c".to_owned()), Str::Borrowed("5"));
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [("b", "1"), ("a", "4"), ("c", "5")]
        );
        assert_eq!((t.get("b"), t.get("z"), &t["c"]), (Some("1"), None, "5"));
        let map = t.to_map();
        assert_eq!(t, map);
        assert_eq!(t.take_map(), map);
        assert!(t.is_empty());
    }

    proptest::proptest! {
        /// Setting tags in any order, with keys of equal, different and 64-apart lengths,
        /// static or owned, keeps each key once with its last value, in first-set order.
        #[test]
        fn tags_behave_as_an_ordered_map(
            sets in proptest::collection::vec(
                (0usize..8, 0usize..4, proptest::bool::ANY, proptest::bool::ANY),
                0..24,
            ),
        ) {
            const LONG: &str = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
            const KEYS: [&str; 8] = ["a", "b", "ab", "abc", "x", "", "a123456789", LONG];
            const VALUES: [&str; 4] = ["0", "1", "22", ""];
            let str = |s: &'static str, owned: bool| {
                if owned { Str::Owned(s.to_owned()) } else { Str::Borrowed(s) }
            };
            let mut tags = Tags::default();
            let mut want: Vec<(&str, &str)> = Vec::new();
            for (key, value, key_owned, value_owned) in sets {
                let (key, value) = (KEYS[key], VALUES[value]);
                match want.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => want.push((key, value)),
                }
                tags.set(str(key, key_owned), str(value, value_owned));
            }
            proptest::prop_assert_eq!(tags.iter().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn samples_match_ssf_protos_helpers() {
        use ssf_proto::sample::{self, SampleExt};
        let d = Duration::from_micros(2500);
        let ms = Duration::from_millis(1);
        let pairs = [
            (SpanSample::count("c", 2.0), sample::count("c", 2.0)),
            (SpanSample::gauge("g", 3.0), sample::gauge("g", 3.0)),
            (SpanSample::histogram("h", 4.0), sample::histogram("h", 4.0)),
            (SpanSample::set("s", "m"), sample::set("s", "m")),
            (
                SpanSample::status("x", Status::Warning),
                sample::status("x", Status::Warning),
            ),
            (SpanSample::timing("t", d, ms), sample::timing("t", d, ms)),
            (
                SpanSample::count("c", 1.0)
                    .with_tag("b", "2")
                    .with_tag("a", "1"),
                sample::count("c", 1.0)
                    .with_tag("b", "2")
                    .with_tag("a", "1"),
            ),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours.to_ssf(), theirs);
            assert_eq!(SpanSample::from(theirs.clone()).into_ssf(), theirs);
        }
    }
}
