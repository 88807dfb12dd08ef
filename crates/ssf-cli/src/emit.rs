//! `ssf emit`: one span and its metrics, the job `veneur-emit -ssf` does.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use clap::Args;
use ssf_codec::addr::{Address, DEFAULT_ADDRESS};
use ssf_proto::sample::{self, SampleExt};
use ssf_proto::{SsfSample, SsfSpan};
use trace_client::Client;

use crate::ids::{self, PARENT_ID_ENV, TRACE_ID_ENV};
use crate::{Failure, args, tags};

/// The service name of spans sent by `ssf emit` unless `--service` says otherwise.
pub(crate) const DEFAULT_SERVICE: &str = "ssf-emit";

/// Options of `ssf emit`.
#[derive(Debug, Args)]
#[command(after_help = "\
With a trace ID (--trace-id, or VENEUR_EMIT_TRACE_ID when the option is absent or 0) the \
span is a full trace span: a fresh span ID, the parent ID (--parent-id or \
VENEUR_EMIT_PARENT_SPAN_ID), name, service, tags, indicator and error flags. Without one it \
only carries the metrics. An environment ID that is not a decimal number is an error \
(exit code 2).

--command runs CMD, times it, marks the span as an error when it fails, exports \
VENEUR_EMIT_TRACE_ID and VENEUR_EMIT_PARENT_SPAN_ID (this span's ID) to it, and exits with \
its exit code. It takes every argument after it, so give it last.

ssf emit waits until the span is written and flushed (at most --timeout). If that fails it \
says why on one line and exits with code 1, or with the command's code when the command \
failed.")]
pub(crate) struct EmitArgs {
    /// Where to send: an SSF address URL (udp://, unix://, tcp://, grpc://) or a bare host:port (UDP).
    #[arg(long, value_name = "URL", value_parser = args::address, default_value = DEFAULT_ADDRESS)]
    pub(crate) addr: Address,
    /// The span's name; with --command it defaults to the command's file name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The span's service.
    #[arg(long, default_value = DEFAULT_SERVICE)]
    pub(crate) service: String,
    /// The trace ID (decimal); 0 or absent reads VENEUR_EMIT_TRACE_ID.
    #[arg(long, value_name = "ID", allow_negative_numbers = true)]
    pub(crate) trace_id: Option<i64>,
    /// The parent span ID (decimal); 0 or absent reads VENEUR_EMIT_PARENT_SPAN_ID.
    #[arg(long, value_name = "ID", allow_negative_numbers = true)]
    pub(crate) parent_id: Option<i64>,
    /// Tags for the span and every sample: KEY:VALUE, or a comma-separated list of them
    /// (a KEY alone has the empty value). Repeatable.
    #[arg(long = "tag", value_name = "KEY:VALUE[,...]")]
    pub(crate) tags: Vec<String>,
    /// Mark the span as an indicator span.
    #[arg(long)]
    pub(crate) indicator: bool,
    /// Mark the span as failed.
    #[arg(long)]
    pub(crate) error: bool,
    /// Add a counter sample (a whole number). Repeatable.
    #[arg(long = "count", value_name = "NAME:VALUE", value_parser = args::count)]
    pub(crate) counts: Vec<SsfSample>,
    /// Add a gauge sample. Repeatable.
    #[arg(long = "gauge", value_name = "NAME:VALUE", value_parser = args::gauge)]
    pub(crate) gauges: Vec<SsfSample>,
    /// Add a timing sample in milliseconds. Repeatable.
    #[arg(long = "timing", value_name = "NAME:MILLIS", value_parser = args::timing)]
    pub(crate) timings: Vec<SsfSample>,
    /// Add a set member. Repeatable.
    #[arg(long = "set", value_name = "NAME:MEMBER", value_parser = args::set)]
    pub(crate) sets: Vec<SsfSample>,
    /// How long to wait for the span to be delivered, in seconds.
    #[arg(long, value_name = "SECS", value_parser = args::positive_seconds, default_value = "5")]
    pub(crate) timeout: Duration,
    /// Run and time this command (with its arguments); must come last.
    #[arg(
        long,
        value_name = "CMD",
        num_args = 1..,
        allow_hyphen_values = true,
        trailing_var_arg = true
    )]
    pub(crate) command: Vec<OsString>,
}

/// The IDs and times of the span `ssf emit` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// 0 for a metrics-only span.
    pub(crate) trace_id: i64,
    pub(crate) parent_id: i64,
    pub(crate) span_id: i64,
    pub(crate) start: i64,
    pub(crate) end: i64,
    /// Whether the timed command failed.
    pub(crate) failed: bool,
}

impl EmitArgs {
    /// The span's name: `--name`, else the command's file name.
    fn span_name(&self) -> Option<String> {
        if let Some(name) = &self.name {
            return Some(name.clone());
        }
        let program = self.command.first()?;
        let base = Path::new(program)
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned();
        Some(if base.is_empty() {
            "command".to_owned()
        } else {
            base
        })
    }

    /// Every sample given on the command line, tagged with the `--tag`s.
    fn samples(&self, tags: &std::collections::BTreeMap<String, String>) -> Vec<SsfSample> {
        let all = [&self.counts, &self.gauges, &self.timings, &self.sets];
        all.into_iter()
            .flatten()
            .map(|s| s.clone().with_tags(tags.clone()))
            .collect()
    }
}

/// Builds the span: a full trace span when `plan.trace_id` is not 0, otherwise a span
/// carrying only the samples. `extra` samples (the command's timing) come last.
pub(crate) fn build_span(
    a: &EmitArgs,
    name: &str,
    plan: &Plan,
    extra: Option<SsfSample>,
) -> SsfSpan {
    let tags = tags::parse_all(a.tags.iter().map(String::as_str));
    let mut metrics = a.samples(&tags);
    metrics.extend(extra.map(|s| s.with_tags(tags.clone())));
    if plan.trace_id == 0 {
        return SsfSpan {
            metrics,
            ..Default::default()
        };
    }
    SsfSpan {
        version: 0,
        trace_id: plan.trace_id,
        id: plan.span_id,
        parent_id: plan.parent_id,
        start_timestamp: plan.start,
        end_timestamp: plan.end,
        error: a.error || plan.failed,
        service: a.service.clone(),
        name: name.to_owned(),
        tags,
        indicator: a.indicator,
        root_start_timestamp: 0,
        metrics,
    }
}

/// Runs `ssf emit`.
pub(crate) async fn run(a: EmitArgs) -> Result<ExitCode, Failure> {
    let start = ssf_proto::time::now_nanos();
    let env = |var| std::env::var_os(var);
    let bad_env = |e: ids::BadEnvId| Failure::Usage(e.to_string());
    let trace_id =
        ids::infer(a.trace_id, TRACE_ID_ENV, env(TRACE_ID_ENV).as_deref()).map_err(bad_env)?;
    // The parent matters only to a trace span.
    let parent_id = if trace_id == 0 {
        0
    } else {
        ids::infer(a.parent_id, PARENT_ID_ENV, env(PARENT_ID_ENV).as_deref()).map_err(bad_env)?
    };
    let name = a.span_name();
    let has_samples = [&a.counts, &a.gauges, &a.timings, &a.sets]
        .iter()
        .any(|v| !v.is_empty());
    if trace_id != 0 && name.as_deref().is_none_or(str::is_empty) {
        return Err(Failure::Usage(
            "a span with a trace ID needs a name: give --name".to_owned(),
        ));
    }
    if trace_id == 0 && !has_samples && a.command.is_empty() {
        return Err(Failure::Usage(format!(
            "nothing to send: give a trace ID (--trace-id or {TRACE_ID_ENV}), a metric \
             (--count, --gauge, --timing, --set) or --command"
        )));
    }
    let name = name.unwrap_or_default();
    let client = Client::from_address(a.addr.clone())
        .parallel_backends(1)
        // Leave time to hear why connecting failed before the overall time limit.
        .connect_timeout(a.timeout.mul_f64(0.75).max(Duration::from_millis(1)))
        .build()
        .map_err(|e| Failure::Usage(format!("cannot send to {}: {}", a.addr, chain(&e))))?;

    let span_id = if trace_id == 0 {
        0
    } else {
        trace_client::new_id()
    };
    let mut plan = Plan {
        trace_id,
        parent_id,
        span_id,
        start,
        end: 0,
        failed: false,
    };
    let mut extra = None;
    let mut exit = 0u8;
    if let Some((program, rest)) = a.command.split_first() {
        let ids = (trace_id != 0).then_some((trace_id, span_id));
        let run = run_command(program, rest, ids).await;
        plan.start = run.start;
        plan.end = run.end;
        plan.failed = run.code != 0;
        exit = run.code;
        extra = Some(sample::timing(&name, run.elapsed, Duration::from_millis(1)));
    } else {
        plan.end = ssf_proto::time::now_nanos();
    }
    let span = build_span(&a, &name, &plan, extra);
    match deliver(&client, span, &a.addr, a.timeout).await {
        Ok(()) => Ok(ExitCode::from(exit)),
        // The command's own failure is what the caller most needs to see.
        Err(msg) if exit != 0 => {
            eprintln!("error: {msg}");
            Ok(ExitCode::from(exit))
        }
        Err(msg) => Err(Failure::Runtime(msg)),
    }
}

/// Queues the span, waits until it is written and flushed, and shuts the client down.
async fn deliver(
    client: &Client,
    span: SsfSpan,
    addr: &Address,
    timeout: Duration,
) -> Result<(), String> {
    let receipt = client
        .record_with_receipt(span)
        .map_err(|e| format!("the span was not queued: {}", chain(&e)))?;
    let work = async {
        receipt.await.map_err(|e| chain(&e))?;
        client.flush().await.map_err(|e| chain(&e))
    };
    let result = tokio::time::timeout(timeout, work).await;
    let report = client.shutdown(Duration::from_secs(1)).await;
    match result {
        Err(_) => Err(format!(
            "the span was not delivered to {addr} within {}",
            humantime(timeout)
        )),
        Ok(Err(e)) => Err(format!("the span was not delivered to {addr}: {e}")),
        Ok(Ok(())) => match report.errors().first() {
            Some(e) => Err(format!("sending to {addr} failed: {}", chain(e))),
            None => Ok(()),
        },
    }
}

/// What running `--command` gave.
#[derive(Debug)]
struct CommandRun {
    start: i64,
    end: i64,
    elapsed: Duration,
    /// The exit code to propagate: the command's, 128 + signal when a signal ended it,
    /// 127 when it could not be found, 126 when it could not be run.
    code: u8,
}

/// Runs the command with inherited standard streams, exporting the trace and span IDs
/// to it when there are some.
async fn run_command(program: &OsString, rest: &[OsString], ids: Option<(i64, i64)>) -> CommandRun {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    if let Some((trace_id, span_id)) = ids {
        cmd.env(TRACE_ID_ENV, trace_id.to_string());
        cmd.env(PARENT_ID_ENV, span_id.to_string());
    }
    // Ctrl-C reaches the command (same process group); this process keeps running so
    // that it can still report the span and the command's exit code.
    #[cfg(unix)]
    let _sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let start = ssf_proto::time::now_nanos();
    let clock = Instant::now();
    let status = cmd.status().await;
    let elapsed = clock.elapsed();
    let end = start.saturating_add(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX));
    let code = match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", Path::new(program).display());
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    };
    CommandRun {
        start,
        end,
        elapsed,
        code,
    }
}

fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // Exit codes are 0..=255 on unix; elsewhere keep any failure a failure.
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}

/// An error and its sources on one line, `outer: inner: innermost`, leaving out a source
/// whose message is already part of the line.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            let _ = write!(text, ": {next}");
        }
        source = s.source();
    }
    text
}

fn humantime(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ssf_proto::Metric;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> EmitArgs {
        let argv = ["ssf", "emit"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("valid arguments").command {
            Command::Emit(a) => a,
            other => panic!("not emit: {other:?}"),
        }
    }

    fn plan(trace_id: i64, parent_id: i64) -> Plan {
        Plan {
            trace_id,
            parent_id,
            span_id: 99,
            start: 10,
            end: 20,
            failed: false,
        }
    }

    #[test]
    fn trace_span_carries_everything() {
        let a = parse(&[
            "--name",
            "op",
            "--tag",
            "a:b",
            "--tag",
            "c",
            "--error",
            "--indicator",
            "--count",
            "hits:2",
            "--service",
            "svc",
        ]);
        let span = build_span(&a, "op", &plan(1, 2), None);
        assert_eq!((span.trace_id, span.parent_id, span.id), (1, 2, 99));
        assert_eq!((span.start_timestamp, span.end_timestamp), (10, 20));
        assert_eq!((span.name.as_str(), span.service.as_str()), ("op", "svc"));
        assert_eq!(span.tags, ssf_proto::sample::tags([("a", "b"), ("c", "")]));
        assert!(span.error && span.indicator);
        assert!(ssf_proto::is_valid_trace(&span));
        assert_eq!(span.metrics.len(), 1);
        assert_eq!(span.metrics[0].tags, span.tags);
    }

    #[test]
    fn without_trace_id_only_metrics() {
        let a = parse(&["--name", "op", "--tag", "a:b", "--error", "--gauge", "g:1"]);
        let span = build_span(&a, "op", &plan(0, 2), None);
        assert_eq!((span.trace_id, span.parent_id, span.id), (0, 0, 0));
        assert!(span.name.is_empty() && span.service.is_empty() && span.tags.is_empty());
        assert!(!span.error);
        assert_eq!(span.metrics.len(), 1);
        assert_eq!(span.metrics[0].metric(), Metric::Gauge);
        assert_eq!(span.metrics[0].tags, ssf_proto::sample::tags([("a", "b")]));
    }

    #[test]
    fn samples_in_kind_order_then_the_command_timing() {
        let a = parse(&[
            "--set", "s:m", "--timing", "t:2", "--gauge", "g:1", "--count", "c:1", "--count", "d:2",
        ]);
        let extra = sample::timing("cmd", Duration::from_millis(5), Duration::from_millis(1));
        let span = build_span(&a, "x", &plan(1, 0), Some(extra));
        let names: Vec<&str> = span.metrics.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["c", "d", "g", "t", "s", "cmd"]);
        let mut failed = plan(1, 0);
        failed.failed = true;
        assert!(build_span(&a, "x", &failed, None).error);
    }

    #[test]
    fn name_defaults_to_the_command_file_name() {
        assert_eq!(
            parse(&["--command", "/bin/sleep", "1"])
                .span_name()
                .as_deref(),
            Some("sleep")
        );
        assert_eq!(
            parse(&["--name", "n", "--command", "/bin/sleep"])
                .span_name()
                .as_deref(),
            Some("n")
        );
        assert_eq!(parse(&["--count", "c:1"]).span_name(), None);
    }

    #[test]
    fn command_takes_every_later_argument() {
        let a = parse(&[
            "--name",
            "n",
            "--command",
            "sh",
            "-c",
            "exit 3",
            "--name",
            "x",
        ]);
        assert_eq!(a.command, ["sh", "-c", "exit 3", "--name", "x"]);
        assert_eq!(a.name.as_deref(), Some("n"));
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert_eq!(a.addr, Address::default());
        assert_eq!(a.service, DEFAULT_SERVICE);
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(
            parse(&["--addr", "127.0.0.1:9"]).addr.to_string(),
            "udp://127.0.0.1:9"
        );
        assert_eq!(parse(&["--trace-id", "-5"]).trace_id, Some(-5));
    }

    #[test]
    fn error_chains_are_one_line_without_repeats() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "outer (last: {})", self.0)
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("boom"));
        assert_eq!(chain(&e), "outer (last: boom)");
        let e =
            trace_client::BuildError::Address(ssf_codec::addr::Address::parse("x://").unwrap_err());
        assert!(
            chain(&e).starts_with("invalid client address: "),
            "{}",
            chain(&e)
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_of_signals_and_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGKILL (9).
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
