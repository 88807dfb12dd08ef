//! The `ssf` binary end to end: `tail` receives what `emit` sends over UDP, unix and TCP,
//! `--command` runs, times and reports a command, and bad arguments fail cleanly.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, ChildStderr, Command, Output, Stdio};

use serde_json::Value;

const SSF: &str = env!("CARGO_BIN_EXE_ssf");

/// A running `ssf tail`, with the addresses it printed.
struct Tail {
    child: Child,
    stderr: BufReader<ChildStderr>,
    addrs: Vec<String>,
}

impl Tail {
    /// Starts `ssf tail` with `args` and waits until it printed one `listening on` line per
    /// `--listen`.
    fn start(args: &[&str]) -> Tail {
        let listens = args.iter().filter(|a| **a == "--listen").count().max(1);
        let mut child = Command::new(SSF)
            .arg("tail")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssf tail starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut addrs = Vec::new();
        while addrs.len() < listens {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).expect("read tail's stderr");
            assert!(n > 0, "tail exited before listening");
            let addr = line
                .trim_end()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected line from tail: {line:?}"));
            addrs.push(addr.to_owned());
        }
        Tail {
            child,
            stderr,
            addrs,
        }
    }

    /// Waits for tail to exit; returns (stdout, rest of stderr).
    fn finish(mut self) -> (String, String) {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .expect("read tail's stdout");
        let mut err = String::new();
        self.stderr
            .read_to_string(&mut err)
            .expect("read tail's stderr");
        let status = self.child.wait().expect("tail exits");
        assert!(status.success(), "tail failed: {status}\n{err}");
        (out, err)
    }

    /// Waits for tail and parses its stdout as JSON lines.
    fn spans(self) -> (Vec<Value>, String) {
        let (out, err) = self.finish();
        let spans = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        (spans, err)
    }
}

fn ssf(args: &[&str]) -> Output {
    Command::new(SSF)
        .args(args)
        .env_remove("VENEUR_EMIT_TRACE_ID")
        .env_remove("VENEUR_EMIT_PARENT_SPAN_ID")
        .output()
        .expect("ssf runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        text(&out.stderr)
    );
}

/// Emits one full trace span and one metrics-only span to `addr`, then checks that tail
/// printed both with every field intact.
fn emit_and_check(tail: Tail) {
    let addr = tail.addrs[0].clone();
    let full = ssf(&[
        "emit",
        "--addr",
        &addr,
        "--trace-id",
        "4242",
        "--parent-id",
        "17",
        "--name",
        "checkout",
        "--service",
        "shop",
        "--tag",
        "region:eu,canary",
        "--tag",
        "url:http://x:80/",
        "--indicator",
        "--error",
        "--count",
        "orders:3",
        "--gauge",
        "queue.depth:2.5",
        "--timing",
        "db.query:12.5",
        "--set",
        "users:ann",
    ]);
    assert_ok(&full);
    let metrics = ssf(&["emit", "--addr", &addr, "--count", "hits:1", "--tag", "k:v"]);
    assert_ok(&metrics);

    let (spans, _) = tail.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let s = &spans[0];
    assert_eq!(s["trace_id"], 4242);
    assert_eq!(s["parent_id"], 17);
    let id = s["id"].as_i64().expect("integer id");
    assert!(id > 0 && id != 4242 && id != 17);
    assert_eq!(s["name"], "checkout");
    assert_eq!(s["service"], "shop");
    assert_eq!(s["error"], true);
    assert_eq!(s["indicator"], true);
    let (start, end) = (s["start_timestamp"].as_i64(), s["end_timestamp"].as_i64());
    let (start, end) = (start.expect("start"), end.expect("end"));
    assert!(start > 0 && end >= start, "{start} {end}");
    assert_eq!(s["root_start_timestamp"], 0);
    let tags = serde_json::json!({"region": "eu", "canary": "", "url": "http://x:80/"});
    assert_eq!(s["tags"], tags);
    let m = s["metrics"].as_array().expect("metrics");
    let kinds: Vec<(&str, &str)> = m
        .iter()
        .map(|x| (x["metric"].as_str().unwrap(), x["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("COUNTER", "orders"),
            ("GAUGE", "queue.depth"),
            ("HISTOGRAM", "db.query"),
            ("SET", "users")
        ]
    );
    assert_eq!(m[0]["value"], 3.0);
    assert_eq!(m[1]["value"], 2.5);
    assert_eq!(
        (&m[2]["value"], &m[2]["unit"]),
        (&Value::from(12.5), &Value::from("ms"))
    );
    assert_eq!(m[3]["message"], "ann");
    for sample in m {
        assert_eq!(sample["tags"], tags);
        assert_eq!(sample["sample_rate"], 1.0);
        assert_eq!(sample["scope"], "DEFAULT");
    }

    let s = &spans[1];
    for field in [
        "trace_id",
        "id",
        "parent_id",
        "start_timestamp",
        "end_timestamp",
    ] {
        assert_eq!(s[field], 0, "{field}");
    }
    assert_eq!(
        (&s["name"], &s["service"]),
        (&Value::from(""), &Value::from(""))
    );
    assert_eq!(s["tags"], serde_json::json!({}));
    assert_eq!(s["metrics"][0]["metric"], "COUNTER");
    assert_eq!(s["metrics"][0]["name"], "hits");
    assert_eq!(s["metrics"][0]["tags"], serde_json::json!({"k": "v"}));
}

#[test]
fn tail_receives_emit_over_udp() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "2",
        "--idle-timeout",
        "3",
    ]);
    assert!(tail.addrs[0].starts_with("udp://127.0.0.1:"));
    emit_and_check(tail);
}

#[cfg(unix)]
#[test]
fn tail_receives_emit_over_unix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("unix://{}", dir.path().join("ssf.sock").display());
    let tail = Tail::start(&["--listen", &url, "--count", "2", "--idle-timeout", "3"]);
    assert_eq!(tail.addrs[0], url);
    emit_and_check(tail);
}

#[test]
fn tail_receives_emit_over_tcp() {
    let tail = Tail::start(&[
        "--listen",
        "tcp://127.0.0.1:0",
        "--count",
        "2",
        "--idle-timeout",
        "3",
    ]);
    assert!(tail.addrs[0].starts_with("tcp://127.0.0.1:"));
    emit_and_check(tail);
}

#[test]
fn tail_receives_emit_over_grpc() {
    let tail = Tail::start(&[
        "--listen",
        "grpc://127.0.0.1:0",
        "--count",
        "2",
        "--idle-timeout",
        "3",
    ]);
    assert!(tail.addrs[0].starts_with("grpc://127.0.0.1:"));
    emit_and_check(tail);
}

#[test]
fn bare_host_port_is_udp() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "1",
        "--idle-timeout",
        "3",
    ]);
    let bare = tail.addrs[0].trim_start_matches("udp://").to_owned();
    assert_ok(&ssf(&["emit", "--addr", &bare, "--gauge", "g:1"]));
    let (spans, _) = tail.spans();
    assert_eq!(spans[0]["metrics"][0]["name"], "g");
}

#[cfg(unix)]
#[test]
fn command_propagates_exit_code_and_ids() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "2",
        "--idle-timeout",
        "3",
    ]);
    let addr = tail.addrs[0].clone();
    let script = r#"echo "$VENEUR_EMIT_TRACE_ID $VENEUR_EMIT_PARENT_SPAN_ID"; exit 3"#;
    let failed = ssf(&[
        "emit",
        "--addr",
        &addr,
        "--trace-id",
        "77",
        "--parent-id",
        "5",
        "--name",
        "job",
        "--tag",
        "team:ops",
        "--command",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed.stderr));
    let printed = text(&failed.stdout);
    let (trace, span) = printed
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{printed:?}"));
    assert_eq!(trace, "77");

    // IDs from the environment when no option gives them.
    let ok = Command::new(SSF)
        .args(["emit", "--addr", &addr, "--command", "sh", "-c", "exit 0"])
        .env("VENEUR_EMIT_TRACE_ID", "88")
        .env("VENEUR_EMIT_PARENT_SPAN_ID", "9")
        .output()
        .expect("ssf runs");
    assert_ok(&ok);

    let (spans, _) = tail.spans();
    let s = &spans[0];
    assert_eq!(
        s["id"].as_i64().map(|i| i.to_string()).as_deref(),
        Some(span)
    );
    assert_eq!(
        (&s["trace_id"], &s["parent_id"]),
        (&Value::from(77), &Value::from(5))
    );
    assert_eq!(s["error"], true);
    assert_eq!(s["name"], "job");
    assert!(s["end_timestamp"].as_i64() >= s["start_timestamp"].as_i64());
    let timing = &s["metrics"][0];
    assert_eq!(
        (&timing["metric"], &timing["name"]),
        (&Value::from("HISTOGRAM"), &Value::from("job"))
    );
    assert_eq!(timing["unit"], "ms");
    assert_eq!(timing["tags"], serde_json::json!({"team": "ops"}));

    let s = &spans[1];
    assert_eq!(
        (&s["trace_id"], &s["parent_id"]),
        (&Value::from(88), &Value::from(9))
    );
    assert_eq!(s["error"], false);
    // Named after the command.
    assert_eq!(s["name"], "sh");
}

#[cfg(unix)]
#[test]
fn nested_emits_make_a_trace_tree() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "2",
        "--idle-timeout",
        "3",
        "--format",
        "pretty",
    ]);
    let addr = tail.addrs[0].clone();
    // The inner emit is a child of the outer one through the exported IDs; it finishes
    // (and is sent) first.
    let out = ssf(&[
        "emit",
        "--addr",
        &addr,
        "--trace-id",
        "31337",
        "--name",
        "deploy",
        "--tag",
        "app:shop",
        "--command",
        SSF,
        "emit",
        "--addr",
        &addr,
        "--name",
        "migrate",
        "--error",
        "--count",
        "rows:12",
    ]);
    assert_ok(&out);
    let (out, _) = tail.finish();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("trace 31337 (2 spans, "), "{out}");
    assert!(lines[1].starts_with("  deploy  "), "{out}");
    assert!(
        lines[1].contains("[ssf-emit]") && lines[1].contains("app=shop"),
        "{out}"
    );
    assert!(lines[2].contains("histogram deploy "), "{out}");
    assert!(
        lines[3].starts_with("  \u{2514}\u{2500} migrate  "),
        "{out}"
    );
    assert!(lines[3].contains("ERROR"), "{out}");
    assert!(lines[4].contains("counter rows +12"), "{out}");
}

#[test]
fn tail_reports_rejects_and_keeps_going() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "1",
        "--idle-timeout",
        "3",
    ]);
    let addr = tail.addrs[0].trim_start_matches("udp://").to_owned();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&[], &addr).expect("send empty");
    sock.send_to(&[0xff, 0xff, 0xff], &addr)
        .expect("send garbage");
    assert_ok(&ssf(&["emit", "--addr", &addr, "--count", "after:1"]));
    let (spans, err) = tail.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["metrics"][0]["name"], "after");
    assert!(err.contains("rejected zerolength from 127.0.0.1:"), "{err}");
    assert!(
        err.contains("rejected undecodable from 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("received 1 spans, rejected 2 inputs"), "{err}");
}

#[cfg(unix)]
#[test]
fn interrupt_prints_waiting_traces_and_exits_cleanly() {
    let mut tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--format",
        "pretty",
        "--idle-timeout",
        "5",
    ]);
    let addr = tail.addrs[0].clone();
    // A span whose root never comes, then a metrics-only span, printed at once: once it
    // is out, the first one is waiting in tail.
    let orphan = ["--trace-id", "9", "--parent-id", "4", "--name", "orphan"];
    assert_ok(&ssf(&[&["emit", "--addr", &addr][..], &orphan].concat()));
    assert_ok(&ssf(&["emit", "--addr", &addr, "--count", "marker:1"]));
    let mut stdout = BufReader::new(tail.child.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read tail's stdout");
    assert_eq!(first, "metrics\n");

    let kill = Command::new("kill")
        .args(["-INT", &tail.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("read tail's stdout");
    let mut err = String::new();
    tail.stderr
        .read_to_string(&mut err)
        .expect("read tail's stderr");
    assert!(tail.child.wait().expect("tail exits").success(), "{err}");
    assert!(out.starts_with("  \u{b7} counter marker +1\n"), "{out}");
    assert!(out.contains("trace 9 (1 span, "), "{out}");
    assert!(out.contains("; no root span seen)\n  orphan  "), "{out}");
    assert!(err.contains("received 2 spans"), "{err}");
}

#[test]
fn tail_exits_after_the_idle_timeout() {
    let tail = Tail::start(&["--listen", "udp://127.0.0.1:0", "--idle-timeout", "0.2"]);
    let (out, err) = tail.finish();
    assert_eq!(out, "");
    assert!(err.contains("received 0 spans"), "{err}");
}

#[cfg(unix)]
#[test]
fn undeliverable_span_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("unix://{}", dir.path().join("nobody.sock").display());
    let out = ssf(&["emit", "--addr", &url, "--count", "c:1", "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: the span was not delivered to unix://"),
        "{err}"
    );
}

#[test]
fn bad_arguments_give_one_line_and_exit_code_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["emit", "--bogus"],
        &["emit", "--addr", "bogus://x"],
        &["emit", "--addr", "127.0.0.1"],
        &["emit", "--addr", ""],
        &["emit", "--count", "hits:x"],
        &["emit", "--count", "hits"],
        &["emit", "--gauge", "g"],
        &["emit", "--gauge", "g:NaN"],
        &["emit", "--timing", "t:-1"],
        &["emit", "--set", ":m"],
        &["emit", "--trace-id", "x"],
        &["emit", "--trace-id", "99999999999999999999"],
        &["emit", "--timeout", "soon"],
        &["emit", "--timeout", "0"],
        &["emit", "--command"],
        &["emit"],
        &["emit", "--trace-id", "5"],
        &["emit", "--addr", "unixgram:///tmp/x.sock", "--count", "c:1"],
        &["tail", "--count", "0"],
        &["tail", "--listen", "udp://nohost"],
        &["tail", "--format", "xml"],
        &["tail", "--idle-timeout", "-1"],
        &["bench", "--spans", "-3"],
        &["bench", "--rate", "0"],
        &["bench", "--producers", "100000"],
        &["bench", "--backends", "100000"],
        &["bench", "--capacity", "99999999999"],
        &[
            "bench",
            "--addr",
            "udp://127.0.0.1:9",
            "--in-process",
            "udp",
        ],
        &["bench", "--in-process", "carrier-pigeon"],
        &["bench", "--raw", "--rate", "5"],
        &["bench", "--raw", "--buffered"],
        &["bench", "--encode-only", "--in-process", "tcp"],
        &["bench", "--encode-only", "--raw"],
        &["bench", "--count-only", "--addr", "udp://127.0.0.1:9"],
        &["bench", "--idle", "0"],
        &["bench", "--idle", "1", "--duration", "1"],
        &["bench", "--sink-rate", "100"],
        &["bench", "--count-only", "--sink-rate", "0"],
    ];
    for args in cases {
        let out = ssf(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn bad_environment_id_is_an_error_unless_the_option_wins() {
    let run = |extra: &[&str]| {
        Command::new(SSF)
            .args([
                "emit",
                "--addr",
                "udp://127.0.0.1:9",
                "--name",
                "n",
                "--count",
                "c:1",
            ])
            .args(extra)
            .env("VENEUR_EMIT_TRACE_ID", "not-a-number")
            .output()
            .expect("ssf runs")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("VENEUR_EMIT_TRACE_ID"), "{err}");
    // The option wins, and the environment is not read.
    assert_ok(&run(&["--trace-id", "3"]));
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["emit", "--help"],
        &["tail", "-h"],
    ] {
        let out = ssf(args);
        assert_ok(&out);
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[cfg(unix)]
#[test]
fn bench_reports_json() {
    let out = ssf(&[
        "bench",
        "--in-process",
        "unix",
        "--spans",
        "500",
        "--producers",
        "2",
        "--json",
    ]);
    assert_ok(&out);
    let report: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(report["transport"], "unix");
    for (key, n) in [
        ("attempted", 500),
        ("accepted", 500),
        ("refused", 0),
        ("sent", 500),
        ("delivered", 500),
    ] {
        assert_eq!(report[key], n, "{key}: {report}");
    }
    for reason in [
        "closed",
        "write_error",
        "connect_timeout",
        "oversize",
        "panicked",
    ] {
        assert_eq!(report["dropped"][reason], 0, "{reason}");
    }
    for key in ["elapsed_s", "spans_per_sec", "cpu_s", "peak_rss_bytes"] {
        assert!(
            report[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {report}"
        );
    }
}

#[test]
fn bench_paced_beyond_the_clock_stops_instead_of_panicking() {
    let out = ssf(&["bench", "--rate", "1e-300", "--spans", "3", "--json"]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(r["attempted"], 1, "{r}");
    let out = ssf(&["bench", "--rate", "1", "--duration", "0.3", "--json"]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(r["attempted"], 1, "{r}");
}

#[test]
fn bench_without_waiting_counts_refusals() {
    let out = ssf(&[
        "bench",
        "--in-process",
        "tcp",
        "--spans",
        "2000",
        "--no-wait",
        "--capacity",
        "1",
        "--backends",
        "1",
        "--json",
    ]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert_eq!(n("attempted"), 2000);
    assert_eq!(n("accepted") + n("refused"), 2000);
    assert_eq!(n("sent"), n("accepted"));
    assert_eq!(n("delivered"), n("sent"));
}

#[test]
fn bench_over_grpc_accounts_for_every_span() {
    let r = bench_json(&["--in-process", "grpc", "--spans", "3000"]);
    assert_eq!(r["transport"], "grpc", "{r}");
    assert_eq!(field(&r, "attempted"), 3000, "{r}");
    assert_eq!(field(&r, "sent"), 3000, "{r}");
    assert_eq!(field(&r, "delivered"), 3000, "{r}");
    assert_eq!(r["dropped"]["grpc_status"], 0, "{r}");
    assert_eq!(r["dropped"]["total"], 0, "{r}");
}

#[test]
fn bench_over_grpc_with_few_calls_in_flight_accounts_for_every_span() {
    let r = bench_json(&[
        "--in-process",
        "grpc",
        "--spans",
        "2000",
        "--backends",
        "2",
        "--grpc-calls",
        "4",
    ]);
    assert_eq!(field(&r, "sent"), 2000, "{r}");
    assert_eq!(field(&r, "delivered"), 2000, "{r}");
    assert_eq!(r["dropped"]["total"], 0, "{r}");
}

/// Runs `ssf bench` with `args` plus `--json` and parses its report.
fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = ssf(&all);
    assert_ok(&out);
    serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object")
}

fn field(r: &Value, key: &str) -> u64 {
    r[key].as_u64().unwrap_or_else(|| panic!("{key}: {r}"))
}

#[cfg(unix)]
#[test]
fn bench_raw_writes_whole_frames_to_a_counting_sink() {
    for (transport, producers) in [("unix", "1"), ("tcp", "2")] {
        let r = bench_json(&[
            "--raw",
            "--in-process",
            transport,
            "--count-only",
            "--producers",
            producers,
            "--spans",
            "5000",
        ]);
        assert_eq!(r["mode"], "raw", "{r}");
        assert_eq!(r["sink"], "count-only", "{r}");
        assert_eq!(field(&r, "sent"), 5000, "{r}");
        assert_eq!(field(&r, "delivered"), 5000, "{r}");
        assert!(r.get("accepted").is_none(), "no client ran: {r}");
    }
}

#[test]
fn bench_raw_sends_one_datagram_per_span() {
    let r = bench_json(&[
        "--raw",
        "--in-process",
        "udp",
        "--count-only",
        "--spans",
        "300",
    ]);
    assert_eq!(field(&r, "sent"), 300, "{r}");
    // The kernel may drop datagrams a busy reader did not take in time, never add any.
    let delivered = field(&r, "delivered");
    assert!((1..=300).contains(&delivered), "{r}");
}

#[test]
fn bench_count_only_counts_what_the_client_sent() {
    let transports: &[&str] = if cfg!(unix) {
        &["tcp", "unix"]
    } else {
        &["tcp"]
    };
    for &transport in transports {
        let r = bench_json(&[
            "--in-process",
            transport,
            "--count-only",
            "--buffered",
            "--capacity",
            "8",
            "--producers",
            "2",
            "--spans",
            "3000",
        ]);
        assert_eq!(r["mode"], "client", "{r}");
        assert_eq!(field(&r, "accepted"), 3000, "{r}");
        assert_eq!(field(&r, "refused"), 0, "{r}");
        assert_eq!(field(&r, "sent"), 3000, "{r}");
        assert_eq!(field(&r, "delivered"), 3000, "{r}");
        assert!(r["max_tick_late_ms"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn bench_reuse_and_encoding_in_the_backends_deliver_every_span() {
    let transports: &[&str] = if cfg!(unix) {
        &["tcp", "unix"]
    } else {
        &["tcp"]
    };
    for &transport in transports {
        for extra in [&["--reuse"][..], &["--encode-in-backend"][..]] {
            let mut args = vec![
                "--in-process",
                transport,
                "--count-only",
                "--producers",
                "2",
                "--spans",
                "3000",
            ];
            args.extend_from_slice(extra);
            let r = bench_json(&args);
            assert_eq!(r["reuse"], extra[0] == "--reuse", "{r}");
            let placement = if extra[0] == "--reuse" {
                "record"
            } else {
                "backend"
            };
            assert_eq!(r["encoded_in"], placement, "{r}");
            assert_eq!(field(&r, "accepted"), 3000, "{r}");
            assert_eq!(field(&r, "sent"), 3000, "{r}");
            assert_eq!(field(&r, "delivered"), 3000, "{r}");
        }
    }
}

#[test]
fn bench_span_api_delivers_every_span_it_builds() {
    // Spans built through the Span API, static and owned tag values; a queue of 64 makes
    // the producers meet a full queue and retry the refused spans.
    for transport in ["tcp", "udp"] {
        for extra in [&["--span-api"][..], &["--span-api", "--owned-tags"][..]] {
            let mut args = vec![
                "--in-process",
                transport,
                "--producers",
                "2",
                "--spans",
                "3000",
                "--capacity",
                "64",
            ];
            if transport == "udp" {
                // Paced: a UDP receiver that decodes is slower than the client.
                args.extend_from_slice(&["--rate", "20000"]);
            }
            args.extend_from_slice(extra);
            let r = bench_json(&args);
            let kind = if extra.len() == 2 {
                "span_api_owned"
            } else {
                "span_api"
            };
            assert_eq!(r["spans"], kind, "{r}");
            assert_eq!(field(&r, "accepted"), 3000, "{r}");
            assert_eq!(field(&r, "sent"), 3000, "{r}");
            assert_eq!(field(&r, "delivered"), 3000, "{r}");
        }
    }
    let r = bench_json(&["--encode-only", "--span-api", "--spans", "1000"]);
    assert_eq!(
        (r["mode"].as_str(), r["spans"].as_str()),
        (Some("encode"), Some("span_api")),
        "{r}"
    );
    assert_eq!(field(&r, "sent"), 1000, "{r}");
}

#[test]
fn bench_udp_count_only_reads_every_datagram_of_a_paced_run() {
    // Paced well below any machine's UDP rate: nothing should be lost, and the batched
    // reads count each datagram once.
    let r = bench_json(&[
        "--in-process",
        "udp",
        "--count-only",
        "--reuse",
        "--rate",
        "20000",
        "--spans",
        "2000",
    ]);
    assert_eq!(field(&r, "sent"), 2000, "{r}");
    assert_eq!(field(&r, "delivered"), 2000, "{r}");
}

#[test]
fn bench_encode_only_reuse_makes_no_spans() {
    let r = bench_json(&["--encode-only", "--reuse", "--spans", "1000"]);
    assert_eq!(r["mode"], "encode", "{r}");
    assert_eq!(r["reuse"], true, "{r}");
    assert_eq!(field(&r, "sent"), 1000, "{r}");
}

#[test]
fn bench_encode_only_needs_no_network() {
    let r = bench_json(&["--encode-only", "--spans", "1000"]);
    assert_eq!(r["mode"], "encode", "{r}");
    assert_eq!(field(&r, "sent"), 1000, "{r}");
    assert!(r.get("address").is_none(), "{r}");
    assert!(r["spans_per_sec"].as_f64().is_some_and(|x| x > 0.0), "{r}");
}

#[test]
fn bench_idle_client_reports_its_cpu_time_and_drops() {
    let r = bench_json(&[
        "--idle",
        "0.3",
        "--in-process",
        "tcp",
        "--capacity",
        "4",
        "--backends",
        "1",
        "--spans",
        "50",
    ]);
    assert_eq!(r["mode"], "idle", "{r}");
    assert_eq!(field(&r, "sent"), 0, "nothing listens: {r}");
    assert_eq!(field(&r, "accepted") + field(&r, "refused"), 50, "{r}");
    assert!(field(&r, "refused") > 0, "a full queue refuses: {r}");
    assert_eq!(
        field(&r, "accepted"),
        r["dropped"]["total"].as_u64().unwrap_or(u64::MAX),
        "every accepted span is dropped: {r}"
    );
    assert!(r["idle_cpu_s"].as_f64().is_some(), "{r}");
    assert_eq!(r["idle_s"], 0.3, "{r}");
}

#[test]
fn bench_sink_rate_holds_the_counting_receiver_back() {
    let start = std::time::Instant::now();
    let r = bench_json(&[
        "--in-process",
        "tcp",
        "--count-only",
        "--sink-rate",
        "2000",
        "--spans",
        "2000",
    ]);
    // Counting 2000 spans at 2000 per second cannot take less than about a second (the
    // last read's spans are counted before the wait); slowness cannot fail this.
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(500),
        "{:?}: {r}",
        start.elapsed()
    );
    assert_eq!(field(&r, "delivered"), 2000, "{r}");
}

#[test]
fn tail_prints_protobuf_text_format() {
    let tail = Tail::start(&[
        "--listen",
        "udp://127.0.0.1:0",
        "--count",
        "1",
        "--idle-timeout",
        "3",
        "--format",
        "text",
    ]);
    let addr = tail.addrs[0].clone();
    let out = ssf(&[
        "emit",
        "--addr",
        &addr,
        "--trace-id",
        "31337",
        "--parent-id",
        "42",
        "--name",
        "deploy \"v2\"",
        "--tag",
        "app:shop",
    ]);
    assert_ok(&out);
    let (out, _) = tail.finish();
    assert!(out.starts_with("trace_id: 31337\nid: "), "{out}");
    assert!(out.contains("\nparent_id: 42\n"), "{out}");
    assert!(out.contains("\nservice: \"ssf-emit\"\n"), "{out}");
    assert!(
        out.contains("tags {\n  key: \"app\"\n  value: \"shop\"\n}\n"),
        "{out}"
    );
    assert!(out.contains("name: \"deploy \\\"v2\\\"\"\n"), "{out}");
    assert!(out.ends_with("---\n"), "{out}");
}
