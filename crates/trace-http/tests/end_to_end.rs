//! Two real HTTP services over loopback, each traced by the middleware, recording to a
//! real SSF receiver: A's server span → A's client span → B's server span, one trace.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use ssf_receiver::Receiver;
use support::{PATIENCE, serve};
use tower::{Layer, ServiceExt, service_fn};
use trace_client::Client;
use trace_client::propagation::{CustomHeaders, HeaderFormat, IdEncoding};
use trace_http::{ClientTraceLayer, ServerTraceLayer, tags};

/// Starts B (answers with the trace and span IDs current in its handler) and A (calls B
/// once per request through a traced hyper client) and returns A's address.
async fn start(client: &Client, format: HeaderFormat) -> SocketAddr {
    let b = ServerTraceLayer::new()
        .extract_formats(&[format])
        .client(client.clone())
        .layer(service_fn(|_req: Request<hyper::body::Incoming>| async {
            let ctx = trace_client::context::current().expect("a current span in B");
            let body = format!("{}/{}", ctx.trace_id, ctx.span_id);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let b_addr = serve(b).await;

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let to_b = ClientTraceLayer::new()
        .format(format)
        .spans(true)
        .client(client.clone())
        .layer(http);
    let a = ServerTraceLayer::new()
        .client(client.clone())
        .layer(service_fn(move |_req: Request<hyper::body::Incoming>| {
            let to_b = to_b.clone();
            async move {
                let req = Request::get(format!("http://{b_addr}/stock"))
                    .body(Empty::new())
                    .expect("a request");
                let res = match to_b.oneshot(req).await {
                    Ok(res) => res,
                    Err(e) => {
                        let mut res = Response::new(Full::new(Bytes::from(e.to_string())));
                        *res.status_mut() = StatusCode::BAD_GATEWAY;
                        return Ok::<_, Infallible>(res);
                    }
                };
                let body = res.into_body().collect().await.map(|b| b.to_bytes());
                Ok(Response::new(Full::new(body.unwrap_or_default())))
            }
        }));
    serve(a).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_b_in_one_trace() {
    run(HeaderFormat::Envoy).await;
}

/// B reads only a header pair of the user's own naming, so the trace holds together only
/// if A's client layer wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_b_in_one_trace_over_custom_headers() {
    for ids in [IdEncoding::Decimal, IdEncoding::Hex] {
        run(HeaderFormat::Custom(CustomHeaders::new(
            "x-request-trace",
            "x-request-span",
            ids,
        )))
        .await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_calls_b_in_one_trace_on_a_current_thread_runtime() {
    run(HeaderFormat::Envoy).await;
}

async fn run(format: HeaderFormat) {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let client = Client::builder(receiver.local_addr().to_string())
        .build()
        .unwrap();
    let a_addr = start(&client, format).await;

    // An untraced caller: A starts the trace.
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{a_addr}/checkout").parse().unwrap();
    let res = tokio::time::timeout(PATIENCE, http.get(uri))
        .await
        .expect("A answers in time")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen_by_b = res.into_body().collect().await.unwrap().to_bytes();

    client.flush().await.unwrap();
    let spans = receiver.collect(3, PATIENCE).await.expect("three spans");
    let find = |kind: &str, root: bool| {
        let mut found = spans
            .iter()
            .filter(|s| s.tags[tags::SPAN_KIND] == kind && (s.parent_id == 0) == root);
        let span = found
            .next()
            .unwrap_or_else(|| panic!("no {kind} span in {spans:?}"));
        assert!(found.next().is_none(), "two {kind} spans in {spans:?}");
        span
    };
    let (a_server, a_client, b_server) = (
        find("server", true),
        find("client", false),
        find("server", false),
    );

    assert_eq!(a_server.tags[tags::SPAN_KIND], "server");
    assert_eq!(a_client.tags[tags::SPAN_KIND], "client");
    assert_eq!(b_server.tags[tags::SPAN_KIND], "server");
    // One trace, rooted at A's server span.
    assert_eq!(a_server.parent_id, 0);
    assert_eq!(a_server.trace_id, a_server.id);
    for span in [a_client, b_server] {
        assert_eq!(span.trace_id, a_server.trace_id, "{span:?}");
    }
    // A.server → A.client → B.server.
    assert_eq!(a_client.parent_id, a_server.id);
    assert_eq!(b_server.parent_id, a_client.id);
    assert_eq!(
        String::from_utf8_lossy(&seen_by_b),
        format!("{}/{}", a_server.trace_id, b_server.id)
    );
    assert_eq!(a_server.name, "GET /checkout");
    assert_eq!(a_client.name, "GET /stock");
    assert_eq!(b_server.name, "GET /stock");
    for span in &spans {
        assert_eq!(span.tags[tags::HTTP_STATUS_CODE], "200", "{span:?}");
        assert!(!span.error);
        assert!(span.end_timestamp >= span.start_timestamp);
    }
    // The client span lies within A's server span.
    assert!(a_client.start_timestamp >= a_server.start_timestamp);
    assert!(a_client.end_timestamp <= a_server.end_timestamp);

    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), 3);
    receiver.shutdown().await;
}
