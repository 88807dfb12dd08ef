//! The one encoder: the canonical bytes of a span, written in one pass straight into a
//! slice ([`wire::encode_to_slice`](crate::wire::encode_to_slice)), from an [`SsfSpan`]
//! or from any span type that shows its fields through [`SpanFields`].
//!
//! Nothing is measured first: a sample's length prefix is set aside as one byte and
//! filled in once the sample is written (in the rare case of a sample of 128 bytes or
//! more, the sample is moved up to make room for a longer prefix), and strings and map
//! entries under 128 bytes are written with one bounds check each. Property tests check
//! the bytes against a separate reference encoder (test code) and against prost.

use std::collections::BTreeMap;

use crate::{SsfSample, SsfSpan};

/// The fields of a span, as the encoder reads them, in field-number order; every method
/// but the IDs and times has a default (the field left out).
///
/// [`SsfSpan`] implements it (tags in key order, the canonical bytes). A span type of
/// your own implements it to be encoded without first being turned into an [`SsfSpan`];
/// tags are written in the order [`tags`](SpanFields::tags) yields them (the protobuf
/// map's order is free: every decoder accepts any order; veneur's own is random).
///
/// ```
/// use ssf_proto::wire::{self, SpanFields};
/// use ssf_proto::SsfSpan;
///
/// struct Tiny { id: i64, name: &'static str }
/// impl SpanFields for Tiny {
///     type Sample = ssf_proto::SsfSample;
///     fn id(&self) -> i64 { self.id }
///     fn name(&self) -> &str { self.name }
///     fn samples(&self) -> &[ssf_proto::SsfSample] { &[] }
/// }
///
/// let mut out = [0u8; 32];
/// let n = wire::encode_fields_to_slice(&Tiny { id: 7, name: "op" }, &mut out).unwrap();
/// let same = SsfSpan { id: 7, name: "op".into(), ..Default::default() };
/// assert_eq!(&out[..n], &wire::encode_to_vec(&same)[..]);
/// ```
pub trait SpanFields {
    /// The type of the span's samples.
    type Sample: SampleFields;

    /// Field 1, `version`.
    fn version(&self) -> i32 {
        0
    }
    /// Field 2, `trace_id`.
    fn trace_id(&self) -> i64 {
        0
    }
    /// Field 3, `id`.
    fn id(&self) -> i64 {
        0
    }
    /// Field 4, `parent_id`.
    fn parent_id(&self) -> i64 {
        0
    }
    /// Field 5, `start_timestamp`.
    fn start_timestamp(&self) -> i64 {
        0
    }
    /// Field 6, `end_timestamp`.
    fn end_timestamp(&self) -> i64 {
        0
    }
    /// Field 7, `error`.
    fn is_error(&self) -> bool {
        false
    }
    /// Field 8, `service`.
    fn service(&self) -> &str {
        ""
    }
    /// Field 10, `metrics`.
    fn samples(&self) -> &[Self::Sample];
    /// Field 11, `tags`, in the order they are to be written.
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::empty()
    }
    /// Field 12, `indicator`.
    fn indicator(&self) -> bool {
        false
    }
    /// Field 13, `name`.
    fn name(&self) -> &str {
        ""
    }
    /// Field 14, `root_start_timestamp`.
    fn root_start_timestamp(&self) -> i64 {
        0
    }
    /// Fields 10 and 11 written beforehand (see [`EncodedParts`]): when `Some`, the
    /// encoder copies these bytes and reads neither [`samples`](SpanFields::samples) nor
    /// [`tags`](SpanFields::tags).
    fn encoded_parts(&self) -> Option<EncodedParts<'_>> {
        None
    }
}

/// A span's samples (field 10) and tags (field 11) encoded as they were added, by
/// [`encode_span_sample`] and [`encode_span_tag`]: a span type that keeps them this way
/// is encoded by copying two runs of bytes ([`SpanFields::encoded_parts`]).
///
/// ```
/// use ssf_proto::wire::{self, EncodedParts, SpanFields};
/// use ssf_proto::{sample, SsfSpan};
///
/// struct Prepared { tags: Vec<u8>, samples: Vec<u8> }
/// impl SpanFields for Prepared {
///     type Sample = ssf_proto::SsfSample;
///     fn samples(&self) -> &[ssf_proto::SsfSample] { &[] }
///     fn encoded_parts(&self) -> Option<EncodedParts<'_>> {
///         Some(EncodedParts { samples: &self.samples, tags: &self.tags })
///     }
/// }
///
/// let mut span = Prepared { tags: vec![0; 64], samples: vec![0; 64] };
/// let n = wire::encode_span_tag("k", "v", &mut span.tags).unwrap();
/// span.tags.truncate(n);
/// let n = wire::encode_span_sample(&sample::count("c", 1.0), &mut span.samples).unwrap();
/// span.samples.truncate(n);
///
/// let mut out = [0u8; 64];
/// let n = wire::encode_fields_to_slice(&span, &mut out).unwrap();
/// let same = SsfSpan {
///     tags: [("k".into(), "v".into())].into(),
///     metrics: vec![sample::count("c", 1.0)],
///     ..Default::default()
/// };
/// assert_eq!(&out[..n], &wire::encode_to_vec(&same)[..]);
/// assert_eq!(wire::fields_encoded_len(&span), n);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodedParts<'a> {
    /// Field 10: records written by [`encode_span_sample`], one after another.
    pub samples: &'a [u8],
    /// Field 11: entries written by [`encode_span_tag`], one after another, each key once.
    pub tags: &'a [u8],
}

/// The fields of a sample, as the encoder reads them (see [`SpanFields`]).
pub trait SampleFields {
    /// Field 1, `metric`.
    fn metric(&self) -> i32 {
        0
    }
    /// Field 2, `name`.
    fn name(&self) -> &str {
        ""
    }
    /// Field 3, `value`.
    fn value(&self) -> f32 {
        0.0
    }
    /// Field 4, `timestamp`.
    fn timestamp(&self) -> i64 {
        0
    }
    /// Field 5, `message`.
    fn message(&self) -> &str {
        ""
    }
    /// Field 6, `status`.
    fn status(&self) -> i32 {
        0
    }
    /// Field 7, `sample_rate`.
    fn sample_rate(&self) -> f32 {
        0.0
    }
    /// Field 8, `tags`, in the order they are to be written.
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::empty()
    }
    /// Field 9, `unit`.
    fn unit(&self) -> &str {
        ""
    }
    /// Field 10, `scope`.
    fn scope(&self) -> i32 {
        0
    }
}

fn btree_tags(m: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    m.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

impl SpanFields for SsfSpan {
    type Sample = SsfSample;

    #[inline]
    fn version(&self) -> i32 {
        self.version
    }
    #[inline]
    fn trace_id(&self) -> i64 {
        self.trace_id
    }
    #[inline]
    fn id(&self) -> i64 {
        self.id
    }
    #[inline]
    fn parent_id(&self) -> i64 {
        self.parent_id
    }
    #[inline]
    fn start_timestamp(&self) -> i64 {
        self.start_timestamp
    }
    #[inline]
    fn end_timestamp(&self) -> i64 {
        self.end_timestamp
    }
    #[inline]
    fn is_error(&self) -> bool {
        self.error
    }
    #[inline]
    fn service(&self) -> &str {
        &self.service
    }
    #[inline]
    fn samples(&self) -> &[SsfSample] {
        &self.metrics
    }
    #[inline]
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        btree_tags(&self.tags)
    }
    #[inline]
    fn indicator(&self) -> bool {
        self.indicator
    }
    #[inline]
    fn name(&self) -> &str {
        &self.name
    }
    #[inline]
    fn root_start_timestamp(&self) -> i64 {
        self.root_start_timestamp
    }
}

impl SampleFields for SsfSample {
    #[inline]
    fn metric(&self) -> i32 {
        self.metric
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
        btree_tags(&self.tags)
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

/// Writes the canonical encoding of `span` (the bytes of [`encode`](crate::wire::encode))
/// at the start of `out`, in one pass; returns its length, or `None` when `out` is too
/// small (what was written into `out` is then unspecified). Up to 10 bytes of `out` past the
/// returned length may be overwritten too (integers are written a whole word at a time
/// where there is room): encode into the end of what you keep, not into its middle.
///
/// Nothing is measured first and nothing is allocated, which makes this the fastest way
/// to encode a span into memory you already have: a buffer of
/// [`encoded_len`](crate::wire::encoded_len) bytes always suffices, and a larger guess
/// (say 512 bytes, for a typical span) saves measuring.
///
/// ```
/// use ssf_proto::{wire, SsfSpan};
/// let span = SsfSpan { id: 1, name: "op".into(), ..Default::default() };
/// let mut out = [0u8; 64];
/// let n = wire::encode_to_slice(&span, &mut out).unwrap();
/// assert_eq!(&out[..n], &wire::encode_to_vec(&span)[..]);
/// assert_eq!(wire::encode_to_slice(&span, &mut out[..n - 1]), None);
/// ```
#[inline]
pub fn encode_to_slice(span: &SsfSpan, out: &mut [u8]) -> Option<usize> {
    encode_fields_to_slice(span, out)
}

/// [`encode_to_slice`] for any span type that shows its fields through [`SpanFields`]:
/// the same encoder, the same bytes for the same fields (tags in the order the type
/// yields them).
#[inline]
pub fn encode_fields_to_slice<S: SpanFields + ?Sized>(span: &S, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        out,
        pos: 0,
        ok: true,
    };
    w.small_int(1, span.version());
    w.int(2, span.trace_id());
    w.int(3, span.id());
    w.int(4, span.parent_id());
    w.int(5, span.start_timestamp());
    w.int(6, span.end_timestamp());
    w.boolean(7, span.is_error());
    w.string(8, span.service());
    match span.encoded_parts() {
        Some(parts) => {
            w.bytes(parts.samples);
            w.bytes(parts.tags);
        }
        None => {
            for s in span.samples() {
                if !w.sample_field(s) {
                    return None;
                }
            }
            w.map(11, span.tags());
        }
    }
    w.boolean(12, span.indicator());
    w.string(13, span.name());
    w.int(14, span.root_start_timestamp());
    w.ok.then_some(w.pos)
}

/// Writes the canonical encoding of a bare sample (an `SSFSample` message) at the start
/// of `out`; its length, or `None` when `out` is too small.
pub(crate) fn encode_sample_to_slice(s: &SsfSample, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        out,
        pos: 0,
        ok: true,
    };
    w.sample(s);
    w.ok.then_some(w.pos)
}

/// Writes `sample` as one record of a span's field 10 (key, length, the sample) at the
/// start of `out`, as [`encode_fields_to_slice`] writes it; returns its length, or `None`
/// when `out` is too small. Up to 10 bytes past the returned length may be overwritten,
/// as with [`encode_to_slice`]. See [`EncodedParts`].
#[inline]
pub fn encode_span_sample<S: SampleFields + ?Sized>(sample: &S, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        out,
        pos: 0,
        ok: true,
    };
    (w.sample_field(sample) && w.ok).then_some(w.pos)
}

/// Writes the tag `key` = `value` as one entry of a span's field 11 at the start of
/// `out`, as [`encode_fields_to_slice`] writes it; returns its length
/// ([`span_tag_len`]), or `None` when `out` is too small. Nothing past that length is
/// written. See [`EncodedParts`].
#[inline]
pub fn encode_span_tag(key: &str, value: &str, out: &mut [u8]) -> Option<usize> {
    let (k, v) = (key.as_bytes(), value.as_bytes());
    let entry = 4 + k.len() + v.len();
    if entry < 0x80 {
        // The common case, written here rather than through a `Writer`: a span sets
        // its tags one by one, each a call of this.
        short_entry(out.get_mut(..2 + entry)?, 11, entry, k, v)?;
        return Some(2 + entry);
    }
    encode_long_span_tag(key, value, out)
}

#[cold]
#[inline(never)]
fn encode_long_span_tag(key: &str, value: &str, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        out,
        pos: 0,
        ok: true,
    };
    w.map(11, std::iter::once((key, value)));
    w.ok.then_some(w.pos)
}

/// Writes the map entry `k` = `v` of field `tag` into `dst`: `entry` (under 128) is the
/// length of the entry's message, `4 + k.len() + v.len()`, and `dst` is exactly
/// `2 + entry` bytes long; `None` only if it is not.
#[inline(always)]
fn short_entry(dst: &mut [u8], tag: u8, entry: usize, k: &[u8], v: &[u8]) -> Option<()> {
    let (head, rest) = dst.split_first_chunk_mut::<4>()?;
    *head = [(tag << 3) | LEN, entry as u8, (1 << 3) | LEN, k.len() as u8];
    let (kd, rest) = rest.split_at_mut_checked(k.len())?;
    copy_short(kd, k);
    let (vhead, vd) = rest.split_first_chunk_mut::<2>()?;
    *vhead = [(2 << 3) | LEN, v.len() as u8];
    copy_short(vd, v);
    Some(())
}

/// The length [`encode_span_tag`] writes for `key` = `value`.
#[inline]
pub fn span_tag_len(key: &str, value: &str) -> usize {
    let entry = entry_len_bytes(key.as_bytes(), value.as_bytes());
    1 + varint_len(entry as u64) + entry
}

/// The tags written by [`encode_span_tag`] into `encoded`, in order, each with the range
/// of bytes its entry takes. Reading stops at the first byte that is not such an entry
/// (bytes from elsewhere are never a reason to panic).
///
/// ```
/// use ssf_proto::wire;
///
/// let mut buf = vec![0u8; 32];
/// let a = wire::encode_span_tag("k", "v", &mut buf).unwrap();
/// let b = wire::encode_span_tag("env", "", &mut buf[a..]).unwrap();
/// buf.truncate(a + b);
/// let tags: Vec<_> = wire::span_tags(&buf).map(|(k, v, _)| (k, v)).collect();
/// assert_eq!(tags, [("k", "v"), ("env", "")]);
/// ```
pub fn span_tags(encoded: &[u8]) -> SpanTags<'_> {
    SpanTags {
        buf: encoded,
        pos: 0,
    }
}

/// The iterator of [`span_tags`]: `(key, value, range of the entry)`.
#[derive(Debug, Clone)]
pub struct SpanTags<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SpanTags<'a> {
    /// The next entry's key and value as bytes, and where it ends.
    fn next_raw(&self) -> Option<(&'a [u8], &'a [u8], usize)> {
        let buf = self.buf;
        let mut pos = self.pos;
        if *buf.get(pos)? != (11 << 3) | LEN {
            return None;
        }
        pos += 1;
        let entry = read_varint(buf, &mut pos)?;
        let end = pos.checked_add(entry)?;
        let body = buf.get(pos..end)?;
        let mut at = 0;
        let key = read_field(body, &mut at, (1 << 3) | LEN)?;
        let value = read_field(body, &mut at, (2 << 3) | LEN)?;
        (at == body.len()).then_some((key, value, end))
    }

    /// The range of the entry whose key is `key`, comparing bytes only.
    pub fn range_of(mut self, key: &str) -> Option<std::ops::Range<usize>> {
        while let Some((k, _, end)) = self.next_raw() {
            if k == key.as_bytes() {
                return Some(self.pos..end);
            }
            self.pos = end;
        }
        None
    }
}

impl<'a> Iterator for SpanTags<'a> {
    type Item = (&'a str, &'a str, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v, end) = self.next_raw()?;
        let (k, v) = (std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?);
        let range = self.pos..end;
        self.pos = end;
        Some((k, v, range))
    }
}

/// Reads a varint of at most `usize` from `buf` at `pos`.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return usize::try_from(v).ok();
        }
    }
    None
}

/// Reads a length-delimited field with key byte `key` from `buf` at `pos`.
fn read_field<'a>(buf: &'a [u8], pos: &mut usize, key: u8) -> Option<&'a [u8]> {
    if *buf.get(*pos)? != key {
        return None;
    }
    *pos += 1;
    let len = read_varint(buf, pos)?;
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(bytes)
}

const VARINT: u8 = 0;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes 1 byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn entry_len_bytes(k: &[u8], v: &[u8]) -> usize {
    // Key and value are both written, also when empty (as veneur does).
    2 + varint_len(k.len() as u64) + k.len() + varint_len(v.len() as u64) + v.len()
}

/// The varint of `v` (`n` bytes long, as [`varint_len`] says) as little-endian words:
/// its first eight bytes, then the last two (bytes past the varint's end are zero).
#[inline(always)]
fn varint_words(v: u64, n: usize) -> (u64, u16) {
    let x = spread7(v);
    // Every byte but the last carries the continuation bit.
    let continued = (n - 1).min(8) * 8;
    let mask = ((1u128 << continued) - 1) as u64 & 0x8080_8080_8080_8080;
    let b8 = ((v >> 56) as u16 & 0x7f) | if n > 9 { 0x80 } else { 0 };
    let b9 = (v >> 63) as u16;
    (x | mask, b8 | (b9 << 8))
}

/// The low 56 bits of `v`, seven to a byte in eight bytes (a varint's first eight bytes
/// without their continuation bits): the spread is halved three times (28 | 28 bits,
/// then 14 | 14, then 7 | 7), without a loop.
#[inline(always)]
fn spread7(v: u64) -> u64 {
    let mut x = v & 0x00ff_ffff_ffff_ffff;
    x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x00ff_ffff_f000_0000) << 4);
    x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x0fff_c000_0fff_c000) << 2);
    (x & 0x007f_007f_007f_007f) | ((x & 0x3f80_3f80_3f80_3f80) << 1)
}

/// Writes the varint of `v` into `buf` from `at`; returns where it ends. `buf` has room:
/// a varint takes at most 10 bytes.
#[inline]
fn put_varint<const N: usize>(buf: &mut [u8; N], at: usize, mut v: u64) -> usize {
    let mut i = at;
    while v >= 0x80 && i + 1 < N {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i.min(N - 1)] = v as u8;
    i + 1
}

/// Copies `src` into `dst` (as long). Most strings of a span are a few bytes long, and
/// for those a call to `memcpy` costs more than the copy: up to 32 bytes are copied as
/// two overlapping fixed-size moves, which the compiler writes inline.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() || n > 32 {
        dst.copy_from_slice(src);
    } else if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// Writes into a slice; a write past its end is dropped and remembered.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
    ok: bool,
}

impl Writer<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        match self.out.get_mut(self.pos) {
            Some(slot) => {
                *slot = b;
                self.pos += 1;
            }
            None => self.ok = false,
        }
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        match self.out.get_mut(self.pos..self.pos + b.len()) {
            Some(slot) => {
                copy_short(slot, b);
                self.pos += b.len();
            }
            None => self.ok = false,
        }
    }

    #[inline]
    fn varint(&mut self, v: u64) {
        if v < 0x80 {
            self.byte(v as u8);
            return;
        }
        let mut tmp = [0u8; 10];
        let n = put_varint(&mut tmp, 0, v);
        self.bytes(&tmp[..n]);
    }

    #[inline]
    fn key(&mut self, tag: u8, wire_type: u8) {
        self.byte((tag << 3) | wire_type);
    }

    /// An enum or a version: mostly 0 (not written) or a one-byte varint.
    #[inline(always)]
    fn small_int(&mut self, tag: u8, v: i32) {
        match u8::try_from(v) {
            Ok(0) => {}
            Ok(b) if b < 0x80 => match self.out.get_mut(self.pos..self.pos + 2) {
                Some(dst) => {
                    dst[0] = (tag << 3) | VARINT;
                    dst[1] = b;
                    self.pos += 2;
                }
                None => self.ok = false,
            },
            _ => self.int(tag, i64::from(v)),
        }
    }

    // Always inlined, with the rare case (near the end of `out`) out of line: a span's
    // IDs and timestamps are nine-byte varints, written here without a loop.
    #[inline(always)]
    fn int(&mut self, tag: u8, v: i64) {
        let v = v as u64;
        if v == 0 {
            return;
        }
        // With room for the key and the longest varint, all eleven bytes are written at
        // once; those past the varint are overwritten by what follows, or lie past the
        // end of the encoding.
        match self.out.get_mut(self.pos..self.pos + 11) {
            Some(dst) => {
                dst[0] = (tag << 3) | VARINT;
                if matches!(v >> 56, 1..=0x7f) {
                    // Nine bytes, as a random ID or a time in nanoseconds mostly takes:
                    // eight continued bytes, then the top seven bits.
                    let lo = spread7(v) | 0x8080_8080_8080_8080;
                    dst[1..9].copy_from_slice(&lo.to_le_bytes());
                    dst[9] = (v >> 56) as u8;
                    self.pos += 10;
                } else {
                    let n = varint_len(v);
                    let (lo, hi) = varint_words(v, n);
                    dst[1..9].copy_from_slice(&lo.to_le_bytes());
                    dst[9..11].copy_from_slice(&hi.to_le_bytes());
                    self.pos += 1 + n;
                }
            }
            None => self.int_near_end(tag, v),
        }
    }

    #[cold]
    #[inline(never)]
    fn int_near_end(&mut self, tag: u8, v: u64) {
        // The key and the value with one bounds check.
        let mut tmp = [0u8; 11];
        tmp[0] = (tag << 3) | VARINT;
        let n = put_varint(&mut tmp, 1, v);
        self.bytes(&tmp[..n]);
    }

    #[inline]
    fn boolean(&mut self, tag: u8, v: bool) {
        if v {
            self.key(tag, VARINT);
            self.byte(1);
        }
    }

    #[inline]
    fn float(&mut self, tag: u8, v: f32) {
        if v != 0.0 {
            self.key(tag, FIXED32);
            self.bytes(&v.to_le_bytes());
        }
    }

    // Always inlined: a span's encoding writes a dozen strings, most of them empty or
    // short, and the call cost as much as the write.
    #[inline(always)]
    fn string(&mut self, tag: u8, v: &str) {
        let v = v.as_bytes();
        if v.is_empty() {
            return;
        }
        // The common case, a string under 128 bytes: one bounds check.
        if v.len() < 0x80 {
            match self.out.get_mut(self.pos..self.pos + 2 + v.len()) {
                Some(dst) => {
                    dst[0] = (tag << 3) | LEN;
                    dst[1] = v.len() as u8;
                    copy_short(&mut dst[2..], v);
                    self.pos += 2 + v.len();
                }
                None => self.ok = false,
            }
            return;
        }
        self.key(tag, LEN);
        self.varint(v.len() as u64);
        self.bytes(v);
    }

    // Always inlined: out of line, the call and the iterator's state cost about
    // 5% of a reused span's encode (callgrind).
    #[inline(always)]
    fn map<'t>(&mut self, tag: u8, m: impl Iterator<Item = (&'t str, &'t str)>) {
        for (k, v) in m {
            let (k, v) = (k.as_bytes(), v.as_bytes());
            let entry = 4 + k.len() + v.len();
            // The common case, an entry under 128 bytes: one bounds check for the
            // whole entry, then fixed-size heads (no check per byte).
            if entry < 0x80 {
                let end = self.pos + 2 + entry;
                let written = self
                    .out
                    .get_mut(self.pos..end)
                    .and_then(|dst| short_entry(dst, tag, entry, k, v));
                match written {
                    Some(()) => self.pos = end,
                    None => self.ok = false,
                }
                continue;
            }
            self.map_entry_long(tag, k, v);
        }
    }

    /// A map entry of 128 bytes or more (length prefixes of more than one byte).
    #[cold]
    #[inline(never)]
    fn map_entry_long(&mut self, tag: u8, k: &[u8], v: &[u8]) {
        self.key(tag, LEN);
        self.varint(entry_len_bytes(k, v) as u64);
        self.key(1, LEN);
        self.varint(k.len() as u64);
        self.bytes(k);
        self.key(2, LEN);
        self.varint(v.len() as u64);
        self.bytes(v);
    }

    /// Writes `s` as a record of field 10: the key, the length, the sample. `false` when
    /// `out` is too small.
    #[inline]
    fn sample_field<S: SampleFields + ?Sized>(&mut self, s: &S) -> bool {
        self.key(10, LEN);
        let prefix_at = self.pos;
        self.byte(0);
        let start = self.pos;
        self.sample(s);
        if !self.ok {
            return false;
        }
        let len = self.pos - start;
        if len < 0x80 {
            self.out[prefix_at] = len as u8;
        } else {
            let extra = varint_len(len as u64) - 1;
            if self.out.len() - self.pos < extra {
                return false;
            }
            self.out.copy_within(start..self.pos, start + extra);
            self.pos = prefix_at;
            self.varint(len as u64);
            self.pos = start + extra + len;
        }
        true
    }

    #[inline]
    fn sample<S: SampleFields + ?Sized>(&mut self, s: &S) {
        self.small_int(1, s.metric());
        self.string(2, s.name());
        self.float(3, s.value());
        self.int(4, s.timestamp());
        self.string(5, s.message());
        self.small_int(6, s.status());
        self.float(7, s.sample_rate());
        self.map(8, s.tags());
        self.string(9, s.unit());
        self.small_int(10, s.scope());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just(String::new()),
            4 => "[a-z]{1,8}",
            4 => ".{0,40}",
            // Long enough for two- and three-byte length prefixes.
            2 => "[x]{128,300}",
            1 => "[x]{16384,16400}",
        ]
    }

    fn int() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(0i64),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1),
            any::<i64>(),
            0i64..300,
        ]
    }

    fn int32() -> impl Strategy<Value = i32> {
        prop_oneof![Just(0i32), Just(-1), Just(i32::MIN), any::<i32>(), 0..12]
    }

    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::NAN),
            Just(f32::INFINITY),
            any::<f32>()
        ]
    }

    fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
        btree_map(text(), text(), 0..4)
    }

    prop_compose! {
        fn sample()(
            metric in int32(), name in text(), value in float(), timestamp in int(),
            message in text(), status in int32(), sample_rate in float(), tags in tags(),
            unit in text(), scope in int32(),
        ) -> SsfSample {
            SsfSample {
                metric, name, value, timestamp, message, status, sample_rate, tags, unit,
                scope,
            }
        }
    }

    prop_compose! {
        fn span()(
            version in int32(), ids in (int(), int(), int()), times in (int(), int(), int()),
            error in any::<bool>(), indicator in any::<bool>(), service in text(),
            name in text(), metrics in prop_oneof![4 => vec(sample(), 0..4), 1 => vec(sample(), 15..20)],
            tags in tags(),
        ) -> SsfSpan {
            SsfSpan {
                version,
                trace_id: ids.0,
                id: ids.1,
                parent_id: ids.2,
                start_timestamp: times.0,
                end_timestamp: times.1,
                root_start_timestamp: times.2,
                error,
                indicator,
                service,
                name,
                metrics,
                tags,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_same_bytes_as_the_reference(span in span(), slack in 0usize..3) {
            let reference = crate::reference::encode_to_vec(&span);
            let mut out = vec![0u8; reference.len() + slack];
            prop_assert_eq!(encode_to_slice(&span, &mut out), Some(reference.len()));
            prop_assert_eq!(&out[..reference.len()], &reference[..]);
            // Nothing beyond 10 bytes past the end is touched.
            let mut marked = vec![0xa5u8; reference.len() + 32];
            prop_assert_eq!(encode_to_slice(&span, &mut marked), Some(reference.len()));
            prop_assert!(marked[reference.len() + 10..].iter().all(|&b| b == 0xa5));
            if !reference.is_empty() {
                // Too small by one byte: refused, whatever the layout.
                let mut short = vec![0u8; reference.len() - 1];
                prop_assert_eq!(encode_to_slice(&span, &mut short), None);
            }
        }
    }

    /// A span whose samples and tags were encoded one by one as they were added.
    struct Prepared<'a> {
        span: &'a SsfSpan,
        samples: Vec<u8>,
        tags: Vec<u8>,
    }

    impl SpanFields for Prepared<'_> {
        type Sample = SsfSample;
        fn version(&self) -> i32 {
            self.span.version
        }
        fn trace_id(&self) -> i64 {
            self.span.trace_id
        }
        fn id(&self) -> i64 {
            self.span.id
        }
        fn parent_id(&self) -> i64 {
            self.span.parent_id
        }
        fn start_timestamp(&self) -> i64 {
            self.span.start_timestamp
        }
        fn end_timestamp(&self) -> i64 {
            self.span.end_timestamp
        }
        fn is_error(&self) -> bool {
            self.span.error
        }
        fn service(&self) -> &str {
            &self.span.service
        }
        fn samples(&self) -> &[SsfSample] {
            &[]
        }
        fn indicator(&self) -> bool {
            self.span.indicator
        }
        fn name(&self) -> &str {
            &self.span.name
        }
        fn root_start_timestamp(&self) -> i64 {
            self.span.root_start_timestamp
        }
        fn encoded_parts(&self) -> Option<EncodedParts<'_>> {
            Some(EncodedParts {
                samples: &self.samples,
                tags: &self.tags,
            })
        }
    }

    fn prepare(span: &SsfSpan, slack: usize) -> Prepared<'_> {
        let mut samples = Vec::new();
        for s in &span.metrics {
            let at = samples.len();
            let len = crate::wire::span_sample_len(s);
            samples.resize(at + len + slack, 0);
            assert_eq!(encode_span_sample(s, &mut samples[at..]), Some(len));
            samples.truncate(at + len);
        }
        let mut tags = Vec::new();
        for (k, v) in &span.tags {
            let at = tags.len();
            let len = span_tag_len(k, v);
            tags.resize(at + len, 0);
            assert_eq!(encode_span_tag(k, v, &mut tags[at..]), Some(len));
        }
        Prepared {
            span,
            samples,
            tags,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Samples and tags encoded one by one as they come, then copied: the same bytes
        /// as the span encoded whole, the same length, and the tags read back.
        #[test]
        fn parts_encoded_beforehand_give_the_same_bytes(span in span(), slack in 0usize..12) {
            let reference = crate::reference::encode_to_vec(&span);
            let prepared = prepare(&span, slack);
            prop_assert_eq!(crate::wire::fields_encoded_len(&prepared), reference.len());
            let mut out = vec![0u8; reference.len() + slack];
            prop_assert_eq!(encode_fields_to_slice(&prepared, &mut out), Some(reference.len()));
            prop_assert_eq!(&out[..reference.len()], &reference[..]);
            let read: Vec<_> = span_tags(&prepared.tags).map(|(k, v, _)| (k, v)).collect();
            let want: Vec<_> = span.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(read, want);
            for (k, v) in &span.tags {
                let range = span_tags(&prepared.tags).range_of(k).unwrap_or_default();
                prop_assert_eq!(range.len(), span_tag_len(k, v));
            }
            // Too small by one byte: refused.
            for (k, v) in &span.tags {
                let mut short = vec![0u8; span_tag_len(k, v) - 1];
                prop_assert_eq!(encode_span_tag(k, v, &mut short), None);
            }
        }

        /// Reading tags from bytes that are not what `encode_span_tag` wrote never panics
        /// and yields only entries that lie within the input.
        #[test]
        fn reading_tags_from_any_bytes_is_safe(bytes in vec(any::<u8>(), 0..64), key in "[a-c]{0,2}") {
            for (_, _, range) in span_tags(&bytes) {
                prop_assert!(range.end <= bytes.len());
            }
            if let Some(range) = span_tags(&bytes).range_of(&key) {
                prop_assert!(range.end <= bytes.len());
            }
        }
    }

    #[test]
    fn tags_read_back_stop_at_a_foreign_byte() {
        let mut buf = vec![0u8; 16];
        let n = encode_span_tag("a", "b", &mut buf).unwrap_or(0);
        buf.truncate(n);
        buf.extend_from_slice(&[0x5a, 0x7f]);
        assert_eq!(span_tags(&buf).count(), 1);
        assert_eq!(span_tags(&buf).range_of("a"), Some(0..n));
        assert_eq!(span_tags(&buf).range_of("b"), None);
    }

    #[test]
    fn long_samples_get_longer_prefixes() {
        // Samples of 127, 128 and 16 384 bytes: one-, two- and three-byte prefixes.
        for name_len in [121, 122, 123, 16_380, 16_381] {
            let span = SsfSpan {
                metrics: vec![SsfSample {
                    name: "x".repeat(name_len),
                    ..Default::default()
                }],
                name: "after".into(),
                ..Default::default()
            };
            let reference = crate::reference::encode_to_vec(&span);
            let mut out = vec![0u8; reference.len()];
            assert_eq!(encode_to_slice(&span, &mut out), Some(reference.len()));
            assert_eq!(out, reference, "name of {name_len}");
        }
    }

    #[test]
    fn varint_words_match_the_byte_loop() {
        let mut values = vec![1u64, 0x7f, 0x80, u64::MAX, 1 << 63, (1 << 63) - 1];
        for bits in 7..64 {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 0x55]);
        }
        for v in values {
            let n = varint_len(v);
            let mut want = [0u8; 10];
            assert_eq!(put_varint(&mut want, 0, v), n);
            let (lo, hi) = varint_words(v, n);
            let mut got = [0u8; 10];
            got[..8].copy_from_slice(&lo.to_le_bytes());
            got[8..].copy_from_slice(&hi.to_le_bytes());
            assert_eq!(got[..n], want[..n], "{v:#x}");
            assert!(got[n..].iter().all(|&b| b == 0), "{v:#x}");
        }
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [(0u64, 1), (127, 1), (128, 2), (16383, 2), (16384, 3)] {
            assert_eq!(varint_len(v), n, "{v}");
        }
        assert_eq!(varint_len(u64::MAX), 10);
        assert_eq!(varint_len(-1i64 as u64), 10);
    }
}
