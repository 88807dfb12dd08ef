//! Spans encoded when they are recorded: what network clients put in their queue.
//!
//! A network client encodes each span on the recording task, as one stream frame (the
//! 5-byte header, then the protobuf encoding; a datagram is the same bytes without the
//! header), and queues the bytes instead of the span. The span is freed where it was
//! made, while it is still in that core's cache, and the backends only copy bytes to
//! their sockets. A frame of up to [`INLINE`] bytes is encoded into a buffer on the
//! recording task's stack and copied into the queue's slot (and later out of it) once;
//! a larger one is put on the heap.

use bytes::BytesMut;
use ssf_proto::SsfSpan;
use ssf_proto::wire;

use crate::encode::{self, write_header};
use crate::message::{Message, ReceiptSender};

/// The largest frame (header included) held in a queue slot rather than on the heap. A
/// typical span (a name, a service, five tags, two samples) is about 280.
pub(crate) const INLINE: usize = 360;

/// A span encoded as a stream frame.
#[derive(Debug)]
pub(crate) enum Encoded {
    /// In the first this many bytes of the buffer given to [`encode`].
    Inline(usize),
    /// Too large for a slot: on the heap.
    Heap(Box<[u8]>),
}

impl Encoded {
    /// The queue message carrying this frame, with `receipt`, and the length of the
    /// part of the encoding buffer that goes into the queue slot (0 for a heap frame).
    #[inline]
    pub(crate) fn into_message(self, receipt: Option<ReceiptSender>) -> (Message, usize) {
        match self {
            Encoded::Inline(len) => (
                Message::Frame {
                    heap: None,
                    receipt,
                },
                len,
            ),
            Encoded::Heap(bytes) => (
                Message::Frame {
                    heap: Some(bytes),
                    receipt,
                },
                0,
            ),
        }
    }
}

/// Encodes `span` as a frame: into `buf` when it fits, else on the heap. `Err(len)` when
/// its encoding (the datagram, without the header) is over `max` bytes.
#[inline]
pub(crate) fn encode(span: &SsfSpan, max: usize, buf: &mut [u8; INLINE]) -> Result<Encoded, usize> {
    // Most spans fit in the slot: encoded in one pass, without measuring.
    if let Some(body) = wire::encode_to_slice(span, &mut buf[ssf_codec::HEADER_LEN..]) {
        if body > max {
            return Err(body);
        }
        write_header(buf, body);
        return Ok(Encoded::Inline(ssf_codec::HEADER_LEN + body));
    }
    encode_large(span, max)
}

/// A frame too large for a slot: encoded as a backend that encodes would, into a buffer
/// of its size.
#[cold]
fn encode_large(span: &SsfSpan, max: usize) -> Result<Encoded, usize> {
    let mut bytes = BytesMut::new();
    encode::frame(span, &mut bytes, max)?;
    Ok(Encoded::Heap(Vec::from(bytes).into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssf_proto::sample;

    fn span(name_len: usize) -> SsfSpan {
        SsfSpan {
            trace_id: 1,
            id: 2,
            name: "n".repeat(name_len),
            metrics: vec![sample::count("c", 1.0)],
            ..Default::default()
        }
    }

    fn expected(span: &SsfSpan) -> Vec<u8> {
        let body = ssf_proto::wire::encode_to_vec(span);
        let mut v = vec![ssf_codec::VERSION];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(&body);
        v
    }

    fn bytes<'a>(e: &'a Encoded, buf: &'a [u8; INLINE]) -> &'a [u8] {
        match e {
            Encoded::Inline(len) => &buf[..*len],
            Encoded::Heap(b) => b,
        }
    }

    #[test]
    fn inline_and_heap_frames_hold_the_reference_bytes() {
        let mut buf = [0u8; INLINE];
        for n in [
            0,
            1,
            100,
            300,
            INLINE - 40,
            INLINE,
            INLINE + 1,
            5000,
            70_000,
        ] {
            let s = span(n);
            let e = encode(&s, usize::MAX, &mut buf).unwrap();
            let want = expected(&s);
            assert_eq!(bytes(&e, &buf), &want[..], "name of {n} bytes");
            assert_eq!(matches!(e, Encoded::Inline(_)), want.len() <= INLINE, "{n}");
        }
    }

    #[test]
    fn the_boundary_is_exact() {
        // Names whose frame is exactly INLINE and INLINE + 1 bytes.
        let base = expected(&span(0)).len();
        let mut buf = [0u8; INLINE];
        for total in [INLINE, INLINE + 1] {
            let mut n = total - base;
            while expected(&span(n)).len() > total {
                n -= 1;
            }
            let s = span(n);
            if expected(&s).len() != total {
                continue; // a length prefix grew a byte: the other case covers it
            }
            let e = encode(&s, usize::MAX, &mut buf).unwrap();
            assert_eq!(bytes(&e, &buf).len(), total);
            assert_eq!(matches!(e, Encoded::Inline(_)), total <= INLINE);
        }
    }

    #[test]
    fn over_the_limit_is_refused_with_its_length() {
        let mut buf = [0u8; INLINE];
        for n in [100, 1000] {
            let s = span(n);
            let body = expected(&s).len() - 5;
            assert_eq!(encode(&s, body - 1, &mut buf).unwrap_err(), body);
            assert!(encode(&s, body, &mut buf).is_ok());
        }
    }
}
