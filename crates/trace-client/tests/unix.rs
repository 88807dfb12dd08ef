//! Unix stream sockets: framing, buffering, flush, reconnects (veneur's acceptance tests).
#![cfg(unix)]

mod support;

use std::time::Duration;

use ssf_codec::SsfCodec;
use ssf_proto::Scope;
use ssf_receiver::Receiver;
use support::*;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use trace_client::{Client, DropReason};

#[tokio::test]
async fn capacity_four_server_reads_four_framed_spans() {
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let client = Client::builder(unix_url(&path))
        .capacity(4)
        .build()
        .unwrap();
    let mut receipts = Vec::new();
    for id in 1..=4 {
        let mut s = span(id);
        loop {
            match client.record_with_receipt(s) {
                Ok(r) => break receipts.push(r),
                Err(e) if e.is_full() => {
                    s = e.into_span();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let mut frames = Vec::new();
    // With 8 backends the spans may come over several connections.
    let mut got = Vec::new();
    while got.len() < 4 {
        let (conn, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .unwrap()
            .unwrap();
        frames.push(FramedRead::new(conn, SsfCodec::new()));
        let last = frames.last_mut().unwrap();
        got.extend(read_spans(last, 1).await);
        // Anything else already on this connection.
        while let Ok(Some(Ok(Ok(s)))) = tokio::time::timeout(
            Duration::from_millis(50),
            futures_util::StreamExt::next(last),
        )
        .await
        {
            got.push(s);
        }
    }
    for r in receipts {
        r.await.expect("delivered");
    }
    assert_eq!(ids(&got), [1, 2, 3, 4]);
    assert_eq!(got.iter().find(|s| s.id == 2).unwrap(), &span(2));
    client.flush().await.unwrap();
    assert_settled(&client.stats());
    assert_eq!(client.stats().sent(), 4);
}

#[tokio::test]
async fn buffered_one_backend_sends_nothing_before_flush() {
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .buffered(true)
        .build()
        .unwrap();
    let mut receipts = Vec::new();
    for id in 1..=4 {
        receipts.push(client.record_with_receipt(span(id)).unwrap());
    }
    for r in receipts {
        r.await.expect("in the buffer");
    }
    // The receipts resolved: every span is in the buffer, none on the wire.
    let stats = client.stats();
    assert_eq!(
        (stats.sent(), stats.queued(), stats.bytes_written()),
        (0, 4, 0)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), listener.accept())
            .await
            .is_err(),
        "the client connected before any flush"
    );
    client.flush().await.expect("flush");
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    let got = read_spans(&mut frames, 4).await;
    assert_eq!(ids(&got), [1, 2, 3, 4], "in order, one connection");
    let stats = client.stats();
    assert_eq!(
        (stats.sent(), stats.queued(), stats.flushes_ok()),
        (4, 0, 1)
    );
    assert!(stats.bytes_written() > 0);
}

/// The server reads one span per connection, then closes it and reports that it did.
fn one_span_per_connection_server(
    listener: tokio::net::UnixListener,
) -> (
    tokio::sync::mpsc::Receiver<ssf_proto::SsfSpan>,
    tokio::sync::mpsc::Receiver<()>,
) {
    let (span_tx, span_rx) = tokio::sync::mpsc::channel(16);
    let (closed_tx, closed_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let mut frames = FramedRead::new(conn, SsfCodec::new());
            let got = read_spans(&mut frames, 1).await;
            drop(frames);
            let _ = span_tx.send(got.into_iter().next().unwrap()).await;
            let _ = closed_tx.send(()).await;
        }
    });
    (span_rx, closed_rx)
}

#[tokio::test]
async fn reconnects_after_the_server_closes_the_connection() {
    let (_dir, path) = socket_path();
    let (mut spans, mut closed) = one_span_per_connection_server(unix_listener(&path));
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .build()
        .unwrap();

    client
        .record_with_receipt(span(1))
        .unwrap()
        .await
        .expect("span 1 written");
    assert_eq!(spans.recv().await.unwrap().id, 1);
    closed.recv().await.unwrap();

    let err = client
        .record_with_receipt(span(2))
        .unwrap()
        .await
        .expect_err("span 2 goes to a closed connection");
    assert_eq!(err.reason(), DropReason::WriteError);
    assert!(err.io_error().is_some());

    client
        .record_with_receipt(span(3))
        .unwrap()
        .await
        .expect("span 3 after reconnecting");
    assert_eq!(spans.recv().await.unwrap().id, 3);

    let stats = client.stats();
    assert_eq!(stats.dropped().write_error(), 1);
    assert_eq!(stats.reconnects(), 1);
    assert_eq!((stats.sent(), stats.accepted()), (2, 3));
    assert_settled(&stats);
}

#[tokio::test]
async fn buffered_reconnect_reports_a_flush_error_naming_the_backend() {
    let (_dir, path) = socket_path();
    let (mut spans, mut closed) = one_span_per_connection_server(unix_listener(&path));
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .buffered(true)
        .build()
        .unwrap();

    client.try_record(span(1)).unwrap();
    client.flush().await.expect("first flush");
    assert_eq!(spans.recv().await.unwrap().id, 1);
    closed.recv().await.unwrap();

    client
        .record_with_receipt(span(2))
        .unwrap()
        .await
        .expect("span 2 is buffered");
    let err = client.flush().await.expect_err("the connection is gone");
    assert!(!err.is_closed());
    assert_eq!(err.failures().len(), 1, "{err}");
    assert_eq!(err.failures()[0].index(), 0);
    assert!(err.to_string().contains("backend 0: "), "{err}");

    client.try_record(span(3)).unwrap();
    tokio::time::timeout(Duration::from_secs(4), client.flush())
        .await
        .expect("flush in time")
        .expect("flush after reconnecting");
    assert_eq!(spans.recv().await.unwrap().id, 3);

    let stats = client.stats();
    assert_eq!((stats.flushes_ok(), stats.flushes_failed()), (2, 1));
    assert_eq!(stats.dropped().write_error(), 1);
    assert_settled(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_connect_sequence_gives_up_at_the_connect_timeout_then_spans_fail_fast_until_a_retry_connects()
 {
    let (_dir, path) = socket_path(); // nothing listens yet
    let timeout = Duration::from_secs(10);
    let max_backoff = Duration::from_millis(500);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .connect_timeout(timeout)
        .max_backoff(max_backoff)
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = client
        .record_with_receipt(span(1))
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), DropReason::ConnectTimeout);
    // Paused clock: exactly the connect timeout, waiting between attempts (no spinning:
    // the clock only moves when every task sleeps).
    assert_eq!(start.elapsed(), timeout);

    // The backend is down: the next spans are dropped at once, without a new sequence.
    let listener = unix_listener(&path);
    let start = tokio::time::Instant::now();
    for id in 2..5 {
        let err = client
            .record_with_receipt(span(id))
            .unwrap()
            .await
            .unwrap_err();
        assert_eq!(err.reason(), DropReason::ConnectTimeout);
        assert_eq!(
            err.io_error().unwrap().kind(),
            std::io::ErrorKind::NotConnected
        );
    }
    assert_eq!(start.elapsed(), Duration::ZERO);

    // At the backoff time the next span tries once, and connects.
    tokio::time::sleep(max_backoff).await;
    client
        .record_with_receipt(span(5))
        .unwrap()
        .await
        .expect("connected");
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    assert_eq!(read_spans(&mut frames, 1).await[0].id, 5);
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.dropped().connect_timeout()), (1, 4));
    assert_settled(&stats);
}

#[tokio::test]
async fn normalize_samples_changes_every_sample() {
    let (_dir, path) = socket_path();
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .normalize_samples(|s| {
            s.scope = Scope::Global as i32;
            s.tags.insert("woo_yay".into(), "blort".into());
        })
        .build()
        .unwrap();
    let mut s = span(1);
    s.metrics.push(local_sample());
    client.try_record(s).unwrap();
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].metrics.len(), 2);
    for m in &got[0].metrics {
        assert_eq!(m.scope, Scope::Global as i32, "{m:?}");
        assert_eq!(m.tags.get("woo_yay").map(String::as_str), Some("blort"));
    }
}

#[tokio::test]
async fn a_panicking_normaliser_is_contained_and_counted() {
    let (backend, mut spans) = trace_client::testing::ChannelBackend::pair(8);
    let client = Client::with_backend(backend)
        .capacity(8)
        .normalize_samples(|_| panic!("normaliser bug"))
        .build()
        .unwrap();
    client.try_record(span(1)).unwrap();
    assert_eq!(spans.recv().await.unwrap().id, 1);
    assert_eq!(client.stats().panics(), 1);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_socket() {
    let name = format!("trace-client-test-{}", std::process::id());
    let mut receiver = Receiver::bind(&format!("unix:@{name}")).await.unwrap();
    let client = Client::builder(format!("unix:@{name}"))
        .parallel_backends(1)
        .build()
        .unwrap();
    client.try_record(span(7)).unwrap();
    client.flush().await.unwrap();
    assert_eq!(receiver.collect(1, PATIENCE).await.unwrap()[0].id, 7);
}

#[tokio::test]
async fn oversize_frames_are_dropped_not_sent() {
    let (_dir, path) = socket_path();
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .build()
        .unwrap();
    let huge = big_span(1, ssf_codec::MAX_FRAME_LENGTH + 1);
    let err = client.record_with_receipt(huge).unwrap().await.unwrap_err();
    assert_eq!(err.reason(), DropReason::Oversize);
    client.try_record(span(2)).unwrap();
    client.flush().await.unwrap();
    assert_eq!(receiver.collect(1, PATIENCE).await.unwrap()[0].id, 2);
    let stats = client.stats();
    assert_eq!((stats.dropped().oversize(), stats.sent()), (1, 1));
    assert_settled(&stats);
}

#[tokio::test]
async fn buffered_spans_are_written_when_the_buffer_fills() {
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .buffer_size(1024)
        .capacity(256)
        .build()
        .unwrap();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let mut frames = FramedRead::new(conn, SsfCodec::new());
        let _ = done_tx.send(read_spans(&mut frames, 20).await);
    });
    for id in 0..100 {
        record_retrying(&client, span(id)).await;
    }
    // No flush: about 100 spans of ~60 bytes overflow a 1 KiB buffer several times.
    let got = tokio::time::timeout(PATIENCE, done_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), (0..20).collect::<Vec<_>>());
    let stats = client.stats();
    assert!(stats.sent() >= 20 && stats.queued() > 0, "{stats:?}");
}

#[tokio::test]
async fn a_batch_is_written_together_and_an_oversize_span_in_it_is_left_out() {
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let client = Client::builder(unix_url(&path))
        .parallel_backends(1)
        .capacity(64)
        .build()
        .unwrap();
    // A current-thread runtime: the backend runs only once the test waits, and then
    // takes every span recorded so far as one batch.
    let receipts: Vec<_> = (0..30)
        .map(|id| {
            let s = if id == 11 {
                big_span(id, ssf_codec::MAX_FRAME_LENGTH + 1)
            } else {
                span(id)
            };
            client.record_with_receipt(s).unwrap()
        })
        .collect();
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    let got = read_spans(&mut frames, 29).await;
    // In order, on one connection, without the oversize span.
    let order: Vec<i64> = got.iter().map(|s| s.id).collect();
    assert_eq!(order, (0..30).filter(|id| *id != 11).collect::<Vec<_>>());
    for (id, r) in receipts.into_iter().enumerate() {
        let result = r.await;
        if id == 11 {
            assert_eq!(result.unwrap_err().reason(), DropReason::Oversize);
        } else {
            result.expect("written");
        }
    }
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.dropped().oversize()), (29, 1));
    assert_settled(&stats);
}

#[tokio::test]
async fn spans_around_the_slot_size_and_far_over_it_arrive_whole() {
    // A span is encoded straight into its queue slot when its frame fits (360 bytes),
    // else on the heap: frames of 352 to 368 bytes, and one of about 5 KB, each recorded
    // in place (`try_record_ref`) and moved (`try_record`), arrive as they were.
    let (_dir, path) = socket_path();
    let listener = unix_listener(&path);
    let client = Client::builder(unix_url(&path))
        .capacity(128)
        .parallel_backends(1)
        .build()
        .unwrap();
    let frame_len = |s: &ssf_proto::SsfSpan| 5 + ssf_proto::wire::encoded_len(s);
    let mut sent = Vec::new();
    for extra in (0..400).chain([5000]) {
        let mut s = big_span(1, extra);
        if (352..=368).contains(&frame_len(&s)) || extra == 5000 {
            // Ids under 128 take one byte, as 1 does.
            s.id = sent.len() as i64 + 1;
            sent.push(s);
        }
    }
    assert!(sent.iter().any(|s| frame_len(s) == 360));
    assert!(sent.iter().any(|s| frame_len(s) == 361));
    let n = sent.len();
    for s in &sent {
        client.try_record_ref(s).unwrap();
    }
    for s in &sent {
        let mut moved = s.clone();
        moved.id += 100;
        client.try_record(moved).unwrap();
    }
    client.flush().await.expect("flush");
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    let got = read_spans(&mut frames, 2 * n).await;
    for (i, s) in sent.iter().enumerate() {
        assert_eq!(&got[i], s, "in place, frame of {} bytes", frame_len(s));
        let mut moved = s.clone();
        moved.id += 100;
        assert_eq!(got[n + i], moved, "moved, frame of {} bytes", frame_len(s));
    }
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.dropped_total()), (2 * n as u64, 0));
    assert_settled(&stats);
}
