//! A service instrumented only with the `tracing` crate, its spans exported as SSF by
//! `tracing-ssf`.
//!
//! ```sh
//! cargo run --example tracing_service
//! SSF_ADDR=udp://127.0.0.1:8128 cargo run --example tracing_service   # a real veneur instead
//! ```
//!
//! The service handles three orders. Each order is an `async fn` with
//! `#[tracing::instrument]` that awaits an authentication step and runs two lookups as
//! separate tokio tasks (one passed on with `in_current_span`, one with
//! `instrument(Span::current())`); the third order is out of stock and logs an error
//! event, which marks its `handle_order` span as an error. Nothing in the service mentions
//! SSF: the `SsfLayer` installed in `main` turns every closed span into an SSF span.
//!
//! Without `SSF_ADDR`, the spans go to an SSF receiver in this process on loopback UDP and
//! the example prints each trace as it arrived. With `SSF_ADDR` (any address URL) it sends
//! them there and prints the client's delivery report. It exits by itself either way.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use ssf_proto::SsfSpan;
use tracing::{Instrument, Span};
use tracing_ssf::SsfLayer;
use tracing_subscriber::layer::SubscriberExt;

// ----- The service: `tracing` only. -----

#[tracing::instrument]
async fn handle_order(order_id: u64) -> Result<u64, String> {
    let user = authenticate(order_id).await;
    tracing::info!(%user, "authenticated");

    // Two lookups in parallel tasks; both stay in this order's trace.
    let stock = tokio::spawn(check_stock(order_id).in_current_span());
    let price = tokio::spawn(quote_price(order_id).instrument(Span::current()));
    let in_stock = stock.await.map_err(|e| e.to_string())?;
    let cents = price.await.map_err(|e| e.to_string())?;

    if !in_stock {
        // An error-level event marks the current span as an error.
        tracing::error!(order_id, "order {order_id} is out of stock");
        return Err("out of stock".to_owned());
    }
    Ok(cents)
}

#[tracing::instrument]
async fn authenticate(order_id: u64) -> String {
    tokio::time::sleep(Duration::from_millis(2)).await;
    format!("customer-{}", order_id * 7)
}

#[tracing::instrument(fields(warehouse = tracing::field::Empty))]
async fn check_stock(order_id: u64) -> bool {
    tokio::time::sleep(Duration::from_millis(3)).await;
    Span::current().record("warehouse", "eu-west");
    order_id != 3
}

#[tracing::instrument(fields(currency = "EUR"))]
async fn quote_price(order_id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    // A span created inside a span closed before its parent: a child of quote_price.
    let _rates = tracing::info_span!("load_rates", source = "cache").entered();
    1000 + order_id * 250
}

// ----- Wiring: the SSF layer, and printing what arrived. -----

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    support::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (addr, receiver) = support::destination("udp://127.0.0.1:0").await?;

    let client = support::client(&addr)?;
    let layer = SsfLayer::new(client.clone()).service("orders");
    let layer_stats = layer.stats();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;

    for order_id in 1..=3 {
        match handle_order(order_id).await {
            Ok(cents) => println!("order {order_id}: {cents} cents"),
            Err(e) => println!("order {order_id}: failed: {e}"),
        }
    }

    // Every span is closed; send what is queued and stop the client.
    let report = client.shutdown(Duration::from_secs(2)).await;
    println!(
        "layer: {} spans exported, {} refused; client: {} sent, {} dropped",
        layer_stats.exported(),
        layer_stats.refused(),
        report.sent(),
        report.dropped_total()
    );

    if let Some(mut receiver) = receiver {
        let expected = usize::try_from(report.sent())?;
        let spans = receiver.collect(expected, Duration::from_secs(3)).await?;
        receiver.shutdown().await;
        println!();
        print_traces(&spans);
    }
    Ok(())
}

/// Prints each trace as a tree: name, duration, error flag and tags.
fn print_traces(spans: &[SsfSpan]) {
    let ids: HashSet<i64> = spans.iter().map(|s| s.id).collect();
    let mut roots: Vec<&SsfSpan> = spans
        .iter()
        .filter(|s| s.parent_id == 0 || !ids.contains(&s.parent_id))
        .collect();
    roots.sort_by_key(|s| s.start_timestamp);
    for root in roots {
        println!("trace {} [{}]", root.trace_id, root.service);
        print_span(spans, root, "", None, 0);
    }
}

/// `last` is `None` for a root, else whether the span is its parent's last child.
fn print_span(spans: &[SsfSpan], span: &SsfSpan, prefix: &str, last: Option<bool>, depth: usize) {
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
    // Our spans nest three levels; the limit only guards against odd input.
    if depth > 16 {
        return;
    }
    let mut children: Vec<&SsfSpan> = spans
        .iter()
        .filter(|s| s.parent_id == span.id && s.id != span.id)
        .collect();
    children.sort_by_key(|s| s.start_timestamp);
    let child_prefix = format!("{prefix}{more}");
    for (i, child) in children.iter().enumerate() {
        let last = Some(i + 1 == children.len());
        print_span(spans, child, &child_prefix, last, depth + 1);
    }
}
