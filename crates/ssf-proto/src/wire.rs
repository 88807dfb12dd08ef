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

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use crate::{SsfSample, SsfSpan};

pub use crate::slice::encode_to_slice;
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
    let mut n = 0;
    n += int32_len(1, span.version);
    n += int64_len(2, span.trace_id);
    n += int64_len(3, span.id);
    n += int64_len(4, span.parent_id);
    n += int64_len(5, span.start_timestamp);
    n += int64_len(6, span.end_timestamp);
    n += bool_len(7, span.error);
    n += str_len(8, &span.service);
    for s in &span.metrics {
        n += 1 + delimited_len(sample_len(s));
    }
    n += map_len(11, &span.tags);
    n += bool_len(12, span.indicator);
    n += str_len(13, &span.name);
    n += int64_len(14, span.root_start_timestamp);
    n
}

/// Appends the canonical encoding of `span` to `buf`.
///
/// `buf` must have room for [`encoded_len`] bytes (a growable buffer such as `Vec<u8>` or
/// `BytesMut` always does).
pub fn encode(span: &SsfSpan, buf: &mut impl BufMut) {
    put_int32(buf, 1, span.version);
    put_int64(buf, 2, span.trace_id);
    put_int64(buf, 3, span.id);
    put_int64(buf, 4, span.parent_id);
    put_int64(buf, 5, span.start_timestamp);
    put_int64(buf, 6, span.end_timestamp);
    put_bool(buf, 7, span.error);
    put_str(buf, 8, &span.service);
    for s in &span.metrics {
        encode_key(10, WireType::LengthDelimited, buf);
        encode_varint(sample_len(s) as u64, buf);
        encode_sample(s, buf);
    }
    put_map(buf, 11, &span.tags);
    put_bool(buf, 12, span.indicator);
    put_str(buf, 13, &span.name);
    put_int64(buf, 14, span.root_start_timestamp);
}

/// The canonical encoding of `span` in a new vector of exactly the right size.
pub fn encode_to_vec(span: &SsfSpan) -> Vec<u8> {
    let mut v = Vec::with_capacity(encoded_len(span));
    encode(span, &mut v);
    v
}

/// The length of the canonical encoding of a bare sample.
pub fn sample_len(s: &SsfSample) -> usize {
    int32_len(1, s.metric)
        + str_len(2, &s.name)
        + float_len(3, s.value)
        + int64_len(4, s.timestamp)
        + str_len(5, &s.message)
        + int32_len(6, s.status)
        + float_len(7, s.sample_rate)
        + map_len(8, &s.tags)
        + str_len(9, &s.unit)
        + int32_len(10, s.scope)
}

/// Appends the canonical encoding of a bare sample (as an `SSFSample` message) to `buf`.
pub fn encode_sample(s: &SsfSample, buf: &mut impl BufMut) {
    put_int32(buf, 1, s.metric);
    put_str(buf, 2, &s.name);
    put_float(buf, 3, s.value);
    put_int64(buf, 4, s.timestamp);
    put_str(buf, 5, &s.message);
    put_int32(buf, 6, s.status);
    put_float(buf, 7, s.sample_rate);
    put_map(buf, 8, &s.tags);
    put_str(buf, 9, &s.unit);
    put_int32(buf, 10, s.scope);
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

fn map_len(tag: u32, m: &BTreeMap<String, String>) -> usize {
    m.iter()
        .map(|(k, v)| key_len(tag) + delimited_len(entry_len(k, v)))
        .sum()
}

#[inline]
fn put_int64(buf: &mut impl BufMut, tag: u32, v: i64) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v as u64, buf);
    }
}

#[inline]
fn put_int32(buf: &mut impl BufMut, tag: u32, v: i32) {
    put_int64(buf, tag, i64::from(v));
}

#[inline]
fn put_bool(buf: &mut impl BufMut, tag: u32, v: bool) {
    if v {
        encode_key(tag, WireType::Varint, buf);
        buf.put_u8(1);
    }
}

#[inline]
fn put_float(buf: &mut impl BufMut, tag: u32, v: f32) {
    if v != 0.0 {
        encode_key(tag, WireType::ThirtyTwoBit, buf);
        buf.put_f32_le(v);
    }
}

#[inline]
fn put_str(buf: &mut impl BufMut, tag: u32, v: &str) {
    if !v.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(v.len() as u64, buf);
        buf.put_slice(v.as_bytes());
    }
}

fn put_map(buf: &mut impl BufMut, tag: u32, m: &BTreeMap<String, String>) {
    for (k, v) in m {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(entry_len(k, v) as u64, buf);
        buf.put_u8(0x0a);
        encode_varint(k.len() as u64, buf);
        buf.put_slice(k.as_bytes());
        buf.put_u8(0x12);
        encode_varint(v.len() as u64, buf);
        buf.put_slice(v.as_bytes());
    }
}
