//! End to end: `tracing` spans through the layer and a UDP client to an SSF receiver.

mod support;

use std::time::Duration;

use ssf_proto::Metric;
use support::{Udp, by_name};
use trace_client::SpanContext;
use trace_client::propagation::{self, HeaderFormat};
use tracing::{Instrument, Span};
use tracing_ssf::{SsfLayer, SsfSpanExt};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

#[tracing::instrument]
async fn handle_request(user_id: u64) {
    tokio::task::yield_now().await;
    let user = load_user(user_id).await;
    // A spawned task starts without a current span: pass it on both ways.
    let audit = tokio::spawn(audit(user.clone()).in_current_span());
    let notify = tokio::spawn(
        async {
            tokio::task::yield_now().await;
            let _inner = tracing::info_span!("notify.send", channel = "email").entered();
        }
        .instrument(Span::current()),
    );
    audit.await.expect("audit task");
    notify.await.expect("notify task");
}

#[tracing::instrument(fields(cache = tracing::field::Empty))]
async fn load_user(user_id: u64) -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Span::current().record("cache", "miss");
    query("select user").await;
    format!("user-{user_id}")
}

#[tracing::instrument]
async fn query(sql: &str) {
    tokio::task::yield_now().await;
}

#[tracing::instrument]
async fn audit(user: String) {
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn instrumented_async_functions_arrive_as_one_trace() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone()).service("accounts");
    let stats = layer.stats();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    handle_request(7).await;
    drop(guard);

    let spans = by_name(udp.spans(5).await);
    assert_eq!(stats.exported(), 5);
    let root = &spans["handle_request"];
    let load = &spans["load_user"];
    let query = &spans["query"];
    let audit = &spans["audit"];
    let notify = &spans["notify.send"];

    assert_ne!(root.id, 0);
    assert_eq!(root.trace_id, root.id);
    assert_eq!(root.parent_id, 0);
    for span in [load, query, audit, notify] {
        assert_eq!(span.trace_id, root.trace_id, "{}", span.name);
        assert_ne!(span.id, root.id);
    }
    assert_eq!(load.parent_id, root.id);
    assert_eq!(query.parent_id, load.id);
    assert_eq!(audit.parent_id, root.id, "spawned with in_current_span");
    assert_eq!(
        notify.parent_id, root.id,
        "spawned with instrument(Span::current())"
    );

    assert_eq!(root.tags["user_id"], "7");
    assert_eq!(load.tags["user_id"], "7");
    assert_eq!(load.tags["cache"], "miss", "recorded after creation");
    assert_eq!(query.tags["sql"], "select user");
    assert_eq!(audit.tags["user"], "user-7");
    assert_eq!(notify.tags["channel"], "email");
    for span in spans.values() {
        assert_eq!(span.service, "accounts");
        assert!(!span.error);
        assert!(span.start_timestamp > 0);
        assert!(span.end_timestamp >= span.start_timestamp, "{}", span.name);
        assert!(ssf_proto::is_valid_trace(span), "{}", span.name);
    }
}

#[tokio::test]
async fn remote_parent_from_http_headers_is_honoured() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    // The caller's side: its span context in Envoy headers.
    let caller = SpanContext::new(0x1234_5678, 0x9abc).with_resource("GET /users");
    let mut headers = http::HeaderMap::new();
    propagation::inject_headers(&caller, &mut headers, HeaderFormat::Envoy);
    // Injection leaves the resource out; extraction reads one if a caller sends it.
    headers.insert("resource", http::HeaderValue::from_static("GET /users"));

    // Our side.
    let remote = propagation::extract_headers(&headers, propagation::DEFAULT_EXTRACT_FORMATS)
        .expect("headers carry a context");
    let server = tracing::info_span!("server.handle");
    server.set_ssf_parent(remote);
    let child_ctx = async {
        tokio::task::yield_now().await;
        let child = tracing::info_span!("server.child");
        child.ssf_context()
    }
    .instrument(server.clone())
    .await
    .expect("the child is exported");
    let server_ctx = server.ssf_context().expect("the server span is exported");
    drop(server);

    let spans = by_name(udp.spans(2).await);
    let handled = &spans["server.handle"];
    let child = &spans["server.child"];
    assert_eq!(handled.trace_id, 0x1234_5678);
    assert_eq!(handled.parent_id, 0x9abc);
    assert_ne!(handled.id, 0x9abc);
    assert_eq!(child.trace_id, 0x1234_5678);
    assert_eq!(child.parent_id, handled.id);
    assert!(ssf_proto::is_valid_trace(handled));

    // The resource is not sent but is carried on to children.
    assert_eq!(server_ctx.resource, "GET /users");
    assert_eq!(child_ctx.resource, "GET /users");
    assert_eq!(child_ctx.span_id, child.id);
}

#[tokio::test]
async fn spans_never_entered_are_exported_on_close() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let idle = tracing::info_span!("idle", job = "nightly");
    tokio::time::sleep(Duration::from_millis(2)).await;
    drop(idle);

    let spans = udp.spans(1).await;
    assert_eq!(spans[0].name, "idle");
    assert_eq!(spans[0].tags["job"], "nightly");
    assert_eq!(spans[0].trace_id, spans[0].id);
    // Created, never entered, closed about 2 ms later: start and end are creation and close.
    assert!(spans[0].end_timestamp - spans[0].start_timestamp >= 1_000_000);
}

#[tokio::test]
async fn error_level_events_set_the_error_flag() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    async {
        tokio::task::yield_now().await;
        tracing::error!(code = 503, "database unreachable");
    }
    .instrument(tracing::info_span!("failing"))
    .await;
    async {
        tracing::warn!("slow but fine");
        tracing::info!("done");
    }
    .instrument(tracing::info_span!("fine"))
    .await;

    let spans = by_name(udp.spans(2).await);
    let failing = &spans["failing"];
    assert!(failing.error);
    assert_eq!(failing.tags["error.msg"], "database unreachable");
    assert!(!failing.tags.contains_key("code"), "events add no tags");
    let fine = &spans["fine"];
    assert!(!fine.error);
    assert!(fine.tags.is_empty());
}

#[tokio::test]
async fn level_filtering_drops_filtered_spans() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone());
    let stats = layer.stats();
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::INFO));
    let _guard = tracing::subscriber::set_default(subscriber);

    tracing::info_span!("outer").in_scope(|| {
        tracing::debug_span!("hidden").in_scope(|| {
            tracing::trace_span!("hidden.deeper").in_scope(|| {
                let _inner = tracing::warn_span!("inner").entered();
            });
        });
    });

    let spans = by_name(udp.spans(2).await);
    assert_eq!(stats.exported(), 2, "only outer and inner");
    let (outer, inner) = (&spans["outer"], &spans["inner"]);
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(
        inner.parent_id, outer.id,
        "the filtered spans are skipped over"
    );
}

#[tokio::test]
async fn metric_events_arrive_as_samples_of_their_span() {
    let mut udp = Udp::new().await;
    let layer = SsfLayer::new(udp.client.clone());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    async {
        tokio::task::yield_now().await;
        tracing::info!(counter.uploads = 1, bucket = "photos", "upload started");
        tracing::info!(histogram.upload_bytes = 5_000_000u64);
        tracing::info!(gauge.uploads_in_flight = 2.0);
        tracing::info!("a plain log line adds nothing");
    }
    .instrument(tracing::info_span!("upload"))
    .await;

    let spans = udp.spans(1).await;
    let upload = &spans[0];
    assert_eq!(upload.name, "upload");
    assert!(ssf_proto::is_valid_trace(upload));
    let samples: Vec<_> = upload
        .metrics
        .iter()
        .map(|m| (m.metric(), m.name.as_str(), m.value))
        .collect();
    assert_eq!(
        samples,
        [
            (Metric::Counter, "uploads", 1.0),
            (Metric::Histogram, "upload_bytes", 5_000_000.0),
            (Metric::Gauge, "uploads_in_flight", 2.0),
        ]
    );
    assert_eq!(upload.metrics[0].tags["bucket"], "photos");
    assert!(upload.tags.is_empty(), "{:?}", upload.tags);
}
