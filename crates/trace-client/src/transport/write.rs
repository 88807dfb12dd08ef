//! Writes with a stall timeout, cut short when the client aborts.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::DropReason;
use crate::shared::Signal;

/// A socket that can be written without waiting, and waited on until writable.
pub(crate) trait TryWrite {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    Io(io::Error),
    Stalled(Duration),
    /// The client's shutdown deadline passed.
    Aborted,
}

impl WriteFailure {
    pub(crate) fn into_drop(self) -> (DropReason, io::Error) {
        match self {
            WriteFailure::Io(e) => (DropReason::WriteError, e),
            WriteFailure::Stalled(t) => (
                DropReason::WriteTimeout,
                io::Error::new(io::ErrorKind::TimedOut, WriteStalled(t)),
            ),
            WriteFailure::Aborted => (DropReason::Closed, shut_down()),
        }
    }
}

fn shut_down() -> io::Error {
    io::Error::other("the client shut down before the write finished")
}

/// The error inside the `TimedOut` I/O error of a stalled write.
#[derive(Debug)]
struct WriteStalled(Duration);

impl std::fmt::Display for WriteStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the receiver took nothing for {:?} (write timeout)",
            self.0
        )
    }
}

impl std::error::Error for WriteStalled {}

/// Waits until `w` is writable, at most until `deadline`, and not past an abort.
pub(crate) async fn wait_writable<W: TryWrite>(
    w: &W,
    deadline: Instant,
    timeout: Duration,
    aborting: &Signal,
) -> Result<(), WriteFailure> {
    tokio::select! {
        biased;
        _ = aborting.wait() => Err(WriteFailure::Aborted),
        r = tokio::time::timeout_at(deadline, w.writable()) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailure::Io(e)),
            Err(_) => Err(WriteFailure::Stalled(timeout)),
        },
    }
}

/// Writes all of `buf`, failing if the socket takes nothing for `timeout`. The timer is
/// only set up when the socket is full. `written` tells how much the socket took, also
/// when the write fails.
pub(crate) async fn write_all<W: TryWrite>(
    w: &W,
    buf: &[u8],
    written: &mut usize,
    timeout: Duration,
    aborting: &Signal,
) -> Result<(), WriteFailure> {
    let mut deadline: Option<Instant> = None;
    *written = 0;
    while *written < buf.len() {
        match w.try_write(&buf[*written..]) {
            Ok(0) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                *written += n;
                deadline = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                wait_writable(w, at, timeout, aborting).await?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WriteFailure::Io(e)),
        }
    }
    Ok(())
}
