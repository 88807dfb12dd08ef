//! The `pretty` output of `ssf tail`: spans grouped into trace trees, for people.
//!
//! Spans usually arrive children first (a child finishes before its parent). [`Pretty`]
//! keeps the spans of each trace until its root (a span without a parent) arrives, then
//! prints the whole tree. Metrics-only spans (no trace ID) are printed at once. Spans of a
//! trace already printed are printed on their own, marked as late. Whatever is still held
//! is printed by [`Pretty::flush`] (at idle time and at exit), and the oldest trace is
//! printed early when more than [`MAX_PENDING_SPANS`] spans wait, so memory stays bounded
//! whatever arrives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use ssf_proto::{Metric, Scope, SsfSample, SsfSpan, Status};

/// How many spans may wait for their root before the oldest trace is printed as it is.
pub(crate) const MAX_PENDING_SPANS: usize = 10_000;

/// How many printed trace IDs are remembered to recognise late spans.
const REMEMBERED_TRACES: usize = 4096;

/// Tree guides are drawn down to this depth; deeper spans are drawn at this depth with
/// their real depth written out, so a very long chain cannot make lines grow without bound.
const MAX_DRAWN_DEPTH: usize = 32;

/// Groups spans into traces and renders them; see the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct Pretty {
    pending: HashMap<i64, Vec<SsfSpan>>,
    /// Trace IDs in order of their first pending span.
    order: VecDeque<i64>,
    pending_spans: usize,
    printed: HashSet<i64>,
    printed_order: VecDeque<i64>,
}

impl Pretty {
    /// Takes one span and returns the text to print now (possibly empty).
    pub(crate) fn push(&mut self, span: SsfSpan) -> String {
        if span.trace_id == 0 {
            return render_metrics_only(&span);
        }
        let trace_id = span.trace_id;
        if self.printed.contains(&trace_id) && !self.pending.contains_key(&trace_id) {
            return render_trace(&[span], "late span");
        }
        let is_root = span.parent_id == 0;
        if !self.pending.contains_key(&trace_id) {
            self.order.push_back(trace_id);
        }
        self.pending.entry(trace_id).or_default().push(span);
        self.pending_spans += 1;
        let mut out = String::new();
        if is_root {
            out.push_str(&self.emit(trace_id, ""));
        }
        while self.pending_spans > MAX_PENDING_SPANS {
            let Some(oldest) = self.order.front().copied() else {
                break;
            };
            out.push_str(&self.emit(oldest, "incomplete: too many spans waiting"));
        }
        out
    }

    /// Renders every trace still waiting for its root, oldest first.
    pub(crate) fn flush(&mut self) -> String {
        let mut out = String::new();
        while let Some(&trace_id) = self.order.front() {
            out.push_str(&self.emit(trace_id, "no root span seen"));
        }
        out
    }

    fn emit(&mut self, trace_id: i64, note: &str) -> String {
        self.order.retain(|&t| t != trace_id);
        let spans = self.pending.remove(&trace_id).unwrap_or_default();
        self.pending_spans -= spans.len();
        let has_root = spans.iter().any(|s| s.parent_id == 0);
        self.remember(trace_id);
        render_trace(&spans, if has_root { "" } else { note })
    }

    fn remember(&mut self, trace_id: i64) {
        if self.printed.insert(trace_id) {
            self.printed_order.push_back(trace_id);
            if self.printed_order.len() > REMEMBERED_TRACES {
                if let Some(old) = self.printed_order.pop_front() {
                    self.printed.remove(&old);
                }
            }
        }
    }
}

/// Renders the spans of one trace as a tree, with a header line naming the trace, the
/// number of spans, the total duration and `note` (when not empty).
pub(crate) fn render_trace(spans: &[SsfSpan], note: &str) -> String {
    let mut out = String::new();
    let Some(first) = spans.first() else {
        return out;
    };
    let total = spans
        .iter()
        .find(|s| s.parent_id == 0)
        .map(|root| duration(root.start_timestamp, root.end_timestamp))
        .unwrap_or_else(|| {
            let start = spans
                .iter()
                .map(|s| s.start_timestamp)
                .filter(|&t| t != 0)
                .min();
            let end = spans
                .iter()
                .map(|s| s.end_timestamp)
                .filter(|&t| t != 0)
                .max();
            duration(start.unwrap_or(0), end.unwrap_or(0))
        });
    let count = spans.len();
    let plural = if count == 1 { "" } else { "s" };
    let _ = write!(
        out,
        "trace {} ({count} span{plural}, {total}",
        first.trace_id
    );
    if !note.is_empty() {
        let _ = write!(out, "; {note}");
    }
    out.push_str(")\n");

    // Children of each span, by index; a parent ID present more than once goes to its
    // first holder.
    let mut by_id: HashMap<i64, usize> = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        by_id.entry(s.id).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match by_id.get(&s.parent_id) {
            Some(&p) if p != i && s.parent_id != 0 => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let order = |v: &mut Vec<usize>| {
        v.sort_by_key(|&i| (spans[i].start_timestamp, spans[i].id));
    };
    children.iter_mut().for_each(order);
    order(&mut roots);

    let mut seen = vec![false; spans.len()];
    let draw = |top: usize, out: &mut String, seen: &mut Vec<bool>| {
        // Depth-first with an explicit stack: (span, prefix for its line, connector,
        // prefix for its children, depth).
        let mut stack = vec![(top, String::from("  "), "", String::from("  "), 0usize)];
        while let Some((i, prefix, connector, child_prefix, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let parent_service = by_id
                .get(&spans[i].parent_id)
                .map(|&p| spans[p].service.as_str());
            out.push_str(&prefix);
            out.push_str(connector);
            if depth > MAX_DRAWN_DEPTH {
                let _ = write!(out, "[depth {depth}] ");
            }
            out.push_str(&span_label(&spans[i], parent_service));
            out.push('\n');
            let kids = &children[i];
            let guide = if kids.is_empty() { "   " } else { "\u{2502}  " };
            for sample in &spans[i].metrics {
                let _ = writeln!(out, "{child_prefix}{guide}\u{b7} {}", sample_label(sample));
            }
            for (k, &c) in kids.iter().enumerate().rev() {
                let last = k + 1 == kids.len();
                let (conn, more) = if last {
                    ("\u{2514}\u{2500} ", "   ")
                } else {
                    ("\u{251c}\u{2500} ", "\u{2502}  ")
                };
                let grand = if depth < MAX_DRAWN_DEPTH {
                    format!("{child_prefix}{more}")
                } else {
                    child_prefix.clone()
                };
                stack.push((c, child_prefix.clone(), conn, grand, depth + 1));
            }
        }
    };
    for &r in &roots {
        draw(r, &mut out, &mut seen);
    }
    // Spans in a parent cycle are reachable from no root; draw them from the first one.
    for i in 0..spans.len() {
        if !seen[i] {
            draw(i, &mut out, &mut seen);
        }
    }
    out
}

/// Renders a span without a trace ID: its service and name (when set) and its samples.
pub(crate) fn render_metrics_only(span: &SsfSpan) -> String {
    let mut out = String::from("metrics");
    if !span.service.is_empty() {
        let _ = write!(out, " [{}]", clean(&span.service));
    }
    if !span.name.is_empty() {
        let _ = write!(out, " {}", clean(&span.name));
    }
    let tags = tag_list(&span.tags);
    if !tags.is_empty() {
        let _ = write!(out, " {{{tags}}}");
    }
    if span.metrics.is_empty() {
        out.push_str(" (no samples)");
    }
    out.push('\n');
    for sample in &span.metrics {
        let _ = writeln!(out, "  \u{b7} {}", sample_label(sample));
    }
    out
}

fn span_label(span: &SsfSpan, parent_service: Option<&str>) -> String {
    let mut out = if span.name.is_empty() {
        String::from("(unnamed)")
    } else {
        clean(&span.name)
    };
    let _ = write!(
        out,
        "  {}",
        duration(span.start_timestamp, span.end_timestamp)
    );
    if span.error {
        out.push_str("  ERROR");
    }
    if span.indicator {
        out.push_str("  indicator");
    }
    if !span.service.is_empty() && parent_service != Some(span.service.as_str()) {
        let _ = write!(out, "  [{}]", clean(&span.service));
    }
    let tags = tag_list(&span.tags);
    if !tags.is_empty() {
        let _ = write!(out, "  {tags}");
    }
    let _ = write!(out, "  #{}", span.id);
    out
}

fn sample_label(s: &SsfSample) -> String {
    let name = clean(&s.name);
    let mut out = match Metric::try_from(s.metric) {
        Ok(Metric::Counter) => format!("counter {name} +{}", s.value),
        Ok(Metric::Gauge) => format!("gauge {name} = {}", s.value),
        Ok(Metric::Histogram) => format!("histogram {name} {}{}", s.value, clean(&s.unit)),
        Ok(Metric::Set) => format!("set {name} \u{220b} {:?}", s.message),
        Ok(Metric::Status) => {
            let status = Status::try_from(s.status)
                .map(|st| st.as_str_name().to_owned())
                .unwrap_or_else(|_| s.status.to_string());
            format!("status {name} {status}")
        }
        Err(_) => format!("metric#{} {name} {}", s.metric, s.value),
    };
    if s.metric != Metric::Histogram as i32 && !s.unit.is_empty() {
        let _ = write!(out, " {}", clean(&s.unit));
    }
    if s.sample_rate != 1.0 {
        let _ = write!(out, " @{}", s.sample_rate);
    }
    if s.scope != Scope::Default as i32 {
        let scope = Scope::try_from(s.scope)
            .map(|sc| sc.as_str_name().to_owned())
            .unwrap_or_else(|_| s.scope.to_string());
        let _ = write!(out, " scope={scope}");
    }
    let tags = tag_list(&s.tags);
    if !tags.is_empty() {
        let _ = write!(out, " {{{tags}}}");
    }
    out
}

fn tag_list(tags: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&clean(k));
        if !v.is_empty() {
            out.push('=');
            out.push_str(&clean(v));
        }
    }
    out
}

/// Text from the network with control characters (terminal escapes among them) escaped.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A span's duration for people: `850ns`, `12.3µs`, `4.567ms`, `1.234s`; `?` when a
/// timestamp is missing or the end is before the start.
pub(crate) fn duration(start: i64, end: i64) -> String {
    if start == 0 || end == 0 {
        return "?".to_owned();
    }
    let Some(ns) = end.checked_sub(start).filter(|&ns| ns >= 0) else {
        return "?".to_owned();
    };
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}\u{b5}s", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use ssf_proto::sample::{self, SampleExt};

    use super::*;

    fn span(trace: i64, id: i64, parent: i64, name: &str, start: i64, end: i64) -> SsfSpan {
        SsfSpan {
            trace_id: trace,
            id,
            parent_id: parent,
            name: name.into(),
            service: "shop".into(),
            start_timestamp: start,
            end_timestamp: end,
            ..Default::default()
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration(1, 851), "850ns");
        assert_eq!(duration(1_000, 13_300), "12.3\u{b5}s");
        assert_eq!(duration(1, 4_567_001), "4.567ms");
        assert_eq!(duration(1, 1_234_000_001), "1.234s");
        assert_eq!(duration(5, 5), "0ns");
        assert_eq!(duration(0, 5), "?");
        assert_eq!(duration(5, 0), "?");
        assert_eq!(duration(10, 5), "?");
        assert_eq!(duration(i64::MIN, i64::MAX), "?");
    }

    #[test]
    fn renders_a_tree_in_start_order_with_samples() {
        let mut root = span(9, 1, 0, "checkout", 1_000, 12_501_000);
        root.tags.insert("customer".into(), "c-17".into());
        let mut charge = span(9, 2, 1, "charge", 2_000, 8_002_000);
        charge.error = true;
        charge
            .metrics
            .push(sample::count("charges", 1.0).with_tag("k", "v"));
        let mut email = span(9, 3, 1, "email", 9_000_000, 10_000_000);
        email.service = "mailer".into();
        let query = span(9, 4, 2, "db.query", 3_000, 4_000);
        let text = render_trace(&[email, query, charge, root], "");
        let expected = "\
trace 9 (4 spans, 12.500ms)
  checkout  12.500ms  [shop]  customer=c-17  #1
  \u{251c}\u{2500} charge  8.000ms  ERROR  #2
  \u{2502}  \u{2502}  \u{b7} counter charges +1 {k=v}
  \u{2502}  \u{2514}\u{2500} db.query  1.0\u{b5}s  #4
  \u{2514}\u{2500} email  1.000ms  [mailer]  #3
";
        assert_eq!(text, expected);
    }

    #[test]
    fn sample_labels() {
        let t = sample::timing(
            "lat",
            std::time::Duration::from_micros(1500),
            std::time::Duration::from_millis(1),
        );
        assert_eq!(sample_label(&t), "histogram lat 1.5ms");
        assert_eq!(
            sample_label(&sample::gauge("g", 2.5).with_sample_rate(0.5)),
            "gauge g = 2.5 @0.5"
        );
        assert_eq!(
            sample_label(&sample::set("users", "ann")),
            "set users \u{220b} \"ann\""
        );
        assert_eq!(
            sample_label(&sample::status("db", Status::Warning).with_scope(Scope::Global)),
            "status db WARNING scope=GLOBAL"
        );
        let odd = SsfSample {
            metric: 42,
            name: "x".into(),
            value: 1.0,
            sample_rate: 1.0,
            ..Default::default()
        };
        assert_eq!(sample_label(&odd), "metric#42 x 1");
    }

    #[test]
    fn control_characters_are_escaped() {
        let s = span(1, 1, 0, "evil\x1b[31mred", 1, 2);
        let text = render_trace(&[s], "");
        assert!(!text.contains('\x1b'));
        assert!(text.contains("evil\\u{1b}[31mred"), "{text}");
    }

    #[test]
    fn cycles_self_parents_and_duplicates_terminate() {
        let spans = [
            span(5, 1, 2, "a", 1, 2),
            span(5, 2, 1, "b", 1, 2),
            span(5, 3, 3, "self", 1, 2),
            span(5, 3, 3, "dup", 1, 2),
        ];
        let text = render_trace(&spans, "no root span seen");
        assert!(
            text.starts_with("trace 5 (4 spans, 1ns; no root span seen)\n"),
            "{text}"
        );
        for name in ["a  ", "b  ", "self  ", "dup  "] {
            assert_eq!(text.matches(name).count(), 1, "{name} in {text}");
        }
    }

    #[test]
    fn deep_chains_keep_lines_short() {
        let spans: Vec<SsfSpan> = (1..=5000)
            .map(|i| span(1, i, i - 1, "s", i, i + 1))
            .collect();
        let text = render_trace(&spans, "");
        assert_eq!(text.lines().count(), 5001);
        assert!(text.lines().all(|l| l.chars().count() < 200));
        assert!(text.contains("[depth 4999]"));
    }

    #[test]
    fn pretty_waits_for_the_root() {
        let mut p = Pretty::default();
        assert_eq!(p.push(span(7, 2, 1, "child", 2, 3)), "");
        let out = p.push(span(7, 1, 0, "root", 1, 4));
        assert!(out.starts_with("trace 7 (2 spans, 3ns)\n"), "{out}");
        assert!(out.contains("\u{2514}\u{2500} child"), "{out}");
        // A straggler is printed at once, marked late.
        let late = p.push(span(7, 3, 1, "straggler", 2, 3));
        assert!(
            late.starts_with("trace 7 (1 span, 1ns; late span)\n"),
            "{late}"
        );
        assert_eq!(p.flush(), "");
    }

    #[test]
    fn pretty_prints_metrics_at_once_and_leftovers_on_flush() {
        let mut p = Pretty::default();
        let mut m = SsfSpan::default();
        m.metrics.push(sample::count("hits", 2.0));
        assert_eq!(p.push(m), "metrics\n  \u{b7} counter hits +2\n");
        assert_eq!(p.push(span(8, 2, 1, "orphan", 1, 2)), "");
        let out = p.flush();
        assert!(
            out.starts_with("trace 8 (1 span, 1ns; no root span seen)\n"),
            "{out}"
        );
        assert_eq!(p.flush(), "");
    }

    #[test]
    fn pretty_memory_is_bounded() {
        let mut p = Pretty::default();
        let mut printed = 0;
        for i in 0..(MAX_PENDING_SPANS as i64 + 10) {
            // Every span its own rootless trace.
            printed += p
                .push(span(i + 1, 1, 99, "x", 1, 2))
                .matches("trace ")
                .count();
        }
        assert_eq!(printed, 10);
        assert_eq!(p.pending_spans, MAX_PENDING_SPANS);
        assert!(p.printed.len() <= REMEMBERED_TRACES);
    }
}
