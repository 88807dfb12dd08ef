//! The [`Client`] handle.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ssf_proto::wire::SpanFields;
use ssf_proto::{SsfSample, SsfSpan};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::encode::{self, Framing, INLINE, WithService};
use crate::error::{DeliveryError, DropReason, RecordError, TryRecordError};
use crate::future::{FlushFuture, Receipt, RecordFuture, ShutdownFuture};
use crate::message::{Message, ReceiptSender};
use crate::queue::{PushError, Refused, Written};
use crate::sampling::Sampler;
use crate::shared::{Shared, Tx};
use crate::stats::{ClientStats, Counters, StatsCounter, report_counters};
use crate::transport::oversize_error;

pub(crate) type Normalizer = Arc<dyn Fn(&mut SsfSample) + Send + Sync>;

pub(crate) enum Kind {
    /// The shared queue, drained by the workers.
    Queue(Tx),
    /// The user's channel is the queue.
    Channel(mpsc::Sender<SsfSpan>),
    /// Refuses everything.
    Neutralized,
}

/// Where a queue client's spans are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Not at all: the span itself is queued (user backends, channels).
    None,
    /// When recorded, on the caller's task: the queue carries what the transport sends
    /// (`framing`). Spans whose encoding is over `max` bytes are dropped as oversize.
    OnRecord { framing: Framing, max: usize },
    /// By the backends: the queue carries spans.
    InBackend,
}

struct Inner {
    kind: Kind,
    shared: Arc<Shared>,
    normalizer: Option<Normalizer>,
    encoding: Encoding,
    /// The service name of spans recorded without one ([`ClientBuilder::service`]).
    ///
    /// [`ClientBuilder::service`]: crate::ClientBuilder::service
    service: Option<Arc<str>>,
    /// Which traces are recorded ([`ClientBuilder::sampler`]).
    ///
    /// [`ClientBuilder::sampler`]: crate::ClientBuilder::sampler
    sampler: Sampler,
}

/// A handle to an SSF client: a bounded queue of spans drained by backend tasks.
///
/// Cloning is cheap (an `Arc`); all clones share the queue, the backends and the
/// statistics. See the [crate documentation](crate) for the semantics of recording,
/// flushing, shutting down and dropping.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner.kind {
            Kind::Queue(_) => "queue",
            Kind::Channel(_) => "channel",
            Kind::Neutralized => "neutralized",
        };
        f.debug_struct("Client")
            .field("kind", &kind)
            .field("backends", &self.inner.shared.workers())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Client {
    pub(crate) fn from_parts(
        kind: Kind,
        shared: Arc<Shared>,
        normalizer: Option<Normalizer>,
        encoding: Encoding,
        service: Option<Arc<str>>,
    ) -> Self {
        Client {
            inner: Arc::new(Inner {
                kind,
                shared,
                normalizer,
                encoding,
                service,
                sampler: Sampler::always(),
            }),
        }
    }

    /// This freshly made client with `sampler`.
    pub(crate) fn with_sampler(mut self, sampler: Sampler) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sampler = sampler;
        }
        self
    }

    /// The client's [`Sampler`] ([`ClientBuilder::sampler`](crate::ClientBuilder::sampler)).
    pub fn sampler(&self) -> Sampler {
        self.inner.sampler
    }

    /// Whether the sampler records a span of trace `trace_id` whose trace carries the
    /// decision `parent`; spans of trace 0 (metrics carriers) always are.
    #[inline]
    fn samples(&self, trace_id: i64, parent: Option<bool>) -> bool {
        let sampler = &self.inner.sampler;
        sampler.records_all() || trace_id == 0 || sampler.samples(trace_id, parent)
    }

    /// Counts a carrier's baggage that was refused (over its limits or malformed) in
    /// [`ClientStats::baggage_refused`]: the trace-http server middleware calls it for
    /// the requests it traces, and so can other instrumentation that extracts contexts
    /// with [`propagation::extract_headers_checked`](crate::propagation::extract_headers_checked).
    pub fn count_refused_baggage(&self) {
        self.inner.shared.counters.baggage_refused();
    }

    pub(crate) fn without_workers(kind: Kind) -> Self {
        Self::from_parts(
            kind,
            Arc::new(Shared::new(1, false, Vec::new(), Duration::MAX)),
            None,
            Encoding::None,
            None,
        )
    }

    /// A client that refuses every span (as closed, counted in the statistics) and whose
    /// flushes succeed: for tests and for turning tracing off. Needs no runtime.
    pub fn neutralized() -> Client {
        // Not closed: it refuses spans by its kind, and its flushes succeed until it is
        // shut down.
        Self::without_workers(Kind::Neutralized)
    }

    pub(crate) fn same_client(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.shared.counters
    }

    /// The service name this client gives spans recorded without one
    /// ([`ClientBuilder::service`](crate::ClientBuilder::service)).
    pub fn service(&self) -> Option<&str> {
        self.inner.service.as_deref()
    }

    /// Gives a span that has no service name this client's.
    #[inline]
    fn fill_service(&self, span: &mut SsfSpan) {
        if let Some(svc) = &self.inner.service {
            if span.service.is_empty() {
                span.service = svc.to_string();
            }
        }
    }

    /// Encodes `span` for its transport, with this client's service name if it has none.
    #[inline]
    fn encode<S: SpanFields + ?Sized>(
        &self,
        span: &S,
        framing: Framing,
        max: usize,
        buf: &mut [u8; INLINE],
    ) -> Result<encode::Encoded, usize> {
        match &self.inner.service {
            Some(service) if span.service().is_empty() => {
                encode::encode(&WithService { span, service }, framing, max, buf)
            }
            _ => encode::encode(span, framing, max, buf),
        }
    }

    fn normalize(&self, span: &mut SsfSpan) {
        if let Some(f) = &self.inner.normalizer {
            if span.metrics.is_empty() {
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(|| {
                for sample in &mut span.metrics {
                    f(sample);
                }
            }));
            if result.is_err() {
                self.counters().panicked();
            }
        }
    }

    /// Queues a span without waiting. Never blocks, and allocates nothing: the queue's
    /// slots are allocated when the client is built.
    ///
    /// A network client encodes the span here, on the caller's task, straight into a
    /// queue slot (a span whose encoding is over 360 bytes gets a heap buffer of its own
    /// instead, the one allocation), and frees the span here; the backends only
    /// copy bytes to their sockets. A span too large to send
    /// ([`max_datagram_size`](crate::ClientBuilder::max_datagram_size), or the frame limit) is
    /// accepted and counted as dropped ([`DropReason::Oversize`]). With
    /// [`encode_in_backend`](crate::ClientBuilder::encode_in_backend), and for a user backend,
    /// the span itself is queued.
    ///
    /// # Errors
    ///
    /// [`TryRecordError::Full`] when the queue is full, [`TryRecordError::Closed`] once
    /// the client is shut down; the span is handed back either way and the refusal is
    /// counted ([`ClientStats::refused`]).
    ///
    /// [`DropReason::Oversize`]: crate::DropReason::Oversize
    #[inline]
    pub fn try_record(&self, mut span: SsfSpan) -> Result<(), TryRecordError> {
        // The common case, kept small enough to inline: a queue client, no normaliser.
        let inner = &*self.inner;
        if let (Kind::Queue(_), None) = (&inner.kind, &inner.normalizer) {
            let shared = &*inner.shared;
            if shared.is_closing() {
                shared.counters.refused(false);
                return Err(TryRecordError::Closed(span));
            }
            if shared.discards() {
                shared.counters.disabled();
                return Ok(());
            }
            if !self.samples(span.trace_id, None) {
                shared.counters.unsampled();
                return Ok(());
            }
            if let Encoding::OnRecord { framing, max } = inner.encoding {
                return match self.push_encoded(&span, framing, max, None) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.map(|()| span)),
                };
            }
            self.fill_service(&mut span);
            shared.counters.pre_accept();
            return match shared.queue.try_push(Message::Span {
                span,
                receipt: None,
            }) {
                Ok(()) => Ok(()),
                Err(refused) => Err(refused_span(&shared.counters, refused)),
            };
        }
        self.try_queue(span, None, None)
    }

    /// Queues a copy of `span` without waiting, leaving the span with the caller: a
    /// network client encodes it into a queue slot and that is all (no allocation for a
    /// span that fits in a slot, nothing to free later), so a caller can record the same
    /// span value over and over, changing its IDs and times in between.
    ///
    /// Other clients (a user backend, a channel, a sample normaliser) need a span of
    /// their own: it is cloned.
    ///
    /// ```
    /// use ssf_proto::SsfSpan;
    /// use trace_client::Client;
    ///
    /// let (client, mut rx) = Client::channel(8);
    /// let mut span = SsfSpan { trace_id: 1, name: "poll".into(), ..Default::default() };
    /// for id in 1..=3 {
    ///     span.id = id;
    ///     client.try_record_ref(&span)?;
    /// }
    /// assert_eq!(rx.try_recv().unwrap().id, 1);
    /// # Ok::<(), trace_client::TryRecordError<()>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_record`](Client::try_record), handing back nothing.
    #[inline]
    pub fn try_record_ref(&self, span: &SsfSpan) -> Result<(), TryRecordError<()>> {
        // The clients that need a span of their own get a clone.
        self.try_record_fields(span, SsfSpan::clone)
    }

    /// Records a span of any type that shows its fields through [`SpanFields`] (such as
    /// [`Span`](crate::Span)), without waiting: a network client encodes it straight into
    /// a queue slot, as [`try_record_ref`](Client::try_record_ref) does, so no
    /// [`SsfSpan`] is made; the other clients (a user backend, a channel, a sample
    /// normaliser, [`encode_in_backend`](crate::ClientBuilder::encode_in_backend)) get
    /// the `SsfSpan` that `to_ssf` makes.
    ///
    /// # Errors
    ///
    /// As [`try_record`](Client::try_record), handing back nothing.
    #[inline]
    pub fn try_record_fields<S: SpanFields + ?Sized>(
        &self,
        span: &S,
        to_ssf: impl FnOnce(&S) -> SsfSpan,
    ) -> Result<(), TryRecordError<()>> {
        self.try_record_fields_sampled(span, None, to_ssf)
    }

    /// [`try_record_fields`](Client::try_record_fields) for a span whose trace carries the
    /// sampling decision `parent` ([`SpanContext::sampled`](crate::SpanContext::sampled)),
    /// which a [parent-based](crate::Sampler::parent_based) sampler follows: for
    /// instrumentation that keeps its own span data, as `tracing-ssf` does.
    ///
    /// # Errors
    ///
    /// As [`try_record`](Client::try_record), handing back nothing.
    #[inline]
    pub fn try_record_fields_sampled<S: SpanFields + ?Sized>(
        &self,
        span: &S,
        parent: Option<bool>,
        to_ssf: impl FnOnce(&S) -> SsfSpan,
    ) -> Result<(), TryRecordError<()>> {
        let inner = &*self.inner;
        if let (Kind::Queue(_), None, Encoding::OnRecord { framing, max }) =
            (&inner.kind, &inner.normalizer, inner.encoding)
        {
            if inner.shared.is_closing() {
                inner.shared.counters.refused(false);
                return Err(TryRecordError::Closed(()));
            }
            if inner.shared.discards() {
                inner.shared.counters.disabled();
                return Ok(());
            }
            if !self.samples(span.trace_id(), parent) {
                inner.shared.counters.unsampled();
                return Ok(());
            }
            return self.push_encoded(span, framing, max, None);
        }
        if !inner.shared.is_closing() && !matches!(inner.kind, Kind::Neutralized) {
            // Not even converted.
            if inner.shared.discards() {
                inner.shared.counters.disabled();
                return Ok(());
            }
            if !self.samples(span.trace_id(), parent) {
                inner.shared.counters.unsampled();
                return Ok(());
            }
        }
        self.try_queue(to_ssf(span), None, parent)
            .map_err(|e| e.map(drop))
    }

    /// Whether [`try_record_fields`](Client::try_record_fields) encodes spans in place
    /// (a network client that encodes when recording, without a sample normaliser):
    /// otherwise it needs an [`SsfSpan`], which a caller that owns one's parts can move
    /// into [`try_record`](Client::try_record) instead.
    #[inline]
    pub fn encodes_in_place(&self) -> bool {
        let inner = &*self.inner;
        matches!(
            (&inner.kind, &inner.normalizer, inner.encoding),
            (Kind::Queue(_), None, Encoding::OnRecord { .. })
        )
    }

    /// Encodes `span` and queues the frame (the client is a queue client, not closing).
    /// A span over `max` is accepted and dropped as oversize.
    #[inline]
    fn push_encoded<S: SpanFields + ?Sized>(
        &self,
        span: &S,
        framing: Framing,
        max: usize,
        receipt: Option<ReceiptSender>,
    ) -> Result<(), TryRecordError<()>> {
        let shared = &*self.inner.shared;
        let counters = &shared.counters;
        // Refused before the work of encoding, when it certainly would be.
        if shared.queue.refuses_full() {
            counters.refused(true);
            return Err(TryRecordError::Full(()));
        }
        counters.pre_accept();
        // Counted as accepted before it is encoded, so that a backend can never count
        // it sent first: should the span's `SpanFields` panic while it is encoded, it is
        // counted as dropped (and the panic goes on; the slot is left empty).
        let unwinding = DropOnUnwind::arm(counters);
        // Encoded straight into the slot the push claims: a span's encoding is mostly
        // copies of bytes it holds encoded, so the slot is not held for long. A span too
        // large for a slot is encoded on the heap there; one over `max` leaves the slot
        // empty.
        let mut oversized = 0;
        let pushed = shared.queue.try_push_written(receipt, |frame| {
            match self.encode(span, framing, max, frame) {
                Ok(encode::Encoded::Inline(n)) => Written::Inline(n),
                Ok(encode::Encoded::Heap(heap)) => Written::Heap(heap),
                Err(len) => {
                    oversized = len;
                    Written::Nothing
                }
            }
        });
        unwinding.disarm();
        match pushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(receipt)) => {
                oversize(counters, oversized, max, receipt);
                Ok(())
            }
            Err(refused) => Err(refused_frame(counters, refused)),
        }
    }

    /// Queues a span and returns a [`Receipt`] that resolves once a backend wrote it (or
    /// dropped it, with the reason). For buffered stream backends "written" means "in
    /// the write buffer": call [`flush`](Client::flush) for delivery to the socket.
    /// Dropping the receipt is fine; it never holds anything up.
    ///
    /// # Errors
    ///
    /// As [`try_record`](Client::try_record).
    pub fn record_with_receipt(&self, span: SsfSpan) -> Result<Receipt, TryRecordError> {
        self.record_with_receipt_sampled(span, None)
    }

    /// [`record_with_receipt`](Client::record_with_receipt) for a span whose trace
    /// carries the sampling decision `parent`.
    pub(crate) fn record_with_receipt_sampled(
        &self,
        span: SsfSpan,
        parent: Option<bool>,
    ) -> Result<Receipt, TryRecordError> {
        if let Kind::Queue(_) = self.inner.kind {
            let (tx, rx) = oneshot::channel();
            self.try_queue(span, Some(tx), parent)?;
            Ok(Receipt::waiting(rx))
        } else {
            self.try_queue(span, None, parent)?;
            Ok(Receipt::ready(Ok(())))
        }
    }

    /// [`try_record`](Client::try_record) for a span whose trace carries the sampling
    /// decision `parent` (see [`try_record_fields_sampled`](Client::try_record_fields_sampled)).
    ///
    /// # Errors
    ///
    /// As [`try_record`](Client::try_record).
    pub fn try_record_sampled(
        &self,
        span: SsfSpan,
        parent: Option<bool>,
    ) -> Result<(), TryRecordError> {
        self.try_queue(span, None, parent)
    }

    /// Queues `span` (of a trace carrying the sampling decision `parent`).
    pub(crate) fn try_queue(
        &self,
        mut span: SsfSpan,
        receipt: Option<ReceiptSender>,
        parent: Option<bool>,
    ) -> Result<(), TryRecordError> {
        let inner = &*self.inner;
        let counters = &inner.shared.counters;
        if inner.shared.is_closing() {
            counters.refused(false);
            return Err(TryRecordError::Closed(span));
        }
        if !matches!(inner.kind, Kind::Neutralized) {
            let dropped = if inner.shared.discards() {
                counters.disabled();
                Some(DropReason::Disabled)
            } else if !self.samples(span.trace_id, parent) {
                counters.unsampled();
                Some(DropReason::Unsampled)
            } else {
                None
            };
            if let Some(reason) = dropped {
                if let Some(r) = receipt {
                    let _ = r.send(Err(DeliveryError::new(reason, None)));
                }
                return Ok(());
            }
        }
        self.normalize(&mut span);
        match &inner.kind {
            Kind::Queue(_) => {
                if let Encoding::OnRecord { framing, max } = inner.encoding {
                    return match self.push_encoded(&span, framing, max, receipt) {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.map(|()| span)),
                    };
                }
                self.fill_service(&mut span);
                counters.pre_accept();
                match inner.shared.queue.try_push(Message::Span { span, receipt }) {
                    Ok(()) => Ok(()),
                    Err(refused) => Err(refused_span(counters, refused)),
                }
            }
            Kind::Channel(tx) => {
                self.fill_service(&mut span);
                counters.pre_accept();
                match tx.try_send(span) {
                    Ok(()) => {
                        counters.sent(1);
                        Ok(())
                    }
                    Err(TrySendError::Full(s)) => {
                        counters.unaccept(true);
                        Err(TryRecordError::Full(s))
                    }
                    Err(TrySendError::Closed(s)) => {
                        counters.unaccept(false);
                        Err(TryRecordError::Closed(s))
                    }
                }
            }
            Kind::Neutralized => {
                counters.refused(false);
                Err(TryRecordError::Closed(span))
            }
        }
    }

    /// Queues a span, waiting for room in the queue. A network client encodes the span
    /// here (as [`try_record`](Client::try_record) does); the future queues it.
    ///
    /// # Errors
    ///
    /// [`RecordError::Closed`] (with the span) when the client is or gets shut down
    /// while waiting.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes means the span was not queued (and is not
    /// counted anywhere).
    pub fn record(&self, mut span: SsfSpan) -> RecordFuture {
        let inner = &*self.inner;
        let counters = &inner.shared.counters;
        if inner.shared.is_closing() {
            counters.refused(false);
            return RecordFuture::done(Err(RecordError::Closed(span)));
        }
        if !matches!(inner.kind, Kind::Neutralized) {
            if inner.shared.discards() {
                counters.disabled();
                return RecordFuture::done(Ok(()));
            }
            if !self.samples(span.trace_id, None) {
                counters.unsampled();
                return RecordFuture::done(Ok(()));
            }
        }
        self.normalize(&mut span);
        match &inner.kind {
            Kind::Queue(tx) => match inner.encoding {
                Encoding::OnRecord { framing, max } => {
                    let mut buf = [0u8; INLINE];
                    match self.encode(&span, framing, max, &mut buf) {
                        Ok(encoded) => {
                            let (msg, len) = Message::encoded(encoded, None);
                            RecordFuture::queueing(tx.clone(), msg, buf, len, Some(span))
                        }
                        Err(len) => {
                            counters.pre_accept();
                            oversize(counters, len, max, None);
                            RecordFuture::done(Ok(()))
                        }
                    }
                }
                Encoding::None | Encoding::InBackend => {
                    self.fill_service(&mut span);
                    let msg = Message::Span {
                        span,
                        receipt: None,
                    };
                    RecordFuture::queueing(tx.clone(), msg, [0; INLINE], 0, None)
                }
            },
            Kind::Channel(tx) => {
                self.fill_service(&mut span);
                match tx.try_send(span) {
                    Ok(()) => {
                        counters.pre_accept();
                        counters.sent(1);
                        RecordFuture::done(Ok(()))
                    }
                    Err(TrySendError::Closed(span)) => {
                        counters.refused(false);
                        RecordFuture::done(Err(RecordError::Closed(span)))
                    }
                    Err(TrySendError::Full(span)) => {
                        // A channel client waits in tokio's channel: the one record future
                        // that allocates (a box for the wait).
                        let (tx, shared) = (tx.clone(), inner.shared.clone());
                        RecordFuture::boxed(async move {
                            match tx.reserve().await {
                                Ok(permit) => {
                                    shared.counters.pre_accept();
                                    permit.send(span);
                                    shared.counters.sent(1);
                                    Ok(())
                                }
                                Err(_) => {
                                    shared.counters.refused(false);
                                    Err(RecordError::Closed(span))
                                }
                            }
                        })
                    }
                }
            }
            Kind::Neutralized => {
                counters.refused(false);
                RecordFuture::done(Err(RecordError::Closed(span)))
            }
        }
    }

    /// Queues a copy of `span`, waiting for room in the queue; the span stays with the
    /// caller (see [`try_record_ref`](Client::try_record_ref): a network client encodes
    /// it, other clients clone it).
    ///
    /// # Errors
    ///
    /// [`RecordError::Closed`] when the client is or gets shut down while waiting.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes means the span was not queued (and is not
    /// counted anywhere).
    pub async fn record_ref(&self, span: &SsfSpan) -> Result<(), RecordError<()>> {
        let inner = &*self.inner;
        let future = match (&inner.kind, &inner.normalizer, inner.encoding) {
            (Kind::Queue(tx), None, Encoding::OnRecord { framing, max })
                if !inner.shared.is_closing() =>
            {
                if inner.shared.discards() {
                    inner.shared.counters.disabled();
                    return Ok(());
                }
                if !self.samples(span.trace_id, None) {
                    inner.shared.counters.unsampled();
                    return Ok(());
                }
                let mut buf = [0u8; INLINE];
                match self.encode(span, framing, max, &mut buf) {
                    Ok(encoded) => {
                        let (msg, len) = Message::encoded(encoded, None);
                        RecordFuture::queueing(tx.clone(), msg, buf, len, None)
                    }
                    Err(len) => {
                        let counters = &inner.shared.counters;
                        counters.pre_accept();
                        oversize(counters, len, max, None);
                        return Ok(());
                    }
                }
            }
            // The span itself is queued (or refused): a copy.
            _ => self.record(span.clone()),
        };
        future.await.map_err(|_| RecordError::Closed(()))
    }

    /// Waits until every span recorded before this call has been written by its backend
    /// (busy backends are waited for), buffered backends have written their buffers,
    /// and each backend reported; at most [`flush_timeout`](crate::ClientBuilder::flush_timeout)
    /// (15 s by default).
    ///
    /// # Errors
    ///
    /// A [`FlushError`](crate::FlushError) listing each backend that failed: its buffer could not be
    /// written, it dropped spans since its previous flush (no connection, write error or
    /// timeout; [`BackendError::dropped`](crate::BackendError::dropped) says how many),
    /// or it had not finished when the time limit passed
    /// ([`is_timed_out`](crate::FlushError::is_timed_out)). Or the client is closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop a flush that already reached the queue; its
    /// outcome is still counted in the statistics (as failed, if the future was dropped
    /// before it resolved).
    pub fn flush(&self) -> FlushFuture {
        self.flush_with_deadline(self.inner.shared.flush_timeout)
    }

    /// [`flush`](Client::flush) with a time limit of `deadline` (from the first poll)
    /// instead of the client's [`flush_timeout`](crate::ClientBuilder::flush_timeout).
    ///
    /// # Errors
    ///
    /// As [`flush`](Client::flush).
    pub fn flush_with_deadline(&self, deadline: Duration) -> FlushFuture {
        // A queue client's flush holds the queue open while it runs.
        let tx = match &self.inner.kind {
            Kind::Queue(tx) => Some(tx.clone()),
            Kind::Channel(_) | Kind::Neutralized => None,
        };
        FlushFuture::new(self.inner.shared.clone(), tx, deadline)
    }

    /// Stops intake and starts a graceful shutdown in the background, without waiting:
    /// later records are refused as closed, the backends send what is queued, write out
    /// their buffers and close their connections. Use [`shutdown`](Client::shutdown) to
    /// wait for that (with a deadline) and get a report.
    pub fn close(&self) {
        self.inner.shared.close();
    }

    /// Neutralises the client, as veneur's `NeutralizeClient` does to an existing one:
    /// for every clone of the handle, later records are refused as closed (and counted),
    /// the backends stop at once, and what is still queued or buffered is dropped,
    /// counted as [`DropReason::Closed`](crate::DropReason::Closed); flushes then fail
    /// as closed (veneur's documentation says they fail; its code let them succeed).
    /// Never waits. Use [`Client::neutralized`] for a client that was never connected,
    /// and [`disable`](Client::disable) to stop recording for a while.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (client, _rx) = trace_client::Client::channel(8);
    /// client.neutralize();
    /// assert!(client.try_record(Default::default()).unwrap_err().is_closed());
    /// assert!(client.flush().await.is_err());
    /// # }
    /// ```
    pub fn neutralize(&self) {
        let shared = &*self.inner.shared;
        shared.close();
        shared.aborting.set();
    }

    /// Shuts the client down and reports what became of every span.
    ///
    /// Intake stops at once (later records are refused as closed, for every clone of the
    /// handle). The backends then send everything queued, write out their buffers, close
    /// their connections (stream peers see the end of the stream) and exit. If that takes
    /// longer than `deadline`, they stop where they are: the spans not yet written are
    /// counted as dropped ([`DropReason::Closed`](crate::DropReason::Closed)) and the
    /// report says [`timed_out`](crate::ShutdownReport::timed_out). The future resolves at the
    /// deadline at the latest (plus the moment the backends need to notice it; they never
    /// wait for I/O after it). The deadline starts at the first poll.
    ///
    /// Calling it again (or on a clone) waits for the same shutdown; backend errors are
    /// reported to the first caller only.
    pub fn shutdown(&self, deadline: Duration) -> ShutdownFuture {
        ShutdownFuture::new(self.inner.shared.clone(), deadline)
    }

    /// Switches this client (every clone of the handle) off: until
    /// [`enable`](Client::enable), the spans it is given are neither encoded nor queued
    /// but discarded at once (the record calls succeed) and counted as dropped with
    /// [`DropReason::Disabled`]; a receipt resolves to that error. What was queued before
    /// is still sent, and flushes and shutdowns work as usual. Switching back on needs no
    /// restart. The process-wide [`disable`](crate::disable) does the same for every client.
    ///
    /// ```
    /// use trace_client::{Client, Span};
    ///
    /// let (client, mut rx) = Client::channel(8);
    /// client.disable();
    /// Span::root("skipped").finish_with(&client)?;
    /// client.enable();
    /// Span::root("sent").finish_with(&client)?;
    /// assert_eq!(rx.try_recv()?.name, "sent");
    /// assert_eq!(client.stats().disabled(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`DropReason::Disabled`]: crate::DropReason::Disabled
    pub fn disable(&self) {
        self.inner.shared.disabled.store(true, Ordering::Relaxed);
    }

    /// Switches this client back on after [`disable`](Client::disable). The process-wide
    /// switch ([`crate::disable`]) is separate: while it is off, so is every client.
    pub fn enable(&self) {
        self.inner.shared.disabled.store(false, Ordering::Relaxed);
    }

    /// Whether spans given to this client now are discarded: it is
    /// [disabled](Client::disable), or the whole process is ([`crate::disable`]).
    pub fn is_disabled(&self) -> bool {
        self.inner.shared.discards()
    }

    /// A snapshot of the counters. See [`ClientStats`] for the invariant they keep.
    pub fn stats(&self) -> ClientStats {
        self.counters().snapshot()
    }

    /// Whether the client refuses spans as closed (shut down, closed, neutralised, or its
    /// channel's receiver is gone).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closing()
            || match &self.inner.kind {
                Kind::Queue(_) => self.inner.shared.queue.is_closed(),
                Kind::Channel(tx) => tx.is_closed(),
                Kind::Neutralized => true,
            }
    }
}

/// Counts a refusal of the queue and hands the span back.
#[cold]
fn refused_span(counters: &Counters, refused: Refused) -> TryRecordError {
    let full = matches!(refused, PushError::Full(_));
    counters.unaccept(full);
    let span = match refused.into_inner() {
        Message::Span { span, .. } => span,
        // Only span messages are pushed by the record paths.
        Message::Frame { .. } | Message::Flush(_) => SsfSpan::default(),
    };
    if full {
        TryRecordError::Full(span)
    } else {
        TryRecordError::Closed(span)
    }
}

/// Counts a refusal of the queue of an encoded span (the caller still has the span).
#[cold]
fn refused_frame<T>(counters: &Counters, refused: PushError<T>) -> TryRecordError<()> {
    let full = matches!(refused, PushError::Full(_));
    counters.unaccept(full);
    if full {
        TryRecordError::Full(())
    } else {
        TryRecordError::Closed(())
    }
}

/// Armed once a span is counted as accepted, while code that may panic (its
/// [`SpanFields`]) encodes it, then disarmed: dropped armed (by a panic), it counts the
/// span as dropped ([`DropReason::Panicked`]).
struct DropOnUnwind<'a> {
    counters: &'a Counters,
    armed: bool,
}

impl<'a> DropOnUnwind<'a> {
    #[inline]
    fn arm(counters: &'a Counters) -> Self {
        DropOnUnwind {
            counters,
            armed: true,
        }
    }

    #[inline]
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for DropOnUnwind<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.counters.dropped(DropReason::Panicked, 1);
        }
    }
}

/// Counts an accepted span as dropped for its size, and resolves its receipt.
#[cold]
fn oversize(counters: &Counters, len: usize, max: usize, receipt: Option<ReceiptSender>) {
    counters.dropped(DropReason::Oversize, 1);
    if let Some(r) = receipt {
        let e = oversize_error(len, max);
        let _ = r.send(Err(DeliveryError::new(DropReason::Oversize, Some(e))));
    }
}

/// Reports veneur's four client counters to `sink` and resets them, as veneur's
/// `SendClientStatistics` does.
///
/// In this order, each with sample rate 1.0 and `tags` unchanged:
///
/// | metric | value | reported |
/// |---|---|---|
/// | `trace_client.flushes_failed_total` | failed [`flush`](Client::flush) calls | only if non-zero |
/// | `trace_client.flushes_succeeded_total` | successful flush calls | always |
/// | `trace_client.records_failed_total` | refused spans | only if non-zero |
/// | `trace_client.records_succeeded_total` | accepted spans | always |
///
/// Values count what happened since the previous report (each counter is taken and reset
/// in one atomic step, so nothing is counted twice or lost between reports). These
/// counters are separate from [`Client::stats`], which never resets. A panicking sink is
/// contained and counted in [`ClientStats::panics`]; the values it was given are lost.
pub fn report_statistics(client: &Client, sink: &dyn StatsCounter, tags: &[&str]) {
    report_counters(client.counters(), sink, tags);
}
