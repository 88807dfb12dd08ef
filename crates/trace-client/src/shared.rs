//! The state shared by a client's handles, its workers and its side tasks, and the
//! flush call that runs over all of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::error::{BackendError, FlushError};
use crate::message::{FlushRound, Message};
use crate::queue::Queue;
use crate::stats::Counters;

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
        flush_timeout: Duration,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            draining: Signal::default(),
            aborting: Signal::default(),
            peer_down: AtomicBool::new(false),
            flush_timeout,
            queue: Queue::new(capacity),
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
