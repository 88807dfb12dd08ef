use bytes::{Buf, BytesMut};
use ssf_proto::SsfSpan;
use ssf_proto::wire::{self, SpanFields};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{DecodeError, Error};

/// Length of the frame header: one version byte and a 4-byte big-endian length.
pub const HEADER_LEN: usize = 5;

/// The largest body SSF allows in a frame: 16 MiB, inclusive, as veneur enforces it.
pub const MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// The most the decoder reserves ahead of the bytes received.
const RESERVE_STEP: usize = 64 * 1024;

/// The only defined frame version: a protobuf `SSFSpan` follows.
pub const VERSION: u8 = 0;

/// A [`Decoder`] and [`Encoder`] for SSF's stream framing.
///
/// ```text
/// +---------+----------------------+----------------------------+
/// | version |  length (u32, BE)    |  protobuf SSFSpan body     |
/// |  0x00   |  0x00 0x00 0x00 0x0e |  14 bytes ...              |
/// +---------+----------------------+----------------------------+
/// ```
///
/// Decoding yields one item per frame: `Ok(span)` for a good frame and `Err(DecodeError)`
/// for a frame whose body is not a valid span (the frame is consumed and the next one
/// decodes normally). Errors of the stream itself ([`Error::is_framing`]) are returned as
/// the decoder's error and end the stream. The announced length is checked against the
/// limit before anything is allocated, so the read buffer never holds more than one
/// frame of at most `max_frame_length + 5` bytes beyond what the peer already sent.
///
/// Encoding writes each frame as one contiguous buffer with veneur's canonical encoding
/// (see [`ssf_proto::wire`]) and refuses, without writing anything, a span whose encoding
/// is over the limit.
///
/// Spans are neither normalised nor validated here; see [`ssf_proto::normalize`].
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use ssf_codec::SsfCodec;
/// use ssf_proto::SsfSpan;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = SsfCodec::new();
/// let mut buf = BytesMut::new();
/// let span = SsfSpan { id: 2, trace_id: 1, ..Default::default() };
/// codec.encode(&span, &mut buf)?;
/// assert_eq!(&buf[..5], &[0, 0, 0, 0, 4]);
/// let decoded = codec.decode(&mut buf)?.expect("a whole frame").expect("a valid body");
/// assert_eq!(decoded, span);
/// # Ok::<(), ssf_codec::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SsfCodec {
    max_frame_length: usize,
}

impl Default for SsfCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl SsfCodec {
    /// A codec with veneur's limit of [`MAX_FRAME_LENGTH`] (16 MiB).
    pub fn new() -> Self {
        SsfCodec {
            max_frame_length: MAX_FRAME_LENGTH,
        }
    }

    /// A codec with a lower limit on the body length, in bytes; values above
    /// [`MAX_FRAME_LENGTH`] are lowered to it.
    pub fn with_max_frame_length(max: usize) -> Self {
        SsfCodec {
            max_frame_length: max.min(MAX_FRAME_LENGTH),
        }
    }

    /// The limit on the body length, in bytes.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Takes the next whole frame's body off `src` without decoding it.
    ///
    /// Returns `Ok(None)` when `src` does not hold a whole frame yet, after reserving room
    /// for the rest of it (never more than the limit allows).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] or [`Error::FrameTooLarge`]; both are fatal for the
    /// stream.
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        let Some(&version) = src.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > self.max_frame_length {
            return Err(Error::FrameTooLarge {
                len: len as u64,
                max: self.max_frame_length,
            });
        }
        let total = HEADER_LEN + len;
        if src.len() < total {
            // Room for the next part of the frame only: memory follows the bytes that
            // actually arrive, so a peer announcing 16 MiB and sending nothing more costs
            // little (the buffer still grows, by doubling, as the body comes in).
            src.reserve((total - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len)))
    }

    /// Appends one frame holding `span` to `dst`, as one contiguous write.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] when the encoding is over the limit; nothing is written.
    pub fn encode_frame(&self, span: &SsfSpan, dst: &mut BytesMut) -> Result<(), Error> {
        let len = wire::encoded_len(span);
        if len > self.max_frame_length {
            return Err(Error::FrameTooLarge {
                len: len as u64,
                max: self.max_frame_length,
            });
        }
        let start = dst.len();
        dst.resize(start + HEADER_LEN + len, 0);
        let frame = &mut dst[start..];
        // `len` is exact (the tests hold it to the encoder); should it ever fall short,
        // a vector sized by the encoder itself costs time, not a wrong frame.
        if encode_frame_to_slice(span, frame) != Some(HEADER_LEN + len) {
            let body = wire::encode_to_vec(span);
            dst.truncate(start);
            dst.extend_from_slice(&frame_header(body.len()));
            dst.extend_from_slice(&body);
        }
        Ok(())
    }
}

/// The 5-byte header of a frame whose body is `len` bytes (at most `u32::MAX`; larger
/// lengths are cut to it, so check a length against the limit first).
#[inline]
pub fn frame_header(len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [VERSION, len[0], len[1], len[2], len[3]]
}

/// Writes one whole frame of `span` (header, then the canonical encoding) at the start
/// of `out`, in one pass, and returns its length, or `None` when `out` is too small. As
/// with [`wire::encode_to_slice`], up to 10 bytes of `out` past the frame may be overwritten.
/// The body is `HEADER_LEN` bytes shorter than the frame: compare it with the receiver's
/// limit ([`MAX_FRAME_LENGTH`]) before sending.
///
/// Any span type that shows its fields through [`SpanFields`] can be framed.
///
/// ```
/// use ssf_codec::{HEADER_LEN, encode_frame_to_slice};
/// use ssf_proto::{wire, SsfSpan};
///
/// let span = SsfSpan { id: 1, name: "op".into(), ..Default::default() };
/// let mut out = [0u8; 64];
/// let n = encode_frame_to_slice(&span, &mut out).unwrap();
/// assert_eq!(out[..HEADER_LEN], [0, 0, 0, 0, (n - HEADER_LEN) as u8]);
/// assert_eq!(&out[HEADER_LEN..n], &wire::encode_to_vec(&span)[..]);
/// ```
#[inline]
pub fn encode_frame_to_slice<S: SpanFields + ?Sized>(span: &S, out: &mut [u8]) -> Option<usize> {
    let body = wire::encode_fields_to_slice(span, out.get_mut(HEADER_LEN..)?)?;
    out[..HEADER_LEN].copy_from_slice(&frame_header(body));
    Some(HEADER_LEN + body)
}

impl Decoder for SsfCodec {
    type Item = Result<SsfSpan, DecodeError>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        Ok(self
            .decode_frame(src)?
            .map(|body| wire::decode(body.freeze())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => Err(Error::UnexpectedEof {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<&SsfSpan> for SsfCodec {
    type Error = Error;

    fn encode(&mut self, span: &SsfSpan, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(span, dst)
    }
}

impl Encoder<SsfSpan> for SsfCodec {
    type Error = Error;

    fn encode(&mut self, span: SsfSpan, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(&span, dst)
    }
}
