use std::fmt;
use std::sync::Arc;

/// Why an input was rejected. See [`Reject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// A zero-length UDP datagram.
    EmptyDatagram,
    /// A UDP datagram whose bytes are not a span.
    UndecodableDatagram,
    /// A UDP datagram longer than the size limit.
    TruncatedDatagram,
    /// A stream framing or I/O error; the connection was closed.
    Framing,
    /// A frame whose body is not a span; the stream goes on.
    CorruptFrame,
    /// A connection closed on arrival because its listener was at its limit.
    ConnectionLimit,
    /// A stream connection closed because no whole frame (on gRPC, no whole message)
    /// arrived within the
    /// [`read_timeout`](crate::ReceiverBuilder::read_timeout): idle, or too slow.
    Timeout,
    /// A gRPC call refused with an error status: a message over the
    /// [`max_frame_length`](crate::ReceiverBuilder::max_frame_length) (refused from its
    /// length prefix), a message that does not fit in what the connection's other calls
    /// leave of that limit (`resource_exhausted`), a method other than `SendSpan`, or a
    /// call the gRPC layer refuses on its own (a compressed message, a call without its
    /// message). The connection goes on.
    RejectedCall,
}

impl RejectReason {
    /// A short name for the reason, as a metric tag would carry it. Where veneur has a
    /// name for the same case (`zerolength`, `framing`, `processing`), it is that name.
    ///
    /// ```
    /// use ssf_receiver::RejectReason;
    /// assert_eq!(RejectReason::EmptyDatagram.as_str(), "zerolength");
    /// assert_eq!(RejectReason::CorruptFrame.as_str(), "processing");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::EmptyDatagram => "zerolength",
            RejectReason::UndecodableDatagram => "undecodable",
            RejectReason::TruncatedDatagram => "truncated",
            RejectReason::Framing => "framing",
            RejectReason::CorruptFrame => "processing",
            RejectReason::ConnectionLimit => "connection_limit",
            RejectReason::Timeout => "timeout",
            RejectReason::RejectedCall => "rejected_call",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected input, as passed to the
/// [`on_reject`](crate::ReceiverBuilder::on_reject) hook.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reject {
    /// Why the input was rejected.
    pub reason: RejectReason,
    /// Who sent it: the peer's socket address for UDP and TCP, the listening socket and a
    /// connection number for unix sockets (whose clients are usually unnamed).
    pub peer: String,
    /// What exactly was wrong, in words (for instance the decoder's error).
    pub detail: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}: {}", self.reason, self.peer, self.detail)
    }
}

pub(crate) type RejectHook = Arc<dyn Fn(&Reject) + Send + Sync + 'static>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        let all = [
            (RejectReason::EmptyDatagram, "zerolength"),
            (RejectReason::UndecodableDatagram, "undecodable"),
            (RejectReason::TruncatedDatagram, "truncated"),
            (RejectReason::Framing, "framing"),
            (RejectReason::CorruptFrame, "processing"),
            (RejectReason::ConnectionLimit, "connection_limit"),
            (RejectReason::Timeout, "timeout"),
        ];
        for (reason, name) in all {
            assert_eq!(reason.as_str(), name);
            assert_eq!(reason.to_string(), name);
        }
        let r = Reject {
            reason: RejectReason::Framing,
            peer: "127.0.0.1:9".into(),
            detail: "bad version".into(),
        };
        assert_eq!(r.to_string(), "framing from 127.0.0.1:9: bad version");
    }
}
