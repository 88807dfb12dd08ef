//! A second, independent encoder of the canonical bytes, through `BufMut` with every
//! length measured first: the oracle the one-pass encoder is tested against. Test code
//! only.

use std::collections::BTreeMap;

use bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::wire::{encoded_len, sample_len};
use crate::{SsfSample, SsfSpan};

/// The reference bytes of `span`.
pub(crate) fn encode_to_vec(span: &SsfSpan) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_len(span));
    put_int32(&mut buf, 1, span.version);
    put_int64(&mut buf, 2, span.trace_id);
    put_int64(&mut buf, 3, span.id);
    put_int64(&mut buf, 4, span.parent_id);
    put_int64(&mut buf, 5, span.start_timestamp);
    put_int64(&mut buf, 6, span.end_timestamp);
    put_bool(&mut buf, 7, span.error);
    put_str(&mut buf, 8, &span.service);
    for s in &span.metrics {
        encode_key(10, WireType::LengthDelimited, &mut buf);
        encode_varint(sample_len(s) as u64, &mut buf);
        put_sample(s, &mut buf);
    }
    put_map(&mut buf, 11, &span.tags);
    put_bool(&mut buf, 12, span.indicator);
    put_str(&mut buf, 13, &span.name);
    put_int64(&mut buf, 14, span.root_start_timestamp);
    buf
}

fn put_sample(s: &SsfSample, buf: &mut impl BufMut) {
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

fn entry_len(k: &str, v: &str) -> usize {
    use prost::encoding::encoded_len_varint;
    2 + encoded_len_varint(k.len() as u64) + k.len() + encoded_len_varint(v.len() as u64) + v.len()
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
