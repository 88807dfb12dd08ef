//! The named futures of the client, and the shutdown report.
//!
//! [`RecordFuture`], [`FlushFuture`] and [`ShutdownFuture`] are state machines, polled
//! in place: waiting for room in the queue or for the workers registers a waker in a
//! [`WaitList`](crate::waiters::WaitList) (no allocation per call, no box), and the
//! flush and shutdown deadlines are timers inside the futures, created at the first
//! poll that needs one. Each is cancel safe as its method documents.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use ssf_proto::SsfSpan;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::encode::INLINE;
use crate::error::{BackendError, DeliveryError, FlushError, RecordError};
use crate::message::{FlushRound, Message};
use crate::queue::{PushError, Refused};
use crate::shared::{Shared, Tx};
use crate::stats::{ClientStats, DropCounts};
use crate::waiters::WaitKey;

/// A boxed future, for the one case that needs it: a channel client waiting for room.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The future of [`Client::record`](crate::Client::record): resolves once the span is
/// in the queue.
///
/// Waiting for room registers a waker and allocates nothing (a client whose queue is a
/// [channel](crate::Client::channel) allocates when it must wait).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct RecordFuture {
    state: RecordState,
    key: WaitKey,
}

// The frame is held inline on purpose: a box would be an allocation per record.
#[allow(clippy::large_enum_variant)]
enum RecordState {
    /// Resolved when made.
    Done(Option<Result<(), RecordError>>),
    /// Waiting for room in the queue for `msg` (and, for an encoded span, the first
    /// `len` bytes of `frame`); `span` is the span to hand back if the queue closes.
    Queueing {
        tx: Tx,
        msg: Option<Message>,
        frame: [u8; INLINE],
        len: usize,
        span: Option<SsfSpan>,
    },
    /// A channel client waiting for room.
    Boxed(BoxFuture<Result<(), RecordError>>),
}

impl RecordFuture {
    pub(crate) fn done(result: Result<(), RecordError>) -> Self {
        Self::with(RecordState::Done(Some(result)))
    }

    /// Queues `msg` (with the first `len` bytes of `frame` for an encoded span),
    /// waiting for room; `span` is handed back if the queue closes first.
    pub(crate) fn queueing(
        tx: Tx,
        msg: Message,
        frame: [u8; INLINE],
        len: usize,
        span: Option<SsfSpan>,
    ) -> Self {
        Self::with(RecordState::Queueing {
            tx,
            msg: Some(msg),
            frame,
            len,
            span,
        })
    }

    pub(crate) fn boxed(f: impl Future<Output = Result<(), RecordError>> + Send + 'static) -> Self {
        Self::with(RecordState::Boxed(Box::pin(f)))
    }

    fn with(state: RecordState) -> Self {
        RecordFuture {
            state,
            key: WaitKey::default(),
        }
    }
}

/// One attempt to queue `msg`: counted as accepted only while the attempt is made, so
/// that a future dropped while waiting for room leaves no trace.
fn counted_push(shared: &Shared, msg: Message, inline: &[u8]) -> Result<(), Refused> {
    shared.counters.pre_accept();
    let r = shared.queue.try_push_inline(msg, inline);
    if r.is_err() {
        shared.counters.take_back();
    }
    r
}

impl Future for RecordFuture {
    type Output = Result<(), RecordError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            RecordState::Done(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or(Err(RecordError::Closed(SsfSpan::default()))),
            ),
            RecordState::Boxed(f) => f.as_mut().poll(cx),
            RecordState::Queueing {
                tx,
                msg,
                frame,
                len,
                span,
            } => {
                let shared = tx.shared();
                let inline = frame.get(..*len).unwrap_or_default();
                // Try, register for room, try again: a pop between the two is seen.
                for registered in [false, true] {
                    let Some(m) = msg.take() else {
                        return Poll::Ready(Err(RecordError::Closed(SsfSpan::default())));
                    };
                    match counted_push(shared, m, inline) {
                        Ok(()) => {
                            shared.queue.room().deregister(&mut this.key);
                            return Poll::Ready(Ok(()));
                        }
                        Err(PushError::Closed(m)) => {
                            shared.queue.room().deregister(&mut this.key);
                            shared.counters.refused(false);
                            let span = match m {
                                Message::Span { span, .. } => span,
                                _ => span.take().unwrap_or_default(),
                            };
                            return Poll::Ready(Err(RecordError::Closed(span)));
                        }
                        Err(PushError::Full(m)) => *msg = Some(m),
                    }
                    if !registered {
                        shared.queue.room().register(&mut this.key, cx.waker());
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for RecordFuture {
    fn drop(&mut self) {
        if let RecordState::Queueing { tx, .. } = &self.state {
            tx.shared().queue.room().deregister(&mut self.key);
        }
    }
}

impl fmt::Debug for RecordFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            RecordState::Done(_) => "done",
            RecordState::Queueing { .. } => "waiting for room",
            RecordState::Boxed(_) => "waiting for room in the channel",
        };
        f.debug_struct("RecordFuture")
            .field("state", &state)
            .finish()
    }
}

/// About 30 years from now: "no limit" for a deadline that overflows the clock.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// A timer for `limit` from now (a limit past the clock's end: 30 years).
fn timer(limit: Duration) -> Sleep {
    let at = tokio::time::Instant::now()
        .checked_add(limit)
        .unwrap_or_else(far_future);
    tokio::time::sleep_until(at)
}

/// Polls the timer in `slot`, creating it (for `limit`) at the first poll.
fn poll_timer(
    mut slot: Pin<&mut Option<Sleep>>,
    limit: Duration,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if slot.is_none() {
        slot.set(Some(timer(limit)));
    }
    match slot.as_pin_mut() {
        Some(sleep) => sleep.poll(cx),
        None => Poll::Pending,
    }
}

enum FlushState {
    Start,
    /// Waiting for room in the queue for the round's marker.
    Queueing {
        round: Arc<FlushRound>,
        reply: oneshot::Receiver<Result<(), FlushError>>,
        marker: Option<Message>,
    },
    /// The marker is queued (or the deadline passed): waiting for the round's reply.
    Waiting {
        round: Arc<FlushRound>,
        reply: oneshot::Receiver<Result<(), FlushError>>,
    },
    Done,
}

pin_project! {
    /// The future of [`Client::flush`](crate::Client::flush): queues a flush marker
    /// (waiting for room, within the time limit) and resolves with the round it starts.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct FlushFuture {
        shared: Arc<Shared>,
        // Holds the queue open while the flush runs; `None` for clients without workers.
        tx: Option<Tx>,
        limit: Duration,
        state: FlushState,
        key: WaitKey,
        #[pin]
        timer: Option<Sleep>,
    }

    impl PinnedDrop for FlushFuture {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.shared.queue.room().deregister(this.key);
        }
    }
}

impl FlushFuture {
    /// A flush of `shared`'s queue through `tx` (`None`: a client without workers,
    /// whose flushes succeed at once), with a time limit of `limit` from the first poll.
    pub(crate) fn new(shared: Arc<Shared>, tx: Option<Tx>, limit: Duration) -> Self {
        FlushFuture {
            shared,
            tx,
            limit,
            state: FlushState::Start,
            key: WaitKey::default(),
            timer: None,
        }
    }
}

impl Future for FlushFuture {
    type Output = Result<(), FlushError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        loop {
            match this.state {
                FlushState::Start => {
                    // Closed first: a shut-down client's flush fails, whatever its kind.
                    if shared.is_closing() {
                        shared.counters.flushed(false);
                        *this.tx = None;
                        *this.state = FlushState::Done;
                        return Poll::Ready(Err(FlushError::closed()));
                    }
                    if this.tx.is_none() {
                        shared.counters.flushed(true);
                        *this.state = FlushState::Done;
                        return Poll::Ready(Ok(()));
                    }
                    let (tx, reply) = oneshot::channel();
                    let round = Arc::new(FlushRound::new(shared.workers(), Some(tx)));
                    let marker = Some(Message::Flush(round.clone()));
                    *this.state = FlushState::Queueing {
                        round,
                        reply,
                        marker,
                    };
                }
                FlushState::Queueing {
                    round,
                    reply,
                    marker,
                } => {
                    let mut queued = false;
                    for registered in [false, true] {
                        let Some(m) = marker.take() else { break };
                        match shared.queue.try_push(m) {
                            Ok(()) => {
                                queued = true;
                                break;
                            }
                            Err(PushError::Closed(_)) => {
                                shared.queue.room().deregister(this.key);
                                shared.counters.flushed(false);
                                *this.tx = None;
                                *this.state = FlushState::Done;
                                return Poll::Ready(Err(FlushError::closed()));
                            }
                            Err(PushError::Full(m)) => *marker = Some(m),
                        }
                        if !registered {
                            shared.queue.room().register(this.key, cx.waker());
                        }
                    }
                    if !queued {
                        if poll_timer(this.timer.as_mut(), *this.limit, cx).is_pending() {
                            return Poll::Pending;
                        }
                        // The deadline passed with the queue full: every backend is
                        // late.
                        round.expire(&shared.counters);
                    }
                    shared.queue.room().deregister(this.key);
                    let round = round.clone();
                    let reply = std::mem::replace(reply, oneshot::channel().1);
                    *this.state = FlushState::Waiting { round, reply };
                }
                FlushState::Waiting { round, reply } => {
                    let got = match Pin::new(&mut *reply).poll(cx) {
                        Poll::Ready(got) => got,
                        Poll::Pending => {
                            ready!(poll_timer(this.timer.as_mut(), *this.limit, cx));
                            // The deadline: the backends that have not reported are
                            // late; the round is resolved now (by them or here).
                            round.expire(&shared.counters);
                            ready!(Pin::new(&mut *reply).poll(cx))
                        }
                    };
                    *this.tx = None;
                    *this.state = FlushState::Done;
                    // A round dropped unresolved means every worker that held it
                    // stopped: the client closed.
                    return Poll::Ready(got.unwrap_or_else(|_| Err(FlushError::closed())));
                }
                FlushState::Done => return Poll::Ready(Err(FlushError::closed())),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShutdownState {
    Start,
    /// The workers drain the queue.
    Draining,
    /// The deadline passed: the workers stop where they are.
    Aborting,
    Done,
}

pin_project! {
    /// The future of [`Client::shutdown`](crate::Client::shutdown): closes the client,
    /// waits for its workers (aborting them at the deadline) and reports.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ShutdownFuture {
        shared: Arc<Shared>,
        limit: Duration,
        state: ShutdownState,
        key: WaitKey,
        #[pin]
        timer: Option<Sleep>,
    }

    impl PinnedDrop for ShutdownFuture {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.shared.workers_done().deregister(this.key);
        }
    }
}

impl ShutdownFuture {
    /// A shutdown of `shared` within `limit` from the first poll.
    pub(crate) fn new(shared: Arc<Shared>, limit: Duration) -> Self {
        ShutdownFuture {
            shared,
            limit,
            state: ShutdownState::Start,
            key: WaitKey::default(),
            timer: None,
        }
    }
}

impl Future for ShutdownFuture {
    type Output = ShutdownReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownReport> {
        let mut this = self.project();
        let shared = &**this.shared;
        loop {
            match *this.state {
                ShutdownState::Start => {
                    shared.close();
                    *this.state = ShutdownState::Draining;
                }
                ShutdownState::Draining | ShutdownState::Aborting => {
                    let done = shared
                        .workers_done()
                        .poll_until(this.key, cx, || shared.all_workers_done());
                    if done.is_ready() {
                        let timed_out = *this.state == ShutdownState::Aborting;
                        *this.state = ShutdownState::Done;
                        return Poll::Ready(ShutdownReport::new(
                            shared.counters.snapshot(),
                            timed_out,
                            shared.take_final_errors(),
                        ));
                    }
                    if *this.state == ShutdownState::Aborting {
                        return Poll::Pending;
                    }
                    ready!(poll_timer(this.timer.as_mut(), *this.limit, cx));
                    shared.aborting.set();
                    *this.state = ShutdownState::Aborting;
                }
                // Polled again after it resolved: the same report, without the errors
                // (they went to the first caller).
                ShutdownState::Done => {
                    return Poll::Ready(ShutdownReport::new(
                        shared.counters.snapshot(),
                        shared.aborting.is_set(),
                        Vec::new(),
                    ));
                }
            }
        }
    }
}

impl fmt::Debug for FlushFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ShutdownFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownFuture")
            .field("limit", &self.limit)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Resolves once a backend wrote the span (`Ok`) or dropped it (`Err`, with the reason).
/// From [`Client::record_with_receipt`](crate::Client::record_with_receipt).
///
/// Dropping a receipt never holds up the backend.
#[must_use = "futures do nothing unless you `.await` or poll them"]
#[derive(Debug)]
pub struct Receipt {
    state: ReceiptState,
}

#[derive(Debug)]
enum ReceiptState {
    Ready(Option<Result<(), DeliveryError>>),
    Waiting(oneshot::Receiver<Result<(), DeliveryError>>),
}

impl Receipt {
    pub(crate) fn ready(result: Result<(), DeliveryError>) -> Self {
        Receipt {
            state: ReceiptState::Ready(Some(result)),
        }
    }

    pub(crate) fn waiting(rx: oneshot::Receiver<Result<(), DeliveryError>>) -> Self {
        Receipt {
            state: ReceiptState::Waiting(rx),
        }
    }
}

impl Future for Receipt {
    type Output = Result<(), DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            ReceiptState::Ready(r) => {
                Poll::Ready(r.take().unwrap_or_else(|| Err(DeliveryError::closed())))
            }
            ReceiptState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(DeliveryError::closed()))),
        }
    }
}

/// What [`Client::shutdown`](crate::Client::shutdown) reports.
///
/// Unless the shutdown [timed out](Self::timed_out) while a backend could not notice,
/// every accepted span is accounted for: `accepted == sent + dropped_total`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    stats: ClientStats,
    timed_out: bool,
    errors: Vec<BackendError>,
}

impl ShutdownReport {
    pub(crate) fn new(stats: ClientStats, timed_out: bool, errors: Vec<BackendError>) -> Self {
        ShutdownReport {
            stats,
            timed_out,
            errors,
        }
    }

    /// Spans written over the client's life.
    pub fn sent(&self) -> u64 {
        self.stats.sent()
    }

    /// Spans dropped over the client's life, by reason.
    pub fn dropped(&self) -> DropCounts {
        self.stats.dropped()
    }

    /// Spans dropped over the client's life.
    pub fn dropped_total(&self) -> u64 {
        self.stats.dropped_total()
    }

    /// Spans accepted over the client's life.
    pub fn accepted(&self) -> u64 {
        self.stats.accepted()
    }

    /// Whether the deadline passed before the backends finished (what they still held
    /// is counted as dropped with reason `closed`).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Errors of the backends' final flush and close, by backend index.
    pub fn errors(&self) -> &[BackendError] {
        &self.errors
    }

    /// The errors, by value.
    pub fn into_errors(self) -> Vec<BackendError> {
        self.errors
    }

    /// All counters at the end of the shutdown.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }
}
