//! Quickstart: record a small trace and see what arrives.
//!
//! ```sh
//! cargo run --example quickstart
//! SSF_ADDR=udp://127.0.0.1:8128 cargo run --example quickstart   # a real veneur instead
//! ```
//!
//! Without `SSF_ADDR`, it starts an SSF receiver in this process on a unix socket in a
//! temporary directory, sends a trace of four spans there (a root with three children:
//! tags, one error, counter, gauge and timing samples), flushes, and prints the trace as the
//! receiver got it. With `SSF_ADDR` (any address URL: `udp://`, `unix://`, `tcp://`, `grpc://`, or a
//! bare `host:port` for UDP) it sends the same trace there and prints the client's delivery
//! report instead.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use ssf_proto::SsfSpan;
use ssf_proto::sample::{self, SampleExt};
use trace_client::{Client, Span};

/// The number of spans the example records.
const SPANS: usize = 4;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    // The directory must outlive the receiver's socket.
    let dir = tempfile::tempdir()?;
    let local = format!("unix://{}", dir.path().join("ssf.sock").display());
    let (addr, receiver) = support::destination(&local).await?;

    let client = support::client(&addr)?;
    trace_client::set_service_name("quickstart-shop");
    record_checkout(&client).await?;

    // A barrier: every span recorded so far is written to the socket (or dropped and
    // counted, if it cannot be).
    client.flush().await?;
    let report = client.shutdown(Duration::from_secs(2)).await;
    println!(
        "client: {} spans accepted, {} sent, {} dropped",
        report.accepted(),
        report.sent(),
        report.dropped_total()
    );
    if report.dropped_total() > 0 {
        let d = report.dropped();
        return Err(format!(
            "{} spans were not delivered to {addr} (connect timeout: {}, write error: {})",
            report.dropped_total(),
            d.connect_timeout(),
            d.write_error()
        )
        .into());
    }

    if let Some(mut receiver) = receiver {
        let spans = receiver.collect(SPANS, Duration::from_secs(3)).await?;
        let stats = receiver.shutdown().await;
        println!(
            "receiver: {} spans in {} frames ({} bytes)\n",
            stats.spans, stats.frames, stats.bytes
        );
        print_traces(&spans);
    }
    Ok(())
}

/// A request with three steps: the second fails.
async fn record_checkout(client: &Client) -> Result<(), Box<dyn Error>> {
    let mut root = Span::root("checkout");
    root.set_tag("customer", "c-17")
        .set_tag("route", "/checkout");
    root.add_sample(sample::count("checkout.requests", 1.0).with_tag("route", "/checkout"));

    let mut cart = root.child("load_cart");
    cart.set_tag("items", "3");
    tokio::time::sleep(Duration::from_millis(3)).await;
    cart.add_sample(sample::gauge("cart.items", 3.0));
    cart.finish_with(client)?;

    let mut charge = root.child("charge_card");
    charge.set_tag("amount", "42.00").set_tag("currency", "EUR");
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let declined = std::io::Error::other("card declined");
    charge.error(&declined);
    charge.add_sample(sample::timing(
        "payment.latency",
        started.elapsed(),
        Duration::from_millis(1),
    ));
    charge.finish_with(client)?;

    let mut email = root.child("send_receipt");
    email.set_tag("template", "payment-failed");
    tokio::time::sleep(Duration::from_millis(1)).await;
    email.finish_with(client)?;

    root.finish_with(client)?;
    Ok(())
}

/// Prints each trace as a tree: name, duration, error flag, tags, then samples.
fn print_traces(spans: &[SsfSpan]) {
    let ids: HashSet<i64> = spans.iter().map(|s| s.id).collect();
    let mut roots: Vec<&SsfSpan> = spans
        .iter()
        .filter(|s| s.parent_id == 0 || !ids.contains(&s.parent_id))
        .collect();
    roots.sort_by_key(|s| s.start_timestamp);
    for root in roots {
        println!("trace {} [{}]", root.trace_id, root.service);
        print_span(spans, root, "", None);
    }
}

/// `last` is `None` for a root, else whether the span is its parent's last child.
fn print_span(spans: &[SsfSpan], span: &SsfSpan, prefix: &str, last: Option<bool>) {
    let (branch, more) = match last {
        None => ("", ""),
        Some(true) => ("\u{2514}\u{2500} ", "   "),
        Some(false) => ("\u{251c}\u{2500} ", "\u{2502}  "),
    };
    let ms = (span.end_timestamp - span.start_timestamp) as f64 / 1e6;
    let tags: Vec<String> = span.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let error = if span.error { "  ERROR" } else { "" };
    println!(
        "{prefix}{branch}{}  {ms:.3} ms{error}  {}",
        span.name,
        tags.join(" ")
    );
    let child_prefix = format!("{prefix}{more}");
    let mut children: Vec<&SsfSpan> = spans
        .iter()
        .filter(|s| s.parent_id == span.id && s.id != span.id)
        .collect();
    children.sort_by_key(|s| s.start_timestamp);
    let guide = if children.is_empty() {
        "   "
    } else {
        "\u{2502}  "
    };
    for m in &span.metrics {
        let unit = if m.unit.is_empty() { "" } else { " " };
        println!(
            "{child_prefix}{guide}\u{b7} {} {} = {}{unit}{}",
            m.metric().as_str_name().to_lowercase(),
            m.name,
            m.value,
            m.unit
        );
    }
    // Our own spans nest three levels; the limit only guards against odd input.
    if prefix.len() > 64 {
        return;
    }
    for (i, child) in children.iter().enumerate() {
        print_span(spans, child, &child_prefix, Some(i + 1 == children.len()));
    }
}
