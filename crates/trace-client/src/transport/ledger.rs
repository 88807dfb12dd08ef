//! One backend's accounting.

use std::io;
use std::sync::Arc;

use crate::encode::{self, Framing};
use crate::error::{DeliveryError, DropReason, Dropped};
use crate::message::{Message, ReceiptSender};
use crate::shared::{Shared, Signal};

/// One backend's accounting: the client's counters, and what this backend dropped since
/// it last reported to a flush.
#[derive(Debug)]
pub(crate) struct Ledger {
    shared: Arc<Shared>,
    since_flush: Option<Dropped>,
}

impl Ledger {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Ledger {
            shared,
            since_flush: None,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Set once the client's shutdown deadline passed.
    pub(crate) fn aborting(&self) -> &Signal {
        &self.shared.aborting
    }

    /// Counts one span of a run and resolves its receipt.
    pub(crate) fn settle(
        &mut self,
        receipt: Option<ReceiptSender>,
        result: Result<(), (DropReason, &io::Error)>,
    ) {
        match result {
            Ok(()) => self.sent(1),
            Err((reason, e)) => self.dropped(reason, 1, Some(e)),
        }
        if let Some(r) = receipt {
            let _ = r.send(result.map_err(|(reason, e)| copy_error(reason, e)));
        }
    }

    /// Appends what a network transport sends for the span `msg` to `buf`: the bytes
    /// encoded when it was recorded (`inline`, or its heap buffer), or the span encoded
    /// now as `framing` says. Returns the span's receipt, or `None` when nothing was
    /// appended: a flush marker, or a span over `max` bytes (counted as dropped here).
    #[inline]
    pub(crate) fn stage(
        &mut self,
        msg: Message,
        inline: &[u8],
        framing: Framing,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Option<ReceiptSender>> {
        match msg {
            // Encoded (and size-checked) as this transport sends it when recorded: a copy.
            Message::Frame { heap, receipt } => {
                buf.extend_from_slice(heap.as_deref().unwrap_or(inline));
                Some(receipt)
            }
            Message::Span { span, receipt } => match encode::append(&span, framing, max, buf) {
                Ok(()) => Some(receipt),
                Err(len) => {
                    let e = oversize_error(len, max);
                    self.settle(receipt, Err((DropReason::Oversize, &e)));
                    None
                }
            },
            Message::Flush(_) => None,
        }
    }

    /// Counts the spans of `rest` as dropped because the client aborted, and resolves
    /// their receipts.
    pub(crate) fn abandon(&mut self, rest: &mut [Message]) {
        let mut n = 0;
        for msg in rest.iter_mut().filter(|m| m.is_span()) {
            n += 1;
            if let Some(r) = msg.take_receipt() {
                let _ = r.send(Err(DeliveryError::closed()));
            }
        }
        self.dropped(DropReason::Closed, n, None);
    }

    #[inline]
    pub(crate) fn sent(&self, n: u64) {
        self.shared.counters.sent(n);
    }

    /// Counts `n` dropped spans; delivery failures are kept for the next flush.
    pub(crate) fn dropped(&mut self, reason: DropReason, n: u64, error: Option<&io::Error>) {
        if n == 0 {
            return;
        }
        self.shared.counters.dropped(reason, n);
        if matches!(reason, DropReason::Oversize | DropReason::Closed) {
            // Not a delivery failure: the span could never be sent, or the client is
            // going away (a flush cannot be waiting).
            return;
        }
        match &mut self.since_flush {
            Some(d) => d.add(n),
            None => self.since_flush = Some(Dropped::new(reason, n, error)),
        }
    }

    /// What was dropped since the last report, for a flush.
    pub(crate) fn take(&mut self) -> Option<Dropped> {
        self.since_flush.take()
    }

    /// Puts back what a flush that timed out did not receive.
    pub(crate) fn restore(&mut self, d: Dropped) {
        match &mut self.since_flush {
            Some(now) => now.add(d.count()),
            None => self.since_flush = Some(d),
        }
    }
}

/// An I/O error for a second receipt (`io::Error` is not `Clone`).
pub(crate) fn copy_error(reason: DropReason, e: &io::Error) -> DeliveryError {
    DeliveryError::new(reason, Some(io::Error::new(e.kind(), e.to_string())))
}

/// The error of a span too large to send.
pub(crate) fn oversize_error(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the span's encoding is {len} bytes, over the limit of {max}"),
    )
}
