//! Property tests: encode → decode through the framing, with arbitrary splits, and
//! arbitrary bytes never panic nor buffer past one frame.

use bytes::BytesMut;
use proptest::prelude::*;
use ssf_codec::{DatagramCodec, HEADER_LEN, SsfCodec};
use ssf_proto::SsfSpan;
use tokio_util::codec::{Decoder, Encoder};

fn span() -> impl Strategy<Value = SsfSpan> {
    (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        ".{0,16}",
        ".{0,16}",
        prop::collection::btree_map(".{0,6}", ".{0,6}", 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(trace_id, id, parent_id, name, service, tags, error)| SsfSpan {
                trace_id,
                id,
                parent_id,
                name,
                service,
                tags,
                error,
                ..Default::default()
            },
        )
}

proptest! {
    #[test]
    fn frames_round_trip_with_arbitrary_splits(spans in prop::collection::vec(span(), 0..8), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut codec = SsfCodec::new();
        let mut all = BytesMut::new();
        for s in &spans {
            codec.encode(s, &mut all).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(all.len() + 1)).collect();
        points.push(0);
        points.push(all.len());
        points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&all[w[0]..w[1]]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                got.push(item.unwrap());
            }
        }
        prop_assert_eq!(got, spans);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overbuffer(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16), max in 0usize..256) {
        let mut codec = SsfCodec::with_max_frame_length(max);
        let mut buf = BytesMut::new();
        'outer: for c in chunks {
            buf.extend_from_slice(&c);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => { prop_assert!(e.is_framing()); break 'outer; }
                }
            }
            // What is buffered is at most one unfinished frame (plus this chunk's bytes).
            prop_assert!(buf.len() < HEADER_LEN + max + 64);
            prop_assert!(buf.capacity() <= (HEADER_LEN + max + 64).max(buf.len()) * 2 + 64);
        }
    }

    #[test]
    fn datagrams_round_trip(s in span()) {
        let codec = DatagramCodec::with_max_size(65_507);
        let mut buf = Vec::new();
        codec.encode(&s, &mut buf).unwrap();
        if buf.is_empty() {
            prop_assert!(codec.decode(&buf).is_err());
        } else {
            prop_assert_eq!(codec.decode(&buf).unwrap(), s);
        }
    }
}

#[test]
fn oversize_datagram_is_refused_not_truncated() {
    let codec = DatagramCodec::with_max_size(8);
    let s = SsfSpan {
        name: "a long enough name".into(),
        ..Default::default()
    };
    let mut buf = Vec::new();
    let err = codec.encode(&s, &mut buf).unwrap_err();
    assert!(matches!(
        err,
        ssf_codec::Error::DatagramTooLarge { max: 8, .. }
    ));
    assert!(buf.is_empty());
    assert!(codec.decode(&[0u8; 9]).is_err());
}
