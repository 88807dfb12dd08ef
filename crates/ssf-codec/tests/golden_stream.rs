//! veneur's own framed stream (testdata/veneur-golden/stream.bin) decodes, after ingest
//! normalisation, to the spans veneur decoded; canonical frames re-encode to the same bytes.

use std::path::PathBuf;

use bytes::BytesMut;
use ssf_codec::{DatagramCodec, SsfCodec};
use ssf_proto::{SsfSpan, json, normalize};
use tokio_util::codec::Encoder;

fn golden(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/veneur-golden")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expected() -> Vec<SsfSpan> {
    String::from_utf8(golden("spans.jsonl"))
        .unwrap()
        .lines()
        .map(|l| json::from_str(l).unwrap())
        .collect()
}

#[test]
fn stream_decodes_to_veneur_spans() {
    let want = expected();
    let stream = golden("stream.bin");
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::from(&stream[..]);
    let mut got = Vec::new();
    let mut canonical_frames = 0;
    while !buf.is_empty() {
        let before = buf.clone();
        let body = codec.decode_frame(&mut buf).unwrap().expect("whole frame");
        let frame_len = before.len() - buf.len();
        let raw = ssf_proto::wire::decode(body.freeze()).unwrap();
        if raw.tags.len() <= 1 && raw.metrics.iter().all(|m| m.tags.len() <= 1) {
            let mut ours = BytesMut::new();
            codec.encode(&raw, &mut ours).unwrap();
            assert_eq!(&ours[..], &before[..frame_len], "frame {}", got.len());
            canonical_frames += 1;
        }
        let mut span = raw;
        normalize(&mut span);
        got.push(span);
    }
    assert_eq!(got.len(), 203);
    assert_eq!(got, want);
    assert!(canonical_frames >= 10);
}

#[test]
fn datagrams_decode_and_empty_one_is_rejected() {
    let want = expected();
    let text = String::from_utf8(golden("datagrams.hex")).unwrap();
    let codec = DatagramCodec::with_max_size(65_507);
    let mut empties = 0;
    for (i, line) in text.lines().enumerate() {
        let bytes: Vec<u8> = (0..line.len())
            .step_by(2)
            .map(|j| u8::from_str_radix(&line[j..j + 2], 16).unwrap())
            .collect();
        match codec.decode(&bytes) {
            Ok(mut span) => {
                normalize(&mut span);
                assert_eq!(span, want[i], "datagram {i}");
            }
            Err(ssf_codec::Error::EmptyDatagram) => {
                empties += 1;
                assert_eq!(want[i], SsfSpan::default());
            }
            Err(e) => panic!("datagram {i}: {e}"),
        }
    }
    assert_eq!(empties, 1);
}
