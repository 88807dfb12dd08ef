//! `ssf tail`: listen for SSF and print what arrives.

use std::io::ErrorKind;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ssf_codec::addr::Address;
use ssf_proto::SsfSpan;
use ssf_receiver::{Receiver, Reject};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::tree::Pretty;
use crate::{Failure, args};

/// How many rejects may wait to be reported; more are counted and summarised at exit.
const REJECT_QUEUE: usize = 256;

/// How many spans are written before the output is flushed, when more keep arriving.
const BATCH: usize = 512;

/// Options of `ssf tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Address to listen on (udp://, unix://, tcp://, grpc://); repeat for several. Port
    /// 0 picks a free port.
    /// [default: udp://127.0.0.1:8128]
    #[arg(long = "listen", value_name = "URL", value_parser = args::address)]
    listen: Vec<Address>,
    /// Output format: one JSON object per line, trace trees for people, or protobuf text format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Exit after this many spans.
    #[arg(long, value_name = "N", value_parser = args::positive)]
    count: Option<u64>,
    /// Exit when no span arrives for this long (seconds, fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = args::seconds)]
    idle_timeout: Option<Duration>,
    /// Print spans exactly as received, without veneur's ingest normalisation.
    #[arg(long)]
    raw: bool,
}

/// The output formats of `ssf tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One JSON object per span and line: every field, proto field names, enums by name.
    Json,
    /// Spans grouped into trace trees with durations, tags and samples.
    Pretty,
    /// Each span in protobuf text format, as protobuf's own printers write it, followed
    /// by a line `---`.
    Text,
}

/// Runs `ssf tail`.
pub(crate) async fn run(a: TailArgs) -> Result<ExitCode, Failure> {
    let listen = if a.listen.is_empty() {
        vec![Address::default()]
    } else {
        a.listen
    };
    let (reject_tx, mut rejects) = mpsc::channel::<Reject>(REJECT_QUEUE);
    let unreported = Arc::new(AtomicU64::new(0));
    let lost = Arc::clone(&unreported);
    let mut builder = Receiver::builder().normalize(!a.raw).on_reject(move |r| {
        if reject_tx.try_send(r.clone()).is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
    });
    for addr in listen {
        builder = builder.listen_address(addr);
    }
    let mut receiver = builder
        .bind()
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen: {e}")))?;
    let mut err = tokio::io::stderr();
    for addr in receiver.local_addrs() {
        line(&mut err, &format!("listening on {addr}")).await;
    }

    let mut out = BufWriter::new(tokio::io::stdout());
    let mut pretty = Pretty::default();
    let format = a.format;
    let mut received = 0u64;
    let idle = a.idle_timeout;
    let far = Duration::from_secs(366 * 24 * 3600);
    let deadline = tokio::time::sleep(idle.unwrap_or(far));
    tokio::pin!(deadline);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Off when the signal handler cannot be installed (its future is then done).
    let mut watch_ctrl_c = true;
    let mut output_closed = false;

    'outer: while a.count.is_none_or(|n| received < n) {
        // Unbiased: neither a flood of spans nor one of rejects starves the other.
        tokio::select! {
            res = &mut ctrl_c, if watch_ctrl_c => match res {
                Ok(()) => break,
                Err(_) => watch_ctrl_c = false,
            },
            Some(r) = rejects.recv() => {
                line(&mut err, &format!("rejected {r}")).await;
            }
            span = receiver.recv() => {
                let Some(span) = span else { break };
                let mut batch = vec![span];
                while batch.len() < BATCH
                    && a.count.is_none_or(|n| received + (batch.len() as u64) < n)
                {
                    match receiver.try_recv() {
                        Some(s) => batch.push(s),
                        None => break,
                    }
                }
                received += batch.len() as u64;
                let mut text = String::new();
                for span in batch {
                    render(format, &mut pretty, span, &mut text);
                }
                if let Err(e) = write(&mut out, &text).await {
                    if e.kind() == ErrorKind::BrokenPipe {
                        output_closed = true;
                        break 'outer;
                    }
                    return Err(Failure::Runtime(format!("cannot write output: {e}")));
                }
                if let Some(idle) = idle {
                    deadline.as_mut().reset(Instant::now() + idle);
                }
            }
            _ = &mut deadline => break,
        }
    }

    if !output_closed {
        let rest = pretty.flush();
        match write(&mut out, &rest).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
            Err(e) => return Err(Failure::Runtime(format!("cannot write output: {e}"))),
        }
    }
    while let Ok(r) = rejects.try_recv() {
        line(&mut err, &format!("rejected {r}")).await;
    }
    let stats = receiver.shutdown().await;
    let unreported = unreported.load(Ordering::Relaxed);
    let rejected = stats.empty_datagrams
        + stats.undecodable_datagrams
        + stats.truncated_datagrams
        + stats.corrupt_frames
        + stats.framing_errors
        + stats.connections_rejected;
    let mut summary = format!("received {received} spans, rejected {rejected} inputs");
    if unreported > 0 {
        summary.push_str(&format!(" ({unreported} rejects not shown above)"));
    }
    line(&mut err, &summary).await;
    Ok(ExitCode::SUCCESS)
}

fn render(format: Format, pretty: &mut Pretty, span: SsfSpan, text: &mut String) {
    match format {
        Format::Json => {
            text.push_str(&ssf_proto::json::to_string(&span));
            text.push('\n');
        }
        Format::Pretty => text.push_str(&pretty.push(span)),
        Format::Text => {
            text.push_str(&span.to_string());
            text.push_str("---\n");
        }
    }
}

async fn write(out: &mut (impl AsyncWrite + Unpin), text: &str) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(text.as_bytes()).await?;
    out.flush().await
}

/// Writes one line to standard error; a failure to do so is ignored (nowhere to report it).
async fn line(err: &mut (impl AsyncWrite + Unpin), text: &str) {
    let mut buf = String::with_capacity(text.len() + 1);
    buf.push_str(text);
    buf.push('\n');
    let _ = err.write_all(buf.as_bytes()).await;
    let _ = err.flush().await;
}
