//! Graceful shutdown with a live receiver delivers every accepted span: nothing lost,
//! nothing dropped, nothing twice, over each transport, buffered or not, on
//! `current_thread` and multi-thread runtimes.
//!
//! Stream transports get the spans as fast as the producer can record them, and the
//! shutdown starts with the queue full. UDP has no flow control: datagrams a busy reader
//! does not take in time are dropped by the kernel, so UDP spans go in bursts the
//! receiver keeps up with (each burst waits for the previous one to arrive, into a large
//! receive buffer); the last burst is still queued when the shutdown starts.
//!
//! By default 20 000 spans per case; the full-size run (100 000 spans per case, every
//! case) is ignored: `cargo test -p integration-tests --release --test shutdown --
//! --ignored`.

use std::sync::Arc;

use integration_tests::*;
use trace_client::Client;

/// The client's queue: large enough that shutting down has real work to do.
const QUEUE: usize = 4096;

/// UDP spans recorded before waiting for the receiver to catch up.
const UDP_BURST: u64 = 1000;

async fn run(transport: Transport, buffered: bool, n: u64) {
    let seen = Seen::new(n as usize);
    let (endpoint, receiver) = Endpoint::start(transport, Arc::clone(&seen)).await;
    let client = Client::builder(endpoint.url())
        .capacity(QUEUE)
        .parallel_backends(2)
        .buffered(buffered)
        .build()
        .expect("client");

    let mut id = 0u64;
    while id < n {
        let burst = if transport.is_stream() {
            n
        } else {
            UDP_BURST.min(n - id)
        };
        for _ in 0..burst {
            id += 1;
            client
                .record(span(id as i64))
                .await
                .expect("the client is open");
        }
        if id < n {
            let target = id;
            assert!(
                eventually(PATIENCE, || receiver.received() >= target).await,
                "the receiver did not catch up: {} of {target}",
                receiver.received()
            );
        }
    }
    let queued = client.stats().queued();
    let report = client.shutdown(PATIENCE).await;
    // Stopping a receiver takes only what is readable: on TCP, bytes still in the
    // client's send buffer are not. Wait for them (the client closed its connections
    // after its last write).
    eventually(PATIENCE, || receiver.received() >= report.sent()).await;
    let received = receiver.stop().await;

    let case = format!(
        "{} buffered={buffered}: {report:?}, {queued} queued at shutdown, {received} received",
        transport.name()
    );
    assert!(!report.timed_out(), "{case}");
    assert!(report.errors().is_empty(), "{case}");
    assert_eq!(report.accepted(), n, "{case}");
    assert_eq!(report.sent(), n, "{case}");
    assert_eq!(report.dropped_total(), 0, "{case}");
    assert_eq!(seen.unique(), n, "{case}");
    assert_eq!(seen.duplicates(), 0, "{case}");
    assert_eq!(received, n, "{case}");
}

fn case(transport: Transport, buffered: bool, multi_thread: bool, n: u64) {
    runtime(multi_thread).block_on(run(transport, buffered, n));
}

const N: u64 = 20_000;

#[test]
fn unix_unbuffered_current_thread() {
    case(Transport::Unix, false, false, N);
}

#[test]
fn unix_unbuffered_multi_thread() {
    case(Transport::Unix, false, true, N);
}

#[test]
fn unix_buffered_current_thread() {
    case(Transport::Unix, true, false, N);
}

#[test]
fn unix_buffered_multi_thread() {
    case(Transport::Unix, true, true, N);
}

#[test]
fn tcp_unbuffered_current_thread() {
    case(Transport::Tcp, false, false, N);
}

#[test]
fn tcp_unbuffered_multi_thread() {
    case(Transport::Tcp, false, true, N);
}

#[test]
fn tcp_buffered_current_thread() {
    case(Transport::Tcp, true, false, N);
}

#[test]
fn tcp_buffered_multi_thread() {
    case(Transport::Tcp, true, true, N);
}

#[test]
fn udp_current_thread() {
    case(Transport::Udp, false, false, N);
}

#[test]
fn udp_multi_thread() {
    case(Transport::Udp, false, true, N);
}

#[test]
#[ignore = "full size (100 000 spans, every case); run with --release -- --ignored"]
fn every_case_full_size() {
    for transport in Transport::ALL {
        for buffered in [false, true] {
            if buffered && !transport.is_stream() {
                continue;
            }
            for multi_thread in [false, true] {
                case(transport, buffered, multi_thread, 100_000);
            }
        }
    }
}
