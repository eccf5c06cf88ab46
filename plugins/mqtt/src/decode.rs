//! What the source makes of an incoming message: JSON or InfluxDB line protocol
//! payloads become metrics. Pure functions; a malformed payload is an `Err` with a
//! reason (the caller counts it and logs it at debug level), never a panic.
//!
//! Every metric point gets the attribute `mqtt.topic` (the topic the message was
//! published to), so the origin of a series stays visible when several topics feed
//! one name.
//!
//! ## JSON without a `mapping`
//! - a number or boolean: one gauge named after the topic (`/` -> `.`, empty levels
//!   dropped: `sensors/kitchen/temp` -> `sensors.kitchen.temp`);
//! - an object with `"type": "metric"`: a message in the sink's own JSON shape
//!   (`encode::metric_json`), decoded back losslessly (name, unit, kind, temporality,
//!   attributes, value, timestamps; its `resource` becomes the batch's resource), so
//!   two agents can be chained through a broker;
//! - any other object: every number or boolean, at any depth of nested objects,
//!   becomes a gauge named by its dotted path (`{"env": {"temp": 21}}` -> `env.temp`);
//!   strings, nulls and arrays inside are ignored;
//! - an array: each element as above.
//!
//! Booleans are 1 and 0. JSON numbers become double points (RFC 8259 numbers are
//! doubles; a sensor flipping between `21` and `21.5` keeps one type).
//!
//! ## JSON with a `mapping`
//! Applied to the object (or to each object of an array): `values` lists the dotted
//! paths of the values (numbers, booleans, or strings holding a number; a path part
//! that is a number indexes an array), `name` / `name_field` the metric name (or
//! prefix when there are several values), `timestamp` a number in `timestamp_unit`
//! or an RFC 3339 string, `labels` the attributes. A listed value that is absent is
//! skipped; a message with none of them is malformed.
//!
//! ## Influx line protocol
//! Parsed by the parser the influxdb receiver uses too
//! ([`tfo_plugin_common::lineproto`], which follows the reference
//! <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>):
//! one point per line, `#` comment lines and blank lines skipped, escapes `\,` `\ `
//! (measurement), `\,` `\=` `\ ` (tag keys, tag values, field keys), `\"` `\\`
//! (string fields), and `\\` for a backslash; timestamps in nanoseconds. A message
//! is taken whole or not at all: its first bad line fails it. Each numeric
//! field becomes a point: fields named `gauge` or `value` a gauge named after the
//! measurement, `counter` a monotonic cumulative sum named after the measurement,
//! any other field a gauge `<measurement>_<field>`; tags become attributes. Integer
//! fields (`5i`, `5u`) are integer points, floats double points, booleans 1/0;
//! string fields are ignored.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, Metric, MetricKind, PointValue, Quantile,
    Resource, SummaryValue, Temporality,
};
use tfo_plugin_common::lineproto::{parse_line_into, FieldValue, Line};

use crate::config::{Format, Mapping, Subscription, TimeUnit, ValueKind};

/// Attribute added to every point with the message's topic.
pub const TOPIC_ATTRIBUTE: &str = "mqtt.topic";

/// Decodes one message received on a topic matched by `sub`. `now_unix_nano` stamps
/// points that carry no timestamp.
pub fn decode(
    sub: &Subscription,
    topic: &str,
    payload: &[u8],
    now_unix_nano: u64,
) -> Result<Batch, String> {
    let mut batch = match sub.format {
        Format::Json => decode_json(sub.mapping.as_ref(), topic, payload, now_unix_nano)?,
        Format::Influx => Batch {
            metrics: decode_influx(payload, now_unix_nano)?.into(),
            ..Batch::default()
        },
        // Refused by config validation; kept as an error, never a panic.
        Format::Otlp => return Err("subscriptions do not accept format otlp".into()),
    };
    if batch.metrics.is_empty() {
        return Err("no numeric value in the message".into());
    }
    for m in batch.metrics.iter_mut() {
        for p in m.points.iter_mut() {
            p.attributes.push(KeyValue::new(TOPIC_ATTRIBUTE, topic));
        }
    }
    Ok(batch)
}

// ---------------------------------------------------------------------------
// JSON

fn decode_json(
    mapping: Option<&Mapping>,
    topic: &str,
    payload: &[u8],
    now: u64,
) -> Result<Batch, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))?;
    let items: Vec<&Value> = match &value {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    let mut batch = Batch::default();
    let mut metrics = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = |e: String| {
            if matches!(value, Value::Array(_)) {
                format!("element {i}: {e}")
            } else {
                e
            }
        };
        match mapping {
            Some(m) => metrics.extend(apply_mapping(m, item, now).map_err(at)?),
            None => match item {
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("metric") => {
                    let (metric, resource) = own_metric(item).map_err(at)?;
                    if batch.resource.attributes.is_empty() {
                        batch.resource = resource;
                    }
                    metrics.push(metric);
                }
                Value::Object(o) => flatten(o, "", now, &mut metrics),
                Value::Number(_) | Value::Bool(_) => {
                    let name = topic_name(topic);
                    if name.is_empty() {
                        return Err(at("the topic gives no metric name".into()));
                    }
                    let v = scalar(item).unwrap_or(0.0);
                    metrics.push(Metric::gauge(&name, "", now, v, vec![]));
                }
                other => {
                    return Err(at(format!(
                        "expected a number, a boolean, an object or an array, got {}",
                        kind_of(other)
                    )))
                }
            },
        }
    }
    batch.metrics = metrics.into();
    Ok(batch)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `sensors/kitchen/temp` -> `sensors.kitchen.temp`.
fn topic_name(topic: &str) -> String {
    topic
        .split('/')
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// A number or boolean as a double.
fn scalar(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn flatten(o: &Map<String, Value>, prefix: &str, now: u64, out: &mut Vec<Metric>) {
    for (k, v) in o {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(inner, &name, now, out),
            v => {
                if let Some(x) = scalar(v) {
                    if !name.is_empty() {
                        out.push(Metric::gauge(&name, "", now, x, vec![]));
                    }
                }
            }
        }
    }
}

/// Follows a dotted path; a part that is a number indexes an array.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(o) => o.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn apply_mapping(m: &Mapping, item: &Value, now: u64) -> Result<Vec<Metric>, String> {
    if !item.is_object() {
        return Err(format!("expected an object, got {}", kind_of(item)));
    }
    let time = match &m.timestamp {
        None => now,
        Some(path) => {
            let v =
                lookup(item, path).ok_or_else(|| format!("timestamp field {path:?} is missing"))?;
            timestamp(v, m.timestamp_unit).map_err(|e| format!("timestamp field {path:?}: {e}"))?
        }
    };
    let base = match (&m.name, &m.name_field) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(path)) => match lookup(item, path) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                return Err(format!(
                    "name field {path:?} must be a non-empty string, got {}",
                    kind_of(other)
                ))
            }
            None => return Err(format!("name field {path:?} is missing")),
        },
        (None, None) => None,
    };
    let mut attrs = Vec::new();
    for (label, path) in &m.labels {
        let value = match lookup(item, path) {
            Some(Value::String(s)) => AnyValue::from(s.as_str()),
            Some(Value::Bool(b)) => AnyValue::Bool(*b),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => continue,
        };
        attrs.push(KeyValue {
            key: label.as_str().into(),
            value,
        });
    }
    let mut out = Vec::new();
    for path in &m.values {
        let Some(v) = lookup(item, path) else {
            continue;
        };
        let x = match v {
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("value field {path:?} is the string {s:?}, not a number"))?,
            v => scalar(v).ok_or_else(|| {
                format!("value field {path:?} must be a number, got {}", kind_of(v))
            })?,
        };
        let name = match (&base, m.values.len()) {
            (Some(b), 1) => b.clone(),
            (Some(b), _) => format!("{b}.{path}"),
            (None, _) => path.clone(),
        };
        out.push(match m.kind {
            ValueKind::Gauge => Metric::gauge(&name, "", time, x, attrs.clone()),
            ValueKind::Counter => Metric::counter(&name, "", 0, time, x, attrs.clone()),
        });
    }
    if out.is_empty() {
        return Err(format!(
            "none of the value fields {:?} is present",
            m.values
        ));
    }
    Ok(out)
}

/// A timestamp: a number in `unit` since the Unix epoch, a string holding one, or
/// an RFC 3339 string.
fn timestamp(v: &Value, unit: TimeUnit) -> Result<u64, String> {
    let scale: u64 = match unit {
        TimeUnit::S => 1_000_000_000,
        TimeUnit::Ms => 1_000_000,
        TimeUnit::Us => 1_000,
        TimeUnit::Ns => 1,
    };
    // Integers are scaled exactly (an f64 cannot hold nanoseconds since 1970).
    let from_int = |i: i64| -> Result<u64, String> {
        u64::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(scale))
            .ok_or_else(|| format!("{i} is not a time after 1970"))
    };
    let from_float = |f: f64| -> Result<u64, String> {
        let ns = f * scale as f64;
        if !ns.is_finite() || ns < 0.0 || ns >= u64::MAX as f64 {
            return Err(format!("{f} is not a time after 1970"));
        }
        Ok(ns.round() as u64)
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => from_int(i),
            None => from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) =
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            {
                return u64::try_from(t.unix_timestamp_nanos())
                    .map_err(|_| format!("{s:?} is before 1970"));
            }
            if let Ok(i) = s.parse::<i64>() {
                return from_int(i);
            }
            match s.parse::<f64>() {
                Ok(f) => from_float(f),
                Err(_) => Err(format!("{s:?} is neither a number nor an RFC 3339 time")),
            }
        }
        other => Err(format!(
            "expected a number or a string, got {}",
            kind_of(other)
        )),
    }
}

/// The sink's JSON shape, for the round trip.
#[derive(Deserialize)]
struct OwnMetric {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    unit: String,
    kind: String,
    #[serde(default)]
    temporality: Option<String>,
    #[serde(default)]
    monotonic: bool,
    #[serde(default)]
    time_unix_nano: u64,
    #[serde(default)]
    start_time_unix_nano: u64,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    resource: Map<String, Value>,
    value: Value,
}

#[derive(Deserialize)]
struct OwnHistogram {
    count: u64,
    #[serde(default)]
    sum: Option<Value>,
    #[serde(default)]
    min: Option<Value>,
    #[serde(default)]
    max: Option<Value>,
    #[serde(default)]
    bounds: Vec<Value>,
    #[serde(default)]
    bucket_counts: Vec<u64>,
}

#[derive(Deserialize)]
struct OwnSummary {
    count: u64,
    sum: Value,
    #[serde(default)]
    quantiles: Vec<OwnQuantile>,
}

#[derive(Deserialize)]
struct OwnQuantile {
    quantile: Value,
    value: Value,
}

/// A double written by `encode::JsonF64`: a number or NaN/Infinity as a string.
fn own_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "bad number".to_string()),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(format!("{other:?} is not a number")),
        },
        other => Err(format!("expected a number, got {}", kind_of(other))),
    }
}

fn own_attrs(m: &Map<String, Value>) -> Vec<KeyValue> {
    m.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => AnyValue::from(s.as_str()),
                Value::Bool(b) => AnyValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => AnyValue::Int(i),
                    None => AnyValue::Double(n.as_f64()?),
                },
                _ => return None,
            };
            Some(KeyValue {
                key: k.as_str().into(),
                value,
            })
        })
        .collect()
}

fn own_metric(v: &Value) -> Result<(Metric, Resource), String> {
    let m = OwnMetric::deserialize(v).map_err(|e| format!("not a metric message: {e}"))?;
    let kind = match m.kind.as_str() {
        "gauge" => MetricKind::Gauge,
        "sum" => MetricKind::Sum,
        "histogram" => MetricKind::Histogram,
        "summary" => MetricKind::Summary,
        other => return Err(format!("unknown metric kind {other:?}")),
    };
    let temporality = match m.temporality.as_deref().unwrap_or("unspecified") {
        "unspecified" => Temporality::Unspecified,
        "delta" => Temporality::Delta,
        "cumulative" => Temporality::Cumulative,
        other => return Err(format!("unknown temporality {other:?}")),
    };
    let value = match kind {
        MetricKind::Gauge | MetricKind::Sum => match &m.value {
            Value::Number(n) if n.is_i64() => PointValue::Int(n.as_i64().unwrap_or(0)),
            v => PointValue::Double(own_f64(v).map_err(|e| format!("value: {e}"))?),
        },
        MetricKind::Histogram => {
            let h = OwnHistogram::deserialize(&m.value).map_err(|e| format!("value: {e}"))?;
            let opt = |o: &Option<Value>| -> Result<Option<f64>, String> {
                o.as_ref().map(own_f64).transpose()
            };
            let bounds = h
                .bounds
                .iter()
                .map(own_f64)
                .collect::<Result<Vec<_>, _>>()?;
            if h.bucket_counts.len() != bounds.len() + 1 {
                return Err("a histogram needs one more bucket count than bounds".into());
            }
            PointValue::Histogram(HistogramValue {
                count: h.count,
                sum: opt(&h.sum)?.into(),
                bounds: bounds.into(),
                bucket_counts: h.bucket_counts.into(),
                min: opt(&h.min)?.into(),
                max: opt(&h.max)?.into(),
            })
        }
        MetricKind::Summary => {
            let s = OwnSummary::deserialize(&m.value).map_err(|e| format!("value: {e}"))?;
            let quantiles = s
                .quantiles
                .iter()
                .map(|q| {
                    Ok(Quantile {
                        quantile: own_f64(&q.quantile)?,
                        value: own_f64(&q.value)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            PointValue::Summary(SummaryValue {
                count: s.count,
                sum: own_f64(&s.sum)?,
                quantiles: quantiles.into(),
            })
        }
    };
    let mut metric = Metric::gauge(&m.name, &m.unit, 0, 0.0, vec![]);
    metric.description = m.description.into();
    metric.kind = kind;
    metric.temporality = temporality;
    metric.is_monotonic = m.monotonic;
    metric.points = vec![DataPoint {
        attributes: own_attrs(&m.attributes).into(),
        start_time_unix_nano: m.start_time_unix_nano,
        time_unix_nano: m.time_unix_nano,
        value,
    }]
    .into();
    Ok((
        metric,
        Resource {
            attributes: own_attrs(&m.resource).into(),
        },
    ))
}

// ---------------------------------------------------------------------------
// Influx line protocol

/// Line protocol -> metrics: the shared parser ([`tfo_plugin_common::lineproto`],
/// the same one the influxdb receiver uses), all or nothing (a message is one unit:
/// the first bad line fails it, named by its number), timestamps in nanoseconds.
fn decode_influx(payload: &[u8], now: u64) -> Result<Vec<Metric>, String> {
    if let Err(e) = std::str::from_utf8(payload) {
        return Err(format!("not UTF-8: {e}"));
    }
    let mut out = Vec::new();
    let mut line = Line::default();
    for (n, raw) in payload.split(|b| *b == b'\n').enumerate() {
        if !parse_line_into(raw, &mut line).map_err(|e| format!("line {}: {e}", n + 1))? {
            continue;
        }
        let time = match line.timestamp {
            None => now,
            Some(t) if t >= 0 => t as u64,
            Some(t) => return Err(format!("line {}: timestamp {t} is before 1970", n + 1)),
        };
        let attrs: Vec<KeyValue> = line
            .tags
            .iter()
            .map(|(k, v)| KeyValue::new(k.as_ref(), v.as_ref()))
            .collect();
        for (field, value) in &line.fields {
            let v = match value {
                FieldValue::Float(f) => PointValue::Double(*f),
                FieldValue::Int(i) => PointValue::Int(*i),
                FieldValue::UInt(u) => match i64::try_from(*u) {
                    Ok(i) => PointValue::Int(i),
                    Err(_) => PointValue::Double(*u as f64),
                },
                FieldValue::Bool(b) => PointValue::Double(if *b { 1.0 } else { 0.0 }),
                FieldValue::Str(_) => continue,
            };
            let measurement: &str = &line.measurement;
            let (name, counter) = match field.as_ref() {
                "gauge" | "value" => (Cow::Borrowed(measurement), false),
                "counter" => (Cow::Borrowed(measurement), true),
                f => (Cow::Owned(format!("{measurement}_{f}")), false),
            };
            let mut m = if counter {
                Metric::counter(&name, "", 0, time, 0.0, attrs.clone())
            } else {
                Metric::gauge(&name, "", time, 0.0, attrs.clone())
            };
            m.points[0].value = v;
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
