//! What travels through the queue, and the state shared by a client's handles and workers.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ssf_proto::SsfSpan;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::error::{BackendError, DeliveryError, FlushError};
use crate::queue::Queue;
use crate::stats::Counters;

/// The sender half of a receipt.
pub(crate) type ReceiptSender = oneshot::Sender<Result<(), DeliveryError>>;

/// What a queue slot carries besides an inline frame (see [`Entry`](crate::queue::Entry)).
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

    /// The receipt of a span message, taken out.
    #[inline]
    pub(crate) fn take_receipt(&mut self) -> Option<ReceiptSender> {
        match self {
            Message::Span { receipt, .. } | Message::Frame { receipt, .. } => receipt.take(),
            Message::Flush(_) => None,
        }
    }
}

/// A one-way flag that tasks can wait for.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub(crate) fn set(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set. Costs nothing until polled.
    pub(crate) async fn wait(&self) {
        loop {
            // Created before the check: a `notify_waiters` after this line wakes it.
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// State shared by a client's handles, its workers and its side tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// Intake stopped: records are refused as closed.
    pub(crate) closing: AtomicBool,
    /// Workers close the queue and finish what is in it.
    pub(crate) draining: Signal,
    /// Workers stop writing: what is left is dropped as closed.
    pub(crate) aborting: Signal,
    /// A connect sequence failed and no backend has connected since: backends without a
    /// connection are down (they try in the background instead of making spans wait).
    pub(crate) peer_down: AtomicBool,
    /// The time limit of [`Client::flush`](crate::Client::flush).
    pub(crate) flush_timeout: Duration,
    /// The queue between the client's handles and its workers.
    pub(crate) queue: Queue,
    /// Per-worker control channels, for flush rounds.
    pub(crate) controls: Vec<mpsc::UnboundedSender<Arc<FlushRound>>>,
    live_workers: AtomicUsize,
    workers_done: Notify,
    /// Errors of the final flush and close of each backend.
    final_errors: Mutex<Vec<BackendError>>,
}

impl Shared {
    pub(crate) fn new(
        capacity: usize,
        controls: Vec<mpsc::UnboundedSender<Arc<FlushRound>>>,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            draining: Signal::default(),
            aborting: Signal::default(),
            peer_down: AtomicBool::new(false),
            flush_timeout: crate::builder::DEFAULT_FLUSH_TIMEOUT,
            queue: Queue::new(capacity),
            live_workers: AtomicUsize::new(controls.len()),
            controls,
            workers_done: Notify::new(),
            final_errors: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    pub(crate) fn workers(&self) -> usize {
        self.controls.len()
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Stops intake and tells the workers to drain. Never waits.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.draining.set();
        // Later pushes are refused; the workers take what is queued, then stop.
        self.queue.close();
    }

    pub(crate) fn worker_exited(&self) {
        if self.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.workers_done.notify_waiters();
        }
    }

    pub(crate) fn all_workers_done(&self) -> bool {
        self.live_workers.load(Ordering::Acquire) == 0
    }

    /// Resolves once every worker has exited.
    pub(crate) async fn wait_workers_done(&self) {
        loop {
            let notified = self.workers_done.notified();
            if self.all_workers_done() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn push_final_error(&self, e: BackendError) {
        self.final_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    pub(crate) fn take_final_errors(&self) -> Vec<BackendError> {
        let mut v = std::mem::take(
            &mut *self
                .final_errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        v.sort_by_key(BackendError::index);
        v
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

/// Queues a flush marker and waits for the round it starts, until `deadline`.
///
/// Waits for room in the queue if it is full (within the deadline). At the deadline the
/// round is resolved with the backends that have not reported listed as timed out. The
/// caller holds a sender of the queue (so it stays open) while this runs.
pub(crate) async fn run_flush(shared: &Shared, deadline: Instant) -> Result<(), FlushError> {
    let (reply, mut result) = oneshot::channel();
    let round = Arc::new(FlushRound::new(shared.workers(), Some(reply)));
    let queued = tokio::select! {
        biased;
        r = shared.queue.push(Message::Flush(round.clone())) => Some(r.is_ok()),
        _ = tokio::time::sleep_until(deadline) => None,
    };
    match queued {
        Some(true) => {}
        Some(false) => {
            shared.counters.flushed(false);
            return Err(FlushError::closed());
        }
        None => round.expire(&shared.counters),
    }
    let got = match tokio::time::timeout_at(deadline, &mut result).await {
        Ok(got) => got,
        Err(_) => {
            round.expire(&shared.counters);
            // Resolved now: either a backend or `expire` replied.
            result.await
        }
    };
    // A round dropped unresolved means every worker that held it stopped: the client
    // closed.
    got.unwrap_or_else(|_| Err(FlushError::closed()))
}
