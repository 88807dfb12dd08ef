//! The UDP listener over real loopback sockets.
#![cfg(unix)]

mod support;

use std::time::Duration;

use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{Scope, SsfSpan, Status, wire};
use ssf_receiver::{Receiver, RejectReason};
use support::*;

#[tokio::test]
async fn many_spans_arrive_in_order_and_are_counted() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    assert!(receiver.local_addr().is_udp());
    assert_ne!(receiver.local_addr().host_port().unwrap().1, 0);
    let sock = udp_sender(&receiver).await;
    let mut got = Vec::new();
    let mut bytes = 0;
    // Batches small enough for the kernel's default receive buffer.
    for batch in 0..40 {
        for i in 0..50 {
            let s = span(batch * 50 + i + 1);
            bytes += wire::encoded_len(&s) as u64;
            send_span(&sock, &s).await;
        }
        got.extend(receiver.collect(50, WAIT).await.unwrap());
    }
    assert_eq!(ids(&got), (1..=2000).collect::<Vec<_>>());
    assert_eq!(got[41], span(42));
    let stats = receiver.shutdown().await;
    assert_eq!(stats.spans, 2000);
    assert_eq!(stats.datagrams, 2000);
    assert_eq!(stats.bytes, bytes);
    assert_eq!(
        (
            stats.empty_datagrams,
            stats.undecodable_datagrams,
            stats.truncated_datagrams
        ),
        (0, 0, 0)
    );
    assert_eq!((stats.frames, stats.connections_accepted), (0, 0));
}

#[tokio::test]
async fn garbage_empty_and_oversize_datagrams_are_dropped_and_counted() {
    let (seen, hook) = recorder();
    let mut receiver = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .max_datagram_size(200)
        .on_reject(hook)
        .bind()
        .await
        .unwrap();
    let sock = udp_sender(&receiver).await;
    let mut big = span(99);
    big.service = "x".repeat(300);
    let big_bytes = wire::encode_to_vec(&big);
    let mut just_fits = span(5);
    just_fits.name.clear();
    // The name field costs a tag byte, two length bytes and the name.
    just_fits.name = "n".repeat(200 - 3 - wire::encoded_len(&just_fits));
    assert_eq!(wire::encoded_len(&just_fits), 200);

    send_span(&sock, &span(1)).await;
    sock.send(&[0xff, 0xff, 0xff]).await.unwrap(); // not protobuf
    send_span(&sock, &span(2)).await;
    sock.send(&[]).await.unwrap(); // empty
    send_span(&sock, &span(3)).await;
    sock.send(&big_bytes).await.unwrap(); // over the limit
    sock.send(&[0x0a, 0x05, b'a']).await.unwrap(); // truncated field
    send_span(&sock, &span(4)).await;
    send_span(&sock, &just_fits).await; // exactly at the limit

    let got = receiver.collect(5, WAIT).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
    assert_eq!(got[4], just_fits);
    receiver.handle().shutdown();
    assert_eq!(receiver.recv().await, None);
    let stats = receiver.stats();
    assert_eq!(stats.datagrams, 9);
    assert_eq!(stats.spans, 5);
    assert_eq!(stats.empty_datagrams, 1);
    assert_eq!(stats.undecodable_datagrams, 2);
    assert_eq!(stats.truncated_datagrams, 1);

    let seen = seen.lock().unwrap();
    let reasons: Vec<_> = seen.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::UndecodableDatagram,
            RejectReason::EmptyDatagram,
            RejectReason::TruncatedDatagram,
            RejectReason::UndecodableDatagram,
        ]
    );
    let me = sock.local_addr().unwrap().to_string();
    assert!(seen.iter().all(|r| r.peer == me), "{seen:?}");
    assert!(seen[2].detail.contains("200 bytes"), "{}", seen[2].detail);
    assert!(seen[0].detail.contains("3 bytes"), "{}", seen[0].detail);
}

#[tokio::test]
async fn spec_vectors_decode_as_datagrams() {
    let mut receiver = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .normalize(false)
        .bind()
        .await
        .unwrap();
    let sock = udp_sender(&receiver).await;
    for v in [
        "080110011802200328a84630a946",
        "10ffffffffffffffffff0118053801420373766352171201631d0000803f3d0000803f42060a01611201625002520d08031201732a01783d0000803f520d08041202737430013d0000803f5a060a016b12017660016a026f707007",
        "1801288080a8b1e39fe7cb17",
    ] {
        sock.send(&hex(v)).await.unwrap();
    }
    let got = receiver.collect(3, WAIT).await.unwrap();
    assert_eq!(got, spec_vector_spans());
}

/// The spans of the specification's §1.5 vectors, in order.
fn spec_vector_spans() -> Vec<SsfSpan> {
    vec![
        SsfSpan {
            version: 1,
            trace_id: 1,
            id: 2,
            parent_id: 3,
            start_timestamp: 9000,
            end_timestamp: 9001,
            ..Default::default()
        },
        SsfSpan {
            trace_id: -1,
            id: 5,
            error: true,
            service: "svc".into(),
            metrics: vec![
                sample::count("c", 1.0)
                    .with_tag("a", "b")
                    .with_scope(Scope::Global),
                sample::set("s", "x"),
                sample::status("st", Status::Warning),
            ],
            tags: sample::tags([("k", "v")]),
            indicator: true,
            name: "op".into(),
            root_start_timestamp: 7,
            ..Default::default()
        },
        SsfSpan {
            id: 1,
            start_timestamp: 1_700_000_000_000_000_000,
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn golden_veneur_datagrams_decode_like_veneur() {
    let (seen, hook) = recorder();
    let mut receiver = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .on_reject(hook)
        .bind()
        .await
        .unwrap();
    let sock = udp_sender(&receiver).await;
    let text = std::fs::read_to_string(golden_dir().join("datagrams.hex")).unwrap();
    let expected = golden_spans();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len());
    let mut want = Vec::new();
    let mut got = Vec::new();
    let mut empty = 0;
    // Batches small enough for the kernel's default receive buffer.
    for (lines, spans) in lines.chunks(20).zip(expected.chunks(20)) {
        let mut batch = 0;
        for (line, span) in lines.iter().zip(spans) {
            if line.is_empty() {
                // The all-default span: veneur's server rejects the empty datagram.
                assert_eq!(span, &SsfSpan::default());
                sock.send(&[]).await.unwrap();
                empty += 1;
            } else {
                sock.send(&hex(line)).await.unwrap();
                want.push(span.clone());
                batch += 1;
            }
        }
        got.extend(receiver.collect(batch, WAIT).await.unwrap());
    }
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "span {i}");
    }
    assert_eq!(empty, 1);
    let stats = receiver.stats();
    assert_eq!(stats.empty_datagrams, 1);
    assert_eq!(stats.spans, want.len() as u64);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn random_datagrams_never_stop_the_receiver() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let sock = udp_sender(&receiver).await;
    let mut sent = 0u64;
    for _ in 0..20 {
        for _ in 0..25 {
            let garbage: Vec<u8> = (0..(next() % 300)).map(|_| next() as u8).collect();
            sock.send(&garbage).await.unwrap();
            sent += 1;
        }
        // Some garbage decodes as a span (protobuf is permissive); take those.
        receiver.collect_until_idle(Duration::from_millis(20)).await;
    }
    send_span(&sock, &span(1)).await;
    receiver.handle().shutdown();
    let mut last = None;
    while let Some(s) = receiver.recv().await {
        last = Some(s);
    }
    assert_eq!(last, Some(span(1)));
    let stats = receiver.stats();
    assert_eq!(stats.datagrams, sent + 1);
    assert_eq!(
        stats.spans + stats.empty_datagrams + stats.undecodable_datagrams,
        sent + 1
    );
}

#[tokio::test]
async fn spans_are_normalised_unless_disabled() {
    let mut legacy = SsfSpan {
        id: 1,
        ..Default::default()
    };
    legacy.tags.insert("name".into(), "from-tag".into());
    legacy.tags.insert("k".into(), "v".into());
    let mut c = sample::count("c", 1.0);
    c.sample_rate = 0.0;
    legacy.metrics.push(c);

    for normalize in [true, false] {
        let mut receiver = Receiver::builder()
            .listen("udp://127.0.0.1:0")
            .unwrap()
            .normalize(normalize)
            .bind()
            .await
            .unwrap();
        let sock = udp_sender(&receiver).await;
        send_span(&sock, &legacy).await;
        let got = receiver.recv().await.unwrap();
        if normalize {
            assert_eq!(got.name, "from-tag");
            assert_eq!(got.tags.len(), 1);
            assert_eq!(got.metrics[0].sample_rate, 1.0);
        } else {
            assert_eq!(got, legacy);
        }
    }
}

#[tokio::test]
async fn handle_shutdown_delivers_what_is_queued_then_ends() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let handle = receiver.handle();
    let sock = udp_sender(&receiver).await;
    for i in 1..=20 {
        send_span(&sock, &span(i)).await;
    }
    assert!(!handle.is_shutdown());
    handle.shutdown();
    assert!(handle.is_shutdown());
    let err = receiver.collect(21, WAIT).await.unwrap_err();
    assert!(err.closed);
    assert_eq!(err.expected, 21);
    assert_eq!(ids(&err.spans), (1..=20).collect::<Vec<_>>());
    assert_eq!(
        err.to_string(),
        "received 20 of 21 expected spans before the receiver shut down"
    );
    assert_eq!(handle.stats().spans, 20);
    assert_eq!(receiver.recv().await, None);
    assert_eq!(receiver.try_recv(), None);
}

#[tokio::test]
async fn collect_times_out_with_the_partial_spans() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let err = receiver
        .collect(1, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(!err.closed);
    assert!(err.spans.is_empty());
    assert_eq!(
        err.to_string(),
        "received 0 of 1 expected spans before the time limit"
    );
    // A timeout too large for the clock waits as long as needed.
    let sock = udp_sender(&receiver).await;
    send_span(&sock, &span(1)).await;
    let got = receiver.collect(1, Duration::MAX).await.unwrap();
    assert_eq!(ids(&got), [1]);
    assert_eq!(receiver.collect(0, Duration::ZERO).await.unwrap(), []);
}

#[tokio::test]
async fn collect_until_idle_and_try_recv() {
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    assert_eq!(receiver.try_recv(), None);
    let sock = udp_sender(&receiver).await;
    for i in 1..=5 {
        send_span(&sock, &span(i)).await;
    }
    let got = receiver
        .collect_until_idle(Duration::from_millis(500))
        .await;
    assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
    send_span(&sock, &span(6)).await;
    eventually("a queued span", || receiver.stats().spans == 6).await;
    assert_eq!(receiver.try_recv().map(|s| s.id), Some(6));
}

#[tokio::test]
async fn receiver_is_a_stream() {
    use futures_util::StreamExt;
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let sock = udp_sender(&receiver).await;
    for i in 1..=3 {
        send_span(&sock, &span(i)).await;
    }
    let got: Vec<_> = (&mut receiver).take(3).collect().await;
    assert_eq!(ids(&got), [1, 2, 3]);
    receiver.handle().shutdown();
    assert_eq!(receiver.next().await, None);
}

#[tokio::test]
async fn slow_consumer_applies_backpressure() {
    let mut receiver = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .capacity(2)
        .bind()
        .await
        .unwrap();
    let sock = udp_sender(&receiver).await;
    for i in 1..=10 {
        send_span(&sock, &span(i)).await;
    }
    // The reader holds at most one span while the channel is full.
    eventually("a full channel", || receiver.stats().spans == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(receiver.stats().spans, 2);
    assert!(receiver.stats().datagrams <= 3);
    let got = receiver.collect(10, WAIT).await.unwrap();
    assert_eq!(ids(&got), (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn udp4_and_several_listeners_report_their_ports_in_order() {
    let receiver = Receiver::builder()
        .listen("udp4://127.0.0.1:0")
        .unwrap()
        .listen("tcp://127.0.0.1:0")
        .unwrap()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let addrs = receiver.local_addrs();
    assert_eq!(addrs.len(), 3);
    assert!(addrs[0].is_udp() && addrs[1].is_tcp() && addrs[2].is_udp());
    for a in addrs {
        assert!(
            a.to_string()
                .starts_with(&format!("{}://127.0.0.1:", a.network()))
        );
        assert_ne!(a.host_port().unwrap().1, 0);
    }
    assert_eq!(receiver.local_addr(), &addrs[0]);
    let dbg = format!("{receiver:?}");
    assert!(
        dbg.contains("Receiver") && dbg.contains("local_addrs"),
        "{dbg}"
    );
}

#[tokio::test]
async fn udp6_loopback_when_available() {
    // Some sandboxes have no IPv6. The receiver may fail to bind only where the system
    // cannot bind [::1] either; the test then says it skipped the rest.
    let mut receiver = match Receiver::bind("udp6://[::1]:0").await {
        Ok(r) => r,
        Err(e) => {
            assert!(
                tokio::net::UdpSocket::bind("[::1]:0").await.is_err(),
                "the receiver failed to bind [::1] although the system can: {e}"
            );
            eprintln!("skipped: no IPv6 loopback here ({e})");
            return;
        }
    };
    assert!(
        receiver
            .local_addr()
            .to_string()
            .starts_with("udp://[::1]:")
    );
    let (_, port) = receiver.local_addr().host_port().unwrap();
    let sock = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    sock.send_to(&wire::encode_to_vec(&span(1)), ("::1", port))
        .await
        .unwrap();
    assert_eq!(receiver.recv().await.unwrap().id, 1);
}
