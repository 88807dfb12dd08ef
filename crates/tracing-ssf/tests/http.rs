//! `tracing` spans and trace-http's middleware in one trace, both ways, over real HTTP on
//! loopback with every span sent to an SSF receiver.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use ssf_proto::SsfSpan;
use support::{Udp, by_name};
use tower::{Layer, Service, ServiceExt, service_fn};
use trace_client::SpanContext;
use trace_http::{ClientTraceLayer, ServerTraceLayer, tags};
use tracing::Instrument;
use tracing_ssf::{SsfLayer, SsfSpanExt};
use tracing_subscriber::layer::SubscriberExt;

/// Bound for a request to be answered on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Serves `service` over HTTP/1 on a fresh loopback port until the runtime ends. With
/// `outer`, each request is served inside a `tracing` span named `outer`, outside the
/// middleware, as a connection-level or `tower-http` trace span would be.
async fn serve<S, B>(service: S, outer: bool) -> SocketAddr
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let instrumented = tower::service_fn(move |req| {
        let span = if outer {
            tracing::info_span!("outer")
        } else {
            tracing::Span::none()
        };
        service.clone().oneshot(req).instrument(span)
    });
    ssf_test_support::http::serve(instrumented).await
}

/// GETs `path` from `addr` with an untraced client; returns the response body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{addr}{path}").parse().expect("uri");
    let res = tokio::time::timeout(PATIENCE, http.get(uri))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Installs an `SsfLayer` sending to `udp` as this thread's subscriber; every task of a
/// current-thread runtime runs on this thread.
fn install(udp: &Udp) -> tracing::subscriber::DefaultGuard {
    let layer = SsfLayer::new(udp.client.clone()).service("shop");
    tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
}

/// The handler's work, instrumented with `tracing` only.
#[tracing::instrument]
async fn load_cart(user: u64) -> u64 {
    tokio::task::yield_now().await;
    price().await
}

#[tracing::instrument]
async fn price() -> u64 {
    tokio::task::yield_now().await;
    42
}

/// A handler doing its work in `tracing` spans; answers with what it saw: the request's
/// span context in its extensions, and the current `tracing` span's SSF context.
fn handler() -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send {
    service_fn(|req: Request<hyper::body::Incoming>| async move {
        let ext = req.extensions().get::<SpanContext>().cloned();
        let current = tracing_ssf::current_context();
        let total = load_cart(7).await;
        let body = format!(
            "{total}|{:?}|{:?}",
            ext.map(|c| c.span_id),
            current.map(|c| c.span_id)
        );
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    })
}

/// The server span among `spans`, by its kind tag.
fn server_span(spans: &[SsfSpan]) -> &SsfSpan {
    let mut found = spans
        .iter()
        .filter(|s| s.tags.get(tags::SPAN_KIND).map(String::as_str) == Some(tags::KIND_SERVER));
    let span = found.next().expect("a server span");
    assert!(found.next().is_none(), "one server span in {spans:?}");
    span
}

#[tokio::test(flavor = "current_thread")]
async fn handler_tracing_spans_are_children_of_the_server_span() {
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let server = ServerTraceLayer::new()
        .client(udp.client.clone())
        .layer(handler());
    let addr = serve(server, false).await;

    let seen = get(addr, "/cart").await;
    let spans = udp.spans(3).await;
    let server = server_span(&spans).clone();
    let named = by_name(spans);
    let (load, price) = (&named["load_cart"], &named["price"]);

    assert_eq!(server.name, "GET /cart");
    assert_eq!((server.parent_id, server.trace_id), (0, server.id));
    assert_eq!(
        (load.trace_id, load.parent_id),
        (server.trace_id, server.id)
    );
    assert_eq!(
        (price.trace_id, price.parent_id),
        (server.trace_id, load.id)
    );
    assert_eq!(load.tags["user"], "7");
    assert_eq!(load.service, "shop");
    // Without `enter_with` there is no current `tracing` span in the handler.
    assert_eq!(seen, format!("42|Some({})|None", server.id));
}

#[tokio::test(flavor = "current_thread")]
async fn enter_with_makes_the_server_span_the_current_tracing_span() {
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let server = ServerTraceLayer::new()
        .client(udp.client.clone())
        .enter_with(tracing_ssf::enter_context)
        .layer(handler());
    // Inside an exported `outer` span, which would otherwise be the handler spans' parent.
    let addr = serve(server, true).await;

    let seen = get(addr, "/cart").await;
    // outer, the server span, load_cart, price: the stand-in is not exported.
    let spans = udp.spans(4).await;
    let server = server_span(&spans).clone();
    let named = by_name(spans);
    let (outer, load, price) = (&named["outer"], &named["load_cart"], &named["price"]);

    assert_eq!(
        (load.trace_id, load.parent_id),
        (server.trace_id, server.id)
    );
    assert_eq!(
        (price.trace_id, price.parent_id),
        (server.trace_id, load.id)
    );
    assert_ne!(
        outer.trace_id, server.trace_id,
        "the outer span has its own trace"
    );
    assert!(!named.contains_key("ssf.context"));
    // The handler's current `tracing` span carries the request's span context.
    assert_eq!(seen, format!("42|Some({})|Some({})", server.id, server.id));
    // The stand-in is gone with the request: nothing else arrives.
    udp.client.flush().await.expect("flush");
    let late = udp.receiver.collect(1, Duration::from_millis(200)).await;
    assert!(late.is_err(), "{late:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn without_enter_with_an_outer_tracing_span_takes_the_handler_spans() {
    // What `enter_with` is for: an exported `tracing` span around the middleware is the
    // nearest exported ancestor of the handler's spans.
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let server = ServerTraceLayer::new()
        .client(udp.client.clone())
        .layer(handler());
    let addr = serve(server, true).await;

    get(addr, "/cart").await;
    let spans = udp.spans(4).await;
    let server = server_span(&spans).clone();
    let named = by_name(spans);
    let (outer, load) = (&named["outer"], &named["load_cart"]);
    assert_eq!(load.parent_id, outer.id);
    assert_ne!(load.trace_id, server.trace_id);
}

/// B: a server traced by the middleware, answering with its span's trace and parent IDs.
async fn start_b(udp: &Udp) -> SocketAddr {
    let b = ServerTraceLayer::new()
        .client(udp.client.clone())
        .layer(service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                let ctx = req.extensions().get::<SpanContext>().cloned();
                let body = format!("{:?}", ctx.map(|c| (c.trace_id, c.parent_id)));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            },
        ));
    serve(b, false).await
}

/// A caller instrumented with `tracing` only, calling B through `http`.
#[tracing::instrument(skip(http))]
async fn checkout<S>(http: S, b: SocketAddr) -> String
where
    S: Service<Request<Empty<Bytes>>, Response = Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Debug,
{
    tokio::task::yield_now().await;
    let req = Request::get(format!("http://{b}/stock"))
        .body(Empty::new())
        .expect("request");
    let res = tokio::time::timeout(PATIENCE, http.oneshot(req))
        .await
        .expect("B answers in time")
        .expect("a response");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn a_tracing_caller_is_the_parent_of_the_server_span() {
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let b = start_b(&udp).await;

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let to_b = ClientTraceLayer::new()
        .context_from(tracing_ssf::current_context)
        .layer(http);
    let seen = checkout(to_b, b).await;

    let spans = udp.spans(2).await;
    let server = server_span(&spans).clone();
    let named = by_name(spans);
    let caller = &named["checkout"];
    assert_eq!((caller.parent_id, caller.trace_id), (0, caller.id));
    assert_eq!(
        (server.trace_id, server.parent_id),
        (caller.trace_id, caller.id)
    );
    assert_eq!(seen, format!("Some(({}, {}))", caller.trace_id, caller.id));
}

#[tokio::test(flavor = "current_thread")]
async fn a_tracing_caller_is_the_parent_of_client_spans() {
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let b = start_b(&udp).await;

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let to_b = ClientTraceLayer::new()
        .spans(true)
        .client(udp.client.clone())
        .context_from(tracing_ssf::current_context)
        .layer(http);
    // The caller runs inside a `root` span: one trace, root → checkout → client → server.
    let root = tracing::info_span!("root");
    checkout(to_b, b).instrument(root.clone()).await;
    let root_ctx = root.ssf_context().expect("exported");
    drop(root);

    let spans = udp.spans(4).await;
    let server = server_span(&spans).clone();
    let client = spans
        .iter()
        .find(|s| s.tags.get(tags::SPAN_KIND).map(String::as_str) == Some(tags::KIND_CLIENT))
        .expect("a client span")
        .clone();
    let caller = spans
        .iter()
        .find(|s| s.name == "checkout")
        .expect("the caller's span");
    assert_eq!(caller.parent_id, root_ctx.span_id);
    for span in [caller, &client, &server] {
        assert_eq!(span.trace_id, root_ctx.trace_id, "{span:?}");
    }
    assert_eq!(client.parent_id, caller.id);
    assert_eq!(server.parent_id, client.id);
}

#[tokio::test(flavor = "current_thread")]
async fn without_context_from_a_tracing_caller_is_invisible_to_the_client_layer() {
    // What `context_from` is for: the client layer alone sees no `tracing` span.
    let mut udp = Udp::new().await;
    let _guard = install(&udp);
    let b = start_b(&udp).await;

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let seen = checkout(ClientTraceLayer::new().layer(http), b).await;
    let spans = udp.spans(2).await;
    let server = server_span(&spans);
    assert_eq!((server.parent_id, server.trace_id), (0, server.id));
    assert_eq!(seen, format!("Some(({}, 0))", server.id));
}
