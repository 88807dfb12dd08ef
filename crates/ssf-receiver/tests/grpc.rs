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
