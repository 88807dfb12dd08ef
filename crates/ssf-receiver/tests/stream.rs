//! The stream listeners (TCP and unix) over real loopback sockets; every test runs on both.
#![cfg(unix)]

mod support;

use std::time::Duration;

use ssf_proto::{SsfSpan, wire};
use ssf_receiver::{Receiver, RejectReason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until the peer closes the connection (end of input or an error such as a reset).
async fn closed_by_peer(conn: &mut Box<dyn Conn>) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open"),
        }
    }
}

#[tokio::test]
async fn many_spans_over_one_connection_with_backpressure() {
    for listen in streams() {
        let mut receiver = listen.builder().capacity(16).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = Vec::new();
        for i in 1..=2000 {
            bytes.extend(frame(&span(i)));
        }
        let total = bytes.len() as u64;
        let writer = tokio::spawn(async move {
            write(&mut conn, &bytes).await;
            conn
        });
        let got = receiver.collect(2000, WAIT).await.unwrap();
        assert_eq!(ids(&got), (1..=2000).collect::<Vec<_>>(), "{}", listen.url);
        assert_eq!(got[1999], span(2000));
        drop(writer.await.unwrap());
        eventually("the disconnect", || receiver.stats().disconnects == 1).await;
        let stats = receiver.shutdown().await;
        assert_eq!(stats.spans, 2000);
        assert_eq!(stats.frames, 2000);
        assert_eq!(stats.bytes, total);
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!((stats.framing_errors, stats.corrupt_frames), (0, 0));
        assert_eq!(stats.datagrams, 0);
    }
}

#[tokio::test]
async fn fifty_concurrent_connections() {
    for listen in streams() {
        let mut receiver = listen.builder().bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let mut writers = Vec::new();
        for c in 0..50i64 {
            let addr = addr.clone();
            writers.push(tokio::spawn(async move {
                let mut conn = connect(&addr).await;
                for i in 0..20 {
                    write(&mut conn, &frame(&span(c * 1000 + i))).await;
                    tokio::task::yield_now().await;
                }
            }));
        }
        let got = receiver.collect(1000, WAIT).await.unwrap();
        for w in writers {
            w.await.unwrap();
        }
        // Per connection, order is kept.
        for c in 0..50i64 {
            let mine: Vec<i64> = ids(&got).into_iter().filter(|id| id / 1000 == c).collect();
            assert_eq!(mine, (0..20).map(|i| c * 1000 + i).collect::<Vec<_>>());
        }
        eventually("every disconnect", || receiver.stats().disconnects == 50).await;
        let stats = receiver.shutdown().await;
        assert_eq!(stats.connections_accepted, 50);
        assert_eq!(stats.connections_rejected, 0);
        assert_eq!((stats.spans, stats.frames), (1000, 1000));
    }
}

#[tokio::test]
async fn frames_dribbled_byte_by_byte() {
    for listen in streams() {
        let mut receiver = listen.builder().bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = Vec::new();
        for i in 1..=3 {
            bytes.extend(frame(&span(i)));
        }
        bytes.extend(raw_frame(&[])); // a zero-length frame: the all-default span
        for b in &bytes {
            write(&mut conn, std::slice::from_ref(b)).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let got = receiver.collect(4, WAIT).await.unwrap();
        assert_eq!(got[..3], [span(1), span(2), span(3)]);
        assert_eq!(got[3], SsfSpan::default());
        drop(conn);
        eventually("the disconnect", || receiver.stats().disconnects == 1).await;
        assert_eq!(receiver.stats().framing_errors, 0);
    }
}

#[tokio::test]
async fn corrupt_bodies_are_skipped_and_reading_goes_on() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = frame(&span(1));
        bytes.extend(raw_frame(&[0xff, 0xff]));
        bytes.extend(frame(&span(2)));
        bytes.extend(raw_frame(&[0x0a, 0x09, b'x'])); // a string field cut short
        bytes.extend(frame(&span(3)));
        write(&mut conn, &bytes).await;
        let got = receiver.collect(3, WAIT).await.unwrap();
        assert_eq!(ids(&got), [1, 2, 3]);
        let stats = receiver.stats();
        assert_eq!((stats.frames, stats.corrupt_frames, stats.spans), (5, 2, 3));
        assert_eq!(stats.framing_errors, 0);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|r| r.reason == RejectReason::CorruptFrame));
        assert!(seen[0].detail.contains("2 bytes"), "{}", seen[0].detail);
        assert!(!seen[0].peer.is_empty());
        // Still open: another frame gets through.
        write(&mut conn, &frame(&span(4))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 4);
    }
}

#[tokio::test]
async fn framing_error_closes_only_that_connection() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let mut good = connect(receiver.local_addr()).await;
        let mut bad = connect(receiver.local_addr()).await;
        write(&mut good, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);

        let mut bytes = frame(&span(2));
        bytes.extend(b"foo"); // 'f' is not version 0
        bytes.extend(frame(&span(3))); // never read
        write(&mut bad, &bytes).await;
        assert_eq!(receiver.recv().await.unwrap().id, 2);
        closed_by_peer(&mut bad).await;
        eventually("the framing error", || receiver.stats().framing_errors == 1).await;

        write(&mut good, &frame(&span(4))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 4);
        assert_eq!(receiver.try_recv(), None);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].reason, RejectReason::Framing);
        assert!(
            seen[0].detail.contains("unexpected version number 102"),
            "{}",
            seen[0].detail
        );
        let stats = receiver.shutdown().await;
        assert_eq!(stats.spans, 3);
        assert_eq!(stats.disconnects, 0);
    }
}

#[tokio::test]
async fn length_over_the_limit_is_a_framing_error() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen
            .builder()
            .max_frame_length(100)
            .on_reject(hook)
            .bind()
            .await
            .unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut ok = span(1);
        ok.name = "n".repeat(100 - wire::encoded_len(&ok) + ok.name.len());
        assert_eq!(wire::encoded_len(&ok), 100);
        write(&mut conn, &frame(&ok)).await;
        assert_eq!(receiver.recv().await.unwrap(), ok);
        // Announce 101 bytes: refused before any body byte is awaited.
        write(&mut conn, &[0, 0, 0, 0, 101]).await;
        closed_by_peer(&mut conn).await;
        eventually("the framing error", || receiver.stats().framing_errors == 1).await;
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].detail.contains("length 101 is too large"),
            "{seen:?}"
        );

        // veneur's limit by default: 16 MiB + 1 is refused the same way.
        let mut receiver = listen_again(&listen).await;
        let mut conn = connect(receiver.local_addr()).await;
        write(&mut conn, &[0, 1, 0, 0, 1]).await;
        closed_by_peer(&mut conn).await;
        eventually("the framing error", || receiver.stats().framing_errors == 1).await;
        assert_eq!(receiver.try_recv(), None);
    }
}

/// A fresh default receiver on the same kind of transport.
async fn listen_again(listen: &Listen) -> Receiver {
    let url = if listen.path().is_some() {
        let p = listen.path().unwrap().with_extension("2.sock");
        format!("unix://{}", p.display())
    } else {
        listen.url.clone()
    };
    Receiver::bind(&url).await.unwrap()
}

#[tokio::test]
async fn unknown_version_and_eof_inside_a_frame() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let cases: [&[u8]; 4] = [
            &[1, 0, 0, 0, 2, 0x18, 1], // version 1
            &[0, 0, 0],                // header cut short
            &[0, 0, 0, 0, 4, 0x18],    // body cut short
            &[0],                      // a lone version byte
        ];
        for (i, case) in cases.iter().enumerate() {
            let mut conn = connect(receiver.local_addr()).await;
            write(&mut conn, case).await;
            // The receiver may already have hung up (version error).
            let _ = conn.shutdown().await;
            closed_by_peer(&mut conn).await;
            eventually("the framing error", || {
                receiver.stats().framing_errors == i as u64 + 1
            })
            .await;
        }
        let stats = receiver.stats();
        assert_eq!((stats.spans, stats.frames, stats.disconnects), (0, 0, 0));
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0].detail.contains("unexpected version number 1"));
        for r in &seen[1..] {
            assert!(r.detail.contains("input ended inside a frame"), "{r:?}");
        }
        assert!(
            seen[1].detail.contains("(3 bytes buffered)"),
            "{:?}",
            seen[1]
        );
        assert_eq!(receiver.try_recv(), None);
    }
}

#[tokio::test]
async fn spec_vector_as_a_frame() {
    for listen in streams() {
        let mut receiver = listen.builder().normalize(false).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        write(&mut conn, &hex("000000000e080110011802200328a84630a946")).await;
        let got = receiver.recv().await.unwrap();
        assert_eq!(
            got,
            SsfSpan {
                version: 1,
                trace_id: 1,
                id: 2,
                parent_id: 3,
                start_timestamp: 9000,
                end_timestamp: 9001,
                ..Default::default()
            }
        );
    }
}

#[tokio::test]
async fn random_bytes_never_stop_the_receiver() {
    // A deterministic xorshift generator: the same garbage on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for listen in streams() {
        let mut receiver = listen
            .builder()
            .max_frame_length(4096)
            .bind()
            .await
            .unwrap();
        let addr = receiver.local_addr().clone();
        for round in 0..40 {
            let mut garbage: Vec<u8> = (0..(next() % 600)).map(|_| next() as u8).collect();
            if round % 2 == 0 && !garbage.is_empty() {
                garbage[0] = 0; // get past the version byte now and then
            }
            let mut conn = connect(&addr).await;
            // The receiver may hang up half-way; that is fine.
            let _ = conn.write_all(&garbage).await;
            drop(conn);
        }
        // Whatever it made of that, a well-behaved client is still served.
        let mut conn = connect(&addr).await;
        write(&mut conn, &frame(&span(1))).await;
        let got = receiver
            .collect_until_idle(Duration::from_millis(300))
            .await;
        assert!(got.iter().any(|s| *s == span(1)), "{}", listen.url);
        let stats = receiver.shutdown().await;
        assert_eq!(stats.connections_accepted, 41);
        assert_eq!(stats.framing_errors + stats.disconnects, 40, "{stats:?}");
    }
}

#[tokio::test]
async fn other_spec_vectors_as_frames() {
    for listen in streams() {
        let mut receiver = listen.builder().normalize(false).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = Vec::new();
        for v in [
            "10ffffffffffffffffff0118053801420373766352171201631d0000803f3d0000803f42060a01611201625002520d08031201732a01783d0000803f520d08041202737430013d0000803f5a060a016b12017660016a026f707007",
            "1801288080a8b1e39fe7cb17",
        ] {
            bytes.extend(raw_frame(&hex(v)));
        }
        write(&mut conn, &bytes).await;
        let got = receiver.collect(2, WAIT).await.unwrap();
        assert_eq!(got[0].trace_id, -1);
        assert_eq!(got[0].service, "svc");
        assert_eq!(got[0].metrics.len(), 3);
        assert_eq!(got[0].tags["k"], "v");
        assert_eq!(
            (got[0].name.as_str(), got[0].root_start_timestamp),
            ("op", 7)
        );
        assert!(got[0].indicator && got[0].error);
        assert_eq!(
            got[1],
            SsfSpan {
                id: 1,
                start_timestamp: 1_700_000_000_000_000_000,
                ..Default::default()
            }
        );
    }
}

#[tokio::test]
async fn golden_veneur_stream_decodes_like_veneur() {
    let stream = std::fs::read(golden_dir().join("stream.bin")).unwrap();
    let expected = golden_spans();
    for listen in streams() {
        let mut receiver = listen.builder().bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let bytes = stream.clone();
        let writer = tokio::spawn(async move {
            write(&mut conn, &bytes).await;
        });
        let got = receiver.collect(expected.len(), WAIT).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), 203);
        for (i, (g, w)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, w, "span {i} over {}", listen.url);
        }
        eventually("the disconnect", || receiver.stats().disconnects == 1).await;
        let stats = receiver.shutdown().await;
        assert_eq!(stats.frames, 203);
        assert_eq!(stats.bytes, stream.len() as u64);
        assert_eq!((stats.corrupt_frames, stats.framing_errors), (0, 0));
    }
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_counted() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen
            .builder()
            .max_connections(2)
            .on_reject(hook)
            .bind()
            .await
            .unwrap();
        let addr = receiver.local_addr().clone();
        let mut a = connect(&addr).await;
        let mut b = connect(&addr).await;
        write(&mut a, &frame(&span(1))).await;
        write(&mut b, &frame(&span(2))).await;
        let mut got = ids(&receiver.collect(2, WAIT).await.unwrap());
        got.sort_unstable();
        assert_eq!(got, [1, 2]);

        let mut c = connect(&addr).await;
        closed_by_peer(&mut c).await;
        assert_eq!(receiver.stats().connections_rejected, 1);
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].reason, RejectReason::ConnectionLimit);
        }

        // Once one closes, a new connection is served.
        drop(a);
        eventually("the disconnect", || receiver.stats().disconnects == 1).await;
        let mut d = connect(&addr).await;
        write(&mut d, &frame(&span(4))).await;
        write(&mut b, &frame(&span(3))).await;
        let mut got = ids(&receiver.collect(2, WAIT).await.unwrap());
        got.sort_unstable();
        assert_eq!(got, [3, 4]);
        let stats = receiver.shutdown().await;
        assert_eq!(
            (stats.connections_accepted, stats.connections_rejected),
            (3, 1)
        );
    }
}

#[tokio::test]
async fn handle_shutdown_takes_buffered_frames_then_ends() {
    for listen in streams() {
        let mut receiver = listen.builder().capacity(4).bind().await.unwrap();
        let handle = receiver.handle();
        let mut conn = connect(receiver.local_addr()).await;
        write(&mut conn, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);
        // More than the channel holds, all written before shutdown is asked.
        let mut bytes = Vec::new();
        for i in 2..=30 {
            bytes.extend(frame(&span(i)));
        }
        write(&mut conn, &bytes).await;
        handle.shutdown();
        let mut got = Vec::new();
        while let Some(s) = tokio::time::timeout(WAIT, receiver.recv()).await.unwrap() {
            got.push(s);
        }
        assert_eq!(ids(&got), (2..=30).collect::<Vec<_>>(), "{}", listen.url);
        closed_by_peer(&mut conn).await;
        if let Some(path) = listen.path() {
            assert!(!path.exists(), "socket file left behind");
        }
        assert_eq!(handle.stats().spans, 30);
    }
}

#[tokio::test]
async fn dropping_the_receiver_closes_connections() {
    for listen in streams() {
        let mut receiver = listen.builder().bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        write(&mut conn, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);
        drop(receiver);
        if let Some(path) = listen.path() {
            assert!(!path.exists(), "socket file left behind");
        }
        closed_by_peer(&mut conn).await;
    }
}

#[tokio::test]
async fn shutdown_stops_a_reader_blocked_on_a_full_channel() {
    for listen in streams() {
        let mut receiver = listen.builder().capacity(1).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = Vec::new();
        for i in 1..=10 {
            bytes.extend(frame(&span(i)));
        }
        write(&mut conn, &bytes).await;
        eventually("a full channel", || receiver.stats().spans == 1).await;
        assert_eq!(receiver.try_recv().unwrap().id, 1);
        eventually("a full channel again", || receiver.stats().spans == 2).await;
        let stats = tokio::time::timeout(WAIT, receiver.shutdown())
            .await
            .expect("shutdown finishes");
        assert!(stats.spans <= 3, "{stats:?}");
        closed_by_peer(&mut conn).await;
    }
}
