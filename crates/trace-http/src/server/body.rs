use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use trace_client::Span;

use crate::common::mark_body_failure;

pin_project! {
    /// The response body of [`ServerTrace`](super::ServerTrace): the inner body, unchanged,
    /// plus the request's span when it is recorded at the end of the body
    /// ([`ServerTraceLayer::record_at_body_end`](super::ServerTraceLayer::record_at_body_end)).
    ///
    /// The span is recorded when the body reaches its end, when it fails (marked as an
    /// error) or, at the latest, when the body is dropped.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        span: Option<Span>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn traced(inner: B, span: Span) -> Self {
        ResponseBody {
            inner,
            span: Some(span),
        }
    }

    pub(crate) fn untraced(inner: B) -> Self {
        ResponseBody { inner, span: None }
    }

    /// A reference to the inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body; the span, if it is still held, is recorded now.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.span.is_some() {
            let ended = match &frame {
                None => true,
                Some(Err(_)) => {
                    if let Some(span) = this.span.as_mut() {
                        mark_body_failure(span);
                    }
                    true
                }
                Some(Ok(_)) => this.inner.is_end_stream(),
            };
            if ended {
                if let Some(span) = this.span.take() {
                    let _refused = span.finish();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
