use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use trace_client::Span;

use crate::common::{mark_failure, tag_status};
use crate::tags;

pin_project! {
    /// The response future of [`ClientTrace`](super::ClientTrace).
    ///
    /// With client spans on, it tags the span with the response status (an error on 5xx
    /// or on a service error) and records it when the response head arrives. Dropped
    /// before that, it records the span tagged `http.canceled: true`.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(span) = this.project().span {
                // Dropping the span records it.
                span.set_tag(tags::HTTP_CANCELED, "true");
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Option<Span>) -> Self {
        ResponseFuture { inner, span }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(mut span) = this.span.take() {
            match &result {
                Ok(res) => tag_status(&mut span, res.status()),
                Err(err) => mark_failure(&mut span, err),
            }
            let _refused = span.finish();
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}
