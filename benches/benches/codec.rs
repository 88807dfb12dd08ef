//! Encoding and decoding a typical span: name, service, 5 tags, 2 samples.
//!
//! `cargo bench -p ssf-benches --bench codec`
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ssf_codec::{DatagramCodec, SsfCodec};
use ssf_proto::prost::Message;
use ssf_proto::{SsfSpan, wire};
use tokio_util::codec::{Decoder, Encoder};

fn typical() -> SsfSpan {
    // The typical span of the client's benchmarks, with full-size IDs.
    SsfSpan {
        trace_id: 4_611_686_018_427_387_903,
        id: 2_305_843_009_213_693_951,
        parent_id: 1_152_921_504_606_846_975,
        ..trace_client::testing::typical_span(0)
    }
}

fn bench(c: &mut Criterion) {
    let span = typical();
    let len = wire::encoded_len(&span);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));

    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut codec = SsfCodec::new();
    g.bench_function("encode_frame_reused_buffer", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&span), &mut buf).unwrap();
            black_box(buf.len())
        })
    });

    let mut dbuf = Vec::with_capacity(16 * 1024);
    let dcodec = DatagramCodec::new();
    g.bench_function("encode_datagram_reused_buffer", |b| {
        b.iter(|| {
            dbuf.clear();
            dcodec.encode(black_box(&span), &mut dbuf).unwrap();
            black_box(dbuf.len())
        })
    });

    // The one-pass encoder alone, into memory already there (what a network client
    // does with each span it records, into a buffer on the stack).
    let mut slice = [0u8; 512];
    g.bench_function("encode_to_slice_one_pass", |b| {
        b.iter(|| black_box(wire::encode_to_slice(black_box(&span), &mut slice)))
    });

    // The reference encoder, through `BufMut`.
    let mut rbuf = Vec::with_capacity(16 * 1024);
    g.bench_function("encode_reference", |b| {
        b.iter(|| {
            rbuf.clear();
            wire::encode(black_box(&span), &mut rbuf);
            black_box(rbuf.len())
        })
    });

    let mut pbuf = Vec::with_capacity(16 * 1024);
    g.bench_function("baseline_prost_encode", |b| {
        b.iter(|| {
            pbuf.clear();
            black_box(&span).encode(&mut pbuf).unwrap();
            black_box(pbuf.len())
        })
    });

    let mut one = BytesMut::new();
    codec.encode(&span, &mut one).unwrap();
    let one = one.freeze();
    g.bench_function("decode_frame", |b| {
        b.iter(|| {
            let mut src = BytesMut::from(&one[..]);
            black_box(codec.decode(&mut src).unwrap().unwrap().unwrap())
        })
    });

    let body = wire::encode_to_vec(&span);
    g.bench_function("decode_datagram", |b| {
        b.iter(|| black_box(dcodec.decode(black_box(&body)).unwrap()))
    });
    g.finish();
    eprintln!("typical span: {len} bytes encoded");
}

criterion_group!(benches, bench);
criterion_main!(benches);
