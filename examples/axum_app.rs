//! An axum application traced with `trace-http`'s `ServerTraceLayer`.
//!
//! ```sh
//! cargo run -p examples --example axum_app
//! SSF_ADDR=udp://127.0.0.1:8128 cargo run -p examples --example axum_app   # a real veneur
//! ```
//!
//! The router has three routes: `/users/{id}` (starts a child span for its "database"
//! work), `/fail` (answers 500, so its span is marked as an error) and `/healthz`
//! (excluded from tracing). The program serves it on a loopback port, sends itself one
//! request to each (the first one continuing a trace from Envoy-style headers, as a caller
//! behind Envoy would send it), shuts the server down and prints the spans received: three,
//! none for `/healthz`.
//!
//! Without `SSF_ADDR` the spans go to an SSF receiver in this process (UDP on loopback);
//! with it they go there and the client's delivery report is printed instead.

#[path = "support/mod.rs"]
mod support;

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use ssf_proto::SsfSpan;
use tokio::net::TcpListener;
use trace_client::{Span, context};
use trace_http::ServerTraceLayer;

/// Spans expected: `/users/42`, its database child, `/fail`.
const SPANS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (addr, receiver) = support::destination("udp://127.0.0.1:0").await?;
    let client = support::client(&addr)?;
    trace_client::set_service_name("axum-app");
    // Spans started by handlers without a client of their own go to the default client.
    trace_client::default::set(Some(client.clone()));

    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(
            ServerTraceLayer::new()
                .client(client.clone())
                .exclude(|req| req.uri.path() == "/healthz"),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("app on http://{app_addr}\n");

    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let requests = [
        // A caller's span 0x3039 = 12345 of trace 0x10932 = 67890.
        ("/users/42", Some(("10932", "3039"))),
        ("/fail", None),
        ("/healthz", None),
    ];
    for (path, trace) in requests {
        let mut req = Request::get(format!("http://{app_addr}{path}"));
        if let Some((trace_id, span_id)) = trace {
            req = req
                .header("ot-tracer-traceid", trace_id)
                .header("ot-tracer-spanid", span_id)
                .header("ot-tracer-sampled", "true");
        }
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            http.request(req.body(Empty::new())?),
        )
        .await??;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        println!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
    }

    drop(http);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await???;

    client.flush().await?;
    trace_client::default::set(None);
    let report = client.shutdown(Duration::from_secs(2)).await;
    println!(
        "\nclient: {} spans accepted, {} sent, {} dropped",
        report.accepted(),
        report.sent(),
        report.dropped_total()
    );
    if report.dropped_total() > 0 {
        return Err(format!("{} spans were not delivered", report.dropped_total()).into());
    }
    if let Some(mut receiver) = receiver {
        let mut spans = receiver.collect(SPANS, Duration::from_secs(3)).await?;
        receiver.shutdown().await;
        spans.sort_by_key(|s| s.start_timestamp);
        println!();
        for span in &spans {
            print_span(span);
        }
    }
    Ok(())
}

/// `/users/{id}`: a child span for the lookup, then the answer.
async fn user(Path(id): Path<u32>) -> String {
    let mut lookup = Span::child_of_current("db.lookup");
    lookup.set_tag("user.id", id.to_string());
    tokio::time::sleep(Duration::from_millis(2)).await;
    lookup.finish().ok();
    let ctx = context::current().unwrap_or_default();
    format!(
        "user {id} (served in span {} of trace {})",
        ctx.span_id, ctx.trace_id
    )
}

fn print_span(span: &SsfSpan) {
    let ms = (span.end_timestamp - span.start_timestamp) as f64 / 1e6;
    let error = if span.error { " ERROR" } else { "" };
    let tags: Vec<String> = span.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{} (trace {}, span {}, parent {}) {ms:.3} ms{error}\n    {}",
        span.name,
        span.trace_id,
        span.id,
        span.parent_id,
        tags.join(" ")
    );
}
