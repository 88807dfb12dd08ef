//! The backends' span encoder: the bytes of [`ssf_proto::wire::encode`], written faster.
//!
//! The reference encoder computes each sample's length twice (once for the span's
//! length, once more for the sample's own length prefix) and writes through `BufMut`, one
//! capacity check per byte of each varint. Here the lengths are computed once and kept,
//! and the encoding is written into a slice of exactly the right size. The output is
//! byte for byte the reference's (a property test checks it); should the two lengths
//! ever disagree, the reference encoder writes the span instead, so a mistake here can
//! cost speed, never a panic or a wrong frame.

use std::collections::BTreeMap;

use bytes::BytesMut;
use ssf_proto::{SsfSample, SsfSpan};

/// How many samples' lengths [`Encoder`] keeps from measuring to writing; the lengths of
/// later samples (rare) are computed again when written.
const KEPT_LENS: usize = 16;

/// Scratch space for encoding one span, on the stack: nothing is allocated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoder {
    /// The encoded length of each of the first [`KEPT_LENS`] samples of the span being
    /// encoded.
    sample_lens: [usize; KEPT_LENS],
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            sample_lens: [0; KEPT_LENS],
        }
    }
}

impl Encoder {
    /// Appends one stream frame (header and encoding) for `span` to `buf`. `Err(len)`
    /// when the encoding is over `max` bytes; nothing is written then.
    #[inline]
    pub(crate) fn frame(
        &mut self,
        span: &SsfSpan,
        buf: &mut BytesMut,
        max: usize,
    ) -> Result<(), usize> {
        let len = self.measure(span);
        if len > max {
            return Err(len);
        }
        let start = buf.len();
        buf.resize(start + ssf_codec::HEADER_LEN + len, 0);
        let out = &mut buf[start..];
        write_header(out, len);
        if !self.write(span, &mut out[ssf_codec::HEADER_LEN..]) {
            buf.truncate(start + ssf_codec::HEADER_LEN);
            ssf_proto::wire::encode(span, buf);
        }
        Ok(())
    }

    /// Appends the bare encoding of `span` (a datagram) to `buf`. `Err(len)` when it is
    /// over `max` bytes; nothing is written then.
    #[inline]
    pub(crate) fn datagram(
        &mut self,
        span: &SsfSpan,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), usize> {
        let len = self.measure(span);
        if len > max {
            return Err(len);
        }
        let start = buf.len();
        buf.resize(start + len, 0);
        if !self.write(span, &mut buf[start..]) {
            buf.truncate(start);
            ssf_proto::wire::encode(span, buf);
        }
        Ok(())
    }

    /// The span's encoded length; keeps the samples' lengths for [`write`](Self::write).
    pub(crate) fn measure(&mut self, span: &SsfSpan) -> usize {
        let mut n = int_len(i64::from(span.version))
            + int_len(span.trace_id)
            + int_len(span.id)
            + int_len(span.parent_id)
            + int_len(span.start_timestamp)
            + int_len(span.end_timestamp)
            + bool_len(span.error)
            + str_len(&span.service);
        for (i, s) in span.metrics.iter().enumerate() {
            let len = sample_len(s);
            if let Some(kept) = self.sample_lens.get_mut(i) {
                *kept = len;
            }
            n += 1 + varint_len(len as u64) + len;
        }
        n + map_len(&span.tags)
            + bool_len(span.indicator)
            + str_len(&span.name)
            + int_len(span.root_start_timestamp)
    }

    /// Writes the span into `out`, which must be exactly [`measure`](Self::measure)
    /// bytes, measured last. Returns false (having written an unspecified part) if it is
    /// not.
    pub(crate) fn write(&self, span: &SsfSpan, out: &mut [u8]) -> bool {
        let mut w = Writer {
            out,
            pos: 0,
            ok: true,
        };
        w.int(1, i64::from(span.version));
        w.int(2, span.trace_id);
        w.int(3, span.id);
        w.int(4, span.parent_id);
        w.int(5, span.start_timestamp);
        w.int(6, span.end_timestamp);
        w.boolean(7, span.error);
        w.string(8, &span.service);
        for (i, s) in span.metrics.iter().enumerate() {
            let len = match self.sample_lens.get(i) {
                Some(len) => *len,
                None => sample_len(s),
            };
            w.key(10, LEN);
            w.varint(len as u64);
            w.sample(s);
        }
        w.map(11, &span.tags);
        w.boolean(12, span.indicator);
        w.string(13, &span.name);
        w.int(14, span.root_start_timestamp);
        w.ok && w.pos == w.out.len()
    }
}

/// Writes the 5-byte stream frame header for a body of `len` bytes into `out[..5]`.
#[inline]
pub(crate) fn write_header(out: &mut [u8], len: usize) {
    out[0] = ssf_codec::VERSION;
    out[1..ssf_codec::HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Encodes `span` into the front of `out` in one pass, without measuring it first;
/// returns the encoding's length, or `None` (having written an unspecified part of
/// `out`) when `out` is too small. The bytes are [`Encoder::write`]'s.
///
/// A sample's length prefix comes before the sample: one byte is set aside for it, and
/// in the rare case of a sample of 128 bytes or more the sample is moved up to make room
/// for a longer prefix.
#[inline]
pub(crate) fn encode_one_pass(span: &SsfSpan, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        out,
        pos: 0,
        ok: true,
    };
    w.int(1, i64::from(span.version));
    w.int(2, span.trace_id);
    w.int(3, span.id);
    w.int(4, span.parent_id);
    w.int(5, span.start_timestamp);
    w.int(6, span.end_timestamp);
    w.boolean(7, span.error);
    w.string(8, &span.service);
    for s in &span.metrics {
        w.key(10, LEN);
        let prefix_at = w.pos;
        w.byte(0);
        let start = w.pos;
        w.sample(s);
        if !w.ok {
            return None;
        }
        let len = w.pos - start;
        if len < 0x80 {
            w.out[prefix_at] = len as u8;
        } else {
            let extra = varint_len(len as u64) - 1;
            if w.out.len() - w.pos < extra {
                return None;
            }
            w.out.copy_within(start..w.pos, start + extra);
            w.pos = prefix_at;
            w.varint(len as u64);
            w.pos = start + extra + len;
        }
    }
    w.map(11, &span.tags);
    w.boolean(12, span.indicator);
    w.string(13, &span.name);
    w.int(14, span.root_start_timestamp);
    w.ok.then_some(w.pos)
}

const VARINT: u8 = 0;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes 1 byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// An integer field (keys of fields 1 to 15 take one byte).
#[inline]
fn int_len(v: i64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v as u64) }
}

#[inline]
fn bool_len(v: bool) -> usize {
    if v { 2 } else { 0 }
}

#[inline]
fn float_len(v: f32) -> usize {
    if v == 0.0 { 0 } else { 5 }
}

#[inline]
fn str_len(v: &str) -> usize {
    if v.is_empty() {
        0
    } else {
        1 + varint_len(v.len() as u64) + v.len()
    }
}

#[inline]
fn entry_len(k: &str, v: &str) -> usize {
    entry_len_bytes(k.as_bytes(), v.as_bytes())
}

#[inline]
fn entry_len_bytes(k: &[u8], v: &[u8]) -> usize {
    // Key and value are both written, also when empty (as veneur does).
    2 + varint_len(k.len() as u64) + k.len() + varint_len(v.len() as u64) + v.len()
}

#[inline]
fn map_len(m: &BTreeMap<String, String>) -> usize {
    m.iter()
        .map(|(k, v)| {
            let e = entry_len(k, v);
            1 + varint_len(e as u64) + e
        })
        .sum()
}

fn sample_len(s: &SsfSample) -> usize {
    int_len(i64::from(s.metric))
        + str_len(&s.name)
        + float_len(s.value)
        + int_len(s.timestamp)
        + str_len(&s.message)
        + int_len(i64::from(s.status))
        + float_len(s.sample_rate)
        + map_len(&s.tags)
        + str_len(&s.unit)
        + int_len(i64::from(s.scope))
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
                slot.copy_from_slice(b);
                self.pos += b.len();
            }
            None => self.ok = false,
        }
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline]
    fn key(&mut self, tag: u8, wire_type: u8) {
        self.byte((tag << 3) | wire_type);
    }

    #[inline]
    fn int(&mut self, tag: u8, v: i64) {
        if v != 0 {
            self.key(tag, VARINT);
            self.varint(v as u64);
        }
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

    #[inline]
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
                    dst[2..].copy_from_slice(v);
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

    #[inline]
    fn map(&mut self, tag: u8, m: &BTreeMap<String, String>) {
        for (k, v) in m {
            let (k, v) = (k.as_bytes(), v.as_bytes());
            let entry = 4 + k.len() + v.len();
            // The common case, an entry under 128 bytes: one bounds check.
            if entry < 0x80 {
                match self.out.get_mut(self.pos..self.pos + 2 + entry) {
                    Some(dst) => {
                        dst[0] = (tag << 3) | LEN;
                        dst[1] = entry as u8;
                        dst[2] = (1 << 3) | LEN;
                        dst[3] = k.len() as u8;
                        let (kd, rest) = dst[4..].split_at_mut(k.len());
                        kd.copy_from_slice(k);
                        rest[0] = (2 << 3) | LEN;
                        rest[1] = v.len() as u8;
                        rest[2..].copy_from_slice(v);
                        self.pos += 2 + entry;
                    }
                    None => self.ok = false,
                }
                continue;
            }
            self.key(tag, LEN);
            self.varint(entry_len_bytes(k, v) as u64);
            self.key(1, LEN);
            self.varint(k.len() as u64);
            self.bytes(k);
            self.key(2, LEN);
            self.varint(v.len() as u64);
            self.bytes(v);
        }
    }

    fn sample(&mut self, s: &SsfSample) {
        self.int(1, i64::from(s.metric));
        self.string(2, &s.name);
        self.float(3, s.value);
        self.int(4, s.timestamp);
        self.string(5, &s.message);
        self.int(6, i64::from(s.status));
        self.float(7, s.sample_rate);
        self.map(8, &s.tags);
        self.string(9, &s.unit);
        self.int(10, i64::from(s.scope));
    }
}

/// Frames `spans` into `buf` as a stream backend does, for the benchmarks.
#[doc(hidden)]
pub fn encode_frames(spans: &[SsfSpan], buf: &mut BytesMut) {
    let mut enc = Encoder::default();
    for span in spans {
        let _ = enc.frame(span, buf, ssf_codec::MAX_FRAME_LENGTH);
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
        fn the_same_bytes_as_the_reference(span in span()) {
            let reference = ssf_proto::wire::encode_to_vec(&span);
            let mut enc = Encoder::default();

            let mut dgram = vec![7u8];
            enc.datagram(&span, &mut dgram, usize::MAX).unwrap();
            prop_assert_eq!(&dgram[1..], &reference[..]);

            let mut out = vec![0u8; reference.len() + 3];
            prop_assert_eq!(encode_one_pass(&span, &mut out), Some(reference.len()));
            prop_assert_eq!(&out[..reference.len()], &reference[..]);
            if !reference.is_empty() {
                // Too small by one byte: refused, whatever the layout.
                let mut short = vec![0u8; reference.len() - 1];
                prop_assert_eq!(encode_one_pass(&span, &mut short), None);
            }

            let mut frame = BytesMut::from(&b"xy"[..]);
            enc.frame(&span, &mut frame, usize::MAX).unwrap();
            let mut expected = b"xy".to_vec();
            expected.push(ssf_codec::VERSION);
            expected.extend_from_slice(&(reference.len() as u32).to_be_bytes());
            expected.extend_from_slice(&reference);
            prop_assert_eq!(&frame[..], &expected[..]);
        }
    }

    #[test]
    fn over_the_limit_writes_nothing() {
        let span = SsfSpan {
            name: "x".repeat(100),
            ..Default::default()
        };
        let mut enc = Encoder::default();
        let mut buf = BytesMut::new();
        assert_eq!(enc.frame(&span, &mut buf, 50), Err(102));
        assert!(buf.is_empty());
        let mut v = Vec::new();
        assert_eq!(enc.datagram(&span, &mut v, 101), Err(102));
        assert!(v.is_empty());
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
