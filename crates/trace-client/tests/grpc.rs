//! The gRPC transport against our own gRPC receiver, over loopback: delivery on both
//! runtime flavours, a receiver restart under load, an absent receiver, a graceful
//! shutdown, and a status the receiver answers.
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ssf_receiver::{Receiver, ReceiverHandle, RejectReason};
use support::*;
use tokio::time::Instant;
use trace_client::{Client, DEFAULT_FLUSH_TIMEOUT, DropReason, Receipt};

/// `record_with_receipt`, retrying while the queue is full.
async fn record_receipt(client: &Client, mut s: ssf_proto::SsfSpan) -> Receipt {
    loop {
        match client.record_with_receipt(s) {
            Ok(r) => return r,
            Err(e) if e.is_full() => {
                s = e.into_span();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn grpc_receiver() -> (Receiver, String) {
    let r = Receiver::bind("grpc://127.0.0.1:0").await.unwrap();
    let addr = r.local_addr().to_string();
    assert!(addr.starts_with("grpc://127.0.0.1:"), "{addr}");
    (r, addr)
}

/// Records `0..n` (waiting for room), flushes, and checks the receiver got them all.
async fn deliver_all(n: i64) {
    let (mut receiver, addr) = grpc_receiver().await;
    let client = Client::builder(&addr).build().unwrap();
    let collector = tokio::spawn(async move {
        let got = receiver
            .collect(n as usize, PATIENCE)
            .await
            .expect("every span");
        (got, receiver)
    });
    for id in 0..n {
        client.record(span(id)).await.unwrap();
    }
    client.flush().await.expect("every span answered OK");
    let stats = client.stats();
    assert_eq!(stats.sent(), n as u64);
    assert_settled(&stats);
    let (got, receiver) = collector.await.unwrap();
    assert_ids(&got, 0..n);
    let report = client.shutdown(PATIENCE).await;
    assert_report_settled(&report);
    let rstats = receiver.shutdown().await;
    assert_eq!(rstats.spans, n as u64);
    assert_eq!(rstats.frames, n as u64);
    assert_eq!(rstats.rejected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_grpc_receiver_on_a_multi_thread_runtime() {
    deliver_all(3000).await;
}

#[tokio::test(flavor = "current_thread")]
async fn spans_reach_the_grpc_receiver_on_a_current_thread_runtime() {
    deliver_all(3000).await;
}

/// Reads `receiver` until it ends (after its handle's shutdown), keeping the ids.
fn consume(mut receiver: Receiver) -> (ReceiverHandle, tokio::task::JoinHandle<Vec<i64>>) {
    let handle = receiver.handle();
    let task = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(s) = receiver.recv().await {
            ids.push(s.id);
        }
        ids
    });
    (handle, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_restart_under_load_accounts_for_every_span_exactly() {
    const N: i64 = 20_000;
    let (receiver, addr) = grpc_receiver().await;
    let (handle_a, seen_a) = consume(receiver);
    let client = Client::builder(&addr)
        .parallel_backends(2)
        .backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut receipts: Vec<(i64, Receipt)> = Vec::with_capacity(N as usize);
            for id in 0..N {
                receipts.push((id, record_receipt(&client, span(id)).await));
            }
            receipts
        })
    };

    // Let receiver A take a part of the stream, then stop it (the calls in flight are
    // answered, later ones refused) and start B on the same port.
    while handle_a.stats().spans < 2000 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    handle_a.shutdown();
    let a = seen_a.await.unwrap();
    let b_receiver = Receiver::bind(&addr).await.expect("the port is free again");
    let (handle_b, seen_b) = consume(b_receiver);

    let receipts = producer.await.unwrap();
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out(), "{report:?}");
    assert_eq!(report.accepted(), N as u64);
    assert_report_settled(&report);
    handle_b.shutdown();
    let b = seen_b.await.unwrap();

    let mut sent = BTreeSet::new();
    for (id, r) in receipts {
        match r.await {
            Ok(()) => {
                sent.insert(id);
            }
            Err(e) => assert!(
                matches!(
                    e.reason(),
                    DropReason::WriteError | DropReason::ConnectTimeout | DropReason::GrpcStatus
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(
        sent.len() as u64,
        report.sent(),
        "receipts agree with counters"
    );
    let received: BTreeSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(received.len(), a.len() + b.len(), "no span arrived twice");
    // An OK answer comes only once the span is in the receiver's channel, and a
    // stopping receiver answers the calls in flight: the sent spans are exactly those
    // that arrived.
    assert_eq!(received, sent, "sent == received");
    assert!(!b.is_empty(), "the client reconnected to the new receiver");
    assert!(report.stats().reconnects() >= 1, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn absent_grpc_receiver_drops_within_the_connect_timeout_and_does_not_hang() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let connect_timeout = Duration::from_secs(2);
    let client = Client::builder(format!("grpc://127.0.0.1:{port}"))
        .connect_timeout(connect_timeout)
        .build()
        .unwrap();
    let mut accepted = 0;
    for id in 0..100 {
        if client.try_record(span(id)).is_ok() {
            accepted += 1;
        }
    }
    let start = Instant::now();
    let err = client.flush().await.expect_err("nothing can be sent");
    assert!(start.elapsed() <= connect_timeout + Duration::from_secs(1));
    assert!(start.elapsed() < DEFAULT_FLUSH_TIMEOUT);
    assert!(!err.is_timed_out(), "{err}");
    let stats = client.stats();
    assert_eq!(stats.dropped().connect_timeout(), accepted, "{stats:?}");
    assert_eq!(stats.sent(), 0);

    // Down: later spans are dropped at once, and shutdown does not wait.
    let r = record_receipt(&client, span(1000)).await;
    let e = r.await.expect_err("dropped");
    assert_eq!(e.reason(), DropReason::ConnectTimeout);
    let start = Instant::now();
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out());
    assert!(start.elapsed() < PATIENCE);
    assert_report_settled(&report);
    assert_eq!(report.dropped().connect_timeout(), accepted + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_nothing() {
    const N: i64 = 5000;
    let (receiver, addr) = grpc_receiver().await;
    let (handle, seen) = consume(receiver);
    let client = Client::builder(&addr).build().unwrap();
    for id in 0..N {
        client.record(span(id)).await.unwrap();
    }
    // No flush: shutdown drains the queue and waits for every answer.
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out(), "{report:?}");
    assert_eq!(report.sent(), N as u64, "{report:?}");
    assert_eq!(report.dropped_total(), 0, "{report:?}");
    handle.shutdown();
    let got: BTreeSet<i64> = seen.await.unwrap().into_iter().collect();
    assert_eq!(got, (0..N).collect());
}

#[tokio::test]
async fn a_span_over_the_receivers_limit_is_dropped_with_its_grpc_status() {
    let mut receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .max_frame_length(1024)
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    let client = Client::builder(&addr).build().unwrap();
    let big = record_receipt(&client, big_span(1, 4096)).await;
    let small = record_receipt(&client, span(2)).await;
    let e = big.await.expect_err("refused by the receiver");
    assert_eq!(e.reason(), DropReason::GrpcStatus);
    let cause = std::error::Error::source(&e)
        .expect("the status")
        .to_string();
    assert!(cause.contains("grpc status out_of_range"), "{cause}");
    small.await.expect("the connection goes on");
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].id, 2);
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.dropped().grpc_status(), 1);
    assert_eq!(report.sent(), 1);
    let stats = receiver.shutdown().await;
    assert_eq!(stats.rejects(RejectReason::RejectedCall), 1);
}
