//! The server middleware: spans, tags, errors, exclusion, extensions, current span,
//! recording at the end of the body, cancellation and readiness.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use support::{is_root, next_span, request, status_service};
use tower::{Layer, Service, ServiceExt, service_fn};
use trace_client::{Client, Span, SpanContext, context};
use trace_http::{ServerTrace, ServerTraceLayer, tags};

#[tokio::test]
async fn a_request_without_trace_headers_gets_a_tagged_root_span() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTraceLayer::new()
        .client(client)
        .layer(status_service(StatusCode::OK));
    let res = svc.oneshot(request("/items/7?page=2", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"body");

    let span = next_span(&mut rx).await;
    assert!(is_root(&span), "{span:?}");
    assert_eq!(span.name, "GET /items/7");
    assert_eq!(span.tags[tags::HTTP_METHOD], "GET");
    assert_eq!(span.tags[tags::HTTP_PATH], "/items/7");
    assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "200");
    assert_eq!(span.tags[tags::SPAN_KIND], "server");
    assert!(!span.error);
    assert!(span.end_timestamp >= span.start_timestamp && span.start_timestamp > 0);
    assert!(rx.try_recv().is_err(), "exactly one span");
}

#[tokio::test]
async fn server_errors_are_marked_and_client_errors_are_not() {
    let (client, mut rx) = Client::channel(8);
    let layer = ServerTraceLayer::new().client(client);
    for (status, error) in [
        (StatusCode::NOT_FOUND, false),
        (StatusCode::INTERNAL_SERVER_ERROR, true),
        (StatusCode::SERVICE_UNAVAILABLE, true),
        (StatusCode::NO_CONTENT, false),
    ] {
        let svc = layer.layer(status_service(status));
        let res = svc.oneshot(request("/", &[])).await.unwrap();
        assert_eq!(res.status(), status);
        let span = next_span(&mut rx).await;
        assert_eq!(span.error, error, "{status}");
        assert_eq!(span.tags[tags::HTTP_STATUS_CODE], status.as_str());
        if error {
            assert!(span.tags["error.msg"].contains(status.as_str()), "{span:?}");
        } else {
            assert!(!span.tags.contains_key("error.msg"));
        }
    }
}

#[derive(Debug)]
struct Boom;

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backend exploded")
    }
}

#[tokio::test]
async fn a_service_error_is_marked_and_returned() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTraceLayer::new().client(client).layer(service_fn(
        |_req: Request<Full<Bytes>>| async { Err::<Response<Full<Bytes>>, _>(Boom) },
    ));
    let err = svc.oneshot(request("/x", &[])).await.unwrap_err();
    assert_eq!(err.to_string(), "backend exploded");
    let span = next_span(&mut rx).await;
    assert!(span.error);
    assert_eq!(span.tags["error.msg"], "backend exploded");
    assert_eq!(span.tags["error.type"], "Boom");
    assert!(!span.tags.contains_key(tags::HTTP_STATUS_CODE));
}

#[tokio::test]
async fn excluded_paths_record_nothing_and_get_no_context() {
    let (client, mut rx) = Client::channel(8);
    /// What the handler saw: path, span context in the extensions, current span.
    type Seen = (String, Option<SpanContext>, Option<SpanContext>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push((
                req.uri().path().to_owned(),
                req.extensions().get::<SpanContext>().cloned(),
                context::current(),
            ));
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }
    });
    let svc = ServerTraceLayer::new()
        .client(client)
        .exclude(|req| matches!(req.uri.path(), "/healthz" | "/metrics"))
        .layer(inner);

    for path in ["/healthz", "/metrics", "/healthz"] {
        svc.clone().oneshot(request(path, &[])).await.unwrap();
    }
    assert!(rx.try_recv().is_err(), "excluded requests recorded a span");
    svc.clone().oneshot(request("/work", &[])).await.unwrap();
    let span = next_span(&mut rx).await;
    assert_eq!(span.name, "GET /work");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    for (path, ext, current) in &seen[..3] {
        assert_eq!((ext, current), (&None, &None), "{path}");
    }
    let (_, ext, current) = &seen[3];
    assert_eq!(ext.as_ref().map(|c| c.span_id), Some(span.id));
    assert_eq!(current, ext);
}

#[tokio::test]
async fn the_span_is_in_the_extensions_and_current_in_the_handler() {
    let (client, mut rx) = Client::channel(8);
    let handler_client = client.clone();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let client = handler_client.clone();
        async move {
            let ext = req.extensions().get::<SpanContext>().cloned();
            tokio::task::yield_now().await;
            let current = context::current();
            // A span started by the handler is a child of the request's span.
            Span::child_of_current("db.query")
                .with_client(client)
                .finish()
                .unwrap();
            let body = format!("{ext:?}|{current:?}");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    });
    let svc = ServerTraceLayer::new().client(client).layer(inner);
    let res = svc
        .oneshot(request("/", &[("traceid", "77"), ("spanid", "88")]))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();

    let db = next_span(&mut rx).await;
    let server = next_span(&mut rx).await;
    assert_eq!((server.trace_id, server.parent_id), (77, 88));
    assert_eq!((db.trace_id, db.parent_id), (77, server.id));
    // The request's sampling decision was made (and kept) when its span started.
    let expected = SpanContext::new(77, server.id)
        .with_parent_id(88)
        .with_resource("GET /")
        .with_sampled(true);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{:?}|{:?}", Some(&expected), Some(&expected))
    );
}

/// A service that reads the current span in `call` itself, before its future runs.
#[derive(Clone, Debug)]
struct SeesCurrentInCall;

impl Service<Request<Full<Bytes>>> for SeesCurrentInCall {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        let id = context::current().map_or(0, |c| c.span_id);
        std::future::ready(Ok(Response::new(Full::new(Bytes::from(id.to_string())))))
    }
}

#[tokio::test]
async fn the_span_is_current_in_call_too() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTrace::layer().client(client).layer(SeesCurrentInCall);
    let res = svc.oneshot(request("/", &[])).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let span = next_span(&mut rx).await;
    assert_eq!(String::from_utf8_lossy(&body), span.id.to_string());
}

#[tokio::test]
async fn span_names_come_from_the_configured_function() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTraceLayer::new()
        .client(client)
        .span_name(|req| format!("http.{}", req.method.as_str().to_lowercase()))
        .layer(status_service(StatusCode::OK));
    svc.oneshot(request("/a", &[])).await.unwrap();
    let span = next_span(&mut rx).await;
    assert_eq!(span.name, "http.get");
    assert_eq!(span.tags[tags::HTTP_PATH], "/a");
}

/// A body yielding scripted frames, optionally failing at the end.
struct Scripted {
    frames: VecDeque<Bytes>,
    fail: bool,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(match self.frames.pop_front() {
            Some(data) => Some(Ok(Frame::data(data))),
            None if self.fail => {
                self.fail = false;
                Some(Err(std::io::Error::other("reset")))
            }
            None => None,
        })
    }
}

fn scripted_service(
    fail: bool,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Scripted>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<Full<Bytes>>| async move {
        let frames = VecDeque::from([Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        Ok::<_, Infallible>(Response::new(Scripted { frames, fail }))
    })
}

#[tokio::test]
async fn at_body_end_the_span_waits_for_the_last_frame() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTraceLayer::new()
        .client(client)
        .record_at_body_end(true)
        .layer(scripted_service(false));
    let res = svc.oneshot(request("/stream", &[])).await.unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "a");
    assert!(rx.try_recv().is_err(), "recorded before the body ended");
    body.frame().await.unwrap().unwrap();
    assert!(rx.try_recv().is_err(), "recorded before the body ended");
    assert!(body.frame().await.is_none());
    let span = next_span(&mut rx).await;
    assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "200");
    assert!(!span.error);
    drop(body);
    assert!(rx.try_recv().is_err(), "recorded twice");
}

#[tokio::test]
async fn at_body_end_a_dropped_or_failed_body_still_records() {
    let (client, mut rx) = Client::channel(8);
    let layer = ServerTraceLayer::new()
        .client(client)
        .record_at_body_end(true);

    let res = layer
        .layer(scripted_service(false))
        .oneshot(request("/dropped", &[]))
        .await
        .unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    assert!(rx.try_recv().is_err());
    drop(body);
    let span = next_span(&mut rx).await;
    assert_eq!(span.name, "GET /dropped");
    assert!(!span.error);

    let res = layer
        .layer(scripted_service(true))
        .oneshot(request("/failed", &[]))
        .await
        .unwrap();
    let err = res.into_body().collect().await.expect_err("a body error");
    assert_eq!(err.to_string(), "reset");
    let span = next_span(&mut rx).await;
    assert_eq!(span.name, "GET /failed");
    assert!(span.error);
    assert_eq!(span.tags["error.msg"], "response body failed");
}

#[tokio::test]
async fn by_default_the_span_is_recorded_before_the_body_is_read() {
    let (client, mut rx) = Client::channel(8);
    let svc = ServerTraceLayer::new()
        .client(client)
        .layer(scripted_service(false));
    let res = svc.oneshot(request("/", &[])).await.unwrap();
    let span = next_span(&mut rx).await;
    assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "200");
    drop(res);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_dropped_response_future_records_a_canceled_span() {
    let (client, mut rx) = Client::channel(8);
    let svc =
        ServerTraceLayer::new()
            .client(client)
            .layer(service_fn(|_req: Request<Full<Bytes>>| {
                std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
            }));
    let mut call = Box::pin(svc.oneshot(request("/slow", &[])));
    let pending = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_pending())).await;
    assert!(pending);
    assert!(rx.try_recv().is_err(), "recorded while pending");
    drop(call);
    let span = next_span(&mut rx).await;
    assert_eq!(span.name, "GET /slow");
    assert_eq!(span.tags[tags::HTTP_CANCELED], "true");
    assert!(!span.tags.contains_key(tags::HTTP_STATUS_CODE));
}

/// A service that is not ready until it has been polled `n` times, and then fails.
#[derive(Clone, Debug)]
struct NotReady {
    polls: Arc<Mutex<u32>>,
}

impl Service<Request<Full<Bytes>>> for NotReady {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Self::Response, &'static str>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        let mut polls = self.polls.lock().unwrap();
        *polls += 1;
        if *polls < 3 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(Err("overloaded"))
        }
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        unreachable!("never ready")
    }
}

#[tokio::test]
async fn readiness_is_forwarded() {
    let (client, mut rx) = Client::channel(8);
    let polls = Arc::new(Mutex::new(0));
    let mut svc = ServerTraceLayer::new().client(client).layer(NotReady {
        polls: Arc::clone(&polls),
    });
    let err = svc.ready().await.unwrap_err();
    assert_eq!(err, "overloaded");
    assert_eq!(*polls.lock().unwrap(), 3);
    assert!(rx.try_recv().is_err());
    assert!(format!("{svc:?}").starts_with("ServerTrace { inner: NotReady"));
}

#[test]
fn layers_are_clone_and_debug() {
    let layer = ServerTraceLayer::new().exclude(|req| req.uri.path() == "/");
    let copy = layer.clone();
    let text = format!("{copy:?}");
    assert!(text.contains("ServerTraceLayer"), "{text}");
    assert!(text.contains("Envoy"), "{text}");
    let svc = ServerTrace::new(SeesCurrentInCall);
    assert!(format!("{:?}", svc.get_ref()).contains("SeesCurrentInCall"));
}

#[tokio::test]
async fn axum_routers_accept_the_layer() {
    let (client, mut rx) = Client::channel(8);
    let app = axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async {
                let id = context::current().map_or(0, |c| c.span_id);
                (StatusCode::ACCEPTED, id.to_string())
            }),
        )
        .layer(ServerTraceLayer::new().client(client));
    let req = Request::get("/users/9")
        .header("x-trace-id", "5")
        .header("x-span-id", "6")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let span = next_span(&mut rx).await;
    assert_eq!(String::from_utf8_lossy(&body), span.id.to_string());
    assert_eq!((span.trace_id, span.parent_id), (5, 6));
    assert_eq!(span.name, "GET /users/9");
}

thread_local! {
    /// The span IDs "entered" by the `enter_with` hook of the tests below, innermost last:
    /// a stand-in for another instrumentation's current span.
    static ENTERED: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Leaves the entered span when dropped.
struct Entered;

impl Drop for Entered {
    fn drop(&mut self) {
        ENTERED.with(|e| e.borrow_mut().pop());
    }
}

fn entered() -> Option<i64> {
    ENTERED.with(|e| e.borrow().last().copied())
}

#[tokio::test]
async fn enter_with_makes_the_span_current_for_another_instrumentation() {
    let (client, mut rx) = Client::channel(8);
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&hooked);
    let layer = ServerTraceLayer::new()
        .client(client)
        .exclude(|req| req.uri.path() == "/healthz")
        .enter_with(move |ctx: &SpanContext| {
            seen.lock().unwrap().push(ctx.span_id);
            let id = ctx.span_id;
            move || {
                ENTERED.with(|e| e.borrow_mut().push(id));
                Entered
            }
        });
    let text = format!("{layer:?}");
    assert!(text.contains("enter_with: Some("), "{text}");
    let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        let before = entered();
        // Pending once: the second poll must enter again.
        tokio::task::yield_now().await;
        let after = entered();
        let body = format!("{before:?}|{after:?}");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    }));

    let res = svc.clone().oneshot(request("/", &[])).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let span = next_span(&mut rx).await;
    let id = span.id;
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("Some({id})|Some({id})")
    );
    assert_eq!(entered(), None, "left after each poll");
    assert_eq!(*hooked.lock().unwrap(), [id], "once per request");

    // Excluded requests have no span: the hook is not called.
    let res = svc.oneshot(request("/healthz", &[])).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"None|None");
    assert_eq!(hooked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn enter_with_covers_call_too() {
    let (client, mut rx) = Client::channel(8);
    /// Answers with what was entered during `call`.
    #[derive(Clone)]
    struct SeesEnteredInCall;
    impl Service<Request<Full<Bytes>>> for SeesEnteredInCall {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
            let body = format!("{:?}", entered());
            std::future::ready(Ok(Response::new(Full::new(Bytes::from(body)))))
        }
    }
    let svc = ServerTraceLayer::new()
        .client(client)
        .enter_with(|ctx: &SpanContext| {
            let id = ctx.span_id;
            move || {
                ENTERED.with(|e| e.borrow_mut().push(id));
                Entered
            }
        })
        .layer(SeesEnteredInCall);
    let res = svc.oneshot(request("/", &[])).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let span = next_span(&mut rx).await;
    assert_eq!(String::from_utf8_lossy(&body), format!("Some({})", span.id));
}
