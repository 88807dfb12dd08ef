//! The validity rules veneur applies to spans and samples, and the normalisation its
//! ingest applies to every span read from a socket.

use std::fmt;

use crate::{SsfSample, SsfSpan};

/// Whether `span` is a valid trace span as veneur judges it: non-zero `id`, `trace_id`,
/// `start_timestamp` and `end_timestamp`, and a non-empty `name`.
///
/// A span that fails this check may still be useful as a carrier of samples.
///
/// ```
/// use ssf_proto::{SsfSpan, is_valid_trace};
/// let mut span = SsfSpan { id: 1, trace_id: 1, start_timestamp: 1, end_timestamp: 2, ..Default::default() };
/// assert!(!is_valid_trace(&span));
/// span.name = "op".into();
/// assert!(is_valid_trace(&span));
/// ```
pub fn is_valid_trace(span: &SsfSpan) -> bool {
    span.id != 0
        && span.trace_id != 0
        && span.start_timestamp != 0
        && span.end_timestamp != 0
        && !span.name.is_empty()
}

/// Like [`is_valid_trace`], with an error that says which requirements failed.
///
/// # Errors
///
/// [`InvalidTrace`] naming every missing field.
pub fn validate_trace(span: &SsfSpan) -> Result<(), InvalidTrace> {
    let mut missing = Vec::new();
    if span.id == 0 {
        missing.push("id");
    }
    if span.trace_id == 0 {
        missing.push("trace_id");
    }
    if span.start_timestamp == 0 {
        missing.push("start_timestamp");
    }
    if span.end_timestamp == 0 {
        missing.push("end_timestamp");
    }
    if span.name.is_empty() {
        missing.push("name");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InvalidTrace { missing })
    }
}

/// A span that is not a valid trace span (see [`validate_trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTrace {
    missing: Vec<&'static str>,
}

impl InvalidTrace {
    /// The fields that are zero or empty, in field order.
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }
}

impl fmt::Display for InvalidTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a valid trace span: {} unset",
            self.missing.join(", ")
        )
    }
}

impl std::error::Error for InvalidTrace {}

/// Whether veneur would turn `sample` into a metric: a known metric kind (enum 0 to 4)
/// and a non-empty name.
pub fn is_valid_metric(sample: &SsfSample) -> bool {
    (0..=4).contains(&sample.metric) && !sample.name.is_empty()
}

/// Applies veneur's ingest normalisation to a decoded span, in place:
///
/// 1. when `name` is empty, the `name` tag (if any) is removed from the tags and becomes
///    the name, even when its value is empty; a non-empty name leaves a `name` tag alone;
/// 2. every sample's `sample_rate` of 0 (absent) becomes 1.
///
/// (veneur also substitutes an empty tag map for an absent one; in Rust the map is never
/// absent.)
///
/// ```
/// use ssf_proto::{normalize, SsfSpan};
/// let mut span = SsfSpan::default();
/// span.tags.insert("name".into(), "legacy".into());
/// normalize(&mut span);
/// assert_eq!(span.name, "legacy");
/// assert!(span.tags.is_empty());
/// ```
pub fn normalize(span: &mut SsfSpan) {
    if span.name.is_empty() {
        if let Some(name) = span.tags.remove("name") {
            span.name = name;
        }
    }
    for sample in &mut span.metrics {
        if sample.sample_rate == 0.0 {
            sample.sample_rate = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn valid() -> SsfSpan {
        SsfSpan {
            id: 1,
            trace_id: 1,
            start_timestamp: 1,
            end_timestamp: 2,
            name: "op".into(),
            ..Default::default()
        }
    }

    #[test]
    fn validity_requires_each_field() {
        assert!(is_valid_trace(&valid()));
        assert_eq!(validate_trace(&valid()), Ok(()));
        let cases: [fn(&mut SsfSpan); 5] = [
            |s| s.id = 0,
            |s| s.trace_id = 0,
            |s| s.start_timestamp = 0,
            |s| s.end_timestamp = 0,
            |s| s.name.clear(),
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut s = valid();
            f(&mut s);
            assert!(!is_valid_trace(&s), "case {i}");
            let err = validate_trace(&s).unwrap_err();
            assert_eq!(err.missing().len(), 1);
            assert!(err.to_string().starts_with("not a valid trace span: "));
        }
        // Negative IDs are fine.
        let mut s = valid();
        s.id = -4;
        assert!(is_valid_trace(&s));
    }

    #[test]
    fn metric_validity() {
        assert!(is_valid_metric(&sample::count("a", 0.0)));
        assert!(!is_valid_metric(&sample::count("", 1.0)));
        let mut s = sample::count("a", 1.0);
        s.metric = 5;
        assert!(!is_valid_metric(&s));
    }

    #[test]
    fn name_tag_fills_an_empty_name_only() {
        let mut s = SsfSpan::default();
        s.tags.insert("name".into(), String::new());
        s.tags.insert("other".into(), "x".into());
        normalize(&mut s);
        assert_eq!(s.name, "");
        assert_eq!(s.tags.len(), 1);

        let mut s = valid();
        s.tags.insert("name".into(), "tag".into());
        normalize(&mut s);
        assert_eq!(s.name, "op");
        assert_eq!(s.tags["name"], "tag");
    }

    #[test]
    fn zero_sample_rate_becomes_one() {
        let mut s = SsfSpan::default();
        let mut c = sample::count("c", 1.0);
        c.sample_rate = 0.0;
        s.metrics = vec![c, sample::count("d", 1.0).into_rate(0.5)];
        normalize(&mut s);
        assert_eq!(s.metrics[0].sample_rate, 1.0);
        assert_eq!(s.metrics[1].sample_rate, 0.5);
    }

    trait IntoRate {
        fn into_rate(self, r: f32) -> Self;
    }
    impl IntoRate for SsfSample {
        fn into_rate(mut self, r: f32) -> Self {
            self.sample_rate = r;
            self
        }
    }
}
