//! Baggage, sampling decisions and W3C traces carried through two real HTTP services
//! over loopback (B calls C), each traced by the middleware and recording to a real SSF
//! receiver.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use ssf_receiver::Receiver;
use support::{PATIENCE, serve};
use tower::{Layer, ServiceExt, service_fn};
use trace_client::propagation::{self, DEFAULT_EXTRACT_FORMATS, HeaderFormat};
use trace_client::{Client, Sampler, Span, context};
use trace_http::{ClientTraceLayer, ServerTraceLayer};

/// What C saw: its current span's baggage and decision, and the trace headers it got.
fn report(headers: &HeaderMap) -> String {
    let ctx = context::current().expect("a current span in C");
    let mut lines = vec![
        format!("trace={}", ctx.trace_id),
        format!("sampled={:?}", ctx.sampled),
    ];
    for (k, v) in ctx.baggage.iter() {
        lines.push(format!("baggage {k}={v}"));
    }
    for name in ["ot-tracer-sampled", "traceparent", "tracestate", "baggage"] {
        if let Some(v) = headers.get(name) {
            lines.push(format!("header {name}={}", v.to_str().unwrap_or("?")));
        }
    }
    // What C would send on: a W3C traceparent from its own context.
    let mut out = HeaderMap::new();
    propagation::inject_headers(&ctx, &mut out, HeaderFormat::W3c);
    lines.push(format!(
        "onward traceparent={}",
        out["traceparent"].to_str().unwrap()
    ));
    if let Some(state) = out.get("tracestate") {
        lines.push(format!("onward tracestate={}", state.to_str().unwrap()));
    }
    lines.join("\n")
}

/// Starts C (reads `c_formats`, answers with [`report`]) and B (reads `b_formats`, adds a
/// baggage item on a child span and calls C from a spawned task with `inject`), each
/// recording on its own client; returns B's address.
async fn start(
    b_client: &Client,
    c_client: &Client,
    b_formats: &[HeaderFormat],
    inject: &[HeaderFormat],
    c_formats: &[HeaderFormat],
) -> SocketAddr {
    let c = ServerTraceLayer::new()
        .extract_formats(c_formats)
        .client(c_client.clone())
        .layer(service_fn(
            |req: Request<hyper::body::Incoming>| async move {
                let body = report(req.headers());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            },
        ));
    let c_addr = serve(c).await;

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let to_c = ClientTraceLayer::new()
        .formats(inject)
        .spans(true)
        .client(b_client.clone())
        .layer(http);
    let b_client = b_client.clone();
    let b = ServerTraceLayer::new()
        .extract_formats(b_formats)
        .client(b_client.clone())
        .layer(service_fn(move |_req: Request<hyper::body::Incoming>| {
            let (to_c, b_client) = (to_c.clone(), b_client.clone());
            async move {
                // Baggage set on a span of B's reaches C, across a spawn and an await.
                let mut work = Span::child_of_current("work").with_client(b_client);
                work.set_baggage_item("attempt", "2").unwrap();
                let call = async move {
                    tokio::task::yield_now().await;
                    let req = Request::get(format!("http://{c_addr}/stock"))
                        .body(Empty::new())
                        .unwrap();
                    let res = to_c.oneshot(req).await.map_err(|e| e.to_string())?;
                    let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(body.to_bytes())
                };
                let joined = context::in_span(work.context(), async {
                    context::spawn_in_current(call).await
                })
                .await;
                work.finish().unwrap();
                let res = match joined {
                    Ok(Ok(body)) => Response::new(Full::new(body)),
                    other => {
                        let mut res = Response::new(Full::new(Bytes::from(format!("{other:?}"))));
                        *res.status_mut() = StatusCode::BAD_GATEWAY;
                        res
                    }
                };
                Ok::<_, Infallible>(res)
            }
        }));
    serve(b).await
}

/// Calls B with `headers` and returns what C reported.
async fn call_b(b_addr: SocketAddr, headers: &[(&str, &str)]) -> String {
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("http://{b_addr}/checkout"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(PATIENCE, http.request(req.body(Empty::new()).unwrap()))
        .await
        .expect("B answers in time")
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A UDP receiver, B's and C's clients sending to it with `sampler`, and the two
/// services ([`start`]); B's address last.
async fn services(
    sampler: Sampler,
    b_formats: &[HeaderFormat],
    inject: &[HeaderFormat],
    c_formats: &[HeaderFormat],
) -> (Receiver, Client, Client, SocketAddr) {
    let receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().to_string();
    let build = || {
        Client::builder(&addr)
            .sampler(sampler)
            .build()
            .expect("a client")
    };
    let (b_client, c_client) = (build(), build());
    let b = start(&b_client, &c_client, b_formats, inject, c_formats).await;
    (receiver, b_client, c_client, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_and_a_sampled_flag_cross_two_services_over_veneur_headers() {
    let (mut receiver, b_client, c_client, b) = services(
        Sampler::never().parent_based(),
        DEFAULT_EXTRACT_FORMATS,
        &[HeaderFormat::Envoy],
        DEFAULT_EXTRACT_FORMATS,
    )
    .await;

    // The caller decided "sampled": B and C follow it although their own rule is never.
    let seen = call_b(
        b,
        &[
            ("ot-tracer-traceid", "3039"),
            ("ot-tracer-spanid", "10932"),
            ("ot-tracer-sampled", "true"),
            ("ot-baggage-tenant", "acme%20corp"),
        ],
    )
    .await;
    assert!(seen.contains("trace=12345"), "{seen}");
    assert!(seen.contains("sampled=Some(true)"), "{seen}");
    assert!(seen.contains("baggage tenant=acme corp"), "{seen}");
    assert!(seen.contains("baggage attempt=2"), "{seen}");
    assert!(seen.contains("header ot-tracer-sampled=true"), "{seen}");

    b_client.flush().await.unwrap();
    c_client.flush().await.unwrap();
    // B: its server span, "work" and its client span; C: its server span.
    let spans = receiver.collect(4, PATIENCE).await.expect("four spans");
    assert!(spans.iter().all(|s| s.trace_id == 12345), "{spans:?}");
    for client in [&b_client, &c_client] {
        let stats = client.stats();
        assert_eq!(stats.unsampled(), 0, "{stats:?}");
    }
    assert_eq!(b_client.stats().sent() + c_client.stats().sent(), 4);
    b_client.shutdown(PATIENCE).await;
    c_client.shutdown(PATIENCE).await;
    receiver.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_unsampled_caller_is_followed_by_both_services_and_nothing_is_sent() {
    let (receiver, b_client, c_client, b) = services(
        Sampler::always().parent_based(),
        DEFAULT_EXTRACT_FORMATS,
        &[HeaderFormat::Envoy],
        DEFAULT_EXTRACT_FORMATS,
    )
    .await;

    let seen = call_b(
        b,
        &[
            ("x-trace-id", "77"),
            ("x-span-id", "78"),
            ("ot-tracer-traceid", "4d"),
            ("ot-tracer-spanid", "4e"),
            ("ot-tracer-sampled", "false"),
            ("ot-baggage-tenant", "acme"),
        ],
    )
    .await;
    // The decision went on to C in B's headers, and C followed it too.
    assert!(seen.contains("header ot-tracer-sampled=false"), "{seen}");
    assert!(seen.contains("sampled=Some(false)"), "{seen}");
    assert!(seen.contains("baggage tenant=acme"), "{seen}");
    assert!(
        seen.contains("onward traceparent=00-") && seen.ends_with("-00"),
        "{seen}"
    );

    b_client.flush().await.unwrap();
    c_client.flush().await.unwrap();
    let (b, c) = (b_client.stats(), c_client.stats());
    assert_eq!((b.unsampled(), b.sent()), (3, 0), "{b:?}");
    assert_eq!((c.unsampled(), c.sent()), (1, 0), "{c:?}");
    assert_eq!(
        b.accepted(),
        3,
        "unsampled spans count as accepted and dropped"
    );
    b_client.shutdown(PATIENCE).await;
    c_client.shutdown(PATIENCE).await;
    assert_eq!(receiver.shutdown().await.spans, 0);
}

/// A W3C caller → B (reads W3C, writes both W3C and veneur headers) → C (reads veneur's
/// headers first): C continues the caller's 128-bit trace, flags and `tracestate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_w3c_trace_stays_whole_through_services_that_mix_w3c_and_veneur_headers() {
    let (mut receiver, b_client, c_client, b) = services(
        Sampler::always().parent_based(),
        &[HeaderFormat::W3c, HeaderFormat::Envoy],
        &[HeaderFormat::W3c, HeaderFormat::Envoy],
        &[HeaderFormat::Envoy, HeaderFormat::W3c],
    )
    .await;

    let seen = call_b(
        b,
        &[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
            ),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "tenant=acme;ttl=5, region=eu%2Dwest"),
        ],
    )
    .await;
    let low = 0x8448_eb21_1c80_319c_u64 as i64;
    assert!(seen.contains(&format!("trace={low}")), "{seen}");
    assert!(seen.contains("sampled=Some(true)"), "{seen}");
    assert!(seen.contains("baggage tenant=acme"), "{seen}");
    assert!(seen.contains("baggage region=eu-west"), "{seen}");
    assert!(seen.contains("baggage attempt=2"), "{seen}");
    // Flags 03 (sampled + a bit this crate does not know) and tracestate passed on.
    assert!(
        seen.contains("header traceparent=00-0af7651916cd43dd8448eb211c80319c-"),
        "{seen}"
    );
    assert!(
        seen.contains("header tracestate=rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        "{seen}"
    );
    let onward = seen
        .lines()
        .find_map(|l| l.strip_prefix("onward traceparent="))
        .unwrap();
    assert!(
        onward.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{onward}"
    );
    assert!(onward.ends_with("-03"), "{onward}");
    assert!(
        seen.contains("onward tracestate=rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        "{seen}"
    );

    b_client.flush().await.unwrap();
    c_client.flush().await.unwrap();
    let spans = receiver.collect(4, PATIENCE).await.expect("four spans");
    assert!(spans.iter().all(|s| s.trace_id == low), "{spans:?}");
    // C's server span is the child of B's client span, which it found in veneur's headers.
    let c_server = spans
        .iter()
        .find(|s| s.name == "GET /stock" && s.tags["span.kind"] == "server")
        .unwrap();
    let b_client_span = spans
        .iter()
        .find(|s| s.tags["span.kind"] == "client")
        .unwrap();
    assert_eq!(c_server.parent_id, b_client_span.id);
    b_client.shutdown(PATIENCE).await;
    c_client.shutdown(PATIENCE).await;
    receiver.shutdown().await;
}

/// Hostile baggage over real HTTP: refused and counted, while the trace goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_overcrowded_baggage_is_refused_counted_and_the_trace_kept() {
    let (client, mut spans) = Client::channel(64);
    let server = ServerTraceLayer::new()
        .client(client.clone())
        .layer(service_fn(|_req: Request<hyper::body::Incoming>| async {
            let ctx = context::current().expect("a current span");
            let body = format!("{} {}", ctx.trace_id, ctx.baggage.len());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let addr = serve(server).await;
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let huge = format!("k={}", "v".repeat(100_000));
    let many: Vec<(String, String)> = (0..90)
        .map(|i| (format!("ot-baggage-k{i}"), "v".to_owned()))
        .collect();
    let cases: Vec<Vec<(String, String)>> = vec![
        vec![("baggage".into(), huge)],
        many,
        vec![("baggage".into(), "a=1,,b=2".into())],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let mut req = Request::get(format!("http://{addr}/x"))
            .header("traceid", "99")
            .header("spanid", "100");
        for (k, v) in extra {
            req = req.header(k.as_str(), v.as_str());
        }
        let res = tokio::time::timeout(PATIENCE, http.request(req.body(Empty::new()).unwrap()))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"99 0", "case {i}");
        let span = support::next_span(&mut spans).await;
        assert_eq!((span.trace_id, span.parent_id), (99, 100), "case {i}");
        assert_eq!(client.stats().baggage_refused(), i as u64 + 1);
    }

    // W3C baggage travels without a trace context too: the root span takes it.
    let req = Request::get(format!("http://{addr}/x"))
        .header("baggage", "tenant=acme")
        .body(Empty::new())
        .unwrap();
    let res = http.request(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let span = support::next_span(&mut spans).await;
    assert!(support::is_root(&span), "{span:?}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} 1", span.trace_id)
    );
}
