//! What travels through the queue: spans, encoded frames and flush barriers.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use ssf_proto::SsfSpan;
use tokio::sync::oneshot;

use crate::encode::Encoded;
use crate::error::{BackendError, DeliveryError, FlushError};
use crate::stats::Counters;

/// The sender half of a receipt.
pub(crate) type ReceiptSender = oneshot::Sender<Result<(), DeliveryError>>;

/// What a queue slot carries besides an inline frame (see the queue's slots).
#[derive(Debug)]
pub(crate) enum Message {
    /// A span to hand to a user backend (or to a backend that encodes), with an
    /// optional receipt to resolve once it is sent or dropped.
    Span {
        span: SsfSpan,
        receipt: Option<ReceiptSender>,
    },
    /// A span a network client encoded when it was recorded, with an optional receipt:
    /// its frame is the slot's inline bytes, or `heap` when it did not fit there.
    Frame {
        heap: Option<Box<[u8]>>,
        receipt: Option<ReceiptSender>,
    },
    /// A flush barrier: the worker that takes it asks every worker to flush once it has
    /// finished the spans it took before.
    Flush(Arc<FlushRound>),
}

impl Message {
    /// Whether this message carries a span (encoded or not).
    #[inline]
    pub(crate) fn is_span(&self) -> bool {
        !matches!(self, Message::Flush(_))
    }

    /// The message carrying an encoded span, with `receipt`, and the length of the part
    /// of the encoding buffer that goes into the queue slot (0 for a heap frame).
    #[inline]
    pub(crate) fn encoded(encoded: Encoded, receipt: Option<ReceiptSender>) -> (Message, usize) {
        match encoded {
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

    /// Whether someone waits for this message (a flush, a span with a receipt): a
    /// dozing worker is woken for it at once.
    #[inline]
    pub(crate) fn is_urgent(&self) -> bool {
        match self {
            Message::Span { receipt, .. } | Message::Frame { receipt, .. } => receipt.is_some(),
            Message::Flush(_) => true,
        }
    }

    /// The receipt of a span message, taken out.
    #[inline]
    pub(crate) fn take_receipt(&mut self) -> Option<ReceiptSender> {
        match self {
            Message::Span { receipt, .. } | Message::Frame { receipt, .. } => receipt.take(),
            Message::Flush(_) => None,
        }
    }
}

/// One flush call: every worker reports its backend's result; the last one resolves it,
/// unless the flush's deadline resolved it first.
#[derive(Debug)]
pub(crate) struct FlushRound {
    backends: usize,
    state: Mutex<RoundState>,
}

#[derive(Debug)]
struct RoundState {
    reported: Vec<bool>,
    remaining: usize,
    failures: Vec<BackendError>,
    reply: Option<oneshot::Sender<Result<(), FlushError>>>,
    resolved: bool,
}

fn flush_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the flush deadline passed before this backend finished",
    )
}

impl FlushRound {
    pub(crate) fn new(
        backends: usize,
        reply: Option<oneshot::Sender<Result<(), FlushError>>>,
    ) -> Self {
        FlushRound {
            backends,
            state: Mutex::new(RoundState {
                reported: vec![false; backends],
                remaining: backends,
                failures: Vec::new(),
                reply,
                resolved: false,
            }),
        }
    }

    /// Records backend `index`'s outcome (`None`: success); the last report counts the
    /// flush and replies. Returns false when the round was already resolved (by its
    /// deadline): the report reached nobody.
    pub(crate) fn complete(
        &self,
        index: usize,
        failure: Option<BackendError>,
        counters: &Counters,
    ) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.resolved {
            return false;
        }
        match state.reported.get_mut(index) {
            Some(seen) if !*seen => *seen = true,
            // Reported already (or no such backend): nothing changes.
            _ => return true,
        }
        state.failures.extend(failure);
        state.remaining -= 1;
        if state.remaining == 0 {
            self.resolve(state, false, counters);
        }
        true
    }

    /// Resolves the round at its deadline: the backends that have not reported are
    /// listed as timed out. Does nothing if the round is resolved already.
    pub(crate) fn expire(&self, counters: &Counters) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.resolved {
            return;
        }
        let late: Vec<usize> = (0..self.backends)
            .filter(|i| !state.reported.get(*i).copied().unwrap_or(true))
            .collect();
        for i in late {
            state.failures.push(BackendError::new(i, flush_timed_out()));
        }
        self.resolve(state, true, counters);
    }

    fn resolve(
        &self,
        mut state: std::sync::MutexGuard<'_, RoundState>,
        timed_out: bool,
        counters: &Counters,
    ) {
        state.resolved = true;
        let mut failures = std::mem::take(&mut state.failures);
        let reply = state.reply.take();
        drop(state);
        counters.flushed(failures.is_empty());
        let result = if failures.is_empty() {
            Ok(())
        } else {
            failures.sort_by_key(BackendError::index);
            Err(FlushError::backends(failures, self.backends, timed_out))
        };
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}
