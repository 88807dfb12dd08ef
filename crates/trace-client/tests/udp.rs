//! UDP: one unframed span per datagram, receipts, size limit.

mod support;

use ssf_receiver::Receiver;
use support::*;
use trace_client::{Client, DropReason};

#[tokio::test]
async fn four_spans_with_receipts_arrive() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .capacity(4)
        .build()
        .unwrap();
    let receipts: Vec<_> = (1..=4)
        .map(|id| client.record_with_receipt(span(id)).unwrap())
        .collect();
    for r in receipts {
        r.await.expect("sent");
    }
    let got = receiver.collect(4, PATIENCE).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4]);
    assert_eq!(got.iter().find(|s| s.id == 3).unwrap(), &span(3));
    let stats = client.stats();
    assert_eq!((stats.accepted(), stats.sent()), (4, 4));
    assert_eq!(receiver.stats().datagrams, 4);
}

#[tokio::test]
async fn receipts_resolve_when_the_listener_is_gone() {
    let receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().clone();
    receiver.shutdown().await;
    let client = Client::from_address(addr).capacity(4).build().unwrap();
    let receipts: Vec<_> = (1..=4)
        .map(|id| client.record_with_receipt(span(id)).unwrap())
        .collect();
    for r in receipts {
        // Linux may report an earlier datagram's ICMP "port unreachable"; either way the
        // receipt resolves.
        if let Err(e) = r.await {
            assert_eq!(e.reason(), DropReason::WriteError);
        }
    }
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out());
    assert_report_settled(&report);
    assert_eq!(report.accepted(), 4);
}

#[tokio::test]
async fn oversize_spans_are_dropped_never_truncated() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .max_datagram_size(512)
        .parallel_backends(1)
        .build()
        .unwrap();
    let err = client
        .record_with_receipt(big_span(1, 600))
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), DropReason::Oversize);
    let fits = big_span(2, 300);
    client
        .record_with_receipt(fits.clone())
        .unwrap()
        .await
        .unwrap();
    let got = receiver.collect(1, PATIENCE).await.unwrap();
    assert_eq!(got[0], fits);
    let stats = client.stats();
    assert_eq!((stats.sent(), stats.dropped().oversize()), (1, 1));
    assert_eq!(receiver.stats().datagrams, 1, "nothing truncated was sent");
}

#[test]
fn udp_shutdown_delivers_everything_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(deliver_all(500));
}

#[test]
fn udp_shutdown_delivers_everything_multi_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(deliver_all(500));
}

async fn deliver_all(n: i64) {
    // UDP has no flow control: a receiver that falls behind loses datagrams in the
    // kernel. The spans go in bursts of 50 (well within a socket buffer), each sent once
    // the receiver has read the previous ones; the last burst is left to shutdown.
    const BURST: i64 = 50;
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let handle = receiver.handle();
    let client = Client::from_address(receiver.local_addr().clone())
        .build()
        .unwrap();
    let collector = tokio::spawn(async move { receiver.collect(n as usize, PATIENCE).await });
    for id in 0..n {
        if id > 0 && id % BURST == 0 {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            while handle.stats().datagrams < id as u64 {
                assert!(tokio::time::Instant::now() < deadline, "datagrams lost");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        client.record(span(id)).await.unwrap();
    }
    let report = client.shutdown(PATIENCE).await;
    assert!(!report.timed_out());
    assert_eq!(report.sent(), n as u64);
    assert_report_settled(&report);
    let got = collector.await.unwrap().expect("every datagram");
    assert_ids(&got, 0..n);
}

#[tokio::test]
async fn a_batch_of_datagrams_with_an_oversize_span_in_the_middle() {
    // A current-thread runtime: the backend runs only once the test waits, and then
    // takes every span as one batch, sent as one group; the oversize one is left out.
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .parallel_backends(1)
        .capacity(64)
        .max_datagram_size(1024)
        .build()
        .unwrap();
    let receipts: Vec<_> = (0..20)
        .map(|id| {
            let s = if id == 7 {
                big_span(id, 2000)
            } else {
                span(id)
            };
            client.record_with_receipt(s).unwrap()
        })
        .collect();
    for (id, r) in receipts.into_iter().enumerate() {
        match r.await {
            Ok(()) => assert_ne!(id, 7),
            Err(e) => {
                assert_eq!(id, 7);
                assert_eq!(e.reason(), DropReason::Oversize);
            }
        }
    }
    let got = receiver.collect(19, PATIENCE).await.unwrap();
    assert_ids(&got, (0..20).filter(|id| *id != 7));
    let report = client.shutdown(PATIENCE).await;
    assert_eq!((report.sent(), report.dropped().oversize()), (19, 1));
    assert_report_settled(&report);
}

/// A span type whose tags panic when they are read (user code run while encoding).
struct PanicsWhenEncoded;

impl ssf_proto::wire::SpanFields for PanicsWhenEncoded {
    type Sample = ssf_proto::SsfSample;

    fn trace_id(&self) -> i64 {
        7
    }
    fn id(&self) -> i64 {
        7
    }
    fn name(&self) -> &str {
        "panics"
    }
    fn samples(&self) -> &[ssf_proto::SsfSample] {
        &[]
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once_with(|| -> (&str, &str) { panic!("tags read") })
    }
}

#[tokio::test]
async fn a_span_whose_fields_panic_while_encoded_is_counted_dropped_and_the_queue_goes_on() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .capacity(4)
        .parallel_backends(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.try_record_fields(&PanicsWhenEncoded, |_| unreachable!("encoded in place"))
        }));
        assert!(panicked.is_err(), "the panic reaches the caller");
    }
    // The slots the panics left empty are passed by, and reused.
    for id in 1..=4 {
        record_retrying(&client, span(id)).await;
    }
    let got = receiver.collect(4, PATIENCE).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4]);
    let report = client.shutdown(PATIENCE).await;
    assert_report_settled(&report);
    assert_eq!(report.accepted(), 7);
    assert_eq!((report.sent(), report.dropped().panicked()), (4, 3));
}
