//! Receive throughput per transport: spans sent over loopback, decoded, normalised and
//! taken off the receiver's channel.
//!
//! `cargo bench -p ssf-receiver --bench receive`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use ssf_codec::SsfCodec;
use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{SsfSpan, wire};
use ssf_receiver::Receiver;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// Spans per UDP round: few enough for the kernel's default receive buffer.
const UDP_BATCH: usize = 64;
/// Spans per stream round.
const STREAM_BATCH: usize = 1000;
const WAIT: Duration = Duration::from_secs(30);

/// A typical span: ids, timestamps, a service and name, a few tags and one sample.
fn typical_span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 0x1234_5678,
        id,
        parent_id: id - 1,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_250_000_000,
        service: "checkout".into(),
        name: "charge.create".into(),
        tags: sample::tags([
            ("region", "eu-west-1"),
            ("host", "web-42"),
            ("route", "/v1/charges"),
        ]),
        metrics: vec![sample::count("charges", 1.0).with_tag("currency", "eur")],
        ..Default::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

struct UdpBench {
    receiver: Receiver,
    sock: UdpSocket,
    datagrams: Vec<Vec<u8>>,
}

struct StreamBench {
    receiver: Receiver,
    conn: Box<dyn AsyncWrite + Unpin + Send>,
    frames: Vec<u8>,
}

fn udp(c: &mut Criterion) {
    let rt = runtime();
    let state = rt.block_on(async {
        let receiver = Receiver::bind("udp://127.0.0.1:0").await.expect("bind");
        let (host, port) = receiver.local_addr().host_port().expect("udp");
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("sender");
        sock.connect((host, port)).await.expect("connect");
        let datagrams = (1..=UDP_BATCH as i64)
            .map(|i| wire::encode_to_vec(&typical_span(i)))
            .collect();
        Arc::new(Mutex::new(UdpBench {
            receiver,
            sock,
            datagrams,
        }))
    });
    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(UDP_BATCH as u64));
    group.bench_function("udp", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let state = Arc::clone(&state);
            async move {
                let mut s = state.lock().await;
                let s = &mut *s;
                let start = Instant::now();
                for _ in 0..iters {
                    for d in &s.datagrams {
                        s.sock.send(d).await.expect("send");
                    }
                    let got = s.receiver.collect(UDP_BATCH, WAIT).await.expect("batch");
                    std::hint::black_box(got);
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

fn stream(c: &mut Criterion, name: &str) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match name {
        "tcp" => "tcp://127.0.0.1:0".to_owned(),
        _ => format!("unix://{}", dir.path().join("bench.sock").display()),
    };
    let state = rt.block_on(async {
        let receiver = Receiver::builder()
            .listen(&url)
            .expect("url")
            .bind()
            .await
            .expect("bind");
        let addr = receiver.local_addr().clone();
        let conn: Box<dyn AsyncWrite + Unpin + Send> = match addr.host_port() {
            Some((host, port)) => Box::new(
                tokio::net::TcpStream::connect((host, port))
                    .await
                    .expect("connect"),
            ),
            None => Box::new(
                tokio::net::UnixStream::connect(addr.unix_path().expect("path"))
                    .await
                    .expect("connect"),
            ),
        };
        let mut frames = bytes::BytesMut::new();
        for i in 1..=STREAM_BATCH as i64 {
            SsfCodec::new()
                .encode_frame(&typical_span(i), &mut frames)
                .expect("frame");
        }
        Arc::new(Mutex::new(StreamBench {
            receiver,
            conn,
            frames: frames.to_vec(),
        }))
    });
    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(STREAM_BATCH as u64));
    group.bench_function(name, |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let state = Arc::clone(&state);
            async move {
                let mut s = state.lock().await;
                let StreamBench {
                    receiver,
                    conn,
                    frames,
                } = &mut *s;
                let start = Instant::now();
                for _ in 0..iters {
                    let (written, got) =
                        tokio::join!(conn.write_all(frames), receiver.collect(STREAM_BATCH, WAIT));
                    written.expect("write");
                    std::hint::black_box(got.expect("batch"));
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

fn tcp(c: &mut Criterion) {
    stream(c, "tcp");
}

fn unix(c: &mut Criterion) {
    stream(c, "unix");
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::{tcp, udp, unix};
    criterion::criterion_group!(benches, udp, tcp, unix);
}
criterion_main!(group::benches);
