//! Flush is a barrier: it waits for busy backends instead of skipping them.
#![cfg(unix)]

mod support;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ssf_codec::SsfCodec;
use ssf_proto::SsfSpan;
use support::*;
use tokio::sync::Semaphore;
use tokio_test::{assert_pending, assert_ready};
use tokio_util::codec::FramedRead;
use trace_client::testing::FlushingBackend;
use trace_client::{Backend, Client};

/// A backend whose every send waits for a permit.
struct Gated {
    gate: Arc<Semaphore>,
    sent: tokio::sync::mpsc::UnboundedSender<i64>,
}

impl Backend for Gated {
    async fn send(&mut self, span: &SsfSpan) -> io::Result<()> {
        self.gate.acquire().await.unwrap().forget();
        let _ = self.sent.send(span.id);
        Ok(())
    }
}

/// A client whose one backend is [`Gated`]: the gate, and the IDs it sent.
fn gated_client(
    capacity: usize,
) -> (
    Client,
    Arc<Semaphore>,
    tokio::sync::mpsc::UnboundedReceiver<i64>,
) {
    let gate = Arc::new(Semaphore::new(0));
    let (sent_tx, sent) = tokio::sync::mpsc::unbounded_channel();
    let client = Client::with_backend(Gated {
        gate: gate.clone(),
        sent: sent_tx,
    })
    .capacity(capacity)
    .build()
    .unwrap();
    (client, gate, sent)
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn flush_waits_for_a_busy_user_backend() {
    let (client, gate, mut sent) = gated_client(4);
    for id in 1..=3 {
        client.try_record(span(id)).unwrap();
    }
    settle().await;
    let mut flush = tokio_test::task::spawn(client.flush());
    assert_pending!(flush.poll());
    gate.add_permits(2);
    settle().await;
    // Two of the three spans recorded before the flush are through: still pending.
    assert_pending!(flush.poll());
    gate.add_permits(1);
    settle().await;
    assert!(flush.is_woken());
    assert_ready!(flush.poll()).unwrap();
    let mut order = Vec::new();
    while let Ok(id) = sent.try_recv() {
        order.push(id);
    }
    assert_eq!(order, [1, 2, 3]);
    assert_settled(&client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_every_busy_network_backend() {
    // The server accepts connections but reads nothing until released, so the backends
    // block in their writes once the socket buffers are full.
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let release = Arc::new(tokio::sync::Notify::new());
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = {
        let release = release.clone();
        tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    Ok((c, _)) = listener.accept() => conns.push(c),
                    _ = release.notified() => break,
                }
            }
            for c in conns {
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let mut frames = FramedRead::new(c, SsfCodec::new());
                    let _ = done_tx.send(read_to_end(&mut frames).await);
                });
            }
            drop(done_tx);
        })
    };
    let backends = 4;
    let client = Client::builder(unix_url(&path))
        .parallel_backends(backends)
        .capacity(64)
        .build()
        .unwrap();
    // 256 KiB spans: each backend blocks on its first or second write.
    let n = 24;
    for id in 0..n {
        client.record(big_span(id, 256 * 1024)).await.unwrap();
    }
    let flush = client.flush();
    let flush = tokio::spawn(flush);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !flush.is_finished(),
        "flush returned while backends were blocked"
    );
    let before = client.stats();
    assert!(
        before.queued() > 0 && before.sent() < n as u64,
        "{before:?}"
    );

    release.notify_one();
    tokio::time::timeout(PATIENCE, flush)
        .await
        .expect("flush in time")
        .unwrap()
        .expect("flush ok");
    // The barrier: everything recorded before the flush is written.
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.queued()), (n as u64, 0), "{stats:?}");
    assert_settled(&stats);

    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), n as u64);
    server.await.unwrap();
    let mut got = Vec::new();
    while let Some(spans) = done_rx.recv().await {
        got.extend(spans);
    }
    assert_ids(&got, 0..n);
}

#[tokio::test]
async fn flushing_backend_delivers_batches_and_keeps_them_on_error() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (backend, mut batches) = FlushingBackend::pair(4);
    let backend = {
        let fail = fail.clone();
        backend.flush_errors(move |batch| {
            (fail.load(std::sync::atomic::Ordering::SeqCst) && !batch.is_empty())
                .then(|| io::Error::other("not now"))
        })
    };
    let handle = backend.handle();
    let client = Client::with_backend(backend).capacity(16).build().unwrap();
    for id in 0..10 {
        client.record(span(id)).await.unwrap();
    }
    let err = client.flush().await.unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].error().to_string(), "not now");
    assert_eq!(handle.len(), 10, "the batch is kept");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    client.flush().await.unwrap();
    let batch = batches.recv().await.unwrap();
    assert_eq!(
        batch.iter().map(|s| s.id).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Flushing directly, bypassing the client, also delivers (empty batches too).
    handle.flush().await.unwrap();
    assert!(batches.recv().await.unwrap().is_empty());
    let stats = client.stats();
    assert_eq!((stats.flushes_ok(), stats.flushes_failed()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn flush_interval_flushes_without_being_asked() {
    let (backend, mut batches) = FlushingBackend::pair(4);
    let client = Client::with_backend(backend)
        .capacity(8)
        .flush_interval(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    client.try_record(span(1)).unwrap();
    let batch = tokio::time::timeout(Duration::from_millis(1500), batches.recv())
        .await
        .expect("a flush within the interval")
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert!(client.stats().flushes_ok() >= 1);
    // The periodic task stops with the client.
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out());
}

#[tokio::test]
async fn shutdown_waits_for_a_busy_backend_until_released() {
    let (client, gate, _sent) = gated_client(4);
    client.try_record(span(1)).unwrap();
    client.try_record(span(2)).unwrap();
    let mut shutdown = tokio_test::task::spawn(client.shutdown(PATIENCE));
    assert_pending!(shutdown.poll());
    settle().await;
    assert_pending!(shutdown.poll());
    assert!(
        client.try_record(span(3)).unwrap_err().is_closed(),
        "intake stopped"
    );
    gate.add_permits(2);
    settle().await;
    let report = assert_ready!(shutdown.poll());
    assert!(!report.timed_out());
    assert_eq!(report.sent(), 2);
    assert_report_settled(&report);
}

#[tokio::test]
async fn dropped_receipts_never_hold_up_a_backend() {
    let (backend, mut rx) = trace_client::testing::ChannelBackend::pair(64);
    let client = Client::with_backend(backend).capacity(64).build().unwrap();
    for id in 0..32 {
        drop(client.record_with_receipt(span(id)).unwrap());
    }
    client.flush().await.unwrap();
    for id in 0..32 {
        assert_eq!(rx.recv().await.unwrap().id, id);
    }
    assert_eq!(client.stats().sent(), 32);
}

#[tokio::test(start_paused = true)]
async fn a_flush_taken_with_a_batch_that_an_abort_cuts_short_is_answered_at_once() {
    // The worker takes [span, flush marker] in one batch and is stuck sending the span
    // when the shutdown deadline passes: the flush must be answered then (the backend
    // shut down), not left to run out its own time limit.
    let (client, _gate, _sent) = gated_client(4);
    client.try_record(span(1)).unwrap();
    // The first poll queues the marker behind the span, before the worker runs.
    let mut flush = tokio_test::task::spawn(client.flush_with_deadline(Duration::from_secs(3600)));
    assert_pending!(flush.poll());
    settle().await;
    assert_eq!(client.stats().queued(), 1, "the worker holds the span");
    let report = client.shutdown(Duration::from_millis(100)).await;
    assert!(report.timed_out());
    settle().await;
    assert!(flush.is_woken(), "the flush was answered with the shutdown");
    let err = assert_ready!(flush.poll()).expect_err("the backend shut down first");
    assert!(
        !err.is_timed_out(),
        "answered at the abort, not at the flush's deadline: {err}"
    );
    assert_eq!(report.accepted(), report.sent() + report.dropped_total());
}

#[tokio::test(flavor = "current_thread")]
async fn a_user_stream_of_ticks_flushes_buffered_spans_and_stops_at_shutdown() {
    let (_dir, path) = socket_path();
    let mut receiver = ssf_receiver::Receiver::bind(&unix_url(&path))
        .await
        .unwrap();
    let (tick, mut ticks) = tokio::sync::mpsc::channel::<&'static str>(1);
    let client = Client::from_address(receiver.local_addr().clone())
        .buffered(true)
        .flush_on(futures_util::stream::poll_fn(move |cx| ticks.poll_recv(cx)))
        .build()
        .unwrap();
    for id in 1..=3 {
        client.try_record(span(id)).unwrap();
    }
    // Buffered and not flushed: nothing arrives.
    let early = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await;
    assert!(early.is_err(), "{early:?}");
    tick.send("flush").await.unwrap();
    let got = receiver.collect(3, PATIENCE).await.unwrap();
    assert_ids(&got, 1..=3);
    // The flush is counted once it is done.
    let counted = tokio::time::timeout(PATIENCE, async {
        while client.stats().flushes_ok() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "{:?}", client.stats());
    let report = client.shutdown(Duration::from_secs(5)).await;
    assert_report_settled(&report);
    // Shutting down dropped the stream.
    tokio::time::timeout(PATIENCE, tick.closed())
        .await
        .expect("the tick stream is dropped at shutdown");
}
