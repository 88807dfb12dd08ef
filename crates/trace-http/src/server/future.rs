use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;
use trace_client::{InSpan, Span};

use super::ResponseBody;
use crate::common::{mark_failure, tag_status};
use crate::tags;

pin_project! {
    /// The response future of [`ServerTrace`](super::ServerTrace).
    ///
    /// When it completes it tags the span with the status (an error on 5xx or on a service
    /// error) and records it, or hands it to the [`ResponseBody`]. Dropped before
    /// completion (the connection went away), it records the span tagged
    /// `http.canceled: true`.
    ///
    /// `P` is the type of the [`enter_with`](super::ServerTraceLayer::enter_with) hook's
    /// `enter` function, called around each poll of the inner future.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct ResponseFuture<F: Future, P = fn()> {
        #[pin]
        inner: Inner<F>,
        span: Option<Span>,
        body_end: bool,
        enter: Option<P>,
    }

    impl<F: Future, P> PinnedDrop for ResponseFuture<F, P> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(span) = this.project().span {
                // Dropping the span records it.
                span.set_tag(tags::HTTP_CANCELED, "true");
            }
        }
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F: Future> {
        Traced { #[pin] future: InSpan<F> },
        Untraced { #[pin] future: F },
    }
}

impl<F: Future, P> ResponseFuture<F, P> {
    pub(crate) fn traced(future: InSpan<F>, span: Span, body_end: bool, enter: Option<P>) -> Self {
        ResponseFuture {
            inner: Inner::Traced { future },
            span: Some(span),
            body_end,
            enter,
        }
    }

    pub(crate) fn untraced(future: F) -> Self {
        ResponseFuture {
            inner: Inner::Untraced { future },
            span: None,
            body_end: false,
            enter: None,
        }
    }
}

impl<F, P, G, B, E> Future for ResponseFuture<F, P>
where
    F: Future<Output = Result<Response<B>, E>>,
    P: FnMut() -> G,
    B: Body,
    E: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.project() {
            InnerProj::Traced { future } => {
                let _entered = this.enter.as_mut().map(|enter| enter());
                ready!(future.poll(cx))
            }
            InnerProj::Untraced { future } => ready!(future.poll(cx)),
        };
        let Some(mut span) = this.span.take() else {
            return Poll::Ready(result.map(|res| res.map(ResponseBody::untraced)));
        };
        Poll::Ready(match result {
            Ok(res) => {
                tag_status(&mut span, res.status());
                if *this.body_end && !res.body().is_end_stream() {
                    Ok(res.map(|body| ResponseBody::traced(body, span)))
                } else {
                    let _refused = span.finish();
                    Ok(res.map(ResponseBody::untraced))
                }
            }
            Err(err) => {
                mark_failure(&mut span, &err);
                let _refused = span.finish();
                Err(err)
            }
        })
    }
}

impl<F: Future, P> fmt::Debug for ResponseFuture<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .field("body_end", &self.body_end)
            .finish_non_exhaustive()
    }
}
