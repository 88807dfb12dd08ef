//! Spans as JSON, the way veneur's tools render them: one object per span with every
//! field present (defaults included) under the proto field names, enums by their proto
//! names (`COUNTER`, `OK`, `DEFAULT`, ...; an unknown number stays a number), IDs as JSON
//! integers and `value` / `sample_rate` as 32-bit floats.
//!
//! ```
//! use ssf_proto::{json, SsfSpan};
//! let span = SsfSpan { id: 7, name: "op".into(), ..Default::default() };
//! let text = json::to_string(&span);
//! assert!(text.starts_with(r#"{"trace_id":0,"id":7,"#));
//! assert_eq!(json::from_str(&text).unwrap(), span);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Metric, Scope, SsfSample, SsfSpan, Status};

pub use serde_json::Error;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum EnumRepr {
    Name(String),
    Number(i32),
}

impl Default for EnumRepr {
    fn default() -> Self {
        EnumRepr::Number(0)
    }
}

impl EnumRepr {
    fn out(n: i32, name: Option<&'static str>) -> Self {
        match name {
            Some(name) => EnumRepr::Name(name.to_owned()),
            None => EnumRepr::Number(n),
        }
    }

    fn into_i32(self, parse: fn(&str) -> Option<i32>) -> Result<i32, String> {
        match self {
            EnumRepr::Number(n) => Ok(n),
            EnumRepr::Name(s) => parse(&s).ok_or_else(|| format!("unknown enum name {s:?}")),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct SampleJson {
    metric: EnumRepr,
    name: String,
    value: f32,
    timestamp: i64,
    message: String,
    status: EnumRepr,
    sample_rate: f32,
    tags: BTreeMap<String, String>,
    unit: String,
    scope: EnumRepr,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct SpanJson {
    trace_id: i64,
    id: i64,
    parent_id: i64,
    start_timestamp: i64,
    end_timestamp: i64,
    error: bool,
    service: String,
    name: String,
    tags: BTreeMap<String, String>,
    indicator: bool,
    root_start_timestamp: i64,
    metrics: Vec<SampleJson>,
}

fn sample_out(s: &SsfSample) -> SampleJson {
    SampleJson {
        metric: EnumRepr::out(
            s.metric,
            Metric::try_from(s.metric).ok().map(|m| m.as_str_name()),
        ),
        name: s.name.clone(),
        value: s.value,
        timestamp: s.timestamp,
        message: s.message.clone(),
        status: EnumRepr::out(
            s.status,
            Status::try_from(s.status).ok().map(|m| m.as_str_name()),
        ),
        sample_rate: s.sample_rate,
        tags: s.tags.clone(),
        unit: s.unit.clone(),
        scope: EnumRepr::out(
            s.scope,
            Scope::try_from(s.scope).ok().map(|m| m.as_str_name()),
        ),
    }
}

fn span_out(s: &SsfSpan) -> SpanJson {
    SpanJson {
        trace_id: s.trace_id,
        id: s.id,
        parent_id: s.parent_id,
        start_timestamp: s.start_timestamp,
        end_timestamp: s.end_timestamp,
        error: s.error,
        service: s.service.clone(),
        name: s.name.clone(),
        tags: s.tags.clone(),
        indicator: s.indicator,
        root_start_timestamp: s.root_start_timestamp,
        metrics: s.metrics.iter().map(sample_out).collect(),
    }
}

/// `span` as a single-line JSON object.
pub fn to_string(span: &SsfSpan) -> String {
    // Serialising plain structs of strings, numbers and maps with string keys cannot fail.
    serde_json::to_string(&span_out(span)).unwrap_or_default()
}

/// `span` as a [`serde_json::Value`].
pub fn to_value(span: &SsfSpan) -> serde_json::Value {
    serde_json::to_value(span_out(span)).unwrap_or_default()
}

/// Parses a span from its JSON rendering; missing fields take their default values.
///
/// # Errors
///
/// When the text is not JSON of that shape, or an enum name is unknown.
pub fn from_str(text: &str) -> Result<SsfSpan, Error> {
    let j: SpanJson = serde_json::from_str(text)?;
    let mut metrics = Vec::with_capacity(j.metrics.len());
    for s in j.metrics {
        let custom = |e: String| <Error as serde::de::Error>::custom(e);
        metrics.push(SsfSample {
            metric: s
                .metric
                .into_i32(|n| Metric::from_str_name(n).map(|m| m as i32))
                .map_err(custom)?,
            name: s.name,
            value: s.value,
            timestamp: s.timestamp,
            message: s.message,
            status: s
                .status
                .into_i32(|n| Status::from_str_name(n).map(|m| m as i32))
                .map_err(custom)?,
            sample_rate: s.sample_rate,
            tags: s.tags,
            unit: s.unit,
            scope: s
                .scope
                .into_i32(|n| Scope::from_str_name(n).map(|m| m as i32))
                .map_err(custom)?,
        });
    }
    Ok(SsfSpan {
        version: 0,
        trace_id: j.trace_id,
        id: j.id,
        parent_id: j.parent_id,
        start_timestamp: j.start_timestamp,
        end_timestamp: j.end_timestamp,
        error: j.error,
        service: j.service,
        metrics,
        tags: j.tags,
        indicator: j.indicator,
        name: j.name,
        root_start_timestamp: j.root_start_timestamp,
    })
}
