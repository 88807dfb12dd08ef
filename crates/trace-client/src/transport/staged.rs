//! The spans of a batch staged one by one, for the transports that send each span on
//! its own (UDP datagrams, gRPC calls): their encoded bytes back to back, where each
//! ends, and each receipt.

use std::ops::Range;

use crate::encode::Framing;
use crate::message::{Message, ReceiptSender};
use crate::transport::ledger::Ledger;

/// A batch of separately sent spans.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Encoded spans, back to back.
    pub(crate) buf: Vec<u8>,
    /// End offset in `buf` of each span.
    pub(crate) ends: Vec<usize>,
    /// The receipt of each span.
    pub(crate) receipts: Vec<Option<ReceiptSender>>,
}

impl Staged {
    /// Stages `msg` (bare, at most `max` bytes encoded) through `ledger`, which counts
    /// what it cannot stage. `false` once `limit` bytes are held: time to send.
    #[inline]
    pub(crate) fn stage(
        &mut self,
        ledger: &mut Ledger,
        msg: Message,
        inline: &[u8],
        max: usize,
        limit: usize,
    ) -> bool {
        let Some(receipt) = ledger.stage(msg, inline, Framing::Datagram, max, &mut self.buf) else {
            return true;
        };
        self.ends.push(self.buf.len());
        self.receipts.push(receipt);
        self.buf.len() < limit
    }

    /// The bytes of span `i` in `buf`.
    pub(crate) fn span(&self, i: usize) -> Range<usize> {
        span_range(&self.ends, i)
    }

    /// Forgets every staged span, returning how many there were; their receipts resolve
    /// as dropped (closed) when their senders go.
    pub(crate) fn abort(&mut self) -> u64 {
        let n = self.ends.len();
        self.buf.clear();
        self.ends.clear();
        self.receipts.clear();
        n as u64
    }
}

/// The bytes of span `i`, given where each span ends.
pub(crate) fn span_range(ends: &[usize], i: usize) -> Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] };
    start..ends[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_the_runs_between_their_ends() {
        let s = Staged {
            buf: vec![0; 10],
            ends: vec![3, 3, 10],
            receipts: vec![None, None, None],
        };
        assert_eq!((s.span(0), s.span(1), s.span(2)), (0..3, 3..3, 3..10));
    }

    #[test]
    fn abort_forgets_everything_and_counts_it() {
        let mut s = Staged {
            buf: vec![0; 10],
            ends: vec![3, 10],
            receipts: vec![None, None],
        };
        assert_eq!(s.abort(), 2);
        assert!(s.buf.is_empty() && s.ends.is_empty() && s.receipts.is_empty());
    }
}
