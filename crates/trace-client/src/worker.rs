//! The worker task: one per backend, taking batches from the shared queue.
//!
//! A worker is idle or busy. Idle, it waits (in this priority) for the shutdown deadline,
//! a flush round from another worker, or work in the queue (see [`Queue`]). Busy, it
//! takes batches of at most `batch` messages until the queue is empty: each span goes
//! straight from the queue into its transport ([`Transport::stage`]: an encoded frame is
//! copied into the write buffer), and once the batch ends (the queue is empty, the
//! transport has a full buffer to write, or a flush marker came) the transport sends what
//! it holds ([`Transport::send_staged`]); between batches it answers flush rounds.
//!
//! Flush barrier: the worker that takes a flush marker asks every other worker (through
//! its control channel) to flush, and flushes its own backend at that point of its batch.
//! The others answer after finishing the batch they are working on, which holds every
//! span queued before the marker that they took (the queue is FIFO: such a span was taken
//! before the marker was). So once all backends reported, every span queued before the
//! flush was written (or dropped).
//!
//! [`Queue`]: crate::queue::Queue

use std::io;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{BackendError, DeliveryError, DropReason};
use crate::message::{FlushRound, Message};
use crate::queue::Popped;
use crate::shared::Shared;
use crate::transport::Transport;

pub(crate) struct Worker<T> {
    pub(crate) index: usize,
    pub(crate) transport: T,
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: mpsc::UnboundedReceiver<Arc<FlushRound>>,
    pub(crate) batch: usize,
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
        Message::Span { receipt, .. } | Message::Frame { receipt, .. } => {
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

        let aborted = 'main: loop {
            let searching = tokio::select! {
                biased;
                _ = shared.aborting.wait() => break 'main true,
                Some(round) = control.recv() => {
                    if !flush_own(index, &mut transport, &shared, &round).await {
                        break 'main true;
                    }
                    continue 'main;
                }
                s = shared.queue.wait_for_work(index == 0) => s,
            };
            let mut searching = Some(searching);
            loop {
                // Spans go straight from the queue into the transport; a flush marker,
                // or a transport with enough to write, ends the batch.
                let mut marker = None;
                let popped =
                    shared
                        .queue
                        .pop_with(limit, searching.take(), |msg, inline| match msg {
                            Message::Flush(round) => {
                                marker = Some(round);
                                false
                            }
                            span => transport.stage(span, inline),
                        });
                match popped {
                    Popped::Closed => break 'main false,
                    Popped::Empty => continue 'main,
                    Popped::Some(n) => {
                        transport.send_staged().await;
                        if shared.aborting.is_set() {
                            // A flush marker taken with this batch is answered (as shut
                            // down) like those still in the queue.
                            if let Some(round) = marker {
                                discard(Message::Flush(round), &shared);
                            }
                            break 'main true;
                        }
                        if let Some(round) = marker {
                            if !start_round(index, &mut transport, &shared, &round).await {
                                break 'main true;
                            }
                        }
                        // Rounds that came in meanwhile: the batch is done.
                        while let Ok(round) = control.try_recv() {
                            if !flush_own(index, &mut transport, &shared, &round).await {
                                break 'main true;
                            }
                        }
                        // Less than a batch was there: wait for the next one (see
                        // `queue::wake`) rather than take what trickled in meanwhile.
                        if n < limit {
                            continue 'main;
                        }
                    }
                }
            }
        };

        if !aborted {
            // The queue is closed and empty: write out what is buffered and close.
            let result = transport.close().await;
            if shared.aborting.is_set() {
                finish_abort(&mut transport, &shared);
            } else if let Err(e) = result {
                shared.push_final_error(BackendError::new(index, e));
            }
        } else {
            finish_abort(&mut transport, &shared);
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

/// Starts a flush round from its marker: asks every other worker to flush (they answer
/// once done with the batch they hold) and flushes this worker's backend, whose spans
/// from before the marker are sent. Returns false if the client aborted meanwhile.
async fn start_round<T: Transport>(
    index: usize,
    transport: &mut T,
    shared: &Shared,
    round: &Arc<FlushRound>,
) -> bool {
    for (j, ctl) in shared.controls.iter().enumerate() {
        if j != index && ctl.send(round.clone()).is_err() {
            let stopped = io::Error::other("backend worker has stopped");
            round.complete(j, Some(BackendError::new(j, stopped)), &shared.counters);
        }
    }
    flush_own(index, transport, shared, round).await
}

/// Flushes this worker's backend for a round, reporting the flush's error or, failing
/// that, the spans the backend dropped since its previous report. Returns false if the
/// client aborted meanwhile.
async fn flush_own<T: Transport>(
    index: usize,
    transport: &mut T,
    shared: &Shared,
    round: &FlushRound,
) -> bool {
    let r = transport.flush().await;
    if shared.aborting.is_set() {
        round.complete(
            index,
            Some(BackendError::new(index, shut_down_error())),
            &shared.counters,
        );
        return false;
    }
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

/// After the deadline: drop the connection and everything still queued, counting it.
fn finish_abort<T: Transport>(transport: &mut T, shared: &Shared) {
    shared
        .counters
        .dropped(DropReason::Closed, transport.abort());
    shared.queue.close();
    // Pushes and the close are atomic: once closed, what is in the queue is all there
    // will ever be.
    let mut rest = Vec::new();
    while let Popped::Some(_) = shared.queue.pop_batch(&mut rest, 256, None) {
        for msg in rest.drain(..) {
            discard(msg, shared);
        }
    }
}
