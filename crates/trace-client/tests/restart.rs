//! Streaming while the receiver dies and comes back: every span is accounted for, and
//! only what the kernel held for the dead receiver can be lost.
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use ssf_codec::SsfCodec;
use support::*;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use trace_client::{Client, DropReason, Receipt};

type Seen = Arc<Mutex<Vec<i64>>>;

/// Reads every connection until told to stop, then drops them all without reading on.
async fn abrupt_server(listener: UnixListener, seen: Seen, mut kill: watch::Receiver<bool>) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            _ = kill.changed() => break,
            Ok((conn, _)) = listener.accept() => {
                let seen = seen.clone();
                let mut kill = kill.clone();
                readers.spawn(async move {
                    let mut frames = FramedRead::new(conn, SsfCodec::new());
                    loop {
                        tokio::select! {
                            _ = kill.changed() => return,
                            item = frames.next() => match item {
                                Some(Ok(Ok(span))) => seen.lock().unwrap().push(span.id),
                                _ => return,
                            },
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    // Every connection is closed when its reader returns.
    while readers.join_next().await.is_some() {}
}

/// Reads every connection to its end (the client closing it); stops accepting when told.
async fn graceful_server(listener: UnixListener, seen: Seen, mut stop: watch::Receiver<bool>) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Ok((conn, _)) = listener.accept() => {
                let seen = seen.clone();
                readers.spawn(async move {
                    let mut frames = FramedRead::new(conn, SsfCodec::new());
                    let spans = read_to_end(&mut frames).await;
                    seen.lock().unwrap().extend(spans.iter().map(|s| s.id));
                });
            }
        }
    }
    while readers.join_next().await.is_some() {}
}

/// How many spans of `frame_len` bytes a dead receiver's sockets (and its readers' read
/// buffers) can have held, at most. The client does not set `SO_SNDBUF`, so a unix
/// stream connection holds at most the default send buffer's worth of unread data; the
/// receive default and a reader's buffer are added for good measure.
fn kernel_bound(connections: usize, frame_len: usize) -> usize {
    let read = |p: &str| -> usize {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4 << 20)
    };
    let per_conn = read("/proc/sys/net/core/wmem_default")
        + read("/proc/sys/net/core/rmem_default")
        + (64 << 10);
    connections * per_conn / frame_len
}

fn bind(path: &Path) -> UnixListener {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_restart_loses_only_what_the_kernel_held() {
    const N: i64 = 3000;
    const BACKENDS: usize = 2;
    let payload = 4096;
    let frame_len = ssf_codec::HEADER_LEN + ssf_proto::wire::encoded_len(&big_span(0, payload));

    let (_dir, path) = socket_path();
    let seen_a: Seen = Arc::default();
    let seen_b: Seen = Arc::default();
    let (kill_tx, kill_rx) = watch::channel(false);
    let server_a = tokio::spawn(abrupt_server(bind(&path), seen_a.clone(), kill_rx));

    let client = Client::builder(unix_url(&path))
        .parallel_backends(BACKENDS)
        .backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let next = Arc::new(AtomicI64::new(0));
    let producer = {
        let client = client.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let mut receipts: Vec<(i64, Receipt)> = Vec::with_capacity(N as usize);
            for id in 0..N {
                next.store(id, Ordering::SeqCst);
                let mut s = big_span(id, payload);
                loop {
                    match client.record_with_receipt(s) {
                        Ok(r) => break receipts.push((id, r)),
                        Err(e) if e.is_full() => {
                            s = e.into_span();
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            next.store(N, Ordering::SeqCst);
            receipts
        })
    };

    // Let receiver A get a good part of the stream, then kill it mid-stream.
    while seen_a.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill_tx.send(true).unwrap();
    server_a.await.unwrap();
    // Every span recorded from here on is written after A's connections were closed.
    let cut = next.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let server_b = tokio::spawn(graceful_server(bind(&path), seen_b.clone(), stop_rx));

    let receipts = producer.await.unwrap();
    let report = client.shutdown(PATIENCE).await;
    stop_tx.send(true).unwrap();
    server_b.await.unwrap();

    // Accounting is exact.
    assert!(!report.timed_out(), "{report:?}");
    assert_eq!(report.accepted(), N as u64);
    assert_report_settled(&report);

    let mut sent = BTreeSet::new();
    for (id, r) in receipts {
        match r.await {
            Ok(()) => {
                sent.insert(id);
            }
            Err(e) => assert!(
                matches!(
                    e.reason(),
                    DropReason::WriteError | DropReason::ConnectTimeout
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(
        sent.len() as u64,
        report.sent(),
        "receipts agree with the counters"
    );

    let a = seen_a.lock().unwrap().clone();
    let b = seen_b.lock().unwrap().clone();
    let received: BTreeSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(received.len(), a.len() + b.len(), "no span arrived twice");
    assert!(
        received.is_subset(&sent),
        "only spans counted as sent arrived"
    );
    assert!(!b.is_empty(), "the client reconnected to the new receiver");

    // What was sent but never read: only what A's socket held when it died.
    let lost: Vec<i64> = sent.difference(&received).copied().collect();
    assert!(
        lost.iter().all(|id| *id < cut),
        "a span recorded after A died was lost: {lost:?} (cut {cut})"
    );
    let bound = kernel_bound(BACKENDS, frame_len);
    assert!(lost.len() <= bound, "{} lost, bound {bound}", lost.len());
}
