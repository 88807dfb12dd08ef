//! Encoding spans for the backends, with [`ssf_proto::wire::encode_to_slice`]: the
//! canonical bytes, written straight into the output buffer.
//!
//! Spans are encoded when they are recorded (see [`crate::frame`]); this is for clients
//! built with [`encode_in_backend`](crate::ClientBuilder::encode_in_backend), whose
//! backends encode each span into their write buffer.

use bytes::BytesMut;
use ssf_proto::SsfSpan;
use ssf_proto::wire;

/// Writes the 5-byte stream frame header for a body of `len` bytes into `out[..5]`.
#[inline]
pub(crate) fn write_header(out: &mut [u8], len: usize) {
    out[0] = ssf_codec::VERSION;
    out[1..ssf_codec::HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Encodes `span` into `out`, which holds exactly its [`wire::encoded_len`] bytes.
#[inline]
fn write_exact(span: &SsfSpan, out: &mut [u8]) {
    if wire::encode_to_slice(span, out) != Some(out.len()) {
        // The two encoders disagree about the length: a bug, which must cost speed, not
        // a wrong frame.
        let reference = wire::encode_to_vec(span);
        if reference.len() == out.len() {
            out.copy_from_slice(&reference);
        }
    }
}

/// Appends one stream frame (header and encoding) for `span` to `buf`. `Err(len)` when
/// the encoding is over `max` bytes; nothing is written then.
#[inline]
pub(crate) fn frame(span: &SsfSpan, buf: &mut BytesMut, max: usize) -> Result<(), usize> {
    let len = wire::encoded_len(span);
    if len > max || len > u32::MAX as usize {
        return Err(len);
    }
    let start = buf.len();
    buf.resize(start + ssf_codec::HEADER_LEN + len, 0);
    let out = &mut buf[start..];
    write_header(out, len);
    write_exact(span, &mut out[ssf_codec::HEADER_LEN..]);
    Ok(())
}

/// Appends the bare encoding of `span` (a datagram) to `buf`. `Err(len)` when it is over
/// `max` bytes; nothing is written then.
#[inline]
pub(crate) fn datagram(span: &SsfSpan, buf: &mut Vec<u8>, max: usize) -> Result<(), usize> {
    let len = wire::encoded_len(span);
    if len > max {
        return Err(len);
    }
    let start = buf.len();
    buf.resize(start + len, 0);
    write_exact(span, &mut buf[start..]);
    Ok(())
}

/// Frames `spans` into `buf` as a stream backend does, for the benchmarks.
#[doc(hidden)]
pub fn encode_frames(spans: &[SsfSpan], buf: &mut BytesMut) {
    for span in spans {
        let _ = frame(span, buf, ssf_codec::MAX_FRAME_LENGTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_datagrams_hold_the_reference_bytes() {
        let span = SsfSpan {
            id: 3,
            name: "x".repeat(300),
            ..Default::default()
        };
        let reference = wire::encode_to_vec(&span);
        let mut dgram = vec![7u8];
        datagram(&span, &mut dgram, usize::MAX).unwrap();
        assert_eq!(&dgram[1..], &reference[..]);

        let mut f = BytesMut::from(&b"xy"[..]);
        frame(&span, &mut f, usize::MAX).unwrap();
        let mut expected = b"xy".to_vec();
        expected.push(ssf_codec::VERSION);
        expected.extend_from_slice(&(reference.len() as u32).to_be_bytes());
        expected.extend_from_slice(&reference);
        assert_eq!(&f[..], &expected[..]);
    }

    #[test]
    fn over_the_limit_writes_nothing() {
        let span = SsfSpan {
            name: "x".repeat(100),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        assert_eq!(frame(&span, &mut buf, 50), Err(102));
        assert!(buf.is_empty());
        let mut v = Vec::new();
        assert_eq!(datagram(&span, &mut v, 101), Err(102));
        assert!(v.is_empty());
    }
}
