//! Two hyper services tracing one request across HTTP with `trace-http`.
//!
//! ```sh
//! cargo run -p examples --example hyper_pair
//! SSF_ADDR=udp://127.0.0.1:8128 cargo run -p examples --example hyper_pair   # a real veneur
//! ```
//!
//! Service B is a hyper server behind `ServerTraceLayer`. Service A, also behind
//! `ServerTraceLayer`, calls B once per request through a hyper-util client behind
//! `ClientTraceLayer` (with client spans on). The program sends one untraced request to A,
//! prints the answer, and then the three spans of the trace: A's server span, A's client
//! span and B's server span, each the parent of the next.
//!
//! Without `SSF_ADDR` the spans go to an SSF receiver in this process (UDP on loopback) and
//! are printed as received; with it they go there and the client's delivery report is
//! printed instead.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ssf_proto::SsfSpan;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt, service_fn};
use trace_client::context;
use trace_http::{ClientTraceLayer, ServerTraceLayer};

/// The spans one request to A produces.
const SPANS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (addr, receiver) = support::destination("udp://127.0.0.1:0").await?;
    let client = support::client(&addr)?;
    trace_client::set_service_name("hyper-pair");

    // Service B: reports the span it runs in.
    let b = ServerTraceLayer::new()
        .client(client.clone())
        .layer(service_fn(|_req: Request<hyper::body::Incoming>| async {
            let ctx = context::current().unwrap_or_default();
            let body = format!("B ran in span {} of trace {}", ctx.span_id, ctx.trace_id);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let b_addr = serve(b).await?;

    // Service A: calls B through a traced HTTP client and passes B's answer on.
    let to_b = ClientTraceLayer::new()
        .spans(true)
        .client(client.clone())
        .layer(HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let a = ServerTraceLayer::new()
        .client(client.clone())
        .layer(service_fn(move |_req: Request<hyper::body::Incoming>| {
            let to_b = to_b.clone();
            async move { Ok::<_, Infallible>(call_b(to_b, b_addr).await) }
        }));
    let a_addr = serve(a).await?;
    println!("service A on http://{a_addr}, service B on http://{b_addr}");

    // One untraced request to A: A's server span is the root of the trace.
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{a_addr}/checkout").parse()?;
    let res = tokio::time::timeout(Duration::from_secs(5), http.get(uri)).await??;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "GET /checkout -> {status}: {}\n",
        String::from_utf8_lossy(&body)
    );

    client.flush().await?;
    let report = client.shutdown(Duration::from_secs(2)).await;
    println!(
        "client: {} spans accepted, {} sent, {} dropped",
        report.accepted(),
        report.sent(),
        report.dropped_total()
    );
    if report.dropped_total() > 0 {
        return Err(format!("{} spans were not delivered", report.dropped_total()).into());
    }
    if let Some(mut receiver) = receiver {
        let spans = receiver.collect(SPANS, Duration::from_secs(3)).await?;
        receiver.shutdown().await;
        print_trace(&spans);
    }
    Ok(())
}

/// A's work: one GET to B; B's failure becomes a 502.
async fn call_b<S>(to_b: S, b_addr: SocketAddr) -> Response<Full<Bytes>>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Display,
{
    let req = Request::get(format!("http://{b_addr}/stock"))
        .body(Empty::new())
        .unwrap_or_default();
    let answer = match to_b.oneshot(req).await {
        Ok(res) => res.into_body().collect().await.map(|b| b.to_bytes()),
        Err(e) => {
            let mut res = Response::new(Full::new(Bytes::from(e.to_string())));
            *res.status_mut() = StatusCode::BAD_GATEWAY;
            return res;
        }
    };
    Response::new(Full::new(answer.unwrap_or_default()))
}

/// Serves `service` over HTTP/1 on a fresh loopback port, until the runtime stops.
async fn serve<S, B>(service: S) -> std::io::Result<SocketAddr>
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    eprintln!("connection error: {e}");
                }
            });
        }
    });
    Ok(addr)
}

/// Prints the spans as trees, children indented under their parents.
fn print_trace(spans: &[SsfSpan]) {
    let ids: HashSet<i64> = spans.iter().map(|s| s.id).collect();
    for root in spans
        .iter()
        .filter(|s| s.parent_id == 0 || !ids.contains(&s.parent_id))
    {
        println!("\ntrace {}", root.trace_id);
        print_span(spans, root, 0);
    }
}

fn print_span(spans: &[SsfSpan], span: &SsfSpan, depth: usize) {
    let ms = (span.end_timestamp - span.start_timestamp) as f64 / 1e6;
    let kind = span.tags.get("span.kind").map_or("", String::as_str);
    let status = span.tags.get("http.status_code").map_or("", String::as_str);
    println!(
        "{:indent$}{} [{kind}] status {status}, {ms:.3} ms, span {} (parent {})",
        "",
        span.name,
        span.id,
        span.parent_id,
        indent = depth * 2
    );
    // Three levels here; the limit only guards against odd input.
    if depth > 16 {
        return;
    }
    for child in spans.iter().filter(|s| s.parent_id == span.id) {
        print_span(spans, child, depth + 1);
    }
}
