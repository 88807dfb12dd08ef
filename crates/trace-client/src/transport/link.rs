//! One backend's connection: opened lazily, re-opened after it breaks, and "down" while
//! the receiver cannot be reached, so that spans fail fast instead of waiting.
//!
//! States:
//!
//! * **up**: a connection is open.
//! * **fresh**: no connection, and nothing says the receiver is unreachable (a new
//!   backend, or one whose connection just broke). The next span waits for a connect
//!   sequence: attempts with backoff until one succeeds or the connect timeout passes.
//! * **down**: a connect sequence of this backend (or of any backend of the client)
//!   failed, or a write stalled. Spans are dropped at once. At the backoff time the next
//!   span starts one connect attempt and waits for it at most `max_backoff`; if it is
//!   still going then, the span is dropped and a later span finds the attempt's outcome.
//!   Nothing runs while no span comes: an idle client pointed at nothing costs no CPU.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::shared::Shared;
use crate::transport::backoff::{Backoff, connect_with_backoff};

/// A connect attempt in progress.
pub(crate) type ConnectFuture<C> = Pin<Box<dyn Future<Output = io::Result<C>> + Send>>;

/// Opens connections of one kind to one receiver.
pub(crate) trait Connect: Send + 'static {
    /// The connection.
    type Conn: Send + 'static;

    /// One attempt (the caller bounds its duration).
    fn connect(&self) -> ConnectFuture<Self::Conn>;
}

struct Down<C> {
    /// When the next attempt may start.
    retry_at: Instant,
    /// The attempt started by a span, polled again by later spans.
    attempt: Option<ConnectFuture<C>>,
}

/// The connection state of one backend.
pub(crate) struct Link<K: Connect> {
    connector: K,
    conn: Option<K::Conn>,
    down: Option<Down<K::Conn>>,
    connected_before: bool,
    backoff: Backoff,
    connect_timeout: Duration,
    /// How long the span that starts an attempt of a down backend waits for it.
    attempt_grace: Duration,
    shared: Arc<Shared>,
}

impl<K: Connect> fmt::Debug for Link<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("up", &self.conn.is_some())
            .field("down", &self.down.is_some())
            .field("connected_before", &self.connected_before)
            .finish_non_exhaustive()
    }
}

/// The error of a span dropped while its backend is down: no allocation.
fn down_error() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

/// Connecting was cut short by the client's shutdown deadline.
fn aborted() -> io::Error {
    io::Error::other("the client shut down while connecting")
}

impl<K: Connect> Link<K> {
    /// `max_backoff` bounds how long a span waits for a connect attempt of a down backend.
    pub(crate) fn new(
        connector: K,
        backoff: Backoff,
        connect_timeout: Duration,
        max_backoff: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        Link {
            attempt_grace: max_backoff.min(connect_timeout),
            connector,
            conn: None,
            down: None,
            connected_before: false,
            backoff,
            connect_timeout,
            shared,
        }
    }

    /// The open connection, connecting first if needed (see the module docs).
    ///
    /// # Errors
    ///
    /// The connect sequence's `TimedOut` error, a failed attempt's error, or
    /// `NotConnected` while the backend is down.
    pub(crate) async fn get(&mut self) -> io::Result<&mut K::Conn> {
        if self.conn.is_none() {
            let conn = self.connect().await?;
            self.install(conn);
        }
        self.conn.as_mut().ok_or_else(down_error)
    }

    async fn connect(&mut self) -> io::Result<K::Conn> {
        let down = self.down.is_some() || self.shared.peer_down.load(Ordering::Relaxed);
        if !down {
            let connector = &self.connector;
            let sequence = connect_with_backoff(&mut self.backoff, self.connect_timeout, || {
                connector.connect()
            });
            let result = tokio::select! {
                biased;
                _ = self.shared.aborting.wait() => return Err(aborted()),
                r = sequence => r,
            };
            return match result {
                Ok(conn) => Ok(conn),
                Err(e) => {
                    // Every backend of this client now knows: none starts a sequence of
                    // its own until one of them connects again.
                    self.shared.peer_down.store(true, Ordering::Relaxed);
                    self.down = Some(Down {
                        retry_at: Instant::now() + self.backoff.next_delay(),
                        attempt: None,
                    });
                    Err(e)
                }
            };
        }
        let now = Instant::now();
        let down = self.down.get_or_insert_with(|| Down {
            retry_at: now,
            attempt: None,
        });
        let outcome = match &mut down.attempt {
            // Look at the attempt without waiting for it (a no-op waker: nothing wakes
            // this worker for it; the next span looks again).
            Some(attempt) => attempt.now_or_never(),
            None if now < down.retry_at => return Err(down_error()),
            None => {
                let attempt = self.connector.connect();
                let timeout = self.connect_timeout;
                let attempt = down.attempt.insert(Box::pin(async move {
                    match tokio::time::timeout(timeout, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(io::ErrorKind::TimedOut.into()),
                    }
                }));
                // The span that starts an attempt waits for it a little: a receiver that
                // is back answers at once. One that does not answer (a host dropping
                // packets) leaves the attempt to go on while spans keep failing fast.
                tokio::select! {
                    biased;
                    _ = self.shared.aborting.wait() => return Err(aborted()),
                    r = tokio::time::timeout(self.attempt_grace, attempt) => r.ok(),
                }
            }
        };
        match outcome {
            None => Err(down_error()),
            Some(Ok(conn)) => {
                self.down = None;
                Ok(conn)
            }
            Some(Err(e)) => {
                down.attempt = None;
                down.retry_at = now + self.backoff.next_delay();
                Err(e)
            }
        }
    }

    fn install(&mut self, conn: K::Conn) {
        self.backoff.reset();
        if self.connected_before {
            self.shared.counters.reconnected();
        }
        self.connected_before = true;
        self.down = None;
        self.shared.peer_down.store(false, Ordering::Relaxed);
        self.conn = Some(conn);
    }

    /// Forgets the connection if `closed` says it is gone (the peer closed it while it
    /// idled, say), so that the next [`get`](Self::get) opens a new one instead of
    /// failing a write on it.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) fn forget_closed(&mut self, closed: impl FnOnce(&K::Conn) -> bool) {
        if self.conn.as_ref().is_some_and(closed) {
            self.conn = None;
        }
    }

    /// Forgets the connection after a write error: the next span reconnects at once.
    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    /// Forgets the connection after a stalled write: the backend is down until its next
    /// backoff time, so that the spans behind the stalled one fail fast.
    pub(crate) fn stalled(&mut self) {
        self.conn = None;
        self.down = Some(Down {
            retry_at: Instant::now() + self.backoff.next_delay(),
            attempt: None,
        });
    }

    /// Takes the connection (to close it) and forgets any attempt.
    pub(crate) fn take(&mut self) -> Option<K::Conn> {
        if let Some(d) = &mut self.down {
            d.attempt = None;
        }
        self.conn.take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Fails while `ok` is false; counts attempts.
    struct Flaky {
        ok: Arc<std::sync::atomic::AtomicBool>,
        attempts: Arc<AtomicUsize>,
    }

    impl Connect for Flaky {
        type Conn = ();
        fn connect(&self) -> ConnectFuture<()> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let ok = self.ok.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err(io::ErrorKind::ConnectionRefused.into())
                }
            })
        }
    }

    fn link(
        shared: &Arc<Shared>,
    ) -> (
        Link<Flaky>,
        Arc<std::sync::atomic::AtomicBool>,
        Arc<AtomicUsize>,
    ) {
        let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let l = Link::new(
            Flaky {
                ok: ok.clone(),
                attempts: attempts.clone(),
            },
            Backoff::new(100 * MS, 100 * MS),
            Duration::from_secs(1),
            100 * MS,
            shared.clone(),
        );
        (l, ok, attempts)
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(1, false, Vec::new(), Duration::from_secs(15)))
    }

    #[tokio::test(start_paused = true)]
    async fn down_after_a_failed_sequence_fails_fast_until_the_backoff_time() {
        let shared = shared();
        let (mut a, ok, attempts) = link(&shared);
        let start = Instant::now();
        let e = a.get().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(1), "one full sequence");
        let in_sequence = attempts.load(Ordering::SeqCst);
        // Down: no attempt, no waiting.
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                a.get().await.unwrap_err().kind(),
                io::ErrorKind::NotConnected
            );
        }
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(attempts.load(Ordering::SeqCst), in_sequence);
        // At the backoff time one span starts one attempt (which fails here).
        tokio::time::sleep(100 * MS).await;
        assert_eq!(
            a.get().await.unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(
            a.get().await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert_eq!(attempts.load(Ordering::SeqCst), in_sequence + 1);
        // The receiver is back: the next attempt connects.
        ok.store(true, Ordering::SeqCst);
        tokio::time::sleep(100 * MS).await;
        a.get().await.expect("connected");
        assert!(!shared.peer_down.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sequence_spares_the_other_backends_theirs() {
        let shared = shared();
        let (mut a, _, _) = link(&shared);
        let (mut b, _, b_attempts) = link(&shared);
        a.get().await.unwrap_err();
        assert!(shared.peer_down.load(Ordering::SeqCst));
        let t = Instant::now();
        // b has never connected, yet makes one attempt without waiting for a sequence.
        b.get().await.unwrap_err();
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(b_attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_connection_is_down_until_the_backoff_time() {
        let shared = shared();
        let (mut a, ok, _) = link(&shared);
        ok.store(true, Ordering::SeqCst);
        a.get().await.unwrap();
        a.stalled();
        assert_eq!(
            a.get().await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        tokio::time::sleep(100 * MS).await;
        a.get().await.expect("reconnected");
        assert_eq!(shared.counters.snapshot().reconnects(), 1);
    }
}
