//! Shared helpers of the integration tests: spans, raw servers, accounting checks.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use ssf_codec::SsfCodec;
use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{Scope, SsfSpan};
use tokio::io::AsyncRead;
use tokio::net::UnixListener;
use tokio_util::codec::FramedRead;
use trace_client::{Client, ClientStats, ShutdownReport, TryRecordError};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A small valid span with a metric.
pub fn span(id: i64) -> SsfSpan {
    SsfSpan {
        trace_id: 1,
        id,
        parent_id: 1,
        start_timestamp: 1_700_000_000_000_000_000,
        end_timestamp: 1_700_000_000_000_100_000,
        service: "test".into(),
        name: format!("op-{id}"),
        metrics: vec![sample::count("hits", 1.0).with_tag("k", "v")],
        ..Default::default()
    }
}

/// A span with a payload of `extra` bytes in a tag.
pub fn big_span(id: i64, extra: usize) -> SsfSpan {
    let mut s = span(id);
    s.tags.insert("payload".into(), "x".repeat(extra));
    s
}

/// A sample with a local scope, for the normaliser test.
pub fn local_sample() -> ssf_proto::SsfSample {
    sample::gauge("g", 2.0).with_scope(Scope::Local)
}

/// Records, waiting out `Full` refusals (veneur's tests retry on ErrWouldBlock).
pub async fn record_retrying(client: &Client, mut s: SsfSpan) {
    loop {
        match client.try_record(s) {
            Ok(()) => return,
            Err(TryRecordError::Full(back)) => {
                s = back;
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("record failed: {e}"),
        }
    }
}

/// `accepted == sent + dropped + queued`, and nothing is queued.
pub fn assert_settled(stats: &ClientStats) {
    assert_eq!(stats.queued(), 0, "{stats:?}");
    assert_eq!(
        stats.accepted(),
        stats.sent() + stats.dropped_total(),
        "{stats:?}"
    );
}

/// The report's own accounting: every accepted span sent or dropped.
pub fn assert_report_settled(report: &ShutdownReport) {
    assert_eq!(
        report.accepted(),
        report.sent() + report.dropped_total(),
        "{report:?}"
    );
    assert_settled(&report.stats());
}

/// A unix socket path in a fresh temporary directory (kept alive by the returned guard).
pub fn socket_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ssf.sock");
    (dir, path)
}

pub fn unix_url(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// A raw unix listener (for servers with special behaviour).
pub fn unix_listener(path: &Path) -> UnixListener {
    UnixListener::bind(path).expect("bind unix listener")
}

/// Reads `n` framed spans from a stream.
pub async fn read_spans<R: AsyncRead + Unpin>(
    frames: &mut FramedRead<R, SsfCodec>,
    n: usize,
) -> Vec<SsfSpan> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let item = tokio::time::timeout(PATIENCE, frames.next())
            .await
            .expect("spans in time")
            .expect("stream still open")
            .expect("a good frame")
            .expect("a valid span");
        out.push(item);
    }
    out
}

/// Reads framed spans until the peer closes the stream.
pub async fn read_to_end<R: AsyncRead + Unpin>(
    frames: &mut FramedRead<R, SsfCodec>,
) -> Vec<SsfSpan> {
    let mut out = Vec::new();
    while let Some(item) = frames.next().await {
        match item {
            Ok(Ok(span)) => out.push(span),
            Ok(Err(e)) => panic!("corrupt frame body: {e}"),
            // A connection cut mid-frame ends the stream.
            Err(_) => break,
        }
    }
    out
}

/// Sorted ids of spans.
pub fn ids(spans: &[SsfSpan]) -> Vec<i64> {
    let mut v: Vec<i64> = spans.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v
}

/// Asserts that `spans` hold each id of `expected` exactly once, with a short message.
pub fn assert_ids(spans: &[SsfSpan], expected: impl IntoIterator<Item = i64>) {
    let got = ids(spans);
    let want: Vec<i64> = expected.into_iter().collect();
    if got != want {
        let mut dups = got.clone();
        dups.dedup();
        let missing: Vec<i64> = want
            .iter()
            .filter(|i| got.binary_search(i).is_err())
            .copied()
            .take(10)
            .collect();
        panic!(
            "got {} spans ({} distinct), expected {}; first missing: {:?}",
            got.len(),
            dups.len(),
            want.len(),
            missing
        );
    }
}
