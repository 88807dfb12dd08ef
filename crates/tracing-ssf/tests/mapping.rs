//! How spans, fields and events map to SSF, through a channel client.

mod support;

use std::collections::HashMap;
use std::io;

use ssf_proto::{Metric, SsfSpan};
use support::Events;
use tokio::sync::mpsc;
use trace_client::{Client, Sampler, SpanContext, W3cTrace};
use tracing::Instrument;
use tracing::instrument::WithSubscriber;
use tracing_ssf::{INTERNAL_TARGET, SsfLayer, SsfSpanExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry, filter::Targets};

/// Everything queued in the channel, by name.
fn drain(rx: &mut mpsc::Receiver<SsfSpan>) -> HashMap<String, SsfSpan> {
    let mut spans = HashMap::new();
    while let Ok(span) = rx.try_recv() {
        let name = span.name.clone();
        assert!(
            spans.insert(name.clone(), span).is_none(),
            "two spans named {name}"
        );
    }
    spans
}

fn subscriber(layer: SsfLayer) -> tracing_subscriber::layer::Layered<SsfLayer, Registry> {
    tracing_subscriber::registry().with(layer)
}

#[test]
fn fields_become_tags_and_flags() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let span = tracing::info_span!(
            "op",
            text = "plain",
            number = -3,
            big = 1u128 << 100,
            ratio = 0.5,
            flag = true,
            debugged = ?Some("x"),
            displayed = %"shown",
            indicator = true,
            later = tracing::field::Empty,
            never = tracing::field::Empty,
            ssf.name = "renamed",
        );
        span.record("later", 99);
        span.record("number", 4);
    });
    let spans = drain(&mut rx);
    let span = &spans["renamed"];
    let expected: [(&str, &str); 8] = [
        ("text", "plain"),
        ("number", "4"),
        ("big", "1267650600228229401496703205376"),
        ("ratio", "0.5"),
        ("flag", "true"),
        ("debugged", "Some(\"x\")"),
        ("displayed", "shown"),
        ("later", "99"),
    ];
    let tags: Vec<(&str, &str)> = span
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(tags, expected);
    assert!(span.indicator);
    assert!(!span.error);
}

#[test]
fn error_fields_set_the_flag_and_error_tags() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let err = io::Error::other("disk on fire");
        let _a = tracing::info_span!(
            "with_error",
            error = &err as &(dyn std::error::Error + 'static)
        );
        let _b = tracing::info_span!("flagged", error = true);
        let _c = tracing::info_span!("unflagged", error = false);
        let d = tracing::info_span!("recorded_later", error = tracing::field::Empty);
        d.record("error", tracing::field::display("timeout"));
    });
    let spans = drain(&mut rx);
    let with_error = &spans["with_error"];
    assert!(with_error.error);
    assert_eq!(with_error.tags["error.msg"], "disk on fire");
    assert_eq!(with_error.tags["error.type"], "error");
    assert_eq!(with_error.tags["error.stack"], "disk on fire");
    assert!(!with_error.tags.contains_key("error"));
    assert!(spans["flagged"].error);
    assert!(spans["flagged"].tags.is_empty());
    assert!(!spans["unflagged"].error);
    assert!(spans["recorded_later"].error);
    assert_eq!(spans["recorded_later"].tags["error.msg"], "timeout");
}

#[test]
fn long_values_are_cut() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client).max_value_len(8);
    tracing::subscriber::with_default(subscriber(layer), || {
        let long = "é".repeat(1000);
        let _span = tracing::info_span!("op", long = long.as_str(), debugged = ?long);
    });
    let spans = drain(&mut rx);
    assert_eq!(spans["op"].tags["long"], "éééé");
    // `"` then three two-byte characters; the fourth would end at byte 9.
    assert_eq!(spans["op"].tags["debugged"], "\"ééé");
}

#[test]
fn events_can_be_kept_out_of_the_error_flag() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client).with_event_errors(false);
    tracing::subscriber::with_default(subscriber(layer), || {
        tracing::info_span!("op").in_scope(|| tracing::error!("ignored"));
    });
    let spans = drain(&mut rx);
    assert!(!spans["op"].error);
    assert!(spans["op"].tags.is_empty());
}

#[test]
fn error_events_without_a_message_use_their_error_field() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let span = tracing::info_span!("op");
        let err = io::Error::other("refused");
        // An explicit parent: the span is never entered.
        tracing::error!(parent: &span, error = &err as &(dyn std::error::Error + 'static));
        tracing::error!("no span around, nothing to flag");
    });
    let spans = drain(&mut rx);
    assert!(spans["op"].error);
    assert_eq!(spans["op"].tags["error.msg"], "refused");
}

#[test]
fn the_layers_own_target_is_ignored() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client);
    let stats = layer.stats();
    tracing::subscriber::with_default(subscriber(layer), || {
        tracing::info_span!("app").in_scope(|| {
            tracing::error!(target: INTERNAL_TARGET, "internal trouble");
            tracing::info_span!(target: INTERNAL_TARGET, "internal.work").in_scope(|| {
                tracing::info_span!("app.child").in_scope(|| {});
            });
            tracing::info_span!(target: "tracing_ssf::internal::deeper", "internal.deeper")
                .in_scope(|| {});
        });
    });
    let spans = drain(&mut rx);
    assert_eq!(stats.exported(), 2);
    assert_eq!(spans.len(), 2, "{:?}", spans.keys());
    let (app, child) = (&spans["app"], &spans["app.child"]);
    assert!(!app.error, "internal events never flag spans");
    assert_eq!(child.parent_id, app.id, "internal spans are skipped over");
}

#[tokio::test]
async fn refusals_are_counted_and_reported_on_the_internal_target() {
    let (client, rx) = Client::channel(1);
    let layer = SsfLayer::new(client);
    let stats = layer.stats();
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(layer).with(
        events
            .clone()
            .with_filter(Targets::new().with_target(INTERNAL_TARGET, tracing::Level::TRACE)),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    for _ in 0..5 {
        tracing::info_span!("op").in_scope(|| {});
    }
    assert_eq!((stats.exported(), stats.refused_full()), (1, 4));
    drop(rx);
    tracing::info_span!("op").in_scope(|| {});
    assert_eq!((stats.refused_closed(), stats.refused()), (1, 5));

    // Refusals 1, 2 and 4 were reported, not 3 or 5.
    let seen = events.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(target, level)| target == INTERNAL_TARGET && *level == tracing::Level::WARN)
    );
}

#[tokio::test]
async fn a_trace_client_context_is_continued() {
    let (client, mut rx) = Client::channel(16);
    let _guard = tracing::subscriber::set_default(subscriber(SsfLayer::new(client)));

    let ctx = SpanContext::new(77, 88).with_resource("batch");
    let inner = trace_client::context::in_span(ctx, async {
        tokio::task::yield_now().await;
        let span = tracing::info_span!("continued");
        let explicit_root = tracing::info_span!(parent: None, "explicit_root");
        (span.ssf_context(), explicit_root.ssf_context())
    })
    .await;
    let (continued, root) = (inner.0.expect("exported"), inner.1.expect("exported"));
    assert_eq!((continued.trace_id, continued.parent_id), (77, 88));
    assert_eq!(continued.resource, "batch");
    assert_eq!(root.parent_id, 0);
    assert_eq!(root.trace_id, root.span_id);

    let spans = drain(&mut rx);
    assert_eq!(spans["continued"].trace_id, 77);
    assert_eq!(spans["continued"].parent_id, 88);
}

#[test]
fn samples_and_service() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client).service("billing");
    tracing::subscriber::with_default(subscriber(layer), || {
        let span = tracing::info_span!("op");
        span.add_ssf_sample(ssf_proto::sample::count("op.calls", 1.0));
        span.add_ssf_sample(ssf_proto::sample::gauge("op.depth", 3.0));
    });
    let spans = drain(&mut rx);
    let names: Vec<&str> = spans["op"]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["op.calls", "op.depth"]);
    assert_eq!(spans["op"].service, "billing");
}

#[test]
fn without_the_layer_the_extension_does_nothing() {
    let subscriber = tracing_subscriber::registry().with(Events::default());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("op");
        span.set_ssf_parent(SpanContext::new(1, 2));
        assert_eq!(span.ssf_context(), None);
    });
    assert_eq!(tracing::Span::none().ssf_context(), None);
}

#[test]
fn invalid_remote_parents_are_ignored() {
    let (client, _rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let span = tracing::info_span!("op");
        let before = span.ssf_context().expect("exported");
        span.set_ssf_parent(SpanContext::new(0, 5));
        assert_eq!(span.ssf_context(), Some(before));
    });
}

#[test]
fn per_layer_target_filters_apply() {
    let (client, mut rx) = Client::channel(16);
    let filter = Targets::new().with_target("exported", tracing::Level::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(SsfLayer::new(client).with_filter(filter))
        .with(Events::default());
    tracing::subscriber::with_default(subscriber, || {
        let kept = tracing::info_span!(target: "exported", "kept");
        let skipped = tracing::info_span!(target: "elsewhere", "skipped");
        assert!(kept.ssf_context().is_some());
        assert!(
            skipped.ssf_context().is_none(),
            "filtered out of the layer only"
        );
        assert!(!skipped.is_disabled(), "the other layer still sees it");
    });
    let spans = drain(&mut rx);
    assert_eq!(spans.len(), 1);
    assert!(spans.contains_key("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_other_worker_threads_join_the_trace() {
    let (client, mut rx) = Client::channel(64);
    let dispatch = tracing::Dispatch::new(subscriber(SsfLayer::new(client)));

    let root = tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("root"));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let fut = async move {
            tokio::task::yield_now().await;
            let _child = tracing::info_span!("child", i).entered();
        };
        tasks.push(tokio::spawn(
            fut.instrument(root.clone())
                .with_subscriber(dispatch.clone()),
        ));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let root_ctx = root.ssf_context().expect("exported");
    drop(root);

    let mut count = 0;
    while let Ok(span) = rx.try_recv() {
        assert_eq!(span.trace_id, root_ctx.trace_id);
        if span.name == "child" {
            assert_eq!(span.parent_id, root_ctx.span_id);
            count += 1;
        }
    }
    assert_eq!(count, 8);
}

/// The samples of a span as (metric, name, value), in order.
fn samples(span: &SsfSpan) -> Vec<(Metric, &str, f32)> {
    span.metrics
        .iter()
        .map(|m| (m.metric(), m.name.as_str(), m.value))
        .collect()
}

#[test]
fn metric_events_become_samples_of_their_span() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let outer = tracing::info_span!("outer");
        outer.in_scope(|| {
            tracing::info!(counter.requests = 1u64, "a request");
            tracing::info!(monotonic_counter.bytes_in = 2048i64);
            tracing::debug!(histogram.latency_ms = 12.5f64, route = "/users", ok = true);
            tracing::trace!(gauge.queue_len = -3i64);
            tracing::info_span!("inner").in_scope(|| {
                tracing::info!(gauge.inner_depth = 7u64);
            });
            // Explicit parent: the event goes to `other`, never entered.
            let other = tracing::info_span!("other");
            tracing::info!(parent: &other, counter.to_other = 1);
        });
        // Outside every span: no span to carry it, nothing happens.
        tracing::info!(counter.orphan = 1);
    });
    let spans = drain(&mut rx);
    assert_eq!(spans.len(), 3, "{:?}", spans.keys());
    let outer = &spans["outer"];
    assert_eq!(
        samples(outer),
        [
            (Metric::Counter, "requests", 1.0),
            (Metric::Counter, "bytes_in", 2048.0),
            (Metric::Histogram, "latency_ms", 12.5),
            (Metric::Gauge, "queue_len", -3.0),
        ]
    );
    // The other fields tag the event's samples; the message does not.
    assert!(outer.metrics[0].tags.is_empty(), "{:?}", outer.metrics[0]);
    let tags: Vec<(&str, &str)> = outer.metrics[2]
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(tags, [("ok", "true"), ("route", "/users")]);
    for sample in &outer.metrics {
        assert_eq!(sample.sample_rate, 1.0);
        assert_eq!(sample.timestamp, 0);
    }
    // Events never add span tags nor flag the span.
    assert!(outer.tags.is_empty(), "{:?}", outer.tags);
    assert!(!outer.error);
    assert_eq!(
        samples(&spans["inner"]),
        [(Metric::Gauge, "inner_depth", 7.0)]
    );
    assert_eq!(
        samples(&spans["other"]),
        [(Metric::Counter, "to_other", 1.0)]
    );
}

#[test]
fn metric_fields_without_a_usable_number_are_ignored() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        tracing::info_span!("op").in_scope(|| {
            tracing::info!(counter.text = "five", gauge.flag = true, histogram.dbg = ?3);
            tracing::info!(
                gauge.nan = f64::NAN,
                gauge.inf = f64::INFINITY,
                gauge.huge = 1e300
            );
            tracing::info!("counter." = 1, counters.typo = 1, gauge = 2);
            tracing::info!(histogram.kept = 1.0f64, counter.text = "ignored");
        });
    });
    let spans = drain(&mut rx);
    let op = &spans["op"];
    assert_eq!(samples(op), [(Metric::Histogram, "kept", 1.0)]);
    // A metric field that is not a number is no tag either.
    assert!(op.metrics[0].tags.is_empty(), "{:?}", op.metrics[0].tags);
}

#[test]
fn samples_per_span_are_capped_and_the_excess_counted() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client).max_samples(3);
    let stats = layer.stats();
    tracing::subscriber::with_default(subscriber(layer), || {
        let span = tracing::info_span!("busy");
        span.in_scope(|| {
            for i in 0..4u64 {
                tracing::info!(counter.loops = 1, gauge.i = i);
            }
        });
        span.add_ssf_sample(ssf_proto::sample::count("by_hand", 1.0));
        tracing::info_span!("fresh").in_scope(|| tracing::info!(counter.c = 1));
    });
    let spans = drain(&mut rx);
    assert_eq!(
        samples(&spans["busy"]),
        [
            (Metric::Counter, "loops", 1.0),
            (Metric::Gauge, "i", 0.0),
            (Metric::Counter, "loops", 1.0),
        ]
    );
    // 8 samples from events and 1 by hand, 3 kept.
    assert_eq!(stats.samples_dropped(), 6);
    assert_eq!(samples(&spans["fresh"]), [(Metric::Counter, "c", 1.0)]);
}

#[test]
fn error_events_with_metric_fields_do_both() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        tracing::info_span!("op").in_scope(|| {
            tracing::error!(counter.failures = 1, code = 503, "upstream down");
        });
    });
    let spans = drain(&mut rx);
    let op = &spans["op"];
    assert!(op.error);
    assert_eq!(op.tags["error.msg"], "upstream down");
    assert_eq!(samples(op), [(Metric::Counter, "failures", 1.0)]);
    assert_eq!(op.metrics[0].tags["code"], "503");
}

#[test]
fn metric_events_can_be_turned_off() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client).with_event_metrics(false);
    tracing::subscriber::with_default(subscriber(layer), || {
        tracing::info_span!("op").in_scope(|| tracing::info!(counter.calls = 1));
    });
    assert!(drain(&mut rx)["op"].metrics.is_empty());
}

#[test]
fn internal_metric_events_are_ignored() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        tracing::info_span!("op")
            .in_scope(|| tracing::event!(target: "tracing_ssf::internal", tracing::Level::INFO, { counter.internal = 1 }));
    });
    assert!(drain(&mut rx)["op"].metrics.is_empty());
}

#[test]
fn current_context_is_the_nearest_exported_span() {
    let (client, _rx) = Client::channel(16);
    let layer = SsfLayer::new(client).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(tracing_ssf::current_context(), None);
        let outer = tracing::info_span!("outer");
        let _outer = outer.enter();
        let expected = outer.ssf_context().expect("exported");
        assert_eq!(tracing_ssf::current_context(), Some(expected.clone()));
        // A span filtered out of the layer has no context of its own: its nearest
        // exported ancestor's is the one its exported children would continue.
        let hidden = tracing::debug_span!("hidden");
        let _hidden = hidden.enter();
        assert_eq!(hidden.ssf_context(), None);
        assert_eq!(tracing_ssf::current_context(), Some(expected));
    });
}

#[test]
fn stand_in_spans_give_their_children_and_are_not_exported() {
    let (client, mut rx) = Client::channel(16);
    let layer = SsfLayer::new(client);
    let stats = layer.stats();
    tracing::subscriber::with_default(subscriber(layer), || {
        let owner = SpanContext::new(500, 501)
            .with_parent_id(499)
            .with_resource("GET /");
        let stand_in = tracing_ssf::context_span(owner.clone());
        assert_eq!(
            stand_in.metadata().map(|m| m.target()),
            Some(tracing_ssf::CONTEXT_TARGET)
        );
        assert_eq!(stand_in.ssf_context(), Some(owner));
        stand_in.in_scope(|| {
            tracing::info!(counter.lost = 1);
            let child = tracing::info_span!("child");
            let ctx = child.ssf_context().expect("exported");
            assert_eq!((ctx.trace_id, ctx.parent_id), (500, 501));
            assert_eq!(ctx.resource, "GET /");
        });
        // An invalid context is ignored: the span stays an ordinary exported span.
        let plain = tracing::info_span!("plain");
        plain.set_ssf_context(SpanContext::new(0, 1));
        assert_ne!(plain.ssf_context().map(|c| c.trace_id), Some(0));
    });
    let spans = drain(&mut rx);
    assert_eq!(spans.len(), 2, "{:?}", spans.keys());
    assert_eq!(spans["child"].parent_id, 501);
    assert!(spans.contains_key("plain"));
    assert_eq!(stats.exported(), 2);
}

#[test]
fn enter_context_enters_a_stand_in_each_time() {
    let (client, mut rx) = Client::channel(16);
    tracing::subscriber::with_default(subscriber(SsfLayer::new(client)), || {
        let mut enter = tracing_ssf::enter_context(&SpanContext::new(600, 601));
        for _ in 0..2 {
            let _entered = enter();
            assert_eq!(tracing_ssf::current_context().map(|c| c.span_id), Some(601));
            let _child = tracing::info_span!("child").entered();
        }
        assert_eq!(tracing_ssf::current_context(), None);
    });
    let mut count = 0;
    while let Ok(span) = rx.try_recv() {
        assert_eq!(
            (span.name.as_str(), span.trace_id, span.parent_id),
            ("child", 600, 601)
        );
        count += 1;
    }
    assert_eq!(count, 2);
}

#[tokio::test]
async fn baggage_sampling_and_w3c_of_a_continued_context_reach_tracing_children() {
    let (client, mut rx) = Client::channel_sampled(16, Sampler::always().parent_based());
    let _guard = tracing::subscriber::set_default(subscriber(SsfLayer::new(client.clone())));

    let mut ctx = SpanContext::new(77, 88).with_w3c(W3cTrace {
        trace_id_high: 5,
        flags: 1,
        tracestate: "k=v".into(),
    });
    ctx.baggage.set("tenant", "acme").unwrap();
    // The caller decided "not sampled": the parent-based sampler follows, for the
    // `tracing` spans too.
    let (outer, inner) = trace_client::context::in_span(ctx.clone().with_sampled(false), async {
        let outer = tracing::info_span!("outer");
        let inner = outer.in_scope(|| tracing::info_span!("inner"));
        (outer.ssf_context(), inner.ssf_context())
    })
    .await;
    let inner = inner.expect("exported");
    assert_eq!(inner.baggage.get("tenant"), Some("acme"));
    assert_eq!(
        (inner.sampled, inner.w3c.as_ref()),
        (Some(false), ctx.w3c.as_ref())
    );
    assert_eq!(outer.expect("exported").parent_id, 88);
    assert!(rx.try_recv().is_err(), "unsampled spans were sent");
    assert_eq!(client.stats().unsampled(), 2);

    // The same context decided "sampled": both are sent.
    trace_client::context::in_span(ctx.with_sampled(true), async {
        let outer = tracing::info_span!("outer");
        outer.in_scope(|| drop(tracing::info_span!("inner")));
    })
    .await;
    let spans = drain(&mut rx);
    assert_eq!(spans.len(), 2, "{spans:?}");
}
