//! Span contexts and the current span of a task.
//!
//! A [`SpanContext`] is what a span passes on to its children and to other processes: its
//! trace ID, its own ID, its parent's ID, the trace's resource, its sampling decision, its
//! [baggage](Baggage) and what a W3C caller sent beyond SSF's 64-bit IDs ([`W3cTrace`]).
//! [`Span::context`] returns one; the [`propagation`](crate::propagation) carriers read and
//! write them.
//!
//! Inside a process, the *current* span context follows a task across `.await` points: it
//! is stored in a tokio task-local, set for the duration of a future by [`in_span`],
//! [`SpanContext::scope`] or [`WithSpan::with_span`], and read by [`current`] (and by
//! [`Span::child_of_current`] and the [`span!`](crate::span!) macro). It is not inherited
//! by tasks spawned with `tokio::spawn`; use [`spawn_in_current`] for that.
//!
//! ```
//! use trace_client::{Span, context};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut root = Span::root("checkout");
//! root.set_finish_on_drop(false);
//! let ctx = root.context();
//! ctx.clone()
//!     .scope(async {
//!         tokio::task::yield_now().await;
//!         let child = Span::child_of_current("charge");
//!         assert_eq!(child.parent_id(), root.span_id());
//!         assert_eq!(context::current().as_ref(), Some(&ctx));
//! #       let mut child = child;
//! #       child.set_finish_on_drop(false);
//!     })
//!     .await;
//! assert_eq!(context::current(), None);
//! # }
//! ```
//!
//! [`Span::context`]: crate::Span::context
//! [`Span::child_of_current`]: crate::Span::child_of_current

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio::task::futures::TaskLocalFuture;

use crate::trace::baggage::Baggage;

tokio::task_local! {
    static CURRENT: Option<SpanContext>;
}

/// The identity of a span as seen by its children and by other processes.
///
/// A context extracted from a carrier describes the *remote* span: its `span_id` is the
/// remote span's ID, which becomes the `parent_id` of the local child created from it with
/// [`Span::child_of`](crate::Span::child_of).
///
/// # Examples
///
/// ```
/// use trace_client::{Span, SpanContext};
///
/// let remote = SpanContext::new(12345, 67890).with_resource("GET /");
/// let mut span = Span::child_of(&remote, "handle");
/// assert_eq!((span.trace_id(), span.parent_id()), (12345, 67890));
/// assert_eq!(span.resource(), "GET /");
/// # span.set_finish_on_drop(false);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanContext {
    /// The trace's ID: the span ID of its root span.
    pub trace_id: i64,
    /// The span's own ID.
    pub span_id: i64,
    /// The span's parent's ID; 0 for a root span or when the carrier did not say.
    pub parent_id: i64,
    /// The trace's resource; empty when unknown.
    pub resource: String,
    /// The trace's sampling decision, when one was made: by the caller (a `traceparent`
    /// flag, an `ot-tracer-sampled` header) or in this process
    /// ([`Span::sample_with`](crate::Span::sample_with)). A
    /// [parent-based](crate::Sampler::parent_based) sampler follows it.
    pub sampled: Option<bool>,
    /// The trace's baggage items, inherited by every span created from this context.
    pub baggage: Baggage,
    /// What a W3C Trace Context caller sent that the 64-bit SSF IDs cannot hold, so that
    /// it is sent on downstream; `None` for traces that did not come in as W3C.
    pub w3c: Option<W3cTrace>,
}

/// What a W3C `traceparent` carried beyond the 64-bit SSF IDs, kept so that injected
/// `traceparent` and `tracestate` headers continue the caller's W3C trace.
///
/// ```
/// use trace_client::{Span, SpanContext, W3cTrace};
///
/// let w3c = W3cTrace { trace_id_high: 0x0af7651916cd43dd, flags: 0x01, tracestate: "k=v".into() };
/// let remote = SpanContext::new(42, 7).with_w3c(w3c.clone());
/// let mut child = Span::child_of(&remote, "handle");
/// assert_eq!(child.context().w3c, Some(w3c));
/// # child.set_finish_on_drop(false);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct W3cTrace {
    /// The high 64 bits of the 128-bit W3C trace ID; the low 64 bits are the SSF trace ID.
    pub trace_id_high: u64,
    /// The trace flags as received. Injection writes them back with the sampled bit
    /// (`0x01`) set from the trace's decision.
    pub flags: u8,
    /// The `tracestate` header as received, passed on untouched; empty when there was
    /// none.
    pub tracestate: String,
}

impl SpanContext {
    /// A context for span `span_id` of trace `trace_id`, with no parent and no resource.
    pub fn new(trace_id: i64, span_id: i64) -> Self {
        SpanContext {
            trace_id,
            span_id,
            parent_id: 0,
            resource: String::new(),
            sampled: None,
            baggage: Baggage::new(),
            w3c: None,
        }
    }

    /// This context with the sampling decision `sampled`.
    #[must_use]
    pub fn with_sampled(mut self, sampled: bool) -> Self {
        self.sampled = Some(sampled);
        self
    }

    /// This context with baggage `baggage`.
    #[must_use]
    pub fn with_baggage(mut self, baggage: Baggage) -> Self {
        self.baggage = baggage;
        self
    }

    /// This context continuing the W3C trace `w3c`.
    #[must_use]
    pub fn with_w3c(mut self, w3c: W3cTrace) -> Self {
        self.w3c = Some(w3c);
        self
    }

    /// This context with its parent ID set to `parent_id`.
    #[must_use]
    pub fn with_parent_id(mut self, parent_id: i64) -> Self {
        self.parent_id = parent_id;
        self
    }

    /// This context with its resource set to `resource`.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    /// Whether the context names a span: both its trace ID and its span ID are non-zero.
    /// The carriers only ever extract valid contexts.
    pub fn is_valid(&self) -> bool {
        self.trace_id != 0 && self.span_id != 0
    }

    /// Runs `fut` with this context as the current span context (see [`in_span`]).
    pub fn scope<F: Future>(self, fut: F) -> InSpan<F> {
        in_span(self, fut)
    }

    /// Runs the closure `f` with this context as the current span context, for synchronous
    /// code.
    ///
    /// # Panics
    ///
    /// Only if called while the thread is being torn down (from a thread-local destructor).
    ///
    /// # Examples
    ///
    /// ```
    /// use trace_client::{SpanContext, context};
    ///
    /// let ctx = SpanContext::new(1, 2);
    /// let seen = ctx.clone().in_scope(context::current);
    /// assert_eq!(seen, Some(ctx));
    /// ```
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(Some(self), f)
    }
}

/// The current span context of this task, if a future up the call chain runs inside
/// [`in_span`] (or [`SpanContext::scope`], [`WithSpan::with_span`],
/// [`SpanContext::in_scope`]).
///
/// # Examples
///
/// ```
/// use trace_client::{SpanContext, context};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(context::current(), None);
/// let ctx = SpanContext::new(1, 2);
/// let seen = context::in_span(ctx.clone(), async { context::current() }).await;
/// assert_eq!(seen, Some(ctx));
/// # }
/// ```
pub fn current() -> Option<SpanContext> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Calls `f` with the current span context without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&SpanContext>) -> R) -> R {
    let mut f = Some(f);
    // `try_with` fails (without calling the closure) outside any scope.
    let ran = CURRENT.try_with(|ctx| f.take().map(|f| f(ctx.as_ref())));
    match (ran, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(None),
        (_, None) => unreachable!("the closure was taken, so it ran and returned a result"),
    }
}

/// Runs `fut` with `ctx` as the current span context: [`current`] returns it while `fut`
/// (or anything it awaits) is being polled, across `.await` points and on whichever worker
/// thread polls it. Spans created inside become its children.
///
/// Nested scopes shadow outer ones for their duration.
///
/// # Panics
///
/// Polling panics only if the future is polled while its thread is being torn down.
pub fn in_span<F: Future>(ctx: SpanContext, fut: F) -> InSpan<F> {
    InSpan {
        inner: CURRENT.scope(Some(ctx), fut),
    }
}

/// Spawns `fut` on the current tokio runtime with the caller's current span context (if
/// any) as its current span context, unlike `tokio::spawn`, which starts tasks without
/// one.
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use trace_client::{SpanContext, context};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = SpanContext::new(1, 2);
/// let seen = context::in_span(ctx.clone(), async {
///     context::spawn_in_current(async { context::current() }).await.unwrap()
/// })
/// .await;
/// assert_eq!(seen, Some(ctx));
/// # }
/// ```
pub fn spawn_in_current<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let inner = CURRENT.scope(current(), fut);
    tokio::spawn(InSpan { inner })
}

/// Running a future inside a span context.
///
/// Implemented for every [`Future`].
pub trait WithSpan: Future + Sized {
    /// Runs this future with `ctx` as the current span context (see [`in_span`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use trace_client::{SpanContext, WithSpan, context};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let seen = async { context::current() }.with_span(SpanContext::new(1, 2)).await;
    /// assert_eq!(seen.map(|c| c.span_id), Some(2));
    /// # }
    /// ```
    fn with_span(self, ctx: SpanContext) -> InSpan<Self> {
        in_span(ctx, self)
    }
}

impl<F: Future> WithSpan for F {}

pin_project! {
    /// A future running inside a span context; see [`in_span`].
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct InSpan<F: Future> {
        #[pin]
        inner: TaskLocalFuture<Option<SpanContext>, F>,
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F: Future> fmt::Debug for InSpan<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InSpan").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_is_none_outside_a_scope() {
        assert_eq!(current(), None);
        assert!(with_current(|c| c.is_none()));
    }

    #[tokio::test]
    async fn scope_survives_await_and_nests() {
        let outer = SpanContext::new(1, 2);
        let inner = SpanContext::new(1, 3).with_parent_id(2);
        let (a, b, c) = in_span(outer.clone(), async {
            tokio::task::yield_now().await;
            let a = current();
            let b = inner.clone().scope(async { current() }).await;
            let c = current();
            (a, b, c)
        })
        .await;
        assert_eq!(a.as_ref(), Some(&outer));
        assert_eq!(b.as_ref(), Some(&inner));
        assert_eq!(c.as_ref(), Some(&outer));
        assert_eq!(current(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawned_tasks_inherit_only_through_spawn_in_current() {
        let ctx = SpanContext::new(7, 8).with_resource("r");
        let (plain, carried) = ctx
            .clone()
            .scope(async {
                let plain = tokio::spawn(async { current() }).await.ok().flatten();
                let carried = spawn_in_current(async {
                    tokio::task::yield_now().await;
                    current()
                })
                .await
                .ok()
                .flatten();
                (plain, carried)
            })
            .await;
        assert_eq!(plain, None);
        assert_eq!(carried, Some(ctx));
    }

    #[test]
    fn in_scope_sets_and_restores() {
        let ctx = SpanContext::new(4, 5);
        let seen = ctx.clone().in_scope(|| with_current(|c| c.cloned()));
        assert_eq!(seen, Some(ctx));
        assert_eq!(current(), None);
    }

    #[test]
    fn validity_needs_both_ids() {
        assert!(SpanContext::new(1, 2).is_valid());
        assert!(!SpanContext::new(0, 2).is_valid());
        assert!(!SpanContext::new(1, 0).is_valid());
        assert!(SpanContext::new(-1, -2).is_valid());
    }
}
