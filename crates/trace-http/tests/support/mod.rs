//! Shared helpers of the integration tests: services, requests, span collection and
//! loopback HTTP servers.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ssf_proto::SsfSpan;
use tokio::sync::mpsc;
use tower::Service;

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A request for `path` with the given headers and an empty body.
pub fn request(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).expect("a valid request")
}

/// A service answering every request with `status` and a short body.
pub fn status_service<B>(
    status: StatusCode,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
where
    B: Send + 'static,
{
    tower::service_fn(move |_req: Request<B>| async move {
        let mut res = Response::new(Full::new(Bytes::from_static(b"body")));
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    })
}

/// The next span in the channel, failing the test if none comes in time.
pub async fn next_span(rx: &mut mpsc::Receiver<SsfSpan>) -> SsfSpan {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a span in time")
        .expect("the channel is open")
}

/// Whether a span is a root: no parent, trace ID = span ID.
pub fn is_root(span: &SsfSpan) -> bool {
    span.parent_id == 0 && span.trace_id == span.id && span.id != 0
}

#[allow(unused_imports)]
pub use ssf_test_support::http::serve;
