//! The worker task: one per backend, taking batches from the shared queue.
//!
//! A worker is idle or busy. Idle, it waits (in this priority) for the shutdown deadline,
//! a flush round from another worker, the start of a shutdown, or a batch from the queue
//! (taken under the queue's lock, at most `batch` messages). Busy, it works through its
//! batch in order; each write races against the shutdown deadline.
//!
//! Flush barrier: the worker that takes a flush marker asks every other worker (through
//! its control channel) to flush, and flushes its own backend at that point of its batch.
//! The others see the request only when idle, i.e. after finishing the batch they had
//! taken, which holds every span queued before the marker that they took. So once all
//! backends reported, every span queued before the flush was written (or dropped).

use std::io;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{BackendError, DeliveryError, DropReason};
use crate::message::{FlushRound, Message, Shared};
use crate::transport::Transport;

pub(crate) struct Worker<T> {
    pub(crate) index: usize,
    pub(crate) transport: T,
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: mpsc::UnboundedReceiver<Arc<FlushRound>>,
    pub(crate) batch: usize,
}

enum Next {
    Abort,
    Control(Arc<FlushRound>),
    Drain,
    Batch(usize),
}

/// Decrements the live-worker count however the worker ends (a panic in our own code
/// included), so that shutdown never waits for a dead worker.
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.counters.panicked();
        }
        self.0.worker_exited();
    }
}

fn shut_down_error() -> io::Error {
    io::Error::other("the client shut down before this backend flushed")
}

/// Drops a message during an abort: spans are counted, receipts and flush rounds answered.
fn discard(msg: Message, shared: &Shared) {
    match msg {
        Message::Span { receipt, .. } => {
            shared.counters.dropped(DropReason::Closed, 1);
            if let Some(r) = receipt {
                let _ = r.send(Err(DeliveryError::closed()));
            }
        }
        Message::Flush(round) => {
            // Nobody will flush any backend for this round any more.
            for i in 0..shared.workers() {
                round.complete(
                    i,
                    Some(BackendError::new(i, shut_down_error())),
                    &shared.counters,
                );
            }
        }
    }
}

impl<T: Transport> Worker<T> {
    pub(crate) async fn run(self) {
        let Worker {
            index,
            mut transport,
            shared,
            mut control,
            batch: limit,
        } = self;
        let _guard = LiveGuard(shared.clone());
        let mut batch: Vec<Message> = Vec::with_capacity(limit);
        let mut drain_seen = false;

        let aborted = 'main: loop {
            let next = tokio::select! {
                biased;
                _ = shared.aborting.wait() => Next::Abort,
                Some(round) = control.recv() => Next::Control(round),
                _ = shared.draining.wait(), if !drain_seen => Next::Drain,
                n = async {
                    let mut rx = shared.rx.lock().await;
                    rx.recv_many(&mut batch, limit).await
                } => Next::Batch(n),
            };
            match next {
                Next::Abort => break 'main true,
                Next::Control(round) => {
                    if !flush_own(index, &mut transport, &shared, &round).await {
                        break 'main true;
                    }
                }
                Next::Drain => {
                    drain_seen = true;
                    // Later sends are refused; what is queued (or being sent through a
                    // reserved permit) can still be received.
                    shared.rx.lock().await.close();
                }
                Next::Batch(0) => break 'main false,
                Next::Batch(_) => {
                    let mut msgs = batch.drain(..);
                    while let Some(msg) = msgs.next() {
                        let ok = match msg {
                            Message::Span { span, receipt } => {
                                let result = tokio::select! {
                                    biased;
                                    r = transport.send(&span) => Some(r),
                                    _ = shared.aborting.wait() => None,
                                };
                                match result {
                                    Some(r) => {
                                        if let Some(tx) = receipt {
                                            let _ = tx.send(r);
                                        }
                                        true
                                    }
                                    None => {
                                        discard(Message::Span { span, receipt }, &shared);
                                        false
                                    }
                                }
                            }
                            Message::Flush(round) => {
                                for (i, ctl) in shared.controls.iter().enumerate() {
                                    if i != index && ctl.send(round.clone()).is_err() {
                                        let stopped =
                                            io::Error::other("backend worker has stopped");
                                        round.complete(
                                            i,
                                            Some(BackendError::new(i, stopped)),
                                            &shared.counters,
                                        );
                                    }
                                }
                                flush_own(index, &mut transport, &shared, &round).await
                            }
                        };
                        if !ok {
                            for rest in msgs {
                                discard(rest, &shared);
                            }
                            break 'main true;
                        }
                    }
                }
            }
        };

        if !aborted {
            // The queue is closed and empty: write out what is buffered and close.
            let result = tokio::select! {
                biased;
                r = transport.close() => Some(r),
                _ = shared.aborting.wait() => None,
            };
            match result {
                Some(Ok(())) => {}
                Some(Err(e)) => shared.push_final_error(BackendError::new(index, e)),
                None => finish_abort(&mut transport, &shared).await,
            }
        } else {
            finish_abort(&mut transport, &shared).await;
        }

        // Flush requests that arrive from now on are answered by the sender (the channel
        // is closed); answer those already here.
        control.close();
        while let Ok(round) = control.try_recv() {
            round.complete(
                index,
                Some(BackendError::new(index, shut_down_error())),
                &shared.counters,
            );
        }
    }
}

/// Flushes this worker's backend for a round, reporting the flush's error or, failing
/// that, the spans the backend dropped since its previous report. Returns false if the
/// deadline cut it off.
async fn flush_own<T: Transport>(
    index: usize,
    transport: &mut T,
    shared: &Shared,
    round: &FlushRound,
) -> bool {
    let result = tokio::select! {
        biased;
        r = transport.flush() => Some(r),
        _ = shared.aborting.wait() => None,
    };
    match result {
        Some(r) => {
            let dropped = transport.ledger().take();
            let failure = BackendError::for_flush(index, r, dropped.clone());
            if !round.complete(index, failure, &shared.counters) {
                // The flush gave up waiting: keep the drops for the next one.
                if let Some(d) = dropped {
                    transport.ledger().restore(d);
                }
            }
            true
        }
        None => {
            round.complete(
                index,
                Some(BackendError::new(index, shut_down_error())),
                &shared.counters,
            );
            false
        }
    }
}

/// After the deadline: drop the connection and everything still queued, counting it.
async fn finish_abort<T: Transport>(transport: &mut T, shared: &Shared) {
    shared
        .counters
        .dropped(DropReason::Closed, transport.abort());
    let mut rx = shared.rx.lock().await;
    rx.close();
    // `recv` (unlike `try_recv`) also waits for a reserved permit to deliver its span, so
    // nothing can stay in the queue uncounted. Permits are used right after they are
    // granted, so this does not wait for long.
    while let Some(msg) = rx.recv().await {
        discard(msg, shared);
    }
}
