//! Error types of the client.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use ssf_codec::addr::{AddrError, Scheme};
use ssf_proto::SsfSpan;

// ===== TryRecordError =====

/// Why [`Client::try_record`](crate::Client::try_record) refused a span. The span is handed
/// back, untouched except for the sample normaliser (if one is configured).
///
/// `T` is what is handed back: the span for [`try_record`](crate::Client::try_record),
/// nothing (`()`) for [`try_record_ref`](crate::Client::try_record_ref), whose caller
/// still holds the span.
///
/// Refusals are counted in [`ClientStats::refused`](crate::ClientStats::refused) (except
/// [`NoClient`](TryRecordError::NoClient), which has no client to count in).
#[non_exhaustive]
pub enum TryRecordError<T = SsfSpan> {
    /// The queue is full: every slot holds a span waiting for a backend. veneur calls this
    /// `ErrWouldBlock`.
    Full(T),
    /// The client is shut down (or neutralised, or its channel's receiver is gone).
    Closed(T),
    /// No default client is set ([`default::try_record`](crate::default::try_record)).
    NoClient(T),
}

impl TryRecordError<SsfSpan> {
    /// The refused span.
    pub fn into_span(self) -> SsfSpan {
        self.into_inner()
    }

    /// A reference to the refused span.
    pub fn span(&self) -> &SsfSpan {
        match self {
            TryRecordError::Full(s) | TryRecordError::Closed(s) | TryRecordError::NoClient(s) => s,
        }
    }
}

impl<T> TryRecordError<T> {
    /// What was handed back.
    pub fn into_inner(self) -> T {
        match self {
            TryRecordError::Full(s) | TryRecordError::Closed(s) | TryRecordError::NoClient(s) => s,
        }
    }

    /// The same refusal, handing back `f` of what this one hands back.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> TryRecordError<U> {
        match self {
            TryRecordError::Full(s) => TryRecordError::Full(f(s)),
            TryRecordError::Closed(s) => TryRecordError::Closed(f(s)),
            TryRecordError::NoClient(s) => TryRecordError::NoClient(f(s)),
        }
    }

    /// Whether the queue was full (trying again later may succeed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryRecordError::Full(_))
    }

    /// Whether the client is closed (trying again will never succeed).
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecordError::Closed(_))
    }

    /// Whether there was no client to record with.
    pub fn is_no_client(&self) -> bool {
        matches!(self, TryRecordError::NoClient(_))
    }
}

impl<T> fmt::Debug for TryRecordError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecordError::Full(_) => f.write_str("Full(..)"),
            TryRecordError::Closed(_) => f.write_str("Closed(..)"),
            TryRecordError::NoClient(_) => f.write_str("NoClient(..)"),
        }
    }
}

impl<T> fmt::Display for TryRecordError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecordError::Full(_) => "sending span would block: the client's queue is full",
            TryRecordError::Closed(_) => "the client is closed",
            TryRecordError::NoClient(_) => "client is not initialized",
        })
    }
}

impl<T> StdError for TryRecordError<T> {}

// ===== RecordError =====

/// Why [`Client::record`](crate::Client::record) could not queue a span; the span is
/// handed back (`T` is `()` for [`record_ref`](crate::Client::record_ref), whose caller
/// still holds it).
#[non_exhaustive]
pub enum RecordError<T = SsfSpan> {
    /// The client is shut down (or neutralised, or its channel's receiver is gone).
    Closed(T),
}

impl RecordError<SsfSpan> {
    /// The span that was not queued.
    pub fn into_span(self) -> SsfSpan {
        self.into_inner()
    }
}

impl<T> RecordError<T> {
    /// What was handed back.
    pub fn into_inner(self) -> T {
        match self {
            RecordError::Closed(s) => s,
        }
    }

    /// Whether the client is closed (always true today; the enum may grow).
    pub fn is_closed(&self) -> bool {
        matches!(self, RecordError::Closed(_))
    }
}

impl<T> fmt::Debug for RecordError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for RecordError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Closed(_) => f.write_str("the client is closed"),
        }
    }
}

impl<T> StdError for RecordError<T> {}

// ===== DropReason / DeliveryError =====

/// Why an accepted span was not sent. Each reason has a counter in
/// [`DropCounts`](crate::DropCounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The client shut down (or its shutdown deadline passed) before the span was written.
    Closed,
    /// Writing to the connection failed (the connection is reset; the next span reconnects).
    WriteError,
    /// No connection: a connect sequence ran out its connect timeout, or the backend is
    /// down after one and its next connect attempt has not succeeded yet.
    ConnectTimeout,
    /// The span's encoding is larger than the datagram limit (UDP), the 16 MiB frame
    /// limit (streams) or the 4 MiB message limit (gRPC). Spans are never truncated.
    Oversize,
    /// A user-supplied [`Backend`](crate::Backend) panicked while sending it, or the
    /// span's own [`SpanFields`](ssf_proto::wire::SpanFields) panicked while it was
    /// encoded (the panic then reaches the caller).
    Panicked,
    /// The receiver took no bytes for the write timeout (it stopped reading): the
    /// connection is dropped, and the backend is down until its next connect attempt.
    WriteTimeout,
    /// Recording was switched off ([`Client::disable`](crate::Client::disable) or the
    /// process-wide [`disable`](crate::disable)): the span was discarded unencoded.
    Disabled,
    /// The client's [sampler](crate::Sampler) left the span's trace out: it was discarded
    /// unencoded.
    Unsampled,
    /// The receiver answered the span's gRPC call with a status other than OK (the
    /// receipt's error names the status code and the receiver's message). The connection
    /// is kept: the receiver is reachable, it refused this span.
    GrpcStatus,
}

impl DropReason {
    /// A short lowercase name (`closed`, `write_error`, `connect_timeout`, `oversize`,
    /// `panicked`, `write_timeout`, `disabled`, `unsampled`, `grpc_status`), as used in the
    /// [`DropCounts`](crate::DropCounts)
    /// accessors.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Closed => "closed",
            DropReason::WriteError => "write_error",
            DropReason::ConnectTimeout => "connect_timeout",
            DropReason::Oversize => "oversize",
            DropReason::Panicked => "panicked",
            DropReason::WriteTimeout => "write_timeout",
            DropReason::Disabled => "disabled",
            DropReason::Unsampled => "unsampled",
            DropReason::GrpcStatus => "grpc_status",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason a [`Receipt`](crate::Receipt) resolved to an error: the span was dropped.
#[derive(Debug)]
pub struct DeliveryError {
    reason: DropReason,
    source: Option<io::Error>,
}

impl DeliveryError {
    pub(crate) fn new(reason: DropReason, source: Option<io::Error>) -> Self {
        DeliveryError { reason, source }
    }

    pub(crate) fn closed() -> Self {
        DeliveryError::new(DropReason::Closed, None)
    }

    /// Why the span was dropped.
    pub fn reason(&self) -> DropReason {
        self.reason
    }

    /// The I/O error behind the drop, if there was one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.reason {
            DropReason::Closed => "span dropped: the client shut down before it was written",
            DropReason::WriteError => "span dropped: writing it failed",
            DropReason::ConnectTimeout => "span dropped: no connection within the connect timeout",
            DropReason::Oversize => "span dropped: its encoding is over the size limit",
            DropReason::Panicked => "span dropped: user code panicked while it was sent or encoded",
            DropReason::WriteTimeout => {
                "span dropped: the receiver took nothing within the write timeout"
            }
            DropReason::Disabled => "span dropped: recording is disabled",
            DropReason::Unsampled => "span dropped: its trace is not sampled",
            DropReason::GrpcStatus => {
                "span dropped: the receiver answered with a grpc error status"
            }
        })
    }
}

impl StdError for DeliveryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

// ===== FlushError =====

/// Spans one backend dropped since it last reported to a flush (delivery failures only:
/// not spans too large to send, not spans dropped by a shutdown).
#[derive(Debug, Clone)]
pub(crate) struct Dropped {
    count: u64,
    reason: DropReason,
    kind: io::ErrorKind,
    /// The first failure's message.
    first: Option<String>,
}

impl Dropped {
    pub(crate) fn new(reason: DropReason, count: u64, error: Option<&io::Error>) -> Self {
        Dropped {
            count,
            reason,
            kind: error.map_or(io::ErrorKind::Other, io::Error::kind),
            first: error.map(ToString::to_string),
        }
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.count = self.count.saturating_add(n);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The error a flush reports for these drops.
    pub(crate) fn into_error(self) -> io::Error {
        io::Error::new(self.kind, self)
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{} span{s} dropped since the previous flush (first: {}",
            self.count, self.reason
        )?;
        if let Some(first) = &self.first {
            write!(f, ": {first}")?;
        }
        f.write_str(")")
    }
}

impl StdError for Dropped {}

/// One backend's failure during a flush or a shutdown.
#[derive(Debug)]
pub struct BackendError {
    index: usize,
    error: io::Error,
    dropped: u64,
}

impl BackendError {
    pub(crate) fn new(index: usize, error: io::Error) -> Self {
        BackendError {
            index,
            error,
            dropped: 0,
        }
    }

    /// The failure of a flush: the flush's own error, else the drops it reports.
    pub(crate) fn for_flush(
        index: usize,
        result: io::Result<()>,
        dropped: Option<Dropped>,
    ) -> Option<Self> {
        let count = dropped.as_ref().map_or(0, Dropped::count);
        let error = match (result, dropped) {
            (Err(e), _) => e,
            (Ok(()), Some(d)) => d.into_error(),
            (Ok(()), None) => return None,
        };
        Some(BackendError {
            index,
            error,
            dropped: count,
        })
    }

    /// The backend's index, from 0 to `parallel_backends - 1`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// In a [`FlushError`]: how many spans this backend dropped (connect failures,
    /// write errors and timeouts, panics of a user backend) since it last reported to a
    /// flush, these included. 0 when the flush itself failed without drops, and in a
    /// [`ShutdownReport`](crate::ShutdownReport).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// What went wrong.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The I/O error, by value.
    pub fn into_error(self) -> io::Error {
        self.error
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend {}: {}", self.index, self.error)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

/// Why [`Client::flush`](crate::Client::flush) failed.
///
/// Either some backends failed (each is listed, by index: its flush failed, it dropped
/// spans since its previous flush, or it had not finished by the flush's deadline) or the
/// client was closed before the flush could reach its backends.
#[derive(Debug)]
pub struct FlushError {
    kind: FlushErrorKind,
}

#[derive(Debug)]
enum FlushErrorKind {
    Backends {
        failures: Vec<BackendError>,
        backends: usize,
        timed_out: bool,
    },
    Closed,
}

impl FlushError {
    pub(crate) fn backends(failures: Vec<BackendError>, backends: usize, timed_out: bool) -> Self {
        FlushError {
            kind: FlushErrorKind::Backends {
                failures,
                backends,
                timed_out,
            },
        }
    }

    /// Whether the flush's deadline passed before every backend reported; those that had
    /// not are listed with a `TimedOut` error (they go on with the spans they hold).
    pub fn is_timed_out(&self) -> bool {
        matches!(
            self.kind,
            FlushErrorKind::Backends {
                timed_out: true,
                ..
            }
        )
    }

    pub(crate) fn closed() -> Self {
        FlushError {
            kind: FlushErrorKind::Closed,
        }
    }

    /// The backends that failed, in index order (empty when the client was closed).
    pub fn failures(&self) -> &[BackendError] {
        match &self.kind {
            FlushErrorKind::Backends { failures, .. } => failures,
            FlushErrorKind::Closed => &[],
        }
    }

    /// The failed backends, by value.
    pub fn into_failures(self) -> Vec<BackendError> {
        match self.kind {
            FlushErrorKind::Backends { failures, .. } => failures,
            FlushErrorKind::Closed => Vec::new(),
        }
    }

    /// Whether the flush failed because the client is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, FlushErrorKind::Closed)
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FlushErrorKind::Closed => f.write_str("flush failed: the client is closed"),
            FlushErrorKind::Backends {
                failures,
                backends,
                timed_out,
            } => {
                let what = if *timed_out { "timed out" } else { "failed" };
                write!(
                    f,
                    "flush {what} on {} of {} backends: [",
                    failures.len(),
                    backends
                )?;
                for (i, e) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl StdError for FlushError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.failures().first().map(|e| e as _)
    }
}

// ===== BuildError =====

/// Why [`ClientBuilder::build`](crate::ClientBuilder::build) failed. Building never touches
/// the network, so a server that is down is not an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The address could not be parsed.
    Address(AddrError),
    /// The address's scheme is one the client does not send to (`unixgram`,
    /// `unixpacket`: veneur does not listen for SSF on them), or `grpc` in a build
    /// without the `grpc` feature.
    UnsupportedScheme(Scheme),
    /// `build` was called outside a tokio runtime.
    NoRuntime,
    /// An option has a value that cannot work; the message names it.
    Invalid(&'static str),
    /// A network-only option was set on a client with a user backend; the option is named.
    NotNetworked(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Address(_) => f.write_str("invalid client address"),
            BuildError::UnsupportedScheme(Scheme::Grpc) if !cfg!(feature = "grpc") => f.write_str(
                "can not connect to grpc addresses: trace-client was built without its `grpc` feature",
            ),
            BuildError::UnsupportedScheme(s) => {
                write!(f, "can not connect to {s} addresses")
            }
            BuildError::NoRuntime => f.write_str("the client must be built inside a tokio runtime"),
            BuildError::Invalid(what) => write!(f, "invalid client option: {what}"),
            BuildError::NotNetworked(option) => write!(
                f,
                "client is not using a network backend (option `{option}` needs one)"
            ),
        }
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BuildError::Address(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AddrError> for BuildError {
    fn from(e: AddrError) -> Self {
        BuildError::Address(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_error_lists_each_backend() {
        let e = FlushError::backends(
            vec![
                BackendError::new(0, io::Error::from(io::ErrorKind::BrokenPipe)),
                BackendError::new(3, io::Error::other("boom")),
            ],
            8,
            false,
        );
        let text = e.to_string();
        assert!(text.starts_with("flush failed on 2 of 8 backends: [backend 0: "));
        assert!(text.ends_with("; backend 3: boom]"), "{text}");
        assert!(e.source().is_some());
        assert!(!e.is_closed());
        assert!(FlushError::closed().is_closed());
    }

    #[test]
    fn try_record_error_hands_the_span_back() {
        let span = SsfSpan {
            id: 7,
            ..Default::default()
        };
        let e = TryRecordError::Full(span);
        assert!(e.is_full() && !e.is_closed() && !e.is_no_client());
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.into_span().id, 7);
        assert_eq!(
            TryRecordError::NoClient(SsfSpan::default()).to_string(),
            "client is not initialized"
        );
        let bare = TryRecordError::Closed(SsfSpan::default()).map(drop);
        assert!(bare.is_closed());
        assert_eq!(bare.to_string(), "the client is closed");
        assert_eq!(RecordError::Closed(()).to_string(), "the client is closed");
    }
}
