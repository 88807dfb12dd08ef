use bytes::BufMut;
use ssf_proto::{SsfSpan, wire};

use crate::error::Error;

/// The default limit on a datagram's size: 16 384 bytes, the value veneur's example
/// configuration gives `trace_max_length_bytes`.
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = 16_384;

/// The largest UDP payload IPv4 can carry.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Encoding and decoding of SSF datagrams: one bare protobuf span per datagram, with no
/// header.
///
/// A span whose encoding is over the limit is an error, never truncated; an empty
/// datagram is rejected, as veneur rejects it.
///
/// ```
/// use ssf_codec::DatagramCodec;
/// use ssf_proto::SsfSpan;
///
/// let codec = DatagramCodec::new();
/// let span = SsfSpan { id: 1, ..Default::default() };
/// let mut buf = Vec::new();
/// codec.encode(&span, &mut buf)?;
/// assert_eq!(codec.decode(&buf)?, span);
/// assert!(codec.decode(&[]).is_err());
/// # Ok::<(), ssf_codec::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DatagramCodec {
    max_size: usize,
}

impl Default for DatagramCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramCodec {
    /// A codec with the [`DEFAULT_MAX_DATAGRAM_SIZE`] limit.
    pub fn new() -> Self {
        DatagramCodec {
            max_size: DEFAULT_MAX_DATAGRAM_SIZE,
        }
    }

    /// A codec with the given limit in bytes, lowered to [`MAX_UDP_PAYLOAD`] if higher.
    pub fn with_max_size(max_size: usize) -> Self {
        DatagramCodec {
            max_size: max_size.min(MAX_UDP_PAYLOAD),
        }
    }

    /// The limit, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Appends the datagram payload for `span` to `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::DatagramTooLarge`] when the encoding is over the limit; nothing is written.
    pub fn encode(&self, span: &SsfSpan, dst: &mut impl BufMut) -> Result<(), Error> {
        let len = wire::encoded_len(span);
        if len > self.max_size {
            return Err(Error::DatagramTooLarge {
                len,
                max: self.max_size,
            });
        }
        wire::encode(span, dst);
        Ok(())
    }

    /// Decodes one datagram (no normalisation).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyDatagram`] for an empty payload, [`Error::DatagramTooLarge`] for one
    /// over the limit, [`Error::Decode`] when the bytes are not a span.
    pub fn decode(&self, datagram: &[u8]) -> Result<SsfSpan, Error> {
        if datagram.is_empty() {
            return Err(Error::EmptyDatagram);
        }
        if datagram.len() > self.max_size {
            return Err(Error::DatagramTooLarge {
                len: datagram.len(),
                max: self.max_size,
            });
        }
        wire::decode(datagram).map_err(Error::Decode)
    }
}
