//! The client middleware: which context is injected, in which format, and client spans.

mod support;

use std::convert::Infallible;
use std::fmt;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use support::{is_root, next_span};
use tower::{Layer, ServiceExt, service_fn};
use trace_client::propagation::{self, DEFAULT_EXTRACT_FORMATS, HeaderFormat};
use trace_client::{Client, SpanContext, context};
use trace_http::{ClientTrace, ClientTraceLayer, tags};

/// A stand-in for an HTTP client: answers `status` and echoes the request headers in the
/// response headers, so a test sees what would have gone on the wire.
fn echo(
    status: StatusCode,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| async move {
        let mut res = Response::new(Full::default());
        *res.status_mut() = status;
        *res.headers_mut() = req.headers().clone();
        Ok::<_, Infallible>(res)
    })
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

async fn sent_headers<N>(layer: &ClientTraceLayer<N>, req: Request<Full<Bytes>>) -> HeaderMap
where
    N: Fn(&http::request::Parts) -> String + Clone,
{
    let svc = layer.layer(echo(StatusCode::OK));
    svc.oneshot(req).await.unwrap().headers().clone()
}

#[tokio::test]
async fn the_current_span_is_injected_as_veneur_does() {
    let layer = ClientTraceLayer::new();
    let headers = context::in_span(
        SpanContext::new(255, -1),
        sent_headers(&layer, get("http://b/x")),
    )
    .await;
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(headers["ot-tracer-traceid"], "ff");
    assert_eq!(headers["ot-tracer-spanid"], "ffffffffffffffff");
    assert_eq!(headers["ot-tracer-sampled"], "true");
}

#[tokio::test]
async fn without_a_context_nothing_is_injected() {
    let headers = sent_headers(&ClientTraceLayer::new(), get("http://b/x")).await;
    assert!(headers.is_empty(), "{headers:?}");
}

#[tokio::test]
async fn a_context_in_the_extensions_wins_over_the_current_span() {
    let mut req = get("http://b/x");
    req.extensions_mut().insert(SpanContext::new(1, 2));
    let headers = context::in_span(
        SpanContext::new(3, 4),
        sent_headers(&ClientTraceLayer::new(), req),
    )
    .await;
    let ctx = propagation::extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (1, 2));
}

#[tokio::test]
async fn every_format_can_be_injected_and_stale_values_are_replaced() {
    for format in [
        HeaderFormat::Envoy,
        HeaderFormat::OpenTracing,
        HeaderFormat::Ruby,
        HeaderFormat::Veneur,
        HeaderFormat::W3c,
    ] {
        let layer = ClientTraceLayer::new().format(format);
        let mut req = get("http://b/x");
        // A stale value of the same format, twice.
        let key = http::HeaderName::from_static(format.trace_key());
        req.headers_mut().append(&key, "1".parse().unwrap());
        req.headers_mut().append(&key, "2".parse().unwrap());
        let headers = context::in_span(SpanContext::new(40, 41), sent_headers(&layer, req)).await;
        assert_eq!(headers.get_all(&key).iter().count(), 1, "{format:?}");
        let ctx = propagation::extract_headers(&headers, &[format]).unwrap();
        assert_eq!((ctx.trace_id, ctx.span_id), (40, 41), "{format:?}");
    }
}

#[tokio::test]
async fn client_spans_are_children_of_the_caller_and_injected() {
    let (client, mut rx) = Client::channel(8);
    let layer = ClientTraceLayer::new().spans(true).client(client);
    let headers = context::in_span(
        SpanContext::new(50, 51),
        sent_headers(&layer, get("http://b/items?secret=1")),
    )
    .await;
    let span = next_span(&mut rx).await;
    assert_eq!((span.trace_id, span.parent_id), (50, 51));
    assert_ne!(span.id, 51);
    assert_eq!(span.name, "GET /items");
    assert_eq!(span.tags[tags::SPAN_KIND], "client");
    assert_eq!(span.tags[tags::HTTP_METHOD], "GET");
    assert_eq!(span.tags[tags::HTTP_PATH], "/items");
    assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "200");
    assert!(!span.error);
    let ctx = propagation::extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (50, span.id));
}

#[tokio::test]
async fn without_a_caller_a_client_span_is_a_root() {
    let (client, mut rx) = Client::channel(8);
    let layer = ClientTraceLayer::new()
        .client(client)
        .span_name(|req| format!("call {}", req.uri.host().unwrap_or("?")));
    let headers = sent_headers(&layer, get("http://inventory/x")).await;
    let span = next_span(&mut rx).await;
    assert!(is_root(&span));
    assert_eq!(span.name, "call inventory");
    let ctx = propagation::extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!(ctx.span_id, span.id);
}

#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection refused")
    }
}

#[tokio::test]
async fn client_spans_mark_5xx_and_transport_errors() {
    let (client, mut rx) = Client::channel(8);
    let layer = ClientTraceLayer::new().spans(true).client(client);
    let res = layer
        .layer(echo(StatusCode::BAD_GATEWAY))
        .oneshot(get("http://b/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let span = next_span(&mut rx).await;
    assert!(span.error);
    assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "502");

    let failing = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(Refused)
    }));
    let err = failing.oneshot(get("http://b/")).await.unwrap_err();
    assert_eq!(err.to_string(), "connection refused");
    let span = next_span(&mut rx).await;
    assert!(span.error);
    assert_eq!(span.tags["error.msg"], "connection refused");
    assert_eq!(span.tags["error.type"], "Refused");
}

#[tokio::test]
async fn without_spans_nothing_is_recorded() {
    let (client, mut rx) = Client::channel(8);
    let layer = ClientTraceLayer::new().client(client);
    context::in_span(
        SpanContext::new(1, 2),
        sent_headers(&layer, get("http://b/")),
    )
    .await;
    assert!(rx.try_recv().is_err());
    let text = format!("{:?}", ClientTrace::new(()));
    assert!(text.starts_with("ClientTrace { inner: ()"), "{text}");
    assert!(format!("{:?}", ClientTrace::layer().clone()).contains("Envoy"));
}

fn from_hook() -> Option<SpanContext> {
    Some(SpanContext::new(70, 71))
}

fn nothing_from_hook() -> Option<SpanContext> {
    None
}

#[tokio::test]
async fn context_from_comes_after_the_extensions_and_before_the_current_span() {
    let ids = |headers: &HeaderMap| {
        let ctx = propagation::extract_headers(headers, DEFAULT_EXTRACT_FORMATS).unwrap();
        (ctx.trace_id, ctx.span_id)
    };
    let layer = ClientTraceLayer::new().context_from(from_hook);
    // Alone.
    assert_eq!(
        ids(&sent_headers(&layer, get("http://b/x")).await),
        (70, 71)
    );
    // Before the task's current span.
    let headers = context::in_span(
        SpanContext::new(3, 4),
        sent_headers(&layer, get("http://b/x")),
    )
    .await;
    assert_eq!(ids(&headers), (70, 71));
    // After the extensions.
    let mut req = get("http://b/x");
    req.extensions_mut().insert(SpanContext::new(1, 2));
    assert_eq!(ids(&sent_headers(&layer, req).await), (1, 2));
    // A hook with nothing falls back to the current span.
    let layer = ClientTraceLayer::new().context_from(nothing_from_hook);
    let headers = context::in_span(
        SpanContext::new(3, 4),
        sent_headers(&layer, get("http://b/x")),
    )
    .await;
    assert_eq!(ids(&headers), (3, 4));
    assert!(sent_headers(&layer, get("http://b/x")).await.is_empty());
    let text = format!("{:?}", layer.clone());
    assert!(text.contains("context_from: true"), "{text}");
}

#[tokio::test]
async fn client_spans_are_children_of_the_context_from_span() {
    let (client, mut rx) = Client::channel(8);
    let layer = ClientTraceLayer::new()
        .spans(true)
        .client(client)
        .context_from(from_hook);
    let headers = sent_headers(&layer, get("http://b/items")).await;
    let span = next_span(&mut rx).await;
    assert_eq!((span.trace_id, span.parent_id), (70, 71));
    let ctx = propagation::extract_headers(&headers, DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!((ctx.trace_id, ctx.span_id), (70, span.id));
}
