//! Encoding spans for the queue and for the backends: one encoder
//! ([`ssf_proto::wire::encode_fields_to_slice`], framed by
//! [`ssf_codec::encode_frame_to_slice`]) for every path.
//!
//! A network client encodes each span on the recording task, as what its transport
//! sends: a stream frame (the codec's 5-byte header, then the canonical bytes) for a
//! stream client, the bare bytes for a UDP client. It queues the bytes instead of the
//! span: the span is freed where it was made, while it is still in that core's cache,
//! and the backends only copy bytes to their sockets. [`encode`] writes an encoding of
//! up to [`INLINE`] bytes into the buffer it is given (the queue slot the push claimed,
//! or for the record futures, which keep the frame until there is room, a buffer of
//! their own); a larger one is put on the heap ([`encode_large`]).
//!
//! A client built with [`encode_in_backend`](crate::ClientBuilder::encode_in_backend)
//! queues spans, and its backends [`append`] each to their write buffer.

use ssf_codec::HEADER_LEN;
use ssf_proto::SsfSpan;
use ssf_proto::wire::{self, SpanFields};

/// The largest encoding (header included) held in a queue slot rather than on the heap.
/// A typical span (a name, a service, five tags, two samples) is about 280 bytes.
pub(crate) const INLINE: usize = 360;

/// What a transport sends for one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A stream frame: the header, then the canonical bytes.
    Stream,
    /// A datagram: the canonical bytes alone.
    Datagram,
}

/// A span encoded for the queue.
#[derive(Debug)]
pub(crate) enum Encoded {
    /// In the first this many bytes of the buffer given to [`encode`].
    Inline(usize),
    /// Too large for a slot: on the heap.
    Heap(Box<[u8]>),
}

/// Encodes `span` as `framing` says: into `buf` when it fits, else on the heap.
/// `Err(len)` when its canonical encoding (without a header) is over `max` bytes.
#[inline]
pub(crate) fn encode<S: SpanFields + ?Sized>(
    span: &S,
    framing: Framing,
    max: usize,
    buf: &mut [u8; INLINE],
) -> Result<Encoded, usize> {
    // Most spans fit in the slot: encoded in one pass, without measuring.
    match encode_inline(span, framing, buf) {
        Some(n) if n - framing.header_len() > max => Err(n - framing.header_len()),
        Some(n) => Ok(Encoded::Inline(n)),
        None => encode_large(span, framing, max).map(Encoded::Heap),
    }
}

/// Encodes `span` as `framing` says into `buf` in one pass: the frame's length (header
/// included), or `None` when it does not fit (`buf` then holds a part of it).
#[inline]
fn encode_inline<S: SpanFields + ?Sized>(
    span: &S,
    framing: Framing,
    buf: &mut [u8],
) -> Option<usize> {
    match framing {
        Framing::Stream => ssf_codec::encode_frame_to_slice(span, buf),
        Framing::Datagram => wire::encode_fields_to_slice(span, buf),
    }
}

impl Framing {
    /// The length of the header before the canonical bytes.
    #[inline]
    fn header_len(self) -> usize {
        match self {
            Framing::Stream => HEADER_LEN,
            Framing::Datagram => 0,
        }
    }
}

/// An encoding too large for a slot, into a heap buffer of its size; `Err(len)` when its
/// canonical encoding is over `max` bytes.
#[cold]
fn encode_large<S: SpanFields + ?Sized>(
    span: &S,
    framing: Framing,
    max: usize,
) -> Result<Box<[u8]>, usize> {
    let len = wire::fields_encoded_len(span);
    if len > max {
        return Err(len);
    }
    let mut v = vec![0u8; framing.header_len() + len].into_boxed_slice();
    match encode_inline(span, framing, &mut v) {
        Some(n) if n == v.len() => Ok(v),
        // The length and the encoder disagree: a bug, which must cost speed, not a
        // wrong frame.
        _ => Ok(grown(span, framing)),
    }
}

/// The encoding in a buffer that grows until it fits.
#[cold]
fn grown<S: SpanFields + ?Sized>(span: &S, framing: Framing) -> Box<[u8]> {
    let mut v = vec![0u8; 4 * INLINE];
    loop {
        if let Some(n) = encode_inline(span, framing, &mut v) {
            v.truncate(n);
            return v.into_boxed_slice();
        }
        let len = v.len() * 2;
        v.resize(len, 0);
    }
}

/// Appends what `framing` sends for `span` to `buf`, for backends that encode.
/// `Err(len)` when the canonical encoding is over `max` bytes; nothing is written then.
#[inline]
pub(crate) fn append(
    span: &SsfSpan,
    framing: Framing,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<(), usize> {
    let len = wire::encoded_len(span);
    if len > max || len > u32::MAX as usize {
        return Err(len);
    }
    let start = buf.len();
    let total = framing.header_len() + len;
    buf.resize(start + total, 0);
    if encode_inline(span, framing, &mut buf[start..]) != Some(total) {
        // `encoded_len` and the encoder disagree: a bug, which must cost speed, not a
        // wrong frame.
        buf.truncate(start);
        if framing == Framing::Stream {
            buf.extend_from_slice(&ssf_codec::frame_header(len));
        }
        buf.extend_from_slice(&wire::encode_to_vec(span));
    }
    Ok(())
}

/// Frames `spans` into `buf` as a stream backend does, for the benchmarks.
#[doc(hidden)]
pub fn encode_frames(spans: &[SsfSpan], buf: &mut Vec<u8>) {
    for span in spans {
        let _ = append(span, Framing::Stream, ssf_codec::MAX_FRAME_LENGTH, buf);
    }
}

/// A span seen with another service name: how a client's own service name
/// ([`service`](crate::ClientBuilder::service)) is encoded into a span recorded without
/// one, with nothing copied.
pub(crate) struct WithService<'a, S: ?Sized> {
    pub(crate) span: &'a S,
    pub(crate) service: &'a str,
}

impl<S: SpanFields + ?Sized> SpanFields for WithService<'_, S> {
    type Sample = S::Sample;

    #[inline]
    fn version(&self) -> i32 {
        self.span.version()
    }
    #[inline]
    fn trace_id(&self) -> i64 {
        self.span.trace_id()
    }
    #[inline]
    fn id(&self) -> i64 {
        self.span.id()
    }
    #[inline]
    fn parent_id(&self) -> i64 {
        self.span.parent_id()
    }
    #[inline]
    fn start_timestamp(&self) -> i64 {
        self.span.start_timestamp()
    }
    #[inline]
    fn end_timestamp(&self) -> i64 {
        self.span.end_timestamp()
    }
    #[inline]
    fn is_error(&self) -> bool {
        self.span.is_error()
    }
    #[inline]
    fn service(&self) -> &str {
        self.service
    }
    #[inline]
    fn samples(&self) -> &[Self::Sample] {
        self.span.samples()
    }
    #[inline]
    fn encoded_parts(&self) -> Option<wire::EncodedParts<'_>> {
        self.span.encoded_parts()
    }
    #[inline]
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.span.tags()
    }
    #[inline]
    fn indicator(&self) -> bool {
        self.span.indicator()
    }
    #[inline]
    fn name(&self) -> &str {
        self.span.name()
    }
    #[inline]
    fn root_start_timestamp(&self) -> i64 {
        self.span.root_start_timestamp()
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
            let e = encode(&s, Framing::Stream, usize::MAX, &mut buf).unwrap();
            let want = expected(&s);
            assert_eq!(bytes(&e, &buf), &want[..], "name of {n} bytes");
            assert_eq!(matches!(e, Encoded::Inline(_)), want.len() <= INLINE, "{n}");
        }
    }

    #[test]
    fn datagrams_are_the_frames_without_their_header() {
        let mut buf = [0u8; INLINE];
        for n in [0, 100, INLINE - 4, INLINE, 5000] {
            let s = span(n);
            let want = expected(&s);
            let e = encode(&s, Framing::Datagram, usize::MAX, &mut buf).unwrap();
            assert_eq!(bytes(&e, &buf), &want[5..], "name of {n} bytes");
            let mut appended = vec![9u8];
            append(&s, Framing::Datagram, usize::MAX, &mut appended).unwrap();
            assert_eq!(&appended[1..], &want[5..]);
            let mut appended = Vec::new();
            append(&s, Framing::Stream, usize::MAX, &mut appended).unwrap();
            assert_eq!(appended, want);
        }
    }

    #[test]
    fn over_the_limit_appends_nothing() {
        let s = span(100);
        let body = expected(&s).len() - 5;
        let mut v = Vec::new();
        assert_eq!(append(&s, Framing::Stream, body - 1, &mut v), Err(body));
        assert_eq!(append(&s, Framing::Datagram, body - 1, &mut v), Err(body));
        assert!(v.is_empty());
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
            let e = encode(&s, Framing::Stream, usize::MAX, &mut buf).unwrap();
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
            assert_eq!(
                encode(&s, Framing::Stream, body - 1, &mut buf).unwrap_err(),
                body
            );
            assert!(encode(&s, Framing::Stream, body, &mut buf).is_ok());
            assert_eq!(
                encode(&s, Framing::Datagram, body - 1, &mut buf).unwrap_err(),
                body
            );
        }
    }
}
