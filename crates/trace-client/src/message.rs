//! What travels through the queue, and the state shared by a client's handles and workers.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ssf_proto::SsfSpan;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{BackendError, DeliveryError, FlushError};
use crate::stats::Counters;

/// The sender half of a receipt.
pub(crate) type ReceiptSender = oneshot::Sender<Result<(), DeliveryError>>;

/// One entry of the queue.
pub(crate) enum Message {
    /// A span to send, with an optional receipt to resolve once it is written or dropped.
    Span {
        span: SsfSpan,
        receipt: Option<ReceiptSender>,
    },
    /// A flush barrier: the worker that takes it asks every worker to flush once it has
    /// finished the spans it took before.
    Flush(Arc<FlushRound>),
}

impl Message {
    /// The span of a message known to be a [`Message::Span`] (the queue hands back what it
    /// refused).
    pub(crate) fn into_span(self) -> SsfSpan {
        match self {
            Message::Span { span, .. } => span,
            // Only span messages are ever handed to `try_send`/`send` by the record paths.
            Message::Flush(_) => SsfSpan::default(),
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
    /// The shared queue's receiving end (workers take batches under this lock).
    pub(crate) rx: tokio::sync::Mutex<mpsc::Receiver<Message>>,
    /// Per-worker control channels, for flush rounds.
    pub(crate) controls: Vec<mpsc::UnboundedSender<Arc<FlushRound>>>,
    live_workers: AtomicUsize,
    workers_done: Notify,
    /// Errors of the final flush and close of each backend.
    final_errors: Mutex<Vec<BackendError>>,
}

impl Shared {
    pub(crate) fn new(
        rx: mpsc::Receiver<Message>,
        controls: Vec<mpsc::UnboundedSender<Arc<FlushRound>>>,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            draining: Signal::default(),
            aborting: Signal::default(),
            rx: tokio::sync::Mutex::new(rx),
            live_workers: AtomicUsize::new(controls.len()),
            controls,
            workers_done: Notify::new(),
            final_errors: Mutex::new(Vec::new()),
        }
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

/// One flush call: every worker reports its backend's result; the last one resolves it.
#[derive(Debug)]
pub(crate) struct FlushRound {
    remaining: AtomicUsize,
    backends: usize,
    state: Mutex<RoundState>,
}

#[derive(Debug)]
struct RoundState {
    failures: Vec<BackendError>,
    reply: Option<oneshot::Sender<Result<(), FlushError>>>,
}

impl FlushRound {
    pub(crate) fn new(
        backends: usize,
        reply: Option<oneshot::Sender<Result<(), FlushError>>>,
    ) -> Self {
        FlushRound {
            remaining: AtomicUsize::new(backends),
            backends,
            state: Mutex::new(RoundState {
                failures: Vec::new(),
                reply,
            }),
        }
    }

    /// Records backend `index`'s result; the last call counts the flush and replies.
    pub(crate) fn complete(&self, index: usize, result: io::Result<()>, counters: &Counters) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = result {
            state.failures.push(BackendError::new(index, e));
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut failures = std::mem::take(&mut state.failures);
            let reply = state.reply.take();
            drop(state);
            counters.flushed(failures.is_empty());
            let result = if failures.is_empty() {
                Ok(())
            } else {
                failures.sort_by_key(BackendError::index);
                Err(FlushError::backends(failures, self.backends))
            };
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }
}
