//! The span a service builds per request, made `N` times through the public API, for an
//! instruction count: `scripts/instructions.sh` runs it under callgrind, counting only
//! inside [`one_request_span`], and divides by `N`. Instructions, unlike nanoseconds, do
//! not move with what else the machine is doing, so two builds compare exactly.
//!
//! ```sh
//! cargo run --release -p trace-client --example span_instructions -- static 20000
//! ```
//!
//! The span is `criterion`'s `span/typical_request`
//! ([`trace_client::testing::typical_request_span`]: a child of the request's span, a
//! service, five tags, static strings or `owned` ones, a counter with a tag and a timing
//! sample), finished on a UDP client whose queue holds every span (its backend sends
//! them after the count, at shutdown).

use std::hint::black_box;
use std::time::Duration;

use trace_client::{Client, Span, SpanSample};

/// One request's span, built, finished and queued.
#[inline(never)]
fn one_request_span(parent: &Span, client: &Client, owned: bool) {
    // `testing::typical_request_span`, written out: `scripts/instructions.sh` builds this
    // file against earlier commits too, which may not have it.
    let mut span = parent.child(black_box("POST /v1/charges"));
    span.set_service("checkout-service");
    let tags = [
        ("http.method", "POST"),
        ("http.path", "/v1/charges"),
        ("http.status_code", "200"),
        ("region", "eu-west-1"),
        ("host", "web-17"),
    ];
    for (k, v) in tags {
        if owned {
            span.set_tag(k, String::from(v));
        } else {
            span.set_tag(k, v);
        }
    }
    span.add_sample(SpanSample::count("charges.created", 1.0).with_tag("currency", "eur"))
        .add_sample(SpanSample::timing(
            "charges.latency",
            Duration::from_micros(2_500),
            Duration::from_millis(1),
        ));
    black_box(span.finish_with(client).is_ok());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let owned = match args.next().as_deref() {
        Some("owned") => true,
        Some("static") | None => false,
        Some(other) => return Err(format!("expected static or owned, not {other}").into()),
    };
    let n: usize = args.next().map_or(Ok(20_000), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A UDP socket nobody reads: the backend sends at shutdown, the kernel drops.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let addr = format!("udp://{}", sink.local_addr()?);
    let client = rt.block_on(async { Client::builder(&addr).capacity(n.max(1)).build() })?;
    let mut parent = Span::root("request");
    parent.set_finish_on_drop(false);
    for _ in 0..n {
        one_request_span(&parent, &client, owned);
    }
    let stats = client.stats();
    if stats.accepted() != n as u64 {
        return Err(format!("{} of {n} spans accepted", stats.accepted()).into());
    }
    rt.block_on(client.shutdown(Duration::from_secs(5)));
    Ok(())
}
