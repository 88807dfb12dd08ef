//! Head sampling over real sockets: which spans reach the receiver, how the others are
//! counted, and how a decision travels to children and other processes.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ssf_proto::SsfSpan;
use ssf_receiver::Receiver;
use support::*;
use trace_client::propagation::{self, HeaderFormat};
use trace_client::{Client, DropReason, Sampler, Span, SpanContext, metrics};

async fn pair(addr: &str, sampler: Sampler) -> (Receiver, Client) {
    let receiver = Receiver::bind(addr).await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .sampler(sampler)
        .build()
        .unwrap();
    (receiver, client)
}

fn raw(trace_id: i64, id: i64) -> SsfSpan {
    SsfSpan {
        trace_id,
        ..span(id)
    }
}

/// A ratio sampler keeps whole traces: every span of a kept trace arrives, none of a
/// dropped one, through every record path, and the rest are counted as unsampled.
async fn ratio_keeps_whole_traces(addr: &str) {
    let sampler = Sampler::ratio(0.5);
    let (mut receiver, client) = pair(addr, sampler).await;
    let traces: Vec<i64> = (1..=40).collect();
    let mut expected = 0;
    for &trace in &traces {
        let mut root = Span::root("root").with_client(client.clone());
        root.set_parent(&SpanContext::new(trace, trace * 1000));
        let child = root.child("child");
        client.try_record(raw(trace, trace * 1000 + 1)).unwrap();
        client
            .try_record_ref(&raw(trace, trace * 1000 + 2))
            .unwrap();
        client.record(raw(trace, trace * 1000 + 3)).await.unwrap();
        client
            .record_ref(&raw(trace, trace * 1000 + 4))
            .await
            .unwrap();
        child.finish_with(&client).unwrap();
        root.finish().unwrap();
        if sampler.samples(trace, None) {
            expected += 6;
        }
    }
    assert!(
        expected > 0 && expected < 6 * traces.len(),
        "the ratio splits the traces"
    );
    client.flush().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.sent(), expected as u64, "{stats:?}");
    assert_eq!(stats.unsampled(), (6 * traces.len() - expected) as u64);
    assert_eq!(
        stats.dropped().get(DropReason::Unsampled),
        stats.unsampled()
    );
    assert_settled(&stats);

    let got = receiver.collect(expected, PATIENCE).await.unwrap();
    let mut per_trace: HashMap<i64, usize> = HashMap::new();
    for s in &got {
        *per_trace.entry(s.trace_id).or_default() += 1;
    }
    for (trace, n) in per_trace {
        assert!(
            sampler.samples(trace, None),
            "trace {trace} was not sampled"
        );
        assert_eq!(n, 6, "trace {trace} arrived whole");
    }
    client.shutdown(PATIENCE).await;
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_keeps_whole_traces_over_unix() {
    let dir = tempfile::tempdir().unwrap();
    ratio_keeps_whole_traces(&format!("unix://{}", dir.path().join("s.sock").display())).await;
}

#[tokio::test(flavor = "current_thread")]
async fn ratio_keeps_whole_traces_over_udp() {
    ratio_keeps_whole_traces("udp://127.0.0.1:0").await;
}

#[tokio::test]
async fn never_sends_nothing_but_metrics_and_receipts_say_why() {
    let (mut receiver, client) = pair("udp://127.0.0.1:0", Sampler::never()).await;
    Span::root("a").finish_with(&client).unwrap();
    client.try_record(raw(5, 1)).unwrap();
    let receipt = client.record_with_receipt(raw(5, 2)).unwrap();
    assert_eq!(receipt.await.unwrap_err().reason(), DropReason::Unsampled);
    // Metrics carriers (trace 0) are not traces: they are always sent.
    let count = ssf_proto::sample::count("hits", 1.0);
    metrics::report_one(&client, count).unwrap();
    client.flush().await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.unsampled(), stats.sent()), (3, 1), "{stats:?}");
    assert_eq!(stats.accepted(), 4);
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].trace_id, 0);
    let more = tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await;
    assert!(!matches!(more, Ok(Some(_))), "{more:?}");
    client.shutdown(PATIENCE).await;
}

#[tokio::test]
async fn parent_based_follows_the_incoming_decision_and_children_inherit_it() {
    let (mut receiver, client) = pair("udp://127.0.0.1:0", Sampler::never().parent_based()).await;
    // A caller said "sampled" in its headers.
    let mut headers = http::HeaderMap::new();
    propagation::inject_headers(
        &SpanContext::new(41, 42).with_sampled(true),
        &mut headers,
        HeaderFormat::Envoy,
    );
    let remote =
        propagation::extract_headers(&headers, propagation::DEFAULT_EXTRACT_FORMATS).unwrap();
    assert_eq!(remote.sampled, Some(true));
    let server = Span::child_of(&remote, "server").with_client(client.clone());
    let child = server.child("child");
    assert_eq!(child.sampled(), Some(true));
    child.finish().unwrap();
    server.finish().unwrap();
    // A root of our own: the rule (never) decides, and its children agree.
    let mut root = Span::root("root").with_client(client.clone());
    assert!(!root.sample_with(&client));
    let child = root.child("child");
    let mut out = http::HeaderMap::new();
    propagation::inject_headers(&child.context(), &mut out, HeaderFormat::Envoy);
    assert_eq!(out["ot-tracer-sampled"], "false");
    child.finish().unwrap();
    root.finish().unwrap();

    client.flush().await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.unsampled()), (2, 2), "{stats:?}");
    let got = receiver.collect(2, PATIENCE).await.unwrap();
    assert!(got.iter().all(|s| s.trace_id == 41));
    client.shutdown(PATIENCE).await;
}

#[tokio::test]
async fn a_decision_made_by_one_sampler_is_not_followed_by_an_always_sampler() {
    let (mut receiver, client) = pair("udp://127.0.0.1:0", Sampler::always()).await;
    let remote = SpanContext::new(7, 8).with_sampled(false);
    let mut span = Span::child_of(&remote, "kept").with_client(client.clone());
    assert!(
        span.sample_with(&client),
        "always records, whatever the caller said"
    );
    assert_eq!(span.sampled(), Some(true));
    span.finish().unwrap();
    client.flush().await.unwrap();
    assert_eq!(receiver.collect(1, PATIENCE).await.unwrap()[0].trace_id, 7);
    client.shutdown(PATIENCE).await;
}

#[test]
fn channel_clients_sample_too() {
    let (client, mut rx) = Client::channel_sampled(8, Sampler::never());
    assert_eq!(client.sampler(), Sampler::never());
    Span::root("dropped").finish_with(&client).unwrap();
    client.try_record(raw(3, 3)).unwrap();
    assert!(rx.try_recv().is_err());
    assert_eq!(client.stats().unsampled(), 2);
}
