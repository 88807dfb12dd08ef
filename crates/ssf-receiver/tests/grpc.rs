//! The gRPC listener's own limits (the calls themselves are tested with the client, in
//! `trace-client/tests/grpc.rs`).
#![cfg(feature = "grpc")]

use std::time::Duration;

use ssf_receiver::{Receiver, RejectReason};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_on_arrival_and_counted() {
    let receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .max_connections(1)
        .bind()
        .await
        .unwrap();
    let addr = receiver.local_addr().to_string();
    assert!(addr.starts_with("grpc://127.0.0.1:"), "{addr}");
    let (_, port) = receiver.local_addr().host_port().unwrap();
    let _first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let handle = receiver.handle();
    while handle.stats().connections_accepted < 1 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf))
        .await
        .expect("closed, not left open")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte of HTTP/2");
    let stats = receiver.shutdown().await;
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.rejects(RejectReason::ConnectionLimit), 1);
}

#[tokio::test]
async fn a_grpc_listener_reports_its_real_port() {
    let r = Receiver::bind("grpc://127.0.0.1:0").await.unwrap();
    assert!(r.local_addr().is_grpc());
    assert_ne!(r.local_addr().host_port().unwrap().1, 0);
}

#[tokio::test]
async fn an_idle_connection_is_closed_by_the_read_timeout_and_counted() {
    let receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .read_timeout(Duration::from_millis(100))
        .bind()
        .await
        .unwrap();
    let (_, port) = receiver.local_addr().host_port().unwrap();
    // Connected, and never a byte: not even the HTTP/2 preface.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // the server's SETTINGS, GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection was closed");
    let stats = receiver.shutdown().await;
    assert_eq!(stats.timeouts, 1, "{stats:?}");
    assert_eq!(stats.rejects(RejectReason::Timeout), 1);
}

/// Speaks just enough HTTP/2 (by hand, no client library) to make one `SendSpan` call
/// whose message has the compressed flag set without a `grpc-encoding`, which tonic
/// refuses on its own; the listener counts it.
#[tokio::test]
async fn a_call_tonic_refuses_on_its_own_is_counted() {
    use tokio::io::AsyncWriteExt;
    let receiver = Receiver::builder()
        .listen("grpc://127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let (_, port) = receiver.local_addr().host_port().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS (empty).
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // HEADERS on stream 1, END_HEADERS, HPACK literals without indexing.
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    let literal = |block: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value);
    };
    literal(
        &mut block,
        b":path",
        ssf_proto::grpc::SEND_SPAN_PATH.as_bytes(),
    );
    literal(&mut block, b":authority", b"localhost");
    literal(&mut block, b"content-type", b"application/grpc");
    literal(&mut block, b"te", b"trailers");
    let len = block.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[1, 0x4, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    // DATA on stream 1, END_STREAM: a message flagged compressed, of 2 bytes.
    let message = [1u8, 0, 0, 0, 2, 0x08, 0x01];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[0, 0x1, 0, 0, 0, 1]);
    out.extend_from_slice(&message);
    s.write_all(&out).await.unwrap();
    let handle = receiver.handle();
    let start = std::time::Instant::now();
    while handle.stats().rejected_calls == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = receiver.shutdown().await;
    assert_eq!(stats.rejects(RejectReason::RejectedCall), 1);
    assert_eq!((stats.spans, stats.frames), (0, 0));
}
