//! Spans encoded when they are recorded: what network clients put in their queue.
//!
//! A network client encodes each span on the recording task, as one stream frame (the
//! 5-byte header, then the protobuf encoding; a datagram is the same bytes without the
//! header), and queues the bytes instead of the span. The span is freed where it was
//! made, while it is still in that core's cache, and the backends only copy bytes to
//! their sockets. A frame of up to [`INLINE`] bytes is held in the queue's slot itself,
//! so recording a typical span allocates nothing; a larger one is put on the heap.

use std::fmt;

use ssf_proto::SsfSpan;

use ssf_proto::wire;

use crate::encode::write_header;

/// The largest frame (header included) held in a queue slot rather than on the heap.
/// Chosen so that a queue slot takes 384 bytes: a typical span (a name, a service, five
/// tags, two samples) is about 280.
pub(crate) const INLINE: usize = 360;

/// One span, encoded as a stream frame.
pub(crate) struct Frame {
    repr: Repr,
}

// The inline variant is large on purpose: it is the queue slot's storage.
#[allow(clippy::large_enum_variant)]
enum Repr {
    Inline { len: u16, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("len", &self.len())
            .field("inline", &matches!(self.repr, Repr::Inline { .. }))
            .finish()
    }
}

impl Frame {
    /// Encodes `span` as a frame. `Err(len)` when its encoding (the datagram, without the
    /// header) is over `max` bytes.
    #[inline]
    pub(crate) fn encode(span: &SsfSpan, max: usize) -> Result<Frame, usize> {
        // Most spans fit in the slot: encoded there in one pass, without measuring.
        let mut bytes = [0u8; INLINE];
        if let Some(body) = wire::encode_to_slice(span, &mut bytes[ssf_codec::HEADER_LEN..]) {
            if body > max {
                return Err(body);
            }
            write_header(&mut bytes, body);
            return Ok(Frame {
                repr: Repr::Inline {
                    // At most `INLINE`, far below `u16::MAX`.
                    len: (ssf_codec::HEADER_LEN + body) as u16,
                    bytes,
                },
            });
        }
        Self::encode_large(span, max)
    }

    /// A frame too large for a slot: measured, then encoded into a buffer of its size.
    #[cold]
    fn encode_large(span: &SsfSpan, max: usize) -> Result<Frame, usize> {
        let body = wire::encoded_len(span);
        // The header's length field is 32 bits.
        if body > max || body > u32::MAX as usize {
            return Err(body);
        }
        let mut bytes = vec![0u8; ssf_codec::HEADER_LEN + body];
        write_header(&mut bytes, body);
        if wire::encode_to_slice(span, &mut bytes[ssf_codec::HEADER_LEN..]) == Some(body) {
            return Ok(Frame {
                repr: Repr::Heap(bytes.into_boxed_slice()),
            });
        }
        Ok(Self::reference(span))
    }

    /// The frame written by the reference encoder: never used unless the two encoders
    /// disagree about a span's length (a bug), so that such a bug costs speed, not a
    /// frame.
    #[cold]
    fn reference(span: &SsfSpan) -> Frame {
        let body = wire::encode_to_vec(span);
        let mut bytes = vec![0u8; ssf_codec::HEADER_LEN];
        write_header(&mut bytes, body.len());
        bytes.extend_from_slice(&body);
        Frame {
            repr: Repr::Heap(bytes.into_boxed_slice()),
        }
    }

    /// The whole frame: header and encoding.
    #[inline]
    pub(crate) fn as_frame(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// The encoding alone: the datagram.
    #[inline]
    pub(crate) fn datagram(&self) -> &[u8] {
        &self.as_frame()[ssf_codec::HEADER_LEN..]
    }

    /// The frame's length in bytes, header included.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_frame().len()
    }
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

    #[test]
    fn inline_and_heap_frames_hold_the_reference_bytes() {
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
            let f = Frame::encode(&s, usize::MAX).unwrap();
            let want = expected(&s);
            assert_eq!(f.as_frame(), &want[..], "name of {n} bytes");
            assert_eq!(f.datagram(), &want[5..]);
            assert_eq!(f.len(), want.len());
            assert_eq!(
                matches!(f.repr, Repr::Inline { .. }),
                want.len() <= INLINE,
                "{n}"
            );
        }
    }

    #[test]
    fn the_boundary_is_exact() {
        // Find names whose frame is exactly INLINE and INLINE + 1 bytes.
        let base = expected(&span(0)).len();
        for total in [INLINE, INLINE + 1] {
            let mut n = total - base;
            while expected(&span(n)).len() > total {
                n -= 1;
            }
            let s = span(n);
            if expected(&s).len() != total {
                continue; // a length prefix grew a byte: the other case covers it
            }
            let f = Frame::encode(&s, usize::MAX).unwrap();
            assert_eq!(f.len(), total);
            assert_eq!(matches!(f.repr, Repr::Inline { .. }), total <= INLINE);
        }
    }

    #[test]
    fn a_queue_message_takes_384_bytes() {
        // The documented memory of the queue: capacity x (384 + the ring's 8-byte stamp).
        assert_eq!(std::mem::size_of::<crate::message::Message>(), 384);
    }

    #[test]
    fn over_the_limit_is_refused_with_its_length() {
        let s = span(100);
        let body = expected(&s).len() - 5;
        assert_eq!(Frame::encode(&s, body - 1).unwrap_err(), body);
        assert!(Frame::encode(&s, body).is_ok());
    }
}
