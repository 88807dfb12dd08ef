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
async fn receiver_restart_under_load_sends_refused_calls_again_and_accounts_exactly() {
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
    let mut why = BTreeSet::new();
    for (id, r) in receipts {
        match r.await {
            Ok(()) => {
                sent.insert(id);
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.reason(),
                        DropReason::WriteError
                            | DropReason::ConnectTimeout
                            | DropReason::GrpcStatus
                    ),
                    "{e}"
                );
                let cause = std::error::Error::source(&e).map(|c| c.to_string());
                why.insert(format!("{e}: {cause:?}"));
            }
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
    assert!(
        received == sent,
        "sent == received: {} arrived but were not counted sent, {} counted sent did not \
         arrive; {report:?}: {why:#?}",
        received.difference(&sent).count(),
        sent.difference(&received).count(),
    );
    assert!(!b.is_empty(), "the client reconnected to the new receiver");
    assert!(report.stats().reconnects() >= 1, "{report:?}");
    // A graceful stop answers the calls it took and refuses the rest with a GOAWAY,
    // which says they were not processed: those go again on the new connection, and so
    // do the batch's calls not yet started. What can still be lost is bounded by the
    // calls in flight (2 backends × 64): a call the stopping receiver took but had not
    // answered when its connection ended (seen only with the machine's cores busy
    // elsewhere: a few dozen, once in twenty runs). Without the second round, a
    // restart dropped the rest of the batch too, up to 960 spans here.
    assert!(report.dropped_total() <= 2 * 64, "{report:?}: {why:#?}");
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

// One thread: the spans are all queued before the worker first runs, so they make one
// batch, whose calls meet the stall together.
#[tokio::test(flavor = "current_thread")]
async fn a_stalled_receiver_fails_the_rest_of_the_batch_at_once_and_shutdown_keeps_its_deadline() {
    const N: i64 = 2000;
    // Room for one span, and nobody reading: every call after the first waits.
    let receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .capacity(1)
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    let write_timeout = Duration::from_millis(300);
    let client = Client::builder(&addr)
        .parallel_backends(1)
        .capacity(4096)
        .write_timeout(write_timeout)
        .build()
        .unwrap();
    let receipts: Vec<Receipt> = (0..N)
        .map(|id| client.record_with_receipt(span(id)).expect("room"))
        .collect();
    let start = Instant::now();
    let _ = client.flush().await;
    // Without failing fast, each wave of 64 calls would wait out its own timeout: about
    // 31 waves of 300 ms for 2000 spans.
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    let (mut ok, mut timed_out, mut down, mut not_tried) = (0u64, 0u64, 0u64, 0u64);
    for r in receipts {
        match r.await {
            Ok(()) => ok += 1,
            // Later batches find the backend down after the stall, until its backoff.
            Err(e) if e.reason() == DropReason::ConnectTimeout => down += 1,
            Err(e) => {
                assert_eq!(e.reason(), DropReason::WriteTimeout, "{e}");
                timed_out += 1;
                let cause = std::error::Error::source(&e).map(|c| c.to_string());
                if cause.is_some_and(|c| c.contains("an earlier call failed")) {
                    not_tried += 1;
                }
            }
        }
    }
    assert_eq!(ok + timed_out + down, N as u64);
    assert!(ok >= 1, "the first span fits the receiver's channel");
    assert!(not_tried > 0, "the spans behind the stall were not tried");
    let stats = client.stats();
    assert_eq!(stats.sent(), ok, "{stats:?}");
    assert_eq!(stats.dropped().write_timeout(), timed_out, "{stats:?}");
    assert_eq!(stats.dropped().connect_timeout(), down, "{stats:?}");
    assert_settled(&stats);

    // More spans while the receiver is still stuck; shutdown gives up at its deadline.
    for id in N..N + 200 {
        let _ = client.try_record(span(id));
    }
    let start = Instant::now();
    let report = client.shutdown(Duration::from_secs(1)).await;
    assert!(start.elapsed() < Duration::from_secs(6), "{report:?}");
    assert_report_settled(&report);
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_does_not_trip_the_read_timeout() {
    const N: i64 = 20;
    let mut receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .capacity(1)
        .read_timeout(Duration::from_millis(200))
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    // One connection, so that every call waits on it (with more, one whose calls were
    // all answered would idle while the consumer reads the others', and be closed, as
    // it should be).
    let client = Client::builder(&addr).parallel_backends(1).build().unwrap();
    for id in 0..N {
        client.record(span(id)).await.unwrap();
    }
    // The calls wait for the consumer, which starts late and reads slowly: longer in
    // all than the read timeout, which must not count that waiting against the client.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = Vec::new();
    while got.len() < N as usize {
        let s = tokio::time::timeout(PATIENCE, receiver.recv())
            .await
            .expect("the span")
            .expect("open");
        got.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.flush().await.expect("every span answered OK");
    let mut ids = ids(&got);
    ids.sort_unstable();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), N as u64, "{report:?}");
    let stats = receiver.shutdown().await;
    assert_eq!(stats.timeouts, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_replaced_without_losing_a_span() {
    let mut receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .read_timeout(Duration::from_millis(100))
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    let client = Client::builder(&addr).parallel_backends(1).build().unwrap();
    for round in 0..3 {
        client.record(span(round)).await.unwrap();
        client.flush().await.expect("answered OK");
        let got = receiver.collect(1, PATIENCE).await.unwrap();
        assert_eq!(got[0].id, round);
        // Idle past the receiver's read timeout: it closes the connection.
        let h = receiver.handle();
        let before = h.stats().timeouts;
        let start = Instant::now();
        while h.stats().timeouts == before {
            assert!(start.elapsed() < PATIENCE, "the idle connection was closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(
        (report.sent(), report.dropped_total()),
        (3, 0),
        "{report:?}"
    );
    let stats = receiver.shutdown().await;
    assert_eq!(stats.timeouts, 3, "{stats:?}");
    assert_eq!(stats.connections_accepted, 3, "{stats:?}");
}

#[tokio::test]
async fn grpc_spans_are_normalised_as_stream_spans_are() {
    let (mut receiver, addr) = grpc_receiver().await;
    let client = Client::builder(&addr).build().unwrap();
    let mut s = span(1);
    s.name.clear();
    s.tags.insert("name".into(), "from-the-tag".into());
    let mut sample = local_sample();
    sample.sample_rate = 0.0;
    s.metrics.push(sample);
    client.record(s).await.unwrap();
    client.flush().await.unwrap();
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].name, "from-the-tag");
    assert!(!got[0].tags.contains_key("name"));
    assert_eq!(got[0].metrics[0].sample_rate, 1.0);
    let _ = client.shutdown(PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_connections_budget_are_refused_and_counted_on_both_sides() {
    const N: i64 = 400;
    // Room for about two of these spans' messages at once on a connection. Whether a
    // call finds the budget spent depends on timing (the budget itself is pinned by the
    // unit tests of `ssf-receiver`'s `grpc/budget.rs`); the accounting must hold either
    // way.
    let receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .max_frame_length(10_000)
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    let (handle, seen) = consume(receiver);
    let client = Client::builder(&addr).parallel_backends(1).build().unwrap();
    for id in 0..N {
        client.record(big_span(id, 4000)).await.unwrap();
    }
    let _ = client.flush().await;
    let report = client.shutdown(PATIENCE).await;
    assert_report_settled(&report);
    let refused = report.dropped().grpc_status();
    assert_eq!(report.sent() + refused, N as u64, "{report:?}");
    handle.shutdown();
    let got = seen.await.unwrap();
    let stats = handle.stats();
    assert_eq!(got.len() as u64, report.sent(), "sent == received");
    assert_eq!(
        stats.rejects(RejectReason::RejectedCall),
        refused,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_in_flight_on_one_backend_delivers_in_order() {
    const N: i64 = 300;
    let (mut receiver, addr) = grpc_receiver().await;
    let client = Client::builder(&addr)
        .parallel_backends(1)
        .grpc_calls_in_flight(1)
        .build()
        .unwrap();
    for id in 0..N {
        client.record(span(id)).await.unwrap();
    }
    client.flush().await.expect("every span answered OK");
    // One call at a time: the receiver sees the spans in the order they were recorded.
    let got = receiver.collect(N as usize, PATIENCE).await.unwrap();
    assert_eq!(ids(&got), (0..N).collect::<Vec<_>>());
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), N as u64, "{report:?}");
}
