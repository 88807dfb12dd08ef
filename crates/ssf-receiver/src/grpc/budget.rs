//! A connection's budget for the messages being read: before tonic sees a message's
//! length prefix (and reserves room for the whole message), the call takes that many
//! bytes from its connection's budget, and gives them back when its request body is
//! dropped, which tonic does once the message is decoded. A call that finds the budget
//! spent is refused with `resource_exhausted` instead of waiting: waiting would hold its
//! later HTTP/2 frames unread, and those count against the connection's flow-control
//! window the other calls need to finish.
//!
//! So a connection buffers at most the budget (the listener's `max_frame_length`) of
//! messages, whatever number of calls it opens, as a stream connection buffers at most
//! one frame.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The gRPC message prefix: a compression flag and a big-endian `u32` length.
const PREFIX: usize = 5;

/// The status a call over budget is refused with; the listener counts calls answered
/// with it.
pub(crate) const OVER_BUDGET: tonic::Code = tonic::Code::ResourceExhausted;

/// The bytes of messages one connection may hold at once.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    size: u32,
}

impl Budget {
    /// A budget of `size` bytes (at most `u32::MAX`, the largest gRPC message).
    pub(crate) fn new(size: usize) -> Budget {
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        Budget {
            bytes: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// The bytes not taken now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// `body`, taking its message's bytes from this budget as its prefix passes.
    /// `limit` is the largest message the call accepts: a longer one takes nothing, as
    /// tonic refuses it from the prefix without reserving.
    pub(crate) fn wrap<B>(&self, body: B, limit: usize) -> Budgeted<B> {
        Budgeted {
            inner: body,
            budget: self.clone(),
            limit,
            prefix: [0; PREFIX],
            seen: 0,
            _taken: None,
        }
    }
}

/// A request body that holds its message's share of the connection's [`Budget`] from
/// the moment its length prefix arrives until it is dropped.
#[derive(Debug)]
pub(crate) struct Budgeted<B> {
    inner: B,
    budget: Budget,
    limit: usize,
    prefix: [u8; PREFIX],
    /// Prefix bytes seen so far (a unary call carries one message, so only the first
    /// prefix matters: tonic reads no further).
    seen: usize,
    _taken: Option<OwnedSemaphorePermit>,
}

impl<B> Budgeted<B> {
    /// Notes the prefix bytes at the start of `data`; when the prefix is whole, takes the
    /// message's bytes from the budget, or refuses the call.
    fn check(&mut self, data: &[u8]) -> Result<(), Status> {
        if self.seen >= PREFIX {
            return Ok(());
        }
        let n = (PREFIX - self.seen).min(data.len());
        self.prefix[self.seen..self.seen + n].copy_from_slice(&data[..n]);
        self.seen += n;
        if self.seen < PREFIX {
            return Ok(());
        }
        let [_, a, b, c, d] = self.prefix;
        let len = u32::from_be_bytes([a, b, c, d]);
        if len == 0 || len as usize > self.limit {
            return Ok(());
        }
        let want = len.min(self.budget.size);
        match Arc::clone(&self.budget.bytes).try_acquire_many_owned(want) {
            Ok(permit) => {
                self._taken = Some(permit);
                Ok(())
            }
            Err(_) => Err(Status::new(
                OVER_BUDGET,
                format!(
                    "the connection's calls in flight hold {} of its {} bytes for messages; \
                     this {len}-byte message does not fit",
                    self.budget.size as usize - self.budget.bytes.available_permits(),
                    self.budget.size
                ),
            )),
        }
    }
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    // A status, so that tonic answers the call with it (it looks for one in a body's
    // error before anything else).
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Some(Err(Status::from_error(Box::new(e)))));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(status) = this.check(data) {
                return Poll::Ready(Some(Err(status)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::poll_fn;

    use super::*;

    /// A body that yields the given chunks as data frames.
    struct Chunks(Vec<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(PREFIX + len as usize, 7);
        m
    }

    async fn read_all<B: Body<Data = Bytes> + Unpin>(b: &mut B) -> Result<usize, B::Error> {
        let mut n = 0;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut *b).poll_frame(cx)).await {
            n += frame?.into_data().map_or(0, |d| d.len());
        }
        Ok(n)
    }

    #[tokio::test]
    async fn a_message_holds_its_bytes_until_its_body_is_dropped() {
        let budget = Budget::new(100);
        let mut body = budget.wrap(Chunks(vec![Bytes::from(message(60))]), 100);
        assert_eq!(read_all(&mut body).await.unwrap(), 65);
        assert_eq!(budget.available(), 40);
        drop(body);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn a_prefix_split_across_frames_is_read_whole() {
        let budget = Budget::new(100);
        let m = message(30);
        let chunks = vec![
            Bytes::copy_from_slice(&m[..2]),
            Bytes::copy_from_slice(&m[2..4]),
            Bytes::copy_from_slice(&m[4..]),
        ];
        let mut body = budget.wrap(Chunks(chunks), 100);
        assert_eq!(read_all(&mut body).await.unwrap(), 35);
        assert_eq!(budget.available(), 70);
    }

    #[tokio::test]
    async fn a_call_that_does_not_fit_is_refused_before_its_body_is_read() {
        let budget = Budget::new(100);
        let mut first = budget.wrap(Chunks(vec![Bytes::from(message(80))]), 100);
        read_all(&mut first).await.unwrap();
        // A prefix that announces 50 bytes, with none of them sent.
        let mut prefix = vec![0];
        prefix.extend_from_slice(&50u32.to_be_bytes());
        let mut second = budget.wrap(Chunks(vec![Bytes::from(prefix.clone())]), 100);
        let err = read_all(&mut second).await.unwrap_err();
        assert_eq!(err.code(), OVER_BUDGET);
        assert!(
            err.message().contains("50-byte message"),
            "{}",
            err.message()
        );
        drop(first);
        let mut third = budget.wrap(Chunks(vec![Bytes::from(prefix)]), 100);
        read_all(&mut third).await.unwrap();
        assert_eq!(budget.available(), 50);
    }

    #[tokio::test]
    async fn many_calls_announcing_large_messages_hold_no_more_than_the_budget() {
        let budget = Budget::new(1000);
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..256 {
            let mut prefix = vec![0];
            prefix.extend_from_slice(&400u32.to_be_bytes());
            let mut body = budget.wrap(Chunks(vec![Bytes::from(prefix)]), 1000);
            match read_all(&mut body).await {
                Ok(_) => held.push(body),
                Err(_) => refused += 1,
            }
        }
        assert_eq!((held.len(), refused), (2, 254));
        assert_eq!(budget.available(), 200);
    }

    #[tokio::test]
    async fn a_message_over_the_limit_takes_nothing() {
        let budget = Budget::new(100);
        let mut prefix = vec![0];
        prefix.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut body = budget.wrap(Chunks(vec![Bytes::from(prefix)]), 100);
        read_all(&mut body).await.unwrap();
        assert_eq!(budget.available(), 100);
    }
}
