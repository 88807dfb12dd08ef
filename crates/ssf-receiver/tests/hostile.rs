//! Hostile input over real loopback sockets: lengths up to `u32::MAX` on many connections
//! at once, every wrong version, frames cut at every byte, slow-loris dribblers, thousands
//! of idle connections, invalid UTF-8 in string fields, random bytes, and UDP bursts. In
//! every case the receiver does not panic, counts the input under its reason, and keeps
//! serving the well-behaved connections.
//!
//! The memory bound under oversized lengths is checked in `hostile_memory.rs`, a test
//! binary of its own so that other tests cannot disturb its measurement.
#![cfg(unix)]

mod support;

use std::time::Duration;

use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{SsfSpan, wire};
use ssf_receiver::{Receiver, RejectReason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

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

/// A frame header announcing `len` body bytes.
fn header(len: u32) -> [u8; 5] {
    let l = len.to_be_bytes();
    [0, l[0], l[1], l[2], l[3]]
}

/// A deterministic xorshift generator: the same garbage on every run.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[tokio::test]
async fn lengths_up_to_u32_max_on_many_connections_at_once() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let mut good = connect(&addr).await;
        write(&mut good, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);

        // Every announced length above the 16 MiB default, up to the largest a header
        // can hold, on its own connection, all at once.
        let lengths = [
            u32::MAX,
            u32::MAX - 1,
            1 << 31,
            (1 << 31) - 1,
            1 << 30,
            (16 << 20) + 1,
            1 << 25,
            0xdead_beef,
        ];
        let mut bad = Vec::new();
        for len in lengths {
            let mut conn = connect(&addr).await;
            // Some body bytes too: they must not be buffered.
            let mut bytes = header(len).to_vec();
            bytes.extend(std::iter::repeat_n(0x0a, 4096));
            let _ = conn.write_all(&bytes).await;
            bad.push(conn);
        }
        for conn in &mut bad {
            closed_by_peer(conn).await;
        }
        eventually("the framing errors", || {
            receiver.stats().framing_errors == lengths.len() as u64
        })
        .await;

        // The well-behaved connection opened before them is still read.
        write(&mut good, &frame(&span(2))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 2);

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), lengths.len(), "{seen:?}");
        for len in lengths {
            let r = seen
                .iter()
                .find(|r| r.detail.contains(&format!("length {len} is too large")))
                .unwrap_or_else(|| panic!("no reject for length {len}: {seen:?}"));
            assert_eq!(r.reason, RejectReason::Framing);
        }
        let stats = receiver.shutdown().await;
        assert_eq!(stats.rejects(RejectReason::Framing), lengths.len() as u64);
        assert_eq!(stats.rejected(), lengths.len() as u64);
        assert_eq!((stats.spans, stats.frames), (2, 2));
    }
}

#[tokio::test]
async fn every_wrong_version_closes_only_its_connection() {
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let mut good = connect(&addr).await;
        for version in 1..=u8::MAX {
            let mut bytes = frame(&span(i64::from(version)));
            bytes[0] = version;
            let mut conn = connect(&addr).await;
            let _ = conn.write_all(&bytes).await;
            // Interleave good frames with the bad connections.
            write(&mut good, &frame(&span(1000 + i64::from(version)))).await;
            closed_by_peer(&mut conn).await;
        }
        let got = receiver.collect(255, WAIT).await.unwrap();
        assert_eq!(ids(&got), (1001..=1255).collect::<Vec<_>>());
        eventually("the framing errors", || {
            receiver.stats().framing_errors == 255
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        for version in 1..=u8::MAX {
            let want = format!("unexpected version number {version};");
            assert!(
                seen.iter().any(|r| r.detail.contains(&want)),
                "version {version}: {seen:?}"
            );
        }
        let stats = receiver.shutdown().await;
        assert_eq!(stats.connections_accepted, 256);
        assert_eq!(stats.spans, 255);
    }
}

#[tokio::test]
async fn a_frame_cut_at_every_byte_is_a_framing_error() {
    for listen in streams() {
        let receiver = listen.builder().bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let whole = frame(&span(7));
        for cut in 0..whole.len() {
            let mut conn = connect(&addr).await;
            write(&mut conn, &whole[..cut]).await;
            conn.shutdown().await.unwrap();
            closed_by_peer(&mut conn).await;
        }
        // Cut at 0 is a clean end between frames; every other cut ends inside one.
        let cuts = whole.len() as u64;
        eventually("every connection to end", || {
            let s = receiver.stats();
            s.disconnects + s.framing_errors == cuts
        })
        .await;
        let stats = receiver.shutdown().await;
        assert_eq!((stats.disconnects, stats.framing_errors), (1, cuts - 1));
        assert_eq!((stats.spans, stats.frames), (0, 0));
    }
}

/// A span whose encoding holds `marker` once, with `marker` replaced by bytes that are not
/// UTF-8.
fn with_invalid_utf8(span: &SsfSpan, marker: &str) -> Vec<u8> {
    let mut body = wire::encode_to_vec(span);
    let at = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker in the encoding");
    let bad = [0xff, 0xfe, 0xc3, 0x28];
    body[at..at + marker.len()].copy_from_slice(&bad[..marker.len()]);
    body
}

/// Span bodies with invalid UTF-8 in each kind of string field.
fn invalid_utf8_bodies() -> Vec<Vec<u8>> {
    let mut name = span(100);
    name.name = "@@@@".into();
    let mut service = span(100);
    service.service = "@@@@".into();
    let mut tag_key = span(100);
    tag_key.tags.insert("@@@@".into(), "v".into());
    let mut tag_value = span(100);
    tag_value.tags.insert("k".into(), "@@@@".into());
    let mut sample_name = span(100);
    sample_name.metrics.push(sample::count("@@@@", 1.0));
    let mut sample_tag = span(100);
    sample_tag
        .metrics
        .push(sample::count("c", 1.0).with_tag("k", "@@@@"));
    [name, service, tag_key, tag_value, sample_name, sample_tag]
        .iter()
        .map(|s| with_invalid_utf8(s, "@@@@"))
        .collect()
}

#[tokio::test]
async fn invalid_utf8_in_string_fields_is_corrupt_and_the_stream_goes_on() {
    let bodies = invalid_utf8_bodies();
    for body in &bodies {
        assert!(wire::decode(&body[..]).is_err(), "the body must not decode");
    }
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen.builder().on_reject(hook).bind().await.unwrap();
        let mut conn = connect(receiver.local_addr()).await;
        let mut bytes = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            bytes.extend(frame(&span(i as i64 + 1)));
            bytes.extend(raw_frame(body));
        }
        bytes.extend(frame(&span(99)));
        write(&mut conn, &bytes).await;
        let got = receiver.collect(bodies.len() + 1, WAIT).await.unwrap();
        let mut want: Vec<i64> = (1..=bodies.len() as i64).collect();
        want.push(99);
        assert_eq!(ids(&got), want, "{}", listen.url);
        let stats = receiver.shutdown().await;
        assert_eq!(stats.corrupt_frames, bodies.len() as u64);
        assert_eq!(
            stats.rejects(RejectReason::CorruptFrame),
            bodies.len() as u64
        );
        assert_eq!(stats.framing_errors, 0);
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|r| r.reason == RejectReason::CorruptFrame));
    }

    // The same bodies as datagrams are undecodable; the datagrams after them arrive.
    let mut receiver = Receiver::bind("udp://127.0.0.1:0").await.unwrap();
    let sock = udp_sender(&receiver).await;
    for (i, body) in bodies.iter().enumerate() {
        sock.send(body).await.unwrap();
        send_span(&sock, &span(i as i64 + 1)).await;
    }
    let got = receiver.collect(bodies.len(), WAIT).await.unwrap();
    assert_eq!(ids(&got), (1..=bodies.len() as i64).collect::<Vec<_>>());
    let stats = receiver.shutdown().await;
    assert_eq!(stats.undecodable_datagrams, bodies.len() as u64);
}

#[tokio::test]
async fn random_bytes_on_many_connections_while_a_good_one_streams() {
    for listen in streams() {
        let mut receiver = listen
            .builder()
            .max_frame_length(64 * 1024)
            .capacity(32)
            .bind()
            .await
            .unwrap();
        let addr = receiver.local_addr().clone();
        let mut good = connect(&addr).await;
        let mut noise = JoinSet::new();
        for c in 0..20u64 {
            let mut next = xorshift(0x9e37_79b9_7f4a_7c15 ^ (c + 1));
            let mut garbage: Vec<u8> = (0..64 * 1024).map(|_| next() as u8).collect();
            if c % 2 == 0 {
                garbage[0] = 0; // past the version byte now and then
            }
            let mut conn = connect(&addr).await;
            noise.spawn(async move {
                // The receiver may hang up at any point; that is fine.
                let _ = conn.write_all(&garbage).await;
                let _ = conn.shutdown().await;
                closed_by_peer(&mut conn).await;
            });
        }
        let mut bytes = Vec::new();
        for i in 1..=500 {
            bytes.extend(frame(&span(i)));
        }
        let writer = tokio::spawn(async move {
            write(&mut good, &bytes).await;
            good
        });
        // Garbage that happens to decode as a span is no span of the good connection.
        let mut got = Vec::new();
        while got.len() < 500 {
            let s = tokio::time::timeout(WAIT, receiver.recv())
                .await
                .expect("the good spans in time")
                .expect("a span");
            if s.trace_id == 77 && s.service == "svc" {
                got.push(s);
            }
        }
        assert_eq!(ids(&got), (1..=500).collect::<Vec<_>>(), "{}", listen.url);
        while let Some(r) = noise.join_next().await {
            r.unwrap();
        }
        drop(writer.await.unwrap());
        eventually("every connection to end", || {
            let s = receiver.stats();
            s.disconnects + s.framing_errors == 21
        })
        .await;
        // Whatever the garbage decoded to, it went through the same counters.
        receiver.collect_until_idle(Duration::from_millis(50)).await;
        let stats = receiver.shutdown().await;
        assert_eq!(stats.connections_accepted, 21);
        assert_eq!(
            stats.frames,
            stats.spans + stats.corrupt_frames,
            "{stats:?}"
        );
        assert!(stats.framing_errors >= 10, "{stats:?}");
    }
}

#[tokio::test]
async fn slow_loris_dribblers_do_not_hold_up_a_good_connection() {
    for listen in streams() {
        let mut receiver = listen.builder().capacity(8).bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let mut dribblers = JoinSet::new();
        for _ in 0..50 {
            let mut conn = connect(&addr).await;
            let mut stop = stop.clone();
            // A frame of a megabyte: the header, then the body one byte at a time.
            write(&mut conn, &header(1 << 20)).await;
            dribblers.spawn(async move {
                let mut sent = 0;
                while sent < 1 << 20 {
                    tokio::select! {
                        _ = stop.changed() => break,
                        () = tokio::time::sleep(Duration::from_millis(2)) => {}
                    }
                    conn.write_all(&[0x0a])
                        .await
                        .expect("the dribbler is not cut off");
                    sent += 1;
                }
                (conn, sent)
            });
        }
        // Wait until the dribbling is under way.
        eventually("the dribblers to start", || {
            receiver.stats().bytes >= 50 * 5 + 100
        })
        .await;

        let mut good = connect(&addr).await;
        let mut bytes = Vec::new();
        for i in 1..=1000 {
            bytes.extend(frame(&span(i)));
        }
        write(&mut good, &bytes).await;
        let got = receiver.collect(1000, WAIT).await.unwrap();
        assert_eq!(ids(&got), (1..=1000).collect::<Vec<_>>(), "{}", listen.url);

        // The dribblers were connected all along, and are still being read.
        assert!(
            dribblers.try_join_next().is_none(),
            "a dribbler ended early"
        );
        let stats = receiver.stats();
        assert_eq!(stats.connections_accepted, 51);
        assert_eq!(stats.rejected(), 0, "{stats:?}");
        stop_tx.send(true).unwrap();
        while let Some(r) = dribblers.join_next().await {
            let (_conn, sent) = r.unwrap();
            assert!(sent < 1 << 20, "a dribbler finished its frame");
        }
        receiver.shutdown().await;
    }
}

#[tokio::test]
async fn read_timeout_closes_idle_and_dribbling_connections() {
    let timeout = Duration::from_millis(800);
    for listen in streams() {
        let (seen, hook) = recorder();
        let mut receiver = listen
            .builder()
            .read_timeout(timeout)
            .on_reject(hook)
            .bind()
            .await
            .unwrap();
        let addr = receiver.local_addr().clone();

        // Sends a frame every 100 ms, each well within the timeout, for three timeouts.
        let mut steady = connect(&addr).await;
        let steady = tokio::spawn(async move {
            for i in 1..=24 {
                write(&mut steady, &frame(&span(i))).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            steady
        });
        // Sends nothing at all.
        let mut idle = connect(&addr).await;
        // Sends a byte every 20 ms, but of a frame that would take minutes to finish.
        let mut loris = connect(&addr).await;
        let loris = tokio::spawn(async move {
            write(&mut loris, &header(10_000)).await;
            let mut sent = 0usize;
            while loris.write_all(&[0x0a]).await.is_ok() && sent < 10_000 {
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        });

        closed_by_peer(&mut idle).await;
        let sent = loris.await.unwrap();
        assert!(sent < 10_000, "the dribbler was never cut off");
        let got = receiver.collect(24, WAIT).await.unwrap();
        assert_eq!(ids(&got), (1..=24).collect::<Vec<_>>(), "{}", listen.url);
        let mut steady = steady.await.unwrap();
        // The steady connection is still open: one more frame arrives.
        write(&mut steady, &frame(&span(25))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 25);

        eventually("the timeouts", || receiver.stats().timeouts == 2).await;
        let stats = receiver.shutdown().await;
        assert_eq!(stats.rejects(RejectReason::Timeout), 2);
        assert_eq!(stats.rejected(), 2, "{stats:?}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.iter().all(|r| r.reason == RejectReason::Timeout));
        assert!(
            seen.iter()
                .any(|r| r.detail == "no frame within 800ms; connection closed"),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|r| r.detail.starts_with("frame not complete within 800ms (")),
            "{seen:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_read_timeout_idle_connections_stay() {
    let mut receiver = Receiver::bind("tcp://127.0.0.1:0").await.unwrap();
    let mut quiet = connect(receiver.local_addr()).await;
    let mut halfway = connect(receiver.local_addr()).await;
    let whole = frame(&span(2));
    write(&mut halfway, &whole[..10]).await;
    // A day passes (on the paused clock) without a byte.
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    write(&mut quiet, &frame(&span(1))).await;
    write(&mut halfway, &whole[10..]).await;
    let mut got = Vec::new();
    eventually("both spans", || {
        got.extend(receiver.try_recv());
        got.len() == 2
    })
    .await;
    let mut got = ids(&got);
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    let stats = receiver.shutdown().await;
    assert_eq!(stats.rejected(), 0, "{stats:?}");
}

#[tokio::test]
async fn thousands_of_idle_connections_are_capped_and_counted() {
    const CAP: usize = 500;
    const IDLE: usize = 2000;
    for listen in streams() {
        let mut receiver = listen.builder().max_connections(CAP).bind().await.unwrap();
        let addr = receiver.local_addr().clone();
        let mut good = connect(&addr).await;
        write(&mut good, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);

        let mut idle = Vec::with_capacity(IDLE);
        for i in 0..IDLE {
            idle.push(connect(&addr).await);
            if i % 100 == 0 {
                // Unix connections complete at once; let the listener keep up with
                // its backlog.
                tokio::task::yield_now().await;
            }
        }
        eventually("every connection to be accepted or rejected", || {
            let s = receiver.stats();
            s.connections_accepted + s.connections_rejected == IDLE as u64 + 1
        })
        .await;
        let stats = receiver.stats();
        assert_eq!(stats.connections_accepted, CAP as u64);
        assert_eq!(
            stats.rejects(RejectReason::ConnectionLimit),
            (IDLE + 1 - CAP) as u64
        );

        // The good connection, among the accepted ones, is served as before.
        let mut bytes = Vec::new();
        for i in 2..=100 {
            bytes.extend(frame(&span(i)));
        }
        write(&mut good, &bytes).await;
        let got = receiver.collect(99, WAIT).await.unwrap();
        assert_eq!(ids(&got), (2..=100).collect::<Vec<_>>());

        // The rejected ones were closed: the last one sees the end.
        closed_by_peer(idle.last_mut().unwrap()).await;
        // Once the idle ones leave, their places are free again.
        drop(idle);
        eventually("the disconnects", || {
            receiver.stats().disconnects == CAP as u64 - 1
        })
        .await;
        let mut late = connect(&addr).await;
        write(&mut late, &frame(&span(101))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 101);
        let stats = receiver.shutdown().await;
        assert_eq!(stats.connections_accepted, CAP as u64 + 1);
        assert_eq!(stats.rejected(), (IDLE + 1 - CAP) as u64);
    }
}

#[tokio::test]
async fn datagrams_at_every_size_boundary() {
    let (seen, hook) = recorder();
    let mut receiver = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .max_datagram_size(ssf_receiver::MAX_DATAGRAM_SIZE)
        .on_reject(hook)
        .bind()
        .await
        .unwrap();
    let sock = udp_sender(&receiver).await;
    // The largest UDP payload over IPv4, as a span with a long name.
    let mut largest = span(2);
    largest.name.clear();
    let room = 65_507 - wire::encoded_len(&largest) - 4;
    largest.name = "n".repeat(room);
    assert_eq!(wire::encoded_len(&largest), 65_507);
    sock.send(&[]).await.unwrap();
    send_span(&sock, &span(1)).await;
    sock.send(&wire::encode_to_vec(&largest)).await.unwrap();
    sock.send(&[0x00]).await.unwrap(); // field 0: invalid
    sock.send(&vec![0xff; 65_507]).await.unwrap();
    send_span(&sock, &span(3)).await;
    let got = receiver.collect(3, WAIT).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3]);
    assert_eq!(got[1], largest);
    let stats = receiver.shutdown().await;
    assert_eq!(stats.datagrams, 6);
    assert_eq!((stats.empty_datagrams, stats.undecodable_datagrams), (1, 2));
    assert_eq!(stats.rejected(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

/// `net.core.rmem_max`, the most an unprivileged process may ask for.
fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn recv_buffer_size_is_asked_for_each_udp_listener() {
    let max = rmem_max().expect("linux reports rmem_max");
    let bind = |size: Option<usize>| async move {
        let mut b = Receiver::builder()
            .listen("udp://127.0.0.1:0")
            .unwrap()
            .listen("tcp://127.0.0.1:0")
            .unwrap()
            .listen("udp://127.0.0.1:0")
            .unwrap();
        if let Some(size) = size {
            b = b.recv_buffer_size(size);
        }
        b.bind().await.unwrap()
    };
    let small = bind(Some(16 * 1024)).await;
    let sizes = small.recv_buffer_sizes();
    assert_eq!(sizes.len(), 2, "UDP listeners only: {sizes:?}");
    assert_eq!(sizes[0].0, small.local_addrs()[0]);
    assert_eq!(sizes[1].0, small.local_addrs()[2]);
    // Linux reports twice the size granted.
    assert!(sizes.iter().all(|&(_, s)| s == 32 * 1024), "{sizes:?}");

    let default = bind(None).await;
    let want = ssf_receiver::DEFAULT_RECV_BUFFER_SIZE.min(max) * 2;
    for &(_, s) in default.recv_buffer_sizes() {
        assert_eq!(s, want);
    }
    small.shutdown().await;
    default.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_larger_recv_buffer_keeps_a_burst_the_reader_is_too_busy_for() {
    const BURST: usize = 1000;
    let max = rmem_max().expect("linux reports rmem_max");
    let mut kept = Vec::new();
    for size in [0, 4 * 1024 * 1024] {
        // A consumer that takes nothing until the burst is over: the reader stops at the
        // first span and the rest waits in the kernel.
        let mut receiver = Receiver::builder()
            .listen("udp://127.0.0.1:0")
            .unwrap()
            .capacity(1)
            .recv_buffer_size(size)
            .bind()
            .await
            .unwrap();
        let sock = udp_sender(&receiver).await;
        let mut s = span(0);
        s.service = "s".repeat(1000);
        for i in 1..=BURST as i64 {
            s.id = i;
            send_span(&sock, &s).await;
        }
        let got = receiver
            .collect_until_idle(Duration::from_millis(500))
            .await;
        kept.push(got.len());
        receiver.shutdown().await;
    }
    let (default, large) = (kept[0], kept[1]);
    assert!(default < BURST, "the system default kept all {BURST}");
    assert!(large >= default, "{kept:?}");
    if max >= 4 * 1024 * 1024 {
        assert_eq!(large, BURST, "{kept:?}");
    }
}
