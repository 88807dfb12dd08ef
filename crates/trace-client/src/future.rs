//! The named futures of the client, and the shutdown report.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{BackendError, DeliveryError, FlushError, RecordError};
use crate::stats::{ClientStats, DropCounts};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

macro_rules! boxed_future {
    ($(#[$doc:meta])* $name:ident => $output:ty) => {
        $(#[$doc])*
        #[must_use = "futures do nothing unless you `.await` or poll them"]
        pub struct $name {
            inner: BoxFuture<$output>,
        }

        impl $name {
            pub(crate) fn new(f: impl Future<Output = $output> + Send + 'static) -> Self {
                $name { inner: Box::pin(f) }
            }
        }

        impl Future for $name {
            type Output = $output;

            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<$output> {
                self.inner.as_mut().poll(cx)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

boxed_future! {
    /// The future of [`Client::record`](crate::Client::record): resolves once the span is
    /// in the queue.
    RecordFuture => Result<(), RecordError>
}

boxed_future! {
    /// The future of [`Client::flush`](crate::Client::flush).
    FlushFuture => Result<(), FlushError>
}

boxed_future! {
    /// The future of [`Client::shutdown`](crate::Client::shutdown).
    ShutdownFuture => ShutdownReport
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
