//! Encoding into a reused buffer allocates nothing.

use std::time::Duration;

use bytes::BytesMut;
use ssf_codec::{DatagramCodec, SsfCodec};
use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use ssf_test_support::alloc::{Counting, allocations};
use tokio_util::codec::Encoder;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn encoding_into_a_reused_buffer_does_not_allocate() {
    let span = SsfSpan {
        trace_id: 1,
        id: 2,
        start_timestamp: 3,
        end_timestamp: 4,
        service: "svc".into(),
        name: "op".into(),
        tags: sample::tags([("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")]),
        metrics: vec![
            sample::count("c", 1.0).with_tag("k", "v"),
            sample::timing("t", Duration::from_millis(3), Duration::from_millis(1)),
        ],
        ..Default::default()
    };
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut dbuf = Vec::with_capacity(16 * 1024);
    let dcodec = DatagramCodec::new();
    let n = allocations(|| {
        for _ in 0..1000 {
            buf.clear();
            codec.encode(&span, &mut buf).unwrap();
            dbuf.clear();
            dcodec.encode(&span, &mut dbuf).unwrap();
        }
    });
    assert_eq!(n, 0);
}
