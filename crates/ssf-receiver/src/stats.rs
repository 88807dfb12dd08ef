use std::sync::atomic::{AtomicU64, Ordering};

use crate::RejectReason;

/// A snapshot of a [`Receiver`](crate::Receiver)'s counters.
///
/// Every counter only grows. Datagram counters concern UDP listeners, frame and
/// connection counters the stream listeners (unix, TCP and gRPC, where each message of a
/// call counts as a frame); `spans` and `bytes` cover all
/// of them.
///
/// | counter | counts |
/// |---|---|
/// | `spans` | spans handed to the consumer's channel |
/// | `datagrams` | UDP datagrams read, good or bad |
/// | `empty_datagrams` | zero-length datagrams (dropped) |
/// | `undecodable_datagrams` | datagrams whose bytes are not a span (dropped) |
/// | `truncated_datagrams` | datagrams longer than the size limit (dropped) |
/// | `frames` | whole frames read from streams, good or corrupt |
/// | `framing_errors` | streams ended by a framing or I/O error (connection closed) |
/// | `corrupt_frames` | frames whose body is not a span (skipped, the stream goes on) |
/// | `connections_accepted` | stream connections accepted and read |
/// | `connections_rejected` | connections closed at once because the listener was at its limit |
/// | `timeouts` | connections closed by the [`read_timeout`](crate::ReceiverBuilder::read_timeout) |
/// | `disconnects` | streams that ended cleanly (end of input between frames) |
/// | `bytes` | payload bytes read from every socket |
/// | `rejected_calls` | gRPC calls refused with an error status (message over the limit or the connection's budget, unknown method) |
///
/// Each [`RejectReason`] has its counter; [`rejects`](Self::rejects) picks it by reason.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Spans handed to the consumer's channel.
    pub spans: u64,
    /// UDP datagrams read, good or bad.
    pub datagrams: u64,
    /// Zero-length UDP datagrams; veneur rejects them too.
    pub empty_datagrams: u64,
    /// UDP datagrams whose bytes do not decode as a span.
    pub undecodable_datagrams: u64,
    /// UDP datagrams longer than the configured maximum size.
    pub truncated_datagrams: u64,
    /// Whole frames read from stream connections, including corrupt ones.
    pub frames: u64,
    /// Stream connections closed because of a framing or I/O error.
    pub framing_errors: u64,
    /// Frames whose body does not decode as a span.
    pub corrupt_frames: u64,
    /// Stream connections accepted.
    pub connections_accepted: u64,
    /// Stream connections closed on arrival because the listener was at its limit.
    pub connections_rejected: u64,
    /// Stream connections closed because no whole frame arrived within the read timeout.
    pub timeouts: u64,
    /// Stream connections that ended cleanly, between two frames.
    pub disconnects: u64,
    /// Payload bytes read from all sockets.
    pub bytes: u64,
    /// gRPC calls refused with an error status: a message over the size limit or the
    /// connection's budget, a method other than `SendSpan`, a compressed message or a
    /// call without its message.
    pub rejected_calls: u64,
}

impl ReceiverStats {
    /// The counter of inputs rejected for `reason`.
    ///
    /// ```
    /// use ssf_receiver::{ReceiverStats, RejectReason};
    /// let stats = ReceiverStats::default();
    /// assert_eq!(stats.rejects(RejectReason::Timeout), stats.timeouts);
    /// ```
    pub fn rejects(&self, reason: RejectReason) -> u64 {
        match reason {
            RejectReason::EmptyDatagram => self.empty_datagrams,
            RejectReason::UndecodableDatagram => self.undecodable_datagrams,
            RejectReason::TruncatedDatagram => self.truncated_datagrams,
            RejectReason::Framing => self.framing_errors,
            RejectReason::CorruptFrame => self.corrupt_frames,
            RejectReason::ConnectionLimit => self.connections_rejected,
            RejectReason::Timeout => self.timeouts,
            RejectReason::RejectedCall => self.rejected_calls,
        }
    }

    /// Every input rejected, for whatever reason.
    pub fn rejected(&self) -> u64 {
        [
            self.empty_datagrams,
            self.undecodable_datagrams,
            self.truncated_datagrams,
            self.framing_errors,
            self.corrupt_frames,
            self.connections_rejected,
            self.timeouts,
            self.rejected_calls,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }
}

/// The live counters behind [`ReceiverStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spans: AtomicU64,
    pub(crate) datagrams: AtomicU64,
    pub(crate) empty_datagrams: AtomicU64,
    pub(crate) undecodable_datagrams: AtomicU64,
    pub(crate) truncated_datagrams: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) framing_errors: AtomicU64,
    pub(crate) corrupt_frames: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) rejected_calls: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn incr(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ReceiverStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceiverStats {
            spans: get(&self.spans),
            datagrams: get(&self.datagrams),
            empty_datagrams: get(&self.empty_datagrams),
            undecodable_datagrams: get(&self.undecodable_datagrams),
            truncated_datagrams: get(&self.truncated_datagrams),
            frames: get(&self.frames),
            framing_errors: get(&self.framing_errors),
            corrupt_frames: get(&self.corrupt_frames),
            connections_accepted: get(&self.connections_accepted),
            connections_rejected: get(&self.connections_rejected),
            timeouts: get(&self.timeouts),
            disconnects: get(&self.disconnects),
            bytes: get(&self.bytes),
            rejected_calls: get(&self.rejected_calls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_every_counter() {
        let c = Counters::default();
        let all = [
            &c.spans,
            &c.datagrams,
            &c.empty_datagrams,
            &c.undecodable_datagrams,
            &c.truncated_datagrams,
            &c.frames,
            &c.framing_errors,
            &c.corrupt_frames,
            &c.connections_accepted,
            &c.connections_rejected,
            &c.timeouts,
            &c.disconnects,
            &c.bytes,
            &c.rejected_calls,
        ];
        for (i, counter) in all.iter().enumerate() {
            add(counter, i as u64 + 1);
        }
        incr(&c.bytes);
        let s = c.snapshot();
        let got = [
            s.spans,
            s.datagrams,
            s.empty_datagrams,
            s.undecodable_datagrams,
            s.truncated_datagrams,
            s.frames,
            s.framing_errors,
            s.corrupt_frames,
            s.connections_accepted,
            s.connections_rejected,
            s.timeouts,
            s.disconnects,
            s.bytes,
            s.rejected_calls,
        ];
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 14]);
    }

    #[test]
    fn every_reason_has_its_counter() {
        let c = Counters::default();
        let by_reason = [
            (RejectReason::EmptyDatagram, &c.empty_datagrams),
            (RejectReason::UndecodableDatagram, &c.undecodable_datagrams),
            (RejectReason::TruncatedDatagram, &c.truncated_datagrams),
            (RejectReason::Framing, &c.framing_errors),
            (RejectReason::CorruptFrame, &c.corrupt_frames),
            (RejectReason::ConnectionLimit, &c.connections_rejected),
            (RejectReason::Timeout, &c.timeouts),
            (RejectReason::RejectedCall, &c.rejected_calls),
        ];
        for (i, (_, counter)) in by_reason.iter().enumerate() {
            add(counter, 1 << i);
        }
        // Counters that are not rejections stay out of the total.
        add(&c.spans, 1000);
        add(&c.connections_accepted, 1000);
        let s = c.snapshot();
        for (i, (reason, _)) in by_reason.iter().enumerate() {
            assert_eq!(s.rejects(*reason), 1 << i, "{reason}");
        }
        assert_eq!(s.rejected(), (1 << by_reason.len()) - 1);
    }
}
