//! Stream framing: the protocol criteria of the specification (§2.2, §9 "protocol"),
//! input split at every byte boundary, many frames per read, limits and end of input.

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use ssf_codec::{Error, MAX_FRAME_LENGTH, SsfCodec};
use ssf_proto::{SsfSpan, sample, wire};
use tokio_util::codec::{Decoder, Encoder, FramedRead};

fn span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 1,
        id,
        start_timestamp: 9000,
        end_timestamp: 9001,
        name: format!("span-{id}"),
        tags: sample::tags([("k", "v"), ("empty", "")]),
        metrics: vec![sample::count("c", 1.0)],
        ..Default::default()
    }
}

fn frames(spans: &[SsfSpan]) -> BytesMut {
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::new();
    for s in spans {
        codec.encode(s, &mut buf).unwrap();
    }
    buf
}

fn decode_all(bytes: &[u8]) -> Vec<Result<SsfSpan, String>> {
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => out.push(item.map_err(|e| e.to_string())),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(format!("fatal: {e}")));
                return out;
            }
        }
    }
}

#[test]
fn spec_vector_frame() {
    let s = SsfSpan {
        version: 1,
        trace_id: 1,
        id: 2,
        parent_id: 3,
        start_timestamp: 9000,
        end_timestamp: 9001,
        ..Default::default()
    };
    let buf = frames(std::slice::from_ref(&s));
    let expected: Vec<u8> = [0u8, 0, 0, 0, 0x0e]
        .into_iter()
        .chain(wire::encode_to_vec(&s))
        .collect();
    assert_eq!(&buf[..], &expected[..]);
    assert_eq!(hex(&buf[5..]), "080110011802200328a84630a946");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn write_twice_read_twice_then_clean_eof() {
    let s = SsfSpan::default();
    let buf = frames(&[s.clone(), s.clone()]);
    let mut codec = SsfCodec::new();
    let mut b = buf.clone();
    assert_eq!(codec.decode_eof(&mut b).unwrap().unwrap().unwrap(), s);
    // A zero-length frame at the very end of the buffer still decodes (veneur's
    // in-memory reader treats it as EOF; we do not).
    assert_eq!(codec.decode_eof(&mut b).unwrap().unwrap().unwrap(), s);
    assert!(codec.decode_eof(&mut b).unwrap().is_none());
    assert!(codec.decode_eof(&mut b).unwrap().is_none());
}

#[test]
fn bad_version_is_framing_error() {
    let mut codec = SsfCodec::new();
    let err = codec
        .decode(&mut BytesMut::from(&[1u8, 0][..]))
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion(1)));
    assert!(err.is_framing());
    assert_eq!(
        err.to_string(),
        "ssf framing error: unexpected version number 1"
    );
}

#[test]
fn corrupted_length_is_framing_error() {
    let mut buf = frames(&[span(1)]);
    buf[1] = 0xff;
    let mut codec = SsfCodec::new();
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(err.is_framing());
    assert!(matches!(err, Error::FrameTooLarge { .. }));
    // Nothing was reserved for the announced 4 GiB.
    assert!(buf.capacity() < 1024 * 1024);
}

#[test]
fn corrupted_body_is_not_framing_error_and_next_frame_decodes() {
    let mut buf = frames(&[span(1), span(2)]);
    buf[7] = 0xff;
    let out = decode_all(&buf);
    assert_eq!(out.len(), 2);
    let first = out[0].as_ref().unwrap_err();
    assert!(!first.starts_with("fatal"), "{first}");
    assert_eq!(out[1].as_ref().unwrap(), &span(2));
}

#[test]
fn io_and_eof_errors_are_framing_other_errors_are_not() {
    assert!(Error::Io(std::io::Error::other("x")).is_framing());
    assert!(Error::UnexpectedEof { buffered: 3 }.is_framing());
    assert!(!Error::EmptyDatagram.is_framing());
    let decode = ssf_proto::wire::decode(&[0x1a, 0x01, 0x01][..]).unwrap_err();
    assert!(!Error::Decode(decode).is_framing());
}

#[test]
fn eof_inside_header_or_body_is_framing_error() {
    let buf = frames(&[span(1)]);
    for cut in 1..buf.len() {
        let out = decode_all(&buf[..cut]);
        assert_eq!(out.len(), 1, "cut {cut}");
        assert!(
            out[0]
                .as_ref()
                .unwrap_err()
                .starts_with("fatal: ssf framing i/o error"),
            "cut {cut}"
        );
    }
}

#[test]
fn length_limit_is_inclusive_and_configurable() {
    let mut codec = SsfCodec::new();
    let mut ok = BytesMut::new();
    ok.put_u8(0);
    ok.put_u32(MAX_FRAME_LENGTH as u32);
    assert!(codec.decode(&mut ok).unwrap().is_none());
    let mut too_big = BytesMut::new();
    too_big.put_u8(0);
    too_big.put_u32(MAX_FRAME_LENGTH as u32 + 1);
    assert!(
        matches!(codec.decode(&mut too_big), Err(Error::FrameTooLarge { len, .. }) if len == MAX_FRAME_LENGTH as u64 + 1)
    );

    let mut small = SsfCodec::with_max_frame_length(10);
    let mut buf = frames(&[span(1)]);
    assert!(matches!(
        small.decode(&mut buf),
        Err(Error::FrameTooLarge { max: 10, .. })
    ));
    assert_eq!(
        SsfCodec::with_max_frame_length(usize::MAX).max_frame_length(),
        MAX_FRAME_LENGTH
    );
}

#[test]
fn announced_length_does_not_reserve_the_whole_frame() {
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(MAX_FRAME_LENGTH as u32);
    buf.put_slice(&[0x18, 0x01]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() <= 256 * 1024, "{}", buf.capacity());
}

#[test]
fn encoder_refuses_oversize_without_writing() {
    let mut codec = SsfCodec::with_max_frame_length(16);
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = codec.encode(&span(1), &mut buf).unwrap_err();
    assert!(matches!(err, Error::FrameTooLarge { max: 16, .. }));
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn split_at_every_byte_boundary() {
    let spans: Vec<SsfSpan> = (1..=3).map(span).collect();
    let all = frames(&spans);
    for cut in 0..=all.len() {
        let mut codec = SsfCodec::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in [&all[..cut], &all[cut..]] {
            buf.extend_from_slice(part);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                got.push(item.unwrap());
            }
        }
        assert_eq!(got, spans, "cut {cut}");
    }
}

#[test]
fn byte_at_a_time() {
    let spans: Vec<SsfSpan> = (1..=5).map(span).collect();
    let all = frames(&spans);
    let mut codec = SsfCodec::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in all.iter() {
        buf.put_u8(*b);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            got.push(item.unwrap());
        }
        // Never more buffered than one frame.
        assert!(buf.len() <= 5 + wire::encoded_len(&spans[0]) + 8);
    }
    assert_eq!(got, spans);
}

#[tokio::test]
async fn many_frames_in_one_read_through_framed_read() {
    let spans: Vec<SsfSpan> = (1..=500).map(span).collect();
    let all = frames(&spans).freeze();
    let got: Vec<SsfSpan> = FramedRead::new(&all[..], SsfCodec::new())
        .map(|r| r.unwrap().unwrap())
        .collect()
        .await;
    assert_eq!(got, spans);
}

#[tokio::test]
async fn scripted_io_split_reads() {
    let all = frames(&[span(1), span(2)]);
    let mock = tokio_test::io::Builder::new()
        .read(&all[..3])
        .read(&all[3..20])
        .read(&all[20..])
        .build();
    let got: Vec<SsfSpan> = FramedRead::new(mock, SsfCodec::new())
        .map(|r| r.unwrap().unwrap())
        .collect()
        .await;
    assert_eq!(got, vec![span(1), span(2)]);
}

#[tokio::test]
async fn io_error_is_framing_error() {
    let mock = tokio_test::io::Builder::new()
        .read(&[0, 0])
        .read_error(std::io::Error::other("reset"))
        .build();
    let mut r = FramedRead::new(mock, SsfCodec::new());
    let err = r.next().await.unwrap().unwrap_err();
    assert!(err.is_framing());
}
