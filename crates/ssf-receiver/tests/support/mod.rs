//! Helpers shared by the integration tests: spans, frames, senders and the golden data.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use ssf_codec::{Address, SsfCodec};
use ssf_proto::{SsfSpan, wire};
use ssf_receiver::{Receiver, ReceiverBuilder, Reject};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Generous limit for waiting on loopback traffic; never reached when things work.
pub const WAIT: Duration = Duration::from_secs(10);

/// A valid trace span with the given id.
pub fn span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 77,
        id,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_000_001_000,
        name: format!("op-{id}"),
        service: "svc".into(),
        ..Default::default()
    }
}

/// The ids of spans, in order.
pub fn ids(spans: &[SsfSpan]) -> Vec<i64> {
    spans.iter().map(|s| s.id).collect()
}

/// One SSF frame holding `span`.
pub fn frame(span: &SsfSpan) -> Vec<u8> {
    let mut buf = BytesMut::new();
    SsfCodec::new()
        .encode_frame(span, &mut buf)
        .expect("test span fits");
    buf.to_vec()
}

/// A frame around arbitrary body bytes.
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Decodes lower-case hex.
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A UDP socket sending to the receiver's first address.
pub async fn udp_sender(receiver: &Receiver) -> UdpSocket {
    let (host, port) = receiver.local_addr().host_port().expect("udp address");
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind sender");
    sock.connect((host, port)).await.expect("connect sender");
    sock
}

/// Sends one datagram holding `span`.
pub async fn send_span(sock: &UdpSocket, span: &SsfSpan) {
    sock.send(&wire::encode_to_vec(span)).await.expect("send");
}

/// A connected stream to a TCP or unix address.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Connects to a stream address (`tcp://` or `unix://`).
pub async fn connect(addr: &Address) -> Box<dyn Conn> {
    if let Some((host, port)) = addr.host_port() {
        let s = tokio::net::TcpStream::connect((host, port))
            .await
            .expect("tcp connect");
        Box::new(s)
    } else if let Some(path) = addr.unix_path() {
        Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .expect("unix connect"),
        )
    } else {
        panic!("not a stream address: {addr}")
    }
}

/// Writes bytes and flushes.
pub async fn write(conn: &mut Box<dyn Conn>, bytes: &[u8]) {
    conn.write_all(bytes).await.expect("write");
    conn.flush().await.expect("flush");
}

/// The stream transports under test, with a temp dir kept alive for unix sockets.
pub struct Listen {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Listen {
    pub fn tcp() -> Listen {
        Listen {
            url: "tcp://127.0.0.1:0".into(),
            _dir: None,
        }
    }

    pub fn unix() -> Listen {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("unix://{}", dir.path().join("ssf.sock").display());
        Listen {
            url,
            _dir: Some(dir),
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        Address::parse(&self.url)
            .ok()
            .and_then(|a| a.unix_path().map(PathBuf::from))
    }

    pub fn builder(&self) -> ReceiverBuilder {
        Receiver::builder().listen(&self.url).expect("listen url")
    }
}

/// Both stream transports.
pub fn streams() -> [Listen; 2] {
    [Listen::tcp(), Listen::unix()]
}

/// An `on_reject` hook that records every rejection.
pub fn recorder() -> (
    Arc<Mutex<Vec<Reject>>>,
    impl Fn(&Reject) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    (seen, move |r: &Reject| log.lock().unwrap().push(r.clone()))
}

/// Polls until `f` holds, for at most [`WAIT`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The golden data produced by veneur's Go code.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/veneur-golden")
}

/// The expected spans of the golden data, as veneur's ingest decodes them.
pub fn golden_spans() -> Vec<SsfSpan> {
    let text = std::fs::read_to_string(golden_dir().join("spans.jsonl")).expect("spans.jsonl");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| ssf_proto::json::from_str(l).expect("golden json"))
        .collect()
}
