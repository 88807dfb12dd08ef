//! The properties each fuzz target checks, shared by the fuzz targets and by the regression
//! test `crates/ssf-codec/tests/fuzz_regressions.rs`, which runs every corpus file through
//! them in a normal `cargo test`.
//!
//! Every check takes arbitrary bytes and panics only when a property fails.
#![allow(dead_code)]

use bytes::BytesMut;
use ssf_codec::{Address, DatagramCodec, HEADER_LEN, SsfCodec};
use ssf_proto::{SsfSpan, wire};
use tokio_util::codec::Decoder;

/// The frame length limit the stream check decodes with: small, so that the fuzzer
/// reaches the limit easily.
pub(crate) const STREAM_MAX_FRAME: usize = 1024;

/// `decode_stream`: the first byte is a chunk size (at least 1), the rest is a byte stream
/// fed to [`SsfCodec`] in chunks of that size. The decoder never panics, never buffers more
/// than one frame beyond the chunk just added, reports only framing errors as fatal, and
/// every span it yields re-encodes to a frame that decodes to the same bytes.
pub(crate) fn decode_stream(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut codec = SsfCodec::with_max_frame_length(STREAM_MAX_FRAME);
    let mut buf = BytesMut::new();
    let chunk = usize::from(split).max(1);
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Ok(span))) => reencodes(&span),
                Ok(Some(Err(_corrupt_body))) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(e.is_framing(), "a fatal error that is not framing: {e}");
                    return;
                }
            }
        }
        assert!(
            buf.len() <= HEADER_LEN + STREAM_MAX_FRAME + chunk,
            "{} bytes buffered",
            buf.len()
        );
    }
    let _ = codec.decode_eof(&mut buf);
}

/// A decoded span's canonical encoding decodes again and re-encodes to the same bytes
/// (bytes rather than values, so that NaN samples compare equal).
fn reencodes(span: &SsfSpan) {
    let bytes = wire::encode_to_vec(span);
    assert_eq!(bytes.len(), wire::encoded_len(span));
    // The one-pass encoder writes the same bytes, and refuses a slice one byte short.
    let mut out = vec![0u8; bytes.len() + 1];
    assert_eq!(wire::encode_to_slice(span, &mut out), Some(bytes.len()));
    assert_eq!(&out[..bytes.len()], &bytes[..]);
    if !bytes.is_empty() {
        assert_eq!(
            wire::encode_to_slice(span, &mut out[..bytes.len() - 1]),
            None
        );
    }
    let again = wire::decode(&bytes[..]).expect("our own encoding decodes");
    assert_eq!(wire::encode_to_vec(&again), bytes);
    // An independent encoder: prost writes the same bytes, except that it leaves an
    // empty key or value out of a map entry (veneur, and we, write both).
    if no_empty_map_parts(span) {
        use ssf_proto::prost::Message as _;
        assert_eq!(span.encode_to_vec(), bytes, "prost disagrees");
    }
    // Framed through the codec's slice framer: the header, then the same bytes.
    let mut frame = vec![0u8; HEADER_LEN + bytes.len()];
    assert_eq!(
        ssf_codec::encode_frame_to_slice(span, &mut frame),
        Some(frame.len())
    );
    assert_eq!(frame[..HEADER_LEN], ssf_codec::frame_header(bytes.len()));
    assert_eq!(&frame[HEADER_LEN..], &bytes[..]);
}

/// Whether every map entry of the span (its tags, its samples' tags) has a non-empty key
/// and value.
fn no_empty_map_parts(span: &SsfSpan) -> bool {
    let full = |m: &std::collections::BTreeMap<String, String>| {
        m.iter().all(|(k, v)| !k.is_empty() && !v.is_empty())
    };
    full(&span.tags) && span.metrics.iter().all(|s| full(&s.tags))
}

/// `roundtrip`: whatever decodes as a span re-encodes canonically and decodes back to the
/// same span.
pub(crate) fn roundtrip(data: &[u8]) {
    if let Ok(span) = wire::decode(data) {
        reencodes(&span);
        // Framed, it reads back through the stream decoder too (when within the limit).
        let mut framed = BytesMut::new();
        if SsfCodec::new().encode_frame(&span, &mut framed).is_ok() {
            let body = SsfCodec::new()
                .decode_frame(&mut framed)
                .expect("our own frame decodes")
                .expect("a whole frame");
            assert!(framed.is_empty());
            assert_eq!(&body[..], &wire::encode_to_vec(&span)[..]);
        }
    }
}

/// `datagram`: the datagram parser never panics, rejects empty and over-long datagrams,
/// and what it accepts survives normalisation and re-encoding.
pub(crate) fn datagram(data: &[u8]) {
    let codec = DatagramCodec::new();
    match codec.decode(data) {
        Ok(mut span) => {
            assert!(!data.is_empty() && data.len() <= codec.max_size());
            reencodes(&span);
            ssf_proto::normalize(&mut span);
            reencodes(&span);
            let mut out = Vec::new();
            match codec.encode(&span, &mut out) {
                Ok(()) => assert_eq!(out, wire::encode_to_vec(&span)),
                Err(e) => {
                    assert!(wire::encoded_len(&span) > codec.max_size(), "{e}");
                    assert!(out.is_empty());
                }
            }
        }
        Err(ssf_codec::Error::EmptyDatagram) => assert!(data.is_empty()),
        Err(ssf_codec::Error::DatagramTooLarge { len, max }) => {
            assert_eq!(len, data.len());
            assert!(len > max);
        }
        Err(_) => {}
    }
}

/// `address`: address parsing never panics, and what parses prints back to an equal
/// address.
pub(crate) fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = text.parse::<Address>() {
        let printed = addr.to_string();
        let again: Address = printed.parse().expect("a printed address parses");
        assert_eq!(again, addr);
        assert_eq!(again.to_string(), printed);
        let _ = (
            addr.network(),
            addr.host_port(),
            addr.unix_path(),
            addr.abstract_name(),
        );
    }
}
