//! Pure functions: a JSON response body plus the configured [`MetricSpec`]s become
//! metrics, kept apart from the HTTP code so every rule is unit-tested.
//!
//! Rules:
//! - the body must be JSON (RFC 8259); anything else is [`ExtractError::NotJson`]
//!   and no metric is produced;
//! - each value is found with `serde_json::Value::pointer`, i.e. an RFC 6901 JSON
//!   pointer (<https://www.rfc-editor.org/rfc/rfc6901>): `/a/0/b`, `~1` for `/` and
//!   `~0` for `~` inside a key;
//! - a number is taken as is; `true` / `false` are 1 / 0; a string is taken when it
//!   parses as a number (many APIs quote numbers, e.g. `"12.5"`); `null`, objects,
//!   arrays and other strings are a failure of that metric only;
//! - a metric that fails is reported in [`Extraction::failures`] with its index and
//!   pointer; the others are still returned (a partial result).

use std::collections::BTreeMap;

use serde_json::Value;
use tfo_plugin_api::{KeyValue, Metric};

use crate::config::{Kind, MetricSpec};

/// The outcome of one extraction: the metrics found and what failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// One metric per spec whose value was found, in config order.
    pub metrics: Vec<Metric>,
    /// One line per spec that failed, e.g. `metrics[1] (/a/b): no value at this pointer`.
    pub failures: Vec<String>,
}

/// Why nothing could be extracted at all.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtractError {
    /// The body is not JSON; the message says where it broke.
    NotJson(String),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::NotJson(e) => write!(f, "the response is not JSON: {e}"),
        }
    }
}

/// Parses `body` and extracts every spec. `now` is the points' time,
/// `start` the start time of counters (when this instance began counting), both in
/// nanoseconds since the Unix epoch.
pub fn extract(
    body: &[u8],
    specs: &[MetricSpec],
    now: u64,
    start: u64,
) -> Result<Extraction, ExtractError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| ExtractError::NotJson(e.to_string()))?;
    let mut out = Extraction {
        metrics: Vec::with_capacity(specs.len()),
        failures: Vec::new(),
    };
    for (i, spec) in specs.iter().enumerate() {
        match value_at(&doc, &spec.json_pointer) {
            Ok(v) => out.metrics.push(metric(spec, v, now, start)),
            Err(why) => out
                .failures
                .push(format!("metrics[{i}] ({:?}): {why}", spec.json_pointer)),
        }
    }
    Ok(out)
}

/// The number at `pointer` in `doc`, or why there is none.
pub fn value_at(doc: &Value, pointer: &str) -> Result<f64, String> {
    match doc.pointer(pointer) {
        None => Err("no value at this pointer".to_string()),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("{n} is not representable as a double")),
        Some(Value::Bool(b)) => Ok(if *b { 1.0 } else { 0.0 }),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(format!("the string {s:?} is not a number")),
        },
        Some(Value::Null) => Err("the value is null".to_string()),
        Some(Value::Array(_)) => Err("the value is an array, not a number".to_string()),
        Some(Value::Object(_)) => Err("the value is an object, not a number".to_string()),
    }
}

fn metric(spec: &MetricSpec, value: f64, now: u64, start: u64) -> Metric {
    let attributes = attributes(&spec.attributes);
    match spec.kind {
        Kind::Gauge => Metric::gauge(&spec.name, &spec.unit, now, value, attributes),
        Kind::Counter => Metric::counter(&spec.name, &spec.unit, start, now, value, attributes),
    }
}

fn attributes(attrs: &BTreeMap<String, String>) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue::new(k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{MetricKind, Temporality};

    fn spec(name: &str, pointer: &str, kind: Kind) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            json_pointer: pointer.into(),
            kind,
            unit: "1".into(),
            attributes: BTreeMap::new(),
        }
    }

    const DOC: &str = r#"{"queue": {"depth": 12, "ok": true, "ratio": "0.25", "name": "q1",
                          "none": null, "list": [3, 4], "a/b": 7, "m~n": 8}}"#;

    #[test]
    fn gauges_and_counters() {
        let mut counter = spec("sent", "/queue/list/1", Kind::Counter);
        counter.unit = "{message}".into();
        counter.attributes.insert("queue".into(), "q1".into());
        let specs = [spec("depth", "/queue/depth", Kind::Gauge), counter];
        let x = extract(DOC.as_bytes(), &specs, 2_000, 1_000).unwrap();
        assert!(x.failures.is_empty(), "{:?}", x.failures);
        assert_eq!(
            x.metrics,
            [
                Metric::gauge("depth", "1", 2_000, 12.0, vec![]),
                Metric::counter(
                    "sent",
                    "{message}",
                    1_000,
                    2_000,
                    4.0,
                    vec![KeyValue::new("queue", "q1")]
                ),
            ]
        );
        assert_eq!(x.metrics[1].kind, MetricKind::Sum);
        assert_eq!(x.metrics[1].temporality, Temporality::Cumulative);
        assert!(x.metrics[1].is_monotonic);
    }

    #[test]
    fn value_types() {
        let doc: Value = serde_json::from_str(DOC).unwrap();
        assert_eq!(value_at(&doc, "/queue/ok"), Ok(1.0));
        assert_eq!(value_at(&doc, "/queue/ratio"), Ok(0.25));
        assert_eq!(value_at(&doc, "/queue/a~1b"), Ok(7.0));
        assert_eq!(value_at(&doc, "/queue/m~0n"), Ok(8.0));
        assert!(value_at(&doc, "/queue/name")
            .unwrap_err()
            .contains("not a number"));
        assert!(value_at(&doc, "/queue/none").unwrap_err().contains("null"));
        assert!(value_at(&doc, "/queue/list").unwrap_err().contains("array"));
        assert!(value_at(&doc, "/queue").unwrap_err().contains("object"));
        assert!(value_at(&doc, "/queue/list/9")
            .unwrap_err()
            .contains("no value"));
        assert_eq!(value_at(&Value::from(3), ""), Ok(3.0));
    }

    #[test]
    fn a_missing_pointer_fails_only_its_metric() {
        let specs = [
            spec("missing", "/queue/nope", Kind::Gauge),
            spec("depth", "/queue/depth", Kind::Gauge),
        ];
        let x = extract(DOC.as_bytes(), &specs, 1, 0).unwrap();
        assert_eq!(x.metrics.len(), 1);
        assert_eq!(x.metrics[0].name.as_str(), "depth");
        assert_eq!(
            x.failures,
            [r#"metrics[0] ("/queue/nope"): no value at this pointer"#]
        );
    }

    #[test]
    fn bad_json_is_an_error() {
        for body in [&b"<html>oops</html>"[..], b"{\"a\": ", b"", b"\xff\xfe"] {
            let e = extract(body, &[spec("a", "/a", Kind::Gauge)], 1, 0).unwrap_err();
            assert!(
                e.to_string().starts_with("the response is not JSON: "),
                "{e}"
            );
        }
    }
}
