//! The state shared by a client's handles, its workers and its side tasks, and the
//! senders that keep its queue open.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::error::BackendError;
use crate::message::FlushRound;
use crate::queue::Queue;
use crate::stats::Counters;
use crate::waiters::WaitList;

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

/// The process-wide switch of [`disable`]. Relaxed: it publishes no data, and a record
/// racing a switch may go either way.
static PROCESS_DISABLED: AtomicBool = AtomicBool::new(false);

/// Switches recording off for every client of the process (veneur's `Disable`, which
/// there does nothing; here it does): until [`enable`], spans handed to any client are
/// neither encoded nor queued but discarded at once, and counted as dropped with
/// [`DropReason::Disabled`](crate::DropReason::Disabled). Spans queued before are still
/// sent, flushes and shutdowns work as usual. A client can also be switched off alone
/// ([`Client::disable`](crate::Client::disable)).
///
/// ```standalone_crate
/// let (client, mut rx) = trace_client::Client::channel(8);
/// trace_client::disable();
/// assert!(trace_client::is_disabled() && client.is_disabled());
/// client.try_record(Default::default())?; // discarded
/// trace_client::enable();
/// client.try_record(Default::default())?; // sent
/// assert_eq!(client.stats().disabled(), 1);
/// assert!(rx.try_recv().is_ok() && rx.try_recv().is_err());
/// # Ok::<(), trace_client::TryRecordError>(())
/// ```
pub fn disable() {
    PROCESS_DISABLED.store(true, Ordering::Relaxed);
}

/// Switches recording back on after [`disable`] (veneur's `Enable`); clients switched off
/// on their own stay off.
pub fn enable() {
    PROCESS_DISABLED.store(false, Ordering::Relaxed);
}

/// Whether recording is switched off for the whole process (veneur's `Disabled`).
pub fn is_disabled() -> bool {
    PROCESS_DISABLED.load(Ordering::Relaxed)
}

/// State shared by a client's handles, its workers and its side tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// Intake stopped: records are refused as closed.
    pub(crate) closing: AtomicBool,
    /// This client's own switch ([`Client::disable`](crate::Client::disable)).
    pub(crate) disabled: AtomicBool,
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
    workers_done: WaitList,
    /// Errors of the final flush and close of each backend.
    final_errors: Mutex<Vec<BackendError>>,
}

impl Shared {
    /// `batches`: the workers wait for a batch when they need not take less (see
    /// `queue::wake`).
    pub(crate) fn new(
        capacity: usize,
        batches: bool,
        controls: Vec<mpsc::UnboundedSender<Arc<FlushRound>>>,
        flush_timeout: Duration,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
            draining: Signal::default(),
            aborting: Signal::default(),
            peer_down: AtomicBool::new(false),
            flush_timeout,
            queue: if batches {
                Queue::batching(capacity)
            } else {
                Queue::new(capacity)
            },
            live_workers: AtomicUsize::new(controls.len()),
            controls,
            workers_done: WaitList::default(),
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

    /// Whether spans are discarded: this client or the process is disabled.
    #[inline]
    pub(crate) fn discards(&self) -> bool {
        self.disabled.load(Ordering::Relaxed) || PROCESS_DISABLED.load(Ordering::Relaxed)
    }

    /// Stops intake and tells the workers to drain. Never waits.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.draining.set();
        // Later pushes are refused; the workers take what is queued, then stop.
        self.queue.close();
    }

    pub(crate) fn worker_exited(&self) {
        if self.live_workers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.workers_done.wake_all();
        }
    }

    pub(crate) fn all_workers_done(&self) -> bool {
        self.live_workers.load(Ordering::SeqCst) == 0
    }

    /// The tasks waiting for every worker to exit.
    pub(crate) fn workers_done(&self) -> &WaitList {
        &self.workers_done
    }

    /// Resolves once every worker has exited.
    pub(crate) async fn wait_workers_done(&self) {
        self.workers_done
            .wait_until(|| self.all_workers_done())
            .await;
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

/// A sender of the client's queue: while one exists the queue stays open; when the last
/// one goes (the last handle, and any flush or record in flight), the workers drain it
/// and stop.
pub(crate) struct Tx(Arc<Shared>);

impl Tx {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.queue.add_sender();
        Tx(shared)
    }

    /// A sender, unless the last one is gone already.
    pub(crate) fn upgrade(shared: &Arc<Shared>) -> Option<Self> {
        shared.queue.upgrade_sender().then(|| Tx(shared.clone()))
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Clone for Tx {
    fn clone(&self) -> Self {
        Tx::new(self.0.clone())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.0.queue.remove_sender();
    }
}
