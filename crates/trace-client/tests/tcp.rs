//! TCP streams: framing, reconnects, refused connections.

mod support;

use std::time::Duration;

use ssf_codec::SsfCodec;
use ssf_receiver::Receiver;
use support::*;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;
use trace_client::{Client, DropReason};

#[tokio::test]
async fn spans_arrive_framed() {
    let mut receiver = Receiver::bind("tcp://127.0.0.1:0").await.unwrap();
    let client = Client::from_address(receiver.local_addr().clone())
        .capacity(4)
        .build()
        .unwrap();
    for id in 1..=4 {
        record_retrying(&client, span(id)).await;
    }
    client.flush().await.unwrap();
    let got = receiver.collect(4, PATIENCE).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4]);
    assert_eq!(got.iter().find(|s| s.id == 4).unwrap(), &span(4));
    assert_settled(&client.stats());
}

#[tokio::test]
async fn buffered_tcp_writes_on_flush_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Client::builder(format!("tcp://{addr}"))
        .parallel_backends(1)
        .buffered(true)
        .build()
        .unwrap();
    for id in 0..50 {
        record_retrying(&client, span(id)).await;
    }
    client.flush().await.unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    let got = read_spans(&mut frames, 50).await;
    let in_order: Vec<i64> = got.iter().map(|s| s.id).collect();
    assert_eq!(in_order, (0..50).collect::<Vec<_>>());
    let report = client.shutdown(PATIENCE).await;
    assert_eq!(report.sent(), 50);
    // The client closed its side after the final flush: the stream ends cleanly.
    assert!(read_to_end(&mut frames).await.is_empty());
}

#[tokio::test]
async fn reconnects_after_the_server_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Client::builder(format!("tcp://{addr}"))
        .parallel_backends(1)
        .build()
        .unwrap();
    client.record_with_receipt(span(1)).unwrap().await.unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    assert_eq!(read_spans(&mut frames, 1).await[0].id, 1);
    drop(frames);
    // TCP only notices a closed peer on a later write: keep writing until one fails.
    let mut id = 2;
    loop {
        let r = client.record_with_receipt(span(id)).unwrap().await;
        id += 1;
        if let Err(e) = r {
            assert_eq!(e.reason(), DropReason::WriteError);
            break;
        }
        assert!(id < 1000, "writes to a closed connection never failed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client
        .record_with_receipt(span(1000))
        .unwrap()
        .await
        .unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    let mut frames = FramedRead::new(conn, SsfCodec::new());
    assert_eq!(read_spans(&mut frames, 1).await[0].id, 1000);
    let stats = client.stats();
    assert_eq!(stats.reconnects(), 1);
    assert!(stats.dropped().write_error() >= 1);
    assert_settled(&stats);
}

#[tokio::test]
async fn refused_connections_drop_the_span_after_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder(format!("tcp://{addr}"))
        .parallel_backends(1)
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client
        .record_with_receipt(span(1))
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), DropReason::ConnectTimeout);
    let source = err.io_error().unwrap();
    assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
    assert!(
        source.to_string().contains("no connection within"),
        "{source}"
    );
    let stats = client.stats();
    assert_eq!(stats.dropped().connect_timeout(), 1);
    assert_settled(&stats);
}
