//! User-supplied backends.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use ssf_proto::SsfSpan;

use crate::error::{DeliveryError, DropReason};
use crate::message::Message;
use crate::shared::Shared;
use crate::transport::api::Transport;
use crate::transport::ledger::Ledger;

/// A destination for spans that you write yourself, for
/// [`Client::with_backend`](crate::Client::with_backend).
///
/// The client runs one worker that owns the backend and calls it one span at a time, in
/// queue order; it never calls two methods at once.
///
/// * [`send`](Backend::send): deliver one span. `Ok` counts the span as sent, `Err` as
///   dropped ([`DropReason::WriteError`]; the next [`Client::flush`](crate::Client::flush)
///   reports it); the client does not retry. A backend that wants retries does them
///   inside `send` (the future may take as long as it likes; the queue fills up
///   meanwhile, and flushes give up at their deadline).
/// * [`flush`](Backend::flush): write out anything buffered; called by
///   [`Client::flush`](crate::Client::flush) after every earlier span was passed to
///   `send`, and once more at shutdown.
/// * [`close`](Backend::close): release resources; called once, when the client shuts down
///   (or its last handle is dropped), after the final flush.
///
/// At a shutdown deadline the pending future is dropped: futures must be cancel-safe in
/// the sense that dropping them leaves the backend usable or at least harmless. A panic in
/// any method is caught; the span is counted as dropped ([`DropReason::Panicked`]), the
/// panic in [`ClientStats::panics`](crate::ClientStats::panics), and the backend stays in
/// use.
///
/// # Examples
///
/// ```
/// use std::io;
/// use ssf_proto::SsfSpan;
/// use trace_client::{Backend, Client};
///
/// struct Collect(Vec<SsfSpan>);
///
/// impl Backend for Collect {
///     async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
///         self.0.push(span.clone());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::with_backend(Collect(Vec::new())).capacity(16).build()?;
/// client.try_record(SsfSpan { id: 1, ..Default::default() })?;
/// client.flush().await?;
/// assert_eq!(client.stats().sent(), 1);
/// # Ok(())
/// # }
/// ```
pub trait Backend: Send + 'static {
    /// Delivers one span.
    fn send(&mut self, span: &SsfSpan) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes out anything buffered. The default does nothing.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Releases resources at shutdown. The default does nothing.
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Adapts a [`Backend`] to the worker: accounting and panic containment.
pub(crate) struct UserTransport<B> {
    backend: B,
    ledger: Ledger,
    /// The spans of the batch being taken, handed to the backend by `send_staged`.
    staged: Vec<Message>,
}

impl<B> UserTransport<B> {
    pub(crate) fn new(backend: B, shared: Arc<Shared>) -> Self {
        UserTransport {
            backend,
            ledger: Ledger::new(shared),
            staged: Vec::new(),
        }
    }
}

fn panicked(what: &str) -> io::Error {
    io::Error::other(format!("the backend panicked while {what}"))
}

/// Runs a user future, catching a panic both in the call that makes it and in its polls.
async fn contain<F, Fut, T>(make: F) -> Result<T, ()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    match std::panic::catch_unwind(AssertUnwindSafe(make)) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.map_err(|_| ()),
        Err(_) => Err(()),
    }
}

fn shut_down() -> io::Error {
    io::Error::other("the client shut down before the backend finished")
}

impl<B: Backend> UserTransport<B> {
    /// Hands each span of `run` (span messages only) to the backend, counting each and
    /// resolving its receipt; stops at an abort, counting the rest as dropped.
    async fn send_staged_spans(&mut self, run: &mut [Message]) {
        // Sent spans are counted once per run, not one by one.
        let mut sent = 0;
        for i in 0..run.len() {
            let Message::Span { span, receipt } = &mut run[i] else {
                continue;
            };
            let backend = &mut self.backend;
            let attempt = contain(|| backend.send(span));
            let outcome = tokio::select! {
                biased;
                r = attempt => Some(r),
                _ = self.ledger.aborting().wait() => None,
            };
            match outcome {
                Some(Ok(Ok(()))) => {
                    sent += 1;
                    if let Some(r) = receipt.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Some(Ok(Err(e))) => {
                    self.ledger.dropped(DropReason::WriteError, 1, Some(&e));
                    if let Some(r) = receipt.take() {
                        let _ = r.send(Err(DeliveryError::new(DropReason::WriteError, Some(e))));
                    }
                }
                Some(Err(_)) => {
                    let e = panicked("sending");
                    self.ledger.shared().counters.panicked();
                    self.ledger.dropped(DropReason::Panicked, 1, Some(&e));
                    if let Some(r) = receipt.take() {
                        let _ = r.send(Err(DeliveryError::new(DropReason::Panicked, Some(e))));
                    }
                }
                None => {
                    self.ledger.sent(sent);
                    self.ledger.abandon(&mut run[i..]);
                    return;
                }
            }
        }
        self.ledger.sent(sent);
    }
}

impl<B: Backend> Transport for UserTransport<B> {
    fn stage(&mut self, msg: Message, _inline: &[u8]) -> bool {
        if msg.is_span() {
            self.staged.push(msg);
        }
        true
    }

    async fn send_staged(&mut self) {
        let mut run = std::mem::take(&mut self.staged);
        self.send_staged_spans(&mut run).await;
        run.clear();
        self.staged = run;
    }

    async fn flush(&mut self) -> io::Result<()> {
        let UserTransport {
            backend, ledger, ..
        } = self;
        let outcome = tokio::select! {
            biased;
            r = contain(|| backend.flush()) => Some(r),
            _ = ledger.aborting().wait() => None,
        };
        match outcome {
            Some(Ok(r)) => r,
            Some(Err(_)) => {
                self.ledger.shared().counters.panicked();
                Err(panicked("flushing"))
            }
            None => Err(shut_down()),
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        let UserTransport {
            backend, ledger, ..
        } = self;
        let outcome = tokio::select! {
            biased;
            r = contain(|| backend.close()) => Some(r),
            _ = ledger.aborting().wait() => None,
        };
        match outcome {
            Some(Ok(r)) => r,
            Some(Err(_)) => {
                self.ledger.shared().counters.panicked();
                Err(panicked("closing"))
            }
            None => Err(shut_down()),
        }
    }

    fn abort(&mut self) -> u64 {
        // Their receipts resolve as dropped (closed) when their senders go.
        let n = self.staged.len();
        self.staged.clear();
        n as u64
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}
