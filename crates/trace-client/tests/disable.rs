//! The recording switch: `Client::disable` and the process-wide `disable`, over real
//! sockets. The process-wide switch touches every client of this test binary, so the
//! tests here take turns (`SWITCH`).

mod support;

use std::time::Duration;

use ssf_receiver::Receiver;
use support::*;
use trace_client::{Client, DropReason, Span};

static SWITCH: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Records span `id` through every record path of the client; all must succeed.
async fn record_every_way(client: &Client, id: i64) {
    client.try_record(span(id)).unwrap();
    client.try_record_ref(&span(id + 1)).unwrap();
    client.record(span(id + 2)).await.unwrap();
    client.record_ref(&span(id + 3)).await.unwrap();
    let mut s = Span::root("disabled-test");
    s.set_tag("k", "v");
    s.finish_with(client).unwrap();
}

async fn switch_off_and_on(addr: &str) {
    let mut receiver = Receiver::bind(addr).await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .build()
        .unwrap();
    client.try_record(span(1)).unwrap();
    client.flush().await.unwrap();

    client.disable();
    assert!(client.is_disabled());
    let clone = client.clone();
    record_every_way(&clone, 10).await;
    let receipt = client.record_with_receipt(span(20)).unwrap();
    let err = receipt.await.unwrap_err();
    assert_eq!(err.reason(), DropReason::Disabled);
    client.flush().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.disabled(), 6, "{stats:?}");
    assert_eq!(stats.dropped().get(DropReason::Disabled), 6);
    assert_eq!(stats.sent(), 1, "nothing sent while disabled: {stats:?}");
    assert_settled(&stats);

    client.enable();
    assert!(!client.is_disabled());
    client.try_record(span(30)).unwrap();
    let report = client.shutdown(Duration::from_secs(5)).await;
    assert_report_settled(&report);
    let got = receiver.collect(2, PATIENCE).await.unwrap();
    assert_ids(&got, [1, 30]);
    // Nothing else arrives: the disabled spans were never queued.
    let more = tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await;
    assert!(!matches!(more, Ok(Some(_))), "{more:?}");
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.disabled()), (2, 6), "{stats:?}");
    assert_eq!(stats.accepted(), 8);
}

#[tokio::test]
async fn a_disabled_client_sends_nothing_and_counts_what_it_discards_unix() {
    let _turn = SWITCH.lock().await;
    let (_dir, path) = socket_path();
    switch_off_and_on(&unix_url(&path)).await;
}

#[tokio::test]
async fn a_disabled_client_sends_nothing_and_counts_what_it_discards_udp() {
    let _turn = SWITCH.lock().await;
    switch_off_and_on("udp://127.0.0.1:0").await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_process_switch_stops_every_client_and_resumes_them() {
    let _turn = SWITCH.lock().await;
    let mut receiver = Receiver::bind("tcp://127.0.0.1:0").await.unwrap();
    let network = Client::from_address(receiver.local_addr().clone())
        .build()
        .unwrap();
    let (channel, mut rx) = Client::channel(16);

    trace_client::disable();
    assert!(trace_client::is_disabled());
    assert!(network.is_disabled() && channel.is_disabled());
    record_every_way(&network, 1).await;
    record_every_way(&channel, 1).await;
    // A client switched off alone stays off when the process is switched on.
    channel.disable();
    trace_client::enable();
    assert!(!trace_client::is_disabled());
    assert!(!network.is_disabled() && channel.is_disabled());

    network.try_record(span(100)).unwrap();
    channel.try_record(span(100)).unwrap();
    channel.enable();
    channel.try_record(span(101)).unwrap();

    network.flush().await.unwrap();
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_ids(&got, [100]);
    assert_eq!(rx.try_recv().unwrap().id, 101);
    assert!(rx.try_recv().is_err());
    assert_eq!(network.stats().disabled(), 5);
    assert_eq!(channel.stats().disabled(), 6);
    assert_settled(&network.stats());
    let report = network.shutdown(Duration::from_secs(5)).await;
    assert_report_settled(&report);
}

#[tokio::test]
async fn a_closed_or_neutralized_client_refuses_even_when_disabled() {
    let _turn = SWITCH.lock().await;
    let neutral = Client::neutralized();
    neutral.disable();
    assert!(neutral.try_record(span(1)).unwrap_err().is_closed());
    assert_eq!(neutral.stats().disabled(), 0);

    let (client, _rx) = Client::channel(4);
    client.disable();
    let _ = client.shutdown(Duration::from_secs(1)).await;
    assert!(client.try_record(span(1)).unwrap_err().is_closed());
    assert_eq!(client.stats().refused_closed(), 1);
}
