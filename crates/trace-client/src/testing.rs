//! Backends for tests, equivalent to veneur's `testbackend` package, and a typical span.
//!
//! * [`ChannelBackend`] delivers every span into a channel, waiting while it is full.
//! * [`FlushingBackend`] collects spans and delivers them as one batch on each flush.
//! * [`typical_span`] is the span the project's benchmarks and load tests send;
//!   [`typical_request_span`] is the same span made through the [`Span`] API, as a
//!   service makes one per request.
//!
//! Both can be told to fail chosen spans or flushes. Neither blocks while holding a lock,
//! and both are cancel-safe (a shutdown deadline can interrupt them).
//!
//! ```
//! use ssf_proto::SsfSpan;
//! use tokio::sync::mpsc;
//! use trace_client::Client;
//! use trace_client::testing::ChannelBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (tx, mut rx) = mpsc::channel(16);
//! let client = Client::with_backend(ChannelBackend::new(tx)).build()?;
//! client.record(SsfSpan { id: 3, ..Default::default() }).await?;
//! assert_eq!(rx.recv().await.unwrap().id, 3);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use tokio::sync::mpsc;

use crate::trace::fields::SpanSample;
use crate::trace::span::Span;
use crate::transport::Backend;

/// A typical span of a service: a name, a service, five tags, a counter with a tag and a
/// timing sample; trace and span IDs `id`, no parent, a start and an end 250 ms apart.
/// With full-size IDs it encodes to 276 bytes (the size the benchmarks quote).
///
/// ```
/// let span = trace_client::testing::typical_span(7);
/// assert_eq!((span.id, span.trace_id, span.tags.len(), span.metrics.len()), (7, 7, 5, 2));
/// ```
pub fn typical_span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: id,
        id,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_250_000_000,
        service: "checkout-service".into(),
        name: "POST /v1/charges".into(),
        tags: sample::tags([
            ("http.method", "POST"),
            ("http.path", "/v1/charges"),
            ("http.status_code", "200"),
            ("region", "eu-west-1"),
            ("host", "web-17"),
        ]),
        metrics: vec![
            sample::count("charges.created", 1.0).with_tag("currency", "eur"),
            sample::timing(
                "charges.latency",
                Duration::from_micros(2_500),
                Duration::from_millis(1),
            ),
        ],
        ..Default::default()
    }
}

/// The span a service makes per request, through the public [`Span`] API: a child of
/// `parent` named `POST /v1/charges`, the service `checkout-service`, five `set_tag`
/// (static strings, or `String`s made here when `owned_tags`), a counter with a tag and
/// a timing sample; [`typical_span`]'s fields. The benchmarks of the Span API path
/// (criterion's `span/typical_request`, `ssf bench --span-api`,
/// `scripts/instructions.sh`) all make this span, then finish it.
///
/// ```
/// use trace_client::Span;
///
/// let mut parent = Span::root("request");
/// parent.set_finish_on_drop(false);
/// let mut span = trace_client::testing::typical_request_span(&parent, false);
/// span.set_finish_on_drop(false);
/// assert_eq!((span.parent_id(), span.tags().len()), (parent.span_id(), 5));
/// ```
#[inline]
#[expect(
    clippy::unnecessary_to_owned,
    reason = "a service that hands the span `String`s is what `owned_tags` measures"
)]
pub fn typical_request_span(parent: &Span, owned_tags: bool) -> Span {
    let mut span = parent.child(std::hint::black_box("POST /v1/charges"));
    span.set_service("checkout-service");
    let tags = [
        ("http.method", "POST"),
        ("http.path", "/v1/charges"),
        ("http.status_code", "200"),
        ("region", "eu-west-1"),
        ("host", "web-17"),
    ];
    for (k, v) in tags {
        if owned_tags {
            span.set_tag(k, v.to_owned());
        } else {
            span.set_tag(k, v);
        }
    }
    span.add_sample(SpanSample::count("charges.created", 1.0).with_tag("currency", "eur"))
        .add_sample(SpanSample::timing(
            "charges.latency",
            Duration::from_micros(2_500),
            Duration::from_millis(1),
        ));
    span
}

type SendErrors = Arc<dyn Fn(&SsfSpan) -> Option<io::Error> + Send + Sync>;
type FlushErrors = Arc<dyn Fn(&[SsfSpan]) -> Option<io::Error> + Send + Sync>;

/// A backend made by `new` on a new channel of `capacity` (at least 1), and the channel's
/// receiving end.
fn pair<T, B>(capacity: usize, new: fn(mpsc::Sender<T>) -> B) -> (B, mpsc::Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (new(tx), rx)
}

fn receiver_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the test channel's receiver is gone",
    )
}

/// A backend that sends each span into a channel (not flushable: flushing does nothing).
///
/// `send` waits while the channel is full, which makes it easy to hold a backend busy in
/// a test: do not read the channel.
#[derive(Clone)]
pub struct ChannelBackend {
    tx: mpsc::Sender<SsfSpan>,
    send_errors: Option<SendErrors>,
}

impl fmt::Debug for ChannelBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBackend")
            .field("send_errors", &self.send_errors.is_some())
            .finish_non_exhaustive()
    }
}

impl ChannelBackend {
    /// Delivers spans into `tx`.
    pub fn new(tx: mpsc::Sender<SsfSpan>) -> Self {
        ChannelBackend {
            tx,
            send_errors: None,
        }
    }

    /// A backend and the receiving end of a new channel of `capacity` (at least 1).
    pub fn pair(capacity: usize) -> (Self, mpsc::Receiver<SsfSpan>) {
        pair(capacity, Self::new)
    }

    /// Fails the spans for which `f` returns an error, without delivering them.
    pub fn send_errors(
        mut self,
        f: impl Fn(&SsfSpan) -> Option<io::Error> + Send + Sync + 'static,
    ) -> Self {
        self.send_errors = Some(Arc::new(f));
        self
    }
}

impl Backend for ChannelBackend {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        if let Some(e) = self.send_errors.as_ref().and_then(|f| f(span)) {
            return Err(e);
        }
        self.tx
            .send(span.clone())
            .await
            .map_err(|_| receiver_gone())
    }
}

/// A backend that collects spans and delivers the collected batch (in send order) on
/// each flush, also when it is empty. A flush error leaves the batch in place.
///
/// Flush it through the client ([`Client::flush`](crate::Client::flush)) or directly,
/// through a [`FlushingHandle`].
#[derive(Clone)]
pub struct FlushingBackend {
    batch: Arc<Mutex<Vec<SsfSpan>>>,
    tx: mpsc::Sender<Vec<SsfSpan>>,
    send_errors: Option<SendErrors>,
    flush_errors: Option<FlushErrors>,
}

impl fmt::Debug for FlushingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushingBackend")
            .field("batched", &self.lock().len())
            .field("send_errors", &self.send_errors.is_some())
            .field("flush_errors", &self.flush_errors.is_some())
            .finish_non_exhaustive()
    }
}

impl FlushingBackend {
    /// Delivers batches into `tx`.
    pub fn new(tx: mpsc::Sender<Vec<SsfSpan>>) -> Self {
        FlushingBackend {
            batch: Arc::default(),
            tx,
            send_errors: None,
            flush_errors: None,
        }
    }

    /// A backend and the receiving end of a new channel of `capacity` batches (at least
    /// 1).
    pub fn pair(capacity: usize) -> (Self, mpsc::Receiver<Vec<SsfSpan>>) {
        pair(capacity, Self::new)
    }

    /// Fails the spans for which `f` returns an error, without collecting them.
    pub fn send_errors(
        mut self,
        f: impl Fn(&SsfSpan) -> Option<io::Error> + Send + Sync + 'static,
    ) -> Self {
        self.send_errors = Some(Arc::new(f));
        self
    }

    /// Fails the flushes for which `f`, given the batch, returns an error.
    pub fn flush_errors(
        mut self,
        f: impl Fn(&[SsfSpan]) -> Option<io::Error> + Send + Sync + 'static,
    ) -> Self {
        self.flush_errors = Some(Arc::new(f));
        self
    }

    /// A handle that flushes this backend directly, bypassing the client.
    pub fn handle(&self) -> FlushingHandle {
        FlushingHandle {
            backend: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SsfSpan>> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn flush_batch(&self) -> io::Result<()> {
        // Wait for room first, without the lock; then take the batch and hand it over.
        let permit = self.tx.reserve().await.map_err(|_| receiver_gone())?;
        let batch = {
            let mut guard = self.lock();
            if let Some(e) = self.flush_errors.as_ref().and_then(|f| f(&guard)) {
                return Err(e);
            }
            std::mem::take(&mut *guard)
        };
        permit.send(batch);
        Ok(())
    }
}

impl Backend for FlushingBackend {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        if let Some(e) = self.send_errors.as_ref().and_then(|f| f(span)) {
            return Err(e);
        }
        self.lock().push(span.clone());
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_batch().await
    }
}

/// Flushes a [`FlushingBackend`] directly (veneur's tests call `Flush()` this way).
#[derive(Debug, Clone)]
pub struct FlushingHandle {
    backend: FlushingBackend,
}

impl FlushingHandle {
    /// Delivers the collected batch, waiting for room in the channel.
    ///
    /// # Errors
    ///
    /// The flush-error function's error, or `BrokenPipe` when the receiver is gone.
    pub async fn flush(&self) -> io::Result<()> {
        self.backend.flush_batch().await
    }

    /// How many spans are collected and not yet flushed.
    pub fn len(&self) -> usize {
        self.backend.lock().len()
    }

    /// Whether nothing is collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
