//! How a [`Span`](super::span::Span) keeps its strings, tags and samples without touching
//! the allocator in the common case: its name and service are [`Cow<'static, str>`] (a
//! `&'static str` is borrowed, a `String` is moved in); tags and samples are encoded as
//! they are set, by `ssf_proto`'s encoder, into bytes held inline (then on the heap),
//! which the span's encoding copies whole; the trace's resource is shared by every span
//! of the trace. [`SpanSample`] builds a sample, which is freed once added.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use ssf_proto::wire::{self, SampleFields};
use ssf_proto::{Metric, SsfSample, Status};

/// A string of a span: borrowed when `'static` (no allocation), owned otherwise.
pub type Str = Cow<'static, str>;

/// Bytes of encoded tags held inline before a span spills them to the heap: five
/// typical tags (a 12-byte key and a 10-byte value take 28 bytes each) and the three
/// of [`Span::error`](super::span::Span::error) with short messages.
const INLINE_TAG_BYTES: usize = 184;

/// Bytes of encoded samples held inline: two typical samples (a counter with a tag, a
/// timing) take about 80.
const INLINE_SAMPLE_BYTES: usize = 112;

/// Whether `s` owns its text (a `String` moved in) rather than borrowing a static one.
#[inline]
fn is_owned(s: &Str) -> bool {
    matches!(s, Cow::Owned(_))
}

/// Whether two strings are equal, trying the cheap answers first (lengths, then the
/// same static string).
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// Bytes held in an inline array of `N` until they outgrow it, then on the heap: where a
/// span keeps its encoded tags and samples. Bytes are written straight into the room
/// left, with no zeroing or measuring first.
#[derive(Clone)]
struct Bytes<const N: usize> {
    len: usize,
    inline: [u8; N],
    /// Every byte, once they outgrew `inline` (its capacity is then not 0).
    heap: Vec<u8>,
}

impl<const N: usize> Default for Bytes<N> {
    #[inline]
    fn default() -> Self {
        Bytes {
            len: 0,
            inline: [0; N],
            heap: Vec::new(),
        }
    }
}

impl<const N: usize> Bytes<N> {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self.inline.get(..self.len) {
            Some(bytes) if self.heap.capacity() == 0 => bytes,
            _ => &self.heap,
        }
    }

    /// Appends what `write` writes into the room it is given (returning its length, or
    /// `None` when the room is too small); when the inline room is too small, `write` is
    /// given `at_least` bytes on the heap.
    #[inline(always)]
    fn append(
        &mut self,
        at_least: impl FnOnce() -> usize,
        write: impl Fn(&mut [u8]) -> Option<usize>,
    ) {
        if self.heap.capacity() == 0 {
            if let Some(room) = self.inline.get_mut(self.len..) {
                if let Some(n) = write(room) {
                    self.len += n;
                    return;
                }
            }
        }
        self.append_on_heap(at_least(), &write);
    }

    // `write` is taken as a trait object here, so that the closure's one generic use is
    // the inline one, which the compiler then inlines into the caller (given twice as a
    // generic, it kept the closure out of line: about 20 instructions more a tag).
    #[cold]
    #[inline(never)]
    fn append_on_heap(&mut self, at_least: usize, write: &dyn Fn(&mut [u8]) -> Option<usize>) {
        if self.heap.capacity() == 0 {
            let mut heap = Vec::with_capacity((2 * N).max(self.len + at_least));
            heap.extend_from_slice(self.as_slice());
            self.heap = heap;
        }
        let at = self.heap.len();
        self.heap.resize(at + at_least, 0);
        let n = write(&mut self.heap[at..]);
        debug_assert!(n.is_some(), "the room measured was too small");
        self.heap.truncate(at + n.unwrap_or(0));
    }

    /// Replaces the bytes in `range` with `with`.
    #[cold]
    fn splice(&mut self, range: std::ops::Range<usize>, with: &[u8]) {
        let mut all = self.as_slice().to_vec();
        all.splice(range, with.iter().copied());
        match self.inline.get_mut(..all.len()) {
            Some(inline) if self.heap.capacity() == 0 => {
                inline.copy_from_slice(&all);
                self.len = all.len();
            }
            _ => self.heap = all,
        }
    }
}

/// A span's tags, each key once, in the order they were first set, kept as the bytes
/// the span sends (SSF field 11): setting a tag copies its key and value into them, so
/// a tag costs no allocation whatever the lifetime of its strings, and finishing a span
/// copies them whole. A protobuf map's order is free (every decoder accepts any order;
/// veneur's Go client writes its map in random order), and keeping them in order as
/// they come costs nothing. [`Tags::to_map`] gives them in key order.
#[derive(Clone, Default)]
pub struct Tags {
    bytes: Bytes<INLINE_TAG_BYTES>,
    /// One bit per key length (modulo 64) among the keys: a key whose length's bit is
    /// clear is new, without comparing it to every key (a span's keys mostly differ in
    /// length).
    lengths: u64,
    len: u32,
}

impl Tags {
    /// Sets `key` to `value`, replacing an earlier value (in its place).
    // Always inlined: the check for a new key folds into the caller.
    #[inline(always)]
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        let bit = 1u64 << (key.len() % 64);
        if self.lengths & bit != 0 {
            if let Some(range) = wire::span_tags(self.bytes.as_slice()).range_of(key) {
                self.replace(range, key, value);
                return;
            }
        }
        self.lengths |= bit;
        self.len += 1;
        self.bytes.append(
            || wire::span_tag_len(key, value),
            #[inline(always)]
            |room| wire::encode_span_tag(key, value, room),
        );
    }

    /// Replaces the entry at `range` with `key` = `value`.
    #[cold]
    fn replace(&mut self, range: std::ops::Range<usize>, key: &str, value: &str) {
        let mut entry = vec![0u8; wire::span_tag_len(key, value)];
        let written = wire::encode_span_tag(key, value, &mut entry);
        debug_assert_eq!(written, Some(entry.len()));
        self.bytes.splice(range, &entry);
    }

    /// The encoded entries (SSF field 11).
    #[inline]
    pub(crate) fn encoded(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The tags, in the order they were first set.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        Counted {
            inner: wire::span_tags(self.bytes.as_slice()).map(|(k, v, _)| (k, v)),
            left: self.len as usize,
        }
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tags as an SSF map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// An iterator that knows how many items it has left.
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

impl PartialEq for Tags {
    fn eq(&self, other: &Tags) -> bool {
        self.bytes.as_slice() == other.bytes.as_slice()
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

/// A span's samples, kept as the bytes the span sends (SSF field 10): adding a sample
/// encodes it and frees it at once.
#[derive(Clone, Default)]
pub(crate) struct Samples {
    bytes: Bytes<INLINE_SAMPLE_BYTES>,
    len: u32,
}

impl Samples {
    /// Appends `sample`'s record.
    #[inline(never)]
    pub(crate) fn add(&mut self, sample: &SpanSample) {
        // Measured only when it does not fit; integers are written a word at a time,
        // so the heap gets 10 bytes to spare.
        self.bytes.append(
            || wire::span_sample_len(sample) + 10,
            |room| wire::encode_span_sample(sample, room),
        );
        self.len += 1;
    }

    /// The encoded records (SSF field 10).
    #[inline]
    pub(crate) fn encoded(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// How many samples there are.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The samples, decoded.
    pub(crate) fn to_ssf(&self) -> Vec<SsfSample> {
        let bytes = self.bytes.as_slice();
        if bytes.is_empty() {
            return Vec::new();
        }
        // The records are a valid span message made of field 10 alone.
        ssf_proto::wire::decode(bytes).map_or_else(|_| Vec::new(), |s| s.metrics)
    }
}

impl fmt::Debug for Samples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_ssf()).finish()
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
    /// Whether any of its strings is owned (see [`SpanSample::is_static`]).
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

    /// Whether dropping the sample frees nothing: its strings are all static and its
    /// tags inline.
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
            t.set(k, v);
        }
        // A key from a string of another lifetime is the same key.
        let c = String::from("c");
        t.set(&c, "5");
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [("b", "1"), ("a", "4"), ("c", "5")]
        );
        assert_eq!(t.iter().len(), 3);
        assert_eq!((t.get("b"), t.get("z"), &t["c"]), (Some("1"), None, "5"));
        let map = t.to_map();
        assert_eq!(t, map);
        assert_eq!(format!("{t:?}"), r#"{"b": "1", "a": "4", "c": "5"}"#);
    }

    #[test]
    fn tags_grow_past_their_inline_room() {
        let mut t = Tags::default();
        let long = "v".repeat(300);
        for i in 0..20 {
            t.set(&format!("key-{i}"), &long);
        }
        t.set("key-3", "short");
        assert_eq!(t.len(), 20);
        assert_eq!(t.get("key-3"), Some("short"));
        assert_eq!(t.get("key-19"), Some(long.as_str()));
        assert_eq!(t.iter().nth(3), Some(("key-3", "short")));
    }

    proptest::proptest! {
        /// Setting tags in any order, with keys of equal, different and 64-apart lengths,
        /// and values of every length class, keeps each key once with its last value, in
        /// first-set order, and encodes them as the whole-span encoder would.
        #[test]
        fn tags_behave_as_an_ordered_map(
            sets in proptest::collection::vec((0usize..8, 0usize..5), 0..24),
        ) {
            const LONG: &str = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
            const KEYS: [&str; 8] = ["a", "b", "ab", "abc", "x", "", "a123456789", LONG];
            let long_value = "y".repeat(200);
            let values = ["0", "1", "22", "", long_value.as_str()];
            let mut tags = Tags::default();
            let mut want: Vec<(&str, &str)> = Vec::new();
            for (key, value) in sets {
                let (key, value) = (KEYS[key], values[value]);
                match want.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => want.push((key, value)),
                }
                tags.set(key, value);
            }
            proptest::prop_assert_eq!(tags.iter().collect::<Vec<_>>(), want.clone());
            proptest::prop_assert_eq!(tags.len(), want.len());
            let mut bytes = Vec::new();
            for (k, v) in want {
                let at = bytes.len();
                bytes.resize(at + wire::span_tag_len(k, v), 0);
                wire::encode_span_tag(k, v, &mut bytes[at..]);
            }
            proptest::prop_assert_eq!(tags.encoded(), &bytes[..]);
        }
    }

    #[test]
    fn samples_are_kept_as_their_records() {
        let mut samples = Samples::default();
        let big = SpanSample::count("x".repeat(500), 1.0).with_tag("k", "v".repeat(200));
        let all = [
            SpanSample::count("c", 1.0).with_tag("currency", "eur"),
            SpanSample::timing("t", Duration::from_micros(2500), Duration::from_millis(1)),
            big,
            SpanSample::gauge("g", -2.0),
        ];
        for s in &all {
            samples.add(s);
        }
        assert_eq!(samples.len(), 4);
        let want: Vec<SsfSample> = all.iter().map(SpanSample::to_ssf).collect();
        assert_eq!(samples.to_ssf(), want);
        assert_eq!(format!("{samples:?}"), format!("{want:?}"));
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
