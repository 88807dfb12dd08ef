use std::fmt;
use std::io;

pub use ssf_proto::prost::DecodeError;

/// Errors from reading or writing SSF frames and datagrams.
///
/// The stream errors split in two: [`Error::is_framing`] errors (a bad version byte, a
/// length over the limit, end of input inside a frame, an I/O failure) leave the stream
/// unusable, since SSF has no resynchronisation marker. A frame whose body is not a valid
/// span is not an error of the stream at all: the decoder yields it as an
/// `Err(DecodeError)` item and the next frame decodes normally.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The frame's version byte is not 0.
    UnsupportedVersion(u8),
    /// The frame announces (or a span would need) more bytes than the limit.
    FrameTooLarge {
        /// The announced or needed length of the body, in bytes.
        len: u64,
        /// The limit, in bytes.
        max: usize,
    },
    /// The input ended inside a frame.
    UnexpectedEof {
        /// How many bytes of the unfinished frame were buffered.
        buffered: usize,
    },
    /// Reading or writing the underlying stream failed.
    Io(io::Error),
    /// A datagram's bytes are not a valid span.
    Decode(DecodeError),
    /// A datagram was empty; veneur rejects those.
    EmptyDatagram,
    /// A span's encoding is larger than the datagram limit; it is never truncated.
    DatagramTooLarge {
        /// The encoded length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
}

impl Error {
    /// Whether this error makes the rest of a stream unreadable (version, length, end of
    /// input inside a frame, I/O). Such a connection should be closed.
    pub fn is_framing(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedVersion(_)
                | Error::FrameTooLarge { .. }
                | Error::UnexpectedEof { .. }
                | Error::Io(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedVersion(v) => {
                write!(f, "ssf framing error: unexpected version number {v}")
            }
            Error::FrameTooLarge { len, max } => write!(
                f,
                "ssf framing error: length {len} is too large (limit {max} bytes)"
            ),
            Error::UnexpectedEof { buffered } => write!(
                f,
                "ssf framing i/o error: input ended inside a frame ({buffered} bytes buffered)"
            ),
            Error::Io(_) => f.write_str("ssf framing i/o error"),
            Error::Decode(_) => f.write_str("datagram is not a valid ssf span"),
            Error::EmptyDatagram => f.write_str("empty ssf datagram"),
            Error::DatagramTooLarge { len, max } => write!(
                f,
                "span encodes to {len} bytes, over the datagram limit of {max} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
