//! The span API end to end: spans and metrics recorded through it arrive at a real SSF
//! receiver over loopback UDP with exactly the fields set, finishing rules (explicit, on
//! drop, at most once), the default client, the task-local context and `span!`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{SsfSample, SsfSpan};
use ssf_receiver::Receiver;
use trace_client::{Client, Span, SpanContext, WithSpan, context, default, metrics};

const SERVICE: &str = "trace-api-tests";
const WAIT: Duration = Duration::from_secs(10);

/// Every test of this binary sees the same service name; set it before any span exists.
fn service() -> &'static str {
    let _ = trace_client::set_service_name(SERVICE);
    assert_eq!(trace_client::service_name(), SERVICE);
    SERVICE
}

/// Tests that use the process-wide default client take this lock.
static DEFAULT_CLIENT: Mutex<()> = Mutex::new(());

fn default_client_lock() -> MutexGuard<'static, ()> {
    DEFAULT_CLIENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A receiver on loopback UDP that keeps spans as they arrive.
async fn udp_receiver() -> Receiver {
    Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .expect("address parses")
        .normalize(false)
        .bind()
        .await
        .expect("bind loopback udp")
}

async fn udp_pair() -> (Receiver, Client) {
    let receiver = udp_receiver().await;
    let client = Client::builder(receiver.local_addr().to_string())
        .build()
        .expect("udp client builds");
    (receiver, client)
}

fn nanos(t: SystemTime) -> i64 {
    ssf_proto::time::to_nanos(t).expect("test times are in range")
}

fn tags(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Debug)]
struct LocalError;

impl std::fmt::Display for LocalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("something broke")
    }
}

impl std::error::Error for LocalError {}

#[tokio::test]
async fn recorded_spans_arrive_over_udp_with_exactly_the_fields_set() {
    let service = service();
    let (mut receiver, client) = udp_pair().await;

    let before = SystemTime::now();
    let root = Span::start_trace("GET /cart").with_client(client.clone());
    let mut child = root.child("load_cart");
    child
        .set_tag("name", "literal name tag")
        .set_tag("resource", "literal resource tag")
        .set_tag("user", "42")
        .set_indicator(true)
        .add_sample(sample::count("cart.loads", 1.0).with_tag("shop", "eu"));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let child_ssf_before_finish = child.to_ssf();
    let (child_start, child_ids) = (
        child.start(),
        (child.trace_id(), child.span_id(), child.parent_id()),
    );
    child.finish().expect("queued");
    let elapsed = before.elapsed().expect("clock moves forward");

    let mut root = root;
    root.set_name("cart");
    let mut root_expected = root.to_ssf();
    let end = SystemTime::now() + Duration::from_secs(1);
    root.set_end(end);
    root_expected.end_timestamp = nanos(end);
    root.finish_with(&client).expect("queued");

    let mut spans = receiver.collect(2, WAIT).await.expect("two spans");
    spans.sort_by_key(|s| s.parent_id);
    let (got_root, got_child) = (&spans[0], &spans[1]);

    // The child: every field we set, nothing else.
    assert_eq!(
        (got_child.trace_id, got_child.id, got_child.parent_id),
        child_ids
    );
    assert_eq!(got_child.trace_id, root_expected.trace_id);
    assert_eq!(got_child.parent_id, root_expected.id);
    assert_eq!(got_child.name, "load_cart");
    assert_eq!(got_child.service, service);
    assert!(got_child.indicator);
    assert!(!got_child.error);
    assert_eq!(
        got_child.tags,
        tags(&[
            ("name", "literal name tag"),
            ("resource", "literal resource tag"),
            ("user", "42"),
        ])
    );
    assert_eq!(got_child.metrics, child_ssf_before_finish.metrics);
    assert_eq!(got_child.start_timestamp, nanos(child_start));
    assert_eq!(
        got_child.start_timestamp / 1_000_000_000,
        nanos(child_start) / 1_000_000_000
    );
    let duration = got_child.end_timestamp - got_child.start_timestamp;
    assert!(duration > 0, "{duration}");
    assert!(duration <= i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX));
    assert_eq!(got_child.version, 0);
    assert_eq!(got_child.root_start_timestamp, 0);

    // The root, with its preset end time unchanged.
    assert_eq!(got_root, &root_expected);
    assert_eq!(got_root.end_timestamp, nanos(end));
    assert_eq!(got_root.trace_id, got_root.id);
    assert_eq!(got_root.parent_id, 0);
    assert!(got_root.tags.is_empty());
}

#[tokio::test]
async fn error_spans_and_receipts_over_udp() {
    service();
    let (mut receiver, client) = udp_pair().await;

    let mut span = Span::root("fails").with_client(client.clone());
    span.error(&LocalError);
    let receipt = span.finish_with_receipt().expect("queued");
    receipt.await.expect("sent by the udp backend");

    let got = receiver.collect(1, WAIT).await.expect("one span");
    assert!(got[0].error);
    assert_eq!(
        got[0].tags,
        tags(&[
            ("error.msg", "something broke"),
            ("error.type", "LocalError"),
            ("error.stack", "something broke"),
        ])
    );
}

#[tokio::test]
async fn metrics_reports_arrive_as_metrics_only_spans() {
    service();
    let (mut receiver, client) = udp_pair().await;

    let mut batch = sample::Samples::new();
    batch.add([sample::count("a", 1.0), sample::gauge("b", 2.0)]);
    batch.add([sample::histogram("c", 3.0)]);
    metrics::report(&client, batch).expect("queued");
    metrics::report_async(&client, [sample::set("d", "member")])
        .expect("queued")
        .await
        .expect("sent");

    let mut spans = receiver.collect(2, WAIT).await.expect("two spans");
    spans.sort_by_key(|s| s.metrics.len());
    for span in &spans {
        let bare = SsfSpan {
            metrics: span.metrics.clone(),
            ..Default::default()
        };
        assert_eq!(span, &bare, "no ids, timestamps, name or service");
    }
    let names: Vec<&str> = spans[1].metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(spans[0].metrics[0].message, "member");

    for empty in [
        metrics::report(&client, Vec::<SsfSample>::new()),
        metrics::report(&client, sample::Samples::new()),
        metrics::report_async(&client, []).map(drop),
    ] {
        let err = empty.unwrap_err();
        assert!(matches!(err, metrics::ReportError::NoMetrics));
        assert_eq!(err.to_string(), "no metrics to send");
    }
}

#[test]
fn hundred_reports_on_a_channel_client() {
    let (client, mut rx) = Client::channel(128);
    for _ in 0..100 {
        metrics::report_one(&client, sample::count("hi_there", 1.0)).expect("room in the channel");
    }
    let first = rx.try_recv().expect("a span");
    assert_eq!(first.metrics[0].name, "hi_there");
    assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 99);
}

fn early_return(client: &Client, fail: bool) -> Result<u8, LocalError> {
    let mut span = Span::root("early").with_client(client.clone());
    span.set_tag("fail", fail.to_string());
    if fail {
        Err(LocalError)?;
    }
    Ok(1)
}

#[test]
fn dropping_an_unfinished_span_records_it_once() {
    service();
    let (client, mut rx) = Client::channel(8);

    assert!(early_return(&client, true).is_err());
    assert_eq!(early_return(&client, false).ok(), Some(1));
    let spans: Vec<SsfSpan> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].tags["fail"], "true");
    assert_eq!(spans[1].tags["fail"], "false");
    assert!(spans.iter().all(|s| s.end_timestamp >= s.start_timestamp));
    assert!(spans.iter().all(|s| s.start_timestamp > 0));

    // Children inherit the client and are finished on drop too.
    {
        let root = Span::root("parent").with_client(client.clone());
        let _child = root.child("kid");
    }
    let names: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["kid", "parent"]);

    // Finished explicitly: sent once, never again on drop.
    Span::root("explicit")
        .with_client(client.clone())
        .finish()
        .expect("queued");
    assert_eq!(rx.try_recv().expect("sent").name, "explicit");
    assert!(rx.try_recv().is_err());

    // Finishing on drop switched off, or finished without recording: nothing is sent.
    let mut quiet = Span::root("quiet").with_client(client.clone());
    quiet.set_finish_on_drop(false);
    drop(quiet);
    let ssf = Span::root("taken").with_client(client.clone()).into_ssf();
    assert_eq!(ssf.name, "taken");
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_refused_span_is_handed_back_and_not_resent() {
    let (client, mut rx) = Client::channel(1);
    client
        .try_record(SsfSpan::default())
        .expect("fills the channel");
    let err = Span::root("refused")
        .with_client(client.clone())
        .finish()
        .unwrap_err();
    assert!(err.is_full());
    assert_eq!(err.into_span().name, "refused");
    assert_eq!(rx.try_recv().expect("the filler").name, "");
    assert!(
        rx.try_recv().is_err(),
        "the refused span is not sent on drop"
    );

    Span::root("again")
        .finish_with(&client)
        .expect("room again");
    assert_eq!(rx.try_recv().expect("sent").name, "again");
}

#[test]
fn finishing_on_the_default_client() {
    let _guard = default_client_lock();
    let _ = default::set(None);

    // No default client: refused with NoClient and the span handed back; dropping is quiet.
    let err = Span::root("nowhere").finish().unwrap_err();
    assert!(err.is_no_client());
    assert_eq!(err.span().name, "nowhere");
    assert!(
        Span::root("nowhere")
            .finish_with_receipt()
            .unwrap_err()
            .is_no_client()
    );
    drop(Span::root("dropped with no client"));

    let (client, mut rx) = Client::channel(8);
    let _ = default::set(Some(client));
    let mut span = Span::root("hi_there");
    span.set_tag("k", "v");
    span.finish().expect("queued on the default client");
    drop(Span::root("on drop"));
    let names: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hi_there", "on drop"]);

    // A span's own client wins over the default one.
    let (own, mut own_rx) = Client::channel(8);
    Span::root("own").with_client(own).finish().expect("queued");
    assert_eq!(own_rx.try_recv().expect("sent").name, "own");
    assert!(rx.try_recv().is_err());

    let _ = default::set(None);
}

mod shop {
    use trace_client::Span;

    pub(crate) fn checkout() -> Span {
        trace_client::span!()
    }

    pub(crate) async fn charge() -> Span {
        let mut span = trace_client::span!();
        span.set_finish_on_drop(false);
        let child = span
            .context()
            .scope(async { trace_client::span!("card") })
            .await;
        drop(span);
        child
    }
}

fn quiet(mut span: Span) -> Span {
    span.set_finish_on_drop(false);
    span
}

#[tokio::test]
async fn span_macro_infers_the_function_name_and_links_to_the_current_span() {
    let root = quiet(shop::checkout());
    assert_eq!(root.name(), "shop::checkout");
    assert_eq!(root.resource(), "shop::checkout");
    assert_eq!(root.parent_id(), 0);
    assert_eq!(root.trace_id(), root.span_id());

    let (child, grandchild) = root
        .context()
        .scope(async {
            let child = quiet(shop::checkout());
            let grandchild = child
                .context()
                .scope(async { quiet(trace_client::span!()) })
                .await;
            (child, grandchild)
        })
        .await;
    assert_eq!(child.name(), "shop::checkout");
    assert_eq!(child.resource(), root.resource());
    assert_eq!(child.parent_id(), root.span_id());
    assert_eq!(child.trace_id(), root.trace_id());
    assert_eq!(grandchild.parent_id(), child.span_id());
    assert_eq!(grandchild.trace_id(), root.trace_id());
    assert!(
        grandchild
            .name()
            .ends_with("span_macro_infers_the_function_name_and_links_to_the_current_span")
    );

    let card = quiet(shop::charge().await);
    assert_eq!(card.name(), "card");
    assert_eq!(card.resource(), "shop::charge");
    assert_ne!(card.parent_id(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_span_follows_tasks_across_awaits_and_spawns() {
    let root = quiet(Span::root("server"));
    let ctx = root.context();
    let (in_task, after_yield, spawned) = async {
        let in_task = quiet(Span::child_of_current("a"));
        tokio::task::yield_now().await;
        let after_yield = context::current();
        let spawned = context::spawn_in_current(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            quiet(Span::child_of_current("b"))
        })
        .await
        .expect("task ran");
        (in_task, after_yield, spawned)
    }
    .with_span(ctx.clone())
    .await;
    assert_eq!(in_task.parent_id(), root.span_id());
    assert_eq!(after_yield, Some(ctx));
    assert_eq!(spawned.parent_id(), root.span_id());
    assert_eq!(spawned.trace_id(), root.trace_id());

    let outside = quiet(Span::child_of_current("c"));
    assert_eq!(outside.parent_id(), 0);
}

#[test]
fn remote_parent_from_a_carrier() {
    let remote = trace_client::propagation::extract_text_map([
        ("ot-tracer-traceid", "3039"),
        ("ot-tracer-spanid", "10932"),
        ("resource", "GET /"),
    ])
    .expect("valid carrier");
    let span = quiet(Span::child_of(&remote, "handle"));
    assert_eq!(span.trace_id(), 12345);
    assert_eq!(span.parent_id(), 67890);
    assert_eq!(span.resource(), "GET /");
    assert_eq!(
        span.context(),
        SpanContext {
            trace_id: 12345,
            span_id: span.span_id(),
            parent_id: 67890,
            resource: "GET /".into(),
            ..SpanContext::default()
        }
    );
}

#[test]
fn start_time_is_creation_time_and_can_be_preset() {
    let before = SystemTime::now();
    let span = quiet(Span::start_trace("res"));
    let after = SystemTime::now();
    assert!(before <= span.start() && span.start() <= after);
    assert_eq!(span.trace_id(), span.span_id());
    assert_eq!(span.parent_id(), 0);
    assert_eq!(span.resource(), "res");

    let start = UNIX_EPOCH + Duration::from_secs(1_136_239_445);
    let mut child = quiet(span.child("c"));
    child
        .set_start(start)
        .set_tag("foo", "bar")
        .set_tag("baz", "quz");
    assert_eq!(child.start(), start);
    assert_eq!(child.end(), None);
    assert_eq!(child.tags(), &tags(&[("foo", "bar"), ("baz", "quz")]));
    assert_eq!(child.parent_id(), span.span_id());
    assert_eq!(child.resource(), "res");
}

#[tokio::test]
async fn set_parent_and_finish_named_reach_the_receiver_as_veneur_sends_them() {
    let service = service();
    let (mut receiver, client) = udp_pair().await;
    let request = Span::start_trace("GET /checkout").with_client(client.clone());

    // Re-parented from a carrier's context: trace, parent and resource from it.
    let remote = SpanContext {
        trace_id: 77,
        span_id: 78,
        parent_id: 0,
        resource: "remote-resource".into(),
        ..SpanContext::default()
    };
    let mut adopted = Span::root("adopted").with_client(client.clone());
    let own_id = adopted.span_id();
    adopted.set_parent(&remote);
    adopted.finish_named("", [("k", "v")]).unwrap();

    // Re-parented under a span at hand, renamed and tagged in the finishing call.
    let mut work = Span::root("placeholder").with_client(client.clone());
    work.set_tag("kept", "yes").set_parent_span(&request);
    let work_id = work.span_id();
    work.finish_named("charge", [("currency", "eur"), ("kept", "overwritten")])
        .unwrap();

    let mut got = receiver.collect(2, WAIT).await.unwrap();
    got.sort_by_key(|s| s.name.clone());
    let (adopted, charge) = (&got[0], &got[1]);
    assert_eq!(
        (adopted.id, adopted.trace_id, adopted.parent_id),
        (own_id, 77, 78)
    );
    assert_eq!(
        adopted.name, "adopted",
        "an empty name keeps the span's own"
    );
    assert_eq!(adopted.tags, tags(&[("k", "v")]));
    assert_eq!(adopted.service, service);
    assert_eq!(
        (charge.id, charge.trace_id, charge.parent_id),
        (work_id, request.trace_id(), request.span_id())
    );
    assert_eq!(charge.name, "charge");
    assert_eq!(
        charge.tags,
        tags(&[("currency", "eur"), ("kept", "overwritten")])
    );
    drop(quiet(request));
}

#[tokio::test]
async fn a_clients_service_name_goes_on_spans_without_one() {
    let process = service();
    for in_backend in [false, true] {
        let mut receiver = udp_receiver().await;
        let client = Client::builder(receiver.local_addr().to_string())
            .service("client-service")
            .encode_in_backend(in_backend)
            .build()
            .expect("udp client builds");
        assert_eq!(client.service(), Some("client-service"));

        // Span API: the client's name comes before the process-wide one.
        Span::root("span-none").finish_with(&client).unwrap();
        let mut own = Span::root("span-own");
        own.set_service("own-service");
        own.finish_with(&client).unwrap();
        // SsfSpan paths: filled only when empty.
        let ssf = |name: &str, service: &str| SsfSpan {
            id: 9,
            trace_id: 9,
            name: name.into(),
            service: service.into(),
            ..Default::default()
        };
        client.try_record(ssf("ssf-none", "")).unwrap();
        client.try_record_ref(&ssf("ssf-ref-none", "")).unwrap();
        client.record(ssf("ssf-record-none", "")).await.unwrap();
        client
            .record_ref(&ssf("ssf-record-ref-none", ""))
            .await
            .unwrap();
        client.try_record(ssf("ssf-own", "own-service")).unwrap();

        let got = receiver.collect(7, WAIT).await.unwrap();
        let mut by_name: Vec<(String, String)> =
            got.into_iter().map(|s| (s.name, s.service)).collect();
        by_name.sort();
        let want = |n: &str, s: &str| (n.to_owned(), s.to_owned());
        assert_eq!(
            by_name,
            [
                want("span-none", "client-service"),
                want("span-own", "own-service"),
                want("ssf-none", "client-service"),
                want("ssf-own", "own-service"),
                want("ssf-record-none", "client-service"),
                want("ssf-record-ref-none", "client-service"),
                want("ssf-ref-none", "client-service"),
            ],
            "encode_in_backend {in_backend}"
        );
        // Without the option the process-wide name is used, as before.
        let plain = Client::builder(receiver.local_addr().to_string())
            .build()
            .unwrap();
        assert_eq!(plain.service(), None);
        Span::root("plain").finish_with(&plain).unwrap();
        let got = receiver.collect(1, WAIT).await.unwrap();
        assert_eq!(
            (got[0].name.as_str(), got[0].service.as_str()),
            ("plain", process)
        );
    }
}
