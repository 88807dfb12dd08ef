//! The canonical SSF encoding: byte-for-byte what veneur's Go code writes.
//!
//! Fields are written in field-number order and fields holding their default value are
//! omitted, as every proto3 encoder does. Two details make this differ from
//! [`prost::Message::encode`]:
//!
//! * each map entry is written with both its key and its value, even when one is empty
//!   (`{"e": ""}` is `5a 05 0a 01 65 12 00`), as veneur writes them;
//! * map entries are written in key order, so the same span always encodes to the same
//!   bytes (veneur's order is random; every decoder accepts any order).
//!
//! Decoding is prost's: unknown fields (including the reserved field 9) are skipped, the
//! last occurrence of a scalar wins, repeated map keys keep the last value. Strings must be
//! UTF-8 (veneur's decoder accepts invalid UTF-8 verbatim; a span carrying it is a decode
//! error here).
//!
//! ```
//! use ssf_proto::{wire, SsfSpan};
//! let span = SsfSpan { id: 1, start_timestamp: 1_700_000_000_000_000_000, ..Default::default() };
//! let bytes = wire::encode_to_vec(&span);
//! assert_eq!(bytes, [0x18, 0x01, 0x28, 0x80, 0x80, 0xa8, 0xb1, 0xe3, 0x9f, 0xe7, 0xcb, 0x17]);
//! assert_eq!(wire::encoded_len(&span), bytes.len());
//! ```

use bytes::{Buf, BufMut};
use prost::Message;
use prost::encoding::{encoded_len_varint, key_len};

use crate::{SsfSample, SsfSpan};

pub use crate::slice::{
    EncodedParts, SampleFields, SpanFields, SpanTags, encode_fields_to_slice, encode_span_sample,
    encode_span_tag, encode_to_slice, span_tag_len, span_tags,
};
pub use prost::DecodeError;

/// Decodes a span from its bare protobuf encoding (no normalisation; see
/// [`crate::normalize`]). An empty input is the all-default span.
///
/// # Errors
///
/// [`DecodeError`] when the bytes are not a valid `SSFSpan`.
pub fn decode(buf: impl Buf) -> Result<SsfSpan, DecodeError> {
    SsfSpan::decode(buf)
}

/// The length of the canonical encoding of `span`.
pub fn encoded_len(span: &SsfSpan) -> usize {
    fields_encoded_len(span)
}

/// [`encoded_len`] for any span type that shows its fields through [`SpanFields`]: the
/// length [`encode_fields_to_slice`] writes.
pub fn fields_encoded_len<S: SpanFields + ?Sized>(span: &S) -> usize {
    let mut n = 0;
    n += int32_len(1, span.version());
    n += int64_len(2, span.trace_id());
    n += int64_len(3, span.id());
    n += int64_len(4, span.parent_id());
    n += int64_len(5, span.start_timestamp());
    n += int64_len(6, span.end_timestamp());
    n += bool_len(7, span.is_error());
    n += str_len(8, span.service());
    match span.encoded_parts() {
        Some(parts) => n += parts.samples.len() + parts.tags.len(),
        None => {
            for s in span.samples() {
                n += 1 + delimited_len(fields_sample_len(s));
            }
            n += map_len(11, span.tags());
        }
    }
    n += bool_len(12, span.indicator());
    n += str_len(13, span.name());
    n += int64_len(14, span.root_start_timestamp());
    n
}

/// Appends the canonical encoding of `span` to `buf`, written by the one-pass encoder
/// ([`encode_to_slice`]).
pub fn encode(span: &SsfSpan, buf: &mut impl BufMut) {
    // A typical span fits on the stack: no measuring, no allocation.
    let mut stack = [0u8; 512];
    match encode_to_slice(span, &mut stack) {
        Some(n) => buf.put_slice(&stack[..n]),
        None => buf.put_slice(&encode_to_vec(span)),
    }
}

/// The canonical encoding of `span` in a new vector of exactly the right size.
pub fn encode_to_vec(span: &SsfSpan) -> Vec<u8> {
    let mut v = vec![0; encoded_len(span)];
    loop {
        match encode_to_slice(span, &mut v) {
            Some(n) => {
                v.truncate(n);
                return v;
            }
            // `encoded_len` is exact (the tests hold it to the encoder); should it ever
            // fall short, a larger buffer costs time, not a wrong encoding.
            None => v.resize(v.len() * 2 + 16, 0),
        }
    }
}

/// The length of the canonical encoding of a bare sample.
pub fn sample_len(s: &SsfSample) -> usize {
    fields_sample_len(s)
}

/// The length [`encode_span_sample`] writes for `sample` (one record of a span's field
/// 10).
pub fn span_sample_len<S: SampleFields + ?Sized>(sample: &S) -> usize {
    1 + delimited_len(fields_sample_len(sample))
}

fn fields_sample_len<S: SampleFields + ?Sized>(s: &S) -> usize {
    int32_len(1, s.metric())
        + str_len(2, s.name())
        + float_len(3, s.value())
        + int64_len(4, s.timestamp())
        + str_len(5, s.message())
        + int32_len(6, s.status())
        + float_len(7, s.sample_rate())
        + map_len(8, s.tags())
        + str_len(9, s.unit())
        + int32_len(10, s.scope())
}

/// Appends the canonical encoding of a bare sample (as an `SSFSample` message) to `buf`.
pub fn encode_sample(s: &SsfSample, buf: &mut impl BufMut) {
    let mut v = vec![0; sample_len(s)];
    let n = crate::slice::encode_sample_to_slice(s, &mut v).unwrap_or(0);
    buf.put_slice(&v[..n]);
}

#[inline]
fn delimited_len(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

#[inline]
fn int64_len(tag: u32, v: i64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v as u64)
    }
}

#[inline]
fn int32_len(tag: u32, v: i32) -> usize {
    // proto3 int32 is sign-extended to 64 bits on the wire.
    int64_len(tag, i64::from(v))
}

#[inline]
fn bool_len(tag: u32, v: bool) -> usize {
    if v { key_len(tag) + 1 } else { 0 }
}

#[inline]
fn float_len(tag: u32, v: f32) -> usize {
    if v == 0.0 { 0 } else { key_len(tag) + 4 }
}

#[inline]
fn str_len(tag: u32, v: &str) -> usize {
    if v.is_empty() {
        0
    } else {
        key_len(tag) + delimited_len(v.len())
    }
}

#[inline]
fn entry_len(k: &str, v: &str) -> usize {
    2 + delimited_len(k.len()) + delimited_len(v.len())
}

fn map_len<'t>(tag: u32, m: impl Iterator<Item = (&'t str, &'t str)>) -> usize {
    m.map(|(k, v)| key_len(tag) + delimited_len(entry_len(k, v)))
        .sum()
}
