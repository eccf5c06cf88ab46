//! The agent's data model -> Dynatrace wire formats. Pure functions (plus the small
//! cumulative-to-delta memory metrics need), golden-tested against the examples of
//! the vendor documentation.
//!
//! ## Metrics: the metric ingestion protocol
//! <https://docs.dynatrace.com/docs/extend-dynatrace/extend-metrics/reference/metric-ingestion-protocol>
//! (also <https://docs.dynatrace.com/docs/shortlink/metric-ingestion-protocol>):
//! one line per data point, `metric.key,dim1="v1",dim2="v2" payload timestamp-ms`.
//! - **Metric key**: dot-separated sections of letters, digits, `-` and `_`; a key
//!   may not start with a digit or `-`, no section may start with `-`, at most 250
//!   characters. [`normalize_metric_key`] makes any name fit the way Dynatrace's own
//!   `dynatrace-metric-utils` libraries do (leading invalid characters dropped,
//!   runs of invalid characters become one `_`, empty later sections dropped, keys
//!   shorter than 3 characters padded with `_`); a name with nothing usable is
//!   skipped and counted.
//! - **Dimensions**: at most 50 per line; keys of lowercase letters, digits, `-`,
//!   `.`, `:` and `_` (at most 100 characters; [`normalize_dimension_key`]); values
//!   quoted, `"` and `\` escaped with `\`, control characters removed, at most 250
//!   characters. Point attributes take precedence over the batch's resource
//!   attributes, which take precedence over the configured `tags`; extra dimensions
//!   past 50 are dropped (counted).
//! - **Payload** by kind, following Dynatrace's own mapping of OpenTelemetry
//!   instruments ("About OTLP metrics ingest", Dynatrace-specific mapping):
//!   gauges -> `gauge,<v>`; delta sums -> `count,delta=<v>`; monotonic cumulative
//!   sums -> `count,delta=<v>` computed against the previous point of the same
//!   series (the first point of a series, and the first after a reset, only set the
//!   baseline); non-monotonic cumulative sums -> `gauge,<v>`; delta histograms ->
//!   `gauge,min=..,max=..,sum=..,count=..` (min/max estimated from the bucket
//!   bounds when the point does not carry them); cumulative histograms and
//!   summaries have no Dynatrace mapping and are skipped (counted).
//! - **Timestamp**: UTC milliseconds; omitted when the point has none (the server
//!   then uses the ingest time). NaN and infinite values are skipped.
//! - **Limits**: a line is at most 50,000 characters (longer ones are skipped) and a
//!   request at most 1 MB ("Metrics API - POST ingest data points",
//!   <https://docs.dynatrace.com/docs/shortlink/api-metrics-v2-post-datapoints>) and,
//!   by default, 1,000 lines (the `metricPayloadLinesLimit` of metric-utils).
//!
//! ## Logs: Log Monitoring API v2 ingest
//! <https://docs.dynatrace.com/docs/dynatrace-api/environment-api/log-monitoring-v2/post-ingest-logs>:
//! a JSON array of flat objects. `content` is the body, `timestamp` RFC 3339 UTC
//! with milliseconds, `severity` the level, `trace_id`/`span_id` hex when the record
//! is correlated; every resource attribute, configured tag and record attribute
//! becomes a top-level key (later ones win; none may replace the four above).
//! Limits ("Log Management and Analytics default limits"): 10 MB and 50,000 records
//! per request; requests here stay under [`MAX_LOGS_PAYLOAD_BYTES`].
//!
//! ## Traces
//! Dynatrace's OTLP endpoint takes `ExportTraceServiceRequest` protobuf, built by
//! the shared [`tfo_plugin_common::otlp`] encoder; a request over the 8 MB limit
//! ("Dynatrace API - Access limit") is split by halving its spans.

use std::collections::{hash_map::Entry, HashMap};

use serde_json::{Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, LogRecord, MetricKind, PointValue,
    Temporality,
};
use tfo_plugin_common::hex;

/// Longest metric line Dynatrace accepts (metric-utils `MAX_LINE_LENGTH`).
pub const MAX_LINE_LENGTH: usize = 50_000;
/// Most dimensions per line.
pub const MAX_DIMENSIONS: usize = 50;
/// Longest metric key.
pub const MAX_METRIC_KEY_LENGTH: usize = 250;
/// Longest dimension key.
pub const MAX_DIMENSION_KEY_LENGTH: usize = 100;
/// Longest dimension value.
pub const MAX_DIMENSION_VALUE_LENGTH: usize = 250;
/// Largest metrics request body (the API's 1 MB payload limit).
pub const MAX_METRICS_PAYLOAD_BYTES: usize = 1_000_000;
/// Largest log request body: well under the API's 10 MB so that the server-side
/// growth it warns about (16 MB after processing) is not reached.
pub const MAX_LOGS_PAYLOAD_BYTES: usize = 5_000_000;
/// Largest OTLP trace request (the API's 8 MB limit).
pub const MAX_TRACES_PAYLOAD_BYTES: usize = 8_000_000;
/// Series remembered for cumulative-to-delta conversion before the memory is reset
/// (bounds memory when series churn).
pub const MAX_TRACKED_SERIES: usize = 100_000;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Normalizes one section: drops leading characters that may not start it and
/// trailing invalid ones, and turns each run of invalid characters into `_`.
fn key_section(s: &str, may_start: impl Fn(char) -> bool, valid: impl Fn(char) -> bool) -> String {
    let s = s.trim_start_matches(|c: char| !may_start(c));
    let s = s.trim_end_matches(|c: char| !valid(c));
    let mut out = String::with_capacity(s.len());
    let mut in_bad = false;
    for c in s.chars() {
        if valid(c) {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('_');
            in_bad = true;
        }
    }
    out
}

/// A valid metric key for `name`, or `None` when nothing usable is left.
pub fn normalize_metric_key(name: &str) -> Option<String> {
    let name: String = name.chars().take(MAX_METRIC_KEY_LENGTH).collect();
    let mut out = String::new();
    for (i, section) in name.split('.').enumerate() {
        let s = if i == 0 {
            key_section(
                section,
                |c| c.is_ascii_alphabetic() || c == '_',
                is_key_char,
            )
        } else {
            key_section(
                section,
                |c| c.is_ascii_alphanumeric() || c == '_',
                is_key_char,
            )
        };
        if i == 0 && s.is_empty() {
            return None;
        }
        if !s.is_empty() {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&s);
        }
    }
    while out.len() < 3 {
        out.push('_');
    }
    Some(out)
}

/// A valid dimension key for `key` (lowercased), or `None` when nothing is left.
pub fn normalize_dimension_key(key: &str) -> Option<String> {
    let key: String = key
        .chars()
        .take(MAX_DIMENSION_KEY_LENGTH)
        .collect::<String>()
        .to_ascii_lowercase();
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-:".contains(c);
    let sections: Vec<String> = key
        .split('.')
        .map(|s| key_section(s, |c| c.is_ascii_lowercase() || c == '_', valid))
        .filter(|s| !s.is_empty())
        .collect();
    if sections.is_empty() {
        None
    } else {
        Some(sections.join("."))
    }
}

/// A dimension value as the protocol wants it: quoted, `"` and `\` escaped,
/// control characters removed (inner runs become `_`), at most 250 characters.
/// `None` for a value that is empty after that.
pub fn quote_dimension_value(value: &str) -> Option<String> {
    let v: String = value.chars().take(MAX_DIMENSION_VALUE_LENGTH).collect();
    let v = v.trim_matches(|c: char| c.is_control());
    if v.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    let mut in_ctl = false;
    for c in v.chars() {
        if c.is_control() {
            if !in_ctl {
                out.push('_');
                in_ctl = true;
            }
            continue;
        }
        in_ctl = false;
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// A number in the protocol: integers without a fraction, others in the shortest
/// form that reads back exactly (exponent form outside 1e-4..1e15). `None` for NaN
/// and infinities, which Dynatrace refuses.
pub fn format_number(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    Some(if v == v.trunc() && a < 1e15 {
        format!("{}", v as i64)
    } else if (1e-4..1e15).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    })
}

/// An attribute value as text (dimension values, log `content`).
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => format_number(*d).unwrap_or_else(|| d.to_string()),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

/// Remembers the last value of each monotonic cumulative series, so that its
/// points can be sent as `count,delta=`.
#[derive(Debug, Default, Clone)]
pub struct DeltaTracker {
    last: HashMap<String, (u64, f64)>,
}

impl DeltaTracker {
    /// The increase since the previous point of `series`, or `None` for a first
    /// point or a reset (value went down, or the start time changed), which only
    /// set the baseline.
    pub fn delta(&mut self, series: &str, start: u64, value: f64) -> Option<f64> {
        if self.last.len() >= MAX_TRACKED_SERIES && !self.last.contains_key(series) {
            tracing::warn!(
                "dynatrace: more than {MAX_TRACKED_SERIES} cumulative series; forgetting their \
                 previous values (the next point of each only sets a new baseline)"
            );
            self.last.clear();
        }
        match self.last.entry(series.to_string()) {
            Entry::Vacant(e) => {
                e.insert((start, value));
                None
            }
            Entry::Occupied(mut e) => {
                let (prev_start, prev) = *e.get();
                e.insert((start, value));
                if prev_start != start || value < prev {
                    None
                } else {
                    Some(value - prev)
                }
            }
        }
    }

    /// Number of series remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True when no series is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// What [`MetricEncoder::encode`] made of a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricLines {
    /// The lines, in batch order.
    pub lines: Vec<String>,
    /// Points not sent because they cannot be expressed (bad name, NaN, no mapping,
    /// line too long, value not matching the kind).
    pub skipped: u64,
    /// First points of cumulative series: consumed as the delta baseline.
    pub baselines: u64,
    /// Dimensions dropped past the 50-per-line limit.
    pub dropped_dimensions: u64,
}

/// Turns batches into metric lines; keeps the cumulative-to-delta memory.
#[derive(Debug, Default, Clone)]
pub struct MetricEncoder {
    prefix: Option<String>,
    tags: Vec<(String, String)>,
    resource_dimensions: bool,
    deltas: DeltaTracker,
}

impl MetricEncoder {
    /// An encoder with a key prefix, constant dimensions and whether resource
    /// attributes become dimensions.
    pub fn new(
        prefix: Option<&str>,
        tags: &[(String, String)],
        resource_dimensions: bool,
    ) -> MetricEncoder {
        MetricEncoder {
            prefix: prefix.and_then(normalize_metric_key),
            tags: tags.to_vec(),
            resource_dimensions,
            deltas: DeltaTracker::default(),
        }
    }

    /// The encoder's cumulative-to-delta memory (for tests and health).
    pub fn deltas(&self) -> &DeltaTracker {
        &self.deltas
    }

    /// Encodes every metric point of `batch`.
    pub fn encode(&mut self, batch: &Batch) -> MetricLines {
        let mut out = MetricLines::default();
        let resource: Vec<(String, String)> = if self.resource_dimensions {
            batch
                .resource
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), value_text(&kv.value)))
                .collect()
        } else {
            Vec::new()
        };
        for m in batch.metrics.iter() {
            let name = match &self.prefix {
                Some(p) => format!("{p}.{}", m.name),
                None => m.name.to_string(),
            };
            let Some(key) = normalize_metric_key(&name) else {
                out.skipped += m.points.len() as u64;
                continue;
            };
            for p in m.points.iter() {
                let (dims, dropped) = dimensions(&p.attributes, &resource, &self.tags);
                out.dropped_dimensions += dropped;
                let series = if dims.is_empty() {
                    key.clone()
                } else {
                    format!("{key},{dims}")
                };
                let payload = match self.payload(m.kind, m.temporality, m.is_monotonic, p, &series)
                {
                    Payload::Line(s) => s,
                    Payload::Baseline => {
                        out.baselines += 1;
                        continue;
                    }
                    Payload::Skip => {
                        out.skipped += 1;
                        continue;
                    }
                };
                let mut line = format!("{series} {payload}");
                let ms = p.time_unix_nano / 1_000_000;
                if ms > 0 {
                    line.push(' ');
                    line.push_str(&ms.to_string());
                }
                if line.len() > MAX_LINE_LENGTH {
                    out.skipped += 1;
                    continue;
                }
                out.lines.push(line);
            }
        }
        out
    }

    fn payload(
        &mut self,
        kind: MetricKind,
        temporality: Temporality,
        monotonic: bool,
        p: &DataPoint,
        series: &str,
    ) -> Payload {
        let scalar = match &p.value {
            PointValue::Double(v) => Some(*v),
            PointValue::Int(v) => Some(*v as f64),
            _ => None,
        };
        let number = |v: &PointValue| match v {
            PointValue::Int(i) => Some(i.to_string()),
            PointValue::Double(d) => format_number(*d),
            _ => None,
        };
        match (kind, temporality) {
            (MetricKind::Gauge, _) => match number(&p.value) {
                Some(v) => Payload::Line(format!("gauge,{v}")),
                None => Payload::Skip,
            },
            (MetricKind::Sum, Temporality::Delta) => match number(&p.value) {
                Some(v) => Payload::Line(format!("count,delta={v}")),
                None => Payload::Skip,
            },
            (MetricKind::Sum, _) if !monotonic => match number(&p.value) {
                Some(v) => Payload::Line(format!("gauge,{v}")),
                None => Payload::Skip,
            },
            (MetricKind::Sum, _) => {
                let Some(v) = scalar.filter(|v| v.is_finite()) else {
                    return Payload::Skip;
                };
                match self.deltas.delta(series, p.start_time_unix_nano, v) {
                    Some(d) => match format_number(d) {
                        Some(d) => Payload::Line(format!("count,delta={d}")),
                        None => Payload::Skip,
                    },
                    None => Payload::Baseline,
                }
            }
            (MetricKind::Histogram, Temporality::Delta) => match &p.value {
                PointValue::Histogram(h) => histogram_summary(h),
                _ => Payload::Skip,
            },
            // Cumulative histograms and summaries have no Dynatrace mapping.
            (MetricKind::Histogram, _) | (MetricKind::Summary, _) => Payload::Skip,
        }
    }
}

enum Payload {
    Line(String),
    Baseline,
    Skip,
}

/// `gauge,min=..,max=..,sum=..,count=..` for a delta histogram point.
fn histogram_summary(h: &HistogramValue) -> Payload {
    let Some(sum) = h.sum.into_option() else {
        return Payload::Skip;
    };
    if h.count == 0 {
        return Payload::Skip;
    }
    let (emin, emax) = estimate_min_max(h, sum);
    let min = h.min.into_option().unwrap_or(emin);
    let max = h.max.into_option().unwrap_or(emax);
    match (format_number(min), format_number(max), format_number(sum)) {
        (Some(min), Some(max), Some(sum)) => Payload::Line(format!(
            "gauge,min={min},max={max},sum={sum},count={}",
            h.count
        )),
        _ => Payload::Skip,
    }
}

/// Min and max of a histogram without them, from its buckets: the lower bound of
/// the first non-empty bucket and the upper bound of the last (for the open-ended
/// first and last buckets, their one finite bound), clamped so that
/// min <= mean <= max.
fn estimate_min_max(h: &HistogramValue, sum: f64) -> (f64, f64) {
    let mean = sum / h.count as f64;
    let b = &h.bounds;
    let first = h.bucket_counts.iter().position(|c| *c > 0);
    let last = h.bucket_counts.iter().rposition(|c| *c > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return (mean, mean);
    };
    let min = match first {
        0 => b.first().copied().unwrap_or(mean),
        i => b.get(i - 1).copied().unwrap_or(mean),
    };
    let max = b.get(last).or_else(|| b.last()).copied().unwrap_or(mean);
    (min.min(mean), max.max(mean))
}

/// The dimension list `k1="v1",k2="v2"` of a point (point attributes, then
/// resource attributes, then tags; the first of a normalized key wins) and the
/// number of dimensions dropped past [`MAX_DIMENSIONS`].
fn dimensions(
    point: &[KeyValue],
    resource: &[(String, String)],
    tags: &[(String, String)],
) -> (String, u64) {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut dropped = 0;
    let point = point
        .iter()
        .map(|kv| (kv.key.to_string(), value_text(&kv.value)));
    let rest = resource.iter().chain(tags.iter()).cloned();
    for (k, v) in point.chain(rest) {
        let (Some(k), Some(v)) = (normalize_dimension_key(&k), quote_dimension_value(&v)) else {
            continue;
        };
        if seen.contains(&k) {
            continue;
        }
        if seen.len() == MAX_DIMENSIONS {
            dropped += 1;
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&k);
        out.push('=');
        out.push_str(&v);
        seen.push(k);
    }
    (out, dropped)
}

/// Splits lines into request bodies of at most `max_lines` lines and
/// `max_bytes` bytes; returns (body, line count) pairs.
pub fn chunk_lines(lines: &[String], max_lines: usize, max_bytes: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut body = String::new();
    let mut n = 0;
    for line in lines {
        let extra = line.len() + usize::from(n > 0);
        if n > 0 && (n == max_lines || body.len() + extra > max_bytes) {
            out.push((std::mem::take(&mut body), n));
            n = 0;
        }
        if n > 0 {
            body.push('\n');
        }
        body.push_str(line);
        n += 1;
    }
    if n > 0 {
        out.push((body, n));
    }
    out
}

/// RFC 3339 UTC with milliseconds (`2024-01-17T22:12:31.123Z`) for a Unix time in
/// nanoseconds.
pub fn rfc3339_millis(unix_nano: u64) -> String {
    let ms = unix_nano / 1_000_000;
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The severity word of a record: its text (lower-cased) or, without one, the
/// OpenTelemetry severity number's range name.
pub fn severity(rec: &LogRecord) -> Option<String> {
    let text = rec.severity_text.trim();
    if !text.is_empty() {
        return Some(text.to_ascii_lowercase());
    }
    Some(
        match rec.severity_number {
            1..=4 => "trace",
            5..=8 => "debug",
            9..=12 => "info",
            13..=16 => "warn",
            17..=20 => "error",
            21..=24 => "fatal",
            _ => return None,
        }
        .to_string(),
    )
}

fn json_value(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        AnyValue::Bytes(b) => Value::String(tfo_plugin_common::auth::base64(b)),
    }
}

/// Keys the plugin sets itself on a log record; attributes of these names are
/// not sent (they would replace the record's own fields).
pub const LOG_RESERVED_KEYS: [&str; 5] =
    ["content", "timestamp", "severity", "trace_id", "span_id"];

/// One log record as a Log ingest API object.
pub fn log_object(batch: &Batch, tags: &[(String, String)], rec: &LogRecord) -> Value {
    let mut obj = Map::new();
    let attrs = batch
        .resource
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
        .chain(
            tags.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
        )
        .chain(
            rec.attributes
                .iter()
                .map(|kv| (kv.key.to_string(), json_value(&kv.value))),
        );
    for (k, v) in attrs {
        if !LOG_RESERVED_KEYS.contains(&k.as_str()) {
            obj.insert(k, v);
        }
    }
    obj.insert("content".into(), Value::String(value_text(&rec.body)));
    let t = if rec.time_unix_nano > 0 {
        rec.time_unix_nano
    } else {
        rec.observed_time_unix_nano
    };
    if t > 0 {
        obj.insert("timestamp".into(), Value::String(rfc3339_millis(t)));
    }
    if let Some(s) = severity(rec) {
        obj.insert("severity".into(), Value::String(s));
    }
    if rec.trace_id != [0; 16] {
        obj.insert("trace_id".into(), Value::String(hex::encode(&rec.trace_id)));
    }
    if rec.span_id != [0; 8] {
        obj.insert("span_id".into(), Value::String(hex::encode(&rec.span_id)));
    }
    Value::Object(obj)
}

/// The batch's log records as JSON-array request bodies of at most `max_records`
/// records and [`MAX_LOGS_PAYLOAD_BYTES`] bytes; (body, record count) pairs. A
/// single record larger than the limit is skipped; the count of those is returned.
pub fn log_bodies(
    batch: &Batch,
    tags: &[(String, String)],
    max_records: usize,
) -> (Vec<(Vec<u8>, usize)>, u64) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut body: Vec<u8> = Vec::new();
    let mut n = 0;
    for rec in batch.logs.iter() {
        let one = match serde_json::to_vec(&log_object(batch, tags, rec)) {
            Ok(v) => v,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        if one.len() + 2 > MAX_LOGS_PAYLOAD_BYTES {
            skipped += 1;
            continue;
        }
        if n > 0 && (n == max_records || body.len() + one.len() + 2 > MAX_LOGS_PAYLOAD_BYTES) {
            body.push(b']');
            out.push((std::mem::take(&mut body), n));
            n = 0;
        }
        body.push(if n == 0 { b'[' } else { b',' });
        body.extend_from_slice(&one);
        n += 1;
    }
    if n > 0 {
        body.push(b']');
        out.push((body, n));
    }
    (out, skipped)
}

/// The batch's spans as OTLP protobuf bodies under [`MAX_TRACES_PAYLOAD_BYTES`]
/// (split by halving the spans); (body, span count) pairs.
pub fn trace_bodies(batch: &Batch) -> Vec<(Vec<u8>, usize)> {
    use tfo_plugin_common::otlp::prost::Message as _;
    let mut out = Vec::new();
    let mut stack = vec![batch.spans.to_vec()];
    while let Some(spans) = stack.pop() {
        if spans.is_empty() {
            continue;
        }
        let part = Batch {
            resource: batch.resource.clone(),
            spans: spans.clone().into(),
            ..Default::default()
        };
        let Some(req) = tfo_plugin_common::otlp::traces(&part) else {
            continue;
        };
        let body = req.encode_to_vec();
        if body.len() > MAX_TRACES_PAYLOAD_BYTES && spans.len() > 1 {
            let mut first = spans;
            let second = first.split_off(first.len() / 2);
            // Pushed in reverse so the first half is sent first.
            stack.push(second);
            stack.push(first);
            continue;
        }
        out.push((body, spans.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{Metric, Resource};

    fn gauge(name: &str, v: f64, attrs: Vec<KeyValue>) -> Metric {
        Metric::gauge(name, "1", 1_609_459_200_000_000_000, v, attrs)
    }

    fn batch(metrics: Vec<Metric>) -> Batch {
        Batch {
            metrics: metrics.into(),
            ..Default::default()
        }
    }

    fn lines(enc: &mut MetricEncoder, b: &Batch) -> Vec<String> {
        enc.encode(b).lines
    }

    #[test]
    fn golden_escaping_example_from_the_protocol_page() {
        // The protocol page's example line:
        //   workHours,team="devops\\bugfixing",project="\"product\"_improvement" 1000
        // (its payload has no format, which means gauge).
        let mut enc = MetricEncoder::default();
        let mut m = gauge(
            "workHours",
            1000.0,
            vec![
                KeyValue::new("team", "devops\\bugfixing"),
                KeyValue::new("project", "\"product\"_improvement"),
            ],
        );
        m.points[0].time_unix_nano = 0;
        assert_eq!(
            lines(&mut enc, &batch(vec![m])),
            vec![
                r#"workHours,team="devops\\bugfixing",project="\"product\"_improvement" gauge,1000"#
            ]
        );
    }

    #[test]
    fn golden_api_example_with_entity_dimension_and_timestamp() {
        // The API page's example: cpu.temperature,dt.entity.host=HOST-06F288EE2A930951,cpu=1 55
        let mut enc = MetricEncoder::default();
        let m = gauge(
            "cpu.temperature",
            55.0,
            vec![
                KeyValue::new("dt.entity.host", "HOST-06F288EE2A930951"),
                KeyValue::new("cpu", 1i64),
            ],
        );
        assert_eq!(
            lines(&mut enc, &batch(vec![m])),
            vec![
                r#"cpu.temperature,dt.entity.host="HOST-06F288EE2A930951",cpu="1" gauge,55 1609459200000"#
            ]
        );
    }

    #[test]
    fn metric_key_normalization() {
        let cases = [
            ("system.cpu.time", Some("system.cpu.time")),
            ("1abc.def", Some("abc.def")),
            ("a b%c.-x.", Some("a_b_c.x")),
            ("http.server.duration{ms}", Some("http.server.duration_ms")),
            ("é", None),
            ("..", None),
            ("ab", Some("ab_")),
            ("a..b", Some("a.b")),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_metric_key(input).as_deref(), want, "{input}");
        }
        let long = "a".repeat(300);
        assert_eq!(normalize_metric_key(&long).unwrap().len(), 250);
    }

    #[test]
    fn dimension_key_and_value_normalization() {
        assert_eq!(
            normalize_dimension_key("Host.Name").as_deref(),
            Some("host.name")
        );
        assert_eq!(
            normalize_dimension_key("k8s.pod name").as_deref(),
            Some("k8s.pod_name")
        );
        assert_eq!(
            normalize_dimension_key("dt.entity:x").as_deref(),
            Some("dt.entity:x")
        );
        assert_eq!(normalize_dimension_key("---").as_deref(), None);
        assert_eq!(
            quote_dimension_value("a\nb\tc").as_deref(),
            Some("\"a_b_c\"")
        );
        assert_eq!(quote_dimension_value("\n").as_deref(), None);
        assert_eq!(quote_dimension_value("").as_deref(), None);
        let long = "x".repeat(300);
        assert_eq!(quote_dimension_value(&long).unwrap().len(), 252);
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(21.5).as_deref(), Some("21.5"));
        assert_eq!(format_number(-0.0).as_deref(), Some("0"));
        assert_eq!(format_number(7.0).as_deref(), Some("7"));
        assert_eq!(format_number(1e300).as_deref(), Some("1e300"));
        assert_eq!(format_number(1.5e-7).as_deref(), Some("1.5e-7"));
        assert_eq!(format_number(f64::NAN), None);
        assert_eq!(format_number(f64::INFINITY), None);
    }

    #[test]
    fn kinds_map_to_gauge_count_and_summary() {
        let mut enc = MetricEncoder::default();
        let t = 1_609_459_200_000_000_000;
        let mut delta = Metric::counter("req.count", "1", t - 1, t, 5.0, vec![]);
        delta.temporality = Temporality::Delta;
        let mut updown = Metric::counter("queue.size", "1", t - 1, t, 12.0, vec![]);
        updown.is_monotonic = false;
        let mut hist = gauge("latency", 0.0, vec![]);
        hist.kind = MetricKind::Histogram;
        hist.temporality = Temporality::Delta;
        hist.points[0].value = PointValue::Histogram(HistogramValue {
            count: 2,
            sum: Some(34.4).into(),
            bounds: vec![10.0, 20.0].into(),
            bucket_counts: vec![0, 2, 0].into(),
            min: Some(17.1).into(),
            max: Some(17.3).into(),
        });
        let mut summary = gauge("rpc", 0.0, vec![]);
        summary.kind = MetricKind::Summary;
        let out = enc.encode(&batch(vec![delta, updown, hist, summary]));
        assert_eq!(
            out.lines,
            vec![
                "req.count count,delta=5 1609459200000",
                "queue.size gauge,12 1609459200000",
                "latency gauge,min=17.1,max=17.3,sum=34.4,count=2 1609459200000",
            ]
        );
        assert_eq!(out.skipped, 1);
    }

    #[test]
    fn histogram_min_max_are_estimated_from_buckets() {
        let h = HistogramValue {
            count: 4,
            sum: Some(60.0).into(),
            bounds: vec![10.0, 20.0, 30.0].into(),
            bucket_counts: vec![0, 3, 1, 0].into(),
            min: None.into(),
            max: None.into(),
        };
        assert_eq!(estimate_min_max(&h, 60.0), (10.0, 30.0));
        let h = HistogramValue {
            bucket_counts: vec![1, 0, 0, 3].into(),
            ..h
        };
        // The open-ended buckets use their finite bound.
        assert_eq!(estimate_min_max(&h, 60.0), (10.0, 30.0));
        let h = HistogramValue {
            bounds: vec![].into(),
            bucket_counts: vec![4].into(),
            ..h
        };
        assert_eq!(estimate_min_max(&h, 60.0), (15.0, 15.0));
    }

    #[test]
    fn cumulative_counters_become_deltas() {
        let mut enc = MetricEncoder::default();
        let c = |v: f64, t: u64| {
            batch(vec![Metric::counter(
                "bytes.sent",
                "By",
                1_000,
                t * 1_000_000,
                v,
                vec![KeyValue::new("if", "eth0")],
            )])
        };
        let first = enc.encode(&c(100.0, 1000));
        assert!(first.lines.is_empty());
        assert_eq!(first.baselines, 1);
        assert_eq!(
            enc.encode(&c(150.0, 2000)).lines,
            vec![r#"bytes.sent,if="eth0" count,delta=50 2000"#]
        );
        // A reset only sets a new baseline.
        assert!(enc.encode(&c(10.0, 3000)).lines.is_empty());
        assert_eq!(
            enc.encode(&c(15.5, 4000)).lines,
            vec![r#"bytes.sent,if="eth0" count,delta=5.5 4000"#]
        );
        assert_eq!(enc.deltas().len(), 1);
    }

    #[test]
    fn dimension_precedence_dedup_and_limit() {
        let tags = vec![
            ("env".to_string(), "prod".to_string()),
            ("host.name".to_string(), "from-tag".to_string()),
        ];
        let mut enc = MetricEncoder::new(Some("tfo"), &tags, true);
        let mut b = batch(vec![gauge(
            "up",
            1.0,
            vec![KeyValue::new("Host.Name", "from-point")],
        )]);
        b.resource = Resource {
            attributes: vec![
                KeyValue::new("host.name", "from-resource"),
                KeyValue::new("service.name", "svc"),
            ]
            .into(),
        };
        assert_eq!(
            lines(&mut enc, &b),
            vec![
                r#"tfo.up,host.name="from-point",service.name="svc",env="prod" gauge,1 1609459200000"#
            ]
        );
        let attrs: Vec<KeyValue> = (0..60)
            .map(|i| KeyValue::new(format!("d{i}"), "v"))
            .collect();
        let out = MetricEncoder::default().encode(&batch(vec![gauge("many", 1.0, attrs)]));
        assert_eq!(out.dropped_dimensions, 10);
        assert_eq!(out.lines[0].matches("=\"v\"").count(), 50);
    }

    #[test]
    fn unusable_points_are_skipped_and_counted() {
        let mut enc = MetricEncoder::default();
        let mut wrong = gauge("wrong", 0.0, vec![]);
        wrong.points[0].value = PointValue::Histogram(HistogramValue {
            count: 0,
            sum: None.into(),
            bounds: vec![].into(),
            bucket_counts: vec![0].into(),
            min: None.into(),
            max: None.into(),
        });
        let out = enc.encode(&batch(vec![
            gauge("é", 1.0, vec![]),
            gauge("nan", f64::NAN, vec![]),
            wrong,
            gauge("ok", 1.0, vec![]),
        ]));
        assert_eq!(out.skipped, 3);
        assert_eq!(out.lines.len(), 1);
    }

    #[test]
    fn chunking_respects_lines_and_bytes() {
        let lines: Vec<String> = (0..5).map(|i| format!("m{i} gauge,1")).collect();
        let c = chunk_lines(&lines, 2, 1000);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], ("m0 gauge,1\nm1 gauge,1".to_string(), 2));
        assert_eq!(c[2].1, 1);
        let c = chunk_lines(&lines, 100, 25);
        assert!(c.iter().all(|(b, _)| b.len() <= 25), "{c:?}");
        assert_eq!(c.iter().map(|(_, n)| n).sum::<usize>(), 5);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_642_457_551_123_000_000),
            "2022-01-17T22:12:31.123Z"
        );
        assert_eq!(
            rfc3339_millis(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn golden_log_object_like_the_api_example() {
        // The API page's request model: content, log.source, timestamp, severity and a
        // custom attribute as flat keys.
        let b = Batch::default();
        let rec = LogRecord {
            time_unix_nano: 1_642_457_551_000_000_000,
            observed_time_unix_nano: 0,
            severity_number: 17,
            severity_text: "".into(),
            body: AnyValue::from("Exception: Custom error log sent via Generic Log Ingest"),
            attributes: vec![
                KeyValue::new("log.source", "/var/log/syslog"),
                KeyValue::new("custom.attribute", "attribute value"),
                KeyValue::new("content", "must not replace the body"),
            ]
            .into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        };
        let v = log_object(&b, &[], &rec);
        assert_eq!(
            v,
            serde_json::json!({
                "content": "Exception: Custom error log sent via Generic Log Ingest",
                "log.source": "/var/log/syslog",
                "timestamp": "2022-01-17T22:12:31.000Z",
                "severity": "error",
                "custom.attribute": "attribute value"
            })
        );
    }

    #[test]
    fn log_bodies_are_arrays_chunked_by_count() {
        let rec = |i: i64| LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "WARN".into(),
            body: AnyValue::Int(i),
            attributes: vec![].into(),
            trace_id: [1; 16],
            span_id: [2; 8],
        };
        let b = Batch {
            logs: (0..3).map(rec).collect::<Vec<_>>().into(),
            ..Default::default()
        };
        let (bodies, skipped) = log_bodies(&b, &[("env".into(), "prod".into())], 2);
        assert_eq!(skipped, 0);
        assert_eq!(bodies.len(), 2);
        let v: Value = serde_json::from_slice(&bodies[0].0).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["content"], "1");
        assert_eq!(v[0]["severity"], "warn");
        assert_eq!(v[0]["env"], "prod");
        assert_eq!(v[0]["trace_id"], "01".repeat(16));
        assert_eq!(v[0]["span_id"], "02".repeat(8));
        assert!(v[0].get("timestamp").is_none());
    }
}
